// A small SVG line chart for per-epoch curves: several series on one axis, stage
// boundaries as dashed lines, a legend. No dependencies; `lineChart(el, spec)`.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  function node(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (parent) parent.appendChild(n);
    return n;
  }

  function ticks(lo, hi, count) {
    const span = hi - lo || 1, step0 = span / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  // spec: {title, width, height, x: [..], series: [{name, values: [..]}], boundaries: [x, ..], yMin, yMax}
  function lineChart(el, spec) {
    const W = spec.width || 460, H = spec.height || 270, m = {l: 48, r: 14, t: 28, b: 54};
    el.innerHTML = "";
    const svg = node("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
                             "aria-label": spec.title}, el);
    node("text", {x: m.l, y: 16, class: "title"}, svg).textContent = spec.title;
    const xs = spec.x, all = spec.series.flatMap((s) => s.values).filter((v) => v !== null && isFinite(v));
    if (!xs.length || !all.length) {
      node("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted"}, svg).textContent = "no epochs yet";
      return svg;
    }
    let lo = spec.yMin ?? Math.min(...all), hi = spec.yMax ?? Math.max(...all);
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
    const px = (x) => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
    const py = (y) => H - m.b - (y - lo) / (hi - lo) * (H - m.t - m.b);
    for (const t of ticks(lo, hi, 5)) {
      node("line", {x1: m.l, x2: W - m.r, y1: py(t), y2: py(t), stroke: "#eef0f3"}, svg);
      node("text", {x: m.l - 6, y: py(t) + 4, "text-anchor": "end"}, svg).textContent = +t.toPrecision(3);
    }
    for (const t of ticks(x0, x1, Math.min(8, x1 - x0)).filter(Number.isInteger)) {
      node("text", {x: px(t), y: H - m.b + 16, "text-anchor": "middle"}, svg).textContent = t;
    }
    node("text", {x: (W + m.l) / 2, y: H - m.b + 31, "text-anchor": "middle"}, svg).textContent = spec.xLabel || "epoch";
    node("line", {x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, stroke: "#9ca3af"}, svg);
    (spec.boundaries || []).forEach((b, i) => {
      node("line", {x1: px(b), x2: px(b), y1: m.t, y2: H - m.b, stroke: "#9ca3af", "stroke-dasharray": "4 3"}, svg);
      node("text", {x: px(b) + 4, y: m.t + 10, class: "muted"}, svg).textContent = `stage ${i + 2}`;
    });
    spec.series.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const pts = xs.map((x, j) => [x, s.values[j]]).filter(([, y]) => y !== null && isFinite(y));
      if (pts.length > 1) {
        node("polyline", {points: pts.map(([x, y]) => `${px(x)},${py(y)}`).join(" "), fill: "none",
                          stroke: colour, "stroke-width": 2, class: "series"}, svg);
      }
      for (const [x, y] of pts) node("circle", {cx: px(x), cy: py(y), r: 2.5, fill: colour, class: "point"}, svg);
      const lx = m.l + i * 120;
      node("rect", {x: lx, y: H - 10, width: 12, height: 4, fill: colour}, svg);
      node("text", {x: lx + 16, y: H - 5}, svg).textContent = s.name;
    });
    return svg;
  }

  window.lineChart = lineChart;
})();
