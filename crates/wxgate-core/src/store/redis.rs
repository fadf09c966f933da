//! [`Store`] on Redis (`redis://HOST:PORT/DB`), shared by wxgate processes on any number of hosts.
//!
//! Redis executes each command, and each Lua script, alone — nothing else runs on the server in
//! between — so every primitive is a single command or a single script and is therefore atomic
//! across all clients: `put` = `SET [PX]`, `put_if_absent` = `SET NX [PX]`, `take` = `GETDEL`
//! (Redis ≥ 6.2), `delete_if_equals`, `extend_if_equals` and `put_if_newer` = small Lua scripts run via `EVALSHA`.
//! Expiry is Redis's own (`PX`, millisecond precision, measured by the server's clock), so an
//! expired key is gone for every command and a crashed lease holder's key frees itself.
//!
//! Each stored Redis value is an 8-byte version header followed by the caller's bytes. The header
//! is the `i64` version with its sign bit flipped, big-endian, so comparing headers byte by byte
//! (as the `put_if_newer` script does, without going through Lua's floating-point numbers) orders
//! them exactly like the versions; `put`/`put_if_absent` write version `i64::MIN`, i.e. a zero
//! header. `get`/`take` strip the header and return exactly the bytes written. Every key gets
//! `key_prefix` prepended, so several deployments can share one Redis database.
//!
//! Notices are `PUBLISH`ed on the channel `{key_prefix}wxgate:notices`; each follower reads them
//! on a pub/sub connection of its own, which a task reopens (after a pause) whenever it is lost,
//! telling the follower [`Notice::Missed`]. `get_many` is one `MGET`.
//!
//! `connect` PINGs the server and fails within [`CONNECT_TIMEOUT`] when it is unreachable;
//! afterwards the connection manager reconnects on its own. Behind Sentinel
//! (`redis+sentinel://…`) the commands go through [`SentinelConnection`] instead, which finds the
//! primary and follows failovers, and a follower's pub/sub connection moves to the new primary
//! too (with a [`Notice::Missed`]); everything else here is the same. Errors never include
//! values, nor the URL (which may contain a password).

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{Client, Cmd, Pipeline, RedisFuture, Script, Value};
use tokio::sync::watch;

use super::notices::{self, Notice, NoticeSender};
use super::redis_sentinel::{self, Addr, SentinelConnection};
use super::{Store, StoreError};

/// Upper bound for `connect`, including retries and the PING.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One TCP connection attempt.
const CONNECTION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command that gets no answer for this long fails instead of hanging the caller.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest TTL passed to Redis (about 100 years); longer ones are clamped.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Pause before a lost pub/sub connection is reopened.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// Length of the version header in front of every stored value.
const HEADER_LEN: usize = 8;

/// KEYS[1] = key, ARGV[1] = header ++ value, ARGV[2] = TTL in ms or "" for none.
/// Writes when the key is missing (or expired, which Redis treats as missing) or its header is
/// strictly lower, comparing the 8 header bytes one by one as unsigned numbers.
const PUT_IF_NEWER_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local newer = false
  for i = 1, 8 do
    local c, n = string.byte(cur, i), string.byte(ARGV[1], i)
    if c == nil or c < n then
      newer = true
      break
    end
    if c > n then
      break
    end
  end
  if not newer then
    return 0
  end
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

/// KEYS[1] = key, ARGV[1] = expected value (without header). Deletes when the stored value,
/// header stripped, equals it byte for byte.
const DELETE_IF_EQUALS_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 8 and string.sub(cur, 9) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// KEYS[1] = key, ARGV[1] = expected value, ARGV[2] = TTL in ms. Resets the TTL only while the
/// live value is the expected one.
const EXTEND_IF_EQUALS_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 8 and string.sub(cur, 9) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Redis-backed store; see the module documentation.
pub struct RedisStore {
    conn: Conn,
    /// Opens the followers' pub/sub connections.
    pubsub: PubSubSource,
    key_prefix: String,
    put_if_newer: Script,
    delete_if_equals: Script,
    extend_if_equals: Script,
}

impl RedisStore {
    /// Connects to `url` (`redis://[:PASSWORD@]HOST:PORT/DB`, or
    /// `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`) and checks the server
    /// with a PING. Fails within [`CONNECT_TIMEOUT`] when the server (or, behind Sentinel, any
    /// primary) is unreachable.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let (conn, pubsub) = if url.starts_with(redis_sentinel::SCHEME)
            || url.starts_with(redis_sentinel::TLS_SCHEME)
        {
            let sentinel = SentinelConnection::connect(redis_sentinel::parse(url)?).await?;
            (
                Conn::Sentinel(sentinel.clone()),
                PubSubSource::Sentinel(sentinel),
            )
        } else {
            let (manager, client) = Self::manager(url).await?;
            (Conn::Direct(manager), PubSubSource::Direct(client))
        };
        Ok(RedisStore {
            conn,
            pubsub,
            key_prefix: key_prefix.to_owned(),
            put_if_newer: Script::new(PUT_IF_NEWER_LUA),
            delete_if_equals: Script::new(DELETE_IF_EQUALS_LUA),
            extend_if_equals: Script::new(EXTEND_IF_EQUALS_LUA),
        })
    }

    /// A connection manager for the one server of a `redis://` URL, checked with a PING, and the
    /// client that opens more connections to it.
    async fn manager(url: &str) -> Result<(ConnectionManager, Client), StoreError> {
        let client = Client::open(url)
            .map_err(|e| StoreError::InvalidUrl(format!("not a usable redis url: {e}")))?;
        let addr = client.get_connection_info().addr.to_string();

        // The manager retries failed connection attempts; keep the retries few and short so an
        // unreachable server is reported quickly (the whole attempt is bounded below anyway).
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(200)
            .set_connection_timeout(CONNECTION_ATTEMPT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => Ok((conn, client)),
            Ok(Err(e)) => Err(StoreError::Backend(format!(
                "redis: cannot connect to {addr}: {e}"
            ))),
            Err(_) => Err(StoreError::Backend(format!(
                "redis: no connection to {addr} within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    fn notice_channel(&self) -> String {
        self.key("wxgate:notices")
    }

    /// `SET key header++value [NX] [PX ttl]`; returns whether Redis wrote.
    async fn set(
        &self,
        what: &str,
        key: &str,
        value: &[u8],
        nx: bool,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(encode(i64::MIN, value));
        if nx {
            cmd.arg("NX");
        }
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        let reply: Value = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend(what, &e))?;
        Ok(!matches!(reply, Value::Nil))
    }
}

/// Where the commands go: one server, or whichever node Sentinel says is the primary.
// Cloned for every command, as the manager alone was before; boxing the manager would add an
// allocation to each clone, to save bytes on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Conn {
    Direct(ConnectionManager),
    Sentinel(SentinelConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Direct(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Direct(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// Where followers' pub/sub connections go: the one server, or the current primary.
#[derive(Clone)]
enum PubSubSource {
    Direct(Client),
    Sentinel(SentinelConnection),
}

impl PubSubSource {
    /// A new pub/sub connection subscribed to `channel`, and (behind Sentinel) the address of
    /// the primary it is on.
    async fn subscribed(&self, channel: &str) -> Result<(PubSub, Option<Addr>), StoreError> {
        let (pubsub, at) = match self {
            PubSubSource::Direct(client) => (client.get_async_pubsub().await, None),
            PubSubSource::Sentinel(sentinel) => match sentinel.pubsub().await {
                Ok((pubsub, at)) => (Ok(pubsub), Some(at)),
                Err(e) => (Err(e), None),
            },
        };
        let mut pubsub = pubsub.map_err(|e| backend("subscribe", &e))?;
        pubsub
            .subscribe(channel)
            .await
            .map_err(|e| backend("subscribe", &e))?;
        Ok((pubsub, at))
    }

    /// Follows where the primary is (behind Sentinel).
    fn primary_moves(&self) -> Option<watch::Receiver<Option<Addr>>> {
        match self {
            PubSubSource::Direct(_) => None,
            PubSubSource::Sentinel(sentinel) => Some(sentinel.primary_moves()),
        }
    }
}

/// Resolves once the primary is known to be somewhere else than `at`; never for one server.
async fn moved_from(moves: &mut Option<watch::Receiver<Option<Addr>>>, at: &Option<Addr>) {
    if let Some(moves) = moves {
        if moves
            .wait_for(|now| now.is_some() && now != at)
            .await
            .is_ok()
        {
            return;
        }
    }
    std::future::pending().await
}

/// Feeds `tx` from `pubsub` (subscribed to `channel` on the primary at `at`) until the follower
/// is gone; whenever the connection is lost, or the primary moves elsewhere (behind Sentinel),
/// tells the follower that notices may have been missed and opens another.
async fn follow(
    mut pubsub: PubSub,
    mut at: Option<Addr>,
    source: PubSubSource,
    channel: String,
    mut tx: NoticeSender,
) {
    let mut moves = source.primary_moves();
    loop {
        let moved = {
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    () = tx.closed() => return,
                    () = moved_from(&mut moves, &at) => break true,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break false };
                let Ok(text) = message.get_payload::<String>() else {
                    continue;
                };
                if !tx.send(Notice::Message(text)) {
                    return;
                }
            }
        };
        if moved {
            tracing::warn!("the store's primary moved; following notices on the new one");
        } else {
            tracing::warn!("the store's notice connection was lost; reconnecting");
        }
        (pubsub, at) = loop {
            if !tx.send(Notice::Missed) {
                return;
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
            }
            match source.subscribed(&channel).await {
                Ok(p) => break p,
                Err(e) => tracing::warn!(error = %e, "cannot follow store notices; retrying"),
            }
        };
    }
}

/// Header (version with the sign bit flipped, big-endian) followed by the value.
fn encode(version: i64, value: &[u8]) -> Vec<u8> {
    let header = ((version as u64) ^ (1 << 63)).to_be_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(value);
    out
}

/// Strips the header.
fn decode(what: &str, mut stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if stored.len() < HEADER_LEN {
        return Err(StoreError::Backend(format!(
            "redis: {what}: stored entry is not in wxgate's format (too short)"
        )));
    }
    stored.drain(..HEADER_LEN);
    Ok(stored)
}

/// TTL in whole milliseconds, rounded up, at least 1 (Redis rejects `PX 0`) and at most
/// [`MAX_TTL_MS`].
fn ttl_ms(ttl: Duration) -> u64 {
    let mut ms = ttl.as_millis();
    if ttl.subsec_nanos() % 1_000_000 != 0 {
        ms += 1;
    }
    u64::try_from(ms).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS)
}

/// Builds the error for a failed command. Redis errors describe the failure (connection lost,
/// WRONGTYPE, ...), never the arguments, so values do not leak into logs.
fn backend(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {what}: {e}"))
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("get", &e))?;
        stored.map(|s| decode("get", s)).transpose()
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.set("put", key, value, false, ttl).await.map(|_| ())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.set("put_if_absent", key, value, true, ttl).await
    }

    async fn put_if_newer(
        &self,
        key: &str,
        value: &[u8],
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let ttl_arg = ttl.map(|t| ttl_ms(t).to_string()).unwrap_or_default();
        let wrote: i64 = self
            .put_if_newer
            .key(self.key(key))
            .arg(encode(version, value))
            .arg(ttl_arg)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("put_if_newer", &e))?;
        Ok(wrote == 1)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let stored: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("take", &e))?;
        stored.map(|s| decode("take", s)).transpose()
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .delete_if_equals
            .key(self.key(key))
            .arg(expected)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("delete_if_equals", &e))?;
        Ok(deleted == 1)
    }

    async fn extend_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let extended: i64 = self
            .extend_if_equals
            .key(self.key(key))
            .arg(expected)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("extend_if_equals", &e))?;
        Ok(extended == 1)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| backend("delete", &e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| backend("ping", &e))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let stored: Vec<Option<Vec<u8>>> = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| backend("get_many", &e))?;
        stored
            .into_iter()
            .map(|s| s.map(|s| decode("get_many", s)).transpose())
            .collect()
    }

    async fn notify(&self, message: &str) -> Result<(), StoreError> {
        notices::check_len(message)?;
        redis::cmd("PUBLISH")
            .arg(self.notice_channel())
            .arg(message)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| backend("notify", &e))
    }

    async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Notice>, StoreError> {
        let channel = self.notice_channel();
        // The first connection is opened here, so the follower receives every notice sent
        // after this returns, and an unreachable server is reported to the caller.
        let (pubsub, at) = self.pubsub.subscribed(&channel).await?;
        let (tx, rx) = notices::queue();
        tokio::spawn(follow(pubsub, at, self.pubsub.clone(), channel, tx));
        Ok(rx)
    }
}
