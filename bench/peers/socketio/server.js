// A minimal Socket.IO broadcast server for the benchmarks: clients emit `subscribe` with a room
// name and get `subscribed` back; `POST /publish?room=R` (body = a JSON message) emits `message`
// with it to room R (parsed once, serialized once by Socket.IO for the whole room). WebSocket
// transport only, one process.
import http from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] || 8202);
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'POST' && url.pathname === '/publish') {
    let body = '';
    for await (const chunk of req) body += chunk;
    let message;
    try { message = JSON.parse(body); } catch (e) { message = body; }
    io.to(url.searchParams.get('room') || '').emit('message', message);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(server, {
  transports: ['websocket'],
  // No pings during a run (a benchmark lasts well under this).
  pingInterval: 600000,
  pingTimeout: 600000,
  perMessageDeflate: false,
  httpCompression: false,
});
io.on('connection', (socket) => {
  socket.on('subscribe', (room) => {
    socket.join(String(room));
    socket.emit('subscribed', String(room));
  });
});
server.listen(port, '127.0.0.1', 4096, () => console.log(`socket.io listening on ${port}`));
