//! The `wxgate` command line: `serve`, `check`, `sandbox`, `mock-wechat`, `simulate`,
//! `accounts`, `db`.

mod accounts;
mod db;
mod sandbox;
mod simulate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

#[derive(Parser)]
#[command(
    name = "wxgate",
    version,
    about = "Self-hosted gateway for WeChat Official Accounts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (and the WXGATE__… environment) without serving.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Everything on one machine with no WeChat account: mock WeChat, demo account, embedded
    /// store, printed URLs, API key and example calls.
    Sandbox {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the mock WeChat API listens (port 0 = any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        mock_listen: SocketAddr,
    },
    /// Act as WeChat: sign (and encrypt) a push to a running wxgate and print the decoded reply.
    Simulate(simulate::SimulateArgs),
    /// Manage the accounts of a running gateway through its admin API: list, get, put, delete.
    Accounts(accounts::AccountsArgs),
    /// The user records of `database.url` as JSON lines: export, import (between SQLite,
    /// PostgreSQL and MongoDB).
    Db(db::DbArgs),
    /// Run only the mock WeChat API (for tests of other services).
    MockWechat {
        #[arg(long, default_value = "127.0.0.1:9900")]
        listen: SocketAddr,
        /// A demo account the mock accepts, as APPID:SECRET (repeatable).
        #[arg(long = "account")]
        accounts: Vec<String>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WXGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wxgate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Accounts(args) => accounts::run(args).await,
        Command::Db(args) => db::run(args).await,
        Command::Serve { config } => {
            let (settings, accounts) =
                Settings::load_validated(&config).map_err(|e| e.to_string())?;
            let app = Application::build_validated(settings, accounts)
                .await
                .map_err(|e| e.to_string())?;
            // One machine-readable line, so scripts and tests can use port 0.
            println!("wxgate listening on http://{}", app.local_addr());
            // The first signal starts the orderly stop (up to server.shutdown_grace_s); a
            // second one ends the process at once.
            let stop = tokio_util::sync::CancellationToken::new();
            let serving = app.run_until_stopped(stop.clone().cancelled_owned());
            tokio::pin!(serving);
            tokio::select! {
                result = &mut serving => return result.map_err(|e| e.to_string()),
                () = shutdown_signal() => stop.cancel(),
            }
            tokio::select! {
                result = &mut serving => result.map_err(|e| e.to_string()),
                () = shutdown_signal() => {
                    tracing::warn!("second stop signal: exiting without waiting for the work in progress");
                    Ok(())
                }
            }
        }
        Command::Check { config } => {
            let settings = Settings::load(&config).map_err(|e| e.to_string())?;
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let (accounts, platforms) = (settings.accounts.len(), settings.components.len());
            let platforms = match platforms {
                0 => String::new(),
                n => format!(", {n} third-party platform{}", plural(n)),
            };
            println!(
                "{}: ok ({accounts} account{}{platforms})",
                config.display(),
                plural(accounts),
            );
            Ok(())
        }
        Command::Sandbox {
            listen,
            mock_listen,
        } => sandbox::run(listen, mock_listen).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::MockWechat { listen, accounts } => {
            let mut config = wxgate_mock::MockConfig::default();
            for a in &accounts {
                let (appid, secret) = a
                    .split_once(':')
                    .ok_or_else(|| format!("--account {a:?}: expected APPID:SECRET"))?;
                config.accounts.push(wxgate_mock::MockAccount {
                    appid: appid.to_owned(),
                    secret: secret.to_owned(),
                });
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("mock WeChat API listening on http://{addr}");
            wxgate_mock::MockWechat::new(config)
                .serve(listener, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
    }
}
