// auth-client.js: a dependency-free browser client for the auth service.
//
// - The access token lives only in memory (never localStorage: an XSS could
//   read it there). The refresh token is an HttpOnly cookie (Path=/api) that
//   this script never sees; `credentials: 'include'` sends it.
// - The access token is refreshed shortly before it expires; an open
//   WebSocket is then re-authenticated in place with a `reauth` message, no
//   reconnect.
// - A WebSocket authenticates with its first message, never with a token in
//   its URL.
// - Logout asks the server to revoke the session; the server closes the
//   WebSocket (close code 4003), and the client closes it itself if that has
//   not happened within two seconds.
//
// Usage:
//   const client = new AuthClient({ onEvent: (name, detail) => ..., onState: (state) => ... });
//   const outcome = await client.login(username, password);
//   if (outcome.mfaRequired) await client.loginMfa(outcome.mfaToken, { code: '123456' });
//   client.connectWebSocket();
//   await client.logout();
//
// Two-factor login (TOTP): beginTotp() gives the secret and its otpauth://
// URI to show once, confirmTotp(code) turns it on and gives the recovery
// codes to show once, disableTotp(password, {code}|{recoveryCode}) turns it off. None of them, nor
// the mfaToken of a login's second step, is logged or stored: they live in
// the caller's variables only.
(function (global) {
  'use strict';

  /** Seconds before expiry at which the access token is refreshed. */
  function refreshLead(lifetimeSeconds) {
    // A quarter of the lifetime, between 5 s and 60 s: 15 min tokens refresh
    // 60 s early, 20 s tokens 5 s early.
    return Math.max(5, Math.min(60, Math.floor(lifetimeSeconds / 4)));
  }

  class AuthError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || ('HTTP ' + status));
      this.name = 'AuthError';
      this.status = status;
      this.code = problem && problem.code;
      // The whole problem, for members beyond `code` (not enumerable: the
      // mfa_required problem carries an mfaToken, and an error object that
      // is serialised somewhere should not take it along).
      Object.defineProperty(this, 'problem', { value: problem || null, enumerable: false });
    }
  }

  /** The `amr` claim of a JWT access token (read, not verified: for display only). */
  function authMethodsOf(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const amr = JSON.parse(atob(part)).amr;
      // A token without amr is from before two-factor login: a password login.
      return Array.isArray(amr) ? amr.map(String) : ['pwd'];
    } catch (_) {
      return null;
    }
  }

  class AuthClient {
    constructor(options) {
      const opts = options || {};
      this.apiBase = opts.apiBase || '/api';
      this.wsUrl = opts.wsUrl || defaultWsUrl();
      this.onEvent = opts.onEvent || function () {};
      this.onState = opts.onState || function () {};
      this.accessToken = null;
      this.expiresAt = null; // unix seconds
      this.user = null;
      this.authMethods = null; // the access token's amr, e.g. ['pwd', 'otp']
      this.socket = null;
      this.refreshTimer = null;
      this.refreshing = null;
      this.echoWaiters = [];
    }

    /** True while an access token is held. */
    get signedIn() {
      return this.accessToken !== null;
    }

    /** Seconds until the access token expires (0 when none). */
    secondsLeft() {
      if (this.expiresAt === null) return 0;
      return Math.max(0, this.expiresAt - Math.floor(Date.now() / 1000));
    }

    async register(username, password) {
      const body = await this.request('POST', '/register', { json: { username, password } });
      this.onEvent('registered', body.username);
      return body;
    }

    /** True while signed in on a session that began with a password and a second factor. */
    get twoFactor() {
      return Array.isArray(this.authMethods) && this.authMethods.includes('otp');
    }

    /**
     * Logs in with a password. Resolves to the token response, or, when the
     * user has two-factor login on (403 mfa_required), to
     * `{ mfaRequired: true, mfaToken, methods }`: nothing is signed in yet,
     * and `loginMfa(mfaToken, ...)` completes the login. Other errors throw
     * an AuthError.
     */
    async login(username, password) {
      let body;
      try {
        body = await this.request('POST', '/login', { json: { username, password } });
      } catch (err) {
        if (err instanceof AuthError && err.status === 403 && err.code === 'mfa_required' &&
            err.problem && typeof err.problem.mfaToken === 'string') {
          const methods = Array.isArray(err.problem.methods) ? err.problem.methods : ['totp'];
          this.onEvent('mfa_required', 'second factor: ' + methods.join(', '));
          return { mfaRequired: true, mfaToken: err.problem.mfaToken, methods };
        }
        throw err;
      }
      this.acceptTokens(body);
      this.onEvent('login', body.user.username + ', ' + (this.authMethods || ['?']).join('+'));
      return body;
    }

    /**
     * The second step of a login: the mfaToken from `login` and either
     * `{ code }` (from the authenticator app) or `{ recoveryCode }`.
     * Resolves to the token response. Errors: invalid_mfa_code (the token
     * stays good for a few more tries), mfa_token_invalid (log in again),
     * rate_limited.
     */
    async loginMfa(mfaToken, factor) {
      const f = factor || {};
      const hasCode = typeof f.code === 'string';
      const hasRecovery = typeof f.recoveryCode === 'string';
      if (hasCode === hasRecovery) throw new Error('loginMfa takes exactly one of code and recoveryCode');
      const json = hasCode ? { mfaToken, code: f.code } : { mfaToken, recoveryCode: f.recoveryCode };
      const body = await this.request('POST', '/login/mfa', { json });
      this.acceptTokens(body);
      this.onEvent('login', body.user.username + ', ' + (this.authMethods || ['?']).join('+') +
        (hasRecovery ? ' (recovery code)' : ''));
      return body;
    }

    /**
     * Begins a TOTP enrolment (the password confirms it): resolves to
     * `{ secret, otpauthUri, expiresIn }`, to show once (QR code and text).
     * Throws mfa_already_enabled when it is on.
     */
    /** The caller's two-factor state: { enabled, enabledAt, pending, recoveryCodesLeft }. */
    async twoFactorStatus() {
      return this.request('GET', '/mfa/totp', { token: this.accessToken });
    }

    async beginTotp(password) {
      const body = await this.request('POST', '/mfa/totp', {
        token: this.accessToken,
        json: { password },
      });
      this.onEvent('totp_begun', 'confirm within ' + body.expiresIn + ' s');
      return body;
    }

    /** Confirms the pending enrolment with a code: resolves to the 10 recovery codes, to show once. */
    async confirmTotp(code) {
      const body = await this.request('POST', '/mfa/totp/confirm', {
        token: this.accessToken,
        json: { code },
      });
      this.onEvent('totp_enabled', body.recoveryCodes.length + ' recovery codes');
      return body.recoveryCodes;
    }

    /**
     * Turns two-factor login off: the password and a second factor,
     * `{ code }` or `{ recoveryCode }`, confirm it.
     */
    async disableTotp(password, factor) {
      await this.request('DELETE', '/mfa/totp', {
        token: this.accessToken,
        json: { password, ...factor },
      });
      this.onEvent('totp_disabled', '');
    }

    /** Tries the refresh cookie, e.g. on page load. Resolves to true when signed in. */
    async resume() {
      try {
        await this.refresh();
        return true;
      } catch (err) {
        this.onEvent('not_signed_in', err.code || err.message);
        return false;
      }
    }

    /**
     * Rotates the refresh cookie and gets a new access token; an open socket is
     * re-authenticated with it. Concurrent calls share one request, because
     * two refreshes with one cookie would look like reuse.
     */
    refresh() {
      if (!this.refreshing) {
        this.refreshing = this.request('POST', '/refresh', {})
          .then((body) => {
            this.acceptTokens(body);
            this.onEvent('refreshed', 'expires in ' + body.expiresIn + 's');
            this.reauthSocket();
            return body;
          })
          .catch((err) => {
            this.onEvent('refresh_failed', err.code || err.message);
            if (err instanceof AuthError && err.status === 401) this.signOutLocally();
            throw err;
          })
          .finally(() => {
            this.refreshing = null;
          });
      }
      return this.refreshing;
    }

    async logout() {
      const token = this.accessToken;
      const socket = this.socket;
      try {
        await this.request('POST', '/logout', { token });
        this.onEvent('logout', 'session revoked');
      } finally {
        this.signOutLocally(false);
        // The server closes the socket (4003) once the revocation reaches it;
        // close it here only if that did not happen in time.
        if (socket) {
          setTimeout(() => {
            if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
              socket.close(1000, 'logout');
            }
          }, 2000);
        }
      }
    }

    /** Changes the password; every other session of the user ends. */
    async changePassword(currentPassword, newPassword) {
      await this.request('POST', '/password', {
        token: this.accessToken,
        json: { currentPassword, newPassword },
      });
      this.onEvent('password_changed', 'other sessions ended');
    }

    /** Deletes the account; the server ends every session and closes the socket (4003). */
    async deleteAccount(password) {
      await this.request('DELETE', '/account', { token: this.accessToken, json: { password } });
      this.onEvent('account_deleted', '');
      this.signOutLocally(false);
    }

    async listSessions() {
      return this.request('GET', '/sessions', { token: this.accessToken });
    }

    async revokeSession(id) {
      await this.request('DELETE', '/sessions/' + encodeURIComponent(id), { token: this.accessToken });
      this.onEvent('session_revoked_by_user', id);
    }

    async protectedResource() {
      return this.request('GET', '/protected', { token: this.accessToken });
    }

    connectWebSocket() {
      if (!this.accessToken) throw new Error('not signed in');
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) return this.socket;
      // No token in the URL (contract v3): URLs end up in logs and in the
      // browser's history. The first message authenticates the socket.
      const socket = new WebSocket(this.wsUrl);
      socket.addEventListener('open', () => {
        socket.send(JSON.stringify({ type: 'auth', access: this.accessToken }));
      }, { once: true });
      this.socket = socket;
      this.onEvent('ws_connecting', '');
      socket.addEventListener('open', () => this.onState());
      socket.addEventListener('message', (ev) => this.handleMessage(ev.data));
      socket.addEventListener('close', (ev) => {
        if (this.socket === socket) this.socket = null;
        this.onEvent('closed ' + ev.code, ev.reason || '');
        this.onState();
      });
      socket.addEventListener('error', () => this.onEvent('ws_error', ''));
      return socket;
    }

    disconnectWebSocket() {
      if (this.socket) this.socket.close(1000, 'bye');
    }

    /**
     * Sends `payload` in an `echo` message; resolves with what the server
     * sends back (echoes come back in order).
     */
    echo(payload) {
      return new Promise((resolve, reject) => {
        try {
          this.sendWs({ type: 'echo', payload });
          this.echoWaiters.push(resolve);
        } catch (err) {
          reject(err);
        }
      });
    }

    sendWs(message) {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new Error('socket not open');
      this.socket.send(JSON.stringify(message));
    }

    // -- internals ---------------------------------------------------------

    handleMessage(data) {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (_) {
        this.onEvent('unparsable', String(data).slice(0, 80));
        return;
      }
      const payload = msg.payload || {};
      switch (msg.type) {
        case 'connected': {
          // The browser offers permessage-deflate; `extensions` says what the server answered.
          const compression = (this.socket && this.socket.extensions) || 'none';
          this.onEvent('connected', 'user ' + payload.username + ', session ' + payload.sessionId +
            ', compression: ' + compression);
          break;
        }
        case 'echo': {
          const waiter = this.echoWaiters.shift();
          if (waiter) waiter(payload);
          break;
        }
        case 'reauth_success':
          this.onEvent('reauth_success', 'socket now valid until ' + formatTime(payload.expiresAt));
          break;
        case 'token_expiring':
          this.onEvent('token_expiring', 'in ' + payload.expiresIn + 's');
          // The server warns before expiry: refresh now, unless the warning is
          // about a token that a refresh has already replaced.
          if (this.signedIn && payload.expiresAt >= this.expiresAt) this.refresh().catch(() => {});
          break;
        case 'error':
          this.onEvent('error ' + payload.code, payload.message || '');
          break;
        default:
          this.onEvent(String(msg.type), JSON.stringify(payload).slice(0, 120));
      }
    }

    reauthSocket() {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: 'reauth', access: this.accessToken }));
        this.onEvent('reauth_sent', '');
      }
    }

    acceptTokens(body) {
      this.accessToken = body.accessToken;
      this.expiresAt = body.expiresAt;
      this.user = body.user;
      this.authMethods = authMethodsOf(body.accessToken);
      this.scheduleRefresh(body.expiresIn);
      this.onState();
    }

    scheduleRefresh(lifetimeSeconds) {
      clearTimeout(this.refreshTimer);
      const delay = Math.max(1, this.secondsLeft() - refreshLead(lifetimeSeconds));
      this.refreshTimer = setTimeout(() => {
        this.refresh().catch(() => {});
      }, delay * 1000);
    }

    signOutLocally(notify) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = null;
      this.accessToken = null;
      this.expiresAt = null;
      this.user = null;
      this.authMethods = null;
      if (notify !== false) this.onEvent('signed_out', '');
      this.onState();
    }

    async request(method, path, opts) {
      const headers = { Accept: 'application/json' };
      const init = { method, headers, credentials: 'include', cache: 'no-store' };
      if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.json);
      }
      if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
      const res = await fetch(this.apiBase + path, init);
      const text = await res.text();
      let body = null;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch (_) {
          body = null;
        }
      }
      if (!res.ok) throw new AuthError(res.status, body);
      return body;
    }
  }

  function defaultWsUrl() {
    const scheme = global.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + global.location.host + '/ws';
  }

  function formatTime(unixSeconds) {
    return new Date(unixSeconds * 1000).toLocaleTimeString();
  }

  global.AuthClient = AuthClient;
  global.AuthError = AuthError;
})(window);
