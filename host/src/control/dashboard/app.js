// The wasmhost dashboard: reads the /v1 API and /metrics with the session cookie (the
// browser never sees the token) and follows an app's log with server-sent events.
"use strict";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
// Work of the current page that must stop when another opens (timers, event streams).
let cleanups = [];

/** An element with attributes and children (strings become text, never HTML). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

async function api(path) {
  const r = await fetch("/v1" + path, { credentials: "same-origin" });
  if (r.status === 401) {
    location.href = "/dashboard";
    throw new Error("logged out");
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length
      ? rows.map((cells) => el("tr", {}, cells.map((c) => c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))))
      : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))));
}

function link(href, text) { return el("a", { href }, text); }
function status(text) { return el("span", { class: "status-" + text }, text); }
function short(digest) { return (digest || "").slice(0, 12); }
function time(t) { return t ? t.replace("T", " ").replace("Z", "") : "–"; }
function millis(a, b) {
  if (!a || !b) return "–";
  const ms = Date.parse(b) - Date.parse(a);
  return Number.isFinite(ms) ? ms + " ms" : "–";
}

function setCrumbs(...parts) {
  crumbs.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
}

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: parseFloat(m[3]) });
  }
  return out;
}

async function metrics() {
  const r = await fetch("/metrics", { credentials: "same-origin" });
  return r.ok ? parseMetrics(await r.text()) : [];
}

function logLine(line) {
  return el("span", { class: line.stream },
    el("span", { class: "time" }, time(line.time) + " "),
    `${line.function} ${line.call_id || "-"} ${line.stream}: ${line.text}\n`);
}

// ---- pages ----

async function appsPage() {
  setCrumbs("apps");
  const apps = (await api("/apps")).data;
  apps.sort((a, b) => a.name.localeCompare(b.name));
  view.replaceChildren(
    el("h1", {}, "Apps"),
    el("section", {}, table("apps", ["Name", "State", "Environment", "Version", "Updated"],
      apps.map((a) => [link("#/apps/" + a.app_id, a.name), el("span", { class: "state-" + a.state }, a.state),
        a.environment, a.version, time(a.updated_at)]))));
}

async function appPage(id) {
  const [app, versions, functions] = await Promise.all([
    api(`/apps/${id}`), api(`/apps/${id}/versions`), api(`/apps/${id}/functions`)]);
  setCrumbs(link("#/", "apps"), app.name);
  const fns = functions.data;
  const current = versions.data.find((v) => v.current);
  // Metrics name an app by the name its component gives itself, or by the app's.
  const appLabels = new Set([app.name, current && current.component].filter(Boolean));
  const ours = (m) => appLabels.has(m.labels.app) && fns.some((f) => f.name === m.labels.function);

  const instances = el("tbody");
  const chart = svg("svg", { class: "chart", id: "chart", viewBox: "0 0 600 180", preserveAspectRatio: "none" });
  const totals = el("span", { class: "muted", id: "totals" });
  const live = el("pre", { class: "log", id: "live-log" });
  const calls = el("div", { id: "recent-calls" }, el("p", { class: "muted" }, "Loading…"));

  view.replaceChildren(
    el("h1", {}, app.name, " ", el("span", { class: "state-" + app.state }, app.state)),
    el("section", {}, el("dl", {},
      el("dt", {}, "App id"), el("dd", { class: "mono" }, app.app_id),
      el("dt", {}, "Environment"), el("dd", {}, app.environment),
      el("dt", {}, "Version"), el("dd", {}, app.version),
      el("dt", {}, "Created"), el("dd", {}, time(app.created_at)))),
    el("h2", {}, "Functions"),
    el("section", {}, table("functions",
      ["Name", "Kind", "URL", "Method", "Timeout", "Memory", "Retries", "GPU", "Schedule", "Containers"],
      fns.map((f) => [f.name, f.kind, f.web_url ? link(f.web_url, f.web_url) : "–", f.method || "–",
        f.timeout ? f.timeout + " s" : "–", f.memory ? f.memory + " MiB" : "–", f.retries,
        f.gpu || "–", f.schedule || "–",
        `${f.min_containers ?? 0}–${f.max_containers ?? "∞"}`]))),
    el("h2", {}, "Instances and queues"),
    el("section", {}, el("table", { id: "instances" },
      el("thead", {}, el("tr", {}, ["Function", "Live", "Busy", "Idle", "Queued"].map((h) => el("th", {}, h)))),
      instances)),
    el("h2", {}, "Traffic ", totals),
    el("section", {}, chart, el("div", { class: "legend" },
      el("span", { class: "requests" }, "— requests / s"), el("span", { class: "latency" }, "— mean latency (ms)"))),
    el("h2", {}, "Recent calls"),
    el("section", {}, calls),
    el("h2", {}, "Versions"),
    el("section", {}, table("versions", ["", "Version", "Digest", "Deployed", "By", "Note"],
      versions.data.map((v) => [v.current ? "●" : "", el("span", { class: v.current ? "current" : "" }, v.version),
        el("span", { class: "mono" }, short(v.digest)), time(v.created_at),
        v.deployed_by ? `${v.deployed_by.name} (${v.deployed_by.token_id})` : "–",
        v.rollback_of ? `rollback to ${v.rollback_of}` : ""]))),
    el("h2", {}, "Live log"),
    el("section", {}, live));

  // Recent calls of the app's callable functions (web requests are in the log).
  const callable = fns.filter((f) => f.kind === "function");
  Promise.all(callable.map((f) => api(`/functions/${f.function_id}/invocations?limit=20`)))
    .then((lists) => {
      const all = lists.flatMap((l) => l.data);
      all.sort((a, b) => b.created_at.localeCompare(a.created_at));
      calls.replaceChildren(table("calls", ["Call", "Function", "Status", "Duration", "Attempts", "Source", "Created"],
        all.slice(0, 25).map((c) => [link("#/calls/" + c.call_id, c.call_id), c.function_name, status(c.status),
          millis(c.started_at, c.finished_at), c.attempts.length, c.source, time(c.created_at)])));
    })
    .catch((e) => calls.replaceChildren(el("p", { class: "error" }, String(e))));

  // The log, live: the last lines, then each new one.
  const events = new EventSource(`/v1/apps/${id}/logs?follow=true&limit=200`);
  events.addEventListener("log", (e) => {
    live.append(logLine(JSON.parse(e.data)));
    while (live.childNodes.length > 500) live.firstChild.remove();
    live.scrollTop = live.scrollHeight;
  });
  cleanups.push(() => events.close());

  // Instances, queues and the chart, from /metrics every 2 s.
  const samples = [];
  async function tick() {
    const ms = (await metrics()).filter(ours);
    const sum = (name, f) => ms.filter((m) => m.name === name && (!f || m.labels.function === f))
      .reduce((s, m) => s + m.value, 0);
    instances.replaceChildren(...fns.map((f) => {
      const liveN = sum("wasmhost_function_instances_live", f.name);
      const idle = sum("wasmhost_function_instances_idle", f.name);
      return el("tr", {}, el("td", {}, f.name), el("td", {}, liveN), el("td", {}, Math.max(0, liveN - idle)),
        el("td", {}, idle), el("td", {}, sum("wasmhost_queue_depth", f.name)));
    }));
    samples.push({ t: Date.now(), n: sum("wasmhost_requests_total"),
      s: sum("wasmhost_request_seconds_sum"), c: sum("wasmhost_request_seconds_count") });
    if (samples.length > 61) samples.shift();
    totals.textContent = `(${samples[samples.length - 1].n} requests so far)`;
    drawChart(chart, samples);
  }
  tick();
  const timer = setInterval(tick, 2000);
  cleanups.push(() => clearInterval(timer));
}

function drawChart(chart, samples) {
  const W = 600, H = 180, pad = 6;
  const rates = [], latencies = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = Math.max((b.t - a.t) / 1000, 0.001);
    rates.push(Math.max(0, (b.n - a.n) / dt));
    const dc = b.c - a.c;
    latencies.push(dc > 0 ? ((b.s - a.s) / dc) * 1000 : 0);
  }
  const line = (values, cls) => {
    const max = Math.max(1, ...values);
    const step = (W - 2 * pad) / 60;
    const points = values.map((v, i) => `${(pad + i * step).toFixed(1)},${(H - pad - (v / max) * (H - 2 * pad)).toFixed(1)}`);
    return svg("polyline", { class: cls, points: points.join(" ") });
  };
  const grid = [0.25, 0.5, 0.75].map((f) => svg("line", { class: "grid", x1: 0, x2: W, y1: H * f, y2: H * f }));
  chart.replaceChildren(...grid, line(rates, "requests"), line(latencies, "latency"));
}

async function callPage(id) {
  const [call, logs] = await Promise.all([api(`/function-calls/${id}`), api(`/function-calls/${id}/logs`)]);
  setCrumbs(link("#/", "apps"), "call " + id);
  const outcome = call.status === "success" ? call.result : call.error;
  view.replaceChildren(
    el("h1", {}, "Call ", el("span", { class: "mono" }, call.call_id), " ", status(call.status)),
    el("section", {}, el("dl", { id: "call" },
      el("dt", {}, "Function"), el("dd", {}, call.function_name),
      el("dt", {}, "Source"), el("dd", {}, call.source),
      el("dt", {}, "Created"), el("dd", {}, time(call.created_at)),
      el("dt", {}, "Duration"), el("dd", {}, millis(call.started_at, call.finished_at)),
      el("dt", {}, call.status === "success" ? "Result" : "Error"),
      el("dd", { class: "mono" }, outcome === undefined ? "–" : JSON.stringify(outcome)))),
    el("h2", {}, "Attempts"),
    el("section", {}, table("attempts", ["#", "Outcome", "Started", "Duration", "Error", "Retry in"],
      call.attempts.map((a) => [a.number, status(a.outcome), time(a.started_at),
        a.duration_ms === null ? "–" : a.duration_ms + " ms", el("td", { class: "wrap" }, a.error || ""),
        a.retry_delay_ms === null ? "" : a.retry_delay_ms + " ms"]))),
    el("h2", {}, "Logs"),
    el("section", {}, el("pre", { class: "log", id: "call-logs" }, logs.data.map(logLine))));
}

async function route() {
  for (const stop of cleanups) stop();
  cleanups = [];
  const hash = location.hash.replace(/^#\/?/, "");
  const [kind, id] = hash.split("/");
  try {
    if (kind === "apps" && id) await appPage(decodeURIComponent(id));
    else if (kind === "calls" && id) await callPage(decodeURIComponent(id));
    else await appsPage();
  } catch (e) {
    view.replaceChildren(el("p", { class: "error", id: "error" }, String(e.message || e)));
  }
}

window.addEventListener("hashchange", route);
route();
