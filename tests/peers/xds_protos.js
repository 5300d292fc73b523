// Shared by the Node test peers: Envoy's real .proto files (from @grpc/grpc-js-xds/deps), loaded
// twice: with @grpc/proto-loader for grpc-js services, and with protobufjs for encoding and
// decoding resources carried in google.protobuf.Any.
'use strict';
const path = require('path');
const fs = require('fs');

const ROOT = process.env.RS_SRC || path.resolve(__dirname, '../..');
const NM = path.join(ROOT, 'third_party/npm/node_modules');
const DEPS = path.join(NM, '@grpc/grpc-js-xds/deps');
const INCLUDES = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(DEPS, d));

const grpc = require(path.join(NM, '@grpc/grpc-js'));
const protoLoader = require(path.join(NM, '@grpc/proto-loader'));
const protobuf = require(path.join(NM, 'protobufjs'));

// Resource types a test may put in a resources file.
const RESOURCE_PROTOS = [
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];
const ADS_PROTO = 'envoy/service/discovery/v3/ads.proto';

function loadAds() {
  const def = protoLoader.loadSync(ADS_PROTO, {
    keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs: INCLUDES,
  });
  return grpc.loadPackageDefinition(def).envoy.service.discovery.v3.AggregatedDiscoveryService;
}

let pbRoot;
function root() {
  if (pbRoot) return pbRoot;
  pbRoot = new protobuf.Root();
  pbRoot.resolvePath = (origin, target) => {
    for (const dir of INCLUDES) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  pbRoot.loadSync([ADS_PROTO, ...RESOURCE_PROTOS], { keepCase: true });
  pbRoot.resolveAll();
  return pbRoot;
}

function typeName(url) {
  return url.substring(url.lastIndexOf('/') + 1);
}

const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value',
  'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((n) => 'google.protobuf.' + n));

function camel(s) {
  return s.replace(/_([a-z0-9])/g, (m, c) => c.toUpperCase());
}

// Proto3 JSON (lowerCamel or snake_case keys, "5s" durations, bare wrapper values, Any with
// "@type") to the plain object protobufjs's fromObject takes (keepCase names).
function normalize(type, obj) {
  const full = type.fullName.slice(1);
  if (full === 'google.protobuf.Duration' && typeof obj === 'string') {
    const secs = parseFloat(obj);
    return { seconds: Math.trunc(secs), nanos: Math.round((secs - Math.trunc(secs)) * 1e9) };
  }
  if (WRAPPERS.has(full) && typeof obj !== 'object') return { value: obj };
  if (full === 'google.protobuf.Any') return encodeAny(obj);
  if (full === 'google.protobuf.Struct' || full === 'google.protobuf.Value') return obj;
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    const f = type.fields[k] || Object.values(type.fields).find((x) => camel(x.name) === k);
    if (!f) throw new Error(`${full}: unknown field "${k}"`);
    const conv = (x) => (f.resolvedType instanceof protobuf.Type ? normalize(f.resolvedType, x) : x);
    if (f.map) out[f.name] = Object.fromEntries(Object.entries(v).map(([mk, mv]) => [mk, conv(mv)]));
    else if (f.repeated) out[f.name] = v.map(conv);
    else out[f.name] = conv(v);
  }
  return out;
}

// {"@type": url, ...fields} → {type_url, value: Buffer}
function encodeAny(json) {
  const url = json['@type'];
  if (!url) throw new Error('resource without "@type"');
  const T = root().lookupType(typeName(url));
  const rest = Object.assign({}, json);
  delete rest['@type'];
  const msg = T.fromObject(normalize(T, rest));
  return { type_url: url, value: Buffer.from(T.encode(msg).finish()) };
}

// {type_url, value} → JSON object with "@type", or {"@type", "bytes": base64} if unknown.
function decodeAny(any) {
  let T;
  try {
    T = root().lookupType(typeName(any.type_url));
  } catch (e) {
    return { '@type': any.type_url, bytes: Buffer.from(any.value).toString('base64') };
  }
  const obj = T.toObject(T.decode(any.value), { longs: String, enums: String });
  return Object.assign({ '@type': any.type_url }, obj);
}

module.exports = { grpc, loadAds, encodeAny, decodeAny, ROOT };
