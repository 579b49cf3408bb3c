// Shared by the pages: the API token, authenticated requests, a Server-Sent Events reader
// (EventSource cannot send an Authorization header), how abnormal a vital sign is, and the
// unresolved alarms both pages show.
"use strict";

const iomt = (() => {
  const key = "iomt-token";
  // A token in the URL fragment (as `iomt demo` prints it) is kept for this tab and removed
  // from the address bar, so it does not end up in history or screenshots.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(key, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem(key);

  function status(text, cls) {
    const el = document.getElementById("status");
    el.textContent = text;
    el.className = "status " + (cls || "");
  }

  function askToken(message, then) {
    const box = document.getElementById("login");
    box.hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("login-form").onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(key, document.getElementById("token").value.trim());
      box.hidden = true;
      then();
    };
  }

  // api GETs path, or POSTs body as JSON when one is given. A refusal throws an Error carrying
  // the problem's detail (problem+json) and the HTTP status, so a page can show the API's reason.
  async function api(path, body) {
    const init = { headers: { Authorization: "Bearer " + token() } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 401) throw Object.assign(new Error("unauthorised"), { status: 401 });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw Object.assign(new Error(detail), { status: r.status });
    }
    return r.json();
  }

  // stream reads an SSE endpoint with fetch and calls onEvent(name, data) for each event;
  // it reconnects after a pause when the connection ends.
  async function stream(path, onEvent, onOpen) {
    for (;;) {
      try {
        const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
        if (!r.ok) throw new Error("stream: HTTP " + r.status);
        onOpen && onOpen();
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let ev = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) ev = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) onEvent(ev, JSON.parse(data));
          }
        }
      } catch (e) {
        status("reconnecting… (" + e.message + ")", "error");
      }
      await new Promise((res) => setTimeout(res, 2000));
    }
  }

  // The vital signs a tile shows, by catalog code, with the NEWS2 (RCP 2017) single-parameter
  // bands used to colour them: 0 normal, 1–2 amber, 3 red. SpO2 uses scale 1 on air.
  const vitals = [
    { code: "8867-4", label: "HR", unit: "/min", also: ["8889-8"], score: (v) => v <= 40 ? 3 : v <= 50 ? 1 : v <= 90 ? 0 : v <= 110 ? 1 : v <= 130 ? 2 : 3 },
    { code: "59408-5", label: "SpO₂", unit: "%", also: ["2708-6"], score: (v) => v <= 91 ? 3 : v <= 93 ? 2 : v <= 95 ? 1 : 0 },
    { code: "9279-1", label: "RR", unit: "/min", score: (v) => v <= 8 ? 3 : v <= 11 ? 1 : v <= 20 ? 0 : v <= 24 ? 2 : 3 },
    { code: "8480-6", label: "BP mmHg", unit: "mmHg", pair: "8462-4", staleMs: 20 * 60 * 1000, score: (v) => v <= 90 ? 3 : v <= 100 ? 2 : v <= 110 ? 1 : v <= 219 ? 0 : 3 },
    { code: "8310-5", label: "Temp", unit: "°C", score: (v) => v <= 35.0 ? 3 : v <= 36.0 ? 1 : v <= 38.0 ? 0 : v <= 39.0 ? 1 : 2 },
    { code: "99504-3", label: "CGM", unit: "mg/dL", staleMs: 15 * 60 * 1000, score: (v) => v < 54 ? 3 : v < 70 ? 2 : v <= 180 ? 0 : v <= 250 ? 1 : 2 },
  ];
  // A value is stale after 5 minutes, or after a little more than its device's interval
  // (a cuff measures every 15 minutes, a CGM every 5).
  const staleMs = 5 * 60 * 1000;

  function cls(score) { return score >= 3 ? "v3" : score >= 1 ? "v1" : "v0"; }

  function fmt(code, v) {
    if (code === "8310-5") return v.toFixed(1);
    return Math.round(v).toString();
  }

  // vitalCell builds the empty cell a page shows one of the vitals in.
  function vitalCell(v) {
    const cell = document.createElement("div");
    cell.className = "vital";
    cell.dataset.code = v.code;
    cell.innerHTML = '<div class="label"></div><span class="value">–</span><span class="unit"></span>';
    cell.querySelector(".label").textContent = v.label;
    cell.querySelector(".unit").textContent = v.unit;
    return cell;
  }

  // showVital writes the newest reading of a vital (its own code or an alternate) from latest,
  // a Map(code -> {value, time}), into its cell. It returns the reading's score, or -1 when
  // there is none or it is stale.
  function showVital(cell, v, latest, now) {
    let o = latest.get(v.code);
    for (const alt of v.also || []) {
      const a = latest.get(alt);
      if (a && (!o || a.time > o.time)) o = a;
    }
    if (!o) return -1;
    const el = cell.querySelector(".value");
    const score = v.score(o.value);
    let text = fmt(v.code, o.value);
    if (v.pair && latest.get(v.pair)) text += "/" + fmt(v.pair, latest.get(v.pair).value);
    el.textContent = text;
    const stale = now - o.time > (v.staleMs || staleMs);
    el.className = "value " + cls(score) + (stale ? " stale" : "");
    return stale ? -1 : score;
  }

  // Alarm priorities in increasing urgency; IEC 60601-1-8 colours them cyan, yellow and red.
  const priorities = ["low", "medium", "high"];
  const rank = (p) => priorities.indexOf(p) + 1;

  // alarmOrder puts first the alarm that needs someone most: active before acknowledged, then
  // the higher priority, then the newest.
  function alarmOrder(a, b) {
    return (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1) ||
      rank(b.priority) - rank(a.priority) || Date.parse(b.raised) - Date.parse(a.raised);
  }

  // alarmBook holds the unresolved alarms by ID. A list fetched from the API and the stream's
  // changes may arrive in either order: an alarm's transitions only grow, so the copy with more
  // of them is the newer one, and a resolved alarm never comes back.
  function alarmBook() {
    const open = new Map(); // id -> { a: alarm, seen: local ms it arrived }
    const gone = new Set();
    function apply(a) {
      if (!a || !a.id || gone.has(a.id)) return false;
      const cur = open.get(a.id);
      if (cur && (cur.a.transitions || []).length > (a.transitions || []).length) return false;
      if (a.state === "resolved") {
        open.delete(a.id);
        gone.add(a.id);
        // Bounded: an alarm's resolution and its stale copies arrive within seconds of each other.
        if (gone.size > 5000) gone.delete(gone.values().next().value);
        return true;
      }
      open.set(a.id, { a, seen: Date.now() });
      return true;
    }
    return {
      apply,
      // reset takes the unresolved list fetched by a request sent at sentAt (local ms). An alarm
      // missing from it was resolved while the page was not listening, unless the stream
      // brought it after the request left.
      reset(list, sentAt) {
        const fetched = new Set(list.map((a) => a.id));
        for (const [id, e] of open) if (!fetched.has(id) && e.seen < sentAt) open.delete(id);
        list.forEach(apply);
      },
      // list gives a patient's (or every) unresolved alarm, most pressing first.
      list(patient) {
        const out = [];
        for (const { a } of open.values()) if (!patient || a.patient === patient) out.push(a);
        return out.sort(alarmOrder);
      },
    };
  }

  function clock(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }

  // ago says how long since t (ms), coarsely, as a clinician would.
  function ago(t, now) {
    const s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d";
  }

  return { token, status, askToken, api, stream, vitals, vitalCell, showVital, priorities, rank, alarmOrder, alarmBook, clock, ago };
})();
