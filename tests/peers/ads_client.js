#!/usr/bin/env node
// A one-stream ADS client for tests, on @grpc/grpc-js with Envoy's real ads.proto.
//
//   node ads_client.js --target 127.0.0.1:PORT|unix:/path --request JSON [--delta 1]
//                      [--responses N] [--ack 1] [--timeout-ms MS]
//
// Opens StreamAggregatedResources (or DeltaAggregatedResources with --delta 1), sends the request
// (a DiscoveryRequest as JSON, snake_case keys), prints each response as one JSON line (resources
// decoded from their Any), ACKs each one when --ack 1, and after N responses (default 1) half-closes.
// The final line is {"status": code, "details": "..."}; exit code 0 when the status is OK.
'use strict';
const { grpc, loadAds, decodeAny } = require('./xds_protos.js');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const want = Number(args.responses || 1);
const delta = args.delta === '1';
const Ads = loadAds();
const client = new Ads(args.target, grpc.credentials.createInsecure());
const call = delta ? client.DeltaAggregatedResources() : client.StreamAggregatedResources();
const request = JSON.parse(args.request || '{}');
let got = 0;

const timer = setTimeout(() => {
  console.log(JSON.stringify({ status: 'timeout', responses: got }));
  process.exit(3);
}, Number(args['timeout-ms'] || 10000));

call.on('data', (resp) => {
  got++;
  const out = Object.assign({}, resp);
  if (delta) out.resources = (resp.resources || []).map((r) => Object.assign({}, r, { resource: r.resource && decodeAny(r.resource) }));
  else out.resources = (resp.resources || []).map(decodeAny);
  console.log(JSON.stringify(out));
  if (args.ack === '1') {
    const ack = { type_url: resp.type_url, response_nonce: resp.nonce };
    if (!delta) Object.assign(ack, { version_info: resp.version_info, resource_names: request.resource_names || [] });
    call.write(ack);
  }
  if (got >= want) call.end();
});
call.on('status', (st) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ status: st.code, details: st.details }));
  client.close();
  process.exitCode = st.code === 0 ? 0 : 1;
});
call.on('error', () => { /* reported by 'status' */ });
call.write(request);
