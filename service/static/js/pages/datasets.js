// #/datasets: every dataset the stack can train on (ready, ingesting with its progress,
// failed with why), refreshed every 2 s, and the form that ingests recordings from a
// folder in the data directory (the body of POST /datasets as JSON). The job it queues is
// followed live under the form through its event stream.
import {ApiError, api, events, isOver, problem} from "../api.js";
import {badge, bar, clearErrors, esc, html, ingestProgress, options, pct, showError} from "../dom.js";

export default async function datasetsPage({view, signal, every}) {
  view.innerHTML = html`<h1>Datasets</h1><div id="list"></div>
    <h2>Ingest recordings</h2><form class="card" id="ingest">
    <div class="muted">Videos and an annotation file, in a folder of the stack's data directory, become frames, warp
      flow and motion maps in the layout every preset trains on. To upload an archive instead:
      <code>fpar dataset ingest NAME --archive FILE</code>.</div>
    <div class="fields">
      <div><label for="ds-name">Name</label><input id="ds-name" name="name" placeholder="kitchen" required></div>
      <div><label for="ds-source">Source folder</label>
        <input id="ds-source" name="source" placeholder="incoming/kitchen" required
          title="a folder in the stack's data directory"></div>
      <div><label for="ds-labels">Labels file</label>
        <input id="ds-labels" name="labels" placeholder="default: the one CSV there"
          title="relative to the source; with no CSV there, the folders are class/video.mp4"></div>
      <div><label for="ds-format">Format</label><select id="ds-format" name="format"></select></div>
      <div><label for="ds-flow">Flow</label><select id="ds-flow" name="flow"></select></div>
      <div><label for="ds-size">Shorter side (px)</label><input id="ds-size" name="shorter_side" type="number"
        min="16" title="frames are scaled so that their shorter side is this"></div>
    </div>
    <button type="submit" id="ds-submit">Ingest</button></form><div id="ingest-job"></div>`;
  const list = view.querySelector("#list"), form = view.querySelector("#ingest");
  requestSchema().then((request) => {
    form.querySelector("#ds-format").innerHTML = options(request.format.enum, request.format.default);
    form.querySelector("#ds-flow").innerHTML = options(request.flow.enum, request.flow.default);
    form.querySelector("#ds-size").placeholder = request.shorterSide;
  }).catch((e) => showError(form, e));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const value = (id) => form.querySelector(id).value.trim();
    const body = {name: value("#ds-name"), source: value("#ds-source"), format: value("#ds-format"), flow: value("#ds-flow")};
    if (value("#ds-labels")) body.labels = value("#ds-labels");
    if (value("#ds-size")) body.shorter_side = Number(value("#ds-size"));
    const button = form.querySelector("#ds-submit");
    button.disabled = true;
    try {
      const job = await api("POST", "/datasets", body);
      follow(view.querySelector("#ingest-job"), job, body.name, signal).then(draw);
      draw();
    } catch (e) { showError(form, e); } finally { button.disabled = false; }
  });
  const draw = async () => {
    try {
      const {datasets} = await api("GET", "/datasets");
      list.innerHTML = datasets.length ? html`<table id="datasets"><tr><th>name</th><th>status</th><th>users</th>
        <th class="num">classes</th><th class="num">videos</th><th class="num">frames</th><th>flow</th><th>maps</th>
        <th>report</th><th>origin</th></tr>
        ${datasets.map(row).join("")}</table>` : `<p class="muted">No datasets in the data directory yet.</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  };
  every(2000, draw);
}

// The request's fields as the API's schema has them: the formats and flow methods it takes.
async function requestSchema() {
  const r = await fetch("/openapi.json");  // served without a key: the contract, no data
  if (!r.ok) throw await problem(r);
  const props = (((await r.json()).components?.schemas || {}).IngestRequest || {}).properties || {};
  if (!props.format?.enum || !props.flow?.enum) {
    throw new ApiError("The API's schema has no IngestRequest: is the gateway older than this page?");
  }
  return {format: {enum: props.format.enum, default: props.format.default},
          flow: {enum: props.flow.enum, default: props.flow.default}, shorterSide: props.shorter_side?.default ?? ""};
}

const yes = (v) => (v ? "yes" : `<span class="muted">no</span>`);

// the report column: how many problems a training would fail on (the detail page lists them)
const report = (d) => (d.errors ? `<span class="badge error">${d.errors} error${d.errors > 1 ? "s" : ""}</span>`
  : `<span class="muted nowrap">no errors</span>`);

// Ready: its counts. Ingesting: how far it got, across those columns. Failed: why.
function row(d) {
  const p = d.progress;
  const cells = d.status === "ready" ? html`<td>${esc(d.users.join(", "))}</td><td class="num">${d.classes.length}</td>
    <td class="num">${d.videos}</td><td class="num">${d.frames}</td><td>${yes(d.flow)}</td><td>${yes(d.maps)}</td>
    <td>${report(d)}</td>`
    : d.status === "ingesting" ? html`<td colspan="7" class="progress">${p ? `${bar(p.fraction)} ${pct(p.fraction)}
      <span class="muted">${esc(ingestProgress(p))}</span>` : `<span class="muted">queued</span>`}</td>`
    : html`<td colspan="7" class="muted">${esc((d.error || {}).message || "")}</td>`;
  return html`<tr data-name="${esc(d.name)}"><td><a href="#/datasets/${esc(d.name)}">${esc(d.name)}</a></td>
    <td class="status">${badge(d.status)}</td>${cells}<td>${esc(d.origin)}</td></tr>`;
}

// The queued ingest, live: its status, a bar by seconds of video done and the videos
// done, from the job's event stream; once it ends, the dataset (or the error).
export async function follow(card, job, name, signal) {
  const items = (job.request || {}).items || [];
  let progress = {videos_done: 0, videos: items.length, seconds_done: 0,
                  seconds: items.reduce((s, i) => s + i.end - i.start, 0), fraction: 0};
  let state = {status: job.status};
  const draw = () => {
    const done = state.status === "succeeded" ? `<a id="ingest-dataset" href="#/datasets/${esc(name)}">open ${esc(name)}</a>` : "";
    const error = state.error ? `<div class="error">${esc(state.error.message || JSON.stringify(state.error))}</div>` : "";
    card.innerHTML = html`<div class="card"><div class="kv">
      <div>job</div><div><a href="#/jobs/${esc(job.id)}">${esc(job.id)}</a></div>
      <div>status</div><div id="ingest-status">${badge(state.status)} ${done}</div>
      <div>progress</div><div id="ingest-progress">${bar(progress.fraction, "wide")} ${pct(progress.fraction)}
        <span class="muted">${esc(ingestProgress(progress))}</span></div></div>${error}</div>`;
  };
  draw();
  try {
    await events(`/jobs/${job.id}/events`, (kind, data) => {
      if (kind === "progress" && data.videos !== undefined) progress = data;
      else if (kind === "status") {  // it carries the job's progress as it ended: drawn with the status
        state = data;
        if (data.progress && data.progress.videos !== undefined) progress = data.progress;
      }
      draw();
    }, signal);
    // the stream sends progress at most twice a second and ends at the status: the last word is the job's
    if (isOver(state.status) && state.status !== "gone" && !signal.aborted) {
      progress = (await api("GET", `/jobs/${job.id}`)).progress || progress;
      draw();
    }
  } catch (e) { showError(card, e); }
  return isOver(state.status);
}
