// A Node `ws` echo server over https (Node's TLS: OpenSSL), for scripts/interop-wss.sh.
// Usage: node wss_echo_server.js PORT CERT KEY SECONDS. Echoes every message as it came (text
// or binary); `ws` answers pings itself. Counts what it saw and prints it when it stops.
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');
const [port, cert, key, seconds] = process.argv.slice(2);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ server, maxPayload: 16 << 20 });
let connections = 0, messages = 0;
wss.on('connection', (ws) => {
  connections++;
  ws.on('message', (data, isBinary) => { messages++; ws.send(data, { binary: isBinary }); });
});
server.listen(Number(port), '127.0.0.1');
setTimeout(() => {
  console.log(`node ws server: ${connections} connections, ${messages} messages echoed`);
  process.exit(0);
}, Number(seconds) * 1000);
