// #/train: the training form. The body is the preset's name, the dataset, the frames and
// any override as JSON, exactly the body of POST /train; the server validates it.
import {ApiError, api} from "../api.js";
import {clearErrors, esc, html, showError} from "../dom.js";

export default async function trainPage({view}) {
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
    const source = () => {
      form.querySelector("#preset-source").textContent = (presets.find((p) => p.name === select.value) || {}).source || "";
    };
    select.addEventListener("change", source); source();
  } catch (e) { showError(form, e); }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    let body;
    try { body = JSON.parse(form.overrides.value || "{}"); } catch (e) {
      showError(form, new ApiError(`Overrides are not JSON: ${e.message}`)); return;
    }
    body.preset = select.value; body.dataset = form.dataset.value;
    if (form.frames.value) body.frames = +form.frames.value;
    try {
      const job = await api("POST", "/train", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (e) { showError(form, e); }
  });
}
