//! A gateway on `redis+sentinel://` through a failover, under load: it keeps answering every
//! token request from its cache while no primary is reachable, writes to the promoted replica
//! afterwards without a restart, and the failover costs at most one extra WeChat fetch per
//! credential.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wxgate_mock::MockAccount;

use super::cluster::Cluster;
use super::{raw_value, PROMOTION};
use crate::helpers::*;

/// Accounts served through the failover; one more is first asked for after it.
const ACCOUNTS: usize = 20;
const ACCOUNT_SECRET: &str = "sentinel-account-secret-0123456";
/// Tasks asking for tokens all along.
const LOAD_TASKS: usize = 4;

const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const AFTER: u8 = 2;

fn appid(i: usize) -> String {
    format!("wx{:016x}", 0x5e47_0000 + i)
}

/// What the load saw: answers per phase, and every answer that was not the expected token.
#[derive(Default)]
struct Load {
    answered: [AtomicUsize; 3],
    wrong: Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_serves_every_token_through_a_failover_and_then_writes_to_the_new_primary() {
    let test = "a_gateway_serves_every_token_through_a_failover";
    let Some(mut cluster) = Cluster::start(test).await else {
        return;
    };
    let (mock, addr) = start_mock_with(|c| {
        for i in 0..=ACCOUNTS {
            c.accounts.push(MockAccount::new(appid(i), ACCOUNT_SECRET));
        }
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    config.storage_url = cluster.url();
    config.key_prefix = unique_prefix();
    // Classic tokens: every fetch issues a token of its own and the previous ones stay valid
    // for 5 minutes, so the tokens WeChat accepts for an appid count its fetches.
    config.tail = (0..=ACCOUNTS)
        .map(|i| {
            format!(
                "[[accounts]]\nname = \"a{i}\"\nappid = \"{}\"\nsecret = \"{ACCOUNT_SECRET}\"\n\
                 token_api = \"classic\"\n",
                appid(i)
            )
        })
        .collect();
    let a = spawn_app(&config).await;
    let mut tokens = Vec::new();
    for i in 0..ACCOUNTS {
        let (status, body) = a.get_json(&format!("a{i}/access_token")).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let tokens = Arc::new(tokens);

    // Load: every account's token, over and over, until told to stop.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|t| {
            let (http, base) = (a.http.clone(), a.api(""));
            let (phase, stop, load, tokens) = (
                Arc::clone(&phase),
                Arc::clone(&stop),
                Arc::clone(&load),
                Arc::clone(&tokens),
            );
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let account = i % ACCOUNTS;
                    i += 1;
                    let now = phase.load(Ordering::Relaxed);
                    let url = format!("{base}a{account}/access_token");
                    let (status, body) = get_json(&http, &url).await;
                    if status != 200 || body["access_token"] != tokens[account].as_str() {
                        let mut wrong = load.wrong.lock().unwrap();
                        wrong.push(format!("phase {now}, a{account}: {status} {body}"));
                    }
                    load.answered[usize::from(now)].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let answered = |p: u8| load.answered[usize::from(p)].load(Ordering::Relaxed);
    wait_until("load before the failover", || answered(BEFORE) >= 100).await;

    // SIGKILL the primary; until the replica is promoted the gateway has no store. Its
    // readiness says so, while its tokens keep being served.
    cluster.primary.kill();
    phase.store(OUTAGE, Ordering::Relaxed);
    let readyz = format!("{}/readyz", a.base);
    let deadline = Instant::now() + PROMOTION;
    loop {
        let status = a.http.get(&readyz).send().await.unwrap().status();
        if status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never noticed the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_for_promotion(PROMOTION).await;
    phase.store(AFTER, Ordering::Relaxed);
    wait_until("load after the failover", || answered(AFTER) >= 100).await;

    // A credential never fetched before is fetched and written to the new primary, without a
    // restart (the gateway may need a moment to find the new primary).
    let late = format!("a{ACCOUNTS}");
    let deadline = Instant::now() + PROMOTION;
    let late_token = loop {
        let (status, body) = a.get_json(&format!("{late}/access_token")).await;
        if status == 200 {
            break body["access_token"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no token for {late} after the failover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let key = format!("{}cred:{late}:access_token", config.key_prefix);
    let stored = raw_value(&cluster.replica, 0, &key).await;
    let stored = String::from_utf8_lossy(stored.as_deref().unwrap_or_default()).into_owned();
    assert!(
        stored.contains(&late_token),
        "the new primary does not hold {late}'s token: {stored:?}"
    );
    let status = a.http.get(&readyz).send().await.unwrap().status();
    assert_eq!(status, 200, "ready again on the new primary");

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let wrong = load.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "{} bad answers: {wrong:#?}", wrong.len());
    assert!(
        answered(OUTAGE) > 0,
        "no request was answered during the outage"
    );

    // A second instance, started after the failover with nothing cached, serves every account
    // from the new primary — or fetches again what replication had not carried over: at most
    // one extra fetch per credential.
    let b = spawn_app(&config).await;
    for i in 0..ACCOUNTS {
        let (status, body) = b.get_json(&format!("a{i}/access_token")).await;
        assert_eq!(status, 200, "{body}");
        let accepted = mock.current_access_tokens(&appid(i));
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(accepted.contains(&token), "a{i}: WeChat does not accept it");
        assert!(
            accepted.len() <= 2,
            "a{i}: {} fetches in all",
            accepted.len()
        );
    }
    assert_eq!(mock.current_access_tokens(&appid(ACCOUNTS)).len(), 1);
    b.stop().await;
    a.stop().await;
}

/// Polls `done` every 20 ms; panics after [`PROMOTION`].
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PROMOTION;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
