//! Conformance suite of the user-records database (`wxgate::users`), run against real databases:
//! every case runs on a fresh SQLite file, and on PostgreSQL in a fresh schema when
//! `WXGATE_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`). Without
//! the variable the PostgreSQL cases say why they skip and pass; with it set but the server
//! unreachable they fail. The same cases run on MongoDB, in a fresh database, when
//! `WXGATE_TEST_MONGODB_URL` is set (e.g. `mongodb://127.0.0.1:27018/wxgate_test`, a
//! MongoDB-wire server; `.ci/run` starts one), skipped or failing the same way.
//!
//! The cases are grouped by topic in the modules below ([`support`] holds the fixtures); the
//! `conformance!` list at the end turns each shared case into one test per backend
//! (`users::sqlite::<case>`, `users::postgres::<case>`, `users::mongo::<case>`).

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;

/// Runs `$case(&fixture)` and drops the fixture's database even when the case panics, then
/// re-raises the panic.
macro_rules! run_case {
    ($fixture:expr, $case:expr) => {{
        let fixture = $fixture;
        let outcome = AssertUnwindSafe($case(&fixture)).catch_unwind().await;
        fixture.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }};
}

/// Generates, for each case, one test on SQLite, one on PostgreSQL and one on MongoDB.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    run_case!(Fixture::sqlite(), $case);
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    let Some(fixture) = Fixture::postgres().await else { return };
                    run_case!(fixture, $case);
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use super::*;
                    let Some(fixture) = Fixture::mongo().await else { return };
                    run_case!(fixture, $case);
                }
            )*
        }
    };
}

mod backends;
mod concurrency;
mod listing;
mod records;
mod schema;
mod support;

use concurrency::*;
use listing::*;
use records::*;
use schema::*;
use support::Fixture;

conformance!(
    follow_then_unfollow,
    older_event_changes_nothing,
    same_event_twice_is_a_noop,
    subscribed_is_null_until_an_event,
    login_keeps_earlier_profile,
    unionid_set_later,
    follow_and_login_keep_each_other,
    get_unknown_is_none,
    list_pages_in_byte_order,
    list_limit_is_clamped,
    concurrent_follow_ends_with_newest_event,
    concurrent_logins_keep_latest_time,
    migrations_are_idempotent,
    concurrent_connects_migrate_once,
    ping_answers,
    one_unionid_across_accounts,
);
