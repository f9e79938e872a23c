// #/jobs: the newest jobs, their status and progress, refreshed every 2 s.
import {api} from "../api.js";
import {bar, badge, esc, html, pct, showError, when} from "../dom.js";

export default async function jobsPage({view, every}) {
  view.innerHTML = html`<h1>Jobs</h1>
    <p><select id="kind"><option value="">all kinds</option><option>train</option><option>predict</option><option>ingest</option><option>timeline</option></select>
    <a href="#/train">Start a training</a></p><div id="list"></div>`;
  const list = view.querySelector("#list"), kind = view.querySelector("#kind");
  kind.value = sessionStorage.getItem("jobs-kind") || "";
  const draw = async () => {
    try {
      const q = kind.value ? `&kind=${kind.value}` : "";
      const {jobs} = await api("GET", `/jobs?limit=50${q}`);
      list.innerHTML = jobs.length ? html`<table id="jobs"><tr><th>id</th><th>kind</th><th>status</th><th>progress</th>
        <th>created</th><th>result</th></tr>${jobs.map(row).join("")}</table>` : `<p class="muted">No jobs yet.</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  };
  kind.addEventListener("change", () => { sessionStorage.setItem("jobs-kind", kind.value); draw(); });
  every(2000, draw);
}

// The result column: the error of a failed job, the model a training made, a prediction's
// answer, a timeline's segments.
function result(j) {
  const r = j.result || {};
  if (j.status === "failed") return `<span class="muted">${esc((j.error || {}).message || "")}</span>`;
  if (r.model && r.best_val_acc !== undefined) {
    return `<a href="#/models/${esc(r.model)}">${esc(r.model)}</a> val ${pct(r.best_val_acc)}`;
  }
  if (r.segments) return `${r.segments.length} segment${r.segments.length === 1 ? "" : "s"} of ${esc(r.video)}`;
  return r.top_k ? esc(r.top_k[0].label) : "";
}

function row(j) {
  const fraction = (j.progress || {}).fraction;
  return html`<tr data-id="${esc(j.id)}"><td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.kind)}</td>
    <td>${badge(j.status)}</td><td>${fraction !== undefined ? bar(fraction) + " " + pct(fraction) : ""}</td>
    <td>${when(j.created_at)}</td><td>${result(j)}</td></tr>`;
}
