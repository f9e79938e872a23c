// The fpar-serve dashboard: plain JavaScript over the public API (the same calls as curl
// and the CLI), routed by the URL's hash. Live pages read the server-sent event streams
// through fetch, so the API key travels in the Authorization header as everywhere else.
"use strict";

const view = document.getElementById("view");
const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("fpar-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("fpar-api-key", keyInput.value.trim()); route(); });

let leaving = [];  // what the current page must stop when another one opens (timers, streams)
const onLeave = (fn) => leaving.push(fn);

// -- the API ---------------------------------------------------------------------------
function headers(extra) {
  const key = localStorage.getItem("fpar-api-key");
  return Object.assign(key ? {Authorization: `Bearer ${key}`} : {}, extra || {});
}

class ApiError extends Error {}

async function api(method, path, body, options) {
  const init = {method, headers: headers(), ...(options || {})};
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, init);
  if (r.status >= 400) {
    let text = `${r.status} ${r.statusText}`;
    try {
      const p = await r.json();
      text = `${p.title || r.status}: ${p.detail || ""}`;
      if (p.errors) text += "\n" + p.errors.map((e) => `  ${e.loc.join(".")}: ${e.msg}`).join("\n");
    } catch (e) { /* not a problem document */ }
    throw new ApiError(text);
  }
  const type = r.headers.get("content-type") || "";
  if (type.includes("json")) return r.json();
  if (type.startsWith("image/")) return URL.createObjectURL(await r.blob());
  return r.status === 204 ? null : r.text();
}

// Server-sent events through fetch (EventSource cannot send the API key): calls
// handler(kind, data) per event until the final status. A stream that breaks first (a
// gateway restarting, say) is resumed from the last event's id, as EventSource would.
async function events(path, handler) {
  const controller = new AbortController();
  onLeave(() => controller.abort());
  let lastId = null;
  for (;;) {
    try {
      const extra = {Accept: "text/event-stream", ...(lastId ? {"Last-Event-ID": lastId} : {})};
      const r = await fetch(path, {headers: headers(extra), signal: controller.signal});
      if (r.status >= 400 && r.status < 500) throw new ApiError(`${r.status}: ${(await r.json()).detail}`);
      if (r.ok && await readEvents(r, (kind, data, id) => { lastId = id || lastId; handler(kind, data); })) return;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (controller.signal.aborted) return;  // left the page
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (controller.signal.aborted) return;
  }
}

// true once the final status came
async function readEvents(response, handler) {
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return false;
    buffer += decoder.decode(chunk.value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let kind = "message", id = null, data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (!data.length) continue;
      const value = JSON.parse(data.join("\n"));
      handler(kind, value, id);
      if (kind === "status" && ["succeeded", "failed", "cancelled", "gone"].includes(value.status)) return true;
    }
  }
}

// -- helpers ---------------------------------------------------------------------------
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const badge = (status) => `<span class="badge ${esc(status)}" data-status="${esc(status)}">${esc(status)}</span>`;
const pct = (x) => (x === null || x === undefined ? "" : `${(100 * x).toFixed(1)}%`);
const fixed = (x, d = 3) => (typeof x === "number" ? x.toFixed(d) : "–");
const bar = (fraction, cls) => `<span class="bar ${cls || ""}"><div style="width:${Math.round(100 * (fraction || 0))}%"></div></span>`;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function html(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? values[i] : ""), "");
}

function showError(where, e) {
  const box = document.createElement("div");
  box.className = "error";
  box.textContent = e instanceof ApiError ? e.message : `Error: ${e.message || e}`;
  where.prepend(box);
  return box;
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  onLeave(() => clearInterval(id));
  fn();
}

// -- pages -----------------------------------------------------------------------------
async function jobsPage() {
  view.innerHTML = html`<h1>Jobs</h1>
    <p><select id="kind"><option value="">all kinds</option><option>train</option><option>predict</option></select>
    <a href="#/train">Start a training</a></p><div id="list"></div>`;
  const list = view.querySelector("#list"), kind = view.querySelector("#kind");
  kind.value = sessionStorage.getItem("jobs-kind") || "";
  const draw = async () => {
    try {
      const q = kind.value ? `&kind=${kind.value}` : "";
      const {jobs} = await api("GET", `/jobs?limit=50${q}`);
      list.innerHTML = jobs.length ? html`<table id="jobs"><tr><th>id</th><th>kind</th><th>status</th><th>progress</th>
        <th>created</th><th>result</th></tr>${jobs.map(jobRow).join("")}</table>` : `<p class="muted">No jobs yet.</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  };
  kind.addEventListener("change", () => { sessionStorage.setItem("jobs-kind", kind.value); draw(); });
  every(2000, draw);
}

function jobRow(j) {
  const r = j.result || {};
  const result = j.status === "failed" ? `<span class="muted">${esc((j.error || {}).message || "")}</span>`
    : r.model && r.best_val_acc !== undefined ? `<a href="#/models/${esc(r.model)}">${esc(r.model)}</a> val ${pct(r.best_val_acc)}`
    : r.top_k ? esc(r.top_k[0].label) : "";
  const fraction = (j.progress || {}).fraction;
  return html`<tr data-id="${esc(j.id)}"><td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.kind)}</td>
    <td>${badge(j.status)}</td><td>${fraction !== undefined ? bar(fraction) + " " + pct(fraction) : ""}</td>
    <td>${when(j.created_at)}</td><td>${result}</td></tr>`;
}

async function trainPage() {
  view.innerHTML = html`<h1>Train a model</h1><form class="card" id="train">
    <label for="preset">Preset</label><select id="preset" name="preset"></select>
    <div class="muted" id="preset-source"></div>
    <label for="dataset">Dataset (a folder in the stack's data directory)</label><input id="dataset" name="dataset" value="gtea61">
    <label for="frames">Frames per clip</label><input id="frames" name="frames" type="number" min="1" placeholder="the preset's">
    <label for="overrides">Overrides (JSON, merged onto the preset: any field of the training config)</label>
    <textarea id="overrides" name="overrides" rows="6">{}</textarea>
    <button type="submit">Train</button></form>`;
  const form = view.querySelector("#train"), select = form.querySelector("#preset");
  try {
    const presets = await api("GET", "/presets");
    select.innerHTML = presets.map((p) => `<option value="${esc(p.name)}">${esc(p.name)}</option>`).join("");
    const source = () => { form.querySelector("#preset-source").textContent = (presets.find((p) => p.name === select.value) || {}).source || ""; };
    select.addEventListener("change", source); source();
  } catch (e) { showError(form, e); }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".error").forEach((n) => n.remove());
    let body;
    try { body = JSON.parse(form.overrides.value || "{}"); } catch (e) { showError(form, new ApiError(`Overrides are not JSON: ${e.message}`)); return; }
    body.preset = select.value; body.dataset = form.dataset.value;
    if (form.frames.value) body.frames = +form.frames.value;
    try {
      const job = await api("POST", "/train", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (e) { showError(form, e); }
  });
}

async function jobPage(id) {
  view.innerHTML = html`<h1>Job ${esc(id)}</h1><div id="head" class="card"></div>
    <div class="charts"><div class="chart" id="loss"></div><div class="chart" id="acc"></div></div>
    <h2>Epochs</h2><div id="rows"></div>`;
  const head = view.querySelector("#head");
  let job;
  try { job = await api("GET", `/jobs/${id}`); } catch (e) { showError(view, e); return; }
  const rows = [];
  const drawHead = () => {
    const p = job.progress || {}, r = job.result || {};
    const where = p.stage ? `stage ${p.stage}/${p.stages}, epoch ${p.epoch}/${p.epochs}` : "";
    head.innerHTML = html`<div class="kv">
      <div>status</div><div id="status">${badge(job.status)}</div>
      <div>progress</div><div id="progress">${bar(p.fraction, "wide")} ${pct(p.fraction)} <span class="muted">${esc(where)}</span></div>
      <div>kind</div><div>${esc(job.kind)}${job.request && job.request.preset ? " · " + esc(job.request.preset) : ""}</div>
      <div>created</div><div>${when(job.created_at)}</div>
      ${r.model ? `<div>model</div><div><a id="model-link" href="#/models/${esc(r.model)}">${esc(r.model)}</a> · best val acc ${pct(r.best_val_acc)}${r.test_acc !== undefined && r.test_acc !== null ? " · test acc " + pct(r.test_acc) : ""}</div>` : ""}
      ${r.top_k ? `<div>answer</div><div>${r.top_k.map((t) => `${esc(t.label)} ${pct(t.probability)}`).join(", ")}</div>` : ""}
      </div>
      ${job.error ? `<div class="error" id="job-error">${esc(job.error.type || "")}: ${esc(job.error.message || JSON.stringify(job.error))}</div>` : ""}
      ${["queued", "running"].includes(job.status) ? `<button class="danger" id="cancel">Cancel</button>` : ""}`;
    const cancel = head.querySelector("#cancel");
    if (cancel) cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { job = await api("POST", `/jobs/${id}/cancel`); drawHead(); } catch (e) { showError(head, e); }
    });
  };
  const drawCurves = () => {
    const x = rows.map((_, i) => i + 1);
    const boundaries = rows.map((r, i) => (i && r.stage !== rows[i - 1].stage ? i + 0.5 : null)).filter((b) => b !== null);
    const pick = (k) => rows.map((r) => (typeof r[k] === "number" ? r[k] : null));
    lineChart(view.querySelector("#loss"), {title: "Loss", x, boundaries, xLabel: "epoch (all stages)",
      series: [{name: "train", values: pick("train_loss")}, {name: "validation", values: pick("val_loss")}]});
    lineChart(view.querySelector("#acc"), {title: "Accuracy", x, boundaries, yMin: 0, yMax: 1, xLabel: "epoch (all stages)",
      series: [{name: "train", values: pick("train_acc")}, {name: "validation", values: pick("val_acc")}]});
    view.querySelector("#rows").innerHTML = rows.length ? html`<table id="epochs"><tr><th>stage</th><th>epoch</th>
      <th>train loss</th><th>train acc</th><th>val loss</th><th>val acc</th><th>lr</th><th>train seconds</th></tr>
      ${rows.map((r) => `<tr><td>${r.stage}</td><td>${r.epoch}</td><td class="num">${fixed(r.train_loss)}</td>
      <td class="num">${pct(r.train_acc)}</td><td class="num">${fixed(r.val_loss)}</td><td class="num">${pct(r.val_acc)}</td>
      <td class="num">${r.lr !== undefined ? Number(r.lr).toExponential(1) : ""}</td><td class="num">${fixed(r.train_time_s, 1)}</td></tr>`).join("")}
      </table>` : `<p class="muted">No epoch has ended yet.</p>`;
  };
  drawHead(); drawCurves();
  if (job.kind !== "train") { view.querySelector(".charts").remove(); view.querySelector("#rows").previousElementSibling.remove(); }
  try {
    await events(`/jobs/${id}/events`, (kind, data) => {
      if (kind === "metrics") { rows.push(data); drawCurves(); }
      else if (kind === "progress") { job.progress = data; drawHead(); }
      else if (kind === "status") { Object.assign(job, {status: data.status, result: data.result, error: data.error}); drawHead(); }
    });
  } catch (e) { showError(view, e); }
}

async function experimentsPage() {
  const example = {name: "stage-2 learning rate", trials: 3,
    base: {preset: "egornn-attention", dataset: "gtea61"},
    grid: {"stages.1.lr": [1e-4, 2e-4]}};
  view.innerHTML = html`<h1>Experiments</h1><form class="card" id="experiment">
    <label for="body">A grid of training configs × trials (the body of POST /experiments)</label>
    <textarea id="body" rows="9">${esc(JSON.stringify(example, null, 2))}</textarea>
    <button type="submit">Run the experiment</button></form><div id="list"></div>`;
  const form = view.querySelector("#experiment"), list = view.querySelector("#list");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".error").forEach((n) => n.remove());
    try {
      const exp = await api("POST", "/experiments", JSON.parse(form.body.value));
      location.hash = `#/experiments/${exp.id}`;
    } catch (e) { showError(form, e instanceof SyntaxError ? new ApiError(`Not JSON: ${e.message}`) : e); }
  });
  every(3000, async () => {
    try {
      const {experiments} = await api("GET", "/experiments?limit=30");
      list.innerHTML = experiments.length ? html`<table><tr><th>id</th><th>name</th><th>status</th><th>runs</th><th>created</th></tr>
        ${experiments.map((e) => `<tr><td><a href="#/experiments/${esc(e.id)}">${esc(e.id)}</a></td><td>${esc(e.name)}</td>
        <td>${badge(e.status)}</td><td>${e.jobs.filter((j) => ["succeeded", "failed", "cancelled"].includes(j.status)).length}/${e.jobs.length}</td>
        <td>${when(e.created_at)}</td></tr>`).join("")}</table>` : `<p class="muted">No experiments yet.</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  });
}

async function experimentPage(id) {
  view.innerHTML = html`<h1>Experiment ${esc(id)}</h1><div class="card" id="head"></div>
    <h2>Table</h2><div id="table"></div><h2>Runs</h2><div id="runs"></div><h2>Validation curves</h2><div id="plot"></div>`;
  const draw = async () => {
    const exp = await api("GET", `/experiments/${id}`);
    const paths = Object.keys(exp.grid || {}).concat(exp.points && exp.points.length ? Object.keys(exp.points[0]) : []);
    view.querySelector("#head").innerHTML = html`<div class="kv"><div>name</div><div>${esc(exp.name)}</div>
      <div>status</div><div>${badge(exp.status)}</div><div>trials</div><div>${exp.trials}</div></div>
      ${["queued", "running"].includes(exp.status) ? `<button class="danger" id="cancel">Cancel every run</button>` : ""}`;
    const cancel = view.querySelector("#cancel");
    if (cancel) cancel.addEventListener("click", () => api("POST", `/experiments/${id}/cancel`).then(draw));
    view.querySelector("#table").innerHTML = html`<table id="exp-table"><tr>${[...new Set(paths)].map((p) => `<th>${esc(p)}</th>`).join("")}
      <th>trials</th><th>mean</th><th>std</th><th>min</th><th>max</th></tr>
      ${exp.table.map((r) => `<tr>${[...new Set(paths)].map((p) => `<td>${esc(JSON.stringify(r.point[p]))}</td>`).join("")}
      <td class="num">${r.trials}</td><td class="num">${pct(r.mean)}</td><td class="num">${pct(r.std)}</td>
      <td class="num">${pct(r.min)}</td><td class="num">${pct(r.max)}</td></tr>`).join("")}</table>`;
    view.querySelector("#runs").innerHTML = html`<table><tr><th>job</th><th>point</th><th>trial</th><th>status</th><th>best val acc</th></tr>
      ${exp.jobs.map((j) => `<tr><td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(JSON.stringify(j.point))}</td>
      <td>${j.trial}</td><td>${badge(j.status)}</td><td class="num">${pct(j.best_val_acc)}</td></tr>`).join("")}</table>`;
    return exp;
  };
  try {
    await draw();
    await events(`/experiments/${id}/events`, () => draw().catch(() => {}));
    await draw();
    const plot = await api("GET", `/experiments/${id}/plot.png`);
    view.querySelector("#plot").innerHTML = `<img class="picture" alt="validation curves" src="${plot}">`;
  } catch (e) { showError(view, e); }
}

async function modelsPage() {
  view.innerHTML = `<h1>Models</h1><div id="list"></div>`;
  try {
    const models = await api("GET", "/models");
    view.querySelector("#list").innerHTML = models.length ? html`<table id="models"><tr><th>id</th><th>preset</th><th>classes</th>
      <th>frames</th><th>size</th><th>val acc</th><th>test acc</th><th>served by</th><th>created</th></tr>
      ${models.map((m) => `<tr><td><a href="#/models/${esc(m.id)}">${esc(m.id)}</a></td><td>${esc(m.preset || m.arch)}</td>
      <td class="num">${m.classes.length}</td><td class="num">${m.frames}</td><td class="num">${m.image_size}</td>
      <td class="num">${pct(m.best_val_acc)}</td><td class="num">${pct(m.test_acc)}</td>
      <td>${esc([...new Set(m.inference.map((s) => `${s.backend} ${s.precision || ""}`))].join(", ") || "–")}</td>
      <td>${when(m.created_at)}</td></tr>`).join("")}</table>` : `<p class="muted">No models yet: <a href="#/train">train one</a>.</p>`;
  } catch (e) { showError(view, e); }
}

async function modelPage(id) {
  view.innerHTML = html`<h1>Model ${esc(id)}</h1><div class="card" id="head"></div>
    <h2>Confusion matrix (validation users)</h2><div id="confusion" class="muted">computing…</div>
    <h2>Class activation maps</h2><p>Video <input id="video" size="30"> <button id="show-cam">Show</button></p><div id="cam"></div>`;
  let m;
  try { m = await api("GET", `/models/${id}`); } catch (e) { showError(view, e); return; }
  view.querySelector("#head").innerHTML = html`<div class="kv">
    <div>preset</div><div>${esc(m.preset || m.arch)}</div><div>classes</div><div>${m.classes.length}: ${esc(m.classes.join(", "))}</div>
    <div>input</div><div>${m.frames} frames at ${m.image_size} px (${esc(m.inputs.join(" + "))})</div>
    <div>accuracy</div><div>val ${pct(m.best_val_acc)}${m.test_acc !== null ? " · test " + pct(m.test_acc) : ""}</div>
    <div>served in</div><div>${esc(m.inference_precision)} · ${esc(m.inference.map((s) => `${s.worker}: ${s.backend}${s.verified ? " (verified)" : ""}`).join("; ") || "not loaded yet")}</div>
    <div>job</div><div><a href="#/jobs/${esc(m.job_id)}">${esc(m.job_id)}</a></div>
    <div>export</div><div>${["onnx", "openvino", "torchscript"].map((f) => `<a href="#" data-format="${f}">${f}</a>`).join(" · ")}</div></div>`;
  view.querySelectorAll("[data-format]").forEach((a) => a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    a.textContent = `${a.dataset.format} (building…)`;
    try {
      const r = await fetch(`/models/${id}/export?format=${a.dataset.format}`, {headers: headers()});
      if (r.status >= 400) throw new ApiError((await r.json()).detail);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await r.blob()); link.download = `${id}-${a.dataset.format}.zip`; link.click();
    } catch (e) { showError(view.querySelector("#head"), e); }
    a.textContent = a.dataset.format;
  }));
  api("GET", `/models/${id}/confusion.png`).then((src) => {
    view.querySelector("#confusion").innerHTML = `<img class="picture" id="confusion-img" alt="confusion matrix" src="${src}">`;
  }).catch((e) => { const c = view.querySelector("#confusion"); if (c) { c.textContent = ""; showError(c, e); } });
  const video = view.querySelector("#video");
  video.value = `${(m.config && m.config.val_users || ["S2"])[0]}/${m.classes[0]}/1`;
  const cam = async () => {
    const out = view.querySelector("#cam");
    out.innerHTML = `<span class="muted">computing…</span>`;
    try { out.innerHTML = `<img class="picture" alt="CAMs" src="${await api("GET", `/models/${id}/cam.png?video=${encodeURIComponent(video.value)}`)}">`; }
    catch (e) { out.innerHTML = ""; showError(out, e); }
  };
  view.querySelector("#show-cam").addEventListener("click", cam);
  if (m.inputs.includes("rgb")) cam(); else view.querySelector("#show-cam").disabled = true;
}

async function predictPage() {
  view.innerHTML = html`<h1>Predict</h1><form class="card" id="predict">
    <div class="drop" id="drop">Drop frames (in temporal order) or one video here, or <input type="file" id="files" multiple accept="image/*,video/*"></div>
    <div class="muted" id="chosen"></div>
    <label>Models (up to 4, compared side by side on the same clip)</label><select id="models" multiple size="5"></select>
    <label for="topk">Top k</label><input id="topk" type="number" value="5" min="1" max="20">
    <label><input type="checkbox" id="explain" checked> show the class activation maps</label>
    <button type="submit" id="run">Predict</button></form><div class="models-compare" id="answers"></div>`;
  const form = view.querySelector("#predict"), select = form.querySelector("#models"), input = form.querySelector("#files");
  let files = [];
  const choose = (list) => {
    files = [...list].sort((a, b) => a.name.localeCompare(b.name, undefined, {numeric: true}));
    form.querySelector("#chosen").textContent = files.length ? `${files.length} file(s): ${files.slice(0, 4).map((f) => f.name).join(", ")}${files.length > 4 ? ", …" : ""}` : "";
  };
  input.addEventListener("change", () => choose(input.files));
  const drop = form.querySelector("#drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); choose(ev.dataTransfer.files); });
  try {
    const models = await api("GET", "/models");
    select.innerHTML = models.map((m, i) => `<option value="${esc(m.id)}" ${i === 0 ? "selected" : ""}>${esc(m.id)} · ${esc(m.preset || m.arch)} · val ${pct(m.best_val_acc)}</option>`).join("");
  } catch (e) { showError(form, e); }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".error").forEach((n) => n.remove());
    const chosen = [...select.selectedOptions].map((o) => o.value);
    if (!files.length) { showError(form, new ApiError("Choose frames or a video first.")); return; }
    if (!chosen.length || chosen.length > 4) { showError(form, new ApiError("Pick one to four models.")); return; }
    const answers = view.querySelector("#answers");
    answers.innerHTML = chosen.map((id) => `<div class="card answer" data-model="${esc(id)}"><b>${esc(id)}</b><div class="muted">running…</div></div>`).join("");
    const video = files.length === 1 && files[0].type.startsWith("video/");
    await Promise.all(chosen.map(async (id) => {
      const card = answers.querySelector(`[data-model="${id}"]`);
      const body = new FormData();
      for (const f of files) body.append(video ? "video" : "frames", f, f.name);
      body.append("model", id); body.append("top_k", form.topk.value); body.append("wait", "60");
      body.append("explain", form.explain.checked ? "true" : "false");
      try {
        const job = await api("POST", "/predict", body);
        if (job.status !== "succeeded") throw new ApiError(job.error ? job.error.message : `the prediction is ${job.status}; see job ${job.id}`);
        const top = job.result.top_k;
        card.innerHTML = html`<b>${esc(id)}</b><div class="topk">${top.map((t, i) => `<div class="${i ? "" : "first"}">
          <div class="label"><span class="action">${esc(t.label)}</span><span>${pct(t.probability)}</span></div>
          <div class="fill" style="width:${Math.max(1, Math.round(100 * t.probability))}%"></div></div>`).join("")}</div>
          ${(job.result.cams || []).length ? `<div class="cams">${job.result.cams.map((c, i) => `<img alt="CAM ${i + 1}" src="data:image/png;base64,${c}">`).join("")}</div>` : ""}`;
      } catch (e) { card.innerHTML = `<b>${esc(id)}</b>`; showError(card, e); }
    }));
  });
}

// -- routing ---------------------------------------------------------------------------
const ROUTES = [
  [/^#\/jobs\/([\w-]+)$/, jobPage], [/^#\/train$/, trainPage], [/^#\/experiments\/([\w-]+)$/, experimentPage],
  [/^#\/experiments$/, experimentsPage], [/^#\/models\/([\w-]+)$/, modelPage], [/^#\/models$/, modelsPage],
  [/^#\/predict$/, predictPage], [/.*/, jobsPage],
];

function route() {
  leaving.forEach((fn) => fn());
  leaving = [];
  const hash = location.hash || "#/jobs";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", hash.startsWith(a.getAttribute("href"))));
  for (const [pattern, page] of ROUTES) {
    const match = hash.match(pattern);
    if (match) { page(...match.slice(1)).catch((e) => showError(view, e)); return; }
  }
}

async function health() {
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    document.getElementById("health").textContent = r.ok ? `${body.workers.length} worker(s) ready` : body.detail;
  } catch (e) { document.getElementById("health").textContent = "gateway unreachable"; }
}

window.addEventListener("hashchange", route);
route();
health(); setInterval(health, 10000);
