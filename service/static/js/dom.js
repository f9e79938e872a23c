// Small helpers that turn the API's values into HTML. Everything that comes from the API
// goes through esc(); html`` only joins strings (the values are escaped where they are made).
import {ApiError} from "./api.js";

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

export const html = (strings, ...values) =>
  strings.reduce((out, s, i) => out + s + (i < values.length ? values[i] : ""), "");

// style.css colours a badge by its status name, as the API spells it.
export const badge = (status) => `<span class="badge ${esc(status)}" data-status="${esc(status)}">${esc(status)}</span>`;
export const pct = (x) => (x === null || x === undefined ? "" : `${(100 * x).toFixed(1)}%`);
export const fixed = (x, d = 3) => (typeof x === "number" ? x.toFixed(d) : "–");
export const bar = (fraction, cls) =>
  `<span class="bar ${cls || ""}"><div style="width:${Math.round(100 * (fraction || 0))}%"></div></span>`;
// an ingest's progress (the API's IngestProgress) in words
export const ingestProgress = (p) =>
  `${p.videos_done}/${p.videos} videos · ${Number(p.seconds_done).toFixed(1)}/${Number(p.seconds).toFixed(1)} s of video`;
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
export const options = (values, selected) =>
  values.map((v) => `<option value="${esc(v)}"${v === selected ? " selected" : ""}>${esc(v)}</option>`).join("");

// An error box at the top of `where`: the server's message for an API error.
export function showError(where, e) {
  const box = document.createElement("div");
  box.className = "error";
  box.textContent = e instanceof ApiError ? e.message : `Error: ${e.message || e}`;
  where.prepend(box);
  return box;
}

export const clearErrors = (where) => where.querySelectorAll(".error").forEach((n) => n.remove());
