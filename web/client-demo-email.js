// The demo page's email parts (client-demo.js wires them): the account's
// address and the form to change it, "Forgot password?", and the two links
// a mail holds, `/?verify=<token>` (completed at once) and `/?reset=<token>`
// (completed once a new password is typed).
//
// A link's token leaves the address bar before the page makes any request
// (history.replaceState: no history entry keeps it); the page has
// `<meta name="referrer" content="no-referrer">` (and Nginx sends
// `Referrer-Policy: no-referrer`), so no request carries it as a Referer.
// It lives in a variable here only, never in the page's text, the event log
// or storage. #mail-result says what came of a link or a reset request
// (data-outcome: verified, verify_failed, forgot_sent, reset_done,
// reset_failed); #email-state shows the address (data-email, data-verified).
// A token pasted from a mail's "Token: " line (#mail-token-form) goes the
// same way as its link.
(function (global) {
  'use strict';

  const $ = (id) => global.document.getElementById(id);

  /**
   * The tokens of a mail's link in the page's URL (`verify`, `reset`; null
   * when absent), taken out of it: the address bar keeps the rest (say
   * `?dpop=off`) and the fragment.
   */
  function takeMailTokens() {
    const loc = global.location;
    const params = new URLSearchParams(loc.search);
    const tokens = { verify: params.get('verify') || null, reset: params.get('reset') || null };
    if (params.has('verify') || params.has('reset')) {
      params.delete('verify');
      params.delete('reset');
      const query = params.toString();
      global.history.replaceState(global.history.state, '', loc.pathname + (query ? '?' + query : '') + loc.hash);
    }
    return tokens;
  }

  /** Says what came of a mail's link or a reset request. */
  function showMailResult(outcome, text) {
    const result = $('mail-result');
    result.dataset.outcome = outcome;
    result.textContent = text;
  }

  /**
   * Wires the email parts of the page to `client`. `guarded(fn)` runs an
   * action of the page (its errors shown and logged as `failed`, the page
   * rendered after), `showError(null)` clears the error line. Returns
   * `render()`, for the page's render, and `completeLinks(tokens)`, for the
   * tokens `takeMailTokens` found.
   */
  function wireEmail(client, guarded, showError) {
    // GET /api/account's address, read again whenever the signed-in user or
    // the address may have changed (a login, a verification, a change).
    let changes = 0;
    let shownKey = null;

    function showEmail() {
      const state = $('email-state');
      const key = client.signedIn ? client.user.id + '/' + changes : null;
      if (key === shownKey) return;
      shownKey = key;
      if (key === null) {
        state.dataset.email = '';
        state.dataset.verified = '';
        state.textContent = 'no session';
        $('email-note').textContent = '';
        $('email-code-label').hidden = true;
        return;
      }
      client.account().then((account) => {
        if (shownKey !== key) return;
        const email = typeof account.email === 'string' ? account.email : '';
        state.dataset.email = email;
        state.dataset.verified = email ? String(account.emailVerified === true) : '';
        state.textContent = !email ? 'none: add one to be able to reset a forgotten password'
          : email + (account.emailVerified ? ': verified' : ': not verified yet (follow the link in the mail)');
      }, (err) => {
        if (shownKey !== key) return;
        state.dataset.email = '';
        state.dataset.verified = '';
        state.textContent = 'unknown (' + (err.code || err.message) + ')';
      });
    }

    /** After anything that may change the account's address. */
    function emailChanged() {
      changes += 1;
    }

    $('email-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      guarded(async () => {
        const email = $('email-new').value.trim();
        // Six digits are the app's code; anything else a recovery code.
        const typed = $('email-code').value.replace(/\s/g, '');
        const factor = !typed ? undefined : /^\d{6}$/.test(typed) ? { code: typed } : { recoveryCode: typed };
        $('email-note').textContent = '';
        try {
          await client.setEmail(email, $('email-password').value, factor);
        } catch (err) {
          // Two-factor login is on and this session began without it: the
          // server asks for a code, as for a password change.
          if (err.code === 'invalid_mfa_code') {
            $('email-code-label').hidden = false;
            $('email-code').focus();
          }
          throw err;
        } finally {
          $('email-password').value = '';
          $('email-code').value = '';
        }
        $('email-new').value = '';
        $('email-code-label').hidden = true;
        $('email-note').textContent = 'A verification mail is on its way to ' + email +
          ': the address changes once its link is followed.';
        emailChanged();
      });
    });

    $('forgot-btn').addEventListener('click', () => {
      showError(null);
      $('forgot-form').hidden = false;
      $('forgot-email').focus();
    });

    $('forgot-cancel-btn').addEventListener('click', () => {
      $('forgot-form').hidden = true;
      $('forgot-email').value = '';
    });

    $('forgot-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      guarded(async () => {
        // The server's answer is the same whether or not the address is an
        // account's; only a refusal of the request itself (a malformed
        // address, Nginx's rate limit) is shown as an error.
        await client.forgotPassword($('forgot-email').value.trim());
        $('forgot-form').hidden = true;
        $('forgot-email').value = '';
        showMailResult('forgot_sent', 'If that address belongs to an account, a mail is on its way');
      });
    });

    // A reset link's token while its form is shown.
    let resetToken = null;

    function askNewPassword(token) {
      resetToken = token;
      $('reset-form').hidden = false;
      $('reset-password').focus();
    }

    function endReset() {
      resetToken = null;
      $('reset-password').value = '';
      $('reset-password-again').value = '';
      $('reset-form').hidden = true;
    }

    $('reset-cancel-btn').addEventListener('click', endReset);

    $('reset-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      guarded(async () => {
        const password = $('reset-password').value;
        const again = $('reset-password-again').value;
        $('reset-password').value = '';
        $('reset-password-again').value = '';
        if (password !== again) throw new Error('The two passwords differ: type them again.');
        try {
          await client.resetPassword(resetToken, password);
        } catch (err) {
          // A weak password keeps the token usable; a spent one does not.
          if (err.code === 'invalid_token_in_mail') {
            endReset();
            showMailResult('reset_failed', 'This reset link is used, expired or replaced by a newer one: ask for another.');
          }
          throw err;
        }
        endReset();
        showMailResult('reset_done', 'Password changed: log in with it');
      });
    });

    /** A verification link's token: the address becomes its account's. */
    function completeVerification(token) {
      return guarded(async () => {
        try {
          await client.verifyEmail(token);
        } catch (err) {
          showMailResult('verify_failed', err.code === 'invalid_token_in_mail'
            ? 'This verification link is used, expired or replaced by a newer one.'
            : 'The address could not be verified.');
          throw err;
        }
        showMailResult('verified', 'Email address verified.');
        emailChanged();
      });
    }

    /** The token in #mail-token, taken out of the field (null when empty). */
    function pastedToken() {
      const token = $('mail-token').value.trim();
      $('mail-token').value = '';
      if (token) $('mail-token-box').open = false;
      return token || null;
    }

    $('mail-token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = pastedToken();
      if (token) completeVerification(token);
    });

    $('mail-token-reset-btn').addEventListener('click', () => {
      const token = pastedToken();
      if (token) askNewPassword(token);
    });

    return {
      render: showEmail,
      completeLinks(tokens) {
        if (tokens.verify) completeVerification(tokens.verify);
        if (tokens.reset) askNewPassword(tokens.reset);
      },
    };
  }

  global.DemoEmail = { takeMailTokens, wireEmail };
})(window);
