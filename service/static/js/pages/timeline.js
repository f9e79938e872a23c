// #/timeline: the form that asks for a timeline of a long video (POST /timelines: an
// upload, or a file of the data directory), and the recent ones. timelineJob() is a
// timeline job's page (#/jobs/{id}): the video beside its segments, the strip under
// both (strip.js), live while the windows land; a click on a segment plays it from its start.
import {ApiError, api, apiKey, events, headers, isOver, problem} from "../api.js";
import {badge, bar, clearErrors, esc, html, pct, showError, when} from "../dom.js";
import {clock, colour, timelineStrip} from "../strip.js";

const FIELDS = [["window", "Window (s)"], ["stride", "Stride (s)"], ["top_k", "Top k per window"],
                ["smoothing", "Smoothing (strides)"], ["min_segment", "Shortest segment (s)"], ["threshold", "Threshold (p)"]];
const UNSET = {window: "clip length", stride: "window / 2"};  // defaults the gateway works out from the model

export default async function timelineForm({view}) {
  view.innerHTML = html`<h1>Timeline</h1><form class="card" id="timeline-form">
    <p class="muted intro">A trained model slides a window over a long video and classifies each window as it
      classifies a clip; the windows become segments of actions, which the CSV download gives as labels
      <code>POST /datasets</code> ingests.</p>
    <div class="drop" id="drop">Drop a video here, or <input type="file" id="tl-file" accept="video/*"></div>
    <div class="muted" id="chosen"></div>
    <label for="tl-source">or a video in the stack's data directory (nothing is uploaded; the page can play it)</label>
    <input id="tl-source" placeholder="recordings/kitchen.mp4" size="40">
    <div class="fields"><div class="wide"><label for="tl-model">Model</label><select id="tl-model"></select></div>
      ${FIELDS.map(([name, label]) => `<div><label for="tl-${name}">${label}</label>
        <input id="tl-${name}" name="${name}" type="number" step="any" min="0"></div>`).join("")}</div>
    <button type="submit" id="tl-submit">Make the timeline</button></form>
    <h2>Recent timelines</h2><div id="recent"></div>`;
  const form = view.querySelector("#timeline-form"), input = form.querySelector("#tl-file");
  let file = null;
  const choose = (files) => {
    file = files[0] || null;
    form.querySelector("#chosen").textContent = file ? `${file.name} · ${(file.size / 1e6).toFixed(1)} MB` : "";
  };
  input.addEventListener("change", () => choose(input.files));
  const drop = form.querySelector("#drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); choose(ev.dataTransfer.files); });
  fill(form).catch((e) => showError(form, e));
  recent(view.querySelector("#recent"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const source = form.querySelector("#tl-source").value.trim();
    if (!file && !source) { showError(form, new ApiError("Choose a video, or name one in the data directory.")); return; }
    const given = {model: form.querySelector("#tl-model").value};
    for (const [name] of FIELDS) given[name] = form.querySelector(`#tl-${name}`).value.trim();
    const fields = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== ""));
    let body;
    if (file) {
      body = new FormData();
      body.append("video", file, file.name);
      for (const [k, v] of Object.entries(fields)) body.append(k, v);
    } else {
      body = {source, ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, k === "model" ? v : Number(v)]))};
    }
    const button = form.querySelector("#tl-submit");
    button.disabled = true; button.textContent = file ? "Uploading…" : "Submitting…";
    try {
      const job = await api("POST", "/timelines", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (e) { showError(form, e); } finally { button.disabled = false; button.textContent = "Make the timeline"; }
  });
}

// the models (the newest first: the default) and what the API's schema says of each field
async function fill(form) {
  const models = await api("GET", "/models");
  form.querySelector("#tl-model").innerHTML = models.map((m) => `<option value="${esc(m.id)}">${esc(m.id)} ·
    ${esc(m.preset || m.arch)} · val ${pct(m.best_val_acc)}</option>`).join("");
  const r = await fetch("/openapi.json");  // served without a key: the contract, no data
  if (!r.ok) throw await problem(r);
  const props = (((await r.json()).components?.schemas || {}).TimelineRequest || {}).properties || {};
  for (const [name] of FIELDS) {
    const el = form.querySelector(`#tl-${name}`), p = props[name] || {};
    el.title = p.description || "";
    el.placeholder = `default: ${p.default ?? UNSET[name]}`;
  }
}

async function recent(out) {
  try {
    const {jobs} = await api("GET", "/jobs?kind=timeline&limit=10");
    out.innerHTML = jobs.length ? html`<table id="timelines"><tr><th>job</th><th>status</th><th>video</th>
      <th class="num">segments</th><th>created</th></tr>${jobs.map((j) => html`<tr data-id="${esc(j.id)}">
      <td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${badge(j.status)}</td>
      <td>${esc((j.request || {}).name)}</td><td class="num">${j.result ? j.result.segments.length : ""}</td>
      <td>${when(j.created_at)}</td></tr>`).join("")}</table>` : `<p class="muted">No timeline yet.</p>`;
  } catch (e) { showError(out, e); }
}

// A timeline job's page, live: the head (status, progress, links), the video and the
// segments' table side by side, the strip beneath; windows drawn as their events come.
export async function timelineJob({view, signal}, job) {
  const plan = job.request, duration = plan.duration_s, hours = duration >= 3600;
  view.insertAdjacentHTML("beforeend", html`<div id="head" class="card"></div>
    <div class="timeline-top"><div id="player" class="player"></div>
      <div id="segments-box"><p class="muted">The table of segments comes when every window is in; the windows so far
        are drawn below, each in the colour of its most probable class.</p></div></div>
    <div class="card" id="strip-box"></div>
    <details id="picture-box"><summary>timeline.png, as the CLI saves it</summary><div id="picture"></div></details>`);
  const head = view.querySelector("#head"), table = view.querySelector("#segments-box");
  const pictureBox = view.querySelector("#picture-box");
  const windows = new Map((job.result?.windows || []).map((w) => [w.index, w]));
  const indexOf = await classIndex(plan.options.model, windows);
  let segments = [], pending = false;
  const player = video(view.querySelector("#player"), job, (t) => { strip.setTime(t); current(t); }, signal);
  const strip = timelineStrip(view.querySelector("#strip-box"), {duration, stride: plan.options.stride,
    windows: plan.windows, threshold: plan.options.threshold, indexOf, onSeek: (t) => player.seek(t)});
  const drawWindows = () => {  // at most once a frame: a chunk brings 32 windows at once
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; strip.setWindows([...windows.values()].sort((a, b) => a.index - b.index)); });
  };
  const drawHead = () => summary(head, job, drawHead);
  const drawSegments = () => {
    segments = job.result.segments;
    strip.setSegments(segments);
    segmentTable(table, segments, hours, indexOf, (t) => player.seek(t));
  };
  // the segment being played, marked in the table
  const current = (t) => table.querySelectorAll("tr[data-start]").forEach((tr, i) =>
    tr.classList.toggle("current", segments[i] && t >= segments[i].start && t < segments[i].end));
  const drawPicture = () => { if (pictureBox.open) picture(view.querySelector("#picture"), job); };
  pictureBox.addEventListener("toggle", drawPicture);
  drawHead(); drawWindows();
  if (job.status === "succeeded") drawSegments();
  if (isOver(job.status)) return;
  try {
    await events(`/jobs/${job.id}/events`, (kind, data) => {
      if (kind === "window") { windows.set(data.index, data); drawWindows(); }
      else if (kind === "progress") { job.progress = data; drawHead(); }
      else if (kind === "status") { Object.assign(job, {status: data.status, error: data.error}); drawHead(); }
    }, signal);
    if (signal.aborted || !isOver(job.status) || job.status === "gone") return;
    Object.assign(job, await api("GET", `/jobs/${job.id}`));  // the result, with every window
    drawHead();
    if (job.status !== "succeeded") { table.innerHTML = ""; strip.note(`no segments: the job ${job.status}`); return; }
    for (const w of job.result.windows || []) windows.set(w.index, w);
    drawWindows(); drawSegments(); drawPicture();
  } catch (e) { showError(view, e); }
}

function segmentTable(out, segments, hours, indexOf, onSeek) {
  out.innerHTML = html`<table id="segments" class="segments"><tr><th>#</th><th class="num">start</th>
    <th class="num">end</th><th>action</th><th class="num">probability</th></tr>${segments.map((s, i) => html`<tr
    data-start="${s.start}" title="play from ${clock(s.start, hours)}"><td class="muted">${i + 1}</td>
    <td class="num">${clock(s.start, hours)}</td><td class="num">${clock(s.end, hours)}</td>
    <td><i class="swatch" style="background:${colour(indexOf(s.label))}"></i>${esc(s.label)}</td>
    <td class="num">${s.probability.toFixed(3)}</td></tr>`).join("")}</table>`;
  out.querySelectorAll("tr[data-start]").forEach((tr) => tr.addEventListener("click", () => onSeek(Number(tr.dataset.start))));
}

// label -> class index, as timeline.png colours them: the model's classes; for a model deleted
// since, the index its windows give (top_k has it), else the next free one
async function classIndex(model, windows) {
  const known = new Map();
  try {
    (await api("GET", `/models/${encodeURIComponent(model)}`)).classes.forEach((c, i) => known.set(c, i));
  } catch (e) { /* deleted: the windows say */ }
  return (label) => {
    if (!known.has(label)) {
      const hit = [...windows.values()].flatMap((w) => w.top_k).find((k) => k.label === label);
      known.set(label, hit ? hit.index : 1000 + known.size);
    }
    return known.get(label);
  };
}

// the head: status, progress, the video and the options; links once it succeeded, cancel until it ends
function summary(head, job, redraw) {
  const p = job.progress || {}, plan = job.request, o = plan.options, ok = job.status === "succeeded";
  const where = p.windows !== undefined ? `${p.windows_done}/${p.windows} windows · ${Number(p.seconds_done).toFixed(1)}/` +
    `${Number(p.seconds).toFixed(1)} s of video` : `${plan.windows} windows`;
  const stem = plan.name.replace(/\.[^.]*$/, "");
  const error = job.error && `${esc(job.error.type || "")}: ${esc(job.error.message || JSON.stringify(job.error))}`;
  const links = ok ? html`<div>files</div><div><a id="csv-link" href="/jobs/${esc(job.id)}/timeline?format=csv"
    data-download="${esc(stem)}-timeline.csv">segments as CSV</a> (video,label,start,end,user: POST /datasets ingests it) ·
    <a id="png-link" href="/jobs/${esc(job.id)}/timeline.png" data-download="${esc(stem)}-timeline.png">timeline.png</a></div>` : "";
  head.innerHTML = html`<div class="kv">
    <div>status</div><div id="status">${badge(job.status)}</div>
    <div>progress</div><div id="progress">${bar(p.fraction, "wide")} ${pct(p.fraction)} <span class="muted">${esc(where)}</span></div>
    <div>video</div><div>${esc(plan.name)} · ${clock(plan.duration_s, plan.duration_s >= 3600)} · ${plan.fps} fps
      ${plan.uploaded ? `<span class="muted">(uploaded)</span>` : html`<span class="muted">(<code>${esc(plan.video)}</code>)</span>`}</div>
    <div>model</div><div><a href="#/models/${esc(o.model)}">${esc(o.model)}</a> · window ${o.window} s · stride ${o.stride} s
      ${o.smoothing > 1 ? ` · smoothing ${o.smoothing}` : ""}${o.min_segment ? ` · shortest ${o.min_segment} s` : ""}${
      o.threshold ? ` · threshold ${o.threshold}` : ""}</div>
    <div>created</div><div>${when(job.created_at)}</div>${links}</div>
    ${error ? `<div class="error" id="job-error">${error}</div>` : ""}
    ${isOver(job.status) ? "" : `<button class="danger" id="cancel">Cancel</button>`}`;
  head.querySelector("#cancel")?.addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    try { Object.assign(job, await api("POST", `/jobs/${job.id}/cancel`)); redraw(); } catch (e) { showError(head, e); }
  });
  head.querySelectorAll("[data-download]").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault();
    download(a.getAttribute("href"), a.dataset.download).catch((e) => showError(head, e));
  }));
}

// The video in a <video>: the job's own (/jobs/{id}/video) when it was given a file of the
// data directory, else a picker for the user's copy, played from an object URL. A <video>
// sends no API key: where the gateway wants one, a button fetches the video with it and
// plays that copy. `data-state` on the element says how it went (playable, blocked, broken).
function video(box, job, onTime, signal) {
  const name = job.request.name;
  box.innerHTML = html`<video id="tl-video" controls preload="auto" hidden></video><div id="video-note"></div>`;
  const el = box.querySelector("video"), note = box.querySelector("#video-note");
  let frame = 0, copy = null;
  const tick = () => { onTime(el.currentTime); frame = el.paused ? 0 : requestAnimationFrame(tick); };
  el.addEventListener("play", () => { if (!frame) tick(); });
  el.addEventListener("timeupdate", () => onTime(el.currentTime));
  el.addEventListener("seeked", () => onTime(el.currentTime));
  el.addEventListener("loadedmetadata", () => { el.dataset.state = "playable"; });
  const say = (text, id = "video-error") => {
    note.querySelector(`#${id}`)?.remove();
    note.insertAdjacentHTML("beforeend", html`<div class="error" id="${id}">${esc(text)}</div>`);
  };
  // an object URL refused by the page's Content-Security-Policy (media-src), not by the decoder
  document.addEventListener("securitypolicyviolation", (ev) => {
    if (!copy || ev.effectiveDirective !== "media-src") return;
    el.dataset.state = "blocked"; el.hidden = true;
    say(`The browser refused to play ${copy}: the gateway's Content-Security-Policy does not allow media from ` +
        "blob: URLs (it needs media-src 'self' blob:). The strip and the segments still give the times.");
  }, {signal});
  el.addEventListener("error", () => setTimeout(() => {  // a refusal's report may come just after the error
    if (el.dataset.state === "blocked") return;
    if (copy) { el.dataset.state = "broken"; el.hidden = true; say(`The browser cannot decode ${copy} (${el.error?.message || "not a video it plays"}).`); }
    else direct().catch((e) => showError(note, e));
  }, 200));
  const play = (url, what) => {
    copy = what;
    el.hidden = false; el.dataset.state = "loading"; el.src = url;
  };
  const picker = (why) => {
    note.insertAdjacentHTML("afterbegin", html`<div id="video-picker" class="drop">${esc(why)}<br>Pick your copy of
      <b>${esc(name)}</b> to play it beside the timeline: <input type="file" id="tl-copy" accept="video/*"></div>`);
    note.querySelector("#tl-copy").addEventListener("change", (ev) => {
      const file = ev.target.files[0];
      if (file) play(URL.createObjectURL(file), `your copy, ${file.name}`);
    });
  };
  // the job's own video would not load: gone (a picker), or behind the API key (a button), or an error
  const direct = async () => {
    const probe = await fetch(`/jobs/${job.id}/video`, {headers: headers({Range: "bytes=0-0"})});
    el.hidden = true;
    if (probe.status === 404) { picker(`${job.request.video} is no longer in the stack's data directory.`); return; }
    if (!probe.ok) throw await problem(probe);
    if (!apiKey.get()) throw new ApiError(`The browser cannot play ${name}: ${el.error?.message || "not a video it decodes"}.`);
    const size = Number((probe.headers.get("content-range") || "").split("/")[1]) || 0;
    note.innerHTML = html`<div class="drop" id="video-fetch">This gateway wants the API key, which a &lt;video&gt;
      cannot send.<br><button type="button" id="tl-fetch">Fetch ${esc(name)} with the key${size ? ` (${(size / 1e6).toFixed(1)} MB)` : ""}
      and play it here</button></div>`;
    note.querySelector("#tl-fetch").addEventListener("click", async (ev) => {
      ev.target.disabled = true; ev.target.textContent = "Fetching…";
      try {
        const r = await fetch(`/jobs/${job.id}/video`, {headers: headers(), signal});
        if (!r.ok) throw await problem(r);
        play(URL.createObjectURL(await r.blob()), "the copy fetched with the key");
        note.querySelector("#video-fetch").remove();
      } catch (e) { if (!signal.aborted) showError(note, e); }
    });
  };
  if (job.request.uploaded) picker("The video was uploaded, and an upload is removed when its job ends.");
  else { el.hidden = false; el.src = `/jobs/${job.id}/video`; }
  return {
    seek(t) {
      onTime(t);
      if (!el.currentSrc || el.dataset.state !== "playable") return;  // the marker moves; there is nothing to play
      el.currentTime = t;
      el.play().catch(() => {});  // a play() cut short by the next click
    },
  };
}

// the file as a download, fetched with the API key the page sends
async function download(path, filename) {
  const r = await fetch(path, {headers: headers()});
  if (!r.ok) throw await problem(r);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function picture(out, job) {
  if (job.status !== "succeeded") { out.innerHTML = `<p class="muted">drawn when the job succeeds</p>`; return; }
  try {
    out.innerHTML = `<img class="picture" id="timeline-img" alt="the timeline" src="${await api("GET", `/jobs/${job.id}/timeline.png`)}">`;
  } catch (e) { showError(out, e); }
}
