// Shared by the pages: signing in (a session cookie; every write carries the session's CSRF
// token), idle logoff, API requests, live streams, refusals shown in place of a page, how
// abnormal a vital sign is, and the unresolved alarms both pages show.
"use strict";

const iomt = (() => {
  const $ = (id) => document.getElementById(id);
  const ended = "Your session ended; sign in again.";
  let me = null; // the signed-in user, with the session's CSRF token
  let lastActive = Date.now();
  // The dashboard's tabs share one session cookie: activity in one keeps the others signed in,
  // and a sign-out or sign-in in one reloads the others.
  const tabs = "BroadcastChannel" in window ? new BroadcastChannel("iomt-session") : null;
  if (tabs) {
    tabs.onmessage = ({ data }) => {
      if (data === "active") lastActive = Date.now();
      else if (data === "signed-out" && me) reopen(ended);
      else if (data === "signed-in") location.reload();
    };
  }

  function status(text, cls) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + (cls || "");
  }

  // problem reads a refusal (problem+json); anything else becomes its HTTP status.
  async function problem(r) {
    let p = {};
    try { p = await r.json(); } catch (_) { /* not JSON */ }
    return { status: r.status, code: p.code || "", detail: p.detail || p.title || r.statusText || "HTTP " + r.status };
  }

  // reopen discards the page (its patient data must not stay on screen once the session is
  // over) and loads it again, showing note above the sign-in form; after signing in, the page
  // opens where it was.
  function reopen(note) {
    me = null;
    history.replaceState({ signInNote: note }, "");
    location.reload();
  }

  // request sends an API call with the session cookie; writes carry the CSRF token. A refusal
  // throws an Error with the problem's detail, status and code. A 401 means the session ended
  // (idle, signed out elsewhere): the page reopens on the sign-in form, and the call never returns.
  async function request(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (method !== "GET") init.headers["X-CSRF-Token"] = me ? me.csrf : "";
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.ok) {
      const text = await r.text();
      return text ? JSON.parse(text) : null;
    }
    const p = await problem(r);
    if (r.status === 401 && me && await sessionGone()) {
      reopen(ended);
      await new Promise(() => {});
    }
    throw Object.assign(new Error(p.detail), p);
  }

  // sessionGone asks /api/v1/me whether the session really ended: a 401 from one endpoint while
  // the session lives would otherwise reload the page for ever.
  async function sessionGone() {
    try {
      return (await fetch("/api/v1/me", { credentials: "same-origin" })).status === 401;
    } catch (_) {
      return false; // unreachable: the next call will tell
    }
  }

  // api GETs path, or POSTs body as JSON when one is given.
  const api = (path, body) => body === undefined ? request("GET", path) : request("POST", path, body);

  // signIn shows the sign-in form (and the single sign-on button when the server has it) and
  // resolves with the user once the server accepts the login, password and, when it asks for
  // one, the second factor's code. The password goes only in the request's body.
  function signIn(config, note) {
    const form = $("signin-form"), message = $("signin-message"), codeRow = $("code-row");
    const login = $("login"), password = $("password"), code = $("code"), button = $("signin");
    $("signin-box").hidden = false;
    message.textContent = note || "";
    message.className = "error";
    form.hidden = !config.password;
    if (config.sso) {
      $("sso").href = "/auth/oidc/login?return=" + encodeURIComponent(location.pathname + location.search);
      $("sso").hidden = false;
    }
    const askCode = (ask) => {
      codeRow.hidden = !ask;
      code.required = ask;
      code.value = "";
      if (ask) code.focus();
    };
    status("signed out");
    (config.password ? login : $("sso")).focus();
    return new Promise((resolve) => {
      form.onsubmit = async (e) => {
        e.preventDefault();
        const body = { login: login.value.trim(), password: password.value };
        if (!codeRow.hidden) body.code = code.value.trim();
        button.disabled = true;
        try {
          const r = await fetch("/api/v1/auth/signin", { method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
          if (r.ok) {
            password.value = code.value = "";
            $("signin-box").hidden = true;
            resolve(await r.json());
            return;
          }
          const p = await problem(r);
          message.textContent = p.detail;
          message.className = p.code === "code-required" ? "note" : "error";
          if (p.code === "code-required" || p.code === "bad-code") askCode(true);
          else {
            askCode(false);
            password.value = "";
            password.focus();
          }
        } catch (err) {
          message.textContent = "Cannot reach iomt: " + err.message;
          message.className = "error";
        } finally {
          button.disabled = false;
        }
      };
    });
  }

  // signOut ends the session (on every device with everywhere) and reopens the page on the
  // sign-in form. If the server does not confirm, the page stays and says so: a nurse walking
  // away must not believe she signed out when she did not.
  async function signOut(everywhere, note) {
    try {
      const r = await fetch("/api/v1/auth/signout" + (everywhere ? "?everywhere=true" : ""), {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": me.csrf } });
      if (!r.ok && r.status !== 401) throw new Error((await problem(r)).detail);
    } catch (e) {
      status("signing out failed: " + e.message, "error");
      return false;
    }
    if (tabs) tabs.postMessage("signed-out");
    reopen(note);
    return true;
  }

  // watchIdle is the automatic logoff: after the session's idle timeout without a key, click,
  // touch or mouse move in any of the dashboard's tabs, the page signs out. While the user is
  // active, a request now and then tells the server, which ends idle sessions on its own.
  function watchIdle(seconds) {
    const idleMs = (seconds > 0 ? seconds : 900) * 1000;
    const span = idleMs >= 60000 ? Math.round(idleMs / 60000) + " min" : Math.round(idleMs / 1000) + " s";
    let told = Date.now(), shared = 0, leaving = false;
    const active = () => {
      const now = Date.now();
      lastActive = now;
      if (tabs && now - shared > 5000) {
        shared = now;
        tabs.postMessage("active");
      }
      if (now - told > Math.min(60000, idleMs / 3)) {
        told = now;
        request("GET", "/api/v1/me").then((u) => { if (u && u.csrf) me.csrf = u.csrf; }, () => {});
      }
    };
    for (const ev of ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"]) {
      addEventListener(ev, active, { capture: true, passive: true });
    }
    // Checked often rather than timed once: timers sleep in background tabs and suspended laptops.
    setInterval(async () => {
      if (leaving || Date.now() - lastActive < idleMs) return;
      leaving = true;
      leaving = await signOut(false, `Your session ended after ${span} without activity; sign in again.`);
    }, 5000);
  }

  function signedIn(user) {
    me = user;
    document.body.dataset.auth = "in";
    const roles = document.createElement("span");
    roles.className = "sub";
    roles.textContent = (user.roles || []).join(", ");
    $("whoami").replaceChildren(user.name || user.login, " ", roles);
    $("whoami").title = "signed in as " + user.login;
    $("signout").onclick = () => signOut(false, "You signed out.");
    $("signout-everywhere").onclick = () => signOut(true, "You signed out on every device.");
    watchIdle(user.idleTimeoutSeconds);
  }

  // start runs the page once someone is signed in: at once with a live session, else after
  // the sign-in form.
  async function start(run) {
    const note = history.state && history.state.signInNote;
    if (note) history.replaceState(null, "");
    const get = (path) => fetch(path, { credentials: "same-origin" });
    let config, user;
    try {
      const [c, m] = await Promise.all([get("/api/v1/auth/config"), get("/api/v1/me")]);
      if (!c.ok) throw new Error((await problem(c)).detail);
      config = await c.json();
      if (m.ok) user = await m.json();
      else if (m.status !== 401) throw new Error((await problem(m)).detail);
    } catch (e) {
      status("cannot reach iomt: " + e.message, "error");
      return;
    }
    if (!user) {
      user = await signIn(config, note);
      if (tabs) tabs.postMessage("signed-in");
    }
    signedIn(user);
    status("connecting…");
    run();
  }

  // denied shows a refusal (403 access-denied) in place of the page's content: its detail says
  // why, and how to get access. With breakGlass (a patient outside the user's care teams) it
  // offers emergency access: the stated reason is posted to that path, and the page reloads.
  function denied(err, breakGlass) {
    document.querySelector("main").hidden = true;
    $("denied").hidden = false;
    $("denied-detail").textContent = err.message;
    status("access refused", "error");
    const form = $("break-glass-form");
    if (!breakGlass || !form) return;
    form.hidden = false;
    form.onsubmit = async (e) => {
      e.preventDefault();
      const reason = $("break-glass-reason").value.trim(), out = $("break-glass-error");
      if (reason.length < 10) {
        out.textContent = "Say why, in at least 10 characters: the reason is recorded and reviewed.";
        return;
      }
      $("break-glass").disabled = true;
      try {
        await request("POST", breakGlass, { reason });
        location.reload();
      } catch (e) {
        out.textContent = "Emergency access refused: " + e.message;
        $("break-glass").disabled = false;
      }
    };
  }

  // stream follows a Server-Sent Events endpoint (the session cookie goes with it) and calls
  // handlers[event](data) for each event named there; onOpen runs at each (re)connection, when
  // the page should re-read what it missed. The browser reconnects after a dropped connection;
  // after a refusal the stream is tried again less and less often, unless the session ended.
  function stream(path, handlers, onOpen) {
    let pause = 2000;
    (function connect() {
      const es = new EventSource(path);
      for (const [name, fn] of Object.entries(handlers)) es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
      es.onopen = () => {
        pause = 2000;
        if (onOpen) onOpen();
      };
      es.onerror = () => {
        status("reconnecting…", "error");
        if (es.readyState !== EventSource.CLOSED) return;
        const again = () => setTimeout(connect, pause);
        request("GET", "/api/v1/me").then(again, again);
        pause = Math.min(2 * pause, 60000);
      };
    })();
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

  return { start, status, api, request, denied, stream, vitals, vitalCell, showVital, priorities, rank, alarmOrder, alarmBook, clock, ago };
})();
