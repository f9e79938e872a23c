// #/datasets/{name}: one dataset. Ready: its counts per class and user, the validation
// report (what a training would meet, errors first), one video's preview (frames, raw
// flow, warp flow, motion maps) with a picker over its videos, how it was made, and
// delete. Ingesting: the job live, then the dataset. Failed: why, and delete.
import {api} from "../api.js";
import {badge, esc, html, options, showError} from "../dom.js";
import {follow} from "./datasets.js";

const SEVERITIES = [["error", "a training that uses this stream fails on it"],
                    ["warning", "it trains, but not quite as one may expect"],
                    ["info", "ignored, as the loader ignores it"]];
const PLURAL = {error: (n) => (n > 1 ? "errors" : "error"), warning: (n) => (n > 1 ? "warnings" : "warning"), info: () => "info"};
const SHOWN_PER_KIND = 3;

export default async function datasetPage(context, name) {
  const {view, signal} = context;
  view.innerHTML = html`<h1>Dataset ${esc(name)}</h1>`;
  const d = await api("GET", `/datasets/${encodeURIComponent(name)}`);  // unknown: its error alone under the title
  view.insertAdjacentHTML("beforeend", html`<div class="card" id="head">${summary(d)}
    <button class="danger" id="delete">Delete dataset</button></div>`);
  const head = view.querySelector("#head");
  head.querySelector("#delete").addEventListener("click", () => remove(head, name));
  if (d.status === "ingesting") {
    view.insertAdjacentHTML("beforeend", `<h2>Ingest</h2><div id="ingest-job"></div>`);
    const job = await api("GET", `/jobs/${d.job}`);
    if (await follow(view.querySelector("#ingest-job"), job, name, signal) && !signal.aborted) {
      datasetPage(context, name).catch((e) => showError(view, e));  // now ready (or failed)
    }
    return;
  }
  if (d.status === "failed") {
    view.insertAdjacentHTML("beforeend", html`<div class="error" id="ingest-error">The ingest
      (<a href="#/jobs/${esc(d.job)}">${esc(d.job)}</a>) failed: ${esc((d.error || {}).message || "")}</div>`);
    return;
  }
  view.insertAdjacentHTML("beforeend", html`<h2>Videos per class and user</h2>${counts(d)}
    <h2>Validation report</h2>${report(d.report)}
    <h2>Preview</h2><p><label for="video">Video</label> <select id="video">${options(d.entries, d.entries[0])}</select>
    <span class="muted">rows: frames · raw flow · warp flow (the camera's motion removed) · motion maps</span></p><div id="preview"></div>
    ${d.manifest ? html`<h2>How it was made</h2>${manifest(d.manifest)}` : ""}`);
  const table = view.querySelector("table#report");
  if (table) toggles(table);
  const video = view.querySelector("#video");
  const preview = async () => {
    const out = view.querySelector("#preview");
    out.innerHTML = `<span class="muted">drawing…</span>`;
    try {
      const src = await api("GET", `/datasets/${encodeURIComponent(name)}/preview.png?video=${encodeURIComponent(video.value)}`);
      out.innerHTML = `<img class="picture" id="preview-img" alt="preview of ${esc(video.value)}" src="${src}">`;
    } catch (e) { out.innerHTML = ""; showError(out, e); }
  };
  video.addEventListener("change", preview);
  if (d.entries.length) preview(); else video.disabled = true;
}

async function remove(head, name) {
  if (!confirm(`Delete the dataset ${name} and every file in it?`)) return;
  try {
    await api("DELETE", `/datasets/${encodeURIComponent(name)}`);
    location.hash = "#/datasets";
  } catch (e) { showError(head, e); }
}

const yes = (v) => (v ? "yes" : "no");

function summary(d) {
  const made = d.job ? html` by <a href="#/jobs/${esc(d.job)}">${esc(d.job)}</a>` : "";
  const ready = d.status === "ready" ? html`
    <div>users</div><div>${esc(d.users.join(", "))}</div>
    <div>classes</div><div>${d.classes.length}: ${esc(d.classes.join(", "))}</div>
    <div>videos</div><div>${d.videos} (${d.frames} frames)</div>
    <div>streams</div><div>RGB · flow: ${yes(d.flow)} · motion maps: ${yes(d.maps)}</div>
    <div>errors</div><div id="errors">${d.errors}</div>` : "";
  return html`<div class="kv"><div>status</div><div id="status">${badge(d.status)}</div>
    <div>origin</div><div>${esc(d.origin)}${made}</div>${ready}</div>`;
}

// one row per class, one column per user: a class a user lacks shows as "–"
function counts(d) {
  const head = d.users.map((u) => `<th class="num">${esc(u)}</th>`).join("");
  const rows = d.classes.map((c) => {
    const n = d.users.map((u) => (d.counts[u] || {})[c] || 0);
    return html`<tr><td>${esc(c)}</td>${n.map((k) => `<td class="num${k ? "" : " muted"}">${k || "–"}</td>`).join("")}
      <td class="num">${n.reduce((a, b) => a + b, 0)}</td></tr>`;
  }).join("");
  return html`<table id="counts" class="compact"><tr><th>class</th>${head}<th class="num">all</th></tr>${rows}</table>`;
}

// The findings grouped by severity, errors first, each group saying what its severity
// means; within it by kind, the first few of a kind shown and the rest behind a toggle (an
// ingest misses every video's first map: the 4th such row says nothing new).
function report(findings) {
  if (!findings.length) return `<p id="report" class="ok">Nothing a training would trip on.</p>`;
  const tally = SEVERITIES.map(([s]) => [s, findings.filter((f) => f.severity === s).length]).filter(([, n]) => n);
  const groups = SEVERITIES.map(([severity, meaning]) => {
    const found = findings.filter((f) => f.severity === severity);
    if (!found.length) return "";
    const kinds = [...new Set(found.map((f) => f.kind))].map((kind) => {
      const same = found.filter((f) => f.kind === kind);
      const more = same.length - SHOWN_PER_KIND;
      return same.map((f, i) => finding(f, i >= SHOWN_PER_KIND)).join("") + (more > 0 ? html`<tr class="toggle">
        <td colspan="3"><a href="#" data-more="${esc(severity)}-${esc(kind)}">show ${more} more ${esc(kind)}</a></td></tr>` : "");
    }).join("");
    return html`<tr class="group"><th colspan="3">${badge(severity)} ${found.length} · <span class="muted">${esc(meaning)}</span></th></tr>${kinds}`;
  }).join("");
  return html`<p class="muted">${tally.map(([s, n]) => `${n} ${PLURAL[s](n)}`).join(" · ")}</p>
    <table id="report"><tr><th>path</th><th>kind</th><th>what the loader meets</th></tr>${groups}</table>`;
}

// one finding; the loader's messages start with the path, shown once in its own column
function finding(f, hidden) {
  const message = f.message.startsWith(`${f.path}: `) ? f.message.slice(f.path.length + 2) : f.message;
  return html`<tr data-severity="${esc(f.severity)}" data-kind="${esc(f.severity)}-${esc(f.kind)}"${hidden ? " hidden" : ""}>
    <td><code>${esc(f.path)}</code></td><td class="muted">${esc(f.kind)}</td><td>${esc(message)}</td></tr>`;
}

// "show N more": the hidden rows of that kind
function toggles(table) {
  table.querySelectorAll("[data-more]").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault();
    table.querySelectorAll(`tr[data-kind="${a.dataset.more}"]`).forEach((tr) => { tr.hidden = false; });
    a.closest("tr").remove();
  }));
}

function manifest(m) {
  const o = m.options || {};
  const skipped = (m.skipped || []).map((s) => html`<div>${esc(s.file)} ${s.start}–${s.end} s: ${esc(s.error)}</div>`).join("");
  return html`<div class="card kv" id="manifest">
    <div>source</div><div>${m.uploaded ? "an uploaded archive" : `<code>${esc(m.source)}</code>`}</div>
    <div>labels</div><div>${m.labels ? `<code>${esc(m.labels)}</code>` : "a folder tree class/video"} (${esc(m.format)}${
      m.label_from && m.label_from !== "action" ? ", label from the " + esc(m.label_from) : ""})</div>
    <div>videos</div><div>${m.videos}${(m.skipped || []).length ? `, ${m.skipped.length} skipped` : ""}</div>
    <div>frames</div><div>${o.fps ? `${o.fps} fps` : "the videos' own rate"},
      ${o.shorter_side ? `shorter side ${o.shorter_side} px` : "size as recorded"}</div>
    <div>flow</div><div>${esc(o.flow)}, bound ±${o.bound} px, ${o.warp ? "warped (camera motion removed)" : "not warped"},
      ${o.maps ? "motion maps" : "no motion maps"}</div>
    <div>tools</div><div>${Object.entries(m.tools || {}).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(" · ")}</div>
    ${skipped ? `<div>skipped</div><div>${skipped}</div>` : ""}</div>`;
}
