//! `wxgate db export` / `wxgate db import` as a user runs them: the real binary moves user
//! records from a SQLite file into another SQLite file and, when their variables are set, into
//! MongoDB (`WXGATE_TEST_MONGODB_URL`) and PostgreSQL (`WXGATE_TEST_POSTGRES_URL`), record for
//! record, times included; running the import again changes nothing.

use std::sync::Arc;

use wxgate::users::{connect, LoginProfile, UserDb};

use crate::helpers::{in_fresh_mongo_db, in_fresh_pg_schema};

/// Runs `wxgate db ARGS` against `database_url` and returns its stderr.
async fn wxgate_db(database_url: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .arg("db")
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("WXGATE__DATABASE__URL")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "wxgate db {args:?}: {stderr}");
    stderr
}

/// A source database with users of two accounts, and the file they were exported to.
async fn exported(dir: &tempfile::TempDir) -> (Arc<dyn UserDb>, std::path::PathBuf) {
    let url = format!("sqlite://{}", dir.path().join("source.db").display());
    let source = connect(&url).await.unwrap();
    let main = source.for_account("main");
    main.record_follow("o-follow", true, Some("qrscene_7"), 1_700_000_100)
        .await
        .unwrap();
    main.record_follow("o-follow", false, None, 1_700_000_200)
        .await
        .unwrap();
    let profile = LoginProfile {
        openid: "o-login".into(),
        unionid: Some("u-1".into()),
        nickname: Some("测试".into()),
        headimgurl: None,
    };
    main.record_login(&profile, 1_700_000_300).await.unwrap();
    source
        .for_account("shop")
        .record_follow("o-shop", true, None, 1_700_000_400)
        .await
        .unwrap();
    let file = dir.path().join("users.jsonl");
    let to = file.to_str().unwrap();
    let said = wxgate_db(
        &url,
        &[
            "export",
            "--account",
            "main",
            "--account",
            "shop",
            "--to",
            to,
        ],
    )
    .await;
    assert!(said.contains("exported 2 users of main"), "{said}");
    assert!(said.contains("exported 1 users of shop"), "{said}");
    (source, file)
}

async fn moves_users_into(target_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let (source, file) = exported(&dir).await;
    let file = file.to_str().unwrap();
    let said = wxgate_db(&target_url, &["import", "--from", file]).await;
    assert!(said.contains("imported 3 users"), "{said}");
    let target = connect(&target_url).await.unwrap();
    for account in ["main", "shop"] {
        assert_eq!(
            target.for_account(account).list(None, 100).await.unwrap(),
            source.for_account(account).list(None, 100).await.unwrap(),
            "{account}"
        );
    }
    // Again: nothing is overwritten.
    let said = wxgate_db(&target_url, &["import", "--from", file]).await;
    assert!(said.contains("imported 0 users (3 already known"), "{said}");
    // The imported follow history still orders events: an older one changes nothing.
    let main = target.for_account("main");
    assert!(!main
        .record_follow("o-follow", true, None, 1_700_000_150)
        .await
        .unwrap());
    assert!(main
        .record_follow("o-follow", true, None, 1_700_000_250)
        .await
        .unwrap());
}

#[tokio::test]
async fn db_export_then_import_moves_users_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    moves_users_into(format!(
        "sqlite://{}",
        dir.path().join("target.db").display()
    ))
    .await;
}

#[tokio::test]
async fn db_export_then_import_moves_users_to_mongodb() {
    in_fresh_mongo_db("db_cli_mongo", moves_users_into).await;
}

#[tokio::test]
async fn db_export_then_import_moves_users_to_postgresql() {
    in_fresh_pg_schema("db_cli_pg", moves_users_into).await;
}
