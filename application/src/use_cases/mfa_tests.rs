//! Two-factor login on fakes: enrolment, the second step, its limits.

use std::time::Duration;

use domain::AuthMethods;
use domain::totp::step_of;
use secrecy::{ExposeSecret as _, SecretString};

use super::fakes::{Totp, World, secret};
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ports::SecurityEventKind;
use crate::{ClientInfo, SecondFactor};

/// The code of the current step, and of the one after it.
fn code_now(w: &World) -> SecretString {
    secret(&Totp::code(step_of(w.access.now())))
}

/// Alice with two-factor login on; returns her recovery codes.
async fn alice_with_totp() -> (World, Vec<SecretString>) {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    w.two_factor
        .begin_totp(&caller, secret("correct horse"), &client())
        .await
        .expect("begin");
    let codes = w
        .two_factor
        .confirm_totp(&caller, code_now(&w), &client())
        .await
        .expect("confirm");
    (w, codes)
}

fn claims(w: &World, s: &LoginOutcome) -> domain::AccessClaims {
    w.tokens.claims_of(&s.access.token).expect("issued here")
}

/// The `mfaToken` of a login with the right password.
async fn password_step(w: &World, from: &ClientInfo) -> String {
    match w.logins.login("alice", secret("correct horse"), from).await {
        Ok(LoginStep::SecondFactor { mfa_token }) => mfa_token.expose().to_owned(),
        other => panic!("expected mfa_required, got {other:?}"),
    }
}

/// A login with the password and, a step after the confirming one, a code.
async fn two_factor_login(w: &World) -> LoginOutcome {
    let token = password_step(w, &client()).await;
    w.clock.advance(Duration::from_secs(30));
    second(w, &token, SecondFactor::Code(code_now(w)))
        .await
        .expect("a two-factor login")
}

async fn second(
    w: &World,
    token: &str,
    proof: SecondFactor,
) -> Result<LoginOutcome, MfaLoginError> {
    w.logins.login_second_factor(token, proof, &client()).await
}

#[tokio::test]
async fn enrolment_is_confirmed_by_a_code_and_login_then_takes_two_steps() {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    assert!(matches!(
        w.two_factor
            .confirm_totp(&caller, code_now(&w), &client())
            .await,
        Err(MfaError::NotFound)
    ));
    let enrolment = w
        .two_factor
        .begin_totp(&caller, secret("correct horse"), &client())
        .await
        .unwrap();
    assert_eq!(enrolment.expires_in, Duration::from_secs(600));
    assert!(
        enrolment
            .otpauth_uri
            .expose_secret()
            .starts_with("otpauth://totp/")
    );
    assert!(matches!(
        w.two_factor
            .confirm_totp(&caller, secret("000000x"), &client())
            .await,
        Err(MfaError::InvalidCode)
    ));
    let wrong = Totp::code(step_of(w.access.now()) + 5);
    assert!(matches!(
        w.two_factor
            .confirm_totp(&caller, secret(&wrong), &client())
            .await,
        Err(MfaError::InvalidCode)
    ));
    // Not on until confirmed: the password alone still logs in.
    login(&w).await;
    let codes = w
        .two_factor
        .confirm_totp(&caller, code_now(&w), &client())
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> =
        codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    assert_eq!(distinct.len(), 10);
    assert!(matches!(
        w.two_factor
            .begin_totp(&caller, secret("correct horse"), &client())
            .await,
        Err(MfaError::AlreadyEnabled)
    ));

    let token = password_step(&w, &client()).await;
    assert_eq!(token.len(), 43);
    // The confirming code's step is used: it cannot log in.
    assert!(matches!(
        second(&w, &token, SecondFactor::Code(code_now(&w))).await,
        Err(MfaLoginError::InvalidCode)
    ));
    w.clock.advance(Duration::from_secs(30));
    let outcome = second(&w, &token, SecondFactor::Code(code_now(&w)))
        .await
        .expect("the next step's code");
    assert_eq!(outcome.session.methods, AuthMethods::PasswordAndOtp);
    assert_eq!(claims(&w, &outcome).amr, AuthMethods::PasswordAndOtp);
    // One session per token, and a code once per step.
    assert!(matches!(
        second(&w, &token, SecondFactor::Code(code_now(&w))).await,
        Err(MfaLoginError::TokenInvalid)
    ));
    let again = password_step(&w, &client()).await;
    assert!(matches!(
        second(&w, &again, SecondFactor::Code(code_now(&w))).await,
        Err(MfaLoginError::InvalidCode)
    ));
    let kinds = w.events.kinds();
    assert!(kinds.contains(&SecurityEventKind::MfaEnabled));
    assert!(kinds.contains(&SecurityEventKind::MfaChallenged));
    assert!(kinds.contains(&SecurityEventKind::MfaFailed));
}

#[tokio::test]
async fn five_wrong_codes_use_the_token_up_and_the_next_login_is_throttled() {
    let (w, _) = alice_with_totp().await;
    w.clock.advance(Duration::from_secs(60));
    let token = password_step(&w, &client()).await;
    let wrong = secret(&Totp::code(step_of(w.access.now()) + 10));
    for _ in 0..5 {
        assert!(matches!(
            second(&w, &token, SecondFactor::Code(wrong.clone())).await,
            Err(MfaLoginError::InvalidCode)
        ));
    }
    // Used up: even the right code is refused now.
    assert!(matches!(
        second(&w, &token, SecondFactor::Code(code_now(&w))).await,
        Err(MfaLoginError::TokenInvalid)
    ));
    // The five counted towards the login throttle (LOGIN_MAX_FAILURES = 5).
    assert!(matches!(
        w.logins
            .login("alice", secret("correct horse"), &client())
            .await,
        Err(LoginError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn a_right_password_between_codes_does_not_reset_the_throttle() {
    let (w, _) = alice_with_totp().await;
    w.clock.advance(Duration::from_secs(60));
    let wrong = || secret(&Totp::code(step_of(w.access.now()) + 10));
    let first = password_step(&w, &client()).await;
    for _ in 0..4 {
        assert!(matches!(
            second(&w, &first, SecondFactor::Code(wrong())).await,
            Err(MfaLoginError::InvalidCode)
        ));
    }
    // A fresh token after the right password again: the four still count.
    let next = password_step(&w, &client()).await;
    assert!(matches!(
        second(&w, &next, SecondFactor::Code(wrong())).await,
        Err(MfaLoginError::InvalidCode)
    ));
    assert!(matches!(
        second(&w, &next, SecondFactor::Code(code_now(&w))).await,
        Err(MfaLoginError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let (w, codes) = alice_with_totp().await;
    let token = password_step(&w, &client()).await;
    let typed = secret(&codes[3].expose_secret().to_uppercase().replace('-', " "));
    let outcome = second(&w, &token, SecondFactor::RecoveryCode(typed))
        .await
        .expect("recovery code");
    assert_eq!(outcome.session.methods, AuthMethods::PasswordAndOtp);
    assert_eq!(
        w.events.kinds().last(),
        Some(&SecurityEventKind::LoginSucceeded)
    );
    assert!(
        w.events
            .kinds()
            .contains(&SecurityEventKind::RecoveryCodeUsed)
    );
    let token = password_step(&w, &client()).await;
    assert!(matches!(
        second(&w, &token, SecondFactor::RecoveryCode(codes[3].clone())).await,
        Err(MfaLoginError::InvalidCode)
    ));
    second(&w, &token, SecondFactor::RecoveryCode(codes[4].clone()))
        .await
        .expect("another code");
}

#[tokio::test]
async fn the_token_is_bound_to_its_client_and_lasts_five_minutes() {
    let (w, codes) = alice_with_totp().await;
    let token = password_step(&w, &client()).await;
    let elsewhere = ClientInfo {
        ip: Some("198.51.100.1".into()),
        ..client()
    };
    assert!(matches!(
        w.logins
            .login_second_factor(
                &token,
                SecondFactor::RecoveryCode(codes[0].clone()),
                &elsewhere
            )
            .await,
        Err(MfaLoginError::TokenInvalid)
    ));
    for junk in ["", "short", &"A".repeat(44), &token[..42]] {
        assert!(matches!(
            second(&w, junk, SecondFactor::RecoveryCode(codes[0].clone())).await,
            Err(MfaLoginError::TokenInvalid)
        ));
    }
    w.clock.advance(Duration::from_secs(300));
    assert!(matches!(
        second(&w, &token, SecondFactor::RecoveryCode(codes[0].clone())).await,
        Err(MfaLoginError::TokenInvalid)
    ));
    // None of those spent the recovery code.
    let token = password_step(&w, &client()).await;
    second(&w, &token, SecondFactor::RecoveryCode(codes[0].clone()))
        .await
        .expect("unspent");
}

#[tokio::test]
async fn a_pending_enrolment_expires_after_ten_minutes() {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    w.two_factor
        .begin_totp(&caller, secret("correct horse"), &client())
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(600));
    assert!(matches!(
        w.two_factor
            .confirm_totp(&caller, code_now(&w), &client())
            .await,
        Err(MfaError::NotFound)
    ));
    // Beginning again replaces it.
    w.two_factor
        .begin_totp(&caller, secret("correct horse"), &client())
        .await
        .unwrap();
    w.two_factor
        .confirm_totp(&caller, code_now(&w), &client())
        .await
        .expect("a fresh enrolment");
}

#[tokio::test]
async fn turning_it_off_needs_the_password_and_a_code_and_keeps_sessions() {
    let (w, codes) = alice_with_totp().await;
    let session = two_factor_login(&w).await;
    let caller = claims(&w, &session);
    let off = |password: &str, proof: SecondFactor| {
        let (w, caller) = (&w, caller.clone());
        let password = secret(password);
        async move {
            w.two_factor
                .disable_totp(&caller, password, proof, &client())
                .await
        }
    };
    assert!(matches!(
        off("wrong horse", SecondFactor::Code(code_now(&w))).await,
        Err(MfaError::InvalidCredentials)
    ));
    // The code that logged in is used: a replay is refused.
    assert!(matches!(
        off("correct horse", SecondFactor::Code(code_now(&w))).await,
        Err(MfaError::InvalidCode)
    ));
    assert!(matches!(
        off(
            "correct horse",
            SecondFactor::RecoveryCode(secret("00000-00000-00000-00000"))
        )
        .await,
        Err(MfaError::InvalidCode)
    ));
    off(
        "correct horse",
        SecondFactor::RecoveryCode(codes[0].clone()),
    )
    .await
    .unwrap();
    assert!(matches!(
        off("correct horse", SecondFactor::Code(code_now(&w))).await,
        Err(MfaError::NotFound)
    ));
    assert!(w.mfa.recovery.lock().unwrap().is_empty());
    let plain = login(&w).await;
    assert_eq!(plain.session.methods, AuthMethods::Password);
    assert!(w.access.verify(&session.access.token).is_ok());
}

#[tokio::test]
async fn the_password_does_not_buy_code_guesses_when_turning_it_off() {
    let (w, _) = alice_with_totp().await;
    let session = two_factor_login(&w).await;
    let caller = claims(&w, &session);
    // LOGIN_MAX_FAILURES = 5: five wrong codes, each after the right
    // password, then even the right password and code are throttled.
    for _ in 0..5 {
        assert!(matches!(
            w.two_factor
                .disable_totp(
                    &caller,
                    secret("correct horse"),
                    SecondFactor::Code(secret("000000")),
                    &client()
                )
                .await,
            Err(MfaError::InvalidCode)
        ));
    }
    w.clock.advance(Duration::from_secs(30));
    assert!(matches!(
        w.two_factor
            .disable_totp(
                &caller,
                secret("correct horse"),
                SecondFactor::Code(code_now(&w)),
                &client()
            )
            .await,
        Err(MfaError::RateLimited { .. })
    ));
    assert_eq!(
        w.events
            .kinds()
            .iter()
            .filter(|k| **k == SecurityEventKind::MfaFailed)
            .count(),
        5
    );
}

#[tokio::test]
async fn enrolment_needs_the_password() {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    assert!(matches!(
        w.two_factor
            .begin_totp(&caller, secret("wrong horse"), &client())
            .await,
        Err(MfaError::InvalidCredentials)
    ));
    let status = w.two_factor.two_factor_status(&caller).await.unwrap();
    assert!(!status.pending, "nothing was begun");
}

/// Security review 2, finding 5: a password change and turning two-factor
/// login off end the user's outstanding `mfaToken`s (a phishing relay that
/// got the password cannot finish the login).
#[tokio::test]
async fn a_password_change_or_turning_it_off_ends_pending_mfa_tokens() {
    let (w, codes) = alice_with_totp().await;
    let session = two_factor_login(&w).await;
    let caller = claims(&w, &session);

    let relayed = password_step(&w, &client()).await;
    w.account
        .change_password(
            &caller,
            secret("correct horse"),
            secret("another horse"),
            None,
            &client(),
        )
        .await
        .unwrap();
    assert!(matches!(
        second(&w, &relayed, SecondFactor::RecoveryCode(codes[0].clone())).await,
        Err(MfaLoginError::TokenInvalid)
    ));

    let relayed = w
        .logins
        .login("alice", secret("another horse"), &client())
        .await
        .unwrap();
    let LoginStep::SecondFactor { mfa_token } = relayed else {
        panic!("two-factor login is on")
    };
    w.two_factor
        .disable_totp(
            &caller,
            secret("another horse"),
            SecondFactor::RecoveryCode(codes[1].clone()),
            &client(),
        )
        .await
        .unwrap();
    assert!(matches!(
        second(
            &w,
            mfa_token.expose(),
            SecondFactor::RecoveryCode(codes[2].clone())
        )
        .await,
        Err(MfaLoginError::TokenInvalid)
    ));
}

/// Security review 2, finding 4: five wrong confirming codes void the
/// pending enrolment, and they count towards the login throttle.
#[tokio::test]
async fn five_wrong_confirming_codes_void_the_enrolment() {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    w.two_factor
        .begin_totp(&caller, secret("correct horse"), &client())
        .await
        .unwrap();
    let wrong = Totp::code(step_of(w.access.now()) + 5);
    for _ in 0..5 {
        assert!(matches!(
            w.two_factor
                .confirm_totp(&caller, secret(&wrong), &client())
                .await,
            Err(MfaError::InvalidCode)
        ));
    }
    // Void: even the right code finds nothing now.
    assert!(matches!(
        w.two_factor
            .confirm_totp(&caller, code_now(&w), &client())
            .await,
        Err(MfaError::NotFound)
    ));
    assert!(
        !w.two_factor
            .two_factor_status(&caller)
            .await
            .unwrap()
            .pending
    );
    // The five counted: the password is throttled for this user and address.
    assert!(matches!(
        w.logins
            .login("alice", secret("correct horse"), &client())
            .await,
        Err(LoginError::RateLimited { .. })
    ));
}

/// Security review 2, finding 2 (contract v3): while two-factor login is
/// on, a session that began with the password alone (before enrolment)
/// needs a code to change the password or delete the account; a session
/// that began with two factors does not. Wrong codes count.
#[tokio::test]
async fn account_changes_from_a_password_only_session_need_a_code() {
    let w = world_with_alice().await;
    let before = claims(&w, &login(&w).await);
    w.two_factor
        .begin_totp(&before, secret("correct horse"), &client())
        .await
        .unwrap();
    let codes = w
        .two_factor
        .confirm_totp(&before, code_now(&w), &client())
        .await
        .unwrap();
    let change = |proof: Option<SecondFactor>| {
        let (w, before) = (&w, before.clone());
        async move {
            w.account
                .change_password(
                    &before,
                    secret("correct horse"),
                    secret("another horse"),
                    proof,
                    &client(),
                )
                .await
        }
    };
    assert!(matches!(change(None).await, Err(AccountError::InvalidCode)));
    assert!(matches!(
        change(Some(SecondFactor::RecoveryCode(secret(
            "00000-00000-00000-00000"
        ))))
        .await,
        Err(AccountError::InvalidCode)
    ));
    assert!(w.events.kinds().contains(&SecurityEventKind::MfaFailed));
    change(Some(SecondFactor::RecoveryCode(codes[0].clone())))
        .await
        .unwrap();
    // The deletion asks the same of that session.
    assert!(matches!(
        w.account
            .delete(&before, secret("another horse"), None, &client())
            .await,
        Err(AccountError::InvalidCode)
    ));
    w.account
        .delete(
            &before,
            secret("another horse"),
            Some(SecondFactor::RecoveryCode(codes[1].clone())),
            &client(),
        )
        .await
        .unwrap();
}

/// Security review 2, finding 1 (contract v3): with the password and many
/// addresses, wrong second factors are capped per account: 10 in the window
/// from every address together, then `429` everywhere, even for the right
/// code, audited `second_factor_locked`, until the window has passed. Each
/// address here stays under its own cap (one wrong code each).
#[tokio::test]
async fn ten_wrong_second_factors_from_any_addresses_lock_the_account_everywhere() {
    let (w, recovery) = alice_with_totp().await;
    w.clock.advance(Duration::from_secs(60));
    let wrong = || secret(&Totp::code(step_of(w.access.now()) + 10));
    let from = |i: u32| ClientInfo {
        ip: Some(format!("2001:db8:{i:x}::1")),
        user_agent: None,
        key: None,
    };
    let w = &w;
    let step = |token: String, proof: SecondFactor, i: u32| async move {
        w.logins.login_second_factor(&token, proof, &from(i)).await
    };
    for i in 0..10 {
        let token = password_step(w, &from(i)).await;
        assert!(
            matches!(
                step(token, SecondFactor::Code(wrong()), i).await,
                Err(MfaLoginError::InvalidCode)
            ),
            "wrong code {i}"
        );
    }
    assert!(
        !w.events
            .kinds()
            .contains(&SecurityEventKind::SecondFactorLocked)
    );
    let token = password_step(w, &from(10)).await;
    assert!(matches!(
        step(token.clone(), SecondFactor::Code(code_now(w)), 10).await,
        Err(MfaLoginError::RateLimited { .. })
    ));
    assert_eq!(w.events.last().kind, SecurityEventKind::SecondFactorLocked);
    let recovery_code = SecondFactor::RecoveryCode(recovery[0].clone());
    assert!(matches!(
        step(token, recovery_code, 10).await,
        Err(MfaLoginError::RateLimited { .. })
    ));
    // The window passes (LOGIN_FAILURE_WINDOW, 15 minutes): the right code works.
    w.clock.advance(Duration::from_secs(15 * 60));
    let token = password_step(w, &from(11)).await;
    step(token, SecondFactor::Code(code_now(w)), 11)
        .await
        .expect("the window has passed");
}
