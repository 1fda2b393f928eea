#!/usr/bin/env node
// Browser test: Debian's chromium, driven by npm's playwright-core, opens the demo page served by
// a real `pushwired --demo` process, checks that live data arrives and is drawn, kills the daemon
// and starts it again ON THE SAME PORT, and checks that the page reconnects by itself and data
// flows again; then freezes the daemon (SIGSTOP) to check the page notices a silent connection.
// Screenshots go to --out (ctest passes the test's build folder).
//
// Usage: node tests/browser/demo_page.js --daemon PATH_TO_PUSHWIRED --www examples/www --out DIR
//        [--chromium /usr/bin/chromium] [--tls]
//
// --tls (ctest browser.demo_page_tls): the same run over https:// and wss://. pushwired gets a
// self-signed certificate made now with `openssl req` (tests/interop/ws_node_cert.js, removed at
// exit) and --tls-port 0 (its port read from the "pushwired TLS on port N" log line; restarts
// reuse it); Chromium opens https://127.0.0.1:<tls>/ ignoring certificate errors, and every
// WebSocket the page opens must be wss:// (seen by playwright, not by the page's own word).
// Screenshots: demo_page_tls_live.png, demo_page_tls.png. Checked to fail without TLS (a copy
// of examples/www passed as --www, or a wrapper as --daemon): with demo.js's wsUrl() forced to
// "ws://", the page's socket reaches the TLS port as plain HTTP (pushwired logs "plain HTTP
// request on the TLS port") and the run fails "timed out waiting for live data"; with the
// --tls-* flags dropped by a wrapper: "pushwired did not start listening" (no TLS port logged);
// with ignoreHTTPSErrors false: "page.goto: net::ERR_CERT_AUTHORITY_INVALID".
//
// Everything it starts (the daemon, chromium through playwright) is stopped by pid or by
// playwright in a finally block; the fresh chromium profile (a temp dir) is removed.
//
// Checked to fail without each defence (by editing examples/www/demo.js or daemon/demo.c, running
// `ctest -R browser.demo_page`, and reverting):
//  - no subscribe on open: "timed out waiting for live data" (byTopic stays empty);
//  - no checkStale (silence ignored): "timed out waiting for the page to drop the silent connection";
//  - no retry in onClose: "page did not retry while the daemon was down" (attempts stays 1);
//  - sine chart not stroked: the pixel count of the sine colour is 0 < 150;
//  - demo.c's sine topic renamed: "timed out waiting for live data", byTopic lacking demo.sine;
//  - a wrapper printing a ThreadSanitizer warning, then exec'ing pushwired: "sanitizer report".
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const STEP_TIMEOUT_MS = 20000;   // each wait; the whole run is bounded by ctest's TIMEOUT too
const DOWN_MS = 1500;            // the daemon stays dead this long: the page must retry meanwhile
const SINE_RGB = [37, 99, 235];  // #2563eb, demo.js SINE_CHART.color

let chromium;
try {
  ({ chromium } = require(path.join(__dirname, '..', 'node_modules', 'playwright-core')));
} catch (e) {
  console.error('error: npm package playwright-core missing in tests/node_modules: run scripts/deps');
  process.exit(1);
}

function parseArgs() {
  const o = { chromium: '/usr/bin/chromium', tls: false };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--tls') { o.tls = true; i--; continue; }
    const key = argv[i].replace(/^--/, '');
    if (!['daemon', 'www', 'out', 'chromium'].includes(key) || i + 1 >= argv.length) {
      console.error(`usage: node demo_page.js --daemon PUSHWIRED --www DIR --out DIR (bad: ${argv[i]})`);
      process.exit(2);
    }
    o[key] = argv[i + 1];
  }
  for (const k of ['daemon', 'www', 'out']) {
    if (!o[k]) { console.error(`missing --${k}`); process.exit(2); }
  }
  if (!fs.existsSync(o.chromium)) {
    console.error(`error: ${o.chromium} not found: run scripts/deps (installs Debian's chromium)`);
    process.exit(1);
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const step = (text) => console.log(`-- ${text}`);

// ---- the daemon as a real process ----

// The TCP ports process pid listens on, from /proc: independent of the daemon's log format.
function listeningPorts(pid) {
  const inodes = new Set();
  let fds = [];
  try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { return []; }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch { /* fd closed meanwhile */ }
  }
  const ports = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines = [];
    try { lines = fs.readFileSync(table, 'utf8').split('\n').slice(1); } catch { continue; }
    for (const line of lines) {
      const f = line.trim().split(/\s+/); // sl local rem st ... uid timeout inode
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports;
}

class Daemon {
  // tls: null, or { cert, key } - then the page's port is the TLS one (plain listens on port 0).
  constructor(bin, www, tls) {
    this.bin = bin; this.www = www; this.tls = tls; this.proc = null; this.output = '';
  }

  // Starts `pushwired --listen 127.0.0.1:PORT --www WWW --demo` (with --tls: --listen
  // 127.0.0.1:0 --tls-port PORT and the certificate), resolves with the page's port.
  async start(port) {
    const args = this.tls
      ? ['--listen', '127.0.0.1:0', '--tls-port', `${port}`, '--tls-cert', this.tls.cert,
         '--tls-key', this.tls.key, '--www', this.www, '--demo']
      : ['--listen', `127.0.0.1:${port}`, '--www', this.www, '--demo'];
    const proc = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
    let startLog = ''; // this start's own output: the TLS port line of an earlier run must not count
    const keep = (d) => {
      this.output = (this.output + d).slice(-1000000);
      if (startLog.length < 100000) startLog += d;
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) break;
      const ports = listeningPorts(proc.pid);
      const tlsLine = /pushwired TLS on port (\d+)/.exec(startLog);
      if (this.tls && tlsLine && ports.includes(Number(tlsLine[1]))) return Number(tlsLine[1]);
      if (!this.tls && ports.length) return ports[0];
      await sleep(50);
    }
    throw new Error(`pushwired did not start listening (${args.join(' ')}); output:\n${this.tail()}`);
  }

  signal(sig) { if (this.running()) this.proc.kill(sig); }
  running() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  // Resolves with how it exited ({code, sig}); null if it was not running.
  async kill(signal) {
    const proc = this.proc;
    if (!this.running()) return null;
    proc.kill('SIGCONT'); // a frozen daemon would not act on SIGTERM
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    const how = await proc.exited;
    clearTimeout(timer);
    return how;
  }

  // A sanitizer build reports to stderr; the page alone would not notice a race in the daemon.
  sanitizerReport() {
    const m = /(Address|Thread|UndefinedBehavior|Leak)Sanitizer|runtime error:/.exec(this.output);
    return m ? this.output.slice(Math.max(0, m.index - 200), m.index + 2000) : null;
  }

  tail() { return this.output.slice(-4000); }
}

// The restarted daemon may meet the old one's sockets in TIME_WAIT: a few tries, then give up.
async function restartOnSamePort(daemon, port) {
  for (let attempt = 1; ; attempt++) {
    try { return await daemon.start(port); } catch (e) {
      if (attempt === 5) throw e;
      await daemon.kill('SIGKILL');
      await sleep(300);
    }
  }
}

// ---- the page ----

const state = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.demoState)));

async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS, polling: 100 });
  } catch (e) {
    throw new Error(`timed out waiting for ${what}; demoState = ${JSON.stringify(await state(page))}`);
  }
}

// Pixels of the sine's colour on its canvas: proof the curve is drawn, not just counted.
function sinePixels(page) {
  return page.evaluate((rgb) => {
    const c = document.getElementById('sine');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - rgb[0]) < 40 && Math.abs(d[i + 1] - rgb[1]) < 40 &&
          Math.abs(d[i + 2] - rgb[2]) < 40 && d[i + 3] > 128) n++;
    }
    return n;
  }, SINE_RGB);
}

// Live data on every topic, drawn: `since` is a demoState snapshot the counts must grow past;
// `acks` the subscribe replies expected by now (4 per connection: every open re-subscribes).
async function expectLiveData(page, since, acks) {
  await waitFor(page, 'live data on all demo topics', ([s0, n]) => {
    const s = window.demoState, t = s.byTopic, t0 = s0.byTopic;
    const grew = (k, n) => (t[k] || 0) - (t0[k] || 0) >= n;
    return s.connected && s.acks >= n && grew('demo.sine', 20) && grew('demo.cpu', 2) &&
           grew('demo.counter', 1) && grew('demo.log', 1) && s.sineDrawn >= 10 && s.frames > s0.frames;
  }, [since, acks]);
  const pixels = await sinePixels(page);
  if (pixels < 150) throw new Error(`sine chart not drawn: ${pixels} pixels of its colour`);
  return pixels;
}

// ---- the run ----

async function run(opt, daemon, cleanup) {
  const scheme = opt.tls ? 'https' : 'http';
  const shot = (name) => path.join(opt.out, `${opt.tls ? name.replace('demo_page', 'demo_page_tls') : name}.png`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-demo-chromium-'));
  cleanup.push(() => fs.rmSync(profile, { recursive: true, force: true }));
  fs.mkdirSync(opt.out, { recursive: true });

  step(`start pushwired --demo on ${opt.tls ? 'TLS ' : ''}port 0`);
  const port = await daemon.start(0);
  step(`pushwired pid ${daemon.proc.pid} listens on ${port}${opt.tls ? ' (TLS)' : ''}`);

  // playwright refuses --user-data-dir in args: a fresh profile is launchPersistentContext's dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opt.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 900 },
    // The run-time certificate is self-signed: trusted for this profile only (pages and sockets).
    ignoreHTTPSErrors: opt.tls,
  });
  cleanup.push(() => context.close());
  const page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const socketUrls = []; // every WebSocket the page opens, as the browser saw it
  page.on('websocket', (ws) => socketUrls.push(ws.url()));

  await page.goto(`${scheme}://127.0.0.1:${port}/`);
  const zero = await state(page);
  const pixels = await expectLiveData(page, zero, 4);
  const live = await state(page);
  step(`live: ${live.messages} messages, counter ${live.counter}, ${live.sineDrawn} sine points, ${pixels} px`);
  await page.screenshot({ path: shot('demo_page_live'), fullPage: true });

  step('kill pushwired (SIGKILL: no close frame) and keep it down');
  await daemon.kill('SIGKILL');
  await waitFor(page, 'the page to notice the lost connection', () => !window.demoState.connected);
  await sleep(DOWN_MS);
  const down = await state(page);
  if (down.attempts < 2) throw new Error(`page did not retry while the daemon was down: ${JSON.stringify(down)}`);
  step(`down: state ${down.state}, ${down.attempts} failed attempts, next retry in ${down.retryInMs} ms`);

  step(`restart pushwired on the same port ${port}`);
  const again = await restartOnSamePort(daemon, port);
  if (again !== port) throw new Error(`restarted daemon listens on ${again}, not ${port}`);
  await waitFor(page, 'the page to reconnect', () => window.demoState.connected &&
                window.demoState.reconnects >= 1);
  await expectLiveData(page, await state(page), 8);
  const back = await state(page);
  step(`reconnected: ${back.reconnects} reconnects, ${back.messages} messages, counter ${back.counter}`);
  await page.screenshot({ path: shot('demo_page'), fullPage: true });
  step(`screenshots: ${shot('demo_page_live')}, ${shot('demo_page')}`);

  step('freeze pushwired (SIGSTOP): no FIN, no data; the page must notice the silence');
  const before = await state(page);
  daemon.signal('SIGSTOP');
  await waitFor(page, 'the page to drop the silent connection', () => !window.demoState.connected);
  step('thaw it (SIGCONT): the page reconnects');
  daemon.signal('SIGCONT');
  await waitFor(page, 'the page to reconnect after the thaw',
                (n) => window.demoState.connected && window.demoState.opens > n, before.opens);
  await expectLiveData(page, await state(page), 12);

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
  const wantUrl = `${opt.tls ? 'wss' : 'ws'}://127.0.0.1:${port}/ws`;
  const strayUrls = socketUrls.filter((u) => u !== wantUrl);
  if (!socketUrls.length || strayUrls.length)
    throw new Error(`page sockets should all be ${wantUrl}: ${JSON.stringify(socketUrls)}`);
  step(`${socketUrls.length} page sockets, all ${wantUrl}`);

  step('stop pushwired with SIGTERM: a clean exit, no sanitizer report');
  const how = await daemon.kill('SIGTERM');
  if (!how || how.code !== 0) throw new Error(`pushwired did not exit 0 on SIGTERM: ${JSON.stringify(how)}`);
  const report = daemon.sanitizerReport();
  if (report) throw new Error(`sanitizer report from pushwired:\n${report}`);
}

async function main() {
  const opt = parseArgs();
  const tls = opt.tls ? require(path.join(__dirname, '..', 'interop', 'ws_node_cert')).makeCert('pw-demo-tls-') : null;
  const daemon = new Daemon(opt.daemon, opt.www, tls);
  const name = opt.tls ? 'browser.demo_page_tls' : 'browser.demo_page';
  const cleanup = [];
  const stopDaemon = () => { if (daemon.proc && daemon.proc.exitCode === null) daemon.proc.kill('SIGKILL'); };
  process.on('SIGTERM', () => { stopDaemon(); process.exit(1); }); // ctest timeout
  process.on('exit', stopDaemon);
  let failed = false;
  try {
    await run(opt, daemon, cleanup);
  } catch (e) {
    failed = true;
    console.error(`FAIL: ${e.message}`);
    if (daemon.output) console.error(`pushwired output (tail):\n${daemon.tail()}`);
  } finally {
    await daemon.kill('SIGTERM');
    for (const fn of cleanup.reverse()) { try { await fn(); } catch { /* best effort */ } }
  }
  console.log(`${name}: ${failed ? 'FAILED' : 'ok'}`);
  process.exit(failed ? 1 : 0);
}

main();
