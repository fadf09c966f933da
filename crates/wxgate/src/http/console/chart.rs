//! The 24-hour chart of WeChat calls, drawn on the server as SVG: 24 bars of calls with their
//! errors stacked in another colour, an axis with the hours (UTC), and a `<title>` per bar for
//! screen readers and hovering. No chart library and no script: the data are 24 numbers.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::activity::HourCalls;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 160;
const AXIS: u32 = 20;

/// The chart of `hours` (oldest first), as SVG markup with only numbers from wxgate in it.
pub fn calls_svg(hours: &[HourCalls]) -> String {
    let totals: Vec<(i64, u64, u64)> = hours
        .iter()
        .map(|h| {
            let calls = h.endpoints.iter().map(|e| e.calls).sum();
            let errors = h.endpoints.iter().map(|e| e.errors).sum();
            (h.hour_start, calls, errors)
        })
        .collect();
    let max = totals.iter().map(|t| t.1).max().unwrap_or(0).max(1);
    let n = u32::try_from(totals.len().max(1)).unwrap_or(24);
    let slot = WIDTH / n;
    let plot = HEIGHT - AXIS;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title"><title id="chart-title">WeChat calls per hour, last 24 hours (peak {max})</title>"#
    );
    for (i, (start, calls, errors)) in totals.iter().enumerate() {
        let x = u32::try_from(i).unwrap_or(0) * slot + 2;
        let h = scale(*calls, max, plot);
        let e = scale(*errors, max, plot).min(h);
        let hour = (start / 1000 / 3600).rem_euclid(24);
        let _ = write!(
            svg,
            r#"<g><title>{hour:02}:00 UTC: {calls} calls, {errors} errors</title><rect class="bar" x="{x}" y="{}" width="{}" height="{h}"/><rect class="bar-error" x="{x}" y="{}" width="{}" height="{e}"/></g>"#,
            plot - h,
            slot.saturating_sub(4),
            plot - e,
            slot.saturating_sub(4),
        );
        if i % 3 == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{x}" y="{}">{hour:02}h</text>"#,
                HEIGHT - 4
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn scale(value: u64, max: u64, height: u32) -> u32 {
    u32::try_from(value.saturating_mul(u64::from(height)) / max).unwrap_or(height)
}

/// Calls and errors per endpoint over the 24 hours, most called first.
pub fn totals(hours: &[HourCalls]) -> Vec<Value> {
    let mut by_endpoint: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for h in hours {
        for e in &h.endpoints {
            let t = by_endpoint.entry(&e.endpoint).or_default();
            t.0 += e.calls;
            t.1 += e.errors;
        }
    }
    let mut rows: Vec<(&str, (u64, u64))> = by_endpoint.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .0));
    rows.into_iter()
        .map(|(endpoint, (calls, errors))| json!({ "endpoint": endpoint, "calls": calls, "errors": errors }))
        .collect()
}
