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
// - The tabs of one browser share the refresh cookie, so they refresh as one:
//   a tab refreshes only while it holds the Web Lock `authd-refresh`, and
//   hands the new access token to the other tabs over the BroadcastChannel
//   `authd-auth`; a tab that gets the lock after another tab has refreshed
//   takes that tab's token instead of rotating the cookie again. N tabs cost
//   one rotation per expiry, and none depends on the server's reuse grace
//   (which stays the safety net). Logins and logouts are told to the other
//   tabs too, and a tab being opened asks the signed-in ones for the token
//   before it refreshes. The channel carries access tokens only to pages of
//   this origin, which could call /api/refresh with the cookie anyway; the
//   refresh token never leaves the cookie. Without `navigator.locks` or
//   `BroadcastChannel` (an old browser, a page not served over HTTPS), each
//   tab refreshes for itself as before.
//
// Usage:
//   const client = new AuthClient({ onEvent: (name, detail) => ..., onState: (state) => ... });
//   const outcome = await client.login(username, password);
//   if (outcome.mfaRequired) await client.loginMfa(outcome.mfaToken, { code: '123456' });
//   client.connectWebSocket();
//   await client.logout();
//
// Passkeys (WebAuthn, discoverable credentials): registerPasskey(password,
// name) adds one to the signed-in account, listPasskeys() and
// deletePasskey(id) manage them, loginWithPasskey() signs in with one and no
// username (the authenticator offers the passkeys it holds for this site).
// Options and credentials travel in their WebAuthn JSON forms
// (PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON,
// credential.toJSON()), converted here in a browser that lacks those.
//
// Sender-constrained sessions (DPoP, RFC 9449), on unless `dpop: false`:
// the first page of the origin makes an ECDSA P-256 key pair with WebCrypto,
// its private key non-extractable (script can ask the browser to sign with
// it, never read it), and stores the CryptoKeyPair in IndexedDB
// (`authd-dpop`, store `keys`, key `session-key`); later pages and every
// tab of the origin use that same pair. Logins and refreshes carry a `DPoP`
// proof signed by it, so the server binds the session to the key
// (`tokenType` "DPoP", `cnf.jkt` in every access token). A bound token is
// sent as `Authorization: DPoP <token>` with a fresh proof (its `ath` the
// token's hash), and a socket's `auth` and `reauth` messages carry one too:
// a copied access token or refresh cookie is refused without the key.
// Without WebCrypto or IndexedDB (or when the key cannot be made or
// stored) the client logs in unbound, as Bearer, and says why
// (`dpopState` 'unavailable', `dpopProblem`); a login never fails for it.
// `dpopBound` says whether the current session is bound, `dpopThumbprint`
// is the key's RFC 7638 thumbprint (what the server puts in `cnf.jkt`).
//
// Email: register(username, password, email) and setEmail(email, password,
// factor) send a verification mail; verifyEmail(token) completes its link
// (`/?verify=<token>`); forgotPassword(email) asks for a reset link (the
// answer says nothing about whether the address is an account's), and
// resetPassword(token, newPassword) completes it (`/?reset=<token>`).
// account() shows the address and whether it is verified. Tokens from mail
// are passed in by the caller and never logged or stored here.
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

  /** The Web Lock a tab holds while it refreshes (one tab at a time per browser profile). */
  const REFRESH_LOCK = 'authd-refresh';
  /** The BroadcastChannel the tabs of this origin tell each other tokens, logins and logouts on. */
  const TAB_CHANNEL = 'authd-auth';
  /** How long a tab being opened waits for a signed-in tab to hand over the token. */
  const ASK_TABS_MS = 300;
  // How long a tab keeps the lock after telling the others its new token.
  // The lock and the channel are separate, so nothing orders the message
  // before the next tab's turn with the lock; the message takes
  // milliseconds, and a tab whose turn still came first only rotates once
  // more (its cookie is the current one: never reuse).
  const HANDOVER_MS = 200;

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Whether a message from another tab holds a token response's members, well typed. */
  function isTokenMessage(msg) {
    return typeof msg.accessToken === 'string' && Number.isFinite(msg.expiresAt) &&
      Number.isFinite(msg.expiresIn) && msg.user !== null && typeof msg.user === 'object' &&
      typeof msg.user.id === 'string' && typeof msg.user.username === 'string';
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

  // -- passkeys: the WebAuthn JSON forms --------------------------------------

  /** Whether this browser has WebAuthn (a secure context with PublicKeyCredential). */
  function passkeysSupported() {
    return typeof global.PublicKeyCredential === 'function' && !!global.navigator &&
      !!global.navigator.credentials && typeof global.navigator.credentials.create === 'function';
  }

  /** base64url without padding of an ArrayBuffer or a view of one. */
  function toBase64url(data) {
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let binary = '';
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  /** The bytes of base64url text (atob does without the padding). */
  function fromBase64url(text) {
    const binary = atob(String(text).replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  /** A list of credential descriptors in JSON form, with binary ids. */
  function descriptorsFromJSON(list) {
    return Array.isArray(list) ? list.map((c) => ({ ...c, id: fromBase64url(c.id) })) : undefined;
  }

  /** Options for navigator.credentials.create from PublicKeyCredentialCreationOptionsJSON. */
  function creationOptionsFromJSON(json) {
    const PKC = global.PublicKeyCredential;
    if (typeof PKC.parseCreationOptionsFromJSON === 'function') return PKC.parseCreationOptionsFromJSON(json);
    const options = {
      ...json,
      challenge: fromBase64url(json.challenge),
      user: { ...json.user, id: fromBase64url(json.user.id) },
    };
    const exclude = descriptorsFromJSON(json.excludeCredentials);
    if (exclude) options.excludeCredentials = exclude;
    return options;
  }

  /** Options for navigator.credentials.get from PublicKeyCredentialRequestOptionsJSON. */
  function requestOptionsFromJSON(json) {
    const PKC = global.PublicKeyCredential;
    if (typeof PKC.parseRequestOptionsFromJSON === 'function') return PKC.parseRequestOptionsFromJSON(json);
    const options = { ...json, challenge: fromBase64url(json.challenge) };
    const allow = descriptorsFromJSON(json.allowCredentials);
    if (allow) options.allowCredentials = allow;
    return options;
  }

  /** A new or used credential as RegistrationResponseJSON / AuthenticationResponseJSON. */
  function credentialToJSON(credential) {
    if (typeof credential.toJSON === 'function') return credential.toJSON();
    const r = credential.response;
    const json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      // No extensions are asked for, so there are no binary results to encode.
      clientExtensionResults: typeof credential.getClientExtensionResults === 'function'
        ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(r.clientDataJSON) },
    };
    if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
    if (r.attestationObject) {
      // An AuthenticatorAttestationResponse (registration).
      json.response.attestationObject = toBase64url(r.attestationObject);
      if (typeof r.getAuthenticatorData === 'function') {
        json.response.authenticatorData = toBase64url(r.getAuthenticatorData());
      }
      if (typeof r.getTransports === 'function') json.response.transports = r.getTransports();
      if (typeof r.getPublicKeyAlgorithm === 'function') json.response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
      const publicKey = typeof r.getPublicKey === 'function' ? r.getPublicKey() : null;
      if (publicKey) json.response.publicKey = toBase64url(publicKey);
    } else {
      // An AuthenticatorAssertionResponse (login).
      json.response.authenticatorData = toBase64url(r.authenticatorData);
      json.response.signature = toBase64url(r.signature);
      if (r.userHandle) json.response.userHandle = toBase64url(r.userHandle);
    }
    return json;
  }

  /** What the page shows when the browser's own part of a ceremony fails (a DOMException's name). */
  const CEREMONY_FAILURES = {
    NotAllowedError: 'The passkey prompt was cancelled, timed out, or found no passkey for this site.',
    InvalidStateError: 'This authenticator already holds a passkey for this account.',
    SecurityError: 'Passkeys need HTTPS and a page served from the relying party\'s domain.',
    NotSupportedError: 'No authenticator here supports what the server asks for.',
    AbortError: 'The passkey prompt was aborted.',
  };

  /**
   * Runs a browser ceremony (create or get); a failure of the browser's
   * own part is thrown like a server's, its `code` the DOMException's name.
   */
  async function ceremony(run) {
    if (!passkeysSupported()) {
      const err = new Error('This browser has no passkey support (WebAuthn).');
      err.code = 'passkeys_unsupported';
      throw err;
    }
    try {
      const credential = await run(global.navigator.credentials);
      if (!credential) throw new DOMException('no credential', 'NotAllowedError');
      return credential;
    } catch (cause) {
      const name = (cause && cause.name) || 'Error';
      const err = new Error(CEREMONY_FAILURES[name] || (cause && cause.message) || String(cause));
      err.code = name;
      err.cause = cause;
      throw err;
    }
  }

  // -- DPoP: the browser's key and its proofs ---------------------------------

  /** Where the key pair lives: one IndexedDB record per origin, shared by every tab. */
  const KEY_DB = 'authd-dpop';
  const KEY_STORE = 'keys';
  const KEY_ID = 'session-key';
  const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' };
  const SIGN_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' };
  /**
   * A clock further than this many seconds from the server's (its `Date`
   * header) is corrected in the proofs' `iat`: the server takes proofs only
   * within DPOP_PROOF_MAX_AGE (60 s by default) of its own clock, and
   * issues no nonce a client could use instead. `Date` has whole seconds,
   * so smaller differences are noise.
   */
  const CLOCK_SKEW_TOLERANCE = 10;

  /** Why this browser cannot hold a DPoP key, or null when it can. */
  function dpopUnsupported() {
    const c = global.crypto;
    if (!c || !c.subtle || typeof c.getRandomValues !== 'function') return 'no WebCrypto (a page not served over HTTPS?)';
    if (!global.indexedDB) return 'no IndexedDB';
    if (typeof global.CryptoKey !== 'function' || typeof global.TextEncoder !== 'function') return 'no CryptoKey';
    return null;
  }

  /** A key pair as this client stores it: ECDSA P-256, the private half non-extractable. */
  function isKeyPair(pair) {
    const CK = global.CryptoKey;
    return !!pair && pair.privateKey instanceof CK && pair.publicKey instanceof CK &&
      pair.privateKey.extractable === false && pair.privateKey.algorithm.name === 'ECDSA' &&
      pair.privateKey.algorithm.namedCurve === 'P-256' && pair.privateKey.usages.includes('sign');
  }

  function openKeyDb() {
    return new Promise((resolve, reject) => {
      const req = global.indexedDB.open(KEY_DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(KEY_STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error || new Error('IndexedDB refused to open'));
    });
  }

  /**
   * The record `KEY_ID` of the store, or, when it holds no usable key pair,
   * `fresh` stored there: one readwrite transaction, so that when tabs
   * race, the first to store its pair wins and every tab uses that one.
   */
  function keepFirstKeyPair(db, fresh) {
    return new Promise((resolve, reject) => {
      const tx = db.transaction(KEY_STORE, 'readwrite');
      const store = tx.objectStore(KEY_STORE);
      let chosen = null;
      const read = store.get(KEY_ID);
      read.onsuccess = () => {
        if (isKeyPair(read.result)) {
          chosen = read.result;
        } else if (fresh) {
          chosen = fresh;
          store.put(fresh, KEY_ID);
        }
      };
      tx.oncomplete = () => resolve(chosen);
      tx.onerror = () => reject(tx.error || new Error('the key transaction failed'));
      tx.onabort = () => reject(tx.error || new Error('the key transaction was aborted'));
    });
  }

  /** The origin's key pair from IndexedDB, made and stored on first use. */
  async function loadOrCreateKeyPair() {
    const db = await openKeyDb();
    try {
      const stored = await keepFirstKeyPair(db, null);
      if (stored) return stored;
      // Non-extractable: the private key never leaves the browser's key store,
      // not even to this script. (Made outside the transaction, which would
      // end while the key is being generated.)
      const fresh = await global.crypto.subtle.generateKey(KEY_ALGORITHM, false, ['sign']);
      return await keepFirstKeyPair(db, fresh);
    } finally {
      db.close();
    }
  }

  const utf8 = (text) => new global.TextEncoder().encode(text);
  const base64urlJson = (value) => toBase64url(utf8(JSON.stringify(value)));

  /** `bytes` random bytes, base64url. */
  function randomId(bytes) {
    return toBase64url(global.crypto.getRandomValues(new Uint8Array(bytes)));
  }

  /** base64url SHA-256 of `text` (a proof's `ath`, a key's thumbprint). */
  async function sha256(text) {
    return toBase64url(await global.crypto.subtle.digest('SHA-256', utf8(text)));
  }

  /**
   * The public half of `pair` for proofs' headers, and its RFC 7638
   * thumbprint: the SHA-256 of the required members in lexicographic order,
   * no whitespace, as the server computes `cnf.jkt`.
   */
  async function describeKey(pair) {
    const full = await global.crypto.subtle.exportKey('jwk', pair.publicKey);
    const jwk = { kty: full.kty, crv: full.crv, x: full.x, y: full.y };
    const thumbprint = await sha256(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }));
    return { pair, jwk, thumbprint };
  }

  /** A proof's `htu`: the absolute URL without query or fragment, `ws(s)` read as `http(s)`. */
  function proofUrl(url) {
    const u = new URL(url, global.location.href);
    const scheme = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
    return scheme + '//' + u.host + u.pathname;
  }

  /** `Bearer`, or `DPoP` when a token response (or a token itself) says the session is bound. */
  function tokenTypeOf(body) {
    if (body.tokenType === 'DPoP') return 'DPoP';
    if (typeof body.tokenType === 'string') return 'Bearer';
    // A message without the member (from a tab of an older page): the token's own cnf claim.
    try {
      const part = body.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const cnf = JSON.parse(atob(part)).cnf;
      return cnf && typeof cnf.jkt === 'string' ? 'DPoP' : 'Bearer';
    } catch (_) {
      return 'Bearer';
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
      this.lifetime = null; // seconds, as issued (the refresh lead depends on it)
      this.socket = null;
      this.socketUserId = null; // the user the open socket authenticated as
      this.refreshTimer = null;
      this.refreshing = null;
      this.echoWaiters = [];
      // Coordination between tabs (see the top of this file); null when the
      // browser lacks it, and then each tab refreshes for itself.
      this.locks = (global.navigator && global.navigator.locks &&
        typeof global.navigator.locks.request === 'function') ? global.navigator.locks : null;
      this.channel = null;
      if (typeof global.BroadcastChannel === 'function') {
        try {
          this.channel = new global.BroadcastChannel(TAB_CHANNEL);
          this.channel.addEventListener('message', (ev) => this.handleTabMessage(ev.data));
        } catch (_) {
          this.channel = null;
        }
      }
      this.tabAnswered = null; // resolves resume()'s wait for another tab's token
      this.tokenType = null; // 'DPoP' for a bound session, 'Bearer' otherwise
      this.sendQueue = null; // socket messages waiting for a proof (see queueSend)
      this.clockSkew = 0; // seconds the server's clock is ahead of ours (see CLOCK_SKEW_TOLERANCE)
      // DPoP: 'pending' while the key loads, 'ready', 'off' (dpop: false),
      // or 'unavailable' (dpopProblem says why; sessions are then unbound).
      this.dpopState = opts.dpop === false ? 'off' : 'pending';
      this.dpopProblem = null;
      this.dpopThumbprint = null; // the key's RFC 7638 thumbprint once loaded
      this.dpopKey = opts.dpop === false ? Promise.resolve(null) : this.loadDpopKey();
    }

    /** True while signed in on a DPoP-bound session (the token is useless without this browser's key). */
    get dpopBound() {
      return this.signedIn && this.tokenType === 'DPoP';
    }

    /**
     * Loads (or makes, on first use) the origin's key; resolves to it, or
     * to null when DPoP is unavailable here (never rejects: a login then
     * goes on unbound).
     */
    async loadDpopKey() {
      // Never synchronously within the constructor: the callbacks below may
      // use the client the constructor is still making.
      await Promise.resolve();
      let key = null;
      try {
        const missing = dpopUnsupported();
        if (missing) throw new Error(missing);
        key = await describeKey(await loadOrCreateKeyPair());
        this.dpopThumbprint = key.thumbprint;
        this.dpopState = 'ready';
      } catch (err) {
        this.dpopState = 'unavailable';
        this.dpopProblem = (err && err.message) || String(err);
        this.onEvent('dpop_unavailable', 'sessions here are unbound (Bearer): ' + this.dpopProblem);
      }
      this.onState();
      return key;
    }

    /**
     * A DPoP proof for `method` on `url` (a REST path's URL or the socket's),
     * with `ath` when `accessToken` goes with it; null when there is no key.
     */
    async dpopProof(method, url, accessToken) {
      const key = await this.dpopKey;
      if (!key) return null;
      const claims = {
        jti: randomId(16),
        htm: method,
        htu: proofUrl(url),
        iat: Math.floor(Date.now() / 1000) + this.clockSkew,
      };
      if (accessToken) claims.ath = await sha256(accessToken);
      const input = base64urlJson({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }) + '.' + base64urlJson(claims);
      // WebCrypto's ECDSA signature is r || s, 64 bytes: JWS ES256's form.
      const signature = await global.crypto.subtle.sign(SIGN_ALGORITHM, key.pair.privateKey, utf8(input));
      return input + '.' + toBase64url(signature);
    }

    /** The held access token and its type, for a request's `Authorization`. */
    credentials() {
      return { token: this.accessToken, tokenType: this.tokenType };
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

    /**
     * Creates an account; with `email` (optional) a verification mail goes
     * to that address, whose link (`/?verify=<token>`) `verifyEmail`
     * completes. Nothing is signed in: `login` follows.
     */
    async register(username, password, email) {
      const json = { username, password };
      if (typeof email === 'string' && email.trim() !== '') json.email = email.trim();
      const body = await this.request('POST', '/register', { json });
      this.onEvent('registered', body.username + (json.email ? ', a verification mail is on its way' : ''));
      return body;
    }

    /**
     * True while signed in on a session that began with two factors: a
     * password and a code (`pwd`, `otp`), or a passkey (`hwk` or `swk`
     * with `mfa`, RFC 8176: a key held, unlocked by the user).
     */
    get twoFactor() {
      return Array.isArray(this.authMethods) &&
        (this.authMethods.includes('otp') || this.authMethods.includes('mfa'));
    }

    /** True while signed in on a session that began with a passkey. */
    get passkeySession() {
      return Array.isArray(this.authMethods) &&
        (this.authMethods.includes('hwk') || this.authMethods.includes('swk'));
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
        // With a proof: the server binds the session to this browser's key.
        body = await this.request('POST', '/login', { json: { username, password }, dpop: true });
      } catch (err) {
        if (err instanceof AuthError && err.status === 403 && err.code === 'mfa_required' &&
            err.problem && typeof err.problem.mfaToken === 'string') {
          const methods = Array.isArray(err.problem.methods) ? err.problem.methods : ['totp'];
          this.onEvent('mfa_required', 'second factor: ' + methods.join(', '));
          return { mfaRequired: true, mfaToken: err.problem.mfaToken, methods };
        }
        throw err;
      }
      this.acceptLogin(body, '');
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
      const body = await this.request('POST', '/login/mfa', { json, dpop: true });
      this.acceptLogin(body, hasRecovery ? ' (recovery code)' : '');
      return body;
    }

    /**
     * Logs in with a passkey, no username: the authenticator offers the
     * passkeys it holds for this site (a discoverable credential) and the
     * user picks and unlocks one. Resolves to the token response, as
     * `login` does (never a second step: a passkey is two factors).
     * Errors: invalid_passkey (unknown or deleted passkey, a failed check),
     * rate_limited, and the browser's own (NotAllowedError: cancelled,
     * timed out, no passkey here).
     */
    async loginWithPasskey() {
      const begun = await this.request('POST', '/login/passkey/options', { json: {} });
      const credential = await ceremony((credentials) =>
        credentials.get({ publicKey: requestOptionsFromJSON(begun.publicKey) }));
      const body = await this.request('POST', '/login/passkey', {
        json: { loginId: begun.loginId, credential: credentialToJSON(credential) },
        dpop: true,
      });
      this.acceptLogin(body, ' (passkey)');
      return body;
    }

    /** Whether this browser can use passkeys at all. */
    get passkeysSupported() {
      return passkeysSupported();
    }

    /**
     * Adds a passkey to the signed-in account: the password confirms it,
     * then the authenticator makes the credential. `name` is optional (the
     * server's default is "Passkey"). Resolves to the Passkey
     * `{ id, name, createdAt, lastUsedAt, backedUp }`. Errors:
     * invalid_credentials (the password), invalid_passkey, passkey_exists,
     * not_found (the registration expired: start again), rate_limited, and
     * the browser's own (InvalidStateError: this authenticator holds one).
     */
    async registerPasskey(password, name) {
      const begun = await this.request('POST', '/passkeys/registration/options', {
        ...this.credentials(),
        json: { password },
      });
      const credential = await ceremony((credentials) =>
        credentials.create({ publicKey: creationOptionsFromJSON(begun.publicKey) }));
      const json = { registrationId: begun.registrationId, credential: credentialToJSON(credential) };
      if (name) json.name = name;
      const passkey = await this.request('POST', '/passkeys/registration', { ...this.credentials(), json });
      this.onEvent('passkey_added', passkey.name);
      return passkey;
    }

    /** The account's passkeys, oldest first. */
    async listPasskeys() {
      return this.request('GET', '/passkeys', this.credentials());
    }

    /** Deletes a passkey: it signs in no more (sessions it began live on). */
    async deletePasskey(id) {
      await this.request('DELETE', '/passkeys/' + encodeURIComponent(id), this.credentials());
      this.onEvent('passkey_deleted', id);
    }

    /**
     * The signed-in account: `{ id, username, email, emailVerified,
     * createdAt, mfa: { totp, passkeys } }`. `email` is the verified
     * address, or while there is none the one waiting for its link; null
     * when there is neither. A changed address shows once it is verified.
     */
    async account() {
      return this.request('GET', '/account', this.credentials());
    }

    // -- email: an address proved by a link, a password reset by one --------

    /**
     * Asks to make `email` the signed-in account's address: the password
     * confirms it, and, while two-factor login is on and this session began
     * without it, a second factor (`factor`: the app's code as a string, or
     * `{ code }` or `{ recoveryCode }`; the server asks with
     * invalid_mfa_code). A verification mail goes to the address; the
     * account's address changes only once its link is followed. Errors:
     * invalid_email, invalid_credentials, invalid_mfa_code, email_taken,
     * rate_limited.
     */
    async setEmail(email, password, factor) {
      const json = { email, password };
      if (typeof factor === 'string' && factor !== '') json.code = factor;
      else if (factor && typeof factor === 'object') Object.assign(json, factor);
      await this.request('PUT', '/account/email', { ...this.credentials(), json });
      this.onEvent('email_change_sent', 'the address changes once its link is followed');
    }

    /**
     * Completes a verification link's token (`/?verify=<token>`): the
     * address it was sent to becomes its account's, verified. No session
     * is needed. Errors: invalid_token_in_mail (unknown, used, expired, or
     * for an address no longer waiting).
     */
    async verifyEmail(token) {
      await this.request('POST', '/email/verify', { json: { token } });
      this.onEvent('email_verified', '');
    }

    /**
     * Asks for a reset link to `email`. The answer is the same whether or
     * not the address belongs to an account (a mail goes only to a
     * verified address, at most three an hour): resolves either way.
     */
    async forgotPassword(email) {
      await this.request('POST', '/password/forgot', { json: { email } });
      this.onEvent('password_reset_requested', '');
    }

    /**
     * Completes a reset link's token (`/?reset=<token>`) with a new
     * password: every session of that account ends (its sockets close with
     * 4003), two-factor login stays on. A session this browser holds may be
     * one of them (a reset for the signed-in account): a refresh finds out,
     * and on 401 signs out here. Errors: invalid_token_in_mail,
     * weak_password (the token stays usable).
     */
    async resetPassword(token, newPassword) {
      await this.request('POST', '/password/reset', { json: { token, newPassword } });
      this.onEvent('password_reset', 'every session of the account ended');
      if (this.signedIn) await this.refresh().catch(() => {});
    }

    /**
     * Begins a TOTP enrolment (the password confirms it): resolves to
     * `{ secret, otpauthUri, expiresIn }`, to show once (QR code and text).
     * Throws mfa_already_enabled when it is on.
     */
    /** The caller's two-factor state: { enabled, enabledAt, pending, recoveryCodesLeft }. */
    async twoFactorStatus() {
      return this.request('GET', '/mfa/totp', this.credentials());
    }

    async beginTotp(password) {
      const body = await this.request('POST', '/mfa/totp', {
        ...this.credentials(),
        json: { password },
      });
      this.onEvent('totp_begun', 'confirm within ' + body.expiresIn + ' s');
      return body;
    }

    /** Confirms the pending enrolment with a code: resolves to the 10 recovery codes, to show once. */
    async confirmTotp(code) {
      const body = await this.request('POST', '/mfa/totp/confirm', {
        ...this.credentials(),
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
        ...this.credentials(),
        json: { password, ...factor },
      });
      this.onEvent('totp_disabled', '');
    }

    /**
     * Signs in from the session this browser already has, e.g. on page load:
     * from another tab that is signed in, else with the refresh cookie.
     * Resolves to true when signed in.
     */
    async resume() {
      try {
        // A tab being opened next to signed-in ones costs no rotation.
        if (await this.askTabs()) return true;
        await this.refresh();
        return true;
      } catch (err) {
        this.onEvent('not_signed_in', err.code || err.message);
        return false;
      }
    }

    /**
     * Rotates the refresh cookie and gets a new access token; an open socket is
     * re-authenticated with it, and the other tabs are given it. Resolves to
     * the token response, or, when another tab refreshed while this one
     * waited for the lock, to one of that tab's token (no second rotation).
     * Concurrent calls share one request, because two refreshes with one
     * cookie would look like reuse; the lock does the same between tabs.
     */
    refresh() {
      if (!this.refreshing) {
        // The token this refresh is to replace: the tab whose turn with the
        // lock comes after another tab's refresh finds a newer one.
        const replacing = { token: this.accessToken, expiresAt: this.expiresAt };
        this.refreshing = this.withRefreshLock(() => {
          if (this.replacedSince(replacing)) return this.tokenResponse();
          // A bound session's refresh needs a proof by its key; an unbound
          // one's ignores it.
          return this.request('POST', '/refresh', { dpop: true }).then((body) => {
            this.acceptTokens(body);
            this.onEvent('refreshed', 'expires in ' + body.expiresIn + 's');
            this.reauthSocket();
            this.tellTabs('token', body);
            return body;
          });
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
      const presented = this.credentials();
      const socket = this.socket;
      try {
        await this.request('POST', '/logout', presented);
        this.onEvent('logout', 'session revoked');
        // Only once the server revoked it: a failed request leaves the
        // session alive, and the other tabs keep it.
        this.tellTabs('logout');
      } finally {
        this.signOutLocally(false);
        this.closeSocketSoon(socket, 'logout');
      }
    }

    /** Changes the password; every other session of the user ends. */
    async changePassword(currentPassword, newPassword) {
      await this.request('POST', '/password', {
        ...this.credentials(),
        json: { currentPassword, newPassword },
      });
      this.onEvent('password_changed', 'other sessions ended');
    }

    /** Deletes the account; the server ends every session and closes the socket (4003). */
    async deleteAccount(password) {
      await this.request('DELETE', '/account', { ...this.credentials(), json: { password } });
      this.onEvent('account_deleted', '');
      this.tellTabs('logout');
      this.signOutLocally(false);
    }

    async listSessions() {
      return this.request('GET', '/sessions', this.credentials());
    }

    async revokeSession(id) {
      await this.request('DELETE', '/sessions/' + encodeURIComponent(id), this.credentials());
      this.onEvent('session_revoked_by_user', id);
    }

    async protectedResource() {
      return this.request('GET', '/protected', this.credentials());
    }

    connectWebSocket() {
      if (!this.accessToken) throw new Error('not signed in');
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) return this.socket;
      // No token in the URL (contract v3): URLs end up in logs and in the
      // browser's history. The first message authenticates the socket.
      const socket = new WebSocket(this.wsUrl);
      this.sendQueue = null;
      socket.addEventListener('open', () => {
        // Queued: the proof of a bound session is signed first, and anything
        // sent meanwhile goes after the auth message.
        const { token, tokenType } = this.credentials();
        this.queueSend(socket, () => this.socketAuthMessage('auth', token, tokenType))
          .catch((err) => this.onEvent('ws_error', 'no auth message: ' + err.message));
      }, { once: true });
      this.socket = socket;
      this.socketUserId = this.user.id;
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
      if (this.sendQueue) {
        this.queueSend(this.socket, () => message).catch(() => {});
      } else {
        this.socket.send(JSON.stringify(message));
      }
    }

    /**
     * Sends on `socket` the message `make` resolves to, after whatever is
     * queued before it: the first `auth` and every `reauth` wait for their
     * proofs, and nothing overtakes them.
     */
    queueSend(socket, make) {
      const before = this.sendQueue || Promise.resolve();
      const sent = before.then(make).then((message) => {
        if (socket.readyState !== WebSocket.OPEN) throw new Error('socket not open');
        socket.send(JSON.stringify(message));
        return message;
      });
      const settled = sent.then(() => undefined, () => undefined);
      this.sendQueue = settled;
      settled.then(() => {
        if (this.sendQueue === settled) this.sendQueue = null;
      });
      return sent;
    }

    /** `{type, access}` for `auth` or `reauth`, with `dpop` (a proof for the socket's URL) when the token is bound. */
    async socketAuthMessage(type, token, tokenType) {
      const message = { type, access: token };
      if (tokenType === 'DPoP') {
        const proof = await this.dpopProof('GET', this.wsUrl, token);
        if (proof) message.dpop = proof;
      }
      return message;
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
      const socket = this.socket;
      if (socket && socket.readyState === WebSocket.OPEN) {
        const { token, tokenType } = this.credentials();
        this.queueSend(socket, () => this.socketAuthMessage('reauth', token, tokenType))
          .then(() => this.onEvent('reauth_sent', ''), (err) => this.onEvent('ws_error', 'no reauth: ' + err.message));
      }
    }

    /** The server closes a revoked session's socket (4003); closes it here if that did not happen in time. */
    closeSocketSoon(socket, reason) {
      if (!socket) return;
      setTimeout(() => {
        if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
          socket.close(1000, reason);
        }
      }, 2000);
    }

    // -- between tabs ------------------------------------------------------

    /**
     * Runs `work` (a function returning a promise) while holding the refresh
     * lock, so that no two tabs refresh at once; without Web Locks, at once.
     */
    withRefreshLock(work) {
      if (!this.locks) return Promise.resolve().then(work);
      return new Promise((resolve, reject) => {
        let started = false;
        this.locks.request(REFRESH_LOCK, () => {
          started = true;
          const done = Promise.resolve().then(work);
          done.then(resolve, reject);
          // The caller has its answer now; the lock is kept a moment longer
          // (see HANDOVER_MS). The tabs' timers fire together, so the next
          // tab's request is usually already waiting.
          return done.then(() => sleep(HANDOVER_MS), () => undefined);
        }).catch(() => {
          // The lock itself failed (not the work, whose outcome is passed on
          // above): refresh without it, as a tab without Web Locks does.
          if (!started) Promise.resolve().then(work).then(resolve, reject);
        });
      });
    }

    /** Whether another tab has given this one a newer token than `replacing` since it was taken. */
    replacedSince(replacing) {
      if (!this.signedIn || this.accessToken === replacing.token || this.secondsLeft() === 0) return false;
      return replacing.expiresAt === null || this.expiresAt >= replacing.expiresAt;
    }

    /** The token held, in the shape of a token response (what refresh resolves to, what the tabs exchange). */
    tokenResponse() {
      return {
        accessToken: this.accessToken,
        tokenType: this.tokenType || 'Bearer',
        expiresIn: this.lifetime,
        expiresAt: this.expiresAt,
        user: this.user,
      };
    }

    /**
     * Tells the other tabs `type`: `token` (a refresh's token, or the answer
     * to `query`), `login` (a new session's token), `logout`, or `query`
     * (a tab being opened asks for the token). Never logged.
     */
    tellTabs(type, body) {
      if (!this.channel) return;
      const msg = { type };
      if (body) {
        msg.accessToken = body.accessToken;
        // Whether it is bound: every tab has the same key (IndexedDB) to prove it with.
        msg.tokenType = tokenTypeOf(body);
        msg.expiresAt = body.expiresAt;
        msg.expiresIn = body.expiresIn; // the lifetime as issued: every tab computes one lead
        msg.user = { id: body.user.id, username: body.user.username };
      }
      try {
        this.channel.postMessage(msg);
      } catch (_) {
        // A closed channel (the page is going away): nothing to tell.
      }
    }

    handleTabMessage(msg) {
      if (msg === null || typeof msg !== 'object') return;
      switch (msg.type) {
        case 'query':
          if (this.signedIn && this.secondsLeft() > 0) this.tellTabs('token', this.tokenResponse());
          break;
        case 'token':
        case 'login':
          if (isTokenMessage(msg)) this.adoptTabToken(msg, msg.type === 'login');
          break;
        case 'logout': {
          // The session is revoked on the server; its socket here is closed
          // by the server (4003), or by us if that does not happen in time.
          if (!this.signedIn) break;
          const socket = this.socket;
          this.onEvent('logout_in_tab', 'signed out in another tab');
          this.signOutLocally();
          this.closeSocketSoon(socket, 'logout');
          break;
        }
        default:
          break;
      }
    }

    /**
     * Takes a token another tab got: as after a refresh of our own (state,
     * timer, the socket re-authenticated). A refresh's token only when newer
     * than ours (a late message must not undo a later refresh); a login's
     * always, since the cookie is that session's now.
     */
    adoptTabToken(msg, login) {
      if (msg.expiresAt <= Math.floor(Date.now() / 1000)) return;
      if (msg.accessToken === this.accessToken) return;
      if (!login && this.signedIn && msg.expiresAt <= this.expiresAt) return;
      this.acceptTokens(msg);
      if (login) {
        this.onEvent('login_in_tab', msg.user.username + ', ' + (this.authMethods || ['?']).join('+'));
      } else {
        this.onEvent('token_from_tab', 'expires in ' + this.secondsLeft() + 's');
      }
      if (this.socket && this.socketUserId !== msg.user.id) {
        // A socket of another user (someone else logged in in another tab):
        // a reauth would be refused, so it ends here.
        this.socket.close(1000, 'signed in as another user');
      } else {
        this.reauthSocket();
      }
      if (this.tabAnswered) this.tabAnswered();
    }

    /**
     * Asks the other tabs for the token (resume on page load). Resolves to
     * true when one answered within ASK_TABS_MS, false otherwise (no
     * channel, no signed-in tab).
     */
    askTabs() {
      if (this.signedIn) return Promise.resolve(true);
      if (!this.channel) return Promise.resolve(false);
      return new Promise((resolve) => {
        const finish = (answered) => {
          clearTimeout(timer);
          this.tabAnswered = null;
          resolve(answered);
        };
        const timer = setTimeout(() => finish(false), ASK_TABS_MS);
        this.tabAnswered = () => finish(true);
        this.tellTabs('query');
      });
    }

    /** A login's token response (any method): signed in here and in every tab. */
    acceptLogin(body, how) {
      this.acceptTokens(body);
      this.onEvent('login', body.user.username + ', ' + (this.authMethods || ['?']).join('+') + how);
      // The cookie is the new session's now, in every tab.
      this.tellTabs('login', body);
    }

    acceptTokens(body) {
      this.accessToken = body.accessToken;
      this.tokenType = tokenTypeOf(body);
      this.expiresAt = body.expiresAt;
      this.lifetime = body.expiresIn;
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
      this.tokenType = null;
      this.expiresAt = null;
      this.lifetime = null;
      this.user = null;
      this.authMethods = null;
      if (notify !== false) this.onEvent('signed_out', '');
      this.onState();
    }

    /** Follows the server's clock (its `Date` header) for the proofs' `iat`, when ours is far off. */
    noteServerClock(date) {
      const server = Date.parse(date || '');
      if (!Number.isFinite(server)) return;
      const skew = Math.round((server - Date.now()) / 1000);
      this.clockSkew = Math.abs(skew) > CLOCK_SKEW_TOLERANCE ? skew : 0;
    }

    /**
     * `opts`: `json` (the body), `token` and `tokenType` (the access token
     * to send: a `DPoP` one with a proof of its own, its `ath` the token's
     * hash), `dpop` (a proof without a token: logins and refreshes).
     */
    async request(method, path, opts) {
      const url = this.apiBase + path;
      const headers = { Accept: 'application/json' };
      const init = { method, headers, credentials: 'include', cache: 'no-store' };
      if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.json);
      }
      if (opts.token && opts.tokenType === 'DPoP') {
        headers.Authorization = 'DPoP ' + opts.token;
        // Without the key (it could not be loaded) the server refuses the
        // token, as it should.
        const proof = await this.dpopProof(method, url, opts.token);
        if (proof) headers.DPoP = proof;
      } else if (opts.token) {
        headers.Authorization = 'Bearer ' + opts.token;
      }
      if (opts.dpop) {
        try {
          const proof = await this.dpopProof(method, url, null);
          if (proof) headers.DPoP = proof;
        } catch (err) {
          // A key that cannot sign: unbound, never a failed login.
          this.dpopState = 'unavailable';
          this.dpopProblem = 'signing failed: ' + ((err && err.message) || String(err));
          this.dpopKey = Promise.resolve(null);
          this.onEvent('dpop_unavailable', 'sessions here are unbound (Bearer): ' + this.dpopProblem);
        }
      }
      const res = await fetch(url, init);
      this.noteServerClock(res.headers.get('Date'));
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
