#!/usr/bin/env node
// An ADS server for tests, on @grpc/grpc-js with Envoy's real ads.proto: state of the world
// (StreamAggregatedResources) and incremental (DeltaAggregatedResources).
//
//   node ads_server.js --resources FILE --log FILE [--port N] [--uds PATH] [--control FILE]
//
// Prints "listening <port>" once bound (port 0 picks one). Every request received is one JSON line
// in the log: stream id, kind (sotw|delta), type_url, version_info, response_nonce, resource_names,
// error_detail, node (when present); delta: resource_names_subscribe/unsubscribe,
// initial_resource_versions. Each response sent is a line with "sent": {...}.
//
// Resources file: { "<type URL>": { "version": "1", "resources": [ {"@type": ..., ...} ] }, ...,
//   "_fail": { "node_id": "...", "code": 9, "message": "..." } }   (optional: streams from that
// node are ended with that status after their first request, to test trailers).
// SIGHUP, or a change of the --control file's contents, re-reads it and pushes what changed to
// every stream: SotW a new version and nonce per changed type, delta only changed resources and
// removed_resources.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { grpc, loadAds, encodeAny } = require('./xds_protos.js');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.resources || !args.log) {
  console.error('usage: ads_server.js --resources FILE --log FILE [--port N] [--uds PATH] [--control FILE]');
  process.exit(2);
}
const logFd = fs.openSync(args.log, 'a');
const log = (obj) => fs.writeSync(logFd, JSON.stringify(obj) + '\n');

const WILDCARD_TYPES = new Set([
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.listener.v3.Listener',
]);

// types: url -> { version, byName: Map(name -> { any, version }) }
let types = new Map();
let failRule = null;

function resourceName(json) {
  return json.name || json.cluster_name || json.clusterName || '';
}

function load() {
  const doc = JSON.parse(fs.readFileSync(args.resources, 'utf8'));
  const next = new Map();
  for (const [url, t] of Object.entries(doc)) {
    if (url === '_fail') continue;
    const byName = new Map();
    for (const r of t.resources || []) {
      const any = encodeAny(r);
      const version = crypto.createHash('sha256').update(any.value).digest('hex').slice(0, 12);
      byName.set(resourceName(r), { any, version });
    }
    next.set(url, { version: String(t.version || '1'), byName });
  }
  types = next;
  failRule = doc._fail || null;
}

let nonceSeq = 0;
const nextNonce = () => String(++nonceSeq);
let streamSeq = 0;
const streams = new Set();

function nodeOf(req, st) {
  if (req.node) st.node = req.node;
  return st.node;
}

function maybeFail(call, st) {
  if (!failRule || !st.node || st.node.id !== failRule.node_id) return false;
  call.emit('error', { code: failRule.code, details: failRule.message });
  return true;
}

// ---- state of the world ------------------------------------------------------------------------

function sotwSend(st, url) {
  const t = types.get(url);
  const sub = st.subs.get(url);
  if (!t || !sub) return;
  const wildcard = sub.wildcard;
  const resources = [];
  for (const [name, r] of t.byName) if (wildcard || sub.names.has(name)) resources.push(r.any);
  const resp = { version_info: t.version, resources, type_url: url, nonce: nextNonce() };
  sub.nonce = resp.nonce;
  sub.version = t.version;
  st.call.write(resp);
  log({ stream: st.id, sent: { type_url: url, version_info: resp.version_info, nonce: resp.nonce, resources: resources.length } });
}

function onSotwRequest(st, req) {
  const url = req.type_url;
  const entry = { stream: st.id, kind: 'sotw', type_url: url, version_info: req.version_info || '',
    response_nonce: req.response_nonce || '', resource_names: req.resource_names || [] };
  if (req.error_detail) entry.error_detail = req.error_detail;
  if (req.node) entry.node = req.node;
  log(entry);
  nodeOf(req, st);
  if (maybeFail(st.call, st)) return;
  const names = new Set(req.resource_names || []);
  const wildcard = WILDCARD_TYPES.has(url) && (names.size === 0 || names.has('*'));
  const sub = st.subs.get(url);
  const sameNames = sub && sub.wildcard === wildcard && sub.names.size === names.size &&
    [...names].every((n) => sub.names.has(n));
  if (sub && req.response_nonce && req.response_nonce !== sub.nonce) return; // stale: ignore
  if (sub && sameNames) return; // ACK or NACK of the current response: nothing to send
  st.subs.set(url, { names, wildcard, nonce: sub ? sub.nonce : '', version: '' });
  sotwSend(st, url);
}

function sotwPush(st) {
  for (const [url, sub] of st.subs) {
    const t = types.get(url);
    if (t && t.version !== sub.version) sotwSend(st, url);
  }
}

// ---- delta ---------------------------------------------------------------------------------------

function deltaSend(st, url) {
  const t = types.get(url) || { version: '', byName: new Map() };
  const sub = st.subs.get(url);
  if (!sub) return;
  const resources = [];
  const removed = [];
  for (const [name, r] of t.byName) {
    if (!sub.wildcard && !sub.names.has(name)) continue;
    if (sub.known.get(name) === r.version) continue;
    resources.push({ name, version: r.version, resource: r.any });
    sub.known.set(name, r.version);
  }
  for (const name of [...sub.known.keys()]) {
    if (!t.byName.has(name) || (!sub.wildcard && !sub.names.has(name))) {
      removed.push(name);
      sub.known.delete(name);
    }
  }
  if (!resources.length && !removed.length) return;
  const resp = { system_version_info: t.version, resources, type_url: url, removed_resources: removed, nonce: nextNonce() };
  st.call.write(resp);
  log({ stream: st.id, sent: { type_url: url, nonce: resp.nonce, resources: resources.map((r) => r.name), removed_resources: removed } });
}

function onDeltaRequest(st, req) {
  const url = req.type_url;
  const entry = { stream: st.id, kind: 'delta', type_url: url, response_nonce: req.response_nonce || '',
    resource_names_subscribe: req.resource_names_subscribe || [],
    resource_names_unsubscribe: req.resource_names_unsubscribe || [],
    initial_resource_versions: req.initial_resource_versions || {} };
  if (req.error_detail) entry.error_detail = req.error_detail;
  if (req.node) entry.node = req.node;
  log(entry);
  nodeOf(req, st);
  if (maybeFail(st.call, st)) return;
  let sub = st.subs.get(url);
  const subscribe = req.resource_names_subscribe || [];
  if (!sub) {
    // First request for the type: an empty subscribe list means wildcard for CDS/LDS.
    sub = { names: new Set(), wildcard: WILDCARD_TYPES.has(url) && subscribe.length === 0, known: new Map() };
    for (const [n, v] of Object.entries(req.initial_resource_versions || {})) sub.known.set(n, v);
    st.subs.set(url, sub);
  }
  for (const n of subscribe) if (n === '*') sub.wildcard = true; else sub.names.add(n);
  for (const n of req.resource_names_unsubscribe || []) if (n === '*') sub.wildcard = false; else sub.names.delete(n);
  if (req.response_nonce && !subscribe.length && !(req.resource_names_unsubscribe || []).length) return; // ACK/NACK
  deltaSend(st, url);
}

function deltaPush(st) {
  for (const url of st.subs.keys()) deltaSend(st, url);
}

// ---- server --------------------------------------------------------------------------------------

function serveStream(kind) {
  return (call) => {
    const st = { id: ++streamSeq, call, kind, subs: new Map(), node: null };
    streams.add(st);
    call.on('data', (req) => {
      try {
        (kind === 'sotw' ? onSotwRequest : onDeltaRequest)(st, req);
      } catch (e) {
        console.error(`stream ${st.id}: ${e.stack}`);
      }
    });
    call.on('end', () => { streams.delete(st); call.end(); });
    call.on('error', () => streams.delete(st));
    call.on('cancelled', () => streams.delete(st));
  };
}

function reload(why) {
  try {
    load();
  } catch (e) {
    console.error(`reload (${why}) failed, keeping the previous resources: ${e.message}`);
    return;
  }
  log({ reloaded: why });
  for (const st of streams) (st.kind === 'sotw' ? sotwPush : deltaPush)(st);
}

load();
const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
server.addService(loadAds().service, {
  StreamAggregatedResources: serveStream('sotw'),
  DeltaAggregatedResources: serveStream('delta'),
});
process.on('SIGHUP', () => reload('SIGHUP'));
process.on('SIGTERM', () => { server.forceShutdown(); process.exit(0); });
if (args.control) {
  let last = fs.existsSync(args.control) ? fs.readFileSync(args.control, 'utf8') : null;
  setInterval(() => {
    const now = fs.existsSync(args.control) ? fs.readFileSync(args.control, 'utf8') : null;
    if (now !== last) { last = now; reload('control file'); }
  }, 100);
}

const binds = [`127.0.0.1:${args.port || 0}`];
if (args.uds) { try { fs.unlinkSync(args.uds); } catch (e) { /* not there */ } binds.push(`unix:${args.uds}`); }
let pending = binds.length;
let tcpPort = 0;
for (const addr of binds) {
  server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) { console.error(`bind ${addr}: ${err.message}`); process.exit(1); }
    if (addr.startsWith('127.')) tcpPort = port;
    if (--pending === 0) console.log(`listening ${tcpPort}`);
  });
}
