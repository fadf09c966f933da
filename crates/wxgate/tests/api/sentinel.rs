//! Redis behind Sentinel (`storage.url = "redis+sentinel://…"`), against real processes: each
//! test that needs a deployment starts its own ([`cluster`]: a primary, a replica, three
//! sentinels) and kills its primary, or has the sentinels demote it, to see the store find the
//! new one. The URL checks and an unreachable deployment need no processes.
//!
//! Here: the store itself (the conformance suite behind Sentinel, with a password and a
//! database; a killed primary; a demoted one). In [`gateway`]: a gateway under load through a
//! failover.

mod cluster;
mod gateway;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;
use wxgate::store::{self, Notice, Store, StoreError};

use self::cluster::{free_port, role, Cluster, Options, MASTER, SENTINEL_ENV};
use crate::helpers::unique_prefix;

/// Longest wait for the sentinels to promote the replica (down after 1 s, then an election; a
/// loaded two-core machine).
const PROMOTION: Duration = Duration::from_secs(60);
/// A store call with no primary must fail well within this (below the 5 s answer timeout).
const FAIL_FAST: Duration = Duration::from_secs(4);

async fn sentinel_store(url: &str, prefix: &str) -> Arc<dyn Store> {
    match store::connect(url, prefix).await {
        Ok(s) => s,
        Err(e) => panic!("{SENTINEL_ENV} is set but the store behind Sentinel is not usable: {e}"),
    }
}

/// The value of `key` read directly on `node` (database `db`), version header included.
async fn raw_value(node: &cluster::Node, db: u32, key: &str) -> Option<Vec<u8>> {
    let mut conn = node.connect_db(db).await.expect("the node answers");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("GET answers")
}

/// Sends `notify(tag-n)` every 200 ms until the follower receives one of them; returns whether
/// a `Missed` came first. Re-sending covers the follower's pause before it resubscribes.
async fn follower_hears(s: &dyn Store, follower: &mut Receiver<Notice>, tag: &str) -> bool {
    let deadline = Instant::now() + PROMOTION;
    let mut missed = false;
    for n in 0.. {
        assert!(Instant::now() < deadline, "the follower never heard {tag}");
        let _ = s.notify(&format!("{tag}-{n}")).await;
        let wait = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                notice = follower.recv() => match notice {
                    Some(Notice::Missed) => missed = true,
                    Some(Notice::Message(m)) if m.starts_with(tag) => return missed,
                    Some(Notice::Message(_)) => {}
                    None => panic!("the follower's queue closed"),
                },
            }
        }
    }
    unreachable!()
}

#[tokio::test]
async fn sentinel_urls_of_a_bad_form_are_refused_without_their_password() {
    for url in [
        "redis+sentinel://:hunter2@127.0.0.1:26379",
        "redis+sentinel://:hunter2@127.0.0.1:26379,,127.0.0.1:26380/m",
        "redis+sentinel://:hunter2@127.0.0.1:70000/m",
        "redis+sentinel://:hunter2@127.0.0.1/m/db",
        "rediss+sentinel://:hunter2@127.0.0.1/m",
    ] {
        match store::connect(url, "p:").await {
            Err(StoreError::InvalidUrl(msg)) => {
                assert!(msg.contains("sentinel"), "{url}: {msg}");
                assert!(!msg.contains("hunter2"), "{url}: password leaked: {msg}");
            }
            Err(other) => panic!("{url}: expected InvalidUrl, got {other:?}"),
            Ok(_) => panic!("{url}: expected InvalidUrl, got a store"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_sentinel_reachable_the_store_fails_fast() {
    let (a, b) = (free_port(), free_port());
    let url = format!("redis+sentinel://:hunter2@127.0.0.1:{a},127.0.0.1:{b}/{MASTER}");
    let started = Instant::now();
    let result = store::connect(&url, "p:").await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Backend(msg)) => {
            for port in [a, b] {
                assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            }
            assert!(msg.contains(MASTER), "{msg}");
            assert!(!msg.contains("hunter2"), "password leaked: {msg}");
        }
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("found a primary where nothing listens"),
    }
    assert!(elapsed < FAIL_FAST, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_conformance_suite_passes_behind_sentinel_with_a_password_and_a_database() {
    let test = "the_store_conformance_suite_passes_behind_sentinel";
    let Some(cluster) = Cluster::start_with(
        test,
        Options {
            password: Some("s3cret-pw"),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    // Without the data nodes' password the primary is found but refuses: a clear error.
    match store::connect(&cluster.url_with("", 3), "p:").await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("cannot be used"), "{msg}"),
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("the data nodes require a password"),
    }
    let url = cluster.url_with(":s3cret-pw@", 3);
    let prefix = unique_prefix();
    crate::store::conformance(sentinel_store(&url, &prefix).await).await;
    let other = unique_prefix();
    let (a, b) = (
        sentinel_store(&url, &other).await,
        sentinel_store(&url, &other).await,
    );
    crate::store::two_handles(Arc::clone(&a), Arc::clone(&b)).await;
    crate::store_notices::notices_and_get_many(a, b).await;
    // Database 3 of the primary holds the keys.
    let stored = raw_value(&cluster.primary, 3, &format!("{prefix}ttl:forever")).await;
    assert!(
        stored.is_some(),
        "the key is not in database 3 of the primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_primary_is_replaced_and_the_store_and_its_followers_move_to_the_new_one() {
    let test = "a_killed_primary_is_replaced_and_the_store_moves";
    let Some(mut cluster) = Cluster::start(test).await else {
        return;
    };
    let prefix = unique_prefix();
    let s = sentinel_store(&cluster.url(), &prefix).await;
    s.put("before", b"written before", None).await.unwrap();
    // Replication is asynchronous: wait until the replica has it, so it must survive.
    let key = format!("{prefix}before");
    cluster
        .replica
        .wait_for("replicating the key", PROMOTION, |mut c| {
            let key = key.clone();
            async move {
                let v: Option<Vec<u8>> =
                    redis::cmd("GET").arg(key).query_async(&mut c).await.ok()?;
                v.map(drop)
            }
        })
        .await;
    let mut follower = s.subscribe().await.unwrap();
    assert!(!follower_hears(&*s, &mut follower, "before").await);

    cluster.primary.kill();
    // Until the sentinels promote the replica, calls fail, each of them quickly.
    let outage = Instant::now();
    let mut failures = 0;
    let value = loop {
        let started = Instant::now();
        match s.get("before").await {
            Ok(value) => break value,
            Err(StoreError::Backend(_)) => failures += 1,
            Err(other) => panic!("expected a backend error, got {other:?}"),
        }
        let took = started.elapsed();
        assert!(took < FAIL_FAST, "a call without a primary took {took:?}");
        assert!(
            outage.elapsed() < PROMOTION,
            "no primary within {PROMOTION:?}; sentinel-0's log:\n{}",
            cluster.sentinels[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failures > 0, "a call succeeded with the primary dead");
    assert_eq!(value.as_deref(), Some(&b"written before"[..]));
    cluster.wait_for_promotion(PROMOTION).await;

    // Every primitive works on the new primary (the scripts are loaded there anew).
    s.put("after", b"written after", None).await.unwrap();
    let stored = raw_value(&cluster.replica, 0, &format!("{prefix}after")).await;
    assert!(
        stored.is_some_and(|v| v.ends_with(b"written after")),
        "the write is not on the new primary"
    );
    assert!(s.put_if_newer("v", b"1", 1, None).await.unwrap());
    assert!(!s.put_if_newer("v", b"0", 0, None).await.unwrap());
    assert!(s
        .put_if_absent("lease", b"me", Some(Duration::from_secs(30)))
        .await
        .unwrap());
    assert!(s
        .extend_if_equals("lease", b"me", Duration::from_secs(30))
        .await
        .unwrap());
    assert!(s.delete_if_equals("lease", b"me").await.unwrap());
    assert_eq!(s.take("v").await.unwrap().as_deref(), Some(&b"1"[..]));
    // The follower resubscribed on the new primary, saying it may have missed notices.
    assert!(follower_hears(&*s, &mut follower, "after").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_primary_still_running_is_left_for_the_new_one() {
    let test = "a_demoted_primary_still_running_is_left_for_the_new_one";
    let Some(cluster) = Cluster::start(test).await else {
        return;
    };
    let prefix = unique_prefix();
    let s = sentinel_store(&cluster.url(), &prefix).await;
    s.put("before", b"x", None).await.unwrap();
    let mut follower = s.subscribe().await.unwrap();
    assert!(!follower_hears(&*s, &mut follower, "before").await);

    let mut sentinel = cluster.sentinels[0].connect().await.unwrap();
    redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query_async::<()>(&mut sentinel)
        .await
        .unwrap();
    cluster.wait_for_promotion(PROMOTION).await;
    cluster
        .primary
        .wait_for("being demoted", PROMOTION, |mut c| async move {
            role(&mut c).await.filter(|r| r == "slave").map(drop)
        })
        .await;

    // The old primary still runs, as a replica. The store left it when a sentinel announced
    // the new primary (the sentinels cut the old one's clients only later, when they demote
    // it): the first write after the failover succeeds, on the new primary.
    s.put("after", b"written after", None).await.unwrap();
    let stored = raw_value(&cluster.replica, 0, &format!("{prefix}after")).await;
    assert!(
        stored.is_some_and(|v| v.ends_with(b"written after")),
        "the write is not on the new primary"
    );
    assert!(follower_hears(&*s, &mut follower, "after").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_restarted_in_place_is_reconnected_without_a_failover() {
    let test = "a_primary_restarted_in_place_is_reconnected_without_a_failover";
    // The sentinels wait a minute before a failover: this one is about the store alone.
    let options = Options {
        down_after_ms: 60_000,
        ..Options::default()
    };
    let Some(mut cluster) = Cluster::start_with(test, options).await else {
        return;
    };
    let prefix = unique_prefix();
    let s = sentinel_store(&cluster.url(), &prefix).await;
    s.put("before", b"x", None).await.unwrap();
    let mut follower = s.subscribe().await.unwrap();
    assert!(!follower_hears(&*s, &mut follower, "before").await);

    // The connection to the old process is dead: the call that finds out fails, and so does
    // every call (quickly) until the process is back.
    cluster.primary.kill();
    for _ in 0..3 {
        let started = Instant::now();
        assert!(matches!(s.get("before").await, Err(StoreError::Backend(_))));
        let took = started.elapsed();
        assert!(took < FAIL_FAST, "a call without a primary took {took:?}");
    }
    cluster.primary.restart();
    let deadline = Instant::now() + PROMOTION;
    while let Err(e) = s.put("after", b"written after", None).await {
        assert!(Instant::now() < deadline, "never reconnected: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = raw_value(&cluster.primary, 0, &format!("{prefix}after")).await;
    assert!(stored.is_some_and(|v| v.ends_with(b"written after")));
    assert!(follower_hears(&*s, &mut follower, "after").await);
}
