// agentgate console: polls the router's /ui/api/ JSON and renders it. Everything shown is set as text, never as
// HTML (model output and log lines are untrusted).
"use strict";

// With client keys configured the browser asked for one (HTTP Basic: any user name, the key as the password) before
// it could load this script, and sends it with every request below.
// capEpoch names the capture ring the numbers capAfter, capOldest and byRequest's ids belong to (a restarted router
// numbers from 1 again); capOldest is the oldest id that ring still keeps. reqEpoch and logEpoch do the same for
// reqSeq and logSeq.
const state = { reqSeq: 0, reqEpoch: null, logSeq: 0, logEpoch: null, capAfter: 0, capEpoch: null, capOldest: 1,
                byRequest: new Map(), probeModels: "" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "width") node.style.width = v;  // CSSOM: allowed by the page's CSP, unlike style=""
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ cache: "no-store", credentials: "same-origin" }, options || {}));
  if (resp.status === 401 || resp.status === 403) {
    const doc = await resp.json().catch(() => ({}));
    deny((doc.error && doc.error.message) || "This key may not open the console.");
    throw new Error("unauthorized");
  }
  const doc = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const error = new Error((doc.error && doc.error.message) || ("HTTP " + resp.status));
    error.status = resp.status;
    throw error;
  }
  return doc;
}

function deny(message) {
  document.getElementById("main").hidden = true;
  const p = document.getElementById("denied");
  p.hidden = false;
  p.textContent = message;
}

// Text a client chose (a model name, a log line's values) on one line and in its own direction: control characters
// (newlines included) and bidi controls shown as JSON-style escapes, as the router's text log writes them, so such
// text cannot start a line of its own or turn the page's own text around; iso() also isolates it (<bdi>).
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const SHORT = { "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r" };
function esc(text) {
  return String(text).replace(UNSAFE, (c) => SHORT[c] || "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
function iso(text) { return el("bdi", {}, esc(text)); }

function setStatus(text) { document.getElementById("status").textContent = text; }

// --- formatting ---------------------------------------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function secs(s) { return s === null || s === undefined ? "–" : s < 1 ? Math.round(s * 1000) + " ms" : s.toFixed(1) + " s"; }
function ms(v) { return v === null || v === undefined ? "–" : v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s"; }
function dash(v) { return v === null || v === undefined || v === "" ? "–" : String(v); }
function clock(ts) { return new Date(ts * 1000).toLocaleTimeString(); }
function badge(text, kind) { return el("span", { class: "badge " + (kind || "") }, text); }
const STATE_KIND = { ready: "ok", starting: "info", stopping: "warn", failed: "bad", stopped: "" };
const BREAKER_KIND = { closed: "ok", half_open: "warn", "half-open": "warn", open: "bad" };

function fill(tbodyId, rows) {
  const tbody = document.querySelector("#" + tbodyId + " tbody");
  tbody.replaceChildren(...rows);
}

// --- overview -----------------------------------------------------------------------------------------------------

function renderEngines(engines) {
  document.getElementById("engines-empty").hidden = engines.length > 0;
  document.getElementById("engines").hidden = engines.length === 0;
  fill("engines", engines.map((e) => {
    let load = "–";
    if (e.state === "starting") {
      const pct = e.load_seconds ? Math.min(99, Math.round(100 * (e.loading_for || 0) / e.load_seconds)) : null;
      load = el("span", {}, pct === null ? "" : el("span", { class: "bar", title: pct + "%" },
                 el("span", { width: pct + "%" })), " loading " + secs(e.loading_for || 0));
    } else if (e.load_seconds) {
      load = "loaded in " + secs(e.load_seconds);
    }
    const lookups = (e.cache_hits || 0) + (e.cache_misses || 0);
    const cache = e.cache_hits === null || e.cache_hits === undefined ? "–" :
      e.cache_hits + "/" + lookups + " hits" + (e.cache_hit_tokens ? ", " + e.cache_hit_tokens + " tokens" : "");
    const memory = e.memory_active ? bytes(e.memory_active) + (e.rss_bytes ? " (RSS " + bytes(e.rss_bytes) + ")" : "")
                                   : bytes(e.rss_bytes);
    const unload = el("button", { type: "button", "data-engine": e.name, disabled: e.state === "stopped",
                                  onclick: () => unloadEngine(e.name) }, "Unload");
    return el("tr", { "data-engine": e.name },
      el("td", {}, e.name, el("div", { class: "muted small" }, dash(e.model))),
      el("td", {}, badge(e.state, STATE_KIND[e.state]), e.last_error ? el("div", { class: "muted small" }, esc(e.last_error)) : null),
      el("td", {}, load), el("td", {}, memory),
      el("td", { class: "num" }, e.state !== "ready" ? "–" : e.ttl_left !== null ? secs(e.ttl_left) :
                                 e.ttl ? "busy" : "no ttl"),
      el("td", { class: "num" }, e.batch === null || e.batch === undefined ? "–" : e.batch + (e.max_batch ? " / " + e.max_batch : "")),
      el("td", { class: "num" }, dash(e.queue)), el("td", {}, cache),
      el("td", { class: "num" }, e.in_flight), el("td", { class: "num" }, e.restarts), el("td", {}, unload));
  }));
}

function renderProviders(providers) {
  fill("providers", providers.map((p) => el("tr", { "data-provider": p.name },
    el("td", {}, p.name, el("div", { class: "muted small" }, p.base_url)), el("td", {}, p.type),
    el("td", {}, badge(p.breaker, BREAKER_KIND[p.breaker])),
    el("td", { class: "num" }, p.in_flight + " / " + p.max_concurrency), el("td", { class: "num" }, p.queued),
    el("td", { class: "num" }, p.error_rate === null ? "–" :
      Math.round(100 * p.error_rate) + "% of " + p.recent_requests),
    el("td", {}, p.disabled ? badge("disabled", "bad") : "", p.disabled ? " " + p.disabled : ""))));
}

function renderModels(models) {
  fill("models", models.map((m) => {
    const serves = m.alias_of ? "alias of " + m.alias_of :
      [m.engine !== null ? "engine (" + m.engine + ")" : null, m.providers.length ? m.providers.join(", ") : null,
       m.fallbacks.length ? "then " + m.fallbacks.join(" → ") : null].filter(Boolean).join("; ");
    return el("tr", { "data-model": m.id },
      el("td", {}, m.id, m.wildcard ? el("span", { class: "muted small" }, " wildcard") : null),
      el("td", {}, serves || "–"), el("td", {}, m.available ? badge("yes", "ok") : badge("no", "bad")),
      el("td", { class: "muted" }, dash(m.reason)), el("td", {}, m.repair));
  }));
  const names = models.filter((m) => !m.wildcard).map((m) => m.id);
  const signature = names.join("\n");
  if (signature !== state.probeModels) {
    state.probeModels = signature;
    const select = document.getElementById("probe-model");
    const current = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
  }
}

function renderKeys(keys) {
  document.getElementById("keys-empty").hidden = keys.length > 0;
  fill("keys", keys.map((k) => el("tr", {}, el("td", {}, k.name), el("td", { class: "num" }, k.requests),
    el("td", { class: "num" }, k.prompt_tokens), el("td", { class: "num" }, k.completion_tokens))));
}

async function refreshState() {
  const doc = await api("/ui/api/state");
  document.getElementById("denied").hidden = true;
  document.getElementById("main").hidden = false;
  document.getElementById("meta").textContent = "v" + doc.version + " · " + doc.config;
  renderEngines(doc.engines);
  renderProviders(doc.providers);
  renderModels(doc.models);
  renderKeys(doc.keys);
  document.getElementById("capture-off").hidden = doc.capture.enabled;
  if (doc.probe) renderProbe(doc.probe);
}

// --- requests and log ---------------------------------------------------------------------------------------------

const MAX_ROWS = 200;

// The requests and log lines after the last one seen. A new epoch (the router restarted and numbers from 1 again)
// asks again from the start: what is shown stays (it happened), a marker says where the new process begins.
async function fresh(path, key, epochKey) {
  let doc = await api(path + state[key]);
  if (doc.epoch !== state[epochKey]) {
    const restarted = state[epochKey] !== null;
    state[epochKey] = doc.epoch;
    if (state[key] > 0) doc = await api(path + "0");
    doc.restarted = restarted;
  }
  state[key] = doc.last;
  return doc;
}

async function refreshRequests() {
  const doc = await fresh("/ui/api/requests?after=", "reqSeq", "reqEpoch");
  const tbody = document.querySelector("#requests tbody");
  if (doc.restarted) tbody.prepend(el("tr", { class: "restart" }, el("td", { colspan: "9", class: "muted small" },
                                                                      "router restarted")));
  for (const r of doc.requests) {
    const ended = r.ended_with || r.status;  // a stream that failed after its 200: the error's status
    const status = ended >= 500 ? "bad" : ended >= 400 ? "warn" : "ok";
    const tokens = r.prompt_tokens === undefined && r.completion_tokens === undefined ? "–" :
      dash(r.prompt_tokens) + " → " + dash(r.completion_tokens) + (r.cached_tokens ? " (" + r.cached_tokens + " cached)" : "");
    const repairs = (r.repairs || []).concat((r.tool_call_failures || []).map((f) => "failed: " + f));
    const row = el("tr", { "data-request": r.request_id, class: repairs.length ? "clickable" : "",
                           onclick: repairs.length ? () => openCaptureForRequest(r.request_id) : null },
      el("td", {}, clock(r.ts)), el("td", {}, iso(dash(r.model))), el("td", {}, iso(dash(r.provider))),
      el("td", {}, badge(r.ended_with ? r.status + " → " + r.ended_with : r.status, status), r.error ? el("div", { class: "muted small" }, iso(r.error)) : null),
      el("td", { class: "num" }, ms(r.latency_ms)), el("td", { class: "num" }, ms(r.ttft_ms)),
      el("td", { class: "num" }, tokens), el("td", {}, dash(r.tool_calls)), el("td", {}, repairs.join(", ") || "–"));
    tbody.prepend(row);
  }
  while (tbody.children.length > MAX_ROWS) tbody.lastChild.remove();
}

async function refreshLog() {
  const doc = await fresh("/ui/api/log?after=", "logSeq", "logEpoch");
  const pre = document.getElementById("log");
  if (doc.restarted) pre.append(document.createTextNode("--- router restarted ---\n"));
  if (!doc.lines.length) return;
  for (const l of doc.lines) {
    const fields = l.fields ? " " + Object.entries(l.fields).map(([k, v]) =>
      esc(k) + "=" + esc(typeof v === "object" ? JSON.stringify(v) : v)).join(" ") : "";
    pre.append(document.createTextNode(clock(l.ts) + " " + l.level.toUpperCase().padEnd(7) + " " + esc(l.logger) + ": " +
                                       esc(l.msg) + fields + "\n"));
  }
  while (pre.childNodes.length > 1000) pre.firstChild.remove();
  if (document.getElementById("log-follow").checked) pre.scrollTop = pre.scrollHeight;
}

// --- repair inspector ---------------------------------------------------------------------------------------------

// The ring's summaries after the last one listed, oldest first, a page at a time until the answer has no "more".
// Entries (and the request → capture map) are kept only while the ring still holds their capture; a new ring (the
// router restarted: a new epoch, numbers from 1 again) starts the list afresh.
async function refreshCaptures() {
  const list = document.getElementById("captures");
  for (let pages = 0; pages < 100; pages++) {
    const doc = await api("/ui/api/captures?after=" + state.capAfter);
    if (doc.epoch !== state.capEpoch) {
      const asked = state.capAfter;
      state.capEpoch = doc.epoch;
      state.capAfter = 0;
      state.byRequest.clear();
      list.replaceChildren();
      if (asked > 0) continue;  // that answer counted from another ring's numbers: ask again from the start
    }
    for (const c of doc.captures) {
      state.capAfter = Math.max(state.capAfter, c.id);
      state.byRequest.set(c.request_id, c.id);
      const kinds = c.outcome === "failed" ? c.failures : c.repairs;
      const item = el("li", { "data-capture": c.id, onclick: () => showCapture(c.id) },
        badge(c.outcome, c.outcome === "failed" ? "bad" : "warn"), " ", iso(c.model), " ",
        el("span", { class: "muted small" }, clock(c.ts) + " · " + kinds.join(", ")));
      list.prepend(item);
    }
    state.capOldest = doc.oldest;
    while (list.lastChild && Number(list.lastChild.dataset.capture) < doc.oldest) list.lastChild.remove();
    for (const [request, id] of state.byRequest) if (id < doc.oldest) state.byRequest.delete(request);
    if (!doc.more) break;
  }
}

function openCaptureForRequest(requestId) {
  const id = state.byRequest.get(requestId);
  if (id !== undefined) showCapture(id);
  else gone("The capture of request " + requestId + " is no longer kept.");
}

function gone(text) {
  document.getElementById("capture").replaceChildren(el("p", { id: "capture-gone", class: "muted" }, text));
}

function pretty(v) { return v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v, null, 2); }

function repairedView(msg) {
  const parts = [];
  if (msg.content) parts.push("content:\n" + msg.content);
  for (const call of msg.tool_calls || []) {
    let args = call.function.arguments;
    try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (e) { /* shown as sent */ }
    parts.push("tool call " + call.function.name + "(" + args + ")");
  }
  if (msg.reasoning_content) parts.push("reasoning:\n" + msg.reasoning_content);
  return parts.join("\n\n") || "(empty)";
}

async function showCapture(id) {
  const stale = "Capture " + id + " is no longer kept: the ring holds only the latest captures.";
  let c;
  if (id < state.capOldest) {
    c = null;
  } else {
    try {
      c = await api("/ui/api/captures/" + id);
    } catch (e) {
      if (e.message === "unauthorized") return;
      if (e.status !== 404) { gone("Capture " + id + " could not be read: " + e.message); return; }
      c = null;
    }
  }
  if (c === null) {
    document.querySelector('#captures li[data-capture="' + id + '"]')?.remove();
    gone(stale);
    return;
  }
  for (const li of document.querySelectorAll("#captures li")) li.classList.toggle("selected", li.dataset.capture === String(id));
  const kinds = c.repairs.map((k) => badge(k, "warn")).concat(c.failures.map((k) => badge(k, "bad")));
  const raw = [c.reasoning ? "<reasoning>\n" + c.reasoning + "\n</reasoning>\n" : "", c.text || "",
               c.tool_calls ? "\n[structured tool_calls]\n" + pretty(c.tool_calls) : ""].join("");
  const detail = document.getElementById("capture");
  detail.replaceChildren(
    el("p", {}, el("strong", {}, iso(c.model)), " via ", iso(dash(c.provider)), " · " + clock(c.ts) + " · request ",
       iso(c.request_id), " · format " + c.format + (c.stream ? " · stream" : "")),
    el("p", { id: "capture-kinds" }, ...kinds.flatMap((b) => [b, " "])),
    c.errors.length ? el("ul", {}, c.errors.map((e) => el("li", { class: "muted" }, esc(e.kind + (e.detail ? ": " + e.detail : ""))))) : "",
    el("div", { class: "panes" },
      el("div", {}, el("h3", {}, "raw upstream output"), el("pre", { id: "capture-raw" }, raw || "(empty)")),
      el("div", {}, el("h3", {}, "after repair"), el("pre", { id: "capture-repaired" }, repairedView(c.repaired)))),
    c.notes.length ? el("p", { class: "muted small" }, c.notes.join("; ")) : "",
    el("details", {}, el("summary", {}, "tools declared (" + (c.tools ? c.tools.length : 0) + ")"), el("pre", {}, pretty(c.tools))));
}

async function downloadCaptures(event) {
  event.preventDefault();
  const resp = await fetch("/ui/api/captures.jsonl", { cache: "no-store", credentials: "same-origin" });
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: "agentgate-captures.jsonl" });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

// --- actions ------------------------------------------------------------------------------------------------------

async function unloadEngine(name) {
  setStatus("unloading " + name + "…");
  try {
    const doc = await api("/ui/api/engines/" + encodeURIComponent(name) + "/unload",
                          { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    setStatus(doc.unloaded.length ? "unloaded " + name : name + " was not running");
  } catch (e) { setStatus("unload failed: " + e.message); }
  refreshState().catch(() => {});
}

let probeTimer = null;

async function runProbe(event) {
  event.preventDefault();
  const body = { model: document.getElementById("probe-model").value,
                 turns: parseInt(document.getElementById("probe-turns").value, 10) || 10,
                 repair: document.getElementById("probe-repair").checked,
                 tool_choice: document.getElementById("probe-required").checked ? "required" : "auto" };
  try {
    renderProbe(await api("/ui/api/probe", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) }));
  } catch (e) {
    document.getElementById("probe-status").textContent = "probe not started: " + e.message;
    return;
  }
  clearInterval(probeTimer);
  probeTimer = setInterval(async () => {
    const job = await api("/ui/api/probe").catch(() => null);
    if (!job) return;
    renderProbe(job);
    if (job.state !== "running") clearInterval(probeTimer);
  }, 700);
}

// as `agentgate probe` says it: the rate is over the judged turns, those the backend failed (errors) counted apart
function validity(turns, valid) {
  const judged = turns.filter((t) => t.status !== "error").length;
  const unjudged = turns.length - judged;
  const rate = judged ? valid + "/" + judged + (unjudged ? " judged turns" : "") + " valid (" +
    Math.round(100 * valid / judged) + "%)" : "no turn judged";
  return rate + (unjudged ? ", " + unjudged + " not judged" : "");
}

function renderProbe(job) {
  if (!job || job.state === "idle") return;
  const turns = job.turns || [];
  const valid = turns.filter((t) => t.valid).length;
  let text = job.model + " (repair " + (job.repair ? "on" : "off") +
    (job.tool_choice === "required" ? ", tool_choice required" : "") + "): ";
  text += job.state === "running" ? "running, turn " + turns.length + " of " + job.turns_requested :
    job.state === "done" ? "done" : "stopped";
  if (turns.length) text += " · " + validity(turns, valid);
  if (job.error) text += " · " + job.error;
  document.getElementById("probe-status").textContent = text;
  document.getElementById("probe-run").disabled = job.state === "running";
  document.getElementById("probe-chart").replaceChildren(...turns.map((t) => el("div", {
    class: "turn " + t.status, "data-turn": t.turn, "data-status": t.status,
    title: "turn " + t.turn + ": " + t.status + (t.failure ? " (" + t.failure + ")" : "") +
      (t.repairs && t.repairs.length ? " [" + t.repairs.join(", ") + "]" : "") + " · " + secs(t.latency_s) }, t.turn)));
}

// --- start --------------------------------------------------------------------------------------------------------

function loop(fn, every) {
  const tick = async () => {
    try { await fn(); } catch (e) { if (e.message !== "unauthorized") setStatus(e.message); }
    setTimeout(tick, every);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("probe-form").addEventListener("submit", runProbe);
  document.getElementById("captures-download").addEventListener("click", downloadCaptures);
  loop(refreshState, 2000);
  loop(refreshRequests, 1000);
  loop(refreshLog, 1000);
  loop(refreshCaptures, 2000);
});
