//! Conformance suite of the registry's database layer ([`RegistryDb`], [`AuthorizerDb`]) under
//! `wxgate serve`: the same cases on a fresh SQLite file, on PostgreSQL in a fresh schema
//! (`WXGATE_TEST_POSTGRES_URL`) and on MongoDB in a fresh database (`WXGATE_TEST_MONGODB_URL`);
//! each server case skips with a printed reason when its variable is unset and fails when the
//! server does not answer. The change counter is the point: whatever the backend, a reader
//! following `changes_since` must see every change, also while several writers race.

use std::collections::BTreeSet;

use wxgate::database::{connect, Database};
use wxgate::registry::{
    AccountWrite, AuthorizerGrant, AuthorizerProfile, SealedTicket, StoredKey, WriteOutcome,
};

use crate::helpers::{in_fresh_mongo_db, in_fresh_pg_schema};

/// Generates, for each case, one test per backend.
macro_rules! registry_conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$case(format!("sqlite://{}", dir.path().join("r.db").display())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::in_fresh_pg_schema(concat!("registry_", stringify!($case)), super::$case)
                        .await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::in_fresh_mongo_db(concat!("registry_", stringify!($case)), super::$case)
                        .await;
                }
            )*
        }
    };
}

registry_conformance!(
    account_writes_are_conditional_and_reach_readers,
    keys_are_inserted_and_deleted_as_tombstones,
    racing_writers_never_hide_a_change_from_a_reader,
    authorizers_keep_their_conditions,
    tickets_keep_the_newest,
);

async fn open(url: &str) -> Database {
    connect(url).await.unwrap()
}

fn write<'a>(
    name: &'a str,
    settings: &'a str,
    expected_seq: Option<i64>,
    now: i64,
) -> AccountWrite<'a> {
    AccountWrite {
        name,
        settings,
        secrets: "{\"secret\":\"sealed\"}",
        expected_seq,
        now,
    }
}

async fn account_writes_are_conditional_and_reach_readers(url: String) {
    let db = open(&url).await.registry;
    let start = db.seq().await.unwrap();
    let WriteOutcome::Written { seq: first } = db
        .write_account(write("shop", "{\"v\":1}", None, 100))
        .await
        .unwrap()
    else {
        panic!("the first write conflicted")
    };
    assert!(first > start);
    // Inserting again, or replacing with a stale stamp, conflicts and changes nothing.
    assert_eq!(
        db.write_account(write("shop", "{\"v\":9}", None, 101))
            .await
            .unwrap(),
        WriteOutcome::Conflict
    );
    assert_eq!(
        db.write_account(write("shop", "{\"v\":9}", Some(first - 1), 101))
            .await
            .unwrap(),
        WriteOutcome::Conflict
    );
    let row = db.account("shop").await.unwrap().unwrap();
    assert_eq!((row.settings.as_str(), row.seq), ("{\"v\":1}", first));
    let WriteOutcome::Written { seq: second } = db
        .write_account(write("shop", "{\"v\":2}", Some(first), 102))
        .await
        .unwrap()
    else {
        panic!("the conditional write conflicted")
    };
    assert!(second > first);
    let row = db.account("shop").await.unwrap().unwrap();
    assert_eq!(
        (row.created_at, row.updated_at),
        (100, 102),
        "creation time kept"
    );
    assert!(db.seq().await.unwrap() >= second);

    let changes = db.changes_since(start).await.unwrap();
    assert!(changes.seq >= second);
    assert_eq!(changes.accounts.len(), 1);
    assert_eq!(changes.accounts[0].settings, "{\"v\":2}");
    assert!(db
        .changes_since(changes.seq)
        .await
        .unwrap()
        .accounts
        .is_empty());

    // A deletion is a tombstone readers learn of; a write over it is a new account.
    assert!(db.delete_account("shop", 103).await.unwrap());
    assert!(!db.delete_account("shop", 104).await.unwrap());
    let tomb = db.account("shop").await.unwrap().unwrap();
    assert!(tomb.deleted);
    assert_eq!(tomb.secrets, "{}");
    let changes = db.changes_since(second).await.unwrap();
    assert_eq!(changes.accounts.len(), 1);
    assert!(changes.accounts[0].deleted);
    assert!(
        db.write_account(write("shop", "{\"v\":3}", Some(tomb.seq), 105))
            .await
            .unwrap()
            != WriteOutcome::Conflict
    );
    let back = db.account("shop").await.unwrap().unwrap();
    assert!(!back.deleted);
    assert_eq!((back.created_at, back.updated_at), (105, 105));
    assert!(db.account("nobody").await.unwrap().is_none());
}

async fn keys_are_inserted_and_deleted_as_tombstones(url: String) {
    let db = open(&url).await.registry;
    let key = StoredKey {
        id: "k1".into(),
        name: "billing".into(),
        digest: "ab".repeat(32),
        accounts: "[\"main\"]".into(),
        scopes: "[\"credentials\"]".into(),
        deleted: false,
        seq: 0,
        created_at: 7,
    };
    let seq = db.insert_key(&key).await.unwrap();
    let changes = db.changes_since(seq - 1).await.unwrap();
    assert_eq!(changes.keys.len(), 1);
    assert_eq!(changes.keys[0], StoredKey { seq, ..key.clone() });
    assert!(db.insert_key(&key).await.is_err(), "ids are unique");
    assert!(db.delete_key("k1").await.unwrap());
    assert!(!db.delete_key("k1").await.unwrap());
    assert!(!db.delete_key("k2").await.unwrap());
    let changes = db.changes_since(seq).await.unwrap();
    assert_eq!(changes.keys.len(), 1);
    assert!(changes.keys[0].deleted);
}

async fn racing_writers_never_hide_a_change_from_a_reader(url: String) {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    let reader = open(&url).await.registry;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        // Each writer on its own pool, as another instance would be.
        let db = open(&url).await.registry;
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let name = format!("acct-{w}-{i:02}");
                let outcome = db.write_account(write(&name, "{}", None, 1)).await.unwrap();
                assert!(matches!(outcome, WriteOutcome::Written { .. }));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    let mut follow = |changes: wxgate::registry::Changes, cursor: &mut i64| {
        assert!(changes.seq >= *cursor, "the counter never goes back");
        for account in changes.accounts {
            assert!(account.seq > *cursor && account.seq <= changes.seq);
            seen.insert(account.name);
        }
        *cursor = changes.seq;
    };
    while !writers.iter().all(|w| w.is_finished()) {
        let changes = reader.changes_since(cursor).await.unwrap();
        follow(changes, &mut cursor);
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let changes = reader.changes_since(cursor).await.unwrap();
    follow(changes, &mut cursor);
    assert_eq!(
        seen.len(),
        WRITERS * EACH,
        "every change reached the reader"
    );
}

fn grant<'a>(appid: &'a str, token: &'a str, event_at: i64, now: i64) -> AuthorizerGrant<'a> {
    AuthorizerGrant {
        component: "wxcomponent",
        appid,
        profile: None,
        func_info: "[1]",
        refresh_token: token,
        event_at,
        now,
    }
}

async fn authorizers_keep_their_conditions(url: String) {
    let database = open(&url).await;
    let (db, registry) = (database.authorizers, database.registry);
    let c = "wxcomponent";
    let before = registry.seq().await.unwrap();
    assert!(db
        .grant_authorizer(grant("wxa", "sealed-1", 50, 10))
        .await
        .unwrap());
    let token = db.refresh_token(c, "wxa").await.unwrap().unwrap();
    assert_eq!((token.sealed.as_str(), token.version), ("sealed-1", 1));
    assert_eq!(token.status, "authorized");
    let changes = registry.changes_since(before).await.unwrap();
    assert_eq!(changes.authorizers.len(), 1);
    let row = &changes.authorizers[0];
    assert_eq!((row.nick_name.as_str(), row.authorized_at), ("", 10));

    // The profile: set once, unchanged when the same.
    let profile = AuthorizerProfile {
        nick_name: "Shop",
        principal_name: "Shop Ltd",
    };
    assert!(db
        .set_authorizer_profile(c, "wxa", profile, 11)
        .await
        .unwrap());
    assert!(!db
        .set_authorizer_profile(c, "wxa", profile, 12)
        .await
        .unwrap());
    assert!(!db
        .set_authorizer_profile(c, "nobody", profile, 12)
        .await
        .unwrap());
    // A second grant keeps the profile and the first authorization time.
    assert!(db
        .grant_authorizer(grant("wxa", "sealed-2", 40, 20))
        .await
        .unwrap());
    let listed = db.list_authorizers(c, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].nick_name.as_str(), listed[0].authorized_at),
        ("Shop", 10)
    );
    let token = db.refresh_token(c, "wxa").await.unwrap().unwrap();
    assert_eq!((token.sealed.as_str(), token.version), ("sealed-2", 2));

    // Refresh tokens: replaced only from the version read, while authorized.
    assert!(!db
        .replace_refresh_token(c, "wxa", "sealed-x", 1, 21)
        .await
        .unwrap());
    assert!(db
        .replace_refresh_token(c, "wxa", "sealed-3", 2, 21)
        .await
        .unwrap());
    assert!(!db
        .mark_refresh_token_invalid(c, "wxa", 2, 22)
        .await
        .unwrap());
    assert!(db
        .mark_refresh_token_invalid(c, "wxa", 3, 22)
        .await
        .unwrap());
    assert!(!db
        .replace_refresh_token(c, "wxa", "sealed-4", 3, 23)
        .await
        .unwrap());

    // Revocation: not by an event older than the grant's, once only, erasing the token.
    assert!(!db.revoke_authorizer(c, "wxa", 50, 24).await.unwrap());
    assert!(db.revoke_authorizer(c, "wxa", 60, 24).await.unwrap());
    assert!(!db.revoke_authorizer(c, "wxa", 70, 25).await.unwrap());
    let token = db.refresh_token(c, "wxa").await.unwrap().unwrap();
    assert_eq!(
        (token.sealed.as_str(), token.status.as_str()),
        ("", "revoked")
    );
    // Authorized again: a new authorization time.
    assert!(db
        .grant_authorizer(grant("wxa", "sealed-5", 0, 30))
        .await
        .unwrap());
    let listed = db.list_authorizers(c, None, 10).await.unwrap();
    assert_eq!(
        (listed[0].status.as_str(), listed[0].authorized_at),
        ("authorized", 30)
    );

    // Paging by appid and counting by status.
    for appid in ["wxc", "wxb"] {
        assert!(db.grant_authorizer(grant(appid, "t", 1, 40)).await.unwrap());
    }
    assert!(db.revoke_authorizer(c, "wxc", 2, 41).await.unwrap());
    let page = db.list_authorizers(c, Some("wxa"), 1).await.unwrap();
    assert_eq!(page[0].appid, "wxb");
    assert!(db
        .list_authorizers("other", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        db.count_authorizers(c).await.unwrap(),
        [("authorized".to_owned(), 2), ("revoked".to_owned(), 1)]
    );
}

async fn tickets_keep_the_newest(url: String) {
    let db = open(&url).await.authorizers;
    let ticket = |sealed: &str, create_time| SealedTicket {
        component: "wxcomponent".into(),
        sealed: sealed.into(),
        create_time,
        received_at: create_time + 1,
    };
    assert!(db.ticket("wxcomponent").await.unwrap().is_none());
    assert!(db.put_ticket(&ticket("t1", 100)).await.unwrap());
    assert!(!db.put_ticket(&ticket("t0", 90)).await.unwrap());
    assert!(!db.put_ticket(&ticket("t1again", 100)).await.unwrap());
    assert!(db.put_ticket(&ticket("t2", 110)).await.unwrap());
    assert_eq!(
        db.ticket("wxcomponent").await.unwrap(),
        Some(ticket("t2", 110))
    );
}
