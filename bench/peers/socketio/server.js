// A minimal Socket.IO broadcast server for the benchmarks: clients emit `subscribe` with a room
// name and get `subscribed` back; `POST /publish?room=R` (body = a JSON message) emits `message`
// with it to room R (parsed once, serialized once by Socket.IO for the whole room). WebSocket
// transport only, one process.
import http from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] || 8202);
const webappPort = Number(process.argv[3] || 8090);
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
// Workload D: a connection with `gate=1` is let in only once the web app says yes (one POST
// with the browser's cookies, as hookbox's connect webhook).
io.use(async (socket, next) => {
  if (!socket.handshake.query.gate) return next();
  try {
    const r = await fetch(`http://127.0.0.1:${webappPort}/connect`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: socket.handshake.headers.cookie || '',
      },
      body: 'action=connect',
    });
    await r.arrayBuffer();
    next(r.ok ? undefined : new Error('denied'));
  } catch (e) {
    next(e);
  }
});
io.on('connection', (socket) => {
  socket.on('subscribe', (room) => {
    socket.join(String(room));
    socket.emit('subscribed', String(room));
  });
});
server.listen(port, '127.0.0.1', 4096, () => console.log(`socket.io listening on ${port}`));
