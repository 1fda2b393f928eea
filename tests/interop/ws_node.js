#!/usr/bin/env node
// Interop test: npm's `ws` client (from tests/node_modules) against pw-echo.
//
// Usage: node tests/interop/ws_node.js --server PATH_TO_PW_ECHO [--tls]
//
// --tls: every case over wss://, against pw-echo with a certificate that `openssl req` makes
// at run time in a temporary directory (removed at exit); the client trusts only it.
//
// Starts the server itself on port 0 (parsing "pw-echo listening on port N"),
// runs each case, prints one line per case and "N passed, M failed" at the end,
// and always stops the server by its pid. Exits non-zero on any failure.
'use strict';

const path = require('path');
const { spawn } = require('child_process');

let WebSocket;
try {
  WebSocket = require(path.join(__dirname, '..', 'node_modules', 'ws'));
} catch (e) {
  console.error('error: the npm package `ws` is not installed in tests/node_modules: ' +
                'run scripts/deps to install npm test tools');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const CASE_TIMEOUT_MS = 30000;
const SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024];

function parseArgs() {
  const argv = process.argv.slice(2);
  let server = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tls') TLS = makeCert();
    else if (argv[i] === '--server' && i + 1 < argv.length) server = argv[++i];
    else if (argv[i].startsWith('--server=')) server = argv[i].slice('--server='.length);
    else {
      console.error(`unknown argument: ${argv[i]}`);
      process.exit(2);
    }
  }
  if (!server) {
    console.error('usage: node ws_node.js --server PATH_TO_PW_ECHO');
    process.exit(2);
  }
  return server;
}

// ---- TLS: a self-signed certificate for 127.0.0.1, made now, never committed ----
let TLS = null; // { dir, cert, key, ca (the PEM text the client trusts) }

const { makeCert } = require('./ws_node_cert');

// A string whose UTF-8 encoding is exactly n bytes, mixing 1-4 byte characters.
function textOfSize(n) {
  const pattern = ['a', 'b', '\u00e9', '\u20ac', '\u{1F600}', 'z'];
  const out = [];
  let size = 0;
  for (;;) {
    let progressed = false;
    for (const ch of pattern) {
      const w = Buffer.byteLength(ch, 'utf8');
      if (size + w > n) continue;
      out.push(ch);
      size += w;
      progressed = true;
      if (size === n) break;
    }
    if (size === n || !progressed) break;
  }
  const s = out.join('');
  if (Buffer.byteLength(s, 'utf8') !== n) throw new Error(`textOfSize(${n}) wrong`);
  return s;
}

function binaryOfSize(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function describe(data, isBinary) {
  const len = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  return `${isBinary ? 'binary' : 'text'}(${len} bytes)`;
}

// ---- server process ----

let serverProc = null;
let serverExit = null; // {code, signal} once exited
let serverExited = null; // promise

function startServer(bin) {
  return new Promise((resolve, reject) => {
    let proc;
    try {
      const args = TLS ? ['0', '--tls-cert', TLS.cert, '--tls-key', TLS.key] : ['0'];
      proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    } catch (e) {
      reject(e);
      return;
    }
    serverProc = proc;
    serverExited = new Promise((res) => {
      proc.on('exit', (code, signal) => {
        serverExit = { code, signal };
        res(serverExit);
      });
    });
    let buf = '';
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        reject(new Error(`server printed no port line within 10 s (got ${JSON.stringify(buf)})`));
      }
    }, 10000);
    proc.on('error', (e) => {
      if (!done) { done = true; clearTimeout(timer); reject(e); }
    });
    proc.on('exit', (code, signal) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`server exited before printing its port (code ${code}, signal ${signal}, ` +
                         `got ${JSON.stringify(buf)})`));
      }
    });
    proc.stdout.on('data', (chunk) => {
      if (done) return; // keep draining, ignore
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      done = true;
      clearTimeout(timer);
      const line = buf.slice(0, nl).trim();
      const m = /^pw-echo listening on port (\d+)$/.exec(line);
      if (!m) reject(new Error(`unexpected first line from server: ${JSON.stringify(line)}`));
      else resolve(parseInt(m[1], 10));
    });
  });
}

function killServerSync() {
  if (serverProc && serverExit === null && serverProc.pid) {
    try { process.kill(serverProc.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
  }
}
process.on('exit', killServerSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killServerSync(); process.exit(1); });
}

async function stopServer() {
  if (!serverProc || !serverProc.pid) return null;
  if (serverExit === null) {
    try { process.kill(serverProc.pid, 'SIGTERM'); } catch (e) { /* gone */ }
    let timer;
    const timeout = new Promise((res) => { timer = setTimeout(() => res(null), 5000); });
    const r = await Promise.race([serverExited, timeout]);
    clearTimeout(timer);
    if (r === null) {
      try { process.kill(serverProc.pid, 'SIGKILL'); } catch (e) { /* gone */ }
      await serverExited;
      return { code: null, signal: 'SIGKILL (did not exit within 5 s of SIGTERM)' };
    }
  }
  return serverExit;
}

// ---- client helpers ----

let PORT = 0;
const openSockets = new Set();

function connect(protocols, options) {
  return new Promise((resolve, reject) => {
    const url = `${TLS ? 'wss' : 'ws'}://127.0.0.1:${PORT}/`;
    const base = TLS ? { handshakeTimeout: 10000, ca: TLS.ca } : { handshakeTimeout: 10000 };
    const ws = protocols === undefined
      ? new WebSocket(url, Object.assign(base, options || {}))
      : new WebSocket(url, protocols, Object.assign(base, options || {}));
    openSockets.add(ws);
    // Queue incoming messages so recv() never misses one.
    ws._queue = [];
    ws._waiters = [];
    ws._closeInfo = null;
    ws.on('message', (data, isBinary) => {
      const item = { data, isBinary };
      const w = ws._waiters.shift();
      if (w) w.resolve(item); else ws._queue.push(item);
    });
    ws.on('close', (code, reason) => {
      openSockets.delete(ws);
      ws._closeInfo = { code, reason: reason.toString('utf8') };
      for (const w of ws._waiters.splice(0)) {
        w.reject(new Error(`connection closed (code ${code}, reason ${JSON.stringify(ws._closeInfo.reason)}) ` +
                           'while waiting for a message'));
      }
    });
    ws.once('open', () => resolve(ws));
    ws.on('error', (e) => {
      ws._lastError = e;
      reject(e);
    });
    ws.once('unexpected-response', (req, res) => {
      reject(new Error(`unexpected HTTP response ${res.statusCode}`));
      req.destroy();
    });
  });
}

function recv(ws) {
  if (ws._queue.length) return Promise.resolve(ws._queue.shift());
  if (ws._closeInfo) {
    return Promise.reject(new Error(`connection already closed (code ${ws._closeInfo.code})`));
  }
  return new Promise((resolve, reject) => ws._waiters.push({ resolve, reject }));
}

function send(ws, data, opts) {
  return new Promise((resolve, reject) => {
    ws.send(data, opts || {}, (err) => (err ? reject(err) : resolve()));
  });
}

function waitClose(ws, ms) {
  return new Promise((resolve, reject) => {
    if (ws._closeInfo) { resolve(ws._closeInfo); return; }
    const t = setTimeout(() => reject(new Error(`no close within ${ms} ms`)), ms);
    ws.once('close', () => { clearTimeout(t); resolve(ws._closeInfo); });
  });
}

async function closeQuietly(ws) {
  if (ws.readyState === WebSocket.OPEN) {
    ws.close(1000);
    try { await waitClose(ws, 5000); } catch (e) { ws.terminate(); }
  } else if (ws.readyState !== WebSocket.CLOSED) {
    ws.terminate();
  }
}

function sameData(sent, got) {
  const sentBuf = typeof sent === 'string' ? Buffer.from(sent, 'utf8') : sent;
  return Buffer.compare(sentBuf, got.data) === 0;
}

async function expectEcho(ws, msg) {
  const isBinary = typeof msg !== 'string';
  const got = await recv(ws);
  if (got.isBinary !== isBinary) {
    throw new Error(`sent ${describe(msg, isBinary)}, got back ${describe(got.data, got.isBinary)}`);
  }
  if (!sameData(msg, got)) {
    throw new Error(`sent ${describe(msg, isBinary)}, got back different ${describe(got.data, got.isBinary)}`);
  }
}

// ---- cases ----

async function echoOne(msg, options) {
  const ws = await connect(undefined, options);
  try {
    await send(ws, msg);
    await expectEcho(ws, msg);
  } finally {
    await closeQuietly(ws);
  }
}

async function fragmented(fragments) {
  const ws = await connect();
  try {
    const isBinary = typeof fragments[0] !== 'string';
    for (let i = 0; i < fragments.length; i++) {
      await send(ws, fragments[i], { fin: i === fragments.length - 1, binary: isBinary });
    }
    const whole = isBinary ? Buffer.concat(fragments) : fragments.join('');
    await expectEcho(ws, whole);
    await send(ws, 'after');
    await expectEcho(ws, 'after');
  } finally {
    await closeQuietly(ws);
  }
}

function waitPong(ws, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no pong within ${ms} ms`)), ms);
    ws.once('pong', (data) => { clearTimeout(t); resolve(data); });
  });
}

async function ping(payload) {
  const ws = await connect();
  try {
    const pong = waitPong(ws, 10000);
    ws.ping(payload);
    const data = await pong;
    if (Buffer.compare(data, payload) !== 0) {
      throw new Error(`ping payload ${payload.toString('hex')} answered with pong ${data.toString('hex')}`);
    }
    const b = Buffer.from('x');
    await send(ws, b);
    await expectEcho(ws, b);
  } finally {
    await closeQuietly(ws);
  }
}

async function pingInterleaved() {
  const ws = await connect();
  try {
    await send(ws, 'first half, ', { fin: false });
    const pong = waitPong(ws, 10000);
    ws.ping(Buffer.from('mid-message'));
    const data = await pong;
    if (data.toString() !== 'mid-message') throw new Error(`pong payload ${JSON.stringify(data.toString())}`);
    if (ws._queue.length) throw new Error('a message arrived before the fragmented message was finished');
    await send(ws, 'second half', { fin: true });
    await expectEcho(ws, 'first half, second half');
  } finally {
    await closeQuietly(ws);
  }
}

async function cleanClose(code, reason) {
  const ws = await connect();
  await send(ws, 'hello');
  await expectEcho(ws, 'hello');
  const t0 = Date.now();
  const closed = waitClose(ws, 10000);
  ws.close(code, reason);
  let info;
  try {
    info = await closed;
  } catch (e) {
    ws.terminate();
    throw e;
  }
  const elapsed = Date.now() - t0;
  if (info.code !== code) {
    throw new Error(`client closed with ${code} ${JSON.stringify(reason)}; server close frame carried ` +
                    `code ${info.code} reason ${JSON.stringify(info.reason)}`);
  }
  if (elapsed > 5000) throw new Error(`closing handshake took ${elapsed} ms`);
  if (ws._lastError) throw new Error(`error during close: ${ws._lastError.message}`);
}

async function subprotocol(offer, expected) {
  const ws = await connect(offer);
  try {
    if (ws.protocol !== expected) {
      throw new Error(`offered ${JSON.stringify(offer)}, server selected ${JSON.stringify(ws.protocol)}, ` +
                      `expected ${JSON.stringify(expected)}`);
    }
    await send(ws, 'p');
    await expectEcho(ws, 'p');
  } finally {
    await closeQuietly(ws);
  }
}

async function deflate(perMessageDeflate) {
  const ws = await connect(undefined, { perMessageDeflate });
  try {
    if (ws.extensions !== '') {
      throw new Error(`server accepted extensions ${JSON.stringify(ws.extensions)}`);
    }
    const big = 'compressible '.repeat(1000);
    await send(ws, big);
    await expectEcho(ws, big);
    const bin = binaryOfSize(70000);
    await send(ws, bin);
    await expectEcho(ws, bin);
  } finally {
    await closeQuietly(ws);
  }
}

async function concurrent(clients, perClient) {
  async function one(i) {
    const ws = await connect();
    try {
      for (let j = 0; j < perClient; j++) {
        let msg = `client ${i} message ${j} `.repeat(1 + (j % 7));
        if (j % 2) msg = Buffer.from(msg);
        await send(ws, msg);
        await expectEcho(ws, msg);
      }
    } finally {
      await closeQuietly(ws);
    }
    return perClient;
  }
  const results = await Promise.allSettled(Array.from({ length: clients }, (_, i) => one(i)));
  const errors = results.filter((r) => r.status === 'rejected');
  if (errors.length) {
    throw new Error(`${errors.length} of ${clients} clients failed; first: ${errors[0].reason.message}`);
  }
}

// ---- runner ----

let passed = 0;
let failed = 0;
let summaryPrinted = false;

async function run(name, fn) {
  const t0 = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${CASE_TIMEOUT_MS / 1000} s`)),
                       CASE_TIMEOUT_MS);
  });
  try {
    await Promise.race([fn(), timeout]);
    passed++;
    console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message : e}`);
    for (const ws of openSockets) ws.terminate();
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const bin = parseArgs();
  try {
    try {
      PORT = await startServer(bin);
    } catch (e) {
      console.log(`FAIL start server: ${e.message}`);
      failed++;
      return;
    }
    console.log(`server ${bin} on port ${PORT} (pid ${serverProc.pid})`);

    for (const n of SIZES) await run(`text echo ${n} bytes`, () => echoOne(textOfSize(n)));
    for (const n of SIZES) await run(`binary echo ${n} bytes`, () => echoOne(binaryOfSize(n)));
    await run('fragmented text (3 fragments)',
              () => fragmented(['Hello, ', 'fragmented ', 'w\u00f6rld \u20ac']));
    await run('fragmented binary (4 fragments, 200 KiB)',
              () => fragmented([0, 1, 2, 3].map(() => binaryOfSize(50 * 1024))));
    await run('fragmented text with empty fragments', () => fragmented(['', 'abc', '', 'def', '']));
    await run('ping between fragments answered at once', pingInterleaved);
    await run('ping with payload -> pong', () => ping(Buffer.from('ping-payload-123')));
    await run('ping with empty payload -> pong', () => ping(Buffer.alloc(0)));
    await run('ping with 125-byte payload -> pong', () => ping(binaryOfSize(125)));
    await run('clean close 1000 with reason', () => cleanClose(1000, 'bye now'));
    await run('clean close 4000 echoed', () => cleanClose(4000, 'app code'));
    await run('subprotocol offer [chat, echo] selects echo', () => subprotocol(['chat', 'echo'], 'echo'));
    // (ws itself fails a handshake where protocols were offered and none was
    // selected, so "none selected" is checked with no offer at all.)
    await run('no subprotocol offered selects none', () => subprotocol(undefined, ''));
    await run('perMessageDeflate: false (no extension offered)', () => deflate(false));
    await run('perMessageDeflate offered (default) is declined', () => deflate(true));
    await run('20 concurrent clients x 50 echoes', () => concurrent(20, 50));
  } finally {
    const exit = await stopServer();
    if (exit !== null && PORT) {
      if (exit.code === 0) {
        passed++;
        console.log('PASS server exits 0 on SIGTERM');
      } else {
        failed++;
        console.log(`FAIL server exits 0 on SIGTERM: code ${exit.code} signal ${exit.signal}`);
      }
    }
    console.log(`${passed} passed, ${failed} failed`);
    summaryPrinted = true;
    process.exitCode = failed ? 1 : 0;
  }
}

main().catch((e) => {
  console.log(`FAIL internal error: ${e && e.stack ? e.stack : e}`);
  killServerSync();
  if (!summaryPrinted) console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
