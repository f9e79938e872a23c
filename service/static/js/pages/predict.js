// #/predict: one clip (frames in temporal order, or one video) through up to four models
// side by side, each a POST /predict that waits for its answer: top-k bars and CAMs.
import {ApiError, api} from "../api.js";
import {clearErrors, esc, html, pct, showError} from "../dom.js";

export default async function predictPage({view}) {
  view.innerHTML = html`<h1>Predict</h1><form class="card" id="predict">
    <div class="drop" id="drop">Drop frames (in temporal order) or one video here,
      or <input type="file" id="files" multiple accept="image/*,video/*"></div>
    <div class="muted" id="chosen"></div>
    <label>Models (up to 4, compared side by side on the same clip)</label><select id="models" multiple size="5"></select>
    <label for="topk">Top k</label><input id="topk" type="number" value="5" min="1" max="20">
    <label><input type="checkbox" id="explain" checked> show the class activation maps</label>
    <button type="submit" id="run">Predict</button></form><div class="models-compare" id="answers"></div>`;
  const form = view.querySelector("#predict"), select = form.querySelector("#models"), input = form.querySelector("#files");
  let files = [];
  const choose = (list) => {  // frame_10 after frame_9: the order is the clip's
    files = [...list].sort((a, b) => a.name.localeCompare(b.name, undefined, {numeric: true}));
    const names = files.slice(0, 4).map((f) => f.name).join(", ") + (files.length > 4 ? ", …" : "");
    form.querySelector("#chosen").textContent = files.length ? `${files.length} file(s): ${names}` : "";
  };
  input.addEventListener("change", () => choose(input.files));
  const drop = form.querySelector("#drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); choose(ev.dataTransfer.files); });
  try {
    const models = await api("GET", "/models");
    const label = (m) => `${esc(m.id)} · ${esc(m.preset || m.arch)} · val ${pct(m.best_val_acc)}`;
    select.innerHTML = models.map((m, i) => `<option value="${esc(m.id)}"${i ? "" : " selected"}>${label(m)}</option>`).join("");
  } catch (e) { showError(form, e); }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const chosen = [...select.selectedOptions].map((o) => o.value);
    if (!files.length) { showError(form, new ApiError("Choose frames or a video first.")); return; }
    if (!chosen.length || chosen.length > 4) { showError(form, new ApiError("Pick one to four models.")); return; }
    const answers = view.querySelector("#answers");
    answers.innerHTML = chosen.map((id) => `<div class="card answer" data-model="${esc(id)}"><b>${esc(id)}</b>
      <div class="muted">running…</div></div>`).join("");
    const body = {files, video: files.length === 1 && files[0].type.startsWith("video/"),
                  topK: form.topk.value, explain: form.explain.checked};
    await Promise.all(chosen.map((id) => answer(answers.querySelector(`[data-model="${id}"]`), id, body)));
  });
}

async function answer(card, id, {files, video, topK, explain}) {
  const body = new FormData();
  for (const f of files) body.append(video ? "video" : "frames", f, f.name);
  body.append("model", id); body.append("top_k", topK); body.append("wait", "60");
  body.append("explain", explain ? "true" : "false");
  try {
    const job = await api("POST", "/predict", body);
    if (job.status !== "succeeded") {
      throw new ApiError(job.error ? job.error.message : `the prediction is ${job.status}; see job ${job.id}`);
    }
    const bars = job.result.top_k.map((t, i) => `<div class="${i ? "" : "first"}">
      <div class="label"><span class="action">${esc(t.label)}</span><span>${pct(t.probability)}</span></div>
      <div class="fill" style="width:${Math.max(1, Math.round(100 * t.probability))}%"></div></div>`).join("");
    const cams = (job.result.cams || []).map((c, i) => `<img alt="CAM ${i + 1}" src="data:image/png;base64,${c}">`).join("");
    card.innerHTML = html`<b>${esc(id)}</b><div class="topk">${bars}</div>${cams ? `<div class="cams">${cams}</div>` : ""}`;
  } catch (e) { card.innerHTML = `<b>${esc(id)}</b>`; showError(card, e); }
}
