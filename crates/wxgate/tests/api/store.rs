//! Conformance tests for the [`Store`] backends, always against the real thing: the in-process
//! map, a fresh SQLite file (opened by several handles and by several OS processes at once), and
//! a real Redis server when `WXGATE_TEST_REDIS_URL` is set (e.g. `redis://127.0.0.1:6379/0`).
//!
//! Every backend runs the same suite ([`conformance`]); the cross-handle races ([`two_handles`])
//! run on two SQLite handles of one file and on two Redis connections (PostgreSQL: `store_postgres`).
//! Without the variable the Redis tests say so and pass; with it set but Redis unreachable, fail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use wxgate::store::{self, MemoryStore, RedisStore, SqliteStore, Store, StoreError};

const REDIS_ENV: &str = "WXGATE_TEST_REDIS_URL";
/// Set in the environment of the child processes spawned by `sqlite_several_processes_race`.
const CHILD_DB_ENV: &str = "WXGATE_STORE_TEST_CHILD_DB";
const CHILD_ID_ENV: &str = "WXGATE_STORE_TEST_CHILD_ID";
const CHILD_MODE_ENV: &str = "WXGATE_STORE_TEST_CHILD_MODE";
/// Keys each child process races on.
const CHILD_KEYS: usize = 100;
/// Counter increments per child process.
const CHILD_INCREMENTS: usize = 25;

/// Bytes that are not UTF-8 and contain NULs, to catch any text conversion on the way.
const BINARY: &[u8] = &[0x00, 0xff, 0xfe, 0x00, 0xc3, 0x28, b'a', 0x80, 0x00];

pub(crate) fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

pub(crate) fn random_hex() -> String {
    let bytes: [u8; 8] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// Runs `n` copies of `f` at once (each gets its index) and returns their results.
async fn race<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let barrier = Arc::clone(&barrier);
        let fut = f(i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("race task panicked"));
    }
    out
}

/// The behaviour every backend must show.
pub(crate) async fn conformance(s: Arc<dyn Store>) {
    basics(&*s).await;
    binary_values(&*s).await;
    ttl_expiry(&*s).await;
    put_if_absent_semantics(&*s).await;
    put_if_newer_semantics(&*s).await;
    take_semantics(&*s).await;
    delete_if_equals_semantics(&*s).await;
    extend_if_equals_semantics(&*s).await;
    races(&s).await;
}

async fn basics(s: &dyn Store) {
    s.ping().await.unwrap();
    assert_eq!(s.get("basic:missing").await.unwrap(), None);
    s.put("basic:a", b"one", None).await.unwrap();
    assert_eq!(
        s.get("basic:a").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    s.put("basic:a", b"two", None).await.unwrap();
    assert_eq!(
        s.get("basic:a").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    // Keys are independent.
    assert_eq!(s.get("basic:a2").await.unwrap(), None);
    s.delete("basic:a").await.unwrap();
    assert_eq!(s.get("basic:a").await.unwrap(), None);
    // Deleting what is not there is fine.
    s.delete("basic:a").await.unwrap();
    s.delete("basic:never").await.unwrap();
    // Keys with unusual characters.
    let key = "basic:cred:main:access_token/ü 空 ' \" ;--";
    s.put(key, b"x", None).await.unwrap();
    assert_eq!(s.get(key).await.unwrap().as_deref(), Some(&b"x"[..]));
}

async fn binary_values(s: &dyn Store) {
    s.put("bin:put", BINARY, None).await.unwrap();
    assert_eq!(s.get("bin:put").await.unwrap().as_deref(), Some(BINARY));

    s.put("bin:empty", b"", None).await.unwrap();
    assert_eq!(s.get("bin:empty").await.unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(
        s.take("bin:empty").await.unwrap().as_deref(),
        Some(&b""[..])
    );
    assert_eq!(s.get("bin:empty").await.unwrap(), None);

    assert!(s.put_if_absent("bin:pia", BINARY, None).await.unwrap());
    assert_eq!(s.get("bin:pia").await.unwrap().as_deref(), Some(BINARY));

    assert!(s.put_if_newer("bin:pin", BINARY, 7, None).await.unwrap());
    assert_eq!(s.get("bin:pin").await.unwrap().as_deref(), Some(BINARY));

    // A value differing only after a NUL byte is a different value.
    let mut almost = BINARY.to_vec();
    *almost.last_mut().unwrap() = 0x01;
    assert!(!s.delete_if_equals("bin:pin", &almost).await.unwrap());
    assert!(!s.delete_if_equals("bin:pin", &BINARY[..3]).await.unwrap());
    assert!(s.delete_if_equals("bin:pin", BINARY).await.unwrap());

    assert_eq!(s.take("bin:pia").await.unwrap().as_deref(), Some(BINARY));

    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    s.put("bin:big", &big, None).await.unwrap();
    assert_eq!(s.get("bin:big").await.unwrap(), Some(big));
}

async fn ttl_expiry(s: &dyn Store) {
    s.put("ttl:short", b"v", ms(400)).await.unwrap();
    s.put("ttl:forever", b"v", None).await.unwrap();
    s.put("ttl:long", b"v", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        s.get("ttl:short").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // A later put replaces the TTL too: this one no longer expires.
    s.put("ttl:reset", b"old", ms(400)).await.unwrap();
    s.put("ttl:reset", b"new", None).await.unwrap();
    // ...and a later put with a TTL makes a permanent entry expire.
    s.put("ttl:becomes-short", b"v", None).await.unwrap();
    s.put("ttl:becomes-short", b"v", ms(400)).await.unwrap();
    // Sub-millisecond precision does not break anything.
    s.put("ttl:fraction", b"v", Some(Duration::from_micros(300_500)))
        .await
        .unwrap();
    // Absurdly long TTLs are accepted and behave like long ones.
    s.put("ttl:huge", b"v", Some(Duration::from_secs(u64::MAX / 4)))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(650)).await;

    assert_eq!(s.get("ttl:short").await.unwrap(), None);
    assert_eq!(s.get("ttl:becomes-short").await.unwrap(), None);
    assert_eq!(s.get("ttl:fraction").await.unwrap(), None);
    assert_eq!(
        s.get("ttl:forever").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(s.get("ttl:long").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get("ttl:huge").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(
        s.get("ttl:reset").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

async fn put_if_absent_semantics(s: &dyn Store) {
    assert!(s.put_if_absent("pia:k", b"first", None).await.unwrap());
    assert!(!s.put_if_absent("pia:k", b"second", None).await.unwrap());
    assert_eq!(
        s.get("pia:k").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    s.delete("pia:k").await.unwrap();
    assert!(s.put_if_absent("pia:k", b"third", None).await.unwrap());
    assert_eq!(
        s.get("pia:k").await.unwrap().as_deref(),
        Some(&b"third"[..])
    );

    // A lease: held while its TTL runs, free again once it has passed (crashed holder).
    assert!(s
        .put_if_absent("pia:lease", b"owner-a", ms(300))
        .await
        .unwrap());
    assert!(!s
        .put_if_absent("pia:lease", b"owner-b", ms(300))
        .await
        .unwrap());
    // Failing to acquire does not extend or replace the holder's lease.
    assert_eq!(
        s.get("pia:lease").await.unwrap().as_deref(),
        Some(&b"owner-a"[..])
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get("pia:lease").await.unwrap(), None);
    assert!(s
        .put_if_absent("pia:lease", b"owner-b", ms(5000))
        .await
        .unwrap());
    assert_eq!(
        s.get("pia:lease").await.unwrap().as_deref(),
        Some(&b"owner-b"[..])
    );
    // The crashed holder's late release must not free the new holder's lease.
    assert!(!s.delete_if_equals("pia:lease", b"owner-a").await.unwrap());
    assert!(!s
        .put_if_absent("pia:lease", b"owner-c", None)
        .await
        .unwrap());
    assert!(s.delete_if_equals("pia:lease", b"owner-b").await.unwrap());
    assert!(s
        .put_if_absent("pia:lease", b"owner-c", None)
        .await
        .unwrap());
}

async fn put_if_newer_semantics(s: &dyn Store) {
    let k = "pin:cred";
    assert!(s.put_if_newer(k, b"v10", 10, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"v9", 9, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"v10b", 10, None).await.unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v10"[..]));
    assert!(s.put_if_newer(k, b"v11", 11, ms(60_000)).await.unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v11"[..]));

    // Versions compare as signed 64-bit integers over their whole range.
    let k = "pin:range";
    assert!(s.put_if_newer(k, b"a", -5, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"b", -6, None).await.unwrap());
    assert!(s.put_if_newer(k, b"c", -1, None).await.unwrap());
    assert!(s.put_if_newer(k, b"d", 0, None).await.unwrap());
    assert!(s.put_if_newer(k, b"e", 255, None).await.unwrap());
    assert!(s.put_if_newer(k, b"f", 256, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"g", 255, None).await.unwrap());
    // Values above 2^53 that a float would conflate.
    let big = 1_i64 << 60;
    assert!(s.put_if_newer(k, b"h", big, None).await.unwrap());
    assert!(s.put_if_newer(k, b"i", big + 1, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"j", big + 1, None).await.unwrap());
    assert!(s.put_if_newer(k, b"k", i64::MAX - 1, None).await.unwrap());
    assert!(s.put_if_newer(k, b"l", i64::MAX, None).await.unwrap());
    assert!(!s.put_if_newer(k, b"m", i64::MAX, None).await.unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"l"[..]));

    // put/put_if_absent write version i64::MIN: any other version replaces it, MIN does not.
    let k = "pin:after-put";
    s.put(k, b"plain", None).await.unwrap();
    assert!(!s.put_if_newer(k, b"min", i64::MIN, None).await.unwrap());
    assert!(s
        .put_if_newer(k, b"newer", i64::MIN + 1, None)
        .await
        .unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"newer"[..]));
    // ...and a plain put resets the version.
    s.put(k, b"plain-again", None).await.unwrap();
    assert!(s.put_if_newer(k, b"v1", 1, None).await.unwrap());
    let k = "pin:after-pia";
    assert!(s.put_if_absent(k, b"claim", None).await.unwrap());
    assert!(s.put_if_newer(k, b"v-100", -100, None).await.unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v-100"[..]));
    // On absent keys, MIN works like any version.
    assert!(s
        .put_if_newer("pin:min-absent", b"m", i64::MIN, None)
        .await
        .unwrap());

    // An expired entry counts as absent, whatever its version was.
    let k = "pin:expiring";
    assert!(s.put_if_newer(k, b"v100", 100, ms(300)).await.unwrap());
    assert!(!s.put_if_newer(k, b"v50", 50, None).await.unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get(k).await.unwrap(), None);
    assert!(s.put_if_newer(k, b"v1", 1, None).await.unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(!s.put_if_newer(k, b"v0", 0, None).await.unwrap());
}

async fn take_semantics(s: &dyn Store) {
    assert_eq!(s.take("take:missing").await.unwrap(), None);
    s.put("take:code", b"openid-1", None).await.unwrap();
    assert_eq!(
        s.take("take:code").await.unwrap().as_deref(),
        Some(&b"openid-1"[..])
    );
    assert_eq!(s.take("take:code").await.unwrap(), None);
    assert_eq!(s.get("take:code").await.unwrap(), None);

    s.put("take:expiring", b"state", ms(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.take("take:expiring").await.unwrap(), None);
    // Taking a key frees it for put_if_absent.
    assert!(s
        .put_if_absent("take:expiring", b"again", None)
        .await
        .unwrap());
    assert_eq!(
        s.take("take:expiring").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    assert!(s
        .put_if_absent("take:expiring", b"third", None)
        .await
        .unwrap());
}

/// A lease renewal: only the live entry holding exactly the expected value gets a new TTL.
async fn extend_if_equals_semantics(s: &dyn Store) {
    let long = Duration::from_secs(60);
    assert!(!s.extend_if_equals("eie:missing", b"x", long).await.unwrap());
    assert_eq!(s.get("eie:missing").await.unwrap(), None, "never creates");

    // The owner extends a short lease beyond its first expiry; the value is unchanged.
    assert!(s.put_if_absent("eie:k", b"owner-1", ms(300)).await.unwrap());
    assert!(!s.extend_if_equals("eie:k", b"owner-2", long).await.unwrap());
    assert!(!s.extend_if_equals("eie:k", b"owner-", long).await.unwrap());
    assert!(!s
        .extend_if_equals("eie:k", b"owner-11", long)
        .await
        .unwrap());
    assert!(s.extend_if_equals("eie:k", b"owner-1", long).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        s.get("eie:k").await.unwrap().as_deref(),
        Some(&b"owner-1"[..]),
        "extended past its first TTL"
    );
    assert!(!s.put_if_absent("eie:k", b"owner-2", None).await.unwrap());

    // A non-owner's attempt changes nothing: its TTL still runs out.
    assert!(s
        .put_if_absent("eie:short", b"owner-1", ms(300))
        .await
        .unwrap());
    assert!(!s
        .extend_if_equals("eie:short", b"owner-2", long)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.get("eie:short").await.unwrap(), None);

    // An expired lease cannot be revived by its former owner, and can be retaken.
    assert!(!s
        .extend_if_equals("eie:short", b"owner-1", long)
        .await
        .unwrap());
    assert_eq!(s.get("eie:short").await.unwrap(), None);
    assert!(s
        .put_if_absent("eie:short", b"owner-2", None)
        .await
        .unwrap());

    // It can also shorten, and give a TTL to an entry that had none.
    assert!(s
        .extend_if_equals("eie:short", b"owner-2", Duration::from_millis(200))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get("eie:short").await.unwrap(), None);
    s.delete("eie:k").await.unwrap();
}

async fn delete_if_equals_semantics(s: &dyn Store) {
    assert!(!s.delete_if_equals("die:missing", b"x").await.unwrap());
    s.put("die:k", b"owner-1", None).await.unwrap();
    assert!(!s.delete_if_equals("die:k", b"owner-2").await.unwrap());
    assert!(!s.delete_if_equals("die:k", b"owner-").await.unwrap());
    assert!(!s.delete_if_equals("die:k", b"owner-11").await.unwrap());
    assert!(!s.delete_if_equals("die:k", b"").await.unwrap());
    assert_eq!(
        s.get("die:k").await.unwrap().as_deref(),
        Some(&b"owner-1"[..])
    );
    assert!(s.delete_if_equals("die:k", b"owner-1").await.unwrap());
    assert_eq!(s.get("die:k").await.unwrap(), None);
    assert!(!s.delete_if_equals("die:k", b"owner-1").await.unwrap());

    // Works on entries written by put_if_newer as well.
    assert!(s
        .put_if_newer("die:versioned", b"tok", 42, None)
        .await
        .unwrap());
    assert!(s.delete_if_equals("die:versioned", b"tok").await.unwrap());
    assert_eq!(s.get("die:versioned").await.unwrap(), None);

    // An expired entry cannot be released any more.
    s.put("die:expiring", b"owner-1", ms(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!s
        .delete_if_equals("die:expiring", b"owner-1")
        .await
        .unwrap());

    // Empty values compare like any other.
    s.put("die:empty", b"", None).await.unwrap();
    assert!(!s.delete_if_equals("die:empty", b"\0").await.unwrap());
    assert!(s.delete_if_equals("die:empty", b"").await.unwrap());
}

/// Concurrency within one handle.
async fn races(s: &Arc<dyn Store>) {
    const N: usize = 50;

    let wins = race(N, |i| {
        let s = Arc::clone(s);
        async move {
            s.put_if_absent("race:lease", format!("owner-{i}").as_bytes(), ms(60_000))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let winner = wins.iter().position(|w| *w).unwrap();
    assert_eq!(
        s.get("race:lease").await.unwrap(),
        Some(format!("owner-{winner}").into_bytes())
    );

    s.put("race:code", b"single-use", None).await.unwrap();
    let taken = race(N, |_| {
        let s = Arc::clone(s);
        async move { s.take("race:code").await.unwrap() }
    })
    .await;
    let got: Vec<_> = taken.iter().flatten().collect();
    assert_eq!(got, vec![&b"single-use".to_vec()], "{taken:?}");

    s.put("race:release", b"me", None).await.unwrap();
    let released = race(N, |_| {
        let s = Arc::clone(s);
        async move { s.delete_if_equals("race:release", b"me").await.unwrap() }
    })
    .await;
    assert_eq!(released.iter().filter(|r| **r).count(), 1);

    // Writers with versions 0..N in random order: the highest always ends up stored, and at
    // most one writer succeeds for each version.
    let wrote = race(N, |i| {
        let s = Arc::clone(s);
        async move {
            s.put_if_newer("race:newer", format!("v{i}").as_bytes(), i as i64, None)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(wrote[N - 1], "the highest version must always be written");
    assert_eq!(
        s.get("race:newer").await.unwrap(),
        Some(format!("v{}", N - 1).into_bytes())
    );
}

/// Two handles on the same shared state (two SQLite pools on one file, two Redis connections),
/// as two processes would have.
pub(crate) async fn two_handles(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    const N: usize = 50;
    let pick = |i: usize| {
        if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        }
    };

    a.put("two:visible", b"from-a", None).await.unwrap();
    assert_eq!(
        b.get("two:visible").await.unwrap().as_deref(),
        Some(&b"from-a"[..])
    );

    for round in 0..5 {
        let key = format!("two:lease:{round}");
        let wins = race(N, |i| {
            let s = pick(i);
            let key = key.clone();
            async move {
                s.put_if_absent(&key, format!("owner-{i}").as_bytes(), ms(60_000))
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        let winner = wins.iter().position(|w| *w).unwrap();
        // Both handles see the winner's value.
        let expected = format!("owner-{winner}").into_bytes();
        assert_eq!(a.get(&key).await.unwrap().as_ref(), Some(&expected));
        assert_eq!(b.get(&key).await.unwrap().as_ref(), Some(&expected));
    }

    a.put("two:code", b"once", None).await.unwrap();
    let taken = race(N, |i| {
        let s = pick(i);
        async move { s.take("two:code").await.unwrap() }
    })
    .await;
    assert_eq!(taken.iter().flatten().count(), 1, "{taken:?}");

    let wrote = race(N, |i| {
        let s = pick(i);
        async move {
            s.put_if_newer("two:newer", format!("v{i}").as_bytes(), i as i64, None)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(wrote[N - 1]);
    assert_eq!(
        b.get("two:newer").await.unwrap(),
        Some(format!("v{}", N - 1).into_bytes())
    );

    // A lease taken through one handle with a TTL expires for the other one.
    assert!(a.put_if_absent("two:ttl", b"a", ms(300)).await.unwrap());
    assert!(!b.put_if_absent("two:ttl", b"b", ms(300)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(b.put_if_absent("two:ttl", b"b", None).await.unwrap());
    assert!(!a.delete_if_equals("two:ttl", b"a").await.unwrap());
    assert!(a.delete_if_equals("two:ttl", b"b").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// memory

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_conformance() {
    conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_via_connect() {
    let s = store::connect("memory://", "ignored:").await.unwrap();
    s.put("k", b"v", None).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_sweeps_expired_entries() {
    // Not observable through the trait, so only check that many short-lived writes keep working
    // and expire (the sweep runs every 1024 writes).
    let s = MemoryStore::new();
    for i in 0..3000 {
        s.put(&format!("sweep:{i}"), b"v", ms(1)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..3000 {
        s.put(&format!("sweep2:{i}"), b"v", None).await.unwrap();
    }
    assert_eq!(s.get("sweep:0").await.unwrap(), None);
    assert_eq!(s.get("sweep:2999").await.unwrap(), None);
    assert_eq!(
        s.get("sweep2:2999").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// sqlite

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("store.db"));
    conformance(Arc::new(SqliteStore::open(&url).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_instances_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("shared.db"));
    // Open both at once on a file that does not exist yet, as two starting processes would.
    let (a, b) = tokio::join!(SqliteStore::open(&url), SqliteStore::open(&url));
    two_handles(Arc::new(a.unwrap()), Arc::new(b.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_url_forms_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-name.db");
    assert!(!path.exists());

    // `sqlite:PATH` via the generic connect, creating the file.
    let s = store::connect(&format!("sqlite:{}", path.display()), "")
        .await
        .unwrap();
    assert!(path.exists());
    s.put("persist", BINARY, None).await.unwrap();
    s.put("persist:expiring", b"v", ms(100)).await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // `sqlite://PATH` sees the same data after a "restart".
    let s = store::connect(&sqlite_url(&path), "").await.unwrap();
    assert_eq!(s.get("persist").await.unwrap().as_deref(), Some(BINARY));
    assert_eq!(s.get("persist:expiring").await.unwrap(), None);
    drop(s);

    // The file is in WAL mode, and the expired row was deleted when the store was reopened.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wxgate_kv WHERE key = ?1")
        .bind("persist:expiring")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_bad_urls() {
    for url in [
        "sqlite::memory:",
        "sqlite://",
        "sqlite:",
        "sqlite://x.db?mode=rwc",
    ] {
        match store::connect(url, "").await {
            Err(StoreError::InvalidUrl(_)) => {}
            Err(other) => panic!("{url}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url}: expected InvalidUrl, got a store"),
        }
    }
    // A path that cannot be created is a backend error, not a panic or a hang.
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("missing-dir").join("x.db"));
    assert!(matches!(
        SqliteStore::open(&url).await,
        Err(StoreError::Backend(_))
    ));
}

/// While another connection holds the write lock, a write waits for it WITHOUT blocking the
/// runtime's thread (SQLite's busy timeout is not used; the store retries asynchronously), goes
/// through once the lock is released, and fails with a backend error when the lock is held too
/// long (5 s).
#[tokio::test(flavor = "current_thread")]
async fn sqlite_locked_database_is_retried_without_blocking_the_runtime() {
    use sqlx::Connection as _;

    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("locked.db"));
    let s = Arc::new(SqliteStore::open(&url).await.unwrap());
    s.put("k", b"before", None).await.unwrap();

    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let put = tokio::spawn({
        let s = Arc::clone(&s);
        async move { s.put("k", b"after", None).await }
    });
    // On this single-threaded runtime, timers keep firing on time while the put waits.
    let started = Instant::now();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the runtime was blocked"
    );
    assert!(!put.is_finished(), "the put ignored the lock");
    // Reads are not blocked by a writer in WAL mode.
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"before"[..]));

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    put.await.unwrap().unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));

    // A lock that is never released: the write gives up after about 5 s.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let err = s.put("k", b"never", None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!err.to_string().contains("never"), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    blocker.close().await.unwrap();
}

/// Writes are committed in batches; one write that fails inside a batch (here a trigger rejects
/// one key) fails alone: every other write arriving with it is committed and reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failing_write_does_not_fail_its_batch() {
    use sqlx::Connection as _;

    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("poison.db"));
    let s: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let mut admin = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON wxgate_kv WHEN NEW.key = 'batch:poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned key'); END",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();

    const N: usize = 64;
    for round in 0..5 {
        let results = race(N, |i| {
            let s = Arc::clone(&s);
            async move {
                let key = if i == N / 2 {
                    "batch:poison".to_owned()
                } else {
                    format!("batch:{round}:{i}")
                };
                let outcome = s.put_if_absent(&key, b"v", ms(60_000)).await;
                (key, outcome)
            }
        })
        .await;
        for (key, outcome) in results {
            if key == "batch:poison" {
                let err = outcome.unwrap_err();
                assert!(err.to_string().contains("poisoned key"), "{err}");
                assert_eq!(s.get(&key).await.unwrap(), None);
            } else {
                assert!(outcome.unwrap(), "{key} was not written");
                assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
            }
        }
    }
}

/// The WAL is checkpointed and restarted while writes keep coming, so it stays far smaller than
/// the data written through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let s = SqliteStore::open(&sqlite_url(&path)).await.unwrap();
    let value = vec![b'x'; 100];
    const WRITES: usize = 8000;
    for i in 0..WRITES {
        s.put(&format!("key:{i}"), &value, None).await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    // Without checkpoints every one of these commits would append at least one 4 KiB page
    // (32 MB in all).
    assert!(
        wal < 16 * 1024 * 1024,
        "WAL is {wal} bytes after {WRITES} writes"
    );
    println!("WAL is {wal} bytes after {WRITES} writes");
    drop(s);
}

/// Spawns `n` copies of this test binary running only `sqlite_process_child` in `mode` on `db`
/// (named as libtest knows it in the one test binary: by its module path),
/// waits for all of them and returns their stdout lines.
async fn run_children(n: usize, mode: &str, db: &Path) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for id in 0..n {
        children.push(
            tokio::process::Command::new(&exe)
                .args(["--exact", "store::sqlite_process_child", "--nocapture"])
                .env(CHILD_DB_ENV, db)
                .env(CHILD_ID_ENV, id.to_string())
                .env(CHILD_MODE_ENV, mode)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("WXGATE-CHILD-DONE"),
            "child did not run: {stdout}"
        );
        lines.extend(stdout.lines().map(str::to_owned));
    }
    lines
}

/// Several real OS processes (this test binary re-run as children) start at once on a new file
/// and race on the same keys: `put_if_absent` has exactly one winner per key overall, a
/// compare-and-swap loop built on `put_if_newer` loses no update, and each single-use code is
/// taken by exactly one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_several_processes_race() {
    const CHILDREN: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("multi-process.db");

    // Phase 1: leases and a counter, on a file none of the processes has seen yet.
    let lines = run_children(CHILDREN, "lease", &db).await;
    let mut wins: HashMap<String, Vec<String>> = HashMap::new();
    for line in &lines {
        if let Some(rest) = line.strip_prefix("WXGATE-WIN ") {
            let (key, owner) = rest.split_once(' ').unwrap();
            wins.entry(key.to_owned())
                .or_default()
                .push(owner.to_owned());
        }
    }
    assert_eq!(wins.len(), CHILD_KEYS, "{wins:?}");
    let s = SqliteStore::open(&sqlite_url(&db)).await.unwrap();
    for (key, owners) in &wins {
        assert_eq!(owners.len(), 1, "{key}: {owners:?}");
        assert_eq!(
            s.get(key).await.unwrap(),
            Some(owners[0].clone().into_bytes())
        );
    }
    assert_eq!(
        s.get("counter").await.unwrap().map(|v| v.len()),
        Some(CHILDREN * CHILD_INCREMENTS),
        "lost updates"
    );

    // Phase 2: single-use codes, each taken by exactly one process.
    for i in 0..CHILD_KEYS {
        s.put(
            &format!("code:{i}"),
            format!("openid-{i}").as_bytes(),
            ms(60_000),
        )
        .await
        .unwrap();
    }
    let lines = run_children(CHILDREN, "take", &db).await;
    let mut taken: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        if let Some(rest) = line.strip_prefix("WXGATE-TOOK ") {
            let (key, value) = rest.split_once(' ').unwrap();
            assert_eq!(value, format!("openid-{}", key.trim_start_matches("code:")));
            *taken.entry(key.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(taken.len(), CHILD_KEYS, "{taken:?}");
    assert!(taken.values().all(|n| *n == 1), "{taken:?}");
}

/// Child half of `sqlite_several_processes_race`; does nothing when run normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_process_child() {
    let Ok(db) = std::env::var(CHILD_DB_ENV) else {
        return;
    };
    let id = std::env::var(CHILD_ID_ENV).unwrap();
    let mode = std::env::var(CHILD_MODE_ENV).unwrap();
    let s = Arc::new(
        SqliteStore::open(&sqlite_url(Path::new(&db)))
            .await
            .unwrap(),
    );
    let owner = format!("process-{id}");
    match mode.as_str() {
        "lease" => {
            let results = race(CHILD_KEYS, |i| {
                let s = Arc::clone(&s);
                let owner = owner.clone();
                async move {
                    let key = format!("lease:{i}");
                    let won = s.put_if_absent(&key, owner.as_bytes(), None).await.unwrap();
                    (key, won)
                }
            })
            .await;
            for (key, won) in results {
                if won {
                    println!("WXGATE-WIN {key} {owner}");
                }
            }
            // A counter (its length) incremented by compare-and-swap on the version.
            for _ in 0..CHILD_INCREMENTS {
                loop {
                    let current = s.get("counter").await.unwrap().unwrap_or_default();
                    let mut next = current.clone();
                    next.push(b'x');
                    if s.put_if_newer("counter", &next, next.len() as i64, None)
                        .await
                        .unwrap()
                    {
                        break;
                    }
                }
            }
        }
        "take" => {
            let results = race(CHILD_KEYS, |i| {
                let s = Arc::clone(&s);
                async move {
                    let key = format!("code:{i}");
                    let value = s.take(&key).await.unwrap();
                    (key, value)
                }
            })
            .await;
            for (key, value) in results {
                if let Some(value) = value {
                    println!("WXGATE-TOOK {key} {}", String::from_utf8(value).unwrap());
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("WXGATE-CHILD-DONE");
}

// ---------------------------------------------------------------------------------------------
// redis

/// The Redis URL under test, or `None` (after saying so) when the variable is unset.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("skipping {test}: {REDIS_ENV} is not set (e.g. redis://127.0.0.1:6379/0)");
            None
        }
    }
}

async fn redis_store(url: &str, prefix: &str) -> Arc<dyn Store> {
    match RedisStore::connect(url, prefix).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("{REDIS_ENV} is set but Redis is not usable: {e}"),
    }
}

/// Deletes every key under `prefix` so test runs leave nothing behind.
pub(crate) async fn redis_cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

fn redis_prefix() -> String {
    format!("wxgate-test:{}:", random_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_conformance() {
    let Some(url) = redis_url("redis_conformance") else {
        return;
    };
    let prefix = redis_prefix();
    conformance(redis_store(&url, &prefix).await).await;

    // Every key really carries the prefix, and another prefix is another namespace.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}basic:a2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}ttl:forever"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists);
    let other_prefix = redis_prefix();
    let other = redis_store(&url, &other_prefix).await;
    assert_eq!(other.get("ttl:forever").await.unwrap(), None);
    // A short TTL is really set on the Redis key.
    other.put("pttl", b"v", ms(5000)).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{other_prefix}pttl"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 5000, "{pttl}");

    redis_cleanup(&url, &prefix).await;
    redis_cleanup(&url, &other_prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_connections() {
    let Some(url) = redis_url("redis_two_connections") else {
        return;
    };
    let prefix = redis_prefix();
    let a = redis_store(&url, &prefix).await;
    let b = redis_store(&url, &prefix).await;
    two_handles(a, b).await;
    redis_cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_via_connect() {
    let Some(url) = redis_url("redis_via_connect") else {
        return;
    };
    let prefix = redis_prefix();
    let s = store::connect(&url, &prefix).await.unwrap();
    s.ping().await.unwrap();
    s.put("k", b"v", None).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    redis_cleanup(&url, &prefix).await;
}

/// Needs no Redis: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_unreachable_fails_fast() {
    unreachable_fails_fast("redis://:hunter2@127.0.0.1:1/").await;
}

/// Connecting to `url` (nothing listens at 127.0.0.1:1; its password is `hunter2`) fails
/// within 6 s with a backend error that names the address and not the password.
pub(crate) async fn unreachable_fails_fast(url: &str) {
    let started = Instant::now();
    let result = store::connect(url, "p:").await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Backend(msg)) => {
            assert!(msg.contains("127.0.0.1:1"), "{msg}");
            assert!(!msg.contains("hunter2"), "password leaked: {msg}");
        }
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_scheme_is_invalid_url() {
    for url in [
        "mysql://localhost/db",
        "",
        "memory:",
        "redis:/x",
        "file:///tmp/x.db",
    ] {
        match store::connect(url, "").await {
            Err(StoreError::InvalidUrl(_)) => {}
            Err(other) => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: expected InvalidUrl, got a store"),
        }
    }
    // A redis url the client cannot parse.
    assert!(matches!(
        RedisStore::connect("redis://127.0.0.1:notaport/0", "").await,
        Err(StoreError::InvalidUrl(_))
    ));
}
