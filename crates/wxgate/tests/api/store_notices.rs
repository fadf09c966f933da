//! Store notices and `get_many` on every backend, against the real thing: two handles on one
//! store (two SQLite handles of one file, two Redis connections, one memory store shared), so a
//! notice really crosses from one follower's connection to another's. PostgreSQL runs the same
//! checks from its own file.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use wxgate::store::{MemoryStore, Notice, RedisStore, SqliteStore, Store, MAX_NOTICE_LEN};

/// Longest wait for a notice (SQLite's followers read once a second; the machine is shared).
const ARRIVES_WITHIN: Duration = Duration::from_secs(5);

/// The next message, skipping `Missed` (which a backend may send at any time).
pub(crate) async fn next_message(rx: &mut Receiver<Notice>) -> String {
    let deadline = tokio::time::Instant::now() + ARRIVES_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Notice::Message(m))) => return m,
            Ok(Some(Notice::Missed)) => continue,
            Ok(None) => panic!("the notice queue closed"),
            Err(_) => panic!("no notice within {ARRIVES_WITHIN:?}"),
        }
    }
}

/// What every backend must show, with `a` and `b` two handles on one store.
pub(crate) async fn notices_and_get_many(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();

    // A notice sent on one handle reaches the followers of both, in order, this one included.
    a.notify("first").await.unwrap();
    b.notify("second · 第二").await.unwrap();
    for rx in [&mut on_a, &mut on_b] {
        assert_eq!(next_message(rx).await, "first");
        assert_eq!(next_message(rx).await, "second · 第二");
    }
    // A notice of the longest allowed length arrives whole; a longer one is refused.
    let longest = "n".repeat(MAX_NOTICE_LEN);
    b.notify(&longest).await.unwrap();
    assert_eq!(next_message(&mut on_a).await, longest);
    assert!(a.notify(&"n".repeat(MAX_NOTICE_LEN + 1)).await.is_err());

    // A follower that subscribes later sees only what is sent after it did.
    let mut late = b.subscribe().await.unwrap();
    a.notify("third").await.unwrap();
    assert_eq!(next_message(&mut late).await, "third");
    assert_eq!(next_message(&mut on_b).await, longest);
    assert_eq!(next_message(&mut on_b).await, "third");

    // A dropped follower does not stop the others.
    drop(on_a);
    a.notify("fourth").await.unwrap();
    assert_eq!(next_message(&mut on_b).await, "fourth");

    // get_many: in order, absent and expired as None, values as written, one handle's writes
    // seen through the other.
    a.put("many:1", b"one", None).await.unwrap();
    a.put("many:2", &[0, 255, 0], None).await.unwrap();
    a.put("many:short", b"x", Some(Duration::from_millis(30)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let keys: Vec<String> = ["many:2", "many:absent", "many:1", "many:short"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = b.get_many(&keys).await.unwrap();
    assert_eq!(
        got,
        vec![Some(vec![0, 255, 0]), None, Some(b"one".to_vec()), None]
    );
    assert!(b.get_many(&[]).await.unwrap().is_empty());
    // Many keys at once (backends split long lists; the order still holds).
    let many: Vec<String> = (0..1200).map(|i| format!("many:n{i}")).collect();
    for key in many.iter().step_by(3) {
        a.put(key, key.as_bytes(), None).await.unwrap();
    }
    let got = b.get_many(&many).await.unwrap();
    assert_eq!(got.len(), many.len());
    for (i, (key, value)) in many.iter().zip(&got).enumerate() {
        let expected = (i % 3 == 0).then(|| key.as_bytes().to_vec());
        assert_eq!(value, &expected, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_notices_and_get_many() {
    let s: Arc<dyn Store> = Arc::new(MemoryStore::new());
    notices_and_get_many(Arc::clone(&s), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_notices_and_get_many() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("notices.db").display());
    let a = SqliteStore::open(&url).await.unwrap();
    let b = SqliteStore::open(&url).await.unwrap();
    notices_and_get_many(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_prunes_old_notices_and_a_follower_that_lost_some_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pruned.db");
    let url = format!("sqlite://{}", path.display());
    let s = SqliteStore::open(&url).await.unwrap();
    s.notify("old-1").await.unwrap();
    s.notify("old-2").await.unwrap();
    let mut behind = s.subscribe().await.unwrap();
    {
        // Age the rows past the retention, and advance the sequence as if five more notices
        // had been written and pruned before `behind` read them.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE wxgate_notices SET at_ms = 0", [])
            .unwrap();
        conn.execute(
            "UPDATE sqlite_sequence SET seq = seq + 5 WHERE name = 'wxgate_notices'",
            [],
        )
        .unwrap();
    }
    s.notify("after").await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT message FROM wxgate_notices")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec!["after".to_owned()], "old notices are pruned");
    let mut seen = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(ARRIVES_WITHIN, behind.recv()).await {
            Ok(Some(n)) => seen.push(n),
            other => panic!("{other:?} after {seen:?}"),
        }
    }
    assert_eq!(seen, vec![Notice::Missed, Notice::Message("after".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_notices_and_get_many() {
    let Ok(url) = std::env::var("WXGATE_TEST_REDIS_URL") else {
        println!("skipping redis_notices_and_get_many: WXGATE_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("wxgate-test:{}:", rand::random::<u64>());
    let connect = || async {
        match RedisStore::connect(&url, &prefix).await {
            Ok(s) => Arc::new(s) as Arc<dyn Store>,
            Err(e) => panic!("WXGATE_TEST_REDIS_URL is set but Redis is not usable: {e}"),
        }
    };
    let (a, b) = (connect().await, connect().await);
    notices_and_get_many(Arc::clone(&a), b).await;
    // Another prefix is another channel.
    let other = RedisStore::connect(&url, &format!("{prefix}other:"))
        .await
        .unwrap();
    let mut on_other = other.subscribe().await.unwrap();
    a.notify("not for other").await.unwrap();
    other.notify("for other").await.unwrap();
    assert_eq!(next_message(&mut on_other).await, "for other");
    crate::store::redis_cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_slow_follower_loses_nothing() {
    // SQLite's notices wait in their table, so a follower that does not keep up is waited
    // for rather than told it missed some (which would make it re-read everything it holds).
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("slow.db").display());
    let s = SqliteStore::open(&url).await.unwrap();
    let mut rx = s.subscribe().await.unwrap();
    let n = wxgate::store::NOTICE_QUEUE + 500;
    for i in 0..n {
        s.notify(&format!("n{i}")).await.unwrap();
    }
    for i in 0..n {
        match tokio::time::timeout(ARRIVES_WITHIN, rx.recv()).await {
            Ok(Some(Notice::Message(m))) => assert_eq!(m, format!("n{i}")),
            other => panic!("notice {i}: {other:?}"),
        }
    }
}
