// An ordinary Express app with its own login, plus a chat room through hookbox. The app keeps
// its session as usual (an HttpOnly, SameSite=Lax cookie); hookbox forwards the browser's
// cookies to the connect webhook, so the same session says who is chatting. run.sh starts it
// together with hookbox.
import express from 'express';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import {
  HookboxClient, HookboxRefusedError, allowConnect, allowCreateChannel, allowPublish,
  allowSubscribe, deny,
} from 'hookbox-sdk';
import { hookboxWebhooks } from 'hookbox-sdk/express';

const PORT = Number(process.env.PORT ?? 8000);
const HOOKBOX_URL = process.env.HOOKBOX_URL ?? 'http://127.0.0.1:8001';
const ROOM = 'lobby';
const MAX_TEXT = 500;

// The app's users (in memory, for the example): name → scrypt hash of the password.
const salt = randomBytes(16);
const hash = (password) => scryptSync(password, salt, 32);
const users = new Map([['alice', hash('wonderland')], ['bob', hash('builder')]]);
const sessions = new Map(); // session id → user name

const hookbox = new HookboxClient({ url: HOOKBOX_URL, token: process.env.HOOKBOX_API_TOKEN });
const app = express();

// hookbox's webhooks: verified, typed, answered. The raw body is read by the adapter itself.
app.use('/hookbox', hookboxWebhooks({
  secret: process.env.HOOKBOX_WEBHOOK_SECRET,
  handlers: {
    connect(event) {
      const user = sessions.get(event.cookies.sid);
      console.log(`connect webhook: ${user ?? 'no session'} (cookies: ${Object.keys(event.cookies).join(', ') || 'none'})`);
      return user ? allowConnect({ name: user }) : deny('Please log in');
    },
    create_channel: (event) => (event.channel_name === ROOM
      ? allowCreateChannel({ history_size: 20, presenceful: true })
      : deny('No such room')),
    subscribe: (event) => (event.channel_name === ROOM ? allowSubscribe() : deny('No such room')),
    publish(event) {
      const text = typeof event.payload?.text === 'string' ? event.payload.text.trim() : '';
      if (!text) return deny('Empty message');
      if (text.length > MAX_TEXT) return deny(`Message too long (at most ${MAX_TEXT} characters)`);
      return allowPublish({ override_payload: { text } });
    },
    // unsubscribe, destroy_channel and disconnect: the adapter's default approval.
  },
  onError: (error) => console.warn(`refused a webhook: ${error.message}`),
}));

const session = (req) => sessions.get(parseSid(req.headers.cookie));

app.get('/', (req, res) => {
  const user = session(req);
  res.type('html').send(user ? chatPage(user) : loginPage(req.query.failed !== undefined));
});

app.post('/login', express.urlencoded({ extended: false }), (req, res) => {
  const { user = '', password = '' } = req.body;
  const known = users.get(user);
  if (!known || !timingSafeEqual(known, hash(password))) return res.redirect(303, '/?failed');
  const sid = randomBytes(32).toString('base64url');
  sessions.set(sid, user);
  res.cookie('sid', sid, { httpOnly: true, sameSite: 'lax', path: '/' });
  res.redirect(303, '/');
  // The Web API: the app itself tells the room.
  announce(`${user} signed in`);
});

app.post('/logout', (req, res) => {
  const sid = parseSid(req.headers.cookie);
  const user = sessions.get(sid);
  sessions.delete(sid);
  res.clearCookie('sid', { path: '/' });
  res.redirect(303, '/');
  // Their open tabs leave the chat too: the session they connected with is gone.
  if (user) hookbox.disconnect({ name: user }).catch(() => { /* not connected */ });
});

async function announce(text) {
  try {
    await hookbox.publish({ channel_name: ROOM, payload: { text }, originator: 'the app' });
  } catch (error) {
    // Nobody is in the room yet (it exists while someone is): nobody to tell.
    if (!(error instanceof HookboxRefusedError)) console.warn(`announce: ${error.message}`);
  }
}

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function parseSid(header = '') {
  return /(?:^|;\s*)sid=([^;]*)/.exec(header)?.[1];
}

const layout = (body) => `<!doctype html><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Express + hookbox</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { border: 1px solid #ccc; min-height: 12rem; padding: .5rem; overflow-wrap: anywhere; }
  #presence, #status, .hint { color: #555; } #error { color: #b00; }
</style>
${body}`;

const loginPage = (failed) => layout(`
<h1>Sign in</h1>
${failed ? '<p id="error">Wrong name or password.</p>' : ''}
<form method="post" action="/login">
  <label>Name <input name="user" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button id="login">Sign in</button>
</form>
<p class="hint">Try alice / wonderland or bob / builder.</p>`);

// The page's script cannot read the HttpOnly session cookie, and needs not: the browser sends it
// with the WebSocket's upgrade, and hookbox hands it to the connect webhook.
const chatPage = (user) => layout(`
<h1>Lobby</h1>
<div>Signed in to the app as <b>${escapeHtml(user)}</b>. <form method="post" action="/logout" style="display:inline"><button>Sign out</button></form></div>
<p id="status">connecting…</p>
<p id="presence"></p>
<div id="log"></div>
<form id="say"><input id="text" maxlength="${MAX_TEXT}" autocomplete="off" placeholder="Say something"> <button id="send">Send</button></form>
<p id="error"></p>
<script src="${HOOKBOX_URL}/static/hookbox.js"></script>
<script>
  const $ = (id) => document.getElementById(id);
  const line = (who, text) => {
    const p = document.createElement('p');
    p.textContent = (who ?? '') + ': ' + text;
    $('log').append(p);
  };
  const conn = hookbox.connect(${JSON.stringify(HOOKBOX_URL)});
  let room = null;
  conn.onOpen = (args) => {
    $('status').textContent = 'connected to hookbox as ' + args.name;
    conn.subscribe(${JSON.stringify(ROOM)});
  };
  conn.onSubscribed = (name, sub) => {
    room = sub;
    $('log').textContent = '';
    for (const [type, frame] of sub.history) if (type === 'PUBLISH') line(frame.user, frame.payload.text);
    const showPresence = () => { $('presence').textContent = 'Here: ' + sub.presence.join(', '); };
    showPresence();
    sub.onPublish = (frame) => line(frame.user, frame.payload.text);
    sub.onSubscribe = showPresence;
    sub.onUnsubscribe = showPresence;
  };
  conn.onError = (err) => { $('error').textContent = err.msg; };
  conn.onConnectionLost = () => { $('status').textContent = 'reconnecting…'; };
  conn.onClose = () => { $('status').textContent = 'disconnected'; };
  $('say').onsubmit = (e) => {
    e.preventDefault();
    $('error').textContent = '';
    if (room) room.publish({ text: $('text').value });
    $('text').value = '';
  };
</script>`);

const server = app.listen(PORT, '127.0.0.1', () => {
  console.log(`Example app on http://127.0.0.1:${server.address().port}/`);
});
