//! In-process counters behind `/metrics` and the status API.
//!
//! A handful of labelled counters and histograms is all wxgate needs, so they are kept here in
//! plain maps rather than pulling in a metrics framework; rendering follows the Prometheus text
//! exposition format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the HTTP latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Requests of one route: counts by status and the latency histogram.
#[derive(Default)]
struct RouteStats {
    by_status: Vec<(u16, u64)>,
    latency: Histogram,
}

#[derive(Default)]
struct Inner {
    upstream_calls: BTreeMap<(String, String, String), u64>,
    refreshes: BTreeMap<(String, String, String), u64>,
    /// Looked up by `&str` on every request, so the hot path allocates nothing.
    http: HashMap<String, RouteStats>,
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
        f(&mut crate::domain::lock(&self.inner))
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

    /// One HTTP request served, by route template (never the raw path: it may hold codes).
    pub fn http_request(&self, route: &str, status: u16, latency: Duration) {
        self.with(|i| {
            let stats = match i.http.get_mut(route) {
                Some(s) => s,
                None => i.http.entry(route.to_owned()).or_default(),
            };
            match stats.by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => stats.by_status.push((status, 1)),
            }
            let h = &mut stats.latency;
            let secs = latency.as_secs_f64();
            for (slot, bound) in h.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if secs <= bound {
                    *slot += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        });
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
            let mut routes: Vec<(&String, &RouteStats)> = i.http.iter().collect();
            routes.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("# HELP wxgate_http_requests_total HTTP requests by route and status.\n# TYPE wxgate_http_requests_total counter\n");
            for (r, stats) in &routes {
                let mut by_status = stats.by_status.clone();
                by_status.sort_unstable();
                for (s, n) in by_status {
                    let _ = writeln!(out, "wxgate_http_requests_total{{route=\"{}\",status=\"{s}\"}} {n}", esc(r));
                }
            }
            out.push_str("# HELP wxgate_http_request_duration_seconds HTTP request latency by route.\n# TYPE wxgate_http_request_duration_seconds histogram\n");
            for (r, h) in routes.iter().map(|(r, s)| (r, &s.latency)) {
                for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                    let _ = writeln!(out, "wxgate_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{bound}\"}} {n}", esc(r));
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
