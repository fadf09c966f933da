//! In-process counters behind `/metrics` and the status API.
//!
//! A handful of labelled counters and histograms is all wxgate needs, so they are kept here in
//! plain maps rather than pulling in a metrics framework; rendering follows the Prometheus text
//! exposition format.
//!
//! The per-request HTTP figures are the only ones written on every request, by every worker
//! thread at once. They are kept per route in [`RouteMetrics`], found once per route (not per
//! request), and written into one of several shards chosen by thread, each on its own cache
//! line: two threads serving the same route never wait for each other's lock or pull each
//! other's counters across cores. Rendering adds the shards up.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::lock;

/// Upper bounds (seconds) of the HTTP latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Shards of each route's HTTP figures. Threads beyond this many share shards (still correct,
/// only no longer free of contention).
const SHARDS: usize = 8;

/// Requests of one route as recorded by one shard: counts by status and the latency histogram.
#[derive(Default, Clone)]
struct RouteStats {
    by_status: Vec<(u16, u64)>,
    /// Requests per bucket: `[i]` counts latencies above bound `i - 1` and up to bound `i`
    /// (made cumulative, as Prometheus wants, when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl RouteStats {
    fn record(&mut self, status: u16, latency: Duration) {
        match self.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.by_status.push((status, 1)),
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| secs <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }

    fn add(&mut self, other: &RouteStats) {
        for &(status, n) in &other.by_status {
            match self.by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, total)) => *total += n,
                None => self.by_status.push((status, n)),
            }
        }
        for (total, n) in self.buckets.iter_mut().zip(other.buckets) {
            *total += n;
        }
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// One shard, alone on its cache line (128 bytes: two lines, for CPUs that fetch pairs).
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<RouteStats>);

/// The HTTP figures of one route template, shared by every request of that route.
pub struct RouteMetrics {
    route: String,
    shards: [Shard; SHARDS],
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        RouteMetrics {
            route: route.to_owned(),
            shards: Default::default(),
        }
    }

    /// The route template these figures are for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// One request of this route, answered with `status` after `latency`.
    pub fn record(&self, status: u16, latency: Duration) {
        lock(&self.shards[shard_index()].0).record(status, latency);
    }

    fn total(&self) -> RouteStats {
        let mut total = RouteStats::default();
        for shard in &self.shards {
            total.add(&lock(&shard.0));
        }
        total
    }
}

/// This thread's shard: threads are numbered in the order they first record.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

#[derive(Default)]
struct Inner {
    upstream_calls: BTreeMap<(String, String, String), u64>,
    refreshes: BTreeMap<(String, String, String), u64>,
    /// Looked up once per route (see [`Metrics::route`]), not per request.
    http: HashMap<String, Arc<RouteMetrics>>,
    last_errors: BTreeMap<(String, String), crate::credentials::ErrorRecord>,
}

/// Thread-safe registry; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A gauge value computed at render time (e.g. seconds until a credential expires).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    /// One upstream WeChat call (each attempt counts). `outcome` is `ok`, `errcode_N`,
    /// `http_N`, `timeout`, `transport` or `unparseable`.
    pub fn upstream_call(&self, account: &str, endpoint: &str, outcome: &str) {
        self.with(|i| {
            *i.upstream_calls
                .entry((account.to_owned(), endpoint.to_owned(), outcome.to_owned()))
                .or_default() += 1;
        });
    }

    /// Remembers the latest failed upstream call of `account` on `endpoint` (status API).
    pub fn upstream_error(
        &self,
        account: &str,
        endpoint: &str,
        record: crate::credentials::ErrorRecord,
    ) {
        self.with(|i| {
            i.last_errors
                .insert((account.to_owned(), endpoint.to_owned()), record);
        });
    }

    /// The latest failed upstream call of one account, keyed by endpoint.
    pub fn last_upstream_errors(
        &self,
        account: &str,
    ) -> BTreeMap<String, crate::credentials::ErrorRecord> {
        self.with(|i| {
            i.last_errors
                .iter()
                .filter(|((a, _), _)| a == account)
                .map(|((_, e), r)| (e.clone(), r.clone()))
                .collect()
        })
    }

    /// A credential fetched from WeChat (`reason`: `initial`, `ahead`, `forced`, `token_invalid`).
    pub fn credential_refresh(&self, account: &str, kind: &str, reason: &str) {
        self.with(|i| {
            *i.refreshes
                .entry((account.to_owned(), kind.to_owned(), reason.to_owned()))
                .or_default() += 1;
        });
    }

    /// The HTTP figures of a route template (never a raw path: it may hold one-time codes),
    /// created on first use. Callers keep the handle; [`RouteMetrics::record`] takes no lock
    /// that another thread is likely to hold.
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        self.with(|i| match i.http.get(route) {
            Some(found) => Arc::clone(found),
            None => Arc::clone(
                i.http
                    .entry(route.to_owned())
                    .or_insert_with(|| Arc::new(RouteMetrics::new(route))),
            ),
        })
    }

    /// Upstream call counts of one account, keyed `endpoint` → `outcome` → count.
    pub fn upstream_counts(&self, account: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.with(|i| {
            let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for ((a, e, o), n) in &i.upstream_calls {
                if a == account {
                    out.entry(e.clone()).or_default().insert(o.clone(), *n);
                }
            }
            out
        })
    }

    /// Prometheus text format, with `gauges` appended.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        self.with(|i| {
            out.push_str("# HELP wxgate_upstream_calls_total WeChat API calls by account, endpoint and outcome.\n# TYPE wxgate_upstream_calls_total counter\n");
            for ((a, e, o), n) in &i.upstream_calls {
                let _ = writeln!(out, "wxgate_upstream_calls_total{{account=\"{}\",endpoint=\"{}\",outcome=\"{}\"}} {n}", esc(a), esc(e), esc(o));
            }
            out.push_str("# HELP wxgate_credential_refreshes_total Credentials fetched from WeChat by reason.\n# TYPE wxgate_credential_refreshes_total counter\n");
            for ((a, k, r), n) in &i.refreshes {
                let _ = writeln!(out, "wxgate_credential_refreshes_total{{account=\"{}\",credential=\"{}\",reason=\"{}\"}} {n}", esc(a), esc(k), esc(r));
            }
            let mut routes: Vec<(&String, RouteStats)> =
                i.http.iter().map(|(r, m)| (r, m.total())).collect();
            routes.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("# HELP wxgate_http_requests_total HTTP requests by route and status.\n# TYPE wxgate_http_requests_total counter\n");
            for (r, stats) in &mut routes {
                stats.by_status.sort_unstable();
                for (s, n) in &stats.by_status {
                    let _ = writeln!(out, "wxgate_http_requests_total{{route=\"{}\",status=\"{s}\"}} {n}", esc(r));
                }
            }
            out.push_str("# HELP wxgate_http_request_duration_seconds HTTP request latency by route.\n# TYPE wxgate_http_request_duration_seconds histogram\n");
            for (r, h) in &routes {
                let mut cumulative = 0;
                for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                    cumulative += n;
                    let _ = writeln!(out, "wxgate_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{bound}\"}} {cumulative}", esc(r));
                }
                let _ = writeln!(out, "wxgate_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}", esc(r), h.count);
                let _ = writeln!(out, "wxgate_http_request_duration_seconds_sum{{route=\"{}\"}} {}", esc(r), h.sum);
                let _ = writeln!(out, "wxgate_http_request_duration_seconds_count{{route=\"{}\"}} {}", esc(r), h.count);
            }
        });
        let mut seen = std::collections::BTreeSet::new();
        for g in gauges {
            if seen.insert(g.name) {
                let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
            }
            let labels: Vec<String> = g
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {}", g.name, labels.join(","), g.value);
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests recorded by many threads (each on its own shard, and more threads than shards)
    /// are all counted once, and the histogram renders cumulatively.
    #[test]
    fn route_figures_from_many_threads_add_up() {
        let metrics = Metrics::new();
        std::thread::scope(|scope| {
            for t in 0..(SHARDS as u64 + 3) {
                let route = metrics.route("/r/{x}");
                scope.spawn(move || {
                    for i in 0..100 {
                        let status = if i % 10 == 0 { 500 } else { 200 };
                        route.record(status, Duration::from_micros(300 + 1000 * t));
                    }
                });
            }
        });
        let text = metrics.render(&[]);
        let threads = SHARDS as u64 + 3;
        let line = |prefix: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
                .trim()
                .to_owned()
        };
        let requests = r#"wxgate_http_requests_total{route="/r/{x}","#;
        assert_eq!(
            line(&format!("{requests}status=\"200\"}}")),
            (90 * threads).to_string()
        );
        assert_eq!(
            line(&format!("{requests}status=\"500\"}}")),
            (10 * threads).to_string()
        );
        let bucket = r#"wxgate_http_request_duration_seconds_bucket{route="/r/{x}","#;
        // Thread 0 answers in 0.3 ms, thread 1 in 1.3 ms, thread 2 in 2.3 ms, …
        assert_eq!(line(&format!("{bucket}le=\"0.0005\"}}")), "100");
        assert_eq!(line(&format!("{bucket}le=\"0.001\"}}")), "100");
        assert_eq!(line(&format!("{bucket}le=\"0.0025\"}}")), "300");
        assert_eq!(
            line(&format!("{bucket}le=\"0.025\"}}")),
            (100 * threads).to_string()
        );
        assert_eq!(
            line(&format!("{bucket}le=\"+Inf\"}}")),
            (100 * threads).to_string()
        );
        assert_eq!(
            line(r#"wxgate_http_request_duration_seconds_count{route="/r/{x}"}"#),
            (100 * threads).to_string()
        );
    }

    #[test]
    fn one_route_template_has_one_set_of_figures() {
        let metrics = Metrics::new();
        assert!(Arc::ptr_eq(&metrics.route("/a"), &metrics.route("/a")));
        assert!(!Arc::ptr_eq(&metrics.route("/a"), &metrics.route("/b")));
        assert_eq!(metrics.route("/b").route(), "/b");
    }
}
