// Node's `eventsource` package (v2) against `pushbench serve ws`'s /events/{subscriber}, for
// scripts/interop-sse.sh. It publishes through the server's control port (33-byte records, see
// src/websocket/proto.rs), checks each event's id and data, then has the server end the stream
// (a drop with code 1000): the client must reconnect by itself with Last-Event-ID, which the
// server reports as a resume from the next sequence (a 13-byte RESUME record), and get the
// next events. Usage: node sse_client.js PORT CONTROL_PORT. Exits 1 on the first mismatch.
const net = require('net');
const EventSource = require('eventsource');
const [port, controlPort] = process.argv.slice(2).map(Number);
const fail = (why) => { console.error(`FAIL: ${why}`); process.exit(1); };
setTimeout(() => fail('timed out'), 15000);
const SUB = 3, PAYLOAD = 200;
const record = (tag, sub, seq, len) => {
  const b = Buffer.alloc(33);
  const now = BigInt(Date.now()) * 1000n;
  b.writeUInt8(tag, 0);
  b.writeUInt32LE(sub, 1);
  b.writeBigUInt64LE(BigInt(seq), 5);
  b.writeBigUInt64LE(now, 13);
  b.writeBigUInt64LE(now, 21);
  b.writeUInt32LE(len, 29);
  return b;
};
const ctl = net.connect(controlPort, '127.0.0.1');
let holds = 0, pending = Buffer.alloc(0);
ctl.on('data', (d) => {
  pending = Buffer.concat([pending, d]);
  while (pending.length >= 5) {
    const tag = pending[0], sub = pending.readUInt32LE(1);
    const len = tag === 4 ? 13 : 5;
    if (pending.length < len) break;
    const resumeFrom = tag === 4 ? Number(pending.readBigUInt64LE(5)) : null;
    pending = pending.subarray(len);
    if ((tag !== 1 && tag !== 4) || sub !== SUB) continue;
    // Each time the stream is (re)opened, five more events; a reopened one resumes after the
    // Last-Event-ID the client sent.
    const from = holds * 5;
    if (holds > 0 && resumeFrom !== from) fail(`resumed from ${resumeFrom}, expected ${from}`);
    holds++;
    for (let seq = from; seq < from + 5; seq++) ctl.write(record(1, SUB, seq, PAYLOAD));
  }
});
let next = 0;
const es = new EventSource(`http://127.0.0.1:${port}/events/${SUB}`);
es.onerror = () => {}; // the end of the first stream; it reconnects
es.onmessage = (e) => {
  const [seq, intended, sent, sub] = e.data.split(' ');
  if (Number(seq) !== next) fail(`event ${seq}, expected ${next}`);
  if (e.lastEventId !== String(next)) fail(`lastEventId ${e.lastEventId}, expected ${next}`);
  if (Number(sub) !== SUB || e.data.length !== PAYLOAD) fail(`data ${e.data}`);
  if (!(Number(intended) > 0 && Number(sent) > 0)) fail(`times in ${e.data}`);
  next++;
  if (next === 5) ctl.write(record(2, 0, 1000, 1000)); // end every stream, cleanly
  if (next === 10) {
    if (holds !== 2) fail(`${holds} streams opened, expected 2`);
    console.log('node eventsource client: 10 events in order over 2 streams (reconnected by itself, resumed after its Last-Event-ID)');
    process.exit(0);
  }
};
