#!/usr/bin/env node
// Peer for benchmarks: npm's `ws` echo server (from tests/node_modules), same contract as
// pw-echo's first line: prints "ws-echo listening on port N". Usage: ws_echo.js [PORT]
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', '..', 'tests', 'node_modules', 'ws'));
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] || 0),
                                  perMessageDeflate: false, maxPayload: 16 << 20 });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on('listening', () => console.log(`ws-echo listening on port ${wss.address().port}`));
process.on('SIGTERM', () => process.exit(0));
