//! Redis behind Sentinel (`redis+sentinel://…`, see [`url`]): the connection [`super::RedisStore`]
//! sends its commands through, which always leads to the current primary and finds the new one
//! after a failover, without a restart. Every store primitive is the same as on plain Redis.
//!
//! Why not redis-rs's own `sentinel` feature: its lookups run without connect or answer timeouts
//! (a sentinel host that drops packets would stall every caller for the system's TCP timeout) and
//! nothing in it follows a failover — a connection made from its client keeps reconnecting to
//! the old address. What is needed is small and lives here:
//!
//! - **finding the primary**: the sentinels are asked in turn, `SENTINEL get-master-addr-by-name`,
//!   each within [`SENTINEL_TIMEOUT`]; the address one names is taken only when the node there
//!   answers `ROLE` with `master` (a sentinel that has not yet seen a failover names a demoted
//!   node), and that connection then carries every command;
//! - **noticing a failover**: a command failing on the connection (lost, timed out) drops it —
//!   the command is not repeated, it may have run; a command answered `READONLY` or
//!   `MASTERDOWN` (the node was demoted but is still up) drops it too and is sent once more to
//!   the primary found anew, since it did not run. A task also follows one sentinel's
//!   `+switch-master` announcements (the next sentinel when that one is lost) and drops the
//!   connection as soon as a new primary is announced — before any command fails, and even when
//!   the old primary, cut off from the sentinels, would still take writes;
//! - **failing fast**: while no primary can be found, calls fail with [`StoreError::Backend`]
//!   (the credential manager keeps serving the credentials it holds); one caller looks the
//!   primary up while the others wait for its outcome, and after a failed lookup calls are
//!   answered at once for [`RETRY_AFTER`] — or until a sentinel announces a new primary.
//!
//! The password of the URL goes to the data nodes only (the sentinels are asked without one)
//! and is never part of a message: errors name addresses and Redis's own error texts.

mod url;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::watch;
use tokio::time::Instant;

use self::url::show;
pub(crate) use self::url::{parse, SentinelUrl, SCHEME, TLS_SCHEME};
use super::StoreError;
use crate::domain::lock;

/// Connecting to a sentinel, and each of its answers.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);
/// Connecting to a data node (including `AUTH` and `SELECT`).
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command to the primary that gets no answer for this long fails (and drops the connection).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole lookup, every sentinel asked included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed lookup, calls fail at once for this long before the sentinels are asked again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How often the followed sentinel is pinged, so a silently lost one is replaced.
const WATCH_PING_EVERY: Duration = Duration::from_secs(5);
/// Pause before the next sentinel is followed when one is lost.
const WATCH_PAUSE: Duration = Duration::from_secs(1);
/// The sentinels' announcement of a new primary.
const SWITCH_CHANNEL: &str = "+switch-master";

/// A node's address: host and port.
pub(crate) type Addr = (String, u16);

/// A connection to whichever node is the primary; cheap to clone (all clones share it).
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    url: SentinelUrl,
    state: Mutex<State>,
    /// Held by the one caller looking the primary up.
    lookup: tokio::sync::Mutex<()>,
    /// Where the primary is: as last found, or as announced by a sentinel.
    primary_addr: watch::Sender<Option<Addr>>,
    /// The task following the sentinels' announcements, ended with the store.
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Default)]
struct State {
    current: Option<Primary>,
    /// Numbers the connections, so a failure on an old one never drops a newer one.
    next_id: u64,
    /// The last lookup's failure and when it happened, while it is answered to callers.
    failure: Option<(Instant, String)>,
    /// Whether the current outage has been logged already.
    outage_logged: bool,
}

#[derive(Clone)]
struct Primary {
    id: u64,
    addr: Addr,
    conn: MultiplexedConnection,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(watcher) = lock(&self.watcher).take() {
            watcher.abort();
        }
    }
}

impl SentinelConnection {
    /// Finds the primary through the sentinels of `url` (failing within [`LOOKUP_TIMEOUT`] when
    /// none can be found) and starts following the sentinels' announcements.
    pub(crate) async fn connect(url: SentinelUrl) -> Result<Self, StoreError> {
        let (primary_addr, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            url,
            state: Mutex::new(State::default()),
            lookup: tokio::sync::Mutex::new(()),
            primary_addr,
            watcher: Mutex::new(None),
        });
        let this = SentinelConnection { shared };
        this.primary()
            .await
            .map_err(|e| StoreError::Backend(format!("redis: {e}")))?;
        let task = tokio::spawn(watch_sentinels(
            Arc::downgrade(&this.shared),
            this.shared.url.clone(),
        ));
        *lock(&this.shared.watcher) = Some(task.abort_handle());
        Ok(this)
    }

    /// The primary's connection: the current one, or a new one found through the sentinels.
    async fn primary(&self) -> RedisResult<Primary> {
        if let Some(primary) = self.shared.current()? {
            return Ok(primary);
        }
        let _one_lookup = self.shared.lookup.lock().await;
        // Whoever held the lock before may have just found it, or just failed.
        if let Some(primary) = self.shared.current()? {
            return Ok(primary);
        }
        let found = match tokio::time::timeout(LOOKUP_TIMEOUT, look_up(&self.shared.url)).await {
            Ok(found) => found,
            Err(_) => Err(format!(
                "the sentinels ({}) gave no usable primary within {LOOKUP_TIMEOUT:?}",
                self.shared.url.sentinel_list()
            )),
        };
        match found {
            Ok((addr, conn)) => Ok(self.shared.found(addr, conn)),
            Err(why) => Err(self.shared.failed(why)),
        }
    }

    /// A new pub/sub connection to the current primary, and that primary's address (compare
    /// it with [`Self::primary_moves`] to know when to move to another node).
    pub(crate) async fn pubsub(&self) -> RedisResult<(PubSub, Addr)> {
        let primary = self.primary().await?;
        let client = Client::open(node_info(&self.shared.url, &primary.addr))?;
        let pubsub = tokio::time::timeout(NODE_CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| not_connected(format!("{} did not answer", show_addr(&primary.addr))))??;
        Ok((pubsub, primary.addr))
    }

    /// Where the primary is: changes whenever a lookup finds another node, or a sentinel
    /// announces one.
    pub(crate) fn primary_moves(&self) -> watch::Receiver<Option<Addr>> {
        self.shared.primary_addr.subscribe()
    }

    /// Runs `request` on the primary; see the module documentation for what failures do.
    async fn run<'a, T>(
        &'a self,
        request: impl Fn(MultiplexedConnection) -> RedisFuture<'a, T>,
    ) -> RedisResult<T> {
        let primary = self.primary().await?;
        match request(primary.conn.clone()).await {
            Err(e) if demoted(&e) => {
                self.shared.lost(primary.id, "it answers as a replica");
                let again = self.primary().await?;
                let answer = request(again.conn.clone()).await;
                if let Err(e) = &answer {
                    self.shared.after_error(again.id, e);
                }
                answer
            }
            answer => {
                if let Err(e) = &answer {
                    self.shared.after_error(primary.id, e);
                }
                answer
            }
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this: &'a SentinelConnection = self;
        Box::pin(
            this.run(move |mut conn| Box::pin(async move { conn.req_packed_command(cmd).await })),
        )
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this: &'a SentinelConnection = self;
        Box::pin(this.run(move |mut conn| {
            Box::pin(async move { conn.req_packed_commands(cmd, offset, count).await })
        }))
    }

    fn get_db(&self) -> i64 {
        self.shared.url.db
    }
}

impl Shared {
    /// The current primary; `Err` while a recent lookup's failure stands; `Ok(None)` when the
    /// sentinels must be asked.
    fn current(&self) -> RedisResult<Option<Primary>> {
        let state = lock(&self.state);
        if let Some(primary) = &state.current {
            return Ok(Some(primary.clone()));
        }
        match &state.failure {
            Some((at, why)) if at.elapsed() < RETRY_AFTER => Err(not_connected(why.clone())),
            _ => Ok(None),
        }
    }

    fn found(&self, addr: Addr, conn: MultiplexedConnection) -> Primary {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let primary = Primary {
            id: state.next_id,
            addr: addr.clone(),
            conn,
        };
        state.current = Some(primary.clone());
        state.failure = None;
        state.outage_logged = false;
        drop(state);
        let moved = self.primary_addr.send_if_modified(|known| {
            let moved = known.as_ref() != Some(&addr);
            *known = Some(addr.clone());
            moved
        });
        if moved {
            tracing::info!(
                master = %self.url.master,
                primary = %show_addr(&addr),
                "redis+sentinel: using this primary"
            );
        }
        primary
    }

    fn failed(&self, why: String) -> RedisError {
        let mut state = lock(&self.state);
        state.failure = Some((Instant::now(), why.clone()));
        if !state.outage_logged {
            state.outage_logged = true;
            tracing::warn!(
                reason = %why,
                "redis+sentinel: no primary; store calls fail until one is found"
            );
        }
        not_connected(why)
    }

    /// Drops connection `id` if it is still the current one.
    fn lost(&self, id: u64, why: &str) {
        let mut state = lock(&self.state);
        if let Some(primary) = state.current.take_if(|p| p.id == id) {
            tracing::warn!(
                primary = %show_addr(&primary.addr),
                reason = why,
                "redis+sentinel: lost the primary; asking the sentinels"
            );
        }
    }

    fn after_error(&self, id: u64, e: &RedisError) {
        if demoted(e) {
            self.lost(id, "it answers as a replica");
        } else if e.is_io_error() || e.is_unrecoverable_error() {
            self.lost(id, &e.to_string());
        }
    }

    /// A sentinel says the primary is at `addr`: anything else is dropped, and the next call
    /// asks the sentinels at once.
    fn announced(&self, addr: Addr) {
        let mut state = lock(&self.state);
        if state.current.as_ref().is_some_and(|p| p.addr == addr) {
            return;
        }
        if let Some(old) = state.current.take() {
            tracing::warn!(
                old = %show_addr(&old.addr),
                new = %show_addr(&addr),
                "redis+sentinel: a sentinel announces a new primary; moving"
            );
        }
        state.failure = None;
        drop(state);
        self.primary_addr.send_if_modified(|known| {
            let moved = known.as_ref() != Some(&addr);
            *known = Some(addr);
            moved
        });
    }
}

/// How to reach and log into the data node at `addr`.
fn node_info(url: &SentinelUrl, (host, port): &Addr) -> ConnectionInfo {
    ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.clone(), *port),
        redis: RedisConnectionInfo {
            db: url.db,
            username: url.username.clone(),
            password: url.password.clone(),
            ..RedisConnectionInfo::default()
        },
    }
}

/// The error callers get while there is no primary: an I/O error, which is what it amounts to.
fn not_connected(why: String) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, why))
}

/// The node took the command for a replica's: it was demoted (the command did not run).
fn demoted(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
}

fn show_addr((host, port): &Addr) -> String {
    show(host, *port)
}

fn sentinel_info(host: &str, port: u16) -> ConnectionInfo {
    ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.to_owned(), port),
        redis: RedisConnectionInfo::default(),
    }
}

/// A multiplexed connection with the given bounds.
async fn open(
    info: ConnectionInfo,
    connect: Duration,
    response: Duration,
) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(connect)
        .set_response_timeout(response);
    let client = Client::open(info)?;
    // The config's timeout covers the TCP connection; this one the handshake (AUTH, SELECT).
    tokio::time::timeout(
        connect + response,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| not_connected("no answer".to_owned()))?
}

/// Asks the sentinels in turn; the first primary confirmed by `ROLE` wins. The error lists
/// what each sentinel said.
async fn look_up(url: &SentinelUrl) -> Result<(Addr, MultiplexedConnection), String> {
    let mut reasons = Vec::with_capacity(url.sentinels.len());
    for (host, port) in &url.sentinels {
        match ask(url, host, *port).await {
            Ok(found) => return Ok(found),
            Err(why) => reasons.push(format!("{}: {why}", show(host, *port))),
        }
    }
    Err(format!(
        "no primary for {:?} found through the sentinels ({})",
        url.master,
        reasons.join("; ")
    ))
}

/// One sentinel's answer, checked on the node it names.
async fn ask(
    url: &SentinelUrl,
    host: &str,
    port: u16,
) -> Result<(Addr, MultiplexedConnection), String> {
    let mut sentinel = open(
        sentinel_info(host, port),
        SENTINEL_TIMEOUT,
        SENTINEL_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let addr = primary_addr(&mut sentinel, &url.master).await?;
    let shown = show_addr(&addr);
    let mut conn = open(
        node_info(url, &addr),
        NODE_CONNECT_TIMEOUT,
        RESPONSE_TIMEOUT,
    )
    .await
    .map_err(|e| format!("names {shown}, which cannot be used: {e}"))?;
    let role: Vec<Value> = redis::cmd("ROLE")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("names {shown}, which does not answer ROLE: {e}"))?;
    let role = role
        .first()
        .and_then(|r| redis::from_redis_value::<String>(r).ok())
        .unwrap_or_default();
    if role != "master" {
        return Err(format!("names {shown}, which is a {role:?}, not a primary"));
    }
    Ok((addr, conn))
}

/// `SENTINEL get-master-addr-by-name`: where this sentinel says the primary is.
async fn primary_addr(sentinel: &mut MultiplexedConnection, master: &str) -> Result<Addr, String> {
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query_async(sentinel)
        .await
        .map_err(|e| e.to_string())?;
    addr.ok_or_else(|| format!("does not monitor a master named {master:?}"))
}

/// The new primary of a `+switch-master` announcement
/// (`<name> <old ip> <old port> <new ip> <new port>`) when it is about `master`.
fn switched(announcement: &str, master: &str) -> Option<Addr> {
    let parts: Vec<&str> = announcement.split_ascii_whitespace().collect();
    match parts.as_slice() {
        [name, _, _, ip, port] if *name == master => Some(((*ip).to_owned(), port.parse().ok()?)),
        _ => None,
    }
}

/// Follows one sentinel after another (the next when one is lost) until the store is gone.
async fn watch_sentinels(shared: Weak<Shared>, url: SentinelUrl) {
    for (host, port) in url.sentinels.iter().cycle() {
        match follow_sentinel(&shared, &url, host, *port).await {
            Ok(()) => return,
            Err(why) => tracing::debug!(
                sentinel = %show(host, *port),
                reason = %why,
                "redis+sentinel: not following this sentinel's announcements"
            ),
        }
        tokio::time::sleep(WATCH_PAUSE).await;
        if shared.strong_count() == 0 {
            return;
        }
    }
}

/// Subscribes to one sentinel's announcements and acts on them. `Ok` when the store is gone,
/// `Err` when the sentinel is lost (or never reached).
async fn follow_sentinel(
    shared: &Weak<Shared>,
    url: &SentinelUrl,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let client = Client::open(sentinel_info(host, port)).map_err(|e| e.to_string())?;
    let subscribing = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(SWITCH_CHANNEL).await?;
        Ok::<_, RedisError>(pubsub)
    };
    let mut pubsub = tokio::time::timeout(SENTINEL_TIMEOUT * 2, subscribing)
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut sentinel = open(
        sentinel_info(host, port),
        SENTINEL_TIMEOUT,
        SENTINEL_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    // A failover may have been announced while no sentinel was followed: ask once now.
    let addr = primary_addr(&mut sentinel, &url.master).await?;
    match shared.upgrade() {
        Some(shared) => shared.announced(addr),
        None => return Ok(()),
    }
    let mut messages = pubsub.on_message();
    let mut ping = tokio::time::interval(WATCH_PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err("the connection was lost".to_owned());
                };
                let Ok(text) = message.get_payload::<String>() else { continue };
                let Some(addr) = switched(&text, &url.master) else { continue };
                match shared.upgrade() {
                    Some(shared) => shared.announced(addr),
                    None => return Ok(()),
                }
            }
            _ = ping.tick() => {
                if shared.strong_count() == 0 {
                    return Ok(());
                }
                redis::cmd("PING")
                    .query_async::<()>(&mut sentinel)
                    .await
                    .map_err(|e| format!("no answer to PING: {e}"))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_read_for_our_master_only() {
        assert_eq!(
            switched("mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster"),
            Some(("127.0.0.1".to_owned(), 6380))
        );
        assert_eq!(switched("other 1.1.1.1 1 2.2.2.2 2", "mymaster"), None);
        assert_eq!(switched("mymaster 1.1.1.1 1 2.2.2.2", "mymaster"), None);
        assert_eq!(switched("mymaster 1.1.1.1 1 2.2.2.2 x", "mymaster"), None);
    }
}
