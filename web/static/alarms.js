// The patient page's alarm panel: unresolved alarms with what a nurse can do about them
// (acknowledge, silence for 2 min, resolve, each with a reason; the server records who, the
// signed-in user), and the recent history with every alarm's transitions. patient.js feeds it
// the patient stream's "alarm" events.
"use strict";

const alarmPanel = (() => {
  const book = iomt.alarmBook();
  const history = new Map();    // id -> alarm, any state
  const rows = new Map();       // id -> row element of an unresolved alarm
  const opened = new Set();     // history entries the user expanded, kept open across renders
  const historyLimit = 50;
  const ops = {
    acknowledge: { label: "Acknowledge", placeholder: "why (optional), e.g. at the bedside" },
    silence: { label: "Silence 2 min", placeholder: "why, e.g. repositioning the probe" },
    resolve: { label: "Resolve", placeholder: "why, e.g. probe reattached, SpO2 back to 96 %" },
  };
  let patient = "";

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function remember(a) {
    const cur = history.get(a.id);
    if (!cur || (cur.transitions || []).length <= (a.transitions || []).length) history.set(a.id, a);
  }

  // apply takes an alarm from the API or the stream; it reports whether anything changed.
  function apply(a) {
    if (!a || a.patient !== patient) return false;
    remember(a);
    book.apply(a);
    return true;
  }

  function newRow(a) {
    const row = el("div", "alarm");
    row.dataset.alarm = a.id;
    const prio = el("span", "prio");
    const what = el("div", "what");
    what.append(el("div", "msg"), el("div", "meta"));
    const actions = el("div", "actions");
    for (const [op, o] of Object.entries(ops)) {
      const b = el("button", "", o.label);
      b.type = "button";
      b.dataset.op = op;
      b.onclick = () => ask(row, op);
      actions.appendChild(b);
    }
    const form = el("form", "reason");
    form.hidden = true;
    const why = el("input");
    why.name = "why";
    why.autocomplete = "off";
    why.setAttribute("aria-label", "reason");
    const ok = el("button", "", "");
    ok.type = "submit";
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.onclick = () => { form.hidden = true; row.querySelector(".problem").textContent = ""; };
    form.append(why, ok, cancel);
    form.onsubmit = (e) => { e.preventDefault(); act(row, form.dataset.op, why.value.trim()); };
    row.append(prio, what, actions, form, el("p", "problem error"));
    return row;
  }

  // ask opens the row's reason form for an action.
  function ask(row, op) {
    const form = row.querySelector("form.reason");
    form.dataset.op = op;
    form.querySelector('[type="submit"]').textContent = ops[op].label;
    const why = form.querySelector('[name="why"]');
    why.placeholder = ops[op].placeholder;
    why.value = ""; // each action has its own reason
    row.querySelector(".problem").textContent = "";
    form.hidden = false;
    why.focus();
  }

  // act sends the action; a refusal (say, resolving while the condition still holds) shows the
  // API's own reason under the alarm.
  async function act(row, op, why) {
    const id = row.dataset.alarm, form = row.querySelector("form.reason"), problem = row.querySelector(".problem");
    for (const b of row.querySelectorAll("button")) b.disabled = true;
    try {
      if (op === "silence") {
        const r = await iomt.api("/api/v1/alarms/silence", { alarm: id, for: "2m", why });
        r.silenced.forEach(apply);
      } else {
        apply(await iomt.api(`/api/v1/alarms/${encodeURIComponent(id)}/${op}`, { why }));
      }
      form.hidden = true;
      problem.textContent = "";
    } catch (e) {
      problem.textContent = ops[op].label + " refused: " + e.message;
    } finally {
      for (const b of row.querySelectorAll("button")) b.disabled = false;
      render();
    }
  }

  function describe(a, now) {
    const parts = ["since " + iomt.clock(Date.parse(a.raised)) + " (" + iomt.ago(Date.parse(a.raised), now) + ")"];
    parts.push(a.state);
    if (a.level > 0) parts.push("escalated to tier " + (a.level + 1));
    else parts.push("tier 1");
    if (a.silencedUntil && Date.parse(a.silencedUntil) > now) parts.push("silenced until " + iomt.clock(Date.parse(a.silencedUntil)));
    if (a.conditionActive === false) parts.push("condition cleared");
    if (a.category === "technical") parts.push("technical");
    return parts;
  }

  function renderOpen(now) {
    const list = book.list(), box = document.getElementById("alarm-list");
    for (const [id, row] of rows) {
      if (!list.some((a) => a.id === id)) { row.remove(); rows.delete(id); }
    }
    list.forEach((a, i) => {
      let row = rows.get(a.id);
      if (!row) { row = newRow(a); rows.set(a.id, row); }
      row.className = "alarm alarm-" + a.priority + (a.state === "active" ? "" : " alarm-acked");
      row.dataset.state = a.state;
      row.dataset.priority = a.priority;
      row.querySelector(".prio").textContent = a.priority;
      row.querySelector(".msg").textContent = a.message || a.rule;
      const meta = row.querySelector(".meta");
      meta.replaceChildren();
      describe(a, now).forEach((p, k) => {
        if (k) meta.append(" · ");
        meta.append(el("span", k === 1 ? "state" : "", p));
      });
      row.querySelector('[data-op="acknowledge"]').hidden = a.state !== "active";
      // Moving a row only when its place changes keeps focus in a reason being typed.
      if (box.children[i] !== row) box.insertBefore(row, box.children[i] || null);
    });
    const active = list.filter((a) => a.state === "active").length;
    document.getElementById("alarm-summary").textContent = list.length
      ? `${active} active, ${list.length - active} acknowledged` : "none unresolved";
  }

  function renderHistory() {
    const list = [...history.values()].sort((a, b) => Date.parse(b.raised) - Date.parse(a.raised)).slice(0, historyLimit);
    const box = document.getElementById("alarm-history");
    box.replaceChildren(...list.map((a) => {
      const d = el("details", "hist alarm-" + a.priority + (a.state === "active" ? "" : " alarm-acked"));
      d.dataset.alarm = a.id;
      d.open = opened.has(a.id);
      d.ontoggle = () => { if (d.open) opened.add(a.id); else opened.delete(a.id); };
      const s = el("summary");
      s.append(el("span", "prio", a.priority), " ", el("span", "", a.message || a.rule), " ",
        el("span", "sub", iomt.clock(Date.parse(a.raised)) + " · " + a.state));
      const t = el("table", "transitions");
      const head = el("tr");
      for (const h of ["when", "step", "who", "why"]) head.appendChild(el("th", "", h));
      t.appendChild(head);
      for (const tr of a.transitions || []) {
        const r = el("tr");
        r.append(el("td", "", iomt.clock(Date.parse(tr.when))), el("td", "", (tr.from ? tr.from + " → " : "") + tr.to),
          el("td", "who", tr.who), el("td", "why", tr.why || ""));
        t.appendChild(r);
      }
      d.append(s, t);
      return d;
    }));
    if (!list.length) box.textContent = "no alarms recorded";
  }

  function render() {
    renderOpen(Date.now());
    renderHistory();
  }

  // load reads the patient's unresolved alarms and recent history; call it again when the
  // stream reconnects, since changes made while it was down were not heard.
  async function load(id) {
    patient = id;
    const sentAt = Date.now(), p = encodeURIComponent(id);
    try {
      const [open, past] = await Promise.all([
        iomt.api(`/api/v1/alarms?state=unresolved&patient=${p}&limit=1000`),
        iomt.api(`/api/v1/alarms?patient=${p}&limit=${historyLimit}`),
      ]);
      past.alarms.forEach(remember);
      open.alarms.forEach(remember);
      book.reset(open.alarms, sentAt);
      document.getElementById("alarm-error").textContent = "";
    } catch (e) {
      document.getElementById("alarm-error").textContent = "alarms unavailable: " + e.message;
    }
    render();
  }

  // change takes a stream "alarm" event: {change, alarm}.
  function change(c) {
    if (apply(c.alarm)) render();
  }

  // The "since" times age; re-render now and then.
  setInterval(() => { if (patient) renderOpen(Date.now()); }, 15000);

  return { load, change };
})();
