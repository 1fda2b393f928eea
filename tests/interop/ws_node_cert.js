// A self-signed certificate for 127.0.0.1/localhost, made at run time with `openssl req` in a
// temporary directory that is removed when the process exits (private keys are never committed).
// Shared by the node tests that speak wss:// (interop/ws_node*.js, browser/demo_page.js).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

// Returns { dir, cert, key, ca }: the PEM file paths and the certificate text a client trusts.
function makeCert(prefix = 'pw-tls-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=pushwire-test',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { dir, cert, key, ca: fs.readFileSync(cert) };
}

module.exports = { makeCert };
