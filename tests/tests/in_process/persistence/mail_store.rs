//! The mail store on both databases: a token stored with its mail, used
//! once, superseded by a newer one; the hourly reset cap under concurrency;
//! one account per verified address; the outbox claimed by one sender at a
//! time (two pools, as two processes), leased, retried, given up, pruned;
//! and a user's addresses and tokens gone with the user.

use super::*;
use adapters::persistence::SeaMailStore;
use application::ports::{MailStore, NewMailToken, QueuedMail, SetAddressError};
use domain::email::{EmailAddress, MailPurpose};

integration_tests::on_both!(
    crate::persistence::database;
    a_token_is_stored_with_its_mail_and_used_once,
    a_newer_token_supersedes_the_older_ones,
    a_verified_address_belongs_to_one_account,
    the_pending_address_is_that_of_the_newest_live_verify_token,
    a_claimed_mail_is_leased_and_a_lapsed_lease_is_claimed_again,
    retried_given_up_and_delivered_mails,
    pruning_deletes_expired_tokens_and_given_up_mails,
    a_users_addresses_and_tokens_go_with_the_user,
    five_verification_mails_an_hour,
);

integration_tests::on_both!(
    crate::persistence::mail_store::two_pools;
    ten_reset_requests_at_once_queue_three,
    two_verifications_of_one_address_at_once_one_wins,
    two_senders_claim_disjoint_mails_covering_all,
);

/// Two pools on one fresh, migrated database, each with its own write
/// gate: two processes.
pub(crate) async fn two_pools(backend: Backend) -> [Database; 2] {
    let url = match backend {
        Backend::Sqlite => fresh_sqlite_url(),
        Backend::Postgres => fresh_migrated_postgres_url().await,
    };
    let a = Database::connect(&url).await.expect("first pool");
    a.migrate().await.expect("migrate");
    let b = Database::connect(&url).await.expect("second pool");
    [a, b]
}

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).expect("an address")
}

fn token(n: u64, user: UserId, purpose: MailPurpose, to: &str, at: i64) -> NewMailToken {
    NewMailToken {
        hash: hash(n),
        user,
        purpose,
        address: address(to),
        password_stamp: (purpose == MailPurpose::Reset).then(|| "stamp-1".to_owned()),
        issued_at: t(at),
        expires_at: t(at + 1800),
    }
}

fn mail(at: i64) -> QueuedMail {
    QueuedMail {
        id: Uuid::new_v4().to_string(),
        sealed: b"sealed bytes".to_vec(),
        queued_at: t(at),
    }
}

/// Issues `token` with a new mail; it must be queued.
async fn issued(store: &SeaMailStore, token: &NewMailToken) -> QueuedMail {
    let mail = mail(token.issued_at.unix_seconds() - t(0).unix_seconds());
    assert_eq!(
        store.issue(token, &mail).await.expect("issue"),
        application::ports::Issued::Queued
    );
    mail
}

/// `sealed`, `last_error` and `given_up_at` of an outbox row.
async fn outbox_row(db: &Database, id: &str) -> Option<(Vec<u8>, Option<String>, Option<i64>)> {
    let query = Query::select()
        .columns([
            Alias::new("sealed"),
            Alias::new("last_error"),
            Alias::new("given_up_at"),
        ])
        .from(Alias::new("mail_outbox"))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    let stmt = db.connection().get_database_backend().build(&query);
    let row = db.connection().query_one_raw(stmt).await.expect("select")?;
    Some((
        row.try_get("", "sealed").expect("sealed"),
        row.try_get("", "last_error").expect("last_error"),
        row.try_get("", "given_up_at").expect("given_up_at"),
    ))
}

async fn a_token_is_stored_with_its_mail_and_used_once(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let kim = stored_user(&db, "kim").await.id;
    let reset = token(1, kim, MailPurpose::Reset, "Kim@Example.com", 0);
    let queued = issued(&store, &reset).await;
    let found = store.find_token(&reset.hash).await.unwrap().expect("found");
    assert_eq!(
        (
            found.user,
            found.purpose,
            found.address.as_str(),
            found.password_stamp.as_deref(),
            found.expires_at,
            found.used,
            found.superseded,
        ),
        (
            kim,
            MailPurpose::Reset,
            "Kim@Example.com",
            Some("stamp-1"),
            t(1800),
            false,
            false
        )
    );
    // The mail is in the outbox, due at once.
    let claimed = store.claim_due(t(0), t(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (
            &claimed[0].id,
            &claimed[0].sealed,
            claimed[0].queued_at,
            claimed[0].attempts
        ),
        (&queued.id, &queued.sealed, t(0), 1)
    );

    assert!(store.use_token(&reset.hash, t(5)).await.unwrap());
    assert!(!store.use_token(&reset.hash, t(6)).await.unwrap(), "once");
    assert!(store.find_token(&reset.hash).await.unwrap().unwrap().used);
    assert_eq!(store.find_token(&hash(2)).await.unwrap(), None);
    assert!(!store.use_token(&hash(2), t(6)).await.unwrap(), "unknown");
}

async fn a_newer_token_supersedes_the_older_ones(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let lee = stored_user(&db, "lee").await.id;
    let other = stored_user(&db, "max").await.id;
    let first = token(1, lee, MailPurpose::Verify, "a@x.io", 0);
    let second = token(2, lee, MailPurpose::Verify, "b@x.io", 10);
    issued(&store, &first).await;
    issued(&store, &second).await;
    // Neither another purpose nor another user's token supersedes.
    issued(&store, &token(3, lee, MailPurpose::Reset, "b@x.io", 20)).await;
    issued(&store, &token(4, other, MailPurpose::Verify, "c@x.io", 30)).await;
    let superseded = |h| {
        let store = store.clone();
        async move { store.find_token(&h).await.unwrap().unwrap().superseded }
    };
    assert!(superseded(first.hash).await);
    assert!(!superseded(second.hash).await);
    // Two in the same millisecond: exactly one is the newest.
    let (x, y) = (
        token(5, lee, MailPurpose::Verify, "d@x.io", 40),
        token(6, lee, MailPurpose::Verify, "e@x.io", 40),
    );
    issued(&store, &x).await;
    issued(&store, &y).await;
    assert!(superseded(second.hash).await);
    assert_ne!(superseded(x.hash).await, superseded(y.hash).await);
}

async fn ten_reset_requests_at_once_queue_three([a, b]: [Database; 2]) {
    let user = stored_user(&a, "ned").await.id;
    let stores = [SeaMailStore::new(a.clone()), SeaMailStore::new(b)];
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let n = u64::try_from(i).unwrap();
                let reset = token(n, user, MailPurpose::Reset, "ned@x.io", 0);
                store.issue(&reset, &mail(0)).await.unwrap()
            })
        })
        .collect();
    let mut queued = 0;
    for racer in racers {
        if racer.await.unwrap() == application::ports::Issued::Queued {
            queued += 1;
        }
    }
    assert_eq!(queued, 3);
    assert_eq!(count_rows(&a, "mail_tokens").await, 3);
    assert_eq!(
        count_rows(&a, "mail_outbox").await,
        3,
        "no mail without its token"
    );

    let store = &stores[0];
    let capped = token(20, user, MailPurpose::Reset, "ned@x.io", 3599);
    assert_eq!(
        store.issue(&capped, &mail(3599)).await.unwrap(),
        application::ports::Issued::CapReached
    );
    // Pruning after the tokens expired (30 min) keeps them until the hour
    // is over: the cap still counts them.
    store.prune(t(3599)).await.unwrap();
    assert_eq!(
        store.issue(&capped, &mail(3599)).await.unwrap(),
        application::ports::Issued::CapReached
    );
    // A verification mail is not capped.
    issued(
        store,
        &token(21, user, MailPurpose::Verify, "ned@x.io", 3599),
    )
    .await;
    // An hour later: again.
    issued(
        store,
        &token(22, user, MailPurpose::Reset, "ned@x.io", 3600),
    )
    .await;
}

async fn a_verified_address_belongs_to_one_account(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let kim = stored_user(&db, "kim").await.id;
    let lee = stored_user(&db, "lee").await.id;
    assert_eq!(store.verified_address(kim).await.unwrap(), None);
    assert_eq!(
        store.owner_of(&address("kim@example.com")).await.unwrap(),
        None
    );
    store
        .set_verified(kim, &address("Kim@Example.com"), t(1))
        .await
        .unwrap();
    assert_eq!(
        store.verified_address(kim).await.unwrap().as_deref(),
        Some("Kim@Example.com"),
        "as given"
    );
    assert_eq!(
        store.owner_of(&address("KIM@example.COM")).await.unwrap(),
        Some(kim)
    );
    assert!(matches!(
        store
            .set_verified(lee, &address("kim@EXAMPLE.com"), t(2))
            .await,
        Err(SetAddressError::Taken)
    ));
    assert_eq!(store.verified_address(lee).await.unwrap(), None);
    // Again, by its owner: fine, as given the second time.
    store
        .set_verified(kim, &address("kim@example.com"), t(3))
        .await
        .unwrap();
    assert_eq!(
        store.verified_address(kim).await.unwrap().as_deref(),
        Some("kim@example.com")
    );
    // A new address replaces the old one, which is free again.
    store
        .set_verified(kim, &address("kim@new.example"), t(4))
        .await
        .unwrap();
    assert_eq!(
        store.owner_of(&address("kim@example.com")).await.unwrap(),
        None
    );
    store
        .set_verified(lee, &address("Kim@Example.com"), t(5))
        .await
        .unwrap();
    assert_eq!(
        store.owner_of(&address("kim@example.com")).await.unwrap(),
        Some(lee)
    );
    assert_eq!(count_rows(&db, "email_addresses").await, 2);
}

async fn two_verifications_of_one_address_at_once_one_wins([a, b]: [Database; 2]) {
    for round in 0..5 {
        let users = [
            stored_user(&a, &format!("ann{round}")).await.id,
            stored_user(&a, &format!("bob{round}")).await.id,
        ];
        let racers: Vec<_> = [&a, &b]
            .into_iter()
            .zip(users)
            .enumerate()
            .map(|(i, (db, user))| {
                let store = SeaMailStore::new(db.clone());
                // The same address, told apart by case only.
                let text = if i == 0 { "Shared@X.io" } else { "shared@x.IO" };
                let text = format!("{round}{text}");
                tokio::spawn(async move { store.set_verified(user, &address(&text), t(1)).await })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(()) => won.push(true),
                Err(SetAddressError::Taken) => won.push(false),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}");
        let store = SeaMailStore::new(a.clone());
        let owner = store
            .owner_of(&address(&format!("{round}shared@x.io")))
            .await
            .unwrap();
        assert_eq!(owner, Some(users[usize::from(won[1])]));
    }
}

async fn the_pending_address_is_that_of_the_newest_live_verify_token(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let ora = stored_user(&db, "ora").await.id;
    assert_eq!(store.pending_address(ora, t(0)).await.unwrap(), None);
    issued(&store, &token(1, ora, MailPurpose::Verify, "One@x.io", 0)).await;
    assert_eq!(
        store.pending_address(ora, t(1)).await.unwrap().as_deref(),
        Some("One@x.io")
    );
    let second = token(2, ora, MailPurpose::Verify, "two@x.io", 10);
    issued(&store, &second).await;
    // A reset mail is no pending address.
    issued(&store, &token(3, ora, MailPurpose::Reset, "one@x.io", 20)).await;
    assert_eq!(
        store.pending_address(ora, t(21)).await.unwrap().as_deref(),
        Some("two@x.io")
    );
    assert_eq!(
        store.pending_address(ora, t(1810)).await.unwrap(),
        None,
        "expired"
    );
    store.use_token(&second.hash, t(22)).await.unwrap();
    assert_eq!(
        store.pending_address(ora, t(23)).await.unwrap(),
        None,
        "used: the older one does not come back"
    );
}

async fn two_senders_claim_disjoint_mails_covering_all([a, b]: [Database; 2]) {
    // Ten users, five verification mails each (the hourly cap).
    let mut users = Vec::new();
    for n in 0..10 {
        users.push(stored_user(&a, &format!("pat{n}")).await.id);
    }
    let store = SeaMailStore::new(a.clone());
    let mut ids = HashSet::new();
    for n in 0..50 {
        let user = users[usize::try_from(n % 10).unwrap()];
        let mail = issued(&store, &token(n, user, MailPurpose::Verify, "p@x.io", 0)).await;
        ids.insert(mail.id);
    }
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let store = SeaMailStore::new(if i % 2 == 0 { a.clone() } else { b.clone() });
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_due(t(1), t(61), 3).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    assert!(claimed.len() <= 3, "the limit holds under concurrency");
                    for m in claimed {
                        assert_eq!(m.attempts, 1, "claimed once");
                        mine.push(m.id);
                    }
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for sender in senders {
        seen.extend(sender.await.unwrap());
    }
    assert_eq!(seen.len(), 50, "no mail claimed twice");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

async fn a_claimed_mail_is_leased_and_a_lapsed_lease_is_claimed_again(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let user = stored_user(&db, "quinn").await.id;
    let early = issued(&store, &token(1, user, MailPurpose::Verify, "q@x.io", 0)).await;
    let late = issued(&store, &token(2, user, MailPurpose::Verify, "q@x.io", 100)).await;
    let claimed = store.claim_due(t(10), t(70), 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&early.id],
        "the later one is not due yet"
    );
    assert!(store.claim_due(t(69), t(129), 10).await.unwrap().is_empty());
    // The sender died: its lease lapses, another takes the mail.
    let again = store.claim_due(t(70), t(130), 10).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|m| (&m.id, m.attempts))
            .collect::<Vec<_>>(),
        [(&early.id, 2)]
    );
    let both = store.claim_due(t(130), t(190), 10).await.unwrap();
    assert_eq!(
        both.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&early.id, &late.id],
        "oldest first"
    );
    assert_eq!(
        store.claim_due(t(200), t(260), 1).await.unwrap().len(),
        1,
        "the limit"
    );
}

async fn retried_given_up_and_delivered_mails(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let user = stored_user(&db, "rae").await.id;
    let retried = issued(&store, &token(1, user, MailPurpose::Verify, "r@x.io", 0)).await;
    let refused = issued(&store, &token(2, user, MailPurpose::Verify, "r@x.io", 0)).await;
    let sent = issued(&store, &token(3, user, MailPurpose::Verify, "r@x.io", 0)).await;
    assert_eq!(store.claim_due(t(0), t(60), 10).await.unwrap().len(), 3);

    let long_error = format!("421 try later {}", "x".repeat(600));
    store
        .retry_at(&retried.id, t(30), &long_error)
        .await
        .unwrap();
    store
        .give_up(&refused.id, t(1), "550 no such user")
        .await
        .unwrap();
    store.delivered(&sent.id).await.unwrap();

    assert_eq!(outbox_row(&db, &sent.id).await, None, "delivered: gone");
    let (sealed, error, given_up) = outbox_row(&db, &refused.id).await.expect("kept");
    assert_eq!(
        (sealed.len(), error.as_deref(), given_up),
        (0, Some("550 no such user"), Some(t(1).unix_millis())),
        "given up: its bodies erased"
    );
    let (sealed, error, _) = outbox_row(&db, &retried.id).await.expect("kept");
    assert_eq!(sealed, retried.sealed);
    let error = error.expect("the error");
    assert_eq!(error.chars().count(), 500);
    assert!(error.starts_with("421 try later"));

    // Due again at its time, unclaimed (its lease is cleared); never the
    // given-up one.
    assert!(store.claim_due(t(29), t(89), 10).await.unwrap().is_empty());
    let again = store.claim_due(t(30), t(90), 10).await.unwrap();
    assert_eq!(
        again
            .iter()
            .map(|m| (&m.id, m.attempts))
            .collect::<Vec<_>>(),
        [(&retried.id, 2)]
    );
    store
        .retry_at(&retried.id, t(31), "no connection")
        .await
        .unwrap();
    assert_eq!(store.claim_due(t(31), t(91), 10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .claim_due(t(10_000), t(10_060), 10)
            .await
            .unwrap()
            .len(),
        1,
        "a lapsed lease"
    );
}

async fn pruning_deletes_expired_tokens_and_given_up_mails(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let user = stored_user(&db, "sam").await.id;
    let old = token(1, user, MailPurpose::Verify, "s@x.io", 0);
    let young = token(2, user, MailPurpose::Verify, "s@x.io", 5000);
    let old_mail = issued(&store, &old).await;
    let young_mail = issued(&store, &young).await;
    let waiting = issued(&store, &token(3, user, MailPurpose::Verify, "s@x.io", 0)).await;
    store.give_up(&old_mail.id, t(1), "550").await.unwrap();
    store.give_up(&young_mail.id, t(5001), "550").await.unwrap();

    assert_eq!(store.prune(t(0)).await.unwrap(), 0);
    // At 2000 s the tokens of 0 s have expired (at 1800 s), but they count
    // against the hourly reset cap until 3600 s: only the given-up mail of
    // 0 s goes.
    assert_eq!(store.prune(t(2000)).await.unwrap(), 1);
    assert_eq!(outbox_row(&db, &old_mail.id).await, None);
    assert!(store.find_token(&old.hash).await.unwrap().is_some());
    // At 4000 s they go; the token of 5000 s, the mail given up later and
    // the one still waiting stay.
    assert_eq!(store.prune(t(4000)).await.unwrap(), 2);
    assert_eq!(store.find_token(&old.hash).await.unwrap(), None);
    assert!(store.find_token(&young.hash).await.unwrap().is_some());
    assert!(outbox_row(&db, &young_mail.id).await.is_some());
    assert!(outbox_row(&db, &waiting.id).await.is_some(), "not given up");
}

async fn a_users_addresses_and_tokens_go_with_the_user(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let tess = stored_user(&db, "tess").await.id;
    let keep = stored_user(&db, "uma").await.id;
    for user in [tess, keep] {
        issued(&store, &token(1, user, MailPurpose::Verify, "t@x.io", 0)).await;
        issued(&store, &token(2, user, MailPurpose::Reset, "t@x.io", 0)).await;
    }
    store
        .set_verified(tess, &address("tess@x.io"), t(1))
        .await
        .unwrap();
    store
        .set_verified(keep, &address("uma@x.io"), t(1))
        .await
        .unwrap();
    SeaUserRepository::new(db.clone())
        .delete(tess, t(2))
        .await
        .unwrap()
        .expect("tess existed");
    assert_eq!(count_rows(&db, "email_addresses").await, 1);
    assert_eq!(count_rows(&db, "mail_tokens").await, 2);
    assert_eq!(store.owner_of(&address("tess@x.io")).await.unwrap(), None);
    assert_eq!(
        store.verified_address(keep).await.unwrap().as_deref(),
        Some("uma@x.io")
    );
    // Mails already queued may still go (the outbox names no user).
    assert_eq!(count_rows(&db, "mail_outbox").await, 4);
}

async fn five_verification_mails_an_hour(db: Database) {
    let store = SeaMailStore::new(db.clone());
    let user = stored_user(&db, "vera").await.id;
    for n in 0..5 {
        issued(&store, &token(n, user, MailPurpose::Verify, "v@x.io", 0)).await;
    }
    let sixth = token(5, user, MailPurpose::Verify, "v@x.io", 10);
    assert_eq!(
        store.issue(&sixth, &mail(10)).await.unwrap(),
        application::ports::Issued::CapReached
    );
    assert!(
        store.find_token(&sixth.hash).await.unwrap().is_none(),
        "nothing stored"
    );
    // Resets are counted apart, and an hour later verifications go again.
    issued(&store, &token(6, user, MailPurpose::Reset, "v@x.io", 10)).await;
    issued(&store, &token(7, user, MailPurpose::Verify, "v@x.io", 3601)).await;
}
