// A Node `ws` client over https against `pushbench serve ws --tls-cert ...`, for
// scripts/interop-wss.sh: binary messages of 0 B to 200 KB (several TLS records each), a text
// message, a ping, and a path the server refuses. Usage: node wss_client.js PORT CA.
// Exits 1 on the first mismatch.
const fs = require('fs');
const WebSocket = require('ws');
const [port, caFile] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const fail = (why) => { console.error(`FAIL: ${why}`); process.exit(1); };
const open = (path) => new Promise((resolve, reject) => {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { ca });
  ws.once('open', () => resolve(ws));
  ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
  ws.once('error', reject);
});
const next = (ws) => new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
(async () => {
  const ws = await open('/ws/7');
  let checked = 0;
  for (const size of [0, 1, 125, 126, 65535, 65536, 16384 * 3 + 5, 200000]) {
    const sent = Buffer.alloc(size);
    for (let i = 0; i < size; i++) sent[i] = (i * 31 + size) & 0xff;
    const reply = next(ws);
    ws.send(sent, { binary: true });
    const { data, isBinary } = await reply;
    if (!isBinary || !Buffer.from(data).equals(sent)) fail(`binary echo of ${size} bytes`);
    checked++;
  }
  const text = next(ws);
  ws.send('héllo wörld');
  const t = await text;
  if (t.isBinary || t.data.toString() !== 'héllo wörld') fail('text echo');
  checked++;
  const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
  ws.ping('are you there');
  if ((await pong) !== 'are you there') fail('pong payload');
  checked++;
  ws.close(1000);
  try {
    await open('/nowhere');
    fail('an unknown path was upgraded');
  } catch (e) {
    if (!/404/.test(e.message)) fail(`unknown path: ${e.message}`);
  }
  checked++;
  console.log(`node ws client: ${checked} checks passed over wss`);
  process.exit(0);
})().catch((e) => fail(e.stack || e));
