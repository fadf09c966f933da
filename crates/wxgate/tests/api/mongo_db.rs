//! Fresh databases on the tests' MongoDB-wire server (`WXGATE_TEST_MONGODB_URL`), beside
//! `helpers::in_fresh_pg_schema`: every MongoDB case gets a database of its own, dropped after
//! it, so reruns and parallel tests never meet.

use std::time::Duration;

/// The variable naming the MongoDB-wire server of the tests (a URL with a database name, which
/// the tests replace with a fresh one each).
pub const MONGODB_VAR: &str = "WXGATE_TEST_MONGODB_URL";

/// A client of the tests' MongoDB server that gives up within seconds.
pub async fn mongo_client(url: &str) -> mongodb::Client {
    let mut options = mongodb::options::ClientOptions::parse(url).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(5));
    mongodb::Client::with_options(options).unwrap()
}

/// A fresh database on the tests' MongoDB server: its `mongodb://` URL and its name. `None`
/// (after printing that `test` is skipped) without `WXGATE_TEST_MONGODB_URL`; panics when it is
/// set but the server does not answer.
pub async fn fresh_mongo_db(test: &str) -> Option<(String, String)> {
    let Ok(base) = std::env::var(MONGODB_VAR) else {
        eprintln!("skipping {test}: {MONGODB_VAR} is not set");
        return None;
    };
    let name = format!("wxgate_{:016x}", rand::random::<u64>());
    let mut url =
        url::Url::parse(&base).unwrap_or_else(|e| panic!("{MONGODB_VAR} is not a URL: {e}"));
    url.set_path(&format!("/{name}"));
    mongo_client(url.as_str())
        .await
        .database(&name)
        .run_command(mongodb::bson::doc! { "ping": 1 })
        .await
        .unwrap_or_else(|e| panic!("{MONGODB_VAR} is set but unreachable: {e}"));
    Some((url.to_string(), name))
}

/// Drops a database [`fresh_mongo_db`] made.
pub async fn drop_mongo_db(url: &str, name: &str) {
    mongo_client(url).await.database(name).drop().await.unwrap();
}

/// Runs `body` with the URL of a fresh MongoDB database, dropped afterwards even when `body`
/// panics; skips or fails like [`fresh_mongo_db`].
pub async fn in_fresh_mongo_db<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some((url, name)) = fresh_mongo_db(test).await else {
        return;
    };
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(url.clone()))).await;
    drop_mongo_db(&url, &name).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
