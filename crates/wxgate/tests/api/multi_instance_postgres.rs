//! Several `wxgate serve` processes whose `storage.url` is one real PostgreSQL database
//! (`WXGATE_TEST_POSTGRES_URL`, a fresh schema per test): one token fetch for all of them, a
//! lease renewed by its holder while a refresh outlasts its TTL, and a forced refresh announced
//! to the other instance by a store notice. Without the variable the tests
//! say so and pass.

use crate::credential_sync::a_forced_refresh_reaches_the_other_instance;
use crate::helpers::*;
use crate::multi_instance::{
    a_refresh_that_outlives_one_lease_ttl_stays_the_only_one, one_fetch_for_concurrent_requests,
};

#[tokio::test]
async fn two_processes_on_postgres_make_one_fetch_for_200_concurrent_requests() {
    in_fresh_pg_schema("pg_two_processes", |url| async move {
        let (mock, config, tokens, gateways) = one_fetch_for_concurrent_requests(url, 2, 200).await;
        let http = http_client();
        // A third instance started later finds the token in the database.
        let late = GatewayProcess::start(&config).await;
        let (status, body) = get_json(&http, &late.api("main/access_token")).await;
        assert_eq!(status, 200, "{body}");
        assert!(tokens.contains(body["access_token"].as_str().unwrap()));
        assert_eq!(mock.calls("cgi-bin/stable_token"), 1);
        for g in gateways.into_iter().chain([late]) {
            let _ = g.stop_and_collect_log().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_forced_refresh_longer_than_the_lease_ttl_is_one_fetch_on_postgres() {
    in_fresh_pg_schema("pg_long_refresh", |url| {
        a_refresh_that_outlives_one_lease_ttl_stays_the_only_one(url)
    })
    .await;
}

/// Store notices on PostgreSQL: a forced refresh on one gateway is served by the other at once.
#[tokio::test]
async fn a_forced_refresh_reaches_the_other_instance_within_2s_on_postgres() {
    in_fresh_pg_schema("pg_forced_refresh_notice", |url| {
        a_forced_refresh_reaches_the_other_instance(url, unique_prefix())
    })
    .await;
}
