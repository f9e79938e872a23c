// The fpar-serve dashboard: plain ES modules over the public API (the same calls as curl
// and the CLI), one module per page, routed by the URL's hash. Each page gets
// {view, signal, every}: `signal` aborts when another page opens, which stops the
// page's timers (every) and event streams (api.js events), so nothing of it runs on.
import {apiKey, loadStatuses} from "./api.js";
import {showError} from "./dom.js";
import datasetPage from "./pages/dataset.js";
import datasetsPage from "./pages/datasets.js";
import experimentPage from "./pages/experiment.js";
import experimentsPage from "./pages/experiments.js";
import jobPage from "./pages/job.js";
import jobsPage from "./pages/jobs.js";
import modelPage from "./pages/model.js";
import modelsPage from "./pages/models.js";
import predictPage from "./pages/predict.js";
import timelineForm from "./pages/timeline.js";
import trainPage from "./pages/train.js";

const ROUTES = [
  [/^#\/jobs\/([\w-]+)$/, jobPage], [/^#\/train$/, trainPage], [/^#\/experiments\/([\w-]+)$/, experimentPage],
  [/^#\/experiments$/, experimentsPage], [/^#\/models\/([\w-]+)$/, modelPage], [/^#\/models$/, modelsPage],
  [/^#\/predict$/, predictPage], [/^#\/timeline$/, timelineForm], [/^#\/datasets\/([\w-]+)$/, datasetPage],
  [/^#\/datasets$/, datasetsPage],
  [/.*/, jobsPage],
];

const view = document.getElementById("view");
let leaving = new AbortController();
let ready = loadStatuses();  // pages need the job statuses; a failed read is tried again on the next page

// fn now, then every `ms` until the page is left
function every(signal, ms, fn) {
  const id = setInterval(fn, ms);
  signal.addEventListener("abort", () => clearInterval(id));
  fn();
}

function route() {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const hash = location.hash || "#/jobs";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", hash.startsWith(a.getAttribute("href"))));
  const [pattern, page] = ROUTES.find(([p]) => p.test(hash));
  view.innerHTML = "";
  ready = ready.catch(loadStatuses);
  const context = {view, signal, every: (ms, fn) => every(signal, ms, fn)};
  ready.then(() => signal.aborted || page(context, ...hash.match(pattern).slice(1))).catch((e) => showError(view, e));
}

async function health() {
  const out = document.getElementById("health");
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    out.textContent = r.ok ? `${body.workers.length} worker(s) ready` : body.detail;
  } catch (e) { out.textContent = "gateway unreachable"; }
}

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey.get();
keyInput.addEventListener("change", () => { apiKey.set(keyInput.value); route(); });
window.addEventListener("hashchange", route);
health(); setInterval(health, 10000);
route();
