// Shared by the pages: the API token, authenticated requests, a Server-Sent Events reader
// (EventSource cannot send an Authorization header), and how abnormal a vital sign is.
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

  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
    if (r.status === 401) throw Object.assign(new Error("unauthorised"), { status: 401 });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
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

  return { token, status, askToken, api, stream, vitals, staleMs, cls, fmt };
})();
