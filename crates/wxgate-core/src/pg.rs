//! Opening PostgreSQL, the one way for both users of it: the store (`storage.url`,
//! [`crate::store`]) and the user database (`database.url`, [`crate::users`]).
//!
//! Why one place: both must read the URL the same way (every libpq parameter sqlx knows, e.g.
//! `?sslmode=verify-full&sslrootcert=/path/ca.pem` for TLS through rustls, or
//! `?options=-csearch_path%3Dmyschema` for another schema), keep SQL statements out of the logs,
//! bound the time a connection may take so an unreachable server is reported within seconds, and
//! never show the URL's password — in any message, whatever the driver quotes.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::scrub::{redact_url, scrub};

/// Bound on establishing one connection (TCP, TLS, authentication), at start and in the pools.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connect options of `postgres://…` / `postgresql://…`, with statement logging off (sqlx
/// would log every query at info level). The error describes what is wrong with the URL, with
/// its password and query values hidden.
pub(crate) fn options(url: &str) -> Result<PgConnectOptions, String> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| scrub(format!("{:?}: {e}", redact_url(url)), url))?;
    Ok(options.disable_statement_logging())
}

/// One connection, established within [`CONNECT_TIMEOUT`]: the check at start that the server
/// is there and lets us in. The error gives the server's own reason (refused, unknown host, bad
/// password…) with the URL's secrets removed.
pub(crate) async fn connect_once(
    options: &PgConnectOptions,
    url: &str,
) -> Result<PgConnection, String> {
    let shown = redact_url(url);
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(scrub(format!("postgres: connecting to {shown}: {e}"), url)),
        Err(_) => Err(format!(
            "postgres: connecting to {shown}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Closes a connection used only at start; a failure to say goodbye is not worth more than a
/// debug line.
pub(crate) async fn close(conn: PgConnection, what: &str) {
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "{what}: closing the setup connection failed");
    }
}

/// A pool of at most `max_connections`, opened lazily (the server was checked by
/// [`connect_once`]); a connection that cannot be had within [`CONNECT_TIMEOUT`] fails the call
/// instead of hanging it.
pub(crate) fn pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options)
}
