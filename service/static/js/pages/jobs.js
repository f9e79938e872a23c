// #/jobs: the newest jobs, their status and progress, refreshed every 2 s; filtered by
// kind and status as GET /jobs filters them (the statuses as the API's schema lists them).
import {api, statuses} from "../api.js";
import {bar, badge, esc, html, options, pct, showError, when} from "../dom.js";

export default async function jobsPage({view, every}) {
  view.innerHTML = html`<h1>Jobs</h1>
    <p><select id="kind"><option value="">all kinds</option><option>train</option><option>predict</option></select>
    <select id="status"><option value="">all statuses</option>${options(statuses.all)}</select>
    <a href="#/train">Start a training</a></p><div id="list"></div>`;
  const list = view.querySelector("#list"), filters = [...view.querySelectorAll("select")];
  const draw = async () => {
    try {
      const q = new URLSearchParams({limit: 50});
      for (const f of filters) if (f.value) q.set(f.id, f.value);
      const {jobs} = await api("GET", `/jobs?${q}`);
      const none = filters.some((f) => f.value) ? "No jobs match the filters." : "No jobs yet.";
      list.innerHTML = jobs.length ? html`<table id="jobs"><tr><th>id</th><th>kind</th><th>status</th><th>progress</th>
        <th>created</th><th>result</th></tr>${jobs.map(row).join("")}</table>` : `<p class="muted">${none}</p>`;
    } catch (e) { list.innerHTML = ""; showError(list, e); }
  };
  for (const f of filters) {  // kept while the tab is open, as the page is left and opened again
    f.value = sessionStorage.getItem(`jobs-${f.id}`) || "";
    f.addEventListener("change", () => { sessionStorage.setItem(`jobs-${f.id}`, f.value); draw(); });
  }
  every(2000, draw);
}

// The result column: the error of a failed job, the model a training made, a prediction's answer.
function result(j) {
  const r = j.result || {};
  if (j.status === "failed") return `<span class="muted">${esc((j.error || {}).message || "")}</span>`;
  if (r.model && r.best_val_acc !== undefined) {
    return `<a href="#/models/${esc(r.model)}">${esc(r.model)}</a> val ${pct(r.best_val_acc)}`;
  }
  return r.top_k ? esc(r.top_k[0].label) : "";
}

function row(j) {
  const fraction = (j.progress || {}).fraction;
  return html`<tr data-id="${esc(j.id)}"><td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.kind)}</td>
    <td>${badge(j.status)}</td><td>${fraction !== undefined ? bar(fraction) + " " + pct(fraction) : ""}</td>
    <td>${when(j.created_at)}</td><td>${result(j)}</td></tr>`;
}
