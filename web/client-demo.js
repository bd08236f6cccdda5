// Page glue for client-demo.html: wires the form and buttons to AuthClient and
// writes every event into #log as <li data-event="NAME">. Event names are
// stable (the browser test reads them): login, refreshed, reauth_sent,
// ws_connecting, connected, reauth_success, token_expiring, pong, echo_ok,
// "error <code>", "closed <code>", logout, signed_out, not_signed_in,
// password_changed, account_deleted, mfa_required, totp_begun, totp_enabled,
// totp_disabled, passkey_added, passkey_deleted, passkeys (the list loaded),
// registered, email_change_sent, email_verified, password_reset_requested,
// password_reset, failed; and from the other tabs of this browser (see
// auth-client.js): token_from_tab, login_in_tab, logout_in_tab;
// dpop_unavailable (no key for DPoP in this browser: sessions are unbound).
//
// `?dpop=off` in the page's URL makes its client skip DPoP (unbound Bearer
// sessions), to compare the two; #session-binding shows which one it is.
//
// The email parts (the address, "Forgot password?", the links `/?verify=`
// and `/?reset=` from a mail) are in client-demo-email.js, wired here.
//
// Secrets shown here (a TOTP secret, recovery codes) go into the page's text
// only, never into the log or storage, and are removed once done with or on
// sign-out; a login's mfaToken stays in a variable of this script.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);

  // First of all, before any request is made: a mail link's token leaves the URL.
  const fromMail = DemoEmail.takeMailTokens();
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

  const dpop = new URLSearchParams(location.search).get('dpop') !== 'off';
  // The email parts, once wired (render may run before).
  let email = null;
  const client = new AuthClient({ onEvent: logEvent, onState: render, dpop });

  function render() {
    const signedIn = client.signedIn;
    const status = $('status');
    status.dataset.state = signedIn ? 'signed-in' : 'signed-out';
    status.textContent = signedIn ? 'signed in as ' + client.user.username : 'signed out';
    const open = client.socket !== null && client.socket.readyState === WebSocket.OPEN;
    const wsState = $('ws-state');
    wsState.dataset.state = client.socket === null ? 'closed' : (open ? 'open' : 'connecting');
    wsState.textContent = wsState.dataset.state;
    for (const id of ['refresh-btn', 'protected-btn', 'logout-btn', 'sessions-btn', 'password-btn', 'delete-btn',
      'totp-begin-btn', 'totp-confirm-btn', 'totp-disable-btn', 'email-btn']) {
      $(id).disabled = !signedIn;
    }
    $('passkey-add-btn').disabled = !signedIn || !client.passkeysSupported;
    // How this session began: from the access token's amr.
    const factors = $('factors');
    factors.dataset.mfa = signedIn ? String(client.twoFactor) : '';
    factors.textContent = !signedIn ? 'no session'
      : client.passkeySession ? 'this session began with a passkey: two factors (' + client.authMethods.join(' + ') + ')'
        : client.twoFactor ? 'this session began with two factors (' + client.authMethods.join(' + ') + ')'
          : 'this session began with a password only';
    if (!signedIn) {
      endEnrolment();
      hideRecoveryCodes();
    }
    showBinding();
    showTwoFactorState();
    showPasskeys();
    if (email) email.render();
    $('connect-btn').disabled = !signedIn || client.socket !== null;
    $('ping-btn').disabled = !open;
    $('echo-btn').disabled = !open;
    $('disconnect-btn').disabled = client.socket === null;
    tick();
  }

  /** Whether the session is bound to this browser's key (DPoP), and the key's thumbprint. */
  function showBinding() {
    const binding = $('session-binding');
    const jkt = client.dpopThumbprint || '';
    binding.dataset.bound = client.signedIn ? String(client.dpopBound) : '';
    binding.dataset.jkt = jkt;
    binding.dataset.key = client.dpopState;
    const why = client.dpopState === 'off' ? ': DPoP is off on this page (?dpop=off)'
      : client.dpopState === 'unavailable' ? ': no DPoP key in this browser (' + client.dpopProblem + ')' : '';
    binding.textContent = !client.signedIn ? 'no session' + why
      : client.dpopBound ? 'DPoP-bound (key ' + jkt.slice(0, 12) + '\u2026)'
        : 'Bearer (unbound)' + why;
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

  email = DemoEmail.wireEmail(client, guarded, showError);

  // The second step of a login, while one is pending: the mfaToken from the
  // 403 mfa_required answer (kept here only, never shown or logged).
  let mfaToken = null;

  function afterLogin() {
    if ($('auto-connect').checked) client.connectWebSocket();
  }

  function askSecondFactor(token) {
    mfaToken = token;
    $('login-form').hidden = true;
    $('mfa-form').hidden = false;
    $('mfa-use-recovery').checked = false;
    showFactorField();
    $('mfa-code').focus();
  }

  function endSecondFactor() {
    mfaToken = null;
    $('mfa-code').value = '';
    $('mfa-recovery').value = '';
    $('mfa-form').hidden = true;
    $('login-form').hidden = false;
  }

  function showFactorField() {
    const recovery = $('mfa-use-recovery').checked;
    $('mfa-code-label').hidden = recovery;
    $('mfa-recovery-label').hidden = !recovery;
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const outcome = await client.login($('username').value, $('password').value);
      $('password').value = '';
      if (outcome.mfaRequired) {
        askSecondFactor(outcome.mfaToken);
        return;
      }
      twoFactorChanged();
      afterLogin();
    });
  });

  $('mfa-use-recovery').addEventListener('change', showFactorField);

  $('mfa-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const factor = $('mfa-use-recovery').checked
        ? { recoveryCode: $('mfa-recovery').value.trim() }
        : { code: $('mfa-code').value.trim() };
      if (!(factor.code || factor.recoveryCode)) throw new Error('Enter a code first.');
      $('mfa-code').value = '';
      $('mfa-recovery').value = '';
      try {
        await client.loginMfa(mfaToken, factor);
      } catch (err) {
        // A wrong code may be retried with the same token; an ended token
        // (expired, used up) or the throttle means logging in again.
        if (err.code === 'mfa_token_invalid' || err.code === 'rate_limited') endSecondFactor();
        throw err;
      }
      endSecondFactor();
      twoFactorChanged();
      afterLogin();
    });
  });

  $('mfa-cancel-btn').addEventListener('click', () => {
    endSecondFactor();
    showError(null);
  });

  // No username: the authenticator offers the passkeys it holds for this site.
  $('passkey-login-btn').hidden = !client.passkeysSupported;
  $('passkey-login-btn').addEventListener('click', () =>
    guarded(async () => {
      await client.loginWithPasskey();
      twoFactorChanged();
      afterLogin();
    }));

  // -- Two-factor enrolment ------------------------------------------------

  // GET /api/mfa/totp, read again whenever the signed-in user or the state
  // may have changed (a login, a confirmation, turning it off).
  let twoFactorChanges = 0;
  let shownStateKey = null;

  function showTwoFactorState() {
    const state = $('totp-state');
    const key = client.signedIn ? client.user.id + '/' + twoFactorChanges : null;
    if (key === shownStateKey) return;
    shownStateKey = key;
    if (key === null) {
      state.dataset.enabled = '';
      state.textContent = 'no session';
      return;
    }
    client.twoFactorStatus().then((s) => {
      if (shownStateKey !== key) return;
      state.dataset.enabled = String(s.enabled);
      state.dataset.codesLeft = String(s.recoveryCodesLeft);
      state.textContent = s.enabled
        ? 'on since ' + new Date(s.enabledAt * 1000).toLocaleString() + '; ' + s.recoveryCodesLeft + ' recovery codes left'
        : (s.pending ? 'off (an enrolment waits for its code)' : 'off');
    }, (err) => {
      state.dataset.enabled = '';
      state.textContent = 'unknown (' + (err.code || err.message) + ')';
    });
  }

  /** After anything that may change the two-factor state. */
  function twoFactorChanged() {
    twoFactorChanges += 1;
  }

  /** Draws `text` as a QR code: an <svg> from qrcode-generator, parsed as SVG (never as HTML). */
  function qrSvg(text) {
    const qr = qrcode(0, 'M'); // 0: the smallest version that holds the text
    qr.addData(text);
    qr.make();
    const markup = qr.createSvgTag({ cellSize: 4, margin: 16, title: 'QR code of the otpauth URI' });
    const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
    const svg = document.importNode(doc.documentElement, true);
    svg.dataset.modules = String(qr.getModuleCount());
    return svg;
  }

  function endEnrolment() {
    $('totp-enrolment').hidden = true;
    $('totp-qr').replaceChildren();
    $('totp-secret').textContent = '';
    $('totp-uri').textContent = '';
    $('totp-expiry').textContent = '';
    $('totp-code').value = '';
  }

  function hideRecoveryCodes() {
    $('recovery').hidden = true;
    $('recovery-codes').replaceChildren();
  }

  $('totp-begin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      hideRecoveryCodes();
      let enrolment;
      try {
        enrolment = await client.beginTotp($('totp-begin-password').value);
      } finally {
        $('totp-begin-password').value = '';
      }
      twoFactorChanged();
      $('totp-qr').replaceChildren(qrSvg(enrolment.otpauthUri));
      $('totp-secret').textContent = enrolment.secret;
      $('totp-uri').textContent = enrolment.otpauthUri;
      const until = new Date(Date.now() + enrolment.expiresIn * 1000);
      $('totp-expiry').textContent = 'Enter a code before ' + until.toLocaleTimeString() + '.';
      $('totp-enrolment').hidden = false;
      $('totp-code').focus();
    });
  });

  $('totp-confirm-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const code = $('totp-code').value.trim();
      $('totp-code').value = '';
      const codes = await client.confirmTotp(code);
      twoFactorChanged();
      endEnrolment();
      const list = $('recovery-codes');
      list.replaceChildren(...codes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }));
      $('recovery').hidden = false;
    });
  });

  $('recovery-done-btn').addEventListener('click', hideRecoveryCodes);

  $('totp-disable-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      try {
        // Six digits are the app's code; anything else a recovery code.
        const typed = $('totp-disable-code').value.trim();
        const factor = /^\d{6}$/.test(typed.replace(/\s/g, ''))
          ? { code: typed.replace(/\s/g, '') } : { recoveryCode: typed };
        await client.disableTotp($('totp-disable-password').value, factor);
        twoFactorChanged();
        endEnrolment();
        hideRecoveryCodes();
      } finally {
        $('totp-disable-password').value = '';
        $('totp-disable-code').value = '';
      }
    });
  });

  // -- Passkeys -------------------------------------------------------------

  // GET /api/passkeys and GET /api/account, read again whenever the
  // signed-in user or the list may have changed (a login, an addition, a
  // deletion).
  let passkeyChanges = 0;
  let shownPasskeysKey = null;

  function showPasskeys() {
    const state = $('passkeys-state');
    const key = client.signedIn ? client.user.id + '/' + passkeyChanges : null;
    if (key === shownPasskeysKey) return;
    shownPasskeysKey = key;
    if (key === null) {
      state.dataset.count = '';
      state.textContent = client.passkeysSupported ? 'no session' : 'this browser has no passkey support';
      $('passkey-list').replaceChildren();
      return;
    }
    Promise.all([client.listPasskeys(), client.account()]).then(([passkeys, account]) => {
      if (shownPasskeysKey !== key) return;
      // The account's own count (GET /api/account), beside the list.
      const count = account.mfa && Number.isInteger(account.mfa.passkeys) ? account.mfa.passkeys : null;
      state.dataset.count = count === null ? '' : String(count);
      state.textContent = count === null ? 'unknown'
        : count === 0 ? 'none: add one to sign in without a password'
          : count + (count === 1 ? ' passkey' : ' passkeys') + ': each signs in without a password or a code';
      $('passkey-list').replaceChildren(...passkeys.map(passkeyItem));
      logEvent('passkeys', passkeys.length + ' listed');
    }, (err) => {
      if (shownPasskeysKey !== key) return;
      state.dataset.count = '';
      state.textContent = 'unknown (' + (err.code || err.message) + ')';
    });
  }

  /** After anything that may change the list of passkeys. */
  function passkeyChanged() {
    passkeyChanges += 1;
  }

  function formatDate(unixSeconds) {
    return new Date(unixSeconds * 1000).toLocaleString();
  }

  /** One passkey of the list: its name, dates and backup state, and a delete button. */
  function passkeyItem(p) {
    const li = document.createElement('li');
    li.dataset.passkeyId = p.id;
    li.dataset.lastUsedAt = p.lastUsedAt === null ? '' : String(p.lastUsedAt);
    li.dataset.backedUp = String(p.backedUp === true);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = p.name; // textContent: the name is the user's text
    const details = document.createElement('span');
    details.className = 'details';
    details.textContent = ', added ' + formatDate(p.createdAt) + ', last used ' +
      (p.lastUsedAt === null ? 'never' : formatDate(p.lastUsedAt)) + ', ' +
      (p.backedUp ? 'backed up (synced)' : 'not backed up') + ' ';
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.textContent = 'Delete';
    btn.className = 'delete-passkey';
    btn.addEventListener('click', () =>
      guarded(async () => {
        await client.deletePasskey(p.id);
        passkeyChanged();
      }));
    li.append(name, details, btn);
    return li;
  }

  $('passkey-add-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    guarded(async () => {
      try {
        await client.registerPasskey($('passkey-password').value, $('passkey-name').value.trim());
      } finally {
        $('passkey-password').value = '';
      }
      $('passkey-name').value = '';
      passkeyChanged();
    });
  });

  $('register-btn').addEventListener('click', () =>
    guarded(async () => {
      await client.register($('username').value, $('password').value, $('register-email').value);
      $('register-email').value = '';
    }));

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
        li.dataset.mfa = String(s.mfa === true);
        li.dataset.dpop = String(s.dpop === true);
        if (s.current) li.className = 'current';
        li.textContent = (s.current ? 'this session' : 'session') + ' from ' + (s.ip || '?') + ', ' +
          (s.userAgent || 'unknown agent').slice(0, 40) + ', ' +
          (s.mfa ? 'two factors' : 'password only') + ', ' + (s.dpop ? 'DPoP-bound' : 'Bearer') + ', last used ' +
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
  email.completeLinks(fromMail);
  // A refresh cookie from an earlier visit signs the page in again.
  client.resume().then(render);
})();
