//! The outbox against a real SMTP server that fails: down when the reset is
//! asked (the answer does not wait; the mail goes once it is up, after
//! 5 s then 10 s of backoff on the app's clock), answering `451` (tried
//! again) and `550` (given up, audited `mail_failed`, never tried again);
//! and two processes on one database, each queueing mail, delivering every
//! mail exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use application::ports::{Clock as _, SecurityEventKind};
use integration_tests::app::{Backend, spawn_sibling};
use integration_tests::client::PASSWORD;

use super::{
    MailApp, OutboxRow, QUIET, WAIT, audit, forgot, link_token, mail_app, outbox, outbox_until,
    register, reset,
};

integration_tests::on_both!(
    needs "python-aiosmtpd" => "needs Python aiosmtpd (pip install aiosmtpd)";
    std::future::ready;
    a_reset_asked_while_the_smtp_server_is_down_goes_once_it_is_up,
    a_4xx_is_tried_again_and_a_5xx_given_up,
    two_processes_on_one_database_send_every_mail_once
);

/// Seconds from the app's now to the row's next attempt.
fn due_in(app: &MailApp, row: &OutboxRow) -> f64 {
    (row.next_attempt_at - app.clock.now().unix_millis()) as f64 / 1000.0
}

pub async fn a_reset_asked_while_the_smtp_server_is_down_goes_once_it_is_up(backend: Backend) {
    let mut app = mail_app(backend).await;
    app.verified_user("alice", "alice@example.org").await;
    tokio::task::block_in_place(|| app.sink.stop());

    let started = Instant::now();
    let r = forgot(&app, "alice@example.org").await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the answer waited {:?}",
        started.elapsed()
    );
    // The first attempt failed: tried again 5 s later.
    let rows = outbox_until(&app, "a first failed attempt", |rows| {
        rows.len() == 1 && rows[0].attempts == 1 && rows[0].last_error.is_some()
    })
    .await;
    let due = due_in(&app, &rows[0]);
    assert!((3.5..=5.0).contains(&due), "due in {due} s: {rows:?}");
    assert!(!rows[0].given_up);
    // Not before then.
    tokio::time::sleep(QUIET).await;
    assert_eq!(outbox(&app).await[0].attempts, 1);
    app.clock.advance(Duration::from_secs(5));
    let rows = outbox_until(&app, "a second failed attempt", |rows| {
        rows.len() == 1 && rows[0].attempts == 2
    })
    .await;
    let due = due_in(&app, &rows[0]);
    assert!((8.5..=10.0).contains(&due), "due in {due} s: {rows:?}");

    tokio::task::block_in_place(|| app.sink.restart()).expect("the sink starts again");
    app.clock.advance(Duration::from_secs(10));
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["alice@example.org"]);
    let token = link_token(&mail, "reset");
    outbox_until(&app, "the sent mail gone", <[OutboxRow]>::is_empty).await;
    assert_eq!(reset(&app, &token, super::NEW_PASSWORD).await.status, 204);
    assert!(
        !audit(&app)
            .await
            .iter()
            .any(|e| e.kind == SecurityEventKind::MailFailed)
    );
    app.no_more_mail("sent once").await;
}

pub async fn a_4xx_is_tried_again_and_a_5xx_given_up(backend: Backend) {
    let app = mail_app(backend).await;
    app.verified_user("alice", "alice@example.org").await;

    app.sink.answer_with(Some(451));
    assert_eq!(forgot(&app, "alice@example.org").await.status, 202);
    let rows = outbox_until(&app, "a deferred mail", |rows| {
        rows.len() == 1 && rows[0].attempts == 1 && rows[0].last_error.is_some()
    })
    .await;
    assert!(!rows[0].given_up, "{rows:?}");
    assert!(
        rows[0].last_error.as_deref().unwrap().contains("451"),
        "{rows:?}"
    );
    app.sink.answer_with(None);
    app.clock.advance(Duration::from_secs(5));
    let mail = app.next_mail().await;
    link_token(&mail, "reset");
    outbox_until(&app, "the sent mail gone", <[OutboxRow]>::is_empty).await;

    app.sink.answer_with(Some(550));
    let r = register(&app, "bob", Some("bob@example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rows = outbox_until(&app, "a mail given up", |rows| {
        rows.len() == 1 && rows[0].given_up
    })
    .await;
    assert_eq!(rows[0].attempts, 1, "{rows:?}");
    assert_eq!(rows[0].sealed_len, 0, "nothing of it is kept: {rows:?}");
    let failed: Vec<_> = audit(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == SecurityEventKind::MailFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("550")),
        "{failed:?}"
    );
    assert_eq!(failed[0].client.user_agent.as_deref(), Some("outbox"));

    // Never again, even past every backoff with the server accepting.
    app.sink.answer_with(None);
    app.clock.advance(Duration::from_secs(15 * 60));
    app.no_more_mail("a mail given up").await;
    let rows = outbox(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].attempts, 1, "{rows:?}");
    // Bob's account stands; a new address is the way to a new mail.
    let bob = app.login("bob", PASSWORD).await.access_token();
    let r = super::put_email(
        &app,
        &bob,
        &serde_json::json!({"email": "bob@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(app.next_mail().await.rcpt_tos, ["bob@example.org"]);
}

pub async fn two_processes_on_one_database_send_every_mail_once(backend: Backend) {
    let mut app = mail_app(backend).await;
    let sibling = spawn_sibling(&app).await;
    let per_process = 10;
    let address = |process: usize, i: usize| format!("user-{process}-{i}@example.org");

    // Straight away: each process delivers what it queued at once, and
    // polls for the other's.
    let registrations = (0..per_process).flat_map(|i| {
        [(&app.api, 0), (&sibling.api, 1)].map(|(api, p)| async move {
            register(api, &format!("u{p}x{i}"), Some(&address(p, i))).await
        })
    });
    for r in futures_util::future::join_all(registrations).await {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    app.sink.wait_for(2 * per_process, WAIT).await.unwrap();
    // And a backlog both find due at once: queued while the server is
    // down, then due again on both clocks together.
    tokio::task::block_in_place(|| app.sink.stop());
    let registrations = (0..per_process).flat_map(|i| {
        [(&app.api, 2), (&sibling.api, 3)].map(|(api, p)| async move {
            register(api, &format!("u{p}x{i}"), Some(&address(p, i))).await
        })
    });
    for r in futures_util::future::join_all(registrations).await {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    outbox_until(&app, "every queued mail tried once", |rows| {
        rows.len() == 2 * per_process && rows.iter().all(|r| r.attempts >= 1)
    })
    .await;
    tokio::task::block_in_place(|| app.sink.restart()).expect("the sink starts again");
    for clock in [&app.clock, &sibling.clock] {
        clock.advance(Duration::from_secs(60));
    }

    let expected = 4 * per_process;
    app.sink.wait_for(expected, 2 * WAIT).await.unwrap();
    tokio::time::sleep(QUIET).await;
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in app.sink.received() {
        link_token(&mail, "verify");
        let id = mail.header("Message-ID").expect("a Message-ID").to_owned();
        by_id.entry(id).or_default().push(mail.rcpt_tos.join(","));
    }
    let twice: Vec<_> = by_id.iter().filter(|(_, to)| to.len() > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(by_id.len(), expected, "{by_id:?}");
    let recipients: BTreeSet<String> = by_id.into_values().flatten().collect();
    let wanted: BTreeSet<String> = (0..4)
        .flat_map(|p| (0..per_process).map(move |i| address(p, i)))
        .collect();
    assert_eq!(recipients, wanted);
    outbox_until(&app, "every sent mail gone", <[OutboxRow]>::is_empty).await;
}
