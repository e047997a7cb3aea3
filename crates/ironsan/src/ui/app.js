// The ironsan dashboard: polls GET /v1/stats every second and charts rates
// computed from consecutive samples (the server's time_ms between them).
// On the TCP API the bearer token comes from the URL fragment
// (/ui#token=...): it is kept in sessionStorage, removed from the address
// bar, and sent only in the Authorization header, never in a URL.
(function () {
  "use strict";

  const KEY = "ironsan-api-token";
  const token = (function () {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      const t = decodeURIComponent(m[1]);
      try { sessionStorage.setItem(KEY, t); } catch (e) { /* storage off */ }
      history.replaceState(null, "", location.pathname + location.search);
      return t;
    }
    try { return sessionStorage.getItem(KEY); } catch (e) { return null; }
  })();

  const $ = (id) => document.getElementById(id);
  const charts = {
    portalMbps: new IronChart($("chart-portal-mbps"), { unit: "MB/s" }),
    portalIops: new IronChart($("chart-portal-iops"), { unit: "IOPS" }),
    initiatorMbps: new IronChart($("chart-initiator-mbps"), { unit: "MB/s" }),
    initiatorIops: new IronChart($("chart-initiator-iops"), { unit: "IOPS" }),
    sessions: new IronChart($("chart-sessions"), { unit: "sessions" }),
    errors: new IronChart($("chart-errors"), { unit: "errors/s" }),
  };
  const fmt = IronChart.format;
  let prev = null;

  function status(state, text) {
    const s = $("status");
    s.dataset.state = state;
    s.textContent = text;
  }

  const bytes = (s) => s.read_bytes + s.write_bytes;
  const errors = (s) => s.errors + s.digest_errors + s.nop_timeouts + s.logins_failed;

  // Per-key rates of f between two lists of series (counter resets give 0).
  function rates(now, before, key, f, dt) {
    const old = new Map((before || []).map((x) => [x[key], x]));
    const out = {};
    for (const x of now) {
      const p = old.get(x[key]);
      out[x[key]] = p ? Math.max(f(x) - f(p), 0) / dt : 0;
    }
    return out;
  }

  function cell(tr, text) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }

  function tables(s, mbps, iops) {
    const body = $("initiators").tBodies[0];
    body.replaceChildren();
    const rows = s.initiators.slice().sort((a, b) =>
      (iops[b.initiator] || 0) - (iops[a.initiator] || 0) || b.sessions - a.sessions);
    for (const i of rows.slice(0, 12)) {
      const tr = document.createElement("tr");
      cell(tr, i.initiator);
      cell(tr, String(i.sessions));
      cell(tr, fmt(mbps[i.initiator] || 0));
      cell(tr, fmt(iops[i.initiator] || 0));
      cell(tr, String(errors(i)));
      cell(tr, i.read_latency.count ? i.read_latency.p99_us + " µs" : "-");
      cell(tr, i.write_latency.count ? i.write_latency.p99_us + " µs" : "-");
      body.appendChild(tr);
    }
    const ev = $("events").tBodies[0];
    ev.replaceChildren();
    for (const e of s.events.slice(-8).reverse()) {
      const tr = document.createElement("tr");
      cell(tr, new Date(e.at * 1000).toLocaleTimeString());
      cell(tr, e.kind);
      cell(tr, e.detail);
      ev.appendChild(tr);
    }
    if (!s.events.length) {
      const tr = document.createElement("tr");
      cell(tr, "-");
      cell(tr, "none");
      cell(tr, "");
      ev.appendChild(tr);
    }
  }

  function update(s) {
    const t = s.time_ms;
    const sessions = {};
    let totalSessions = 0, totalErrors = 0;
    for (const p of s.portals) sessions[p.portal] = p.sessions;
    for (const i of s.initiators) { totalSessions += i.sessions; totalErrors += errors(i); }
    charts.sessions.push(t, sessions);
    $("tile-sessions").textContent = String(totalSessions);
    $("tile-errors").textContent = String(totalErrors);
    $("tile-trace").textContent = s.trace || "off";
    const dt = prev ? (t - prev.time_ms) / 1000 : 0;
    if (prev && dt > 0) {
      const pm = rates(s.portals, prev.portals, "portal", bytes, dt * 1e6);
      const pi = rates(s.portals, prev.portals, "portal", (x) => x.commands.total, dt);
      const im = rates(s.initiators, prev.initiators, "initiator", bytes, dt * 1e6);
      const ii = rates(s.initiators, prev.initiators, "initiator", (x) => x.commands.total, dt);
      const ie = rates(s.initiators, prev.initiators, "initiator", errors, dt);
      charts.portalMbps.push(t, pm);
      charts.portalIops.push(t, pi);
      charts.initiatorMbps.push(t, im);
      charts.initiatorIops.push(t, ii);
      charts.errors.push(t, ie);
      const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
      const rd = rates(s.portals, prev.portals, "portal", (x) => x.read_bytes, dt * 1e6);
      const wr = rates(s.portals, prev.portals, "portal", (x) => x.write_bytes, dt * 1e6);
      $("tile-read").textContent = fmt(sum(rd));
      $("tile-write").textContent = fmt(sum(wr));
      $("tile-iops").textContent = fmt(sum(pi));
      tables(s, im, ii);
    } else {
      tables(s, {}, {});
    }
    if (!prev || t >= prev.time_ms) prev = s;
    status("ok", "updated " + new Date(t).toLocaleTimeString() + (token ? "" : " (no token)"));
  }

  async function poll() {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const r = await fetch("/v1/stats", { headers, cache: "no-store", credentials: "omit" });
      if (r.status === 401) {
        status("error", "unauthorized: open /ui#token=TOKEN (the content of data_dir/api.token)");
      } else if (!r.ok) {
        status("error", "the API answered " + r.status);
      } else {
        update(await r.json());
      }
    } catch (e) {
      status("error", "cannot reach the API: " + e.message);
    }
    setTimeout(poll, 1000);
  }

  window.addEventListener("resize", () => {
    for (const c of Object.values(charts)) c.draw();
  });
  poll();
})();
