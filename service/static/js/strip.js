// A timeline drawn in HTML: lanes over one time axis, as timeline.png draws them.
//
//   actions      ████ open_box ████░░░░██ lift_cup ██   the segments (once the job succeeded)
//   windows      ██████████████████████████████████   each window's top class, as they land
//   probability  ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~   the top class's probability (0..1)
//                0:00      0:05      0:10               m:ss, or h:mm:ss for an hour or more
//   ■ open_box ■ lift_cup                              the classes that appear
//
// A segment's label is written only where it fits (the legend names the rest); the
// current time is a marker across the lanes. Clicking a segment or a window calls
// onSeek(its start). The windows lane is a canvas: a long video has many thousands.
import {esc, html} from "./dom.js";

// The same list as fpar_models/timeline/picture.py's PALETTE, so that a class has the same
// colour on the page as in timeline.png: tab10, tab20's light shades, tab20b/c's darker ones.
const PALETTE = ("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #bcbd22 #17becf #aec7e8 #ffbb78 #98df8a " +
  "#ff9896 #c5b0d5 #c49c94 #f7b6d2 #dbdb8d #9edae5 #393b79 #5254a3 #6b6ecf #637939 #8ca252 #b5cf6b #8c6d31 #bd9e39 " +
  "#e7ba52 #843c39 #ad494a #d6616b #7b4173 #a55194 #ce6dbd #3182bd #6baed6 #9ecae1 #e6550d #fd8d3c #fdae6b #31a354 " +
  "#74c476 #a1d99b #756bb1 #9e9ac8 #bcbddc").split(" ");
const STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
const MOST_TICKS = 12;

export const colour = (index) => PALETTE[index % PALETTE.length];

// 75.25 -> "1:15.3"; with hours (a video of an hour or more) 3725 -> "1:02:05", as the CLI prints them
export function clock(seconds, hours = false) {
  if (hours) {
    const s = Math.round(Math.max(seconds, 0));
    return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }
  const tenths = Math.round(Math.max(seconds, 0) * 10);
  return `${Math.floor(tenths / 600)}:${((tenths % 600) / 10).toFixed(1).padStart(4, "0")}`;
}

// white on dark colours, black on light ones (the picture's rule)
function ink(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.299 * r + 0.587 * g + 0.114 * b < 0.55 ? "#fff" : "#111";
}

// spec: {duration, stride, windows (how many there will be), threshold, indexOf: (label) => class index,
//        onSeek: (seconds) => void}
export function timelineStrip(el, spec) {
  const {duration, indexOf} = spec, lastWindow = spec.windows - 1;
  const hours = duration >= 3600;
  const at = (t) => `${(100 * Math.min(Math.max(t, 0), duration) / duration).toFixed(4)}%`;
  el.innerHTML = html`<div class="strip">
    <div class="names"><div>actions</div><div>windows</div><div>top-class<br>probability</div></div>
    <div class="track">
      <div class="lane segments" id="lane-segments"><span class="muted empty">segments: when every window is in</span></div>
      <canvas class="lane windows" id="lane-windows"></canvas>
      <div class="lane curve"><svg id="lane-curve" viewBox="0 0 1000 100" preserveAspectRatio="none">
        <line x1="0" x2="1000" y1="50" y2="50" class="grid"></line>
        ${spec.threshold ? `<line x1="0" x2="1000" y1="${100 - 100 * spec.threshold}" y2="${100 - 100 * spec.threshold}" class="threshold"></line>` : ""}
        <polyline points=""></polyline></svg><span class="scale" style="top:1px">1</span>
        <span class="scale" style="top:calc(50% - 7px)">0.5</span><span class="scale" style="bottom:1px">0</span></div>
      <div class="axis">${ticks(duration).map((t) => `<span style="left:${at(t)}"${t > 0.95 * duration ? ` class="end"` : ""}>${
        clock(t, hours)}</span>`).join("")}</div>
      <div class="marker" id="marker" hidden></div>
    </div></div><div class="legend" id="legend"></div>`;
  const lanes = {segments: el.querySelector("#lane-segments"), windows: el.querySelector("#lane-windows")};
  const curve = el.querySelector("polyline"), marker = el.querySelector("#marker"), legend = el.querySelector("#legend");
  const shown = {segments: [], windows: []};
  const segment = (seg) => {
    const c = colour(indexOf(seg.label)), span = `${clock(seg.start, hours)}–${clock(seg.end, hours)}`;
    return html`<div class="seg" data-start="${seg.start}" style="left:${at(seg.start)};width:${at(seg.end - seg.start)};
      background:${c};color:${ink(c)}" title="${esc(seg.label)} · ${span} · p ${seg.probability.toFixed(3)}"><span>${
      esc(seg.label)}</span></div>`;
  };
  // a label only where it fits; the legend names the rest
  const fitLabels = () => el.querySelectorAll(".seg").forEach((seg) => {
    const span = seg.firstElementChild;
    seg.classList.toggle("narrow", span.offsetWidth + 8 > seg.clientWidth);
  });
  const drawLegend = () => {
    const labels = new Set([...shown.segments.map((s) => s.label), ...shown.windows.map((w) => w.top_k[0].label)]);
    legend.innerHTML = [...labels].sort((a, b) => indexOf(a) - indexOf(b)).map((label) =>
      `<span><i style="background:${colour(indexOf(label))}"></i>${esc(label)}</span>`).join("");
  };
  // each window's top class over the stride around its middle (windows overlap when the stride is
  // shorter), the first from the video's start and the last to its end
  const half = spec.stride / 2;
  const span = (w) => [w.index === 0 ? w.start : Math.max((w.start + w.end) / 2 - half, 0),
                       w.index === lastWindow ? w.end : Math.min((w.start + w.end) / 2 + half, duration)];
  const drawWindows = () => {
    const canvas = lanes.windows, px = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(canvas.clientWidth * px));
    canvas.height = Math.max(1, Math.round(canvas.clientHeight * px));
    const ctx = canvas.getContext("2d"), scale = canvas.width / duration;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const w of shown.windows) {
      const [start, end] = span(w);
      ctx.fillStyle = colour(indexOf(w.top_k[0].label));
      ctx.fillRect(Math.floor(start * scale), 0, Math.max(1, Math.ceil((end - start) * scale)), canvas.height);
    }
  };
  // the window under the pointer: the one whose middle is nearest
  const windowAt = (ev) => {
    const box = lanes.windows.getBoundingClientRect(), t = ((ev.clientX - box.left) / box.width) * duration;
    const gap = (w) => Math.abs((w.start + w.end) / 2 - t);
    return shown.windows.reduce((best, w) => (!best || gap(w) < gap(best) ? w : best), null);
  };
  lanes.windows.addEventListener("mousemove", (ev) => {
    const w = windowAt(ev);
    lanes.windows.title = w ? `window ${w.index} · ${clock(w.start, hours)}–${clock(w.end, hours)} · ` +
      w.top_k.map((k) => `${k.label} ${k.probability.toFixed(3)}`).join(", ") : "";
  });
  el.addEventListener("click", (ev) => {
    if (ev.target === lanes.windows) {
      const w = windowAt(ev);
      if (w) spec.onSeek(w.start);
      return;
    }
    const hit = ev.target.closest("[data-start]");
    if (hit) spec.onSeek(Number(hit.dataset.start));
  });
  new ResizeObserver(() => { fitLabels(); drawWindows(); }).observe(el);
  return {
    setSegments(segments) {
      shown.segments = segments;
      lanes.segments.innerHTML = segments.map(segment).join("") ||
        `<span class="muted empty">no segment: every stretch is below the threshold</span>`;
      fitLabels(); drawLegend();
    },
    setWindows(windows) {
      shown.windows = windows;
      drawWindows();
      curve.setAttribute("points", windows.map((w) => `${(1000 * (w.start + w.end) / 2 / duration).toFixed(2)},` +
                                                      `${(100 - 100 * w.top_k[0].probability).toFixed(2)}`).join(" "));
      el.dataset.windows = windows.length;
      drawLegend();
    },
    note(text) {
      lanes.segments.innerHTML = html`<span class="muted empty">${esc(text)}</span>`;
    },
    setTime(t) {
      marker.hidden = false;
      marker.style.left = at(t);
      marker.dataset.time = t.toFixed(2);
    },
  };
}

// the first round step giving at most MOST_TICKS ticks
function ticks(duration) {
  const step = STEPS.find((s) => duration / s <= MOST_TICKS) || Math.ceil(duration / MOST_TICKS / 3600) * 3600;
  const out = [];
  for (let t = 0; t <= duration + 1e-9; t += step) out.push(Math.round(t * 1000) / 1000);
  return out;
}
