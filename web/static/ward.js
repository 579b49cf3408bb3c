// The ward view: one tile a patient, live numbers coloured by how abnormal they are, and the
// patient's unresolved alarms in their priority colour.
"use strict";

(() => {
  const ward = document.getElementById("ward");
  const state = new Map(); // patient id -> { tile, cells: Map(code -> cell), latest: Map(code -> {value, time}) }
  const alarms = iomt.alarmBook();
  const counts = document.getElementById("alarm-counts");

  function tile(p, cells) {
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
      const cell = iomt.vitalCell(v);
      cells.set(v.code, cell);
      grid.appendChild(cell);
    }
    // The most pressing alarm's message, on a band in its priority colour.
    const line = document.createElement("div");
    line.className = "alarm-line";
    line.hidden = true;
    a.append(name, mrn, grid, line);
    return a;
  }

  function render(id) {
    const s = state.get(id);
    let worst = 0;
    const now = Date.now();
    for (const v of iomt.vitals) worst = Math.max(worst, iomt.showVital(s.cells.get(v.code), v, s.latest, now));
    s.tile.classList.toggle("w1", worst >= 1 && worst < 3);
    s.tile.classList.toggle("w3", worst >= 3);
    renderAlarms(id);
  }

  // renderAlarms colours the tile after the patient's most pressing alarm: the highest active
  // priority, or, when every alarm is acknowledged, the highest acknowledged one, muted.
  function renderAlarms(id) {
    const s = state.get(id);
    const list = alarms.list(id), top = list[0];
    for (const p of iomt.priorities) s.tile.classList.toggle("alarm-" + p, !!top && top.priority === p);
    s.tile.classList.toggle("alarm-acked", !!top && top.state !== "active");
    const line = s.tile.querySelector(".alarm-line");
    line.hidden = !top;
    if (!top) {
      delete s.tile.dataset.alarm;
      return;
    }
    s.tile.dataset.alarm = top.id;
    let text = (top.state === "active" ? "" : "ack · ") + (top.message || top.rule);
    if (list.length > 1) text += " (+" + (list.length - 1) + ")";
    line.textContent = text;
    line.title = list.map((a) => a.priority + " · " + a.state + " · " + (a.message || a.rule)).join("\n");
  }

  // renderCounts shows the ward's active (unacknowledged) alarms by priority.
  function renderCounts() {
    const n = { low: 0, medium: 0, high: 0 };
    for (const a of alarms.list()) if (a.state === "active" && state.has(a.patient)) n[a.priority]++;
    counts.replaceChildren(...[...iomt.priorities].reverse().map((p) => {
      const el = document.createElement("span");
      el.className = "count alarm-" + p + (n[p] ? "" : " none");
      el.dataset.priority = p;
      el.textContent = n[p] + " " + p;
      return el;
    }));
    counts.title = "active alarms by priority";
  }

  // loadAlarms replaces the alarms shown with the unresolved ones, each time the stream
  // (re)connects, so that nothing missed while it was down stays on screen.
  async function loadAlarms() {
    const sentAt = Date.now();
    try {
      const r = await iomt.api("/api/v1/alarms?state=unresolved&limit=10000");
      alarms.reset(r.alarms, sentAt);
    } catch (e) {
      counts.replaceChildren();
      counts.textContent = "alarms unavailable: " + e.message;
      counts.className = "alarm-counts error";
      return;
    }
    counts.className = "alarm-counts";
    for (const id of state.keys()) renderAlarms(id);
    renderCounts();
  }

  function remember(id, code, value, time) {
    const s = state.get(id);
    if (!s) return false;
    const t = Date.parse(time);
    const cur = s.latest.get(code);
    if (!cur || t >= cur.time) s.latest.set(code, { value, time: t });
    if (code === "99504-3" && t > (s.alertTime || 0)) {
      const label = s.cells.get(code).querySelector(".label");
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
      if (e.code === "access-denied") return iomt.denied(e);
      iomt.status("error: " + e.message, "error");
      return;
    }
    ward.replaceChildren();
    state.clear();
    for (const p of data.patients) {
      const cells = new Map(), t = tile(p, cells);
      ward.appendChild(t);
      state.set(p.id, { tile: t, cells, latest: new Map() });
      for (const v of p.vitals) remember(p.id, v.code, v.value, v.time);
      render(p.id);
    }
    count = data.patients.length;
    renderCounts();
    iomt.status(count + " patients", "");
    if (!started) start();
  }

  // A CGM alert (low, predicted low, ...) shows on the patient's CGM cell until the next reading.
  function showAlert(a) {
    const s = state.get(a.patient);
    if (!s) return;
    s.alertTime = Date.parse(a.time);
    const label = s.cells.get("99504-3").querySelector(".label");
    label.textContent = "CGM " + a.kind.replace("_", " ");
    label.className = "label alert";
    s.tile.classList.add(a.kind.startsWith("urgent") ? "w3" : "w1");
  }

  let count = 0, started = false, reloading = false;
  const dirty = new Set();

  // A patient admitted after the page loaded: reload the ward once.
  function admitted() {
    if (reloading) return;
    reloading = true;
    setTimeout(() => load().finally(() => { reloading = false; }), 1000);
  }

  function start() {
    started = true;
    iomt.stream("/api/v1/stream", {
      "cgm-alert": showAlert,
      alarm(o) {
        // Alarms show at once, not at the next render tick: they are what a nurse looks for.
        if (!alarms.apply(o.alarm)) return;
        // A patient not on the ward yet gets its tile with its next reading.
        if (state.has(o.alarm.patient)) renderAlarms(o.alarm.patient);
        renderCounts();
      },
      observation(o) {
        if (!remember(o.patient, o.code, o.value, o.time)) return admitted();
        dirty.add(o.patient);
      },
    }, () => {
      iomt.status(count + " patients · live", "live");
      loadAlarms();
    });
    // Render at most a few times a second, however fast readings arrive; re-render everything
    // every 30 s so that values turn grey when they go stale.
    setInterval(() => {
      for (const id of dirty) render(id);
      dirty.clear();
    }, 250);
    setInterval(() => { for (const id of state.keys()) render(id); }, 30000);
  }

  iomt.start(load);
})();
