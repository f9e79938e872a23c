// #/models/{id}: one model, its exports, and the server's pictures of it: the confusion
// matrix over the validation users and the class activation maps over one video.
import {api, headers, problem} from "../api.js";
import {esc, html, pct, showError} from "../dom.js";

const FORMATS = ["onnx", "openvino", "torchscript"];

export default async function modelPage({view}, id) {
  view.innerHTML = html`<h1>Model ${esc(id)}</h1>`;
  const m = await api("GET", `/models/${id}`);  // an unknown id: its error alone under the title
  view.insertAdjacentHTML("beforeend", html`<div class="card" id="head"></div>
    <h2>Confusion matrix (validation users)</h2><div id="confusion" class="muted">computing…</div>
    <h2>Class activation maps</h2><p>Video <input id="video" size="30"> <button id="show-cam">Show</button></p><div id="cam"></div>`);
  const head = view.querySelector("#head");
  head.innerHTML = summary(m);
  head.querySelectorAll("[data-format]").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault();
    download(id, a).catch((e) => showError(head, e));
  }));
  api("GET", `/models/${id}/confusion.png`).then((src) => {
    view.querySelector("#confusion").innerHTML = `<img class="picture" id="confusion-img" alt="confusion matrix" src="${src}">`;
  }).catch((e) => { const c = view.querySelector("#confusion"); if (c) { c.textContent = ""; showError(c, e); } });
  const video = view.querySelector("#video"), show = view.querySelector("#show-cam");
  video.value = `${(m.config && m.config.val_users || ["S2"])[0]}/${m.classes[0]}/1`;  // a clip it was validated on
  const cam = async () => {
    const out = view.querySelector("#cam");
    out.innerHTML = `<span class="muted">computing…</span>`;
    try {
      const src = await api("GET", `/models/${id}/cam.png?video=${encodeURIComponent(video.value)}`);
      out.innerHTML = `<img class="picture" alt="CAMs" src="${src}">`;
    } catch (e) { out.innerHTML = ""; showError(out, e); }
  };
  show.addEventListener("click", cam);
  if (m.inputs.includes("rgb")) cam(); else show.disabled = true;  // CAMs are of the RGB stream
}

const servedIn = (m) => m.inference.map((s) => `${s.worker}: ${s.backend}${s.verified ? " (verified)" : ""}`).join("; ");

const summary = (m) => html`<div class="kv">
  <div>preset</div><div>${esc(m.preset || m.arch)}</div><div>classes</div><div>${m.classes.length}: ${esc(m.classes.join(", "))}</div>
  <div>input</div><div>${m.frames} frames at ${m.image_size} px (${esc(m.inputs.join(" + "))})</div>
  <div>accuracy</div><div>val ${pct(m.best_val_acc)}${m.test_acc !== null ? " · test " + pct(m.test_acc) : ""}</div>
  <div>served in</div><div>${esc(m.inference_precision)} · ${esc(servedIn(m) || "not loaded yet")}</div>
  <div>job</div><div><a href="#/jobs/${esc(m.job_id)}">${esc(m.job_id)}</a></div>
  <div>export</div><div>${FORMATS.map((f) => `<a href="#" data-format="${f}">${f}</a>`).join(" · ")}</div></div>`;

// The export is a zip built on demand: fetched with the key, then saved from a blob.
async function download(id, a) {
  a.textContent = `${a.dataset.format} (building…)`;
  try {
    const r = await fetch(`/models/${id}/export?format=${a.dataset.format}`, {headers: headers()});
    if (r.status >= 400) throw await problem(r);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await r.blob()); link.download = `${id}-${a.dataset.format}.zip`; link.click();
  } finally { a.textContent = a.dataset.format; }
}
