//! `wxgate accounts …`: the admin API of a running gateway from a shell, for operators who
//! prefer one. It talks HTTP to the gateway (`--url`, `--admin-key` or `WXGATE_URL`,
//! `WXGATE_ADMIN_KEY`) rather than to the database, so a change goes through the same
//! validation, sealing and notification as any other, and needs no master key on this host.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct AccountsArgs {
    /// The running gateway.
    #[arg(long, env = "WXGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin key (`[admin] keys`).
    #[arg(long, env = "WXGATE_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Every account (config file and database), as JSON.
    List,
    /// One account, as JSON.
    Get { name: String },
    /// Create or replace a database account from a file holding its `[[accounts]]` keys (TOML,
    /// or JSON when the file name ends in `.json`); left-out secrets keep their stored values.
    Put {
        name: String,
        #[arg(long = "from")]
        from: PathBuf,
    },
    /// Delete a database account.
    Delete { name: String },
}

/// Runs one action and prints the gateway's answer.
pub async fn run(args: AccountsArgs) -> Result<(), String> {
    let base = format!("{}/admin/api/v1/accounts", args.url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let request = match &args.action {
        Action::List => http.get(&base),
        Action::Get { name } => http.get(format!("{base}/{name}")),
        Action::Delete { name } => http.delete(format!("{base}/{name}")),
        Action::Put { name, from } => {
            let body = read_account_file(from)?;
            http.put(format!("{base}/{name}")).json(&body)
        }
    };
    let response = request
        .bearer_auth(&args.admin_key)
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", args.url))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let pretty = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        if !pretty.is_empty() {
            println!("{pretty}");
        }
        Ok(())
    } else {
        Err(format!("{status}: {pretty}"))
    }
}

/// The account table of `path` as JSON (the admin API's body).
fn read_account_file(path: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
    } else {
        let table: toml::Value =
            toml::from_str(&text).map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
        serde_json::to_value(table).map_err(|e| e.to_string())
    }
}
