// #/experiments: the form that submits a grid (the body of POST /experiments as JSON)
// and the newest experiments, refreshed every 3 s.
import {ApiError, api} from "../api.js";
import {badge, clearErrors, esc, html, showError, when} from "../dom.js";

const EXAMPLE = {name: "stage-2 learning rate", trials: 3,
  base: {preset: "egornn-attention", dataset: "gtea61"},
  grid: {"stages.1.lr": [1e-4, 2e-4]}};

export default async function experimentsPage({view, every}) {
  view.innerHTML = html`<h1>Experiments</h1><form class="card" id="experiment">
    <label for="body">A grid of training configs × trials (the body of POST /experiments)</label>
    <textarea id="body" rows="9">${esc(JSON.stringify(EXAMPLE, null, 2))}</textarea>
    <button type="submit">Run the experiment</button></form><div id="list"></div>`;
  const form = view.querySelector("#experiment"), list = view.querySelector("#list");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try {
      const exp = await api("POST", "/experiments", JSON.parse(form.body.value));
      location.hash = `#/experiments/${exp.id}`;
    } catch (e) { showError(form, e instanceof SyntaxError ? new ApiError(`Not JSON: ${e.message}`) : e); }
  });
  every(3000, async () => {
    try {
      const {experiments} = await api("GET", "/experiments?limit=30");
      list.innerHTML = experiments.length ? html`<table><tr><th>id</th><th>name</th><th>status</th>
        <th>runs</th><th>created</th></tr>${experiments.map(row).join("")}</table>`
        : `<p class="muted">No experiments yet.</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  });
}

// runs ended of all: the API's own count (progress), not one made here from the jobs' statuses
const row = (e) => html`<tr><td><a href="#/experiments/${esc(e.id)}">${esc(e.id)}</a></td>
  <td>${esc(e.name)}</td><td>${badge(e.status)}</td><td>${e.progress.ended}/${e.progress.total}</td>
  <td>${when(e.created_at)}</td></tr>`;
