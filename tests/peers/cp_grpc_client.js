#!/usr/bin/env node
// A proxyless gRPC client for ringside-cp's test: @grpc/grpc-js-xds (gRPC's own xDS client)
// resolves TARGET (xds:///<service>:<port>) from the control plane named in GRPC_XDS_BOOTSTRAP
// and makes unary calls to /helloworld.Greeter/SayHello, printing each answer as a JSON line.
//   node cp_grpc_client.js --target xds:///greeter:50051 [--calls N] [--until-from ID]
// Makes N calls (1), prints {"ready":true}; then with --until-from keeps calling on the same
// channel (every 100 ms, 15 s at most) until a backend named ID answers: how the test sees a
// change pushed on the open xDS stream take effect.
'use strict';
const path = require('path');
const NM = path.join(__dirname, '../../third_party/npm/node_modules');
const grpc = require(path.join(NM, '@grpc/grpc-js'));
require(path.join(NM, '@grpc/grpc-js-xds')).register();

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const calls = Number(args.calls || 1);
const until = args['until-from'];

const client = new grpc.Client(args.target, grpc.credentials.createInsecure());
function call(i) {
  return new Promise(res => {
    client.makeUnaryRequest('/helloworld.Greeter/SayHello', b => b, b => b, Buffer.from(`hello ${i}`),
      { deadline: Date.now() + 5000 }, (err, resp) => {
        if (err) {
          process.stdout.write(JSON.stringify({ call: i, error: err.code, details: err.details }) + '\n');
          return res(null);
        }
        const body = JSON.parse(resp.toString());
        process.stdout.write(JSON.stringify({ call: i, from: body.from, got: body.got }) + '\n');
        res(body);
      });
  });
}

(async () => {
  let ok = 0, i = 0;
  for (; i < calls; i++) if (await call(i)) ok++;
  if (ok !== calls) process.exit(1);
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  const deadlineAt = Date.now() + 15000;
  for (; until; i++) {
    await new Promise(r => setTimeout(r, 100));
    const body = await call(i);
    if (body && body.from === until) break;
    if (Date.now() > deadlineAt) { console.error(`gave up waiting for ${until}`); process.exit(1); }
  }
  client.close();
  process.exit(0);
})();
