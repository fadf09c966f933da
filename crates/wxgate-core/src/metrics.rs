//! The gateway's figures: the page `/metrics` serves (upstream calls, credential refreshes, HTTP
//! requests by route, credential expiry, WeChat calls in flight and waiting) and the upstream call
//! counts and last errors the status API reads back.
//!
//! The page is kept and written by the `metrics` facade and `metrics-exporter-prometheus`.
//! Each [`Metrics`] has a recorder of its own and records through it; none is installed
//! process-wide, because one process may run several gateways (the tests do) and each must show
//! only its own numbers. The status API's figures are not read back from Prometheus text: they
//! are kept beside the recorder in plain maps ([`Metrics::upstream_counts`],
//! [`Metrics::last_upstream_errors`]).
//!
//! The per-request HTTP figures are the only ones written on every request, by every worker
//! thread at once. A route's are found once per route (not per request) as a [`RouteMetrics`]
//! holding the route's latency `Histogram` and a `Counter` per status answered, so a request
//! costs an atomic add and a lock-free histogram push, and no lookup. Histogram samples wait in
//! the recorder until drained into the page's buckets: rendering drains them, and so does one
//! thread of the process every 5 s (`keep_up`), so a gateway nobody scrapes does not grow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Once, OnceLock, Weak};
use std::time::Duration;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::domain::{lock, ErrorRecord};

const UPSTREAM_CALLS: &str = "wxgate_upstream_calls_total";
const REFRESHES: &str = "wxgate_credential_refreshes_total";
const COMPONENT_REFRESH_ERRORS: &str = "wxgate_component_refresh_errors_total";
const HTTP_REQUESTS: &str = "wxgate_http_requests_total";
const HTTP_LATENCY: &str = "wxgate_http_request_duration_seconds";
const STORE_OPERATIONS: &str = "wxgate_store_operations_total";
const UPSTREAM_IN_FLIGHT: &str = "wxgate_upstream_in_flight";
const UPSTREAM_WAITING: &str = "wxgate_upstream_waiting";
const UPSTREAM_MAX_IN_FLIGHT: &str = "wxgate_upstream_max_in_flight";

/// Upper bounds (seconds) of the HTTP latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// How often histogram samples nobody rendered are drained (`PrometheusBuilder::install`'s
/// upkeep interval).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What the recorder is told about the figures registered here (the exporter ignores it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The statuses a [`RouteMetrics`] keeps a counter slot for; any other is looked up per request.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// The HTTP figures of one route template, shared by every request of that route.
pub struct RouteMetrics {
    route: String,
    recorder: Arc<PrometheusRecorder>,
    /// Requests by status (`[status - 100]`), each registered when first answered: a status
    /// never answered is not on the page.
    by_status: Box<[OnceLock<Counter>]>,
    latency: Histogram,
}

impl RouteMetrics {
    fn new(route: &str, recorder: Arc<PrometheusRecorder>) -> Self {
        let key = Key::from_parts(HTTP_LATENCY, vec![Label::new("route", route.to_owned())]);
        RouteMetrics {
            route: route.to_owned(),
            latency: recorder.register_histogram(&key, &METADATA),
            by_status: STATUSES.map(|_| OnceLock::new()).collect(),
            recorder,
        }
    }

    /// The route template these figures are for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// One request of this route, answered with `status` after `latency`.
    pub fn record(&self, status: u16, latency: Duration) {
        let slot = usize::from(status)
            .checked_sub(usize::from(*STATUSES.start()))
            .and_then(|i| self.by_status.get(i));
        match slot {
            Some(slot) => slot.get_or_init(|| self.requests(status)).increment(1),
            None => self.requests(status).increment(1),
        }
        self.latency.record(latency.as_secs_f64());
    }

    fn requests(&self, status: u16) -> Counter {
        let labels = vec![
            Label::new("route", self.route.clone()),
            Label::new("status", status.to_string()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(HTTP_REQUESTS, labels), &METADATA)
    }
}

/// What the status API reads back, kept beside the recorder, by account: a status call looks
/// up its account, not every entry, and an account costs one map entry and its few counts
/// (the endpoint, outcome and reason names are interned: a handful of distinct strings).
#[derive(Default)]
struct UpstreamLog {
    by_account: HashMap<Arc<str>, AccountLog>,
    names: HashSet<Arc<str>>,
}

/// Counts by a pair of interned names (`(endpoint, outcome)`, `(credential, reason)`).
type Counts = Box<[(Arc<str>, Arc<str>, u64)]>;

/// One account's counts, in boxed slices sized to fit (usually one entry each).
#[derive(Default)]
struct AccountLog {
    /// `(endpoint, outcome)` → calls.
    calls: Counts,
    /// `(credential, reason)` → credentials fetched.
    refreshes: Counts,
    /// endpoint → the latest failure.
    last_errors: Box<[(Arc<str>, ErrorRecord)]>,
}

impl UpstreamLog {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(found) = self.names.get(name) {
            return Arc::clone(found);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }

    fn account(&mut self, account: &str) -> &mut AccountLog {
        if !self.by_account.contains_key(account) {
            self.by_account
                .insert(Arc::from(account), AccountLog::default());
        }
        self.by_account
            .get_mut(account)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Adds one to the count of `(a, b)` in `counts`.
    fn count(&mut self, pick: fn(&mut AccountLog) -> &mut Counts, account: &str, a: &str, b: &str) {
        let counts = pick(self.account(account));
        if let Some(entry) = counts.iter_mut().find(|(x, y, _)| &**x == a && &**y == b) {
            entry.2 += 1;
            return;
        }
        let (a, b) = (self.intern(a), self.intern(b));
        let counts = pick(self.account(account));
        let mut grown = std::mem::take(counts).into_vec();
        grown.push((a, b, 1));
        *counts = grown.into_boxed_slice();
    }
}

/// One gateway's figures; thread-safe, shared behind an `Arc`.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    /// Looked up once per route (see [`Metrics::route`]), not per request.
    routes: Mutex<HashMap<String, Arc<RouteMetrics>>>,
    upstream: Mutex<UpstreamLog>,
    /// Where upstream calls are also recorded for the admin console (attached once by the
    /// gateway; the client, the proxy and the webhooks reach it through here).
    activity: std::sync::OnceLock<Arc<crate::activity::Activity>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
        let recorder = match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_LATENCY.to_owned()), &LATENCY_BUCKETS)
        {
            Ok(builder) => builder.build_recorder(),
            Err(_) => unreachable!("only an empty list of buckets is refused"),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status.");
            metrics::describe_histogram!(HTTP_LATENCY, "HTTP request latency by route.");
            metrics::describe_counter!(
                STORE_OPERATIONS,
                "Calls to the shared store (storage.url) by operation."
            );
        });
        let recorder = Arc::new(recorder);
        keep_up(&recorder);
        Metrics {
            recorder,
            routes: Mutex::default(),
            upstream: Mutex::default(),
            activity: std::sync::OnceLock::new(),
        }
    }

    /// One upstream WeChat call (each attempt counts). `outcome` is `ok`, `errcode_N`,
    /// `http_N`, `timeout`, `transport`, `unparseable` or `saturated` (not sent: no free call
    /// under `upstream.max_in_flight` in time).
    pub fn upstream_call(&self, account: &str, endpoint: &str, outcome: &str) {
        lock(&self.upstream).count(|l| &mut l.calls, account, endpoint, outcome);
        if let Some(activity) = self.activity.get() {
            activity.call(account, endpoint, outcome == "ok");
        }
    }

    /// Attaches the recorder of what wxgate observes (once; later calls are ignored).
    pub fn attach_activity(&self, activity: Arc<crate::activity::Activity>) {
        let _ = self.activity.set(activity);
    }

    /// The recorder attached with [`Metrics::attach_activity`], if any.
    pub fn activity(&self) -> Option<&Arc<crate::activity::Activity>> {
        self.activity.get()
    }

    /// Remembers the latest failed upstream call of `account` on `endpoint` (status API).
    pub fn upstream_error(&self, account: &str, endpoint: &str, record: ErrorRecord) {
        let mut log = lock(&self.upstream);
        let errors = &mut log.account(account).last_errors;
        if let Some(entry) = errors.iter_mut().find(|(e, _)| &**e == endpoint) {
            entry.1 = record;
            return;
        }
        let endpoint = log.intern(endpoint);
        let errors = &mut log.account(account).last_errors;
        let mut grown = std::mem::take(errors).into_vec();
        grown.push((endpoint, record));
        *errors = grown.into_boxed_slice();
    }

    /// The latest failed upstream call of one account, keyed by endpoint.
    pub fn last_upstream_errors(&self, account: &str) -> BTreeMap<String, ErrorRecord> {
        lock(&self.upstream)
            .by_account
            .get(account)
            .map(|l| {
                l.last_errors
                    .iter()
                    .map(|(e, r)| (e.to_string(), r.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Upstream call counts of one account, keyed `endpoint` → `outcome` → count.
    pub fn upstream_counts(&self, account: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        if let Some(l) = lock(&self.upstream).by_account.get(account) {
            for (e, o, n) in l.calls.iter() {
                out.entry(e.to_string())
                    .or_default()
                    .insert(o.to_string(), *n);
            }
        }
        out
    }

    /// An authorizer token fetch of platform `component` failed (`cause`:
    /// `refresh_token_invalid`, `upstream`).
    pub fn component_refresh_error(&self, component: &str, cause: &str) {
        metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::counter!(COMPONENT_REFRESH_ERRORS,
                "component" => component.to_owned(),
                "cause" => cause.to_owned())
            .increment(1);
        });
    }

    /// A credential fetched from WeChat (`reason`: `initial`, `ahead`, `forced`, `token_invalid`).
    pub fn credential_refresh(&self, account: &str, kind: &str, reason: &str) {
        lock(&self.upstream).count(|l| &mut l.refreshes, account, kind, reason);
    }

    /// The counter of store calls of operation `op` (a handle: counting is one atomic add).
    pub fn store_operations(&self, op: &'static str) -> Counter {
        let key = Key::from_parts(STORE_OPERATIONS, vec![Label::new("op", op)]);
        self.recorder.register_counter(&key, &METADATA)
    }

    /// The HTTP figures of a route template (never a raw path: it may hold one-time codes),
    /// created on first use. Callers keep the handle; [`RouteMetrics::record`] takes no lock.
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        let mut routes = lock(&self.routes);
        if let Some(found) = routes.get(route) {
            return Arc::clone(found);
        }
        let created = Arc::new(RouteMetrics::new(route, Arc::clone(&self.recorder)));
        routes.insert(route.to_owned(), Arc::clone(&created));
        created
    }

    /// The Prometheus text page, with `gauges` appended. The gauges are rendered by a recorder
    /// made for this page alone, so a value that is no longer offered (a credential that left
    /// the cache) is no longer shown.
    ///
    /// The per-account counters (upstream calls, refreshes) are rendered the same way, from
    /// the plain maps the status API reads too: a series registered in the recorder costs a
    /// few hundred bytes per account, which at 100 000 accounts is most of their memory.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut page = self.recorder.handle().render();
        let scratch = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&scratch, || {
            metrics::describe_counter!(
                UPSTREAM_CALLS,
                "WeChat API calls by account, endpoint and outcome."
            );
            metrics::describe_counter!(REFRESHES, "Credentials fetched from WeChat by reason.");
            let log = lock(&self.upstream);
            for (account, l) in &log.by_account {
                for (endpoint, outcome, n) in l.calls.iter() {
                    metrics::counter!(UPSTREAM_CALLS,
                        "account" => account.to_string(),
                        "endpoint" => endpoint.to_string(),
                        "outcome" => outcome.to_string())
                    .absolute(*n);
                }
                for (credential, reason, n) in l.refreshes.iter() {
                    metrics::counter!(REFRESHES,
                        "account" => account.to_string(),
                        "credential" => credential.to_string(),
                        "reason" => reason.to_string())
                    .absolute(*n);
                }
            }
            drop(log);
            for g in gauges {
                metrics::describe_gauge!(g.name, g.help);
                let labels: Vec<Label> = g
                    .labels
                    .iter()
                    .map(|(k, v)| Label::new(*k, v.clone()))
                    .collect();
                metrics::gauge!(g.name, labels).set(g.value);
            }
        });
        page.push_str(&scratch.handle().render());
        page
    }
}

/// The gauges of `upstream.max_in_flight` (read from [`crate::upstream::UpstreamLimit`] at
/// render time): WeChat calls open now, callers waiting for one, and the bound.
pub fn upstream_limit_gauges(in_flight: usize, waiting: usize, max: usize) -> [Gauge; 3] {
    let gauge = |name, help, value: usize| Gauge {
        name,
        help,
        labels: Vec::new(),
        value: value as f64,
    };
    [
        gauge(
            UPSTREAM_IN_FLIGHT,
            "WeChat calls in flight now (at most upstream.max_in_flight).",
            in_flight,
        ),
        gauge(
            UPSTREAM_WAITING,
            "WeChat calls waiting for a free slot under upstream.max_in_flight.",
            waiting,
        ),
        gauge(
            UPSTREAM_MAX_IN_FLIGHT,
            "upstream.max_in_flight: most WeChat calls in flight at once.",
            max,
        ),
    ]
}

/// Has `recorder`'s histogram samples drained every [`UPKEEP_EVERY`] while it lives, by one
/// thread for the whole process (it holds the recorders weakly, and no numbers). Were the thread
/// refused, rendering still drains them.
fn keep_up(recorder: &Arc<PrometheusRecorder>) {
    static LIVE: Mutex<Vec<Weak<PrometheusRecorder>>> = Mutex::new(Vec::new());
    static STARTED: Once = Once::new();
    lock(&LIVE).push(Arc::downgrade(recorder));
    STARTED.call_once(|| {
        let upkeep = std::thread::Builder::new()
            .name("wxgate-metrics".into())
            .spawn(|| loop {
                std::thread::sleep(UPKEEP_EVERY);
                let live: Vec<Arc<PrometheusRecorder>> = {
                    let mut live = lock(&LIVE);
                    live.retain(|r| r.strong_count() > 0);
                    live.iter().filter_map(Weak::upgrade).collect()
                };
                for recorder in live {
                    recorder.handle().run_upkeep();
                }
            });
        if let Err(e) = upkeep {
            tracing::warn!(error = %e, "no metrics upkeep thread; histograms drain when rendered");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests recorded by many threads at once are all counted once, and the histogram
    /// renders cumulatively with the configured bounds.
    #[test]
    fn route_figures_from_many_threads_add_up() {
        const THREADS: u64 = 11;
        let metrics = Metrics::new();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
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
            (90 * THREADS).to_string()
        );
        assert_eq!(
            line(&format!("{requests}status=\"500\"}}")),
            (10 * THREADS).to_string()
        );
        let bucket = r#"wxgate_http_request_duration_seconds_bucket{route="/r/{x}","#;
        // Thread 0 answers in 0.3 ms, thread 1 in 1.3 ms, thread 2 in 2.3 ms, …
        assert_eq!(line(&format!("{bucket}le=\"0.0005\"}}")), "100");
        assert_eq!(line(&format!("{bucket}le=\"0.001\"}}")), "100");
        assert_eq!(line(&format!("{bucket}le=\"0.0025\"}}")), "300");
        assert_eq!(
            line(&format!("{bucket}le=\"0.025\"}}")),
            (100 * THREADS).to_string()
        );
        assert_eq!(
            line(&format!("{bucket}le=\"+Inf\"}}")),
            (100 * THREADS).to_string()
        );
        assert_eq!(
            line(r#"wxgate_http_request_duration_seconds_count{route="/r/{x}"}"#),
            (100 * THREADS).to_string()
        );
        assert!(text.contains("# TYPE wxgate_http_request_duration_seconds histogram\n"));
        assert!(text.contains("# TYPE wxgate_http_requests_total counter\n"));
    }

    #[test]
    fn one_route_template_has_one_set_of_figures() {
        let metrics = Metrics::new();
        assert!(Arc::ptr_eq(&metrics.route("/a"), &metrics.route("/a")));
        assert!(!Arc::ptr_eq(&metrics.route("/a"), &metrics.route("/b")));
        assert_eq!(metrics.route("/b").route(), "/b");
    }

    /// Two gateways in one process keep their own numbers (no recorder is process-wide).
    #[test]
    fn each_metrics_has_its_own_numbers() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.upstream_call("main", "cgi-bin/token", "ok");
        a.credential_refresh("main", "access_token", "initial");
        a.route("/x").record(999, Duration::from_millis(1));
        let page = a.render(&[]);
        for line in [
            r#"wxgate_upstream_calls_total{account="main",endpoint="cgi-bin/token",outcome="ok"} 1"#,
            r#"wxgate_credential_refreshes_total{account="main",credential="access_token",reason="initial"} 1"#,
            r#"wxgate_http_requests_total{route="/x",status="999"} 1"#,
            "# HELP wxgate_upstream_calls_total WeChat API calls by account, endpoint and outcome.",
        ] {
            assert!(page.contains(line), "{line} not in {page}");
        }
        assert_eq!(a.upstream_counts("main")["cgi-bin/token"]["ok"], 1);
        assert!(b.upstream_counts("main").is_empty());
        assert!(!b.render(&[]).contains("wxgate_upstream_calls_total{"));
    }

    #[test]
    fn the_upstream_limit_gauges_render_unlabelled() {
        let page = Metrics::new().render(&upstream_limit_gauges(3, 7, 64));
        for line in [
            "# TYPE wxgate_upstream_in_flight gauge\n",
            "\nwxgate_upstream_in_flight 3\n",
            "\nwxgate_upstream_waiting 7\n",
            "\nwxgate_upstream_max_in_flight 64\n",
        ] {
            assert!(page.contains(line), "{line} not in {page}");
        }
    }

    /// Gauges are shown as offered at each render, and only then.
    #[test]
    fn gauges_are_rendered_as_offered() {
        let metrics = Metrics::new();
        let gauge = |account: &str, value: f64| Gauge {
            name: "wxgate_credential_expires_in_seconds",
            help: "Seconds until WeChat's expiry of each cached credential.",
            labels: vec![
                ("account", account.to_owned()),
                ("credential", "access_token".to_owned()),
            ],
            value,
        };
        let page = metrics.render(&[gauge("a", 7199.0), gauge("b", 12.5)]);
        assert!(page.contains("# TYPE wxgate_credential_expires_in_seconds gauge\n"));
        assert!(page.contains(
            "wxgate_credential_expires_in_seconds{account=\"a\",credential=\"access_token\"} 7199\n"
        ));
        assert!(page.contains(
            "wxgate_credential_expires_in_seconds{account=\"b\",credential=\"access_token\"} 12.5\n"
        ));
        let page = metrics.render(&[gauge("b", 11.0)]);
        assert!(!page.contains("account=\"a\""), "{page}");
        assert!(!metrics.render(&[]).contains("expires_in"));
    }
}
