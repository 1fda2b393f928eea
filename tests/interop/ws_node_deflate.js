#!/usr/bin/env node
// Interop test: npm's `ws` with perMessageDeflate against pw-echo --deflate 1.
//
// Usage: node tests/interop/ws_node_deflate.js --server PATH_TO_PW_ECHO [--tls]
//
// --tls: every set over wss:// (compressed frames inside TLS records), against pw-echo with a
// certificate made at run time (ws_node_cert.js); each set also checks its socket really is TLS.
// Checked: without --tls-cert passed to pw-echo, every [.. tls] set fails at the connect
// ("Client network socket disconnected before secure TLS connection was established").
//
// Under several parameter sets (ws's offer x the server's flags), over the echo (pw_send) and
// fan-out (--pubsub 1: pw_publish) paths: text and binary of 0 B..1 MiB, a message sent in
// fragments (ws compresses a fragmented message as one, RSV1 on its first frame only), and a
// burst of 100 JSON messages. ws inflates and checks every frame itself; the handshake's
// agreement is checked against what the set expects. Checked to fail without the feature:
// with negotiation off in http.c every set fails at "extension not accepted"; with RSV1 not
// set by pmd.c the echoes came back as compressed garbage.
'use strict';

const path = require('path');
const { spawn } = require('child_process');
const WebSocket = require(path.join(__dirname, '..', 'node_modules', 'ws'));
const { makeCert } = require('./ws_node_cert');

let TLS = null; // set by --tls: { cert, key, ca }

const SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024];
const SETS = [
  { name: 'default', flags: ['--deflate', '1'], pmd: { threshold: 0 }, expect: '' },
  { name: 'ws_asks_no_context', flags: ['--deflate', '1', '--deflate-threshold', '1'],
    pmd: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true,
      serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
    expect: 'server_no_context_takeover=true client_no_context_takeover=true ' +
            'server_max_window_bits=10 client_max_window_bits=9' },
  { name: 'server_policy', flags: ['--deflate', '1', '--deflate-threshold', '1',
    '--deflate-server-no-context', '1', '--deflate-server-bits', '12'],
    pmd: { threshold: 0 },
    expect: 'server_no_context_takeover=true server_max_window_bits=12' },
];

let passed = 0;
let failed = 0;

function textOfSize(n) { // JSON-like, with 2- and 3-byte characters, exactly n UTF-8 bytes
  const unit = '{"sym":"ABC","p":1.25,"n":"caf\u00e9 \u20ac"} ';
  const s = unit.repeat(Math.floor(n / Buffer.byteLength(unit)));
  return s + 'x'.repeat(n - Buffer.byteLength(s));
}

function binaryOfSize(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i < 2048 ? (i * 131 + 7) & 0xff : (i >> 9) & 0xff;
  return b;
}

function startServer(bin, flags) {
  return new Promise((resolve, reject) => {
    const tls = TLS ? ['--tls-cert', TLS.cert, '--tls-key', TLS.key] : []; // port 0 is then TLS-only
    const proc = spawn(bin, ['0', ...tls, ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    const onData = (d) => {
      buf += d;
      const m = buf.match(/pw-echo listening on port (\d+)\n/);
      if (m) {
        proc.stdout.removeListener('data', onData);
        proc.stdout.resume();
        resolve({ proc, port: Number(m[1]) });
      }
    };
    proc.stdout.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`pw-echo exited early (${code})`)));
  });
}

function stopServer(srv) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null) return resolve(srv.proc.exitCode);
    const t = setTimeout(() => srv.proc.kill('SIGKILL'), 20000);
    srv.proc.removeAllListeners('exit');
    srv.proc.on('exit', (code) => { clearTimeout(t); resolve(code); });
    srv.proc.kill('SIGTERM');
  });
}

function connect(port, pmd) {
  return new Promise((resolve, reject) => {
    const url = `${TLS ? 'wss' : 'ws'}://127.0.0.1:${port}/`;
    const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 0, ca: TLS ? TLS.ca : undefined });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error(`closed with ${code}`));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => {
      ws.off('close', onClose);
      resolve({ data, isBinary });
    });
  });
}

function agreement(ws) {
  const ext = ws._extensions['permessage-deflate'];
  if (!ext) throw new Error('extension not accepted');
  const p = ext.params || {};
  return Object.keys(p).sort((a, b) => order(a) - order(b)).map((k) => `${k}=${p[k]}`).join(' ');
}
function order(k) {
  return ['server_no_context_takeover', 'client_no_context_takeover',
    'server_max_window_bits', 'client_max_window_bits'].indexOf(k);
}

async function expectEcho(ws, data, isBinary, what) {
  const got = nextMessage(ws);
  const { data: back, isBinary: bin } = await got;
  const want = isBinary ? data : Buffer.from(data);
  if (bin !== isBinary || !Buffer.from(back).equals(want))
    throw new Error(`${what}: echo differs (${back.length} bytes back, ${want.length} sent)`);
}

async function runCase(name, fn) {
  try {
    await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 30000).unref())]);
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

async function runSet(bin, set, pubsub) {
  const label = set.name + (pubsub ? ' pubsub' : '') + (TLS ? ' tls' : '');
  const srv = await startServer(bin, set.flags.concat(pubsub ? ['--pubsub', '1'] : []));
  try {
    const ws = await connect(srv.port, set.pmd);
    if (TLS) {
      await runCase(`[${label}] the socket is TLS`, async () => {
        if (!ws._socket.encrypted) throw new Error('connected without TLS');
      });
    }
    await runCase(`[${label}] agreement`, async () => {
      const got = agreement(ws);
      if (got !== set.expect) throw new Error(`agreed "${got}", expected "${set.expect}"`);
    });
    for (const n of SIZES) {
      await runCase(`[${label}] text ${n} B`, async () => {
        const s = textOfSize(n);
        const p = expectEcho(ws, s, false, 'text');
        ws.send(s);
        await p;
      });
      await runCase(`[${label}] binary ${n} B`, async () => {
        const b = binaryOfSize(n);
        const p = expectEcho(ws, b, true, 'binary');
        ws.send(b, { binary: true });
        await p;
      });
    }
    await runCase(`[${label}] fragmented text (3 fragments)`, async () => {
      const parts = ['{"part":1,', '"part2":"' + 'x'.repeat(3000) + '",', '"end":true}'];
      const p = expectEcho(ws, parts.join(''), false, 'fragmented');
      ws.send(parts[0], { fin: false });
      ws.send(parts[1], { fin: false });
      ws.send(parts[2], { fin: true });
      await p;
    });
    await runCase(`[${label}] burst of 100 JSON messages in order`, async () => {
      const msgs = [];
      for (let i = 0; i < 100; i++) msgs.push(`{"seq":${i},"sym":"ABC","price":${100 + (i % 7)}.25}`);
      const got = [];
      const done = new Promise((resolve, reject) => {
        const on = (d) => { got.push(d.toString()); if (got.length === msgs.length) { ws.off('message', on); resolve(); } };
        ws.on('message', on);
      });
      for (const m of msgs) ws.send(m);
      await done;
      for (let i = 0; i < msgs.length; i++)
        if (got[i] !== msgs[i]) throw new Error(`message ${i}: ${got[i]}`);
    });
    await runCase(`[${label}] clean close`, () => new Promise((resolve, reject) => {
      ws.once('close', (code) => (code === 1000 ? resolve() : reject(new Error(`code ${code}`))));
      ws.close(1000);
    }));
  } catch (e) {
    failed++;
    console.log(`FAIL [${label}] ${e.message}`);
  } finally {
    const rc = await stopServer(srv);
    if (rc !== 0) { failed++; console.log(`FAIL [${label}] server exit status ${rc}`); }
  }
}

async function main() {
  const i = process.argv.indexOf('--server');
  if (process.argv.includes('--tls')) TLS = makeCert();
  if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: node ws_node_deflate.js --server PATH_TO_PW_ECHO [--tls]');
    process.exit(2);
  }
  for (const set of SETS) for (const pubsub of [false, true]) await runSet(process.argv[i + 1], set, pubsub);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
