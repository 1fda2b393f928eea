#!/usr/bin/env node
// ws_push.js: the "push-server" fan-out contract (bench/peers/README.md) on npm's `ws` (from
// tests/node_modules), perMessageDeflate off.
//
// Node runs JavaScript on one thread, so the K "producer threads" are K independent loops on
// the main thread, the idiomatic way to produce in Node (worker_threads posting to the main
// thread would add a structured-clone copy and a wakeup per message, and the sends would still
// happen on the main thread):
//   each producer publishes one message per event-loop turn (setImmediate) while it is due,
//   so accepts and socket I/O get their turn between messages; --rate R > 0 paces it against
//   absolute time (a timer while it is ahead; behind, it catches up one message per turn);
//   --rate 0 publishes one message per turn for ever.
// Broadcast: ws's documented pattern, `wss.clients.forEach(c => c.send(buf))` (with --topics T
// > 1 the same loop over the topic's Set), one Buffer per message shared by every send (ws does
// not mask or copy server frames). A client whose ws.bufferedAmount is over --lag-bytes
// (default 64 KiB, like uWS's maxBackpressure) is skipped and the message counted as dropped.
// `delivered` in the summary counts send() calls made (ws queues what the socket won't take).
// The timestamp is process.hrtime.bigint() (libuv: CLOCK_MONOTONIC). Producers start at the
// first client; --duration counts from startup; --threads is ignored.
'use strict';
const path = require('path');
const { WebSocketServer, WebSocket } = require(
  path.join(__dirname, '..', '..', 'tests', 'node_modules', 'ws'));

const NAME = 'ws-push';
const opt = { port: 0, producers: 1, rate: 0, size: 64, duration: 0, topics: 1, threads: 1,
              'lag-bytes': 64 * 1024 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opt) || i + 1 >= process.argv.length) {
    console.error(`usage: ${NAME} [--port P] [--producers K] [--rate R] [--size S] ` +
                  '[--duration D] [--topics T] [--threads N] [--lag-bytes B]');
    process.exit(2);
  }
  opt[key] = Number(process.argv[i + 1]);
}
if (!(opt.size >= 17) || !(opt.producers >= 1 && opt.producers <= 255) || !(opt.topics >= 1)) {
  console.error(`${NAME}: bad option value (size >= 17, producers 1..255, topics >= 1)`);
  process.exit(2);
}

const t0 = process.hrtime.bigint();
const topicSets = Array.from({ length: opt.topics }, () => new Set());
const lag = opt['lag-bytes'];
let published = 0, dropped = 0, delivered = 0, accepted = 0, started = false, stopping = false;

const wss = new WebSocketServer({ host: '127.0.0.1', port: opt.port, perMessageDeflate: false,
                                  clientTracking: true });

function publish(producer, seq, template) {
  const buf = Buffer.allocUnsafe(opt.size);
  template.copy(buf);
  buf.writeUInt32LE(seq % 0x100000000, 8);
  buf.writeUInt32LE(Math.floor(seq / 0x100000000), 12);
  buf.writeBigUInt64LE(process.hrtime.bigint(), 0); // right before the publish
  const topic = (producer + seq) % opt.topics;
  const each = (client) => {
    if (client.readyState !== WebSocket.OPEN) return;
    if (client.bufferedAmount > lag) { dropped++; return; }
    client.send(buf, { binary: true });
    delivered++;
  };
  if (opt.topics === 1) wss.clients.forEach(each); // ws README: "broadcast to all clients"
  else topicSets[topic].forEach(each);
  published++;
}

function startProducer(p) {
  const template = Buffer.alloc(opt.size, 'x');
  template[16] = p;
  let seq = 0;
  const start = process.hrtime.bigint();
  // One message per event-loop turn while this producer is due (always, with --rate 0), so
  // accepts and socket I/O get their turn between messages; a timer when it is ahead.
  const tick = () => {
    if (stopping) return;
    if (opt.rate > 0) {
      const aheadMs = (seq / opt.rate) * 1e3 - Number(process.hrtime.bigint() - start) / 1e6;
      if (aheadMs > 0) { setTimeout(tick, aheadMs); return; }
    }
    publish(p, seq++, template);
    setImmediate(tick);
  };
  tick();
}

wss.on('connection', (ws) => {
  ws.topic = accepted++ % opt.topics;
  topicSets[ws.topic].add(ws);
  ws.on('close', () => topicSets[ws.topic].delete(ws));
  ws.on('error', () => {});
  if (!started) {
    started = true;
    for (let p = 0; p < opt.producers; p++) startProducer(p);
  }
});
wss.on('listening', () => console.log(`${NAME} listening on port ${wss.address().port}`));

function stop() {
  if (stopping) return;
  stopping = true;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${NAME} summary: published=${published} dropped=${dropped} ` +
              `clients=${wss.clients.size} accepted=${accepted} delivered=${delivered} ` +
              `seconds=${secs.toFixed(2)}`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (opt.duration > 0) setTimeout(stop, opt.duration * 1000);
