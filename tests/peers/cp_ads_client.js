#!/usr/bin/env node
// An ADS client for ringside-cp's tests, written with @grpc/grpc-js and protobufjs on Envoy's own
// .proto files (someone else's gRPC and protobuf code). It plays Envoy's startup order and prints
// one JSON line per response it gets, so the shell test can assert on them.
//
//   node cp_ads_client.js --target 127.0.0.1:PORT|unix:/path --scenario NAME [--node ID]
//
// Scenarios:
//   sotw          CDS (wildcard), EDS (the EDS clusters), LDS (wildcard), RDS (the routes the
//                 listeners name), each ACKed, except RDS which is NACKed; then prints READY and
//                 waits (10 s at most) for one pushed response, ACKs it, and ends the stream.
//   delta         the same on DeltaAggregatedResources (the RDS response is NACKed too); the push
//                 awaited after READY is printed with its removed_resources.
//   delta-resume  a delta CDS stream; then a second stream that sends the versions it got, plus
//                 one made-up cluster, as initial_resource_versions: expects only the removal.
//   no-node       a first request without a node: prints the status the server ends with.
//   bad-id        a first request whose node id is not Istio's sidecar form (and not gRPC's).
'use strict';
const path = require('path');
const NM = path.join(__dirname, '../../third_party/npm/node_modules');
const grpc = require(path.join(NM, '@grpc/grpc-js'));
const protobuf = require(path.join(NM, 'protobufjs'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const target = args.target;
const scenario = args.scenario || 'sotw';
const nodeId = args.node || 'sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local';

const DEPS = path.join(NM, '@grpc/grpc-js-xds/deps');
const root = new protobuf.Root();
const includes = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map(d => path.join(DEPS, d))
  .concat([path.join(NM, 'protobufjs'), '/usr/include']);
root.resolvePath = (origin, target) => {
  for (const dir of includes) {
    const p = path.join(dir, target);
    if (require('fs').existsSync(p)) return p;
  }
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync(['envoy/service/discovery/v3/ads.proto', 'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/listener/v3/listener.proto', 'envoy/config/route/v3/route.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto'],
  { keepCase: true });
const T = n => root.lookupType(n);
const DiscoveryRequest = T('envoy.service.discovery.v3.DiscoveryRequest');
const DiscoveryResponse = T('envoy.service.discovery.v3.DiscoveryResponse');
const DeltaRequest = T('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const DeltaResponse = T('envoy.service.discovery.v3.DeltaDiscoveryResponse');
const HCM = T('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');

const P = 'type.googleapis.com/';
const URL = {
  CDS: P + 'envoy.config.cluster.v3.Cluster', EDS: P + 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  LDS: P + 'envoy.config.listener.v3.Listener', RDS: P + 'envoy.config.route.v3.RouteConfiguration',
};
const SHORT = Object.fromEntries(Object.entries(URL).map(([k, v]) => [v, k]));
const node = { id: nodeId, cluster: 'productpage.default', user_agent_name: 'envoy' };

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }
function die(msg) { out({ error: msg }); process.exit(1); }
setTimeout(() => die('scenario timed out'), 20000).unref();

const client = new grpc.Client(target, grpc.credentials.createInsecure());
function open(delta) {
  const Req = delta ? DeltaRequest : DiscoveryRequest, Resp = delta ? DeltaResponse : DiscoveryResponse;
  const method = '/envoy.service.discovery.v3.AggregatedDiscoveryService/' +
    (delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources');
  const call = client.makeBidiStreamRequest(method,
    o => Buffer.from(Req.encode(Req.fromObject(o)).finish()),
    b => Resp.toObject(Resp.decode(b), { longs: Number, defaults: true }));
  const queue = [], waiters = [];
  let ended = null;
  call.on('data', m => { if (waiters.length) waiters.shift()(m); else queue.push(m); });
  call.on('error', e => { ended = { status: e.code, details: e.details }; while (waiters.length) waiters.shift()(null); });
  call.on('end', () => { if (!ended) ended = { status: 0 }; while (waiters.length) waiters.shift()(null); });
  return {
    send: o => call.write(o),
    next: (ms = 5000) => new Promise(res => {
      if (queue.length) return res(queue.shift());
      if (ended) return res(null);
      const t = setTimeout(() => res(undefined), ms);
      waiters.push(m => { clearTimeout(t); res(m); });
    }),
    ended: () => ended,
    end: () => call.end(),
    cancel: () => call.cancel(),
  };
}

// Resource names of a SotW response (decoding each Any) or a delta one (names are given).
function decode(type, any) { return T(SHORT[type] ? typeOf(type) : type).decode(any.value); }
function typeOf(url) { return url.replace(P, ''); }
function sotwNames(resp) {
  return resp.resources.map(a => T(typeOf(resp.type_url)).decode(a.value).name ||
    T(typeOf(resp.type_url)).decode(a.value).cluster_name);
}
function rdsNames(listeners) {
  const names = new Set();
  for (const l of listeners)
    for (const fc of l.filter_chains || [])
      for (const f of fc.filters || [])
        if (f.typed_config && f.typed_config.type_url.endsWith('HttpConnectionManager')) {
          const h = HCM.decode(f.typed_config.value);
          if (h.rds) names.add(h.rds.route_config_name);
        }
  return [...names];
}

async function sotw() {
  const s = open(false);
  const got = {};
  const step = async (type, names, nack) => {
    s.send({ node: Object.keys(got).length ? undefined : node, type_url: URL[type], resource_names: names });
    const r = await s.next();
    if (!r) die(`no ${type} response (${JSON.stringify(s.ended())})`);
    got[type] = r;
    const decoded = r.resources.map(a => T(typeOf(r.type_url)).decode(a.value));
    out({ type, version: r.version_info, nonce: r.nonce, names: sotwNames(r) });
    s.send({ type_url: URL[type], resource_names: names, version_info: nack ? '' : r.version_info,
      response_nonce: r.nonce,
      error_detail: nack ? { code: 3, message: 'test NACK: route rejected on purpose' } : undefined });
    return decoded;
  };
  const clusters = await step('CDS', []);
  await step('EDS', clusters.filter(c => c.type === 3 || c.type === 'EDS').map(c => c.name));
  const listeners = await step('LDS', []);
  await step('RDS', rdsNames(listeners), true);
  // A stale nonce is ignored: no response comes for it.
  s.send({ type_url: URL.CDS, resource_names: [], response_nonce: 'stale-nonce', version_info: '' });
  out({ ready: true });
  const push = await s.next(10000);
  if (!push) die('no push after READY');
  out({ push: SHORT[push.type_url], version: push.version_info, names: sotwNames(push) });
  s.end();
  await s.next(2000);
  out({ done: true, end: s.ended() });
}

async function delta() {
  const s = open(true);
  let first = true;
  const step = async (type, subscribe, nack) => {
    s.send({ node: first ? node : undefined, type_url: URL[type], resource_names_subscribe: subscribe });
    first = false;
    const r = await s.next();
    if (!r) die(`no ${type} response (${JSON.stringify(s.ended())})`);
    out({ type, nonce: r.nonce, names: r.resources.map(x => x.name),
      versions: Object.fromEntries(r.resources.map(x => [x.name, x.version])), removed: r.removed_resources });
    s.send({ type_url: URL[type], response_nonce: r.nonce,
      error_detail: nack ? { code: 3, message: 'test NACK: route rejected on purpose' } : undefined });
    return r.resources.map(x => T(typeOf(type === 'CDS' ? URL.CDS : URL[type])).decode(x.resource.value));
  };
  const clusters = await step('CDS', []);
  await step('EDS', clusters.filter(c => c.type === 3).map(c => c.name));
  const listeners = await step('LDS', []);
  await step('RDS', rdsNames(listeners), true);
  out({ ready: true });
  const push = await s.next(10000);
  if (!push) die('no push after READY');
  out({ push: SHORT[push.type_url], names: push.resources.map(x => x.name), removed: push.removed_resources });
  s.send({ type_url: push.type_url, response_nonce: push.nonce });
  s.end();
  await s.next(2000);
  out({ done: true, end: s.ended() });
}

async function deltaResume() {
  const a = open(true);
  a.send({ node, type_url: URL.CDS });
  const r1 = await a.next();
  if (!r1) die('no first CDS response');
  a.send({ type_url: URL.CDS, response_nonce: r1.nonce });
  a.cancel();
  const versions = Object.fromEntries(r1.resources.map(x => [x.name, x.version]));
  versions['outbound|1||gone.default.svc.cluster.local'] = 'feedface';
  const b = open(true);
  b.send({ node, type_url: URL.CDS, initial_resource_versions: versions });
  const r2 = await b.next();
  if (!r2) die('no CDS response after resume');
  out({ first: r1.resources.length, resumed: r2.resources.map(x => x.name), removed: r2.removed_resources });
  b.cancel();
}

async function noNode(id) {
  const s = open(false);
  s.send({ node: id ? { id, user_agent_name: 'envoy' } : undefined, type_url: URL.CDS });
  const r = await s.next();
  out({ response: r ? true : false, end: s.ended() });
}

const run = { sotw, delta, 'delta-resume': deltaResume, 'no-node': () => noNode(null),
  'bad-id': () => noNode('just-a-name') }[scenario];
if (!run) die('unknown scenario ' + scenario);
run().then(() => { client.close(); process.exit(0); }, e => die(String(e && e.stack || e)));
