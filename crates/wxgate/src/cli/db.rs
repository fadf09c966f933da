//! `wxgate db export` / `wxgate db import`: the user records of `database.url` as JSON lines,
//! to move them between SQLite, PostgreSQL and MongoDB (or to back them up). Export pages
//! through the users API's own query (byte order of openid); import writes each record as it
//! was, times included, and leaves a user the target already knows as it is, so an import can
//! be run again after an interruption. The registry (accounts, keys, authorizers) is not part
//! of it: it is re-created through the admin API, where secrets are sealed with the target's
//! master key.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use wxgate_core::users::{self, UserRecord, MAX_LIST_LIMIT};

#[derive(Args)]
pub struct DbArgs {
    /// The database (`database.url`: `sqlite://…`, `postgres://…`, `mongodb://…`).
    #[arg(long, env = "WXGATE__DATABASE__URL", hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Write the users of the given accounts to stdout (or `--to FILE`), one JSON object per
    /// line: `{"account": "…", "user": {…the users API's record…}}`.
    Export {
        /// An account whose users to export (repeatable).
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Read such lines from stdin (or `--from FILE`) and write each user that the account does
    /// not have yet.
    Import {
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

/// One line of an export.
#[derive(Serialize, Deserialize)]
struct Line {
    account: String,
    user: UserRecord,
}

/// Runs one action; counts go to stderr.
pub async fn run(args: DbArgs) -> Result<(), String> {
    let db = users::connect(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    match args.action {
        Action::Export { accounts, to } => {
            let mut out: Box<dyn std::io::Write> = match &to {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            for account in accounts {
                let users = db.for_account(&account);
                let (mut after, mut count) = (None::<String>, 0_u64);
                loop {
                    let page = users
                        .list(after.as_deref(), MAX_LIST_LIMIT)
                        .await
                        .map_err(|e| e.to_string())?;
                    for user in &page {
                        let line = serde_json::to_string(&Line {
                            account: account.clone(),
                            user: user.clone(),
                        })
                        .map_err(|e| e.to_string())?;
                        writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))?;
                    }
                    count += page.len() as u64;
                    match page.last() {
                        Some(last) => after = Some(last.openid.clone()),
                        None => break,
                    }
                }
                eprintln!("wxgate: exported {count} users of {account}");
            }
            out.flush().map_err(|e| format!("cannot write: {e}"))
        }
        Action::Import { from } => {
            let input: Box<dyn std::io::BufRead> = match &from {
                Some(path) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                )),
                None => Box::new(std::io::BufReader::new(std::io::stdin().lock())),
            };
            let (mut written, mut kept) = (0_u64, 0_u64);
            for (number, line) in input.lines().enumerate() {
                let line = line.map_err(|e| format!("cannot read line {}: {e}", number + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                let Line { account, user } = serde_json::from_str(&line)
                    .map_err(|e| format!("line {} is not an exported user: {e}", number + 1))?;
                if db
                    .for_account(&account)
                    .restore(&user)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    written += 1;
                } else {
                    kept += 1;
                }
            }
            eprintln!("wxgate: imported {written} users ({kept} already known, left as they were)");
            Ok(())
        }
    }
}
