//! A Redis Sentinel deployment of one test's own, on free loopback ports: a primary, one replica
//! (`--replicaof`) and three sentinels (quorum 2, a node is down after 1 s unless the test
//! says otherwise), their configuration
//! files and logs in a temporary directory. Every process is killed when the [`Cluster`] is
//! dropped, whatever the test's outcome.
//!
//! Needs `WXGATE_TEST_REDIS_SENTINEL`, the path of `redis-sentinel` (CI installs it); the
//! `redis-server` beside it (or on the `PATH`) runs the data nodes. Unset: the test says so and
//! passes. Set but the processes do not come up: the test fails with their logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

pub const SENTINEL_ENV: &str = "WXGATE_TEST_REDIS_SENTINEL";
/// The master name the sentinels monitor.
pub const MASTER: &str = "mymaster";
/// How long processes get to start, sync and discover each other (a loaded two-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One process of the deployment, killed (SIGKILL) when dropped.
pub struct Node {
    pub port: u16,
    name: &'static str,
    /// `requirepass` of a data node.
    password: Option<String>,
    child: Option<Child>,
    log: PathBuf,
    /// How it was started, for [`Node::restart`].
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
}

impl Node {
    fn spawn(
        program: &Path,
        name: &'static str,
        port: u16,
        password: Option<&str>,
        args: &[String],
        dir: &Path,
    ) -> Node {
        let mut node = Node {
            port,
            name,
            password: password.map(str::to_owned),
            child: None,
            log: dir.join(format!("{name}.log")),
            program: program.to_owned(),
            args: args.to_vec(),
            dir: dir.to_owned(),
        };
        node.restart();
        node
    }

    /// Starts the process (again, after [`Node::kill`]) with the same arguments and port.
    pub fn restart(&mut self) {
        self.kill();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file in the temporary directory");
        let err = out.try_clone().expect("the log file, twice");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{SENTINEL_ENV} is set but {} cannot be started: {e}",
                    self.program.display()
                )
            });
        self.child = Some(child);
    }

    /// The process's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A connection of the test's own to this node.
    pub async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.connect_db(0).await
    }

    /// A connection of the test's own to database `db` of this node.
    pub async fn connect_db(&self, db: u32) -> redis::RedisResult<MultiplexedConnection> {
        let auth = match &self.password {
            Some(pw) => format!(":{pw}@"),
            None => String::new(),
        };
        let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/{db}", self.port))?;
        tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::other("no answer")))?
    }

    /// Polls `probe` on this node until it returns `Some`, or panics (with the log) after
    /// `timeout`, saying `what` was awaited.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(conn) = self.connect().await {
                if let Some(found) = probe(conn).await {
                    return found;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} (port {}): {what} did not happen within {timeout:?}; its log:\n{}",
                self.name,
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a deployment differs from the default one.
pub struct Options {
    /// `requirepass` (and `masterauth`) of the data nodes; the sentinels require none.
    pub password: Option<&'static str>,
    /// `sentinel down-after-milliseconds`: how long the primary may be silent before the
    /// sentinels start a failover.
    pub down_after_ms: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            password: None,
            down_after_ms: 1000,
        }
    }
}

/// The deployment; see the module documentation.
pub struct Cluster {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    /// Dropped after the processes (fields drop in order).
    _dir: tempfile::TempDir,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address").port()
}

impl Cluster {
    /// Starts everything and waits until a failover is possible (the replica in sync, each
    /// sentinel knowing the replica and the two other sentinels); `None` when the variable is
    /// unset.
    pub async fn start(test: &str) -> Option<Cluster> {
        Self::start_with(test, Options::default()).await
    }

    /// [`Self::start`] with other [`Options`].
    pub async fn start_with(test: &str, options: Options) -> Option<Cluster> {
        let password = options.password;
        let sentinel = match std::env::var(SENTINEL_ENV) {
            Ok(path) if !path.trim().is_empty() => PathBuf::from(path),
            _ => {
                eprintln!(
                    "skipping {test}: {SENTINEL_ENV} is not set (CI sets it to redis-sentinel's path)"
                );
                return None;
            }
        };
        let beside = sentinel.with_file_name("redis-server");
        let server = if beside.exists() {
            beside
        } else {
            PathBuf::from("redis-server")
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_node = |name: &'static str, extra: &[String]| {
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(pw) = password {
                args.extend(["--requirepass", pw, "--masterauth", pw].map(str::to_owned));
            }
            args.extend_from_slice(extra);
            Node::spawn(&server, name, port, password, &args, dir.path())
        };
        let primary = data_node("primary", &[]);
        let replica = data_node(
            "replica",
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ],
        );
        replica
            .wait_for("the first sync", START_TIMEOUT, |mut c| async move {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut c)
                    .await
                    .ok()?;
                info.contains("master_link_status:up").then_some(())
            })
            .await;

        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            let auth = match password {
                Some(pw) => format!("sentinel auth-pass {MASTER} {pw}\n"),
                None => String::new(),
            };
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                     sentinel resolve-hostnames yes\nsentinel announce-ip 127.0.0.1\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} {down_after}\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = dir.path().display(),
                    primary = primary.port,
                    down_after = options.down_after_ms,
                ) + &auth,
            )
            .expect("a sentinel config file");
            let name = ["sentinel-0", "sentinel-1", "sentinel-2"][i];
            let args = [conf.display().to_string()];
            sentinels.push(Node::spawn(&sentinel, name, port, None, &args, dir.path()));
        }
        let replica_port = replica.port;
        for s in &sentinels {
            s.wait_for(
                "knowing the replica and the other sentinels",
                START_TIMEOUT,
                |mut c| async move {
                    let replicas: Vec<std::collections::HashMap<String, String>> =
                        redis::cmd("SENTINEL")
                            .arg("replicas")
                            .arg(MASTER)
                            .query_async(&mut c)
                            .await
                            .ok()?;
                    let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("sentinels")
                        .arg(MASTER)
                        .query_async(&mut c)
                        .await
                        .ok()?;
                    let knows_replica = replicas
                        .iter()
                        .any(|r| r.get("port") == Some(&replica_port.to_string()));
                    (knows_replica && peers.len() == 2).then_some(())
                },
            )
            .await;
        }
        Some(Cluster {
            primary,
            replica,
            sentinels,
            _dir: dir,
        })
    }

    /// `redis+sentinel://` for this deployment, with `auth` (e.g. `:pw@`) before the hosts.
    pub fn url_with(&self, auth: &str, db: u32) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{auth}{}/{MASTER}/{db}", hosts.join(","))
    }

    pub fn url(&self) -> String {
        self.url_with("", 0)
    }

    /// Waits until every sentinel names the replica as the primary and the replica says it is
    /// one; panics with the logs after `timeout`.
    pub async fn wait_for_promotion(&self, timeout: Duration) {
        let replica_port = self.replica.port;
        for s in &self.sentinels {
            s.wait_for(
                "naming the replica as primary",
                timeout,
                |mut c| async move {
                    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(MASTER)
                        .query_async(&mut c)
                        .await
                        .ok()?;
                    (addr?.1 == replica_port).then_some(())
                },
            )
            .await;
        }
        self.replica
            .wait_for("becoming the primary", timeout, |mut c| async move {
                role(&mut c).await.filter(|r| r == "master").map(drop)
            })
            .await;
    }
}

/// The first word of `ROLE`: `master`, `slave` or `sentinel`.
pub async fn role(conn: &mut MultiplexedConnection) -> Option<String> {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(conn).await.ok()?;
    redis::from_redis_value(role.first()?).ok()
}
