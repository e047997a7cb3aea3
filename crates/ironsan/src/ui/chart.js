// ironsan's tiny line-chart library: time series on a <canvas>, one line per
// named series, a legend with the latest values, a grid with "nice" ticks.
// No dependencies. Usage:
//   const c = new IronChart(canvasElement, { unit: "MB/s", window: 120 });
//   c.push(timeMs, { "10.0.0.1:3260": 12.5, "10.0.0.2:3260": 3.1 });
// Every push updates the canvas's data-points (samples kept), data-last (the
// sum over the series of their latest values), data-max (the largest value
// kept) and data-series attributes, so tests can read charts from the DOM.
(function (global) {
  "use strict";

  const PALETTE = [
    "#2b7bb9", "#e8702a", "#3aa655", "#c8414b", "#8e63b8",
    "#8c6d31", "#d15fb1", "#6b6b6b", "#b5b82c", "#1fb3c4",
  ];

  // A round number >= v: 1, 2, 2.5 or 5 times a power of ten.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * p >= v) return m * p;
    }
    return 10 * p;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "-";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a === 0) return "0";
    if (Number.isInteger(v)) return String(v);
    return v.toFixed(2);
  }

  class IronChart {
    constructor(canvas, opts) {
      opts = opts || {};
      this.canvas = canvas;
      this.unit = opts.unit || "";
      this.window = opts.window || 120;
      this.times = [];
      this.series = new Map(); // name -> array aligned with times (null = no value)
      this.colors = new Map();
      this.max = 0;
      this.mark();
      this.draw();
    }

    color(name) {
      if (!this.colors.has(name)) {
        this.colors.set(name, PALETTE[this.colors.size % PALETTE.length]);
      }
      return this.colors.get(name);
    }

    push(t, values) {
      this.times.push(t);
      for (const name of Object.keys(values)) {
        if (!this.series.has(name)) {
          this.series.set(name, new Array(this.times.length - 1).fill(null));
          this.color(name);
        }
      }
      for (const [name, arr] of this.series) {
        const v = values[name];
        arr.push(typeof v === "number" && isFinite(v) ? v : null);
      }
      while (this.times.length > this.window) {
        this.times.shift();
        for (const arr of this.series.values()) arr.shift();
      }
      for (const [name, arr] of this.series) {
        if (arr.every((v) => v === null)) {
          this.series.delete(name);
        }
      }
      this.mark();
      this.draw();
    }

    last() {
      let sum = 0;
      for (const arr of this.series.values()) {
        const v = arr[arr.length - 1];
        if (typeof v === "number") sum += v;
      }
      return sum;
    }

    mark() {
      let max = 0;
      for (const arr of this.series.values()) {
        for (const v of arr) if (v !== null && v > max) max = v;
      }
      this.max = max;
      const d = this.canvas.dataset;
      d.points = String(this.times.length);
      d.last = String(Math.round(this.last() * 1000) / 1000);
      d.max = String(Math.round(max * 1000) / 1000);
      d.series = String(this.series.size);
    }

    draw() {
      const c = this.canvas;
      const dpr = global.devicePixelRatio || 1;
      const w = Math.max(c.clientWidth || 0, 200);
      const h = Math.max(c.clientHeight || 0, 120);
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const g = c.getContext("2d");
      if (!g) return;
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      g.font = "11px system-ui, sans-serif";
      const names = Array.from(this.series.keys());
      // Legend: one row per few series, above the plot.
      let lx = 48, ly = 12;
      const legendRows = [];
      for (const name of names) {
        const arr = this.series.get(name);
        const label = name + " " + fmt(arr[arr.length - 1]);
        const lw = g.measureText(label).width + 22;
        if (lx + lw > w - 4 && lx > 48) { lx = 48; ly += 14; }
        legendRows.push([name, label, lx, ly]);
        lx += lw;
      }
      const top = ly + 10, left = 44, right = w - 8, bottom = h - 18;
      const ymax = niceCeil(this.max * 1.08);
      // Grid and y labels.
      g.strokeStyle = "#e3e3e3";
      g.fillStyle = "#777";
      g.lineWidth = 1;
      g.textAlign = "right";
      g.textBaseline = "middle";
      for (let i = 0; i <= 4; i++) {
        const y = bottom - ((bottom - top) * i) / 4;
        g.beginPath();
        g.moveTo(left, Math.round(y) + 0.5);
        g.lineTo(right, Math.round(y) + 0.5);
        g.stroke();
        g.fillText(fmt((ymax * i) / 4), left - 4, y);
      }
      // X labels: seconds before the latest sample.
      const n = this.times.length;
      g.textAlign = "center";
      g.textBaseline = "top";
      const t0 = n ? this.times[0] : 0, t1 = n ? this.times[n - 1] : 1;
      const span = Math.max(t1 - t0, 1);
      const xOf = (t) => left + ((right - left) * (t - t0)) / span;
      if (n > 1) {
        const secs = span / 1000;
        g.fillText("-" + (secs < 10 ? secs.toFixed(1) : Math.round(secs)) + "s", left + 14, bottom + 4);
        g.fillText("now", right - 10, bottom + 4);
      }
      if (this.unit) {
        g.textAlign = "left";
        g.fillText(this.unit, 4, 2);
      }
      if (n === 0) {
        g.textAlign = "center";
        g.textBaseline = "middle";
        g.fillText("waiting for data…", (left + right) / 2, (top + bottom) / 2);
      }
      // Lines.
      g.lineWidth = 1.6;
      for (const name of names) {
        const arr = this.series.get(name);
        g.strokeStyle = this.color(name);
        g.beginPath();
        let pen = false;
        for (let i = 0; i < n; i++) {
          const v = arr[i];
          if (v === null) { pen = false; continue; }
          const x = n === 1 ? right : xOf(this.times[i]);
          const y = bottom - ((bottom - top) * Math.min(v, ymax)) / ymax;
          if (pen) g.lineTo(x, y); else g.moveTo(x, y);
          pen = true;
        }
        g.stroke();
      }
      // Legend swatches over the lines' area.
      g.textAlign = "left";
      g.textBaseline = "middle";
      for (const [name, label, x, y] of legendRows) {
        g.fillStyle = this.color(name);
        g.fillRect(x, y - 4, 12, 8);
        g.fillStyle = "#333";
        g.fillText(label, x + 16, y);
      }
    }
  }

  IronChart.format = fmt;
  global.IronChart = IronChart;
})(window);
