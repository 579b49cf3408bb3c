// The patient page: live numbers, alarms (alarms.js), a live ECG strip drawn like 25 mm/s
// paper, and the last hour.
"use strict";

(() => {
  const id = new URLSearchParams(location.search).get("id");
  const ecgCode = "MDC_ECG_ELEC_POTL_II";
  const windowMs = 8000;                 // strip width
  const pxPerMm = 96 / 25.4;             // CSS pixels are 1/96 inch
  const pxPerS = 25 * pxPerMm, pxPerMv = 10 * pxPerMm;
  const yMin = -1.0, yMax = 2.0;         // mV shown
  const latest = new Map();
  const ecg = { t: [], v: [], playhead: 0, last: 0, plot: null };
  const trends = new Map();              // code -> { plot, x: [], ys: [[]...] }

  const cells = iomt.vitals.map(iomt.vitalCell);

  function renderVitals() {
    const now = Date.now();
    iomt.vitals.forEach((v, i) => iomt.showVital(cells[i], v, latest, now));
  }

  // ECG paper: 1 mm squares (0.04 s, 0.1 mV), darker every 5 mm.
  function drawPaper(u) {
    const ctx = u.ctx, { left, top, width, height } = u.bbox, dpr = devicePixelRatio || 1;
    ctx.save();
    ctx.fillStyle = "#fff5f5";
    ctx.fillRect(left, top, width, height);
    const mm = pxPerMm * dpr;
    for (let i = 0, x = left; x <= left + width + 0.5; i++, x += mm) {
      ctx.strokeStyle = i % 5 ? "#f6cccc" : "#e89a9a";
      ctx.lineWidth = i % 5 ? 0.5 * dpr : 1 * dpr;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
    }
    for (let i = 0, y = top + height; y >= top - 0.5; i++, y -= mm) {
      ctx.strokeStyle = i % 5 ? "#f6cccc" : "#e89a9a";
      ctx.lineWidth = i % 5 ? 0.5 * dpr : 1 * dpr;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
    }
    ctx.restore();
  }

  function makeECG() {
    const width = Math.round(windowMs / 1000 * pxPerS), height = Math.round((yMax - yMin) * pxPerMv);
    ecg.plot = new uPlot({
      width, height, legend: { show: false }, cursor: { show: false },
      padding: [0, 0, 0, 0],
      scales: { x: { time: false, range: [0, windowMs / 1000] }, y: { range: [yMin, yMax] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: "#111", width: 1.3, points: { show: false } }],
      hooks: { drawClear: [drawPaper] },
    }, [[], []], document.getElementById("ecg"));
    requestAnimationFrame(frame);
  }

  function addSegment(seg) {
    if (seg.code !== ecgCode) return;
    const t0 = Date.parse(seg.start);
    if (ecg.t.length && t0 < ecg.t[ecg.t.length - 1]) return; // late or repeated segment
    for (let i = 0; i < seg.samples.length; i++) {
      ecg.t.push(t0 + i * seg.periodMs);
      ecg.v.push(seg.samples[i] * seg.scale);
    }
    // Keep a little more than one window.
    const keepFrom = ecg.t[ecg.t.length - 1] - 3 * windowMs;
    let k = 0;
    while (k < ecg.t.length && ecg.t[k] < keepFrom) k++;
    if (k > 0) { ecg.t.splice(0, k); ecg.v.splice(0, k); }
    document.getElementById("ecg-note").textContent = "";
  }

  function lowerBound(a, x) {
    let lo = 0, hi = a.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; }
    return lo;
  }

  // The strip plays the samples back in real time about a second behind the newest one, so
  // one-second packs scroll smoothly instead of jumping.
  function frame(now) {
    const dt = ecg.last ? now - ecg.last : 0;
    ecg.last = now;
    if (ecg.t.length) {
      const end = ecg.t[ecg.t.length - 1];
      ecg.playhead += dt;
      if (ecg.playhead > end) ecg.playhead = end;
      if (ecg.playhead < end - 3000) ecg.playhead = end - 1200;
      const from = ecg.playhead - windowMs;
      const i = lowerBound(ecg.t, from), j = lowerBound(ecg.t, ecg.playhead);
      const xs = new Array(j - i), ys = ecg.v.slice(i, j);
      for (let k = i; k < j; k++) xs[k - i] = (ecg.t[k] - from) / 1000;
      // Re-apply the fixed scales each frame: without data at creation uPlot has none yet.
      ecg.plot.setData([xs, ys]);
    }
    requestAnimationFrame(frame);
  }

  const trendDefs = [
    { codes: ["8867-4"], title: "Heart rate (/min)", range: [30, 180] },
    { codes: ["59408-5"], title: "SpO₂ (%)", range: [80, 100] },
    { codes: ["9279-1"], title: "Respiratory rate (/min)", range: [0, 40] },
    { codes: ["8480-6", "8462-4"], title: "Blood pressure (mmHg)", range: [40, 200] },
    { codes: ["8310-5"], title: "Temperature (°C)", range: [34, 41] },
    { codes: ["99504-3"], title: "CGM glucose (mg/dL)", range: [40, 300] },
  ];

  async function makeTrends() {
    const from = new Date(Date.now() - 3600e3).toISOString();
    const box = document.getElementById("trends");
    // Fetch every chart's series at once, then draw the charts in order.
    const all = await Promise.all(trendDefs.map((d) => Promise.all(d.codes.map((c) =>
      iomt.api(`/api/v1/patients/${encodeURIComponent(id)}/observations?code=${encodeURIComponent(c)}&from=${from}`)))));
    for (const [n, d] of trendDefs.entries()) {
      const series = all[n];
      if (series.every((s) => s.points.length === 0)) continue;
      const div = document.createElement("div");
      box.appendChild(div);
      // One x axis for all series of the chart: the union of their times.
      const byTime = new Map();
      series.forEach((s, k) => s.points.forEach((p) => {
        const t = Date.parse(p.time) / 1000;
        if (!byTime.has(t)) byTime.set(t, d.codes.map(() => null));
        byTime.get(t)[k] = p.value;
      }));
      const x = [...byTime.keys()].sort((a, b) => a - b);
      const ys = d.codes.map((_, k) => x.map((t) => byTime.get(t)[k]));
      const plot = new uPlot({
        title: d.title, width: 420, height: 160, legend: { show: false },
        // Always the last hour, however few points there are (a cuff reads every 15 min).
        scales: { x: { range: () => [Date.now() / 1000 - 3600, Date.now() / 1000] }, y: { range: d.range } },
        axes: [{ stroke: "#8a949e", grid: { stroke: "#2a333d" } }, { stroke: "#8a949e", grid: { stroke: "#2a333d" } }],
        series: [{}, ...d.codes.map((_, k) => ({ stroke: k ? "#5dade2" : "#2ecc71", width: 1.5, spanGaps: true }))],
      }, [x, ...ys], div);
      const t = { plot, x, ys, codes: d.codes, dirty: false };
      for (const c of d.codes) trends.set(c, t);
    }
    setInterval(() => {
      for (const t of new Set(trends.values())) if (t.dirty) { t.plot.setData([t.x, ...t.ys]); t.dirty = false; }
    }, 2000);
  }

  function addTrendPoint(o) {
    const t = trends.get(o.code);
    if (!t) return;
    const x = Date.parse(o.time) / 1000, k = t.codes.indexOf(o.code);
    if (t.x.length && x < t.x[t.x.length - 1]) return;
    if (t.x.length && x === t.x[t.x.length - 1]) { t.ys[k][t.x.length - 1] = o.value; }
    else { t.x.push(x); t.ys.forEach((y, j) => y.push(j === k ? o.value : null)); }
    t.dirty = true;
  }

  async function load() {
    if (!id) { iomt.status("no patient id in the address", "error"); return; }
    let p, v;
    try {
      [p, v] = await Promise.all([iomt.api("/api/v1/patients/" + encodeURIComponent(id)), iomt.api(`/api/v1/patients/${encodeURIComponent(id)}/vitals`)]);
    } catch (e) {
      // A patient outside the user's care teams: the refusal says why, and a clinician may
      // break the glass.
      if (e.code === "access-denied") return iomt.denied(e, `/api/v1/patients/${encodeURIComponent(id)}/break-glass`);
      iomt.status("error: " + e.message, "error");
      return;
    }
    document.getElementById("pname").textContent = p.name + (p.mrn ? " · MRN " + p.mrn : "") + (p.birthDate ? " · born " + p.birthDate : "");
    document.title = "iomt — " + p.name;
    for (const o of v.vitals) latest.set(o.code, { value: o.value, time: Date.parse(o.time) });
    document.getElementById("vitals").replaceChildren(...cells);
    renderVitals();
    // Alarms first, before the slower waveform and trend requests; again when the stream opens.
    alarmPanel.load(id);
    makeECG();
    document.getElementById("ecg-note").textContent = "waiting for ECG…";
    try {
      const w = await iomt.api(`/api/v1/patients/${encodeURIComponent(id)}/waveforms?code=${ecgCode}&from=${new Date(Date.now() - 12000).toISOString()}`);
      w.segments.forEach((s) => addSegment(Object.assign({ code: w.code }, s)));
    } catch (_) { /* the live stream fills the strip */ }
    await makeTrends();
    let dirty = false;
    iomt.stream(`/api/v1/patients/${encodeURIComponent(id)}/stream`, {
      waveform: addSegment,
      alarm: alarmPanel.change,
      observation(o) {
        const cur = latest.get(o.code), t = Date.parse(o.time);
        if (!cur || t >= cur.time) latest.set(o.code, { value: o.value, time: t });
        addTrendPoint(o);
        dirty = true;
      },
    }, () => {
      iomt.status("live", "live");
      alarmPanel.load(id);
    });
    setInterval(() => { if (dirty) { renderVitals(); dirty = false; } }, 500);
  }

  iomt.start(load);
})();
