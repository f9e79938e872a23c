// #/jobs/{id}: one job, live. The event stream (which first replays the rows so far)
// brings each epoch's metrics row, the progress and the status as they change.
import {api, events, isOver} from "../api.js";
import {lineChart} from "../charts.js";
import {badge, bar, esc, fixed, html, ingestProgress, pct, showError, when} from "../dom.js";
import {timelineJob} from "./timeline.js";

const EPOCHS = "epoch (all stages)";

export default async function jobPage(context, id) {
  const {view, signal} = context;
  view.innerHTML = html`<h1>Job ${esc(id)}</h1>`;
  let job = await api("GET", `/jobs/${id}`);  // an unknown id: its error alone under the title
  if (job.kind === "timeline") return timelineJob(context, job);
  view.insertAdjacentHTML("beforeend", html`<div id="head" class="card"></div>
    <div class="charts"><div class="chart" id="loss"></div><div class="chart" id="acc"></div></div>
    <h2>Epochs</h2><div id="rows"></div>`);
  const head = view.querySelector("#head"), rows = [];
  const drawHead = () => {
    head.innerHTML = summary(job);
    const cancel = head.querySelector("#cancel");
    if (cancel) cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { job = await api("POST", `/jobs/${id}/cancel`); drawHead(); } catch (e) { showError(head, e); }
    });
  };
  drawHead();
  let drawRows = () => {};
  if (job.kind === "train") drawRows = curves(view, rows);
  else view.querySelectorAll(".charts, h2, #rows").forEach((n) => n.remove());  // a prediction has no epochs
  drawRows();
  try {
    await events(`/jobs/${id}/events`, (kind, data) => {
      if (kind === "metrics") { rows.push(data); drawRows(); }
      else if (kind === "progress") { job.progress = data; drawHead(); }
      else if (kind === "status") { Object.assign(job, {status: data.status, result: data.result, error: data.error}); drawHead(); }
    }, signal);
  } catch (e) { showError(view, e); }
}

function summary(job) {
  const p = job.progress || {}, r = job.result || {};
  const where = p.stage ? `stage ${p.stage}/${p.stages}, epoch ${p.epoch}/${p.epochs}`
    : p.videos !== undefined ? ingestProgress(p) : "";
  const test = r.test_acc !== undefined && r.test_acc !== null ? " · test acc " + pct(r.test_acc) : "";
  const model = r.model && `<a id="model-link" href="#/models/${esc(r.model)}">${esc(r.model)}</a>
    · best val acc ${pct(r.best_val_acc)}${test}`;
  const error = job.error && `${esc(job.error.type || "")}: ${esc(job.error.message || JSON.stringify(job.error))}`;
  return html`<div class="kv">
    <div>status</div><div id="status">${badge(job.status)}</div>
    <div>progress</div><div id="progress">${bar(p.fraction, "wide")} ${pct(p.fraction)} <span class="muted">${esc(where)}</span></div>
    <div>kind</div><div>${esc(job.kind)}${job.request && job.request.preset ? " · " + esc(job.request.preset) : ""}</div>
    <div>created</div><div>${when(job.created_at)}</div>
    ${source(job)}
    ${model ? `<div>model</div><div>${model}</div>` : ""}
    ${r.top_k ? `<div>answer</div><div>${r.top_k.map((t) => `${esc(t.label)} ${pct(t.probability)}`).join(", ")}</div>` : ""}
    </div>
    ${error ? `<div class="error" id="job-error">${error}</div>` : ""}
    ${isOver(job.status) ? "" : `<button class="danger" id="cancel">Cancel</button>`}`;
}

// A training that starts after a stage of another model (an experiment's shared stage, or
// init_from): that model, and the job it waits for while queued.
function source(job) {
  const from = job.request && job.request.init_from;
  if (!from) return "";
  const after = job.after ? ` · after job <a href="#/jobs/${esc(job.after)}">${esc(job.after)}</a>` : "";
  return html`<div>starts from</div><div id="init-from">stage ${from.stage} of
    <a href="#/models/${esc(from.model)}">${esc(from.model)}</a>${after}</div>`;
}

// The loss and accuracy charts and the table of epochs; returns what redraws them from `rows`.
function curves(view, rows) {
  const series = ["train", "validation"];
  const loss = lineChart(view.querySelector("#loss"), {title: "Loss", xLabel: EPOCHS, yLabel: "loss", series});
  const acc = lineChart(view.querySelector("#acc"), {title: "Accuracy", xLabel: EPOCHS, yLabel: "accuracy", series,
                                                     yRange: [0, 1], format: (y) => `${Math.round(100 * y)}%`});
  return () => {
    const x = rows.map((_, i) => i + 1);
    // a dashed mark between the last epoch of a stage and the first of the next
    const marks = [];
    rows.forEach((r, i) => { if (i && r.stage !== rows[i - 1].stage) marks.push({x: i + 0.5, label: `stage ${r.stage}`}); });
    const pick = (k) => rows.map((r) => (typeof r[k] === "number" ? r[k] : null));
    loss.update(x, [pick("train_loss"), pick("val_loss")], marks);
    acc.update(x, [pick("train_acc"), pick("val_acc")], marks);
    view.querySelector("#rows").innerHTML = rows.length ? html`<table id="epochs"><tr><th>stage</th><th>epoch</th>
      <th>train loss</th><th>train acc</th><th>val loss</th><th>val acc</th><th>lr</th><th>train seconds</th><th>trained by</th></tr>
      ${rows.map(epoch).join("")}</table>` : `<p class="muted">No epoch has ended yet.</p>`;
  };
}

// rows it did not train itself (its init_from model's) are marked with that model
const epoch = (r) => html`<tr${r.from_model ? ' class="inherited"' : ""}><td>${r.stage}</td><td>${r.epoch}</td><td class="num">${fixed(r.train_loss)}</td>
  <td class="num">${pct(r.train_acc)}</td><td class="num">${fixed(r.val_loss)}</td><td class="num">${pct(r.val_acc)}</td>
  <td class="num">${r.lr !== undefined ? Number(r.lr).toExponential(1) : ""}</td><td class="num">${fixed(r.train_time_s, 1)}</td>
  <td>${r.from_model ? `<span class="muted">${esc(r.from_model)}</span>` : "this job"}</td></tr>`;
