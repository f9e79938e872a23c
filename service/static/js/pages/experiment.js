// #/experiments/{id}: the experiment's table (mean, std over trials per point, computed
// by the server), its shared stages and runs, redrawn on each event of its stream; once
// it ends, the server's picture of the validation curves.
import {api, events, isOver} from "../api.js";
import {badge, esc, html, pct, showError} from "../dom.js";

export default async function experimentPage({view, signal}, id) {
  view.innerHTML = html`<h1>Experiment ${esc(id)}</h1>`;
  const first = await api("GET", `/experiments/${id}`);  // an unknown id: its error alone under the title
  view.insertAdjacentHTML("beforeend", html`<div class="card" id="head"></div>
    <h2>Table</h2><div id="table"></div><h2>Runs</h2><div id="runs"></div><h2>Validation curves</h2><div id="plot"></div>`);
  const show = (exp) => {
    view.querySelector("#head").innerHTML = summary(exp);
    const cancel = view.querySelector("#cancel");
    if (cancel) cancel.addEventListener("click", () => api("POST", `/experiments/${id}/cancel`).then(draw));
    view.querySelector("#table").innerHTML = table(exp);
    view.querySelector("#runs").innerHTML = runs(exp);
  };
  const draw = async () => show(await api("GET", `/experiments/${id}`));
  show(first);
  try {
    await events(`/experiments/${id}/events`, () => draw().catch(() => {}), signal);
    if (signal.aborted) return;
    await draw();
    const plot = await api("GET", `/experiments/${id}/plot.png`);
    view.querySelector("#plot").innerHTML = `<img class="picture" alt="validation curves" src="${plot}">`;
  } catch (e) { showError(view, e); }
}

const summary = (exp) => html`<div class="kv"><div>name</div><div>${esc(exp.name)}</div>
  <div>status</div><div>${badge(exp.status)}</div>
  ${exp.search ? `<div>search</div><div id="search">${esc(exp.search.method)}, ${exp.jobs.length} of
    ${exp.search.trials} trials asked, ${exp.search.parallel} at a time, ${esc(exp.search.pruner || "no")} pruner</div>`
    : `<div>trials</div><div>${exp.trials}</div>`}
  <div>epochs</div><div id="cost">${exp.search
    ? `${exp.cost.trained_epochs} trained of at most ${exp.cost.planned_epochs} (pruning stops trials early)`
    : `${exp.cost.trained_epochs} trained of ${exp.cost.planned_epochs} (${exp.cost.naive_epochs} with each run alone)`}</div></div>
  ${isOver(exp.status) ? "" : `<button class="danger" id="cancel">Cancel every run</button>`}`;

// One column per grid path (and per key of the explicit points), then the statistics.
function table(exp) {
  const paths = [...new Set(Object.keys(exp.grid || {}).concat(exp.points && exp.points.length ? Object.keys(exp.points[0]) : [],
    exp.search ? Object.keys(exp.search.space) : []))];
  return html`<table id="exp-table"><tr>${paths.map((p) => `<th>${esc(p)}</th>`).join("")}
    <th>trials</th><th>mean</th><th>std</th><th>min</th><th>max</th></tr>
    ${exp.table.map((r) => `<tr>${paths.map((p) => `<td>${esc(value(r.point[p]))}</td>`).join("")}
    <td class="num">${r.trials}</td><td class="num">${pct(r.mean)}</td><td class="num">${pct(r.std)}</td>
    <td class="num">${pct(r.min)}</td><td class="num">${pct(r.max)}</td></tr>`).join("")}</table>`;
}

// The shared stages first (each trains stages 1..k once for the runs that start from it),
// then the runs, each naming the shared stage it starts from.
const runs = (exp) => html`<table id="runs-table"><tr><th>job</th><th>point</th><th>trial</th><th>starts from</th>
  <th>status</th><th>best val acc</th></tr>
  ${exp.shared.map((s) => `<tr class="shared"><td>${link(s.id)}</td>
  <td>shared stage${s.stages > 1 ? `s 1-${s.stages}` : " 1"} of ${s.dependants.length} jobs</td><td></td>
  <td>${s.after ? link(s.after) : ""}</td><td>${badge(s.status)}</td><td class="num">${pct(s.best_val_acc)}</td></tr>`).join("")}
  ${exp.jobs.map((j) => `<tr><td>${link(j.id)}</td><td>${esc(Object.entries(j.point).map(([p, v]) => `${p}=${value(v)}`).join(", "))}</td>
  <td>${j.trial}</td><td>${j.after ? link(j.after) : ""}</td>
  <td>${badge(j.status)}${j.reason ? ` <span class="muted reason">${esc(j.reason)}</span>` : ""}</td>
  <td class="num">${pct(j.best_val_acc)}</td></tr>`).join("")}</table>`;

// a point's value as a person reads it: a sampled float to three significant digits
const value = (v) => (typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(3))) : JSON.stringify(v));

const link = (id) => `<a href="#/jobs/${esc(id)}">${esc(id)}</a>`;
