/*
 * hookbox admin console: a single page over /admin/api (JSON, session cookie) and one WebSocket
 * (/admin/api/live) that pushes the overview every second and the events of a watched channel.
 * No dependencies, no build step; served from the binary.
 */
(function () {
  'use strict';

  const $ = (sel) => document.querySelector(sel);
  const view = $('#view');

  // --- helpers ---------------------------------------------------------------------------------

  /** Builds an element: el('td', {class: 'num'}, 'text', child, …). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmtTime(ms) {
    return ms ? new Date(ms).toLocaleString() : '';
  }

  function fmtDuration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }

  function fmtRate(r) {
    return r >= 100 ? Math.round(r).toLocaleString() : (Math.round(r * 10) / 10).toLocaleString();
  }

  let flashTimer = null;
  function flash(text, bad) {
    const f = $('#flash');
    f.textContent = text;
    f.className = 'flash' + (bad ? ' bad' : '');
    f.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { f.hidden = true; }, 4000);
  }

  class Unauthorized extends Error {}

  /** Calls the admin API; JSON in, JSON out. A 401 shows the login form. */
  async function api(method, path, body) {
    const init = { method, headers: { 'X-Hookbox-Admin': '1' }, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch('/admin/api/' + path, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    if (resp.status === 401) {
      showLogin();
      throw new Unauthorized((data && data.error) || 'not logged in');
    }
    if (!resp.ok) throw new Error((data && data.error) || ('HTTP ' + resp.status));
    return data;
  }

  // --- login -----------------------------------------------------------------------------------

  function showLogin(message) {
    stopLive();
    $('#app').hidden = true;
    $('#login-view').hidden = false;
    const err = $('#login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('#password').focus();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const password = $('#password').value;
    try {
      const resp = await fetch('/admin/api/login', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Hookbox-Admin': '1' },
        body: JSON.stringify({ password }),
      });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) return showLogin(data.error || ('HTTP ' + resp.status));
      $('#password').value = '';
      start();
    } catch (e) {
      showLogin(String(e.message || e));
    }
  });

  $('#logout').addEventListener('click', async () => {
    try { await api('POST', 'logout', {}); } catch (e) { /* shown as the login form anyway */ }
    showLogin();
  });

  // --- live updates ----------------------------------------------------------------------------

  let live = null;
  let liveRetry = null;
  let lastOverview = null;
  const overviewListeners = new Set();
  let eventListener = null;
  let watched = null;

  function startLive() {
    if (live) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/admin/api/live';
    const ws = live = new WebSocket(url);
    ws.onopen = () => {
      $('#live').textContent = 'live';
      $('#live').className = 'live on';
      if (watched) ws.send(JSON.stringify({ watch: watched }));
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.type === 'overview') {
        lastOverview = msg;
        for (const f of overviewListeners) f(msg);
      } else if (msg.type === 'event' && eventListener && msg.channel === watched) {
        eventListener(msg);
      }
    };
    ws.onclose = (ev) => {
      if (live !== ws) return;
      live = null;
      $('#live').textContent = 'offline';
      $('#live').className = 'live off';
      if (ev.code === 4401) return showLogin('Your session expired: log in again.');
      liveRetry = setTimeout(startLive, 2000);
    };
  }

  function stopLive() {
    clearTimeout(liveRetry);
    if (live) { const ws = live; live = null; ws.close(); }
  }

  function watch(channel, onEvent) {
    watched = channel;
    eventListener = onEvent;
    if (live && live.readyState === 1) live.send(JSON.stringify({ watch: channel }));
  }

  // --- views -----------------------------------------------------------------------------------

  function card(label, value, id) {
    return el('div', { class: 'card panel' }, el('div', { class: 'label' }, label),
      el('div', { class: 'value', id }, value));
  }

  function renderOverview() {
    view.replaceChildren(
      el('div', { class: 'cards', id: 'cards' }),
      el('h2', {}, 'Nodes'),
      el('div', { class: 'scroll' }, el('table', { id: 'nodes' })),
    );
    const paint = (o) => {
      const conns = Object.entries(o.connections || {});
      $('#cards').replaceChildren(
        card('version', o.version),
        card('uptime', fmtDuration(o.uptime_s)),
        card('engine', o.engine),
        card('connections', conns.reduce((a, [, n]) => a + n, 0), 'connections'),
        ...conns.map(([t, n]) => card(t, n, 'transport-' + t)),
        card('users', o.users, 'users'),
        card('channels', o.channels, 'channels'),
        card('publishes / s', fmtRate(o.rates.publishes)),
        card('deliveries / s', fmtRate(o.rates.deliveries)),
        card('webhooks / s', fmtRate(o.rates.webhooks)),
        card('webhook p50 / p99', o.webhook_ms.p50 === null ? '–'
          : o.webhook_ms.p50 + ' / ' + o.webhook_ms.p99 + ' ms'),
      );
      $('#nodes').replaceChildren(
        el('tr', {}, el('th', {}, 'node'), el('th', {}, 'address'), el('th', {}, 'since'),
          el('th', {}, 'connections'), el('th', {}, 'state')),
        ...o.nodes.map((n) => el('tr', {},
          el('td', { class: 'mono' }, n.id + (n.this ? ' (this one)' : '')),
          el('td', {}, n.address || ''),
          el('td', {}, fmtTime(n.since)),
          el('td', { class: 'num' }, n.connections),
          el('td', { class: n.alive ? 'alive' : 'dead' }, n.alive ? 'alive' : 'dead'))),
      );
    };
    overviewListeners.clear();
    overviewListeners.add(paint);
    if (lastOverview) paint(lastOverview);
    else api('GET', 'overview').then(paint).catch(report);
  }

  async function renderChannels() {
    const data = await api('GET', 'channels');
    view.replaceChildren(
      el('h2', {}, 'Channels (' + data.channels.length + (data.truncated ? '+' : '') + ')'),
      el('table', { id: 'channel-list' },
        el('tr', {}, el('th', {}, 'name'), el('th', {}, 'subscribers')),
        ...data.channels.map((c) => el('tr', {},
          el('td', {}, el('a', { href: '#/channels/' + encodeURIComponent(c.name) }, c.name)),
          el('td', { class: 'num' }, c.subscribers)))),
    );
  }

  async function renderChannel(name) {
    const info = await api('GET', 'channels/' + encodeURIComponent(name));
    const options = Object.assign({}, info.options);
    const history = options.history || [];
    delete options.history;
    const editor = el('textarea', { id: 'options', spellcheck: 'false' }, JSON.stringify(options, null, 2));
    const payload = el('textarea', { id: 'payload', spellcheck: 'false' }, '{"text": "hello from the console"}');
    const events = el('ul', { id: 'events', class: 'events mono' });
    view.replaceChildren(
      el('h2', {}, 'Channel ', el('code', {}, name)),
      el('div', { class: 'row' },
        el('div', { class: 'panel' },
          el('h2', {}, 'Options'),
          editor,
          el('div', { class: 'toolbar' }, el('button', { id: 'save-options', onclick: async () => {
            let opts;
            try { opts = JSON.parse(editor.value); } catch (e) { return flash('The options are not JSON: ' + e.message, true); }
            try {
              await api('POST', 'channels/' + encodeURIComponent(name) + '/options', opts);
              flash('Options saved');
            } catch (e) { report(e); }
          } }, 'Save options'))),
        el('div', { class: 'panel' },
          el('h2', {}, 'Publish'),
          payload,
          el('div', { class: 'toolbar' }, el('button', { id: 'publish', onclick: async () => {
            let value;
            try { value = JSON.parse(payload.value); } catch (e) { return flash('The payload is not JSON: ' + e.message, true); }
            try {
              await api('POST', 'channels/' + encodeURIComponent(name) + '/publish', { payload: value });
              flash('Published');
            } catch (e) { report(e); }
          } }, 'Publish')))),
      el('h2', {}, 'Subscribers'),
      el('table', { id: 'subscribers' },
        el('tr', {}, el('th', {}, 'user'), el('th', {}, '')),
        ...info.subscribers.map((u) => el('tr', {},
          el('td', {}, el('a', { href: '#/users/' + encodeURIComponent(u) }, u)),
          el('td', {}, el('button', { class: 'quiet', 'data-user': u, onclick: async () => {
            try {
              await api('POST', 'channels/' + encodeURIComponent(name) + '/remove', { user: u });
              flash('Removed ' + u + ' from ' + name);
              route();
            } catch (e) { report(e); }
          } }, 'remove'))))),
      el('h2', {}, 'Live events'),
      el('div', { class: 'panel' }, events),
      el('h2', {}, 'History (' + history.length + ')'),
      el('div', { class: 'panel' }, el('pre', { id: 'history' }, history.map((h) => JSON.stringify(h)).join('\n'))),
      el('h2', {}, 'State'),
      el('div', { class: 'panel' }, el('pre', {}, JSON.stringify(info.options.state || {}, null, 2))),
    );
    watch(name, (msg) => {
      events.prepend(el('li', {}, new Date().toLocaleTimeString() + '  ' + msg.frame));
      while (events.children.length > 200) events.lastChild.remove();
    });
  }

  async function renderUsers() {
    const data = await api('GET', 'users');
    view.replaceChildren(
      el('h2', {}, 'Users (' + data.users.length + (data.truncated ? '+' : '') + ')'),
      el('table', { id: 'user-list' },
        el('tr', {}, el('th', {}, 'name')),
        ...data.users.map((u) => el('tr', {},
          el('td', {}, el('a', { href: '#/users/' + encodeURIComponent(u) }, u))))),
    );
  }

  async function renderUser(name) {
    const u = await api('GET', 'users/' + encodeURIComponent(name));
    view.replaceChildren(
      el('h2', {}, 'User ', el('code', {}, name)),
      el('div', { class: 'toolbar' }, el('button', { class: 'danger', id: 'disconnect', onclick: async () => {
        try {
          const r = await api('POST', 'users/' + encodeURIComponent(name) + '/disconnect', {});
          flash('Disconnected ' + name + ' (' + r.connections + ' connection' + (r.connections === 1 ? '' : 's') + ')');
          location.hash = '#/users';
        } catch (e) { report(e); }
      } }, 'Disconnect')),
      el('h2', {}, 'Connections'),
      el('table', { id: 'connections' },
        el('tr', {}, el('th', {}, 'id'), el('th', {}, 'transport'), el('th', {}, 'address'), el('th', {}, 'since')),
        ...u.connections.map((c) => el('tr', {},
          el('td', { class: 'mono' }, c.id), el('td', {}, c.transport || ''),
          el('td', {}, c.address || ''), el('td', {}, fmtTime(c.since))))),
      el('h2', {}, 'Channels'),
      el('ul', { id: 'user-channels' }, ...u.channels.map((c) =>
        el('li', {}, el('a', { href: '#/channels/' + encodeURIComponent(c) }, c)))),
      el('h2', {}, 'Options'),
      el('div', { class: 'panel' }, el('pre', {}, JSON.stringify(u.options, null, 2))),
    );
  }

  // The webhook log: one line per call (the newest first), filtered by hook, outcome and text,
  // refreshed every 2 s while shown; a line opens to show the form sent and the reply.
  let webhookTimer = null;
  const webhookFilter = { hook: '', outcome: '', text: '' };

  /** The fields that say what a call was about, in one short line. */
  function webhookSummary(c) {
    const f = c.form || {};
    const keys = ['channel_name', 'user', 'name', 'sender', 'recipient', 'conn_id'];
    return keys.filter((k) => f[k]).map((k) => k + '=' + f[k]).join('  ');
  }

  function webhookMatches(c) {
    if (webhookFilter.hook && c.hook !== webhookFilter.hook) return false;
    if (webhookFilter.outcome && c.outcome !== webhookFilter.outcome) return false;
    const text = webhookFilter.text.trim().toLowerCase();
    return !text || JSON.stringify(c).toLowerCase().includes(text);
  }

  function webhookRow(c) {
    const details = el('details', {},
      el('summary', { class: 'ellipsis' }, webhookSummary(c) || c.url),
      el('div', { class: 'mono muted' }, c.url),
      el('pre', {}, 'form: ' + JSON.stringify(c.form, null, 1)),
      el('pre', {}, 'reply: ' + (c.response || '(none)')));
    return el('tr', { class: 'call ' + c.outcome, 'data-key': c.time + ' ' + c.hook + ' ' + JSON.stringify(c.form) },
      el('td', { class: 'nowrap' }, new Date(c.time).toLocaleTimeString()),
      el('td', { class: 'nowrap' }, c.hook),
      el('td', { class: 'nowrap outcome' }, c.outcome + (c.status ? ' ' + c.status : '')),
      el('td', { class: 'num nowrap' }, c.ms.toFixed(1)),
      el('td', { class: 'what' }, details));
  }

  async function renderWebhooks() {
    const select = (id, label, values) => el('select', { id, 'aria-label': label,
      onchange: (ev) => { webhookFilter[id.replace('filter-', '')] = ev.target.value; paint(); } },
    el('option', { value: '' }, label), ...values.map((v) => el('option', { value: v }, v)));
    const table = el('table', { id: 'webhook-log', class: 'calls' });
    const count = el('span', { class: 'muted', id: 'webhook-count' });
    let calls = [];
    const paint = () => {
      // Lines the operator opened stay open when the list is painted again.
      const open = new Set([...table.querySelectorAll('details[open]')].map((d) => d.closest('tr').dataset.key));
      const shown = calls.filter(webhookMatches);
      count.textContent = shown.length + ' of ' + calls.length + ' calls';
      table.replaceChildren(
        el('tr', {}, el('th', {}, 'time'), el('th', {}, 'hook'), el('th', {}, 'outcome'),
          el('th', { class: 'num' }, 'ms'), el('th', {}, 'about')),
        ...shown.map(webhookRow));
      for (const tr of table.querySelectorAll('tr.call')) {
        if (open.has(tr.dataset.key)) tr.querySelector('details').open = true;
      }
    };
    const text = el('input', { id: 'filter-text', type: 'search', placeholder: 'Filter by any text',
      value: webhookFilter.text, oninput: (ev) => { webhookFilter.text = ev.target.value; paint(); } });
    view.replaceChildren(
      el('h2', {}, 'Last webhook calls'),
      el('p', { class: 'muted' }, 'Newest first, updated every 2 s. Cookies and secrets are not kept. Open a line for the form sent and the reply.'),
      el('div', { class: 'toolbar wrap' },
        select('filter-hook', 'every hook', ['connect', 'disconnect', 'create_channel', 'destroy_channel',
          'subscribe', 'unsubscribe', 'publish', 'message']),
        select('filter-outcome', 'every outcome', ['ok', 'denied', 'failed', 'timeout']),
        text, count),
      el('div', { class: 'scroll' }, table),
    );
    for (const id of ['hook', 'outcome']) $('#filter-' + id).value = webhookFilter[id];
    const refresh = async () => {
      calls = (await api('GET', 'webhooks')).calls;
      paint();
    };
    await refresh();
    clearInterval(webhookTimer);
    webhookTimer = setInterval(() => refresh().catch(report), 2000);
  }

  async function renderLog() {
    const data = await api('GET', 'log');
    view.replaceChildren(
      el('h2', {}, 'Server log (last ' + data.lines.length + ' lines)'),
      el('div', { class: 'panel' }, el('pre', { id: 'log-lines' }, data.lines.join('\n'))),
    );
  }

  function report(e) {
    if (!(e instanceof Unauthorized)) flash(String(e.message || e), true);
  }

  // --- routing ---------------------------------------------------------------------------------

  async function route() {
    const hash = location.hash.replace(/^#\/?/, '');
    const [section, ...rest] = hash.split('/');
    const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
    for (const a of document.querySelectorAll('nav a')) {
      a.classList.toggle('current', a.dataset.view === (section || 'overview'));
    }
    overviewListeners.clear();
    watch(null, null);
    clearInterval(webhookTimer);
    try {
      if (!section) renderOverview();
      else if (section === 'channels' && arg !== null) await renderChannel(arg);
      else if (section === 'channels') await renderChannels();
      else if (section === 'users' && arg !== null) await renderUser(arg);
      else if (section === 'users') await renderUsers();
      else if (section === 'webhooks') await renderWebhooks();
      else if (section === 'log') await renderLog();
      else view.replaceChildren(el('p', {}, 'Nothing here.'));
    } catch (e) {
      report(e);
      if (!(e instanceof Unauthorized)) view.replaceChildren(el('p', { class: 'error' }, String(e.message || e)));
    }
  }

  function start() {
    $('#login-view').hidden = true;
    $('#app').hidden = false;
    startLive();
    route();
  }

  window.addEventListener('hashchange', route);
  api('GET', 'session').then(start).catch((e) => {
    if (!(e instanceof Unauthorized)) showLogin(String(e.message || e));
  });
})();
