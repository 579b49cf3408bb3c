// The ward view: one tile a patient, live numbers coloured by how abnormal they are.
"use strict";

(() => {
  const ward = document.getElementById("ward");
  const state = new Map(); // patient id -> { tile, latest: Map(code -> {value, time}) }

  function tile(p) {
    const a = document.createElement("a");
    a.className = "tile";
    a.href = "patient.html?id=" + encodeURIComponent(p.id);
    a.dataset.patient = p.id;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = p.name;
    const mrn = document.createElement("div");
    mrn.className = "mrn";
    mrn.textContent = p.mrn ? "MRN " + p.mrn : "\u00a0";
    const grid = document.createElement("div");
    grid.className = "grid";
    for (const v of iomt.vitals) {
      const cell = document.createElement("div");
      cell.className = "vital";
      cell.dataset.code = v.code;
      cell.innerHTML = '<div class="label"></div><span class="value">–</span><span class="unit"></span>';
      cell.querySelector(".label").textContent = v.label;
      cell.querySelector(".unit").textContent = v.unit;
      grid.appendChild(cell);
    }
    a.append(name, mrn, grid);
    return a;
  }

  function render(id) {
    const s = state.get(id);
    let worst = 0;
    const now = Date.now();
    for (const v of iomt.vitals) {
      const cell = s.tile.querySelector(`[data-code="${v.code}"]`);
      const el = cell.querySelector(".value");
      let o = s.latest.get(v.code);
      for (const alt of v.also || []) {
        const a = s.latest.get(alt);
        if (a && (!o || a.time > o.time)) o = a;
      }
      if (!o) continue;
      const score = v.score(o.value);
      let text = iomt.fmt(v.code, o.value);
      if (v.pair && s.latest.get(v.pair)) text += "/" + iomt.fmt(v.pair, s.latest.get(v.pair).value);
      el.textContent = text;
      const stale = now - o.time > (v.staleMs || iomt.staleMs);
      el.className = "value " + iomt.cls(score) + (stale ? " stale" : "");
      if (!stale) worst = Math.max(worst, score);
    }
    s.tile.classList.toggle("w1", worst >= 1 && worst < 3);
    s.tile.classList.toggle("w3", worst >= 3);
  }

  function remember(id, code, value, time) {
    const s = state.get(id);
    if (!s) return false;
    const t = Date.parse(time);
    const cur = s.latest.get(code);
    if (!cur || t >= cur.time) s.latest.set(code, { value, time: t });
    if (code === "99504-3" && t > (s.alertTime || 0)) {
      const label = s.tile.querySelector('[data-code="99504-3"] .label');
      label.textContent = "CGM";
      label.className = "label";
    }
    return true;
  }

  async function load() {
    let data;
    try {
      data = await iomt.api("/api/v1/ward");
    } catch (e) {
      if (e.status === 401) return iomt.askToken(iomt.token() ? "That token was refused." : "", load);
      iomt.status("error: " + e.message, "error");
      return;
    }
    ward.replaceChildren();
    state.clear();
    for (const p of data.patients) {
      const t = tile(p);
      ward.appendChild(t);
      state.set(p.id, { tile: t, latest: new Map() });
      for (const v of p.vitals) remember(p.id, v.code, v.value, v.time);
      render(p.id);
    }
    count = data.patients.length;
    iomt.status(count + " patients", "");
    if (!started) start();
  }

  // A CGM alert (low, predicted low, ...) shows on the patient's CGM cell until the next reading.
  function showAlert(a) {
    const s = state.get(a.patient);
    if (!s) return;
    s.alertTime = Date.parse(a.time);
    const label = s.tile.querySelector('[data-code="99504-3"] .label');
    label.textContent = "CGM " + a.kind.replace("_", " ");
    label.className = "label alert";
    s.tile.classList.add(a.kind.startsWith("urgent") ? "w3" : "w1");
  }

  let count = 0, started = false, reloading = false;
  const dirty = new Set();

  function start() {
    started = true;
    iomt.stream("/api/v1/stream", (ev, o) => {
      if (ev === "cgm-alert") return showAlert(o);
      if (ev !== "observation") return;
      if (!remember(o.patient, o.code, o.value, o.time)) {
        // A patient admitted after the page loaded: reload the ward once.
        if (!reloading) {
          reloading = true;
          setTimeout(() => load().finally(() => { reloading = false; }), 1000);
        }
        return;
      }
      dirty.add(o.patient);
    }, () => iomt.status(count + " patients · live", "live"));
    // Render at most a few times a second, however fast readings arrive; re-render everything
    // every 30 s so that values turn grey when they go stale.
    setInterval(() => {
      for (const id of dirty) render(id);
      dirty.clear();
    }, 250);
    setInterval(() => { for (const id of state.keys()) render(id); }, 30000);
  }

  if (!iomt.token()) iomt.askToken("", load); else load();
})();
