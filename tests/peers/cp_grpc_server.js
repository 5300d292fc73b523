#!/usr/bin/env node
// A plain grpc-js server for ringside-cp's proxyless test: answers /helloworld.Greeter/SayHello
// with {"from": ID, "got": <request>} (JSON bytes: gRPC does not care how messages are encoded).
//   node cp_grpc_server.js --addr 127.0.0.14:PORT --id NAME
'use strict';
const path = require('path');
const grpc = require(path.join(__dirname, '../../third_party/npm/node_modules/@grpc/grpc-js'));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const raw = { serialize: b => b, deserialize: b => b };
const service = {
  SayHello: {
    path: '/helloworld.Greeter/SayHello', requestStream: false, responseStream: false,
    requestSerialize: raw.serialize, requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize, responseDeserialize: raw.deserialize,
  },
};
const server = new grpc.Server();
server.addService(service, {
  SayHello: (call, cb) => cb(null, Buffer.from(JSON.stringify({ from: args.id, got: call.request.toString() }))),
});
server.bindAsync(args.addr, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) { console.error(`bind ${args.addr}: ${err.message}`); process.exit(1); }
  console.log(`listening on ${args.addr} as ${args.id}`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
