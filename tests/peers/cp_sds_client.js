#!/usr/bin/env node
// An SDS client for ringside-cp's CA tests, written with @grpc/grpc-js and protobufjs on Envoy's
// .proto files. It subscribes to the secrets Istio's agent serves, `default` and `ROOTCA`, in
// state of the world, either over ADS or on SDS's own service (as Envoy does on Istio's workload
// socket), ACKs each response, and writes what it gets as PEM files for the openssl CLI:
//
//   node cp_sds_client.js --target 127.0.0.1:PORT|unix:/path --service ads|sds --out DIR
//                         [--node ID] [--pushes N] [--wait-ms MS]
//
// One JSON line per response: {"n": i, "version", "names", "cert": "DIR/cert-i.pem",
// "key": "DIR/key-i.pem", "root": "DIR/root.pem"}; after N pushes (default 1) beyond the first
// response it prints {"done": true}; {"error": ...} and exit 1 when a response does not come
// within --wait-ms (default 5000).
'use strict';
const fs = require('fs');
const path = require('path');
const NM = path.join(__dirname, '../../third_party/npm/node_modules');
const grpc = require(path.join(NM, '@grpc/grpc-js'));
const protobuf = require(path.join(NM, 'protobufjs'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const nodeId = args.node || 'sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local';
const pushes = Number(args.pushes || 1), waitMs = Number(args['wait-ms'] || 5000);
const outDir = args.out;

const DEPS = path.join(NM, '@grpc/grpc-js-xds/deps');
const root = new protobuf.Root();
const includes = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map(d => path.join(DEPS, d))
  .concat([path.join(NM, 'protobufjs'), '/usr/include']);
root.resolvePath = (origin, target) => {
  for (const dir of includes) {
    const p = path.join(dir, target);
    if (fs.existsSync(p)) return p;
  }
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync(['envoy/service/discovery/v3/ads.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto'], { keepCase: true });
const DiscoveryRequest = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const DiscoveryResponse = root.lookupType('envoy.service.discovery.v3.DiscoveryResponse');
const Secret = root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret');
const SECRET_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const METHOD = args.service === 'sds'
  ? '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets'
  : '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }
function die(msg) { out({ error: msg }); process.exit(1); }

const client = new grpc.Client(args.target, grpc.credentials.createInsecure());
const call = client.makeBidiStreamRequest(METHOD,
  o => Buffer.from(DiscoveryRequest.encode(DiscoveryRequest.fromObject(o)).finish()),
  b => DiscoveryResponse.decode(b));
const names = ['default', 'ROOTCA'];
let n = 0, timer = null;
const arm = () => { clearTimeout(timer); timer = setTimeout(() => die(`no response ${n} within ${waitMs} ms`), waitMs); };
call.on('error', e => die(`stream ended: ${e.code} ${e.details}`));
call.on('data', r => {
  const got = { n, version: r.version_info, names: [] };
  for (const any of r.resources) {
    const s = Secret.decode(any.value);
    got.names.push(s.name);
    if (s.tls_certificate) {
      got.cert = path.join(outDir, `cert-${n}.pem`);
      got.key = path.join(outDir, `key-${n}.pem`);
      fs.writeFileSync(got.cert, s.tls_certificate.certificate_chain.inline_bytes);
      fs.writeFileSync(got.key, s.tls_certificate.private_key.inline_bytes);
    }
    if (s.validation_context) {
      got.root = path.join(outDir, 'root.pem');
      fs.writeFileSync(got.root, s.validation_context.trusted_ca.inline_bytes);
    }
  }
  out(got);
  call.write({ type_url: SECRET_URL, resource_names: names, version_info: r.version_info, response_nonce: r.nonce });
  if (n++ >= pushes) {
    clearTimeout(timer);
    out({ done: true });
    call.end();
    client.close();
    process.exit(0);
  }
  arm();
});
call.write({ node: { id: nodeId, cluster: 'productpage.default', user_agent_name: 'envoy' },
  type_url: SECRET_URL, resource_names: names });
arm();
