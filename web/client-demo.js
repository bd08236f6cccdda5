// Page glue for client-demo.html: wires the form and buttons to AuthClient and
// writes every event into #log as <li data-event="NAME">. Event names are
// stable (the browser test reads them): login, refreshed, reauth_sent,
// ws_connecting, connected, reauth_success, token_expiring, pong, echo_ok,
// "error <code>", "closed <code>", logout, signed_out, not_signed_in,
// password_changed, account_deleted, failed.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const log = $('log');

  function logEvent(name, detail) {
    const li = document.createElement('li');
    li.dataset.event = name;
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    const text = document.createElement('span');
    text.className = 'name';
    text.textContent = name;
    li.append(time, text);
    if (detail) {
      const d = document.createElement('span');
      d.className = 'detail';
      d.textContent = detail; // textContent: server data is never parsed as HTML
      li.append(d);
    }
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }

  const client = new AuthClient({ onEvent: logEvent, onState: render });

  function render() {
    const signedIn = client.signedIn;
    const status = $('status');
    status.dataset.state = signedIn ? 'signed-in' : 'signed-out';
    status.textContent = signedIn ? 'signed in as ' + client.user.username : 'signed out';
    const open = client.socket !== null && client.socket.readyState === WebSocket.OPEN;
    const wsState = $('ws-state');
    wsState.dataset.state = client.socket === null ? 'closed' : (open ? 'open' : 'connecting');
    wsState.textContent = wsState.dataset.state;
    for (const id of ['refresh-btn', 'protected-btn', 'logout-btn', 'sessions-btn', 'password-btn', 'delete-btn']) {
      $(id).disabled = !signedIn;
    }
    $('connect-btn').disabled = !signedIn || client.socket !== null;
    $('ping-btn').disabled = !open;
    $('echo-btn').disabled = !open;
    $('disconnect-btn').disabled = client.socket === null;
    tick();
  }

  function tick() {
    const countdown = $('countdown');
    const left = client.secondsLeft();
    countdown.dataset.seconds = String(left);
    countdown.dataset.warn = String(client.signedIn && left <= 10);
    countdown.textContent = client.signedIn ? 'expires in ' + left + ' s' : 'no token';
  }

  function showError(err) {
    $('form-error').textContent = err ? (err.code ? err.code + ': ' : '') + err.message : '';
  }

  async function guarded(fn) {
    showError(null);
    try {
      await fn();
    } catch (err) {
      showError(err);
      logEvent('failed', (err.code || '') + ' ' + err.message);
    }
    render();
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await client.login($('username').value, $('password').value);
      $('password').value = '';
      if ($('auto-connect').checked) client.connectWebSocket();
    });
  });

  $('register-btn').addEventListener('click', () =>
    guarded(() => client.register($('username').value, $('password').value)));

  $('refresh-btn').addEventListener('click', () => guarded(() => client.refresh()));

  $('protected-btn').addEventListener('click', () =>
    guarded(async () => {
      const body = await client.protectedResource();
      logEvent('protected', body.message);
    }));

  $('logout-btn').addEventListener('click', () =>
    guarded(async () => {
      await client.logout();
      $('sessions').replaceChildren();
    }));

  $('password-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      try {
        await client.changePassword($('current-password').value, $('new-password').value);
      } finally {
        $('current-password').value = '';
        $('new-password').value = '';
      }
    });
  });

  $('delete-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      try {
        await client.deleteAccount($('delete-password').value);
        $('sessions').replaceChildren();
      } finally {
        $('delete-password').value = '';
      }
    });
  });

  $('connect-btn').addEventListener('click', () => guarded(async () => client.connectWebSocket()));
  $('disconnect-btn').addEventListener('click', () => client.disconnectWebSocket());
  $('ping-btn').addEventListener('click', () => guarded(async () => client.sendWs({ type: 'ping' })));
  // A 16 KiB JSON document there and back (compressed both ways when the
  // connection negotiated permessage-deflate): logs echo_ok if it came back whole.
  $('echo-btn').addEventListener('click', () =>
    guarded(async () => {
      const items = [];
      for (let i = 0; items.length < 290; i++) items.push({ id: i, name: 'item ' + i, ok: i % 3 === 0, tags: ['a', 'b'] });
      const sent = JSON.stringify({ items });
      // (Keys in sorted order: the server's JSON keeps objects sorted.)
      const back = JSON.stringify(await client.echo({ items }));
      logEvent(back === sent ? 'echo_ok' : 'echo_mismatch', sent.length + ' bytes');
    }));

  $('sessions-btn').addEventListener('click', () =>
    guarded(async () => {
      const sessions = await client.listSessions();
      const list = $('sessions');
      list.replaceChildren();
      for (const s of sessions) {
        const li = document.createElement('li');
        li.dataset.sessionId = s.id;
        if (s.current) li.className = 'current';
        li.textContent = (s.current ? 'this session' : 'session') + ' from ' + (s.ip || '?') + ', ' +
          (s.userAgent || 'unknown agent').slice(0, 40) + ', last used ' +
          new Date(s.lastUsedAt * 1000).toLocaleString() + ' ';
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.textContent = 'Revoke';
        btn.className = 'revoke';
        btn.addEventListener('click', () =>
          guarded(async () => {
            await client.revokeSession(s.id);
            li.remove();
          }));
        li.append(btn);
        list.append(li);
      }
      logEvent('sessions', sessions.length + ' live');
    }));

  setInterval(tick, 1000);
  render();
  // A refresh cookie from an earlier visit signs the page in again.
  client.resume().then(render);
})();
