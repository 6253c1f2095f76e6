// A real HTTP proxy in front of hookbox that can spoil chosen requests the way networks do,
// and records every request's form. Faults, taken one per request in order:
//   'lost-answer'  forward the request (hookbox acts on it), never answer the client
//   'bad-gateway'  answer 502 without forwarding
//   'reset'        close the connection without forwarding
//   'hang'         never answer, never forward
import http from 'node:http';
import { once } from 'node:events';

export async function startFaultyProxy(target) {
  const faults = [];
  const requests = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    requests.push({ path: req.url, form: Object.fromEntries(new URLSearchParams(body)) });
    const fault = faults.shift();
    if (fault === 'reset') return req.socket.destroy();
    if (fault === 'hang') return;
    if (fault === 'bad-gateway') {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      return res.end('Bad Gateway');
    }
    const answer = await fetch(target + req.url, {
      method: 'POST', headers: { 'Content-Type': req.headers['content-type'] }, body,
    });
    const text = await answer.text();
    if (fault === 'lost-answer') return;
    res.writeHead(answer.status, { 'Content-Type': answer.headers.get('content-type') ?? 'text/plain' });
    res.end(text);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Spoils the next requests, one fault each. */
    fail(...next) { faults.push(...next); },
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
