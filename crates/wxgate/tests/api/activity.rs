//! The activity recorder (`wxgate::activity`) on real stores: the in-process map, a SQLite
//! file, Redis when `WXGATE_TEST_REDIS_URL` is set and PostgreSQL when
//! `WXGATE_TEST_POSTGRES_URL` is (each skipped with a message otherwise, failing when set but
//! unreachable). Everything recorded is read back after `flush`, from the
//! store, as the admin console reads it: steps (sticky, failures rate-limited), bounded lists,
//! the newest push per account in one read, per-hour calls summed over two instances sharing
//! the store, the instances seen, the egress IP, and `forget`.

use std::sync::Arc;
use std::time::Duration;

use wxgate::activity::{
    Activity, ActivityOptions, Answered, PushSeen, RefreshSeen, Step, StepOutcome, ENDPOINTS_MAX,
    LIST_LEN, OTHER,
};
use wxgate::domain::{unix_now_ms, CredentialKind};
use wxgate::store::{MemoryStore, RedisStore, SqliteStore, Store};

use crate::helpers::{redis_url, unique_prefix};
use crate::store::random_hex;

fn activity(store: &Arc<dyn Store>, instance: &str, keep_content: bool) -> Activity {
    Activity::new(
        Arc::clone(store),
        ActivityOptions {
            keep_message_content: keep_content,
            flush_every: Duration::from_secs(5),
            instance: instance.to_owned(),
            version: "test",
        },
    )
}

fn push(at: i64, content: &str) -> PushSeen {
    PushSeen {
        at,
        kind: "text".into(),
        answered_by: Answered::Rule,
        encrypted: false,
        content: Some(content.to_owned()),
    }
}

/// Everything the recorder promises, on one store.
async fn suite(store: Arc<dyn Store>) {
    let account = format!("acct-{}", random_hex());
    let a1 = activity(&store, &format!("i1-{}", random_hex()), false);
    let a2 = activity(&store, &format!("i2-{}", random_hex()), false);

    // Steps: one per kind in order, reached sticky, a failure shown beside it, failures
    // rate-limited (the second within a minute is not recorded).
    let before = a1.steps(&account).await.unwrap();
    assert_eq!(
        before.entries.iter().map(|e| e.step).collect::<Vec<_>>(),
        Step::ALL
    );
    assert!(before.entries.iter().all(|e| e.reached_at.is_none()));
    a1.step(
        &account,
        Step::JssdkSigned,
        StepOutcome::Reached {
            detail: Some("h5.example.com".into()),
        },
    );
    a1.step(
        &account,
        Step::TokenFetched,
        StepOutcome::Failed {
            errcode: Some(40164),
            message: "first".into(),
            hint: Some("add the IP".into()),
        },
    );
    a1.step(
        &account,
        Step::TokenFetched,
        StepOutcome::Failed {
            errcode: Some(40125),
            message: "second".into(),
            hint: None,
        },
    );
    a1.flush().await.unwrap();
    let steps = a1.steps(&account).await.unwrap();
    let js = &steps.entries[3];
    assert_eq!(js.step, Step::JssdkSigned);
    assert!(js.reached_at.is_some());
    assert_eq!(js.detail.as_deref(), Some("h5.example.com"));
    let token = &steps.entries[0];
    assert_eq!(token.reached_at, None);
    assert_eq!(token.errcode, Some(40164));
    assert_eq!(token.message.as_deref(), Some("first"));
    assert_eq!(token.hint.as_deref(), Some("add the IP"));
    // A success after the failure turns the step green; the failure is still shown.
    a1.step(
        &account,
        Step::TokenFetched,
        StepOutcome::Reached { detail: None },
    );
    a1.flush().await.unwrap();
    let token = &a1.steps(&account).await.unwrap().entries[0];
    assert!(token.reached_at.unwrap() >= token.failed_at.unwrap());
    assert_eq!(token.errcode, Some(40164));
    // The other instance sees the same record.
    assert_eq!(a2.steps(&account).await.unwrap().entries[0], *token);

    // Pushes: 21 recorded, the newest 20 kept, newest first; content dropped unless kept.
    let base = unix_now_ms();
    for i in 0..=LIST_LEN as i64 {
        a1.push(&account, push(base + i, "hello"));
    }
    a1.flush().await.unwrap();
    let pushes = a1.pushes(&account).await.unwrap();
    assert_eq!(pushes.len(), LIST_LEN);
    assert_eq!(pushes[0].at, base + LIST_LEN as i64);
    assert_eq!(pushes[LIST_LEN - 1].at, base + 1);
    assert!(pushes.iter().all(|p| p.content.is_none()));
    // Another flush adds to the stored list, still bounded.
    a2.push(&account, push(base + 100, "later"));
    a2.flush().await.unwrap();
    let pushes = a1.pushes(&account).await.unwrap();
    assert_eq!(pushes.len(), LIST_LEN);
    assert_eq!(pushes[0].at, base + 100);
    // The newest push of a page of accounts, in one read; an older one never wins.
    a1.push(&account, push(base - 5, "old"));
    a1.flush().await.unwrap();
    let silent = format!("silent-{}", random_hex());
    assert_eq!(
        a1.last_pushes(&[&account, &silent]).await.unwrap(),
        [Some(base + 100), None]
    );

    // Refresh history: bounded and newest first.
    for i in 0..=LIST_LEN as i64 {
        a1.refresh(
            &account,
            RefreshSeen {
                at: base + i,
                kind: CredentialKind::AccessToken,
                ok: i % 2 == 0,
                forced: false,
                errcode: (i % 2 == 1).then_some(40164),
                message: None,
            },
        );
    }
    a1.flush().await.unwrap();
    let refreshes = a1.refreshes(&account).await.unwrap();
    assert_eq!(refreshes.len(), LIST_LEN);
    assert_eq!(refreshes[0].at, base + LIST_LEN as i64);
    assert!(refreshes[0].ok);

    // Calls: two instances sharing the store, summed; a second flush adds to the first.
    a1.heartbeat().await.unwrap();
    a2.heartbeat().await.unwrap();
    for ok in [true, true, false] {
        a1.call(&account, "cgi-bin/token", ok);
    }
    a2.call(&account, "cgi-bin/token", true);
    a2.call(&account, "proxy", false);
    a1.flush().await.unwrap();
    a2.flush().await.unwrap();
    a1.call(&account, "cgi-bin/token", true);
    a1.flush().await.unwrap();
    for reader in [&a1, &a2] {
        let hours = reader.calls_24h(&account).await.unwrap();
        assert_eq!(hours.len(), 24);
        assert!(hours
            .windows(2)
            .all(|w| w[1].hour_start - w[0].hour_start == 3_600_000));
        let total = |endpoint: &str| {
            hours
                .iter()
                .flat_map(|h| &h.endpoints)
                .filter(|e| e.endpoint == endpoint)
                .fold((0, 0), |(c, e), x| (c + x.calls, e + x.errors))
        };
        assert_eq!(total("cgi-bin/token"), (5, 1));
        assert_eq!(total("proxy"), (1, 1));
    }
    // Endpoints per account and hour are capped; the rest count as "other".
    let busy = format!("busy-{}", random_hex());
    for i in 0..40 {
        a1.call(&busy, &format!("cgi-bin/e{i:02}"), true);
    }
    a1.flush().await.unwrap();
    let hours = a1.calls_24h(&busy).await.unwrap();
    let endpoints: Vec<_> = hours.iter().flat_map(|h| &h.endpoints).collect();
    assert!(endpoints.len() <= ENDPOINTS_MAX * 2, "{endpoints:?}");
    assert_eq!(endpoints.iter().map(|e| e.calls).sum::<u64>(), 40);
    assert!(endpoints.iter().any(|e| e.endpoint == OTHER));

    // Instances and the egress IP.
    let ids: Vec<String> = a1
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert!(ids.contains(&a1.instance().to_owned()), "{ids:?}");
    assert!(ids.contains(&a2.instance().to_owned()), "{ids:?}");
    a2.egress_ip("203.0.113.7");
    a2.flush().await.unwrap();
    let (ip, at) = a1.learned_egress_ip().await.unwrap().unwrap();
    assert_eq!(ip, "203.0.113.7");
    assert!(at >= base);

    // Forget: everything of the account is gone, in memory too.
    a1.push(&account, push(base + 200, "pending"));
    a1.forget(&account).await;
    a1.flush().await.unwrap();
    assert!(a1.steps(&account).await.unwrap().entries[0]
        .reached_at
        .is_none());
    assert!(a1.pushes(&account).await.unwrap().is_empty());
    assert!(a1.refreshes(&account).await.unwrap().is_empty());
    assert_eq!(a1.last_pushes(&[&account]).await.unwrap(), [None]);
    let hours = a1.calls_24h(&account).await.unwrap();
    assert!(hours.iter().all(|h| h.endpoints.is_empty()), "{hours:?}");
}

#[tokio::test]
async fn activity_on_the_memory_store() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn activity_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    suite(Arc::new(SqliteStore::open(&url).await.unwrap())).await;
}

#[tokio::test]
async fn activity_on_redis() {
    let Some(url) = redis_url("activity_on_redis") else {
        return;
    };
    let store = RedisStore::connect(&url, &unique_prefix())
        .await
        .expect("WXGATE_TEST_REDIS_URL is set but Redis is unreachable");
    suite(Arc::new(store)).await;
}

#[tokio::test]
async fn activity_on_postgresql() {
    crate::helpers::in_fresh_pg_schema("activity_on_postgresql", |url| async move {
        let store = wxgate::store::PostgresStore::connect(&url, &unique_prefix())
            .await
            .expect("WXGATE_TEST_POSTGRES_URL is set but PostgreSQL is not usable");
        suite(Arc::new(store)).await;
    })
    .await;
}

#[tokio::test]
async fn message_content_is_kept_only_when_asked_and_truncated() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let keeping = activity(&store, "keeper", true);
    let long: String = "字".repeat(300);
    keeping.push("a", push(1, &long));
    keeping.flush().await.unwrap();
    let kept = keeping.pushes("a").await.unwrap();
    assert_eq!(
        kept[0].content.as_deref().map(|c| c.chars().count()),
        Some(200)
    );
    let not_keeping = activity(&store, "other", false);
    not_keeping.push("b", push(2, "secret words"));
    not_keeping.flush().await.unwrap();
    assert_eq!(not_keeping.pushes("b").await.unwrap()[0].content, None);
}

#[tokio::test]
async fn a_reached_step_is_written_once_per_process() {
    let store = Arc::new(MemoryStore::new());
    let counted: Arc<dyn Store> = store.clone();
    let a = activity(&counted, "once", false);
    a.step(
        "a",
        Step::VerifyAnswered,
        StepOutcome::Reached { detail: None },
    );
    a.flush().await.unwrap();
    let first = a.steps("a").await.unwrap().entries[1].reached_at;
    assert!(first.is_some());
    // Deleting the record shows whether a repeat would write again: it must not.
    store.delete("act:steps:a").await.unwrap();
    for _ in 0..100 {
        a.step(
            "a",
            Step::VerifyAnswered,
            StepOutcome::Reached { detail: None },
        );
    }
    a.flush().await.unwrap();
    assert_eq!(a.steps("a").await.unwrap().entries[1].reached_at, None);
}

#[tokio::test]
async fn a_flush_of_more_accounts_than_one_read_batch_writes_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let a = activity(&store, "many", false);
    let names: Vec<String> = (0..1200).map(|i| format!("a{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        a.push(name, push(1000 + i as i64, ""));
        a.step(
            name,
            Step::TokenFetched,
            StepOutcome::Reached { detail: None },
        );
    }
    a.flush().await.unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let newest = a.last_pushes(&refs).await.unwrap();
    assert!(newest
        .iter()
        .enumerate()
        .all(|(i, at)| *at == Some(1000 + i as i64)));
    for name in [&names[0], &names[700], &names[1199]] {
        assert!(a.steps(name).await.unwrap().entries[0].reached_at.is_some());
    }
}
