// The live demo page: subscribes to pushwired's demo topics over /ws, draws them, and keeps the
// connection alive by itself (exponential backoff with jitter, re-subscribing after every open).
// window.demoState is the browser test's window into the page (tests/browser/demo_page.js).
"use strict";

const TOPICS = ["demo.sine", "demo.cpu", "demo.log", "demo.counter"];
const RETRY_FIRST_MS = 250, RETRY_MAX_MS = 8000; // doubling from first to max
const STALE_MS = 5000;       // data was flowing and stopped this long: the link is dead, reconnect
const SINE_WINDOW_MS = 10000, CPU_WINDOW_MS = 60000, LOG_LINES = 12;

const demoState = window.demoState = {
  state: "connecting",   // connecting | open | closed
  connected: false,
  opens: 0,              // successful opens; reconnects = opens after the first
  reconnects: 0,
  attempts: 0,           // failed or lost connections since the last open (drives the backoff)
  messages: 0,           // every frame received, all connections
  byTopic: {},           // topic -> messages
  acks: 0,               // {"ok":true,...} replies to our subscribes
  notices: 0,            // other frames that were not topic messages (error replies and the like)
  counter: null,         // last demo.counter value
  logLines: 0,
  sineDrawn: 0,          // points in the last sine frame drawn
  cpuDrawn: 0,
  frames: 0,             // chart frames drawn
  retryInMs: 0,
};

const el = (id) => document.getElementById(id);
const series = { sine: [], cpu: [] };
let ws = null, retryTimer = 0, staleTimer = 0, lastDataAt = 0;

// ---- connection ----

function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

function connect() {
  retryTimer = 0;
  setState("connecting");
  ws = new WebSocket(wsUrl());
  ws.onopen = onOpen;
  ws.onmessage = onMessage;
  ws.onclose = onClose; // also follows every error, so retrying lives here only
}

function onOpen() {
  demoState.opens++;
  demoState.reconnects = demoState.opens - 1;
  demoState.attempts = 0;
  demoState.connected = true;
  setState("open");
  for (const topic of TOPICS) ws.send(JSON.stringify({ op: "subscribe", topic }));
  addLogLine(Date.now(), "conn", "connected to " + wsUrl() + ", subscribed to " + TOPICS.length + " topics");
  lastDataAt = 0;
  staleTimer = setInterval(checkStale, 1000);
}

function onClose(e) {
  clearInterval(staleTimer);
  ws = null;
  if (demoState.connected) addLogLine(Date.now(), "conn", "connection lost (close code " + e.code + ")");
  demoState.connected = false;
  const delay = backoffDelay(demoState.attempts++);
  demoState.retryInMs = delay;
  setState("closed", delay);
  retryTimer = setTimeout(connect, delay);
}

// 250 ms, 500 ms, 1 s ... capped at 8 s, each +-20% so a crowd of pages does not come back in step.
function backoffDelay(attempt) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

// A peer that vanished without a FIN (cable, sleep, a frozen process) leaves the socket open
// forever: notice the silence. The browser would wait for the dead peer's closing handshake before
// firing onclose, so the socket is abandoned here and the retry starts at once.
function checkStale() {
  if (!ws || !lastDataAt || performance.now() - lastDataAt <= STALE_MS) return;
  const dead = ws;
  dead.onclose = dead.onmessage = null;
  dead.close(4000, "no data");
  onClose({ code: 4000 });
}

// ---- messages ----

function onMessage(e) {
  demoState.messages++;
  lastDataAt = performance.now();
  let msg;
  try { msg = JSON.parse(e.data); } catch { return notice("not JSON: " + String(e.data).slice(0, 80)); }
  if (msg && typeof msg.topic === "string" && "data" in msg) return onTopic(msg.topic, msg.data);
  if (msg && msg.ok === true) { demoState.acks++; return; } // {"ok":true,"op":"subscribe",...}
  notice("server: " + JSON.stringify(msg).slice(0, 120)); // {"error":...}: shown, and we go on
}

function onTopic(topic, data) {
  demoState.byTopic[topic] = (demoState.byTopic[topic] || 0) + 1;
  if (!data || typeof data !== "object") return;
  switch (topic) {
    case "demo.sine": addPoint(series.sine, data, SINE_WINDOW_MS); break;
    case "demo.cpu": addPoint(series.cpu, data, CPU_WINDOW_MS); break;
    case "demo.counter": showCounter(data); break;
    case "demo.log": addLogLine(data.t, data.level, data.msg); break;
  }
}

function addPoint(points, data, windowMs) {
  if (typeof data.t !== "number" || typeof data.v !== "number") return;
  points.push({ t: data.t, v: data.v });
  while (points.length && points[0].t < data.t - windowMs) points.shift();
}

function showCounter(data) {
  demoState.counter = data.n;
  el("counter").textContent = String(data.n);
  el("counter-note").textContent = "at " + clock(data.t) + ", " + (Date.now() - data.t) + " ms ago";
}

function notice(text) {
  demoState.notices++;
  addLogLine(Date.now(), "server", text);
}

function addLogLine(t, level, text) {
  demoState.logLines++;
  const li = document.createElement("li"), time = document.createElement("time");
  li.className = level === "info" ? "" : level;
  time.textContent = clock(t);
  li.append(time, String(text));
  const log = el("log");
  log.prepend(li); // newest on top: no scrolling needed
  while (log.childElementCount > LOG_LINES) log.lastElementChild.remove();
}

function clock(t) {
  return new Date(typeof t === "number" ? t : Date.now()).toLocaleTimeString([], { hour12: false });
}

// ---- status line ----

function setState(s, retryMs) {
  demoState.state = s;
  const badge = el("conn");
  badge.className = "badge " + s;
  badge.textContent = s === "closed" ? "disconnected, retry in " + (retryMs / 1000).toFixed(1) + " s" : s;
}

let rateCount = 0, rateAt = performance.now();
function updateStats() {
  const now = performance.now(), rate = (demoState.messages - rateCount) * 1000 / (now - rateAt);
  rateCount = demoState.messages; rateAt = now;
  el("stats").textContent = demoState.messages + " messages, " + rate.toFixed(0) + "/s" +
    (demoState.reconnects ? ", " + demoState.reconnects + " reconnects" : "");
}
setInterval(updateStats, 1000);

// ---- charts ----

// Sizes the canvas backing store to its CSS size (sharp on HiDPI) and returns a 2D context in CSS px.
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w, h };
}

// Draws points (t, v) over the last windowMs ending now, v in [min, max]; returns points drawn.
// The x axis is wall time, so a disconnection shows as a gap instead of a squeezed curve.
function drawChart(canvas, points, o) {
  const { ctx, w, h } = fitCanvas(canvas), pad = 26, now = Date.now();
  ctx.clearRect(0, 0, w, h);
  const x = (t) => pad + (w - pad - 4) * (1 - (now - t) / o.windowMs);
  const y = (v) => 6 + (h - 24) * (1 - (v - o.min) / (o.max - o.min));
  drawGrid(ctx, w, h, pad, x, y, o);
  ctx.strokeStyle = o.color; ctx.lineWidth = 2; ctx.lineJoin = "round";
  ctx.beginPath();
  let drawn = 0, prev = null;
  for (const p of points) {
    if (now - p.t > o.windowMs) continue;
    const gap = prev && p.t - prev.t > o.gapMs;
    if (drawn === 0 || gap) ctx.moveTo(x(p.t), y(p.v)); else ctx.lineTo(x(p.t), y(p.v));
    drawn++; prev = p;
  }
  ctx.stroke();
  return drawn;
}

function drawGrid(ctx, w, h, pad, x, y, o) {
  ctx.strokeStyle = "#e3e6eb"; ctx.fillStyle = "#6b7280"; ctx.lineWidth = 1;
  ctx.font = "10px ui-monospace, monospace";
  for (const v of o.ticks) {
    ctx.beginPath(); ctx.moveTo(pad, y(v)); ctx.lineTo(w - 4, y(v)); ctx.stroke();
    ctx.fillText(o.label(v), 0, y(v) + 3);
  }
  ctx.fillText("-" + o.windowMs / 1000 + " s", pad, h - 4);
  ctx.fillText("now", w - 26, h - 4);
}

const SINE_CHART = { windowMs: SINE_WINDOW_MS, min: -1.1, max: 1.1, color: "#2563eb", gapMs: 500,
                     ticks: [-1, 0, 1], label: (v) => String(v) };
const CPU_CHART = { windowMs: CPU_WINDOW_MS, min: 0, max: 1, color: "#d9480f", gapMs: 2000,
                    ticks: [0, 0.5, 1], label: (v) => v * 100 + "%" };

// Redraw on animation frames: the curves scroll with time even between messages.
function frame() {
  demoState.sineDrawn = drawChart(el("sine"), series.sine, SINE_CHART);
  demoState.cpuDrawn = drawChart(el("cpu"), series.cpu, CPU_CHART);
  demoState.frames++;
  requestAnimationFrame(frame);
}

requestAnimationFrame(frame);
connect();
