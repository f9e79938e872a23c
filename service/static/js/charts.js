// Per-epoch curves on uPlot (vendored, ../vendor/README.md): a few series over one x
// axis, each point marked, dashed vertical marks (stage boundaries) with their label,
// uPlot's legend below. lineChart() draws an empty chart at once; update() redraws it
// with all the data so far, which is how a live page adds each epoch as it ends.
import uPlot from "../vendor/uPlot.esm.js";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const FONT = "11px system-ui, sans-serif", LABEL_FONT = "600 12px system-ui, sans-serif";

// spec: {title, xLabel, yLabel, series: [names], yRange: [lo, hi] (default: fit the data), format: (y) => text}
export function lineChart(el, spec) {
  const format = spec.format || ((y) => +y.toPrecision(3));
  let marks = [];  // [{x, label}]: the current ones, read by the draw hook on every redraw
  const axis = {font: FONT, labelFont: LABEL_FONT, stroke: "#374151", grid: {stroke: "#eef0f3"}, ticks: {show: false}};
  const chart = new uPlot({
    title: spec.title, width: inner(el), height: 300,
    // x from 0.5 to n + 0.5 (x is 1..n): no point sits on the plot's edge, half cut off
    scales: {x: {time: false, range: (u) => [0.5, (u.data[0].at(-1) ?? 1) + 0.5]},
             y: {range: spec.yRange ? () => spec.yRange : fit}},
    axes: [{...axis, label: spec.xLabel, size: 30, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500]},
           {...axis, label: spec.yLabel, size: 54, values: (u, ticks) => ticks.map(format)}],
    series: [{}, ...spec.series.map((label, i) => ({label, stroke: COLOURS[i % COLOURS.length], width: 2,
                                                    spanGaps: true, points: {size: 6}}))],  // points while there is room
    legend: {live: false},  // names only: the values are in the table of epochs
    cursor: {drag: {x: false, y: false}},  // nothing to zoom into: a handful of epochs
    hooks: {draw: [(u) => drawMarks(u, marks)]},
  }, [[], ...spec.series.map(() => [])], el);
  new ResizeObserver(() => chart.setSize({width: inner(el), height: 300})).observe(el);  // as wide as its box
  return {
    // x: [..], ys: one [..] per series (null where there is no value), marks: [{x, label}]
    update(x, ys, newMarks) {
      marks = newMarks || [];
      chart.setData([x, ...ys]);
      el.dataset.points = ys.flat().filter((y) => typeof y === "number" && isFinite(y)).length;
    },
  };
}

// the element's width inside its padding
function inner(el) {
  const style = getComputedStyle(el);
  return Math.floor(el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
}

// uPlot's own fit with 10% of room around the data; an axis from 0 to 1 before any data
const fit = (u, lo, hi) => (lo === null ? [0, 1] : uPlot.rangeNum(lo, hi, 0.1, true));

function drawMarks(u, marks) {
  const {ctx, bbox} = u, px = uPlot.pxRatio;
  ctx.save();
  ctx.font = FONT.replace("11px", `${11 * px}px`);
  ctx.fillStyle = "#6b7280"; ctx.textBaseline = "alphabetic";
  if (!u.data[0].length) {
    ctx.textAlign = "center";
    ctx.fillText("no epochs yet", bbox.left + bbox.width / 2, bbox.top + bbox.height / 2);
  }
  ctx.textAlign = "left"; ctx.strokeStyle = "#9ca3af"; ctx.lineWidth = px; ctx.setLineDash([4 * px, 3 * px]);
  for (const {x, label} of marks) {
    const at = Math.round(u.valToPos(x, "x", true)) + 0.5;
    ctx.beginPath(); ctx.moveTo(at, bbox.top); ctx.lineTo(at, bbox.top + bbox.height); ctx.stroke();
    ctx.fillText(label, at + 4 * px, bbox.top + 12 * px);
  }
  ctx.restore();
}
