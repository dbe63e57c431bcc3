// Power (W, left axis, blue) and energy so far (Wh, right axis, green) of one
// session on a canvas. points: [[t, power_w, energy_wh], ...].
"use strict";

function drawPlot(canvas, points) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#888";
  canvas.dataset.points = points.length;
  canvas.dataset.energy = points.length ? points[points.length - 1][2] : "";
  if (points.length < 2) {
    ctx.fillText("no session yet", pad, h / 2);
    return;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const pMax = Math.max(1000, ...points.map(p => p[1] || 0)) * 1.1;
  const eMax = Math.max(1, ...points.map(p => p[2] || 0)) * 1.1;
  const x = t => pad + (w - 2 * pad) * (t - t0) / Math.max(1, t1 - t0);
  const line = (i, max, colour) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, k) => {
      const y = h - pad + (2 * pad - h) * (p[i] || 0) / max;
      k ? ctx.lineTo(x(p[0]), y) : ctx.moveTo(x(p[0]), y);
    });
    ctx.stroke();
  };
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(pad, pad, w - 2 * pad, h - 2 * pad);
  line(1, pMax, "#2563eb");
  line(2, eMax, "#16a34a");
  ctx.fillStyle = "#2563eb";
  ctx.fillText((pMax / 1000).toFixed(1) + " kW", 2, pad - 4);
  ctx.fillStyle = "#16a34a";
  ctx.textAlign = "right";
  ctx.fillText(eMax.toFixed(0) + " Wh", w - 2, pad - 4);
  ctx.fillStyle = "#888";
  ctx.fillText(Math.round(t1 - t0) + " s", w - pad, h - pad + 14);
  ctx.textAlign = "left";
}
