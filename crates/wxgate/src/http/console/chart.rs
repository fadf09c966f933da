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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::EndpointCalls;

    fn hour(start_h: i64, calls: &[(&str, u64, u64)]) -> HourCalls {
        HourCalls {
            hour_start: start_h * 3_600_000,
            endpoints: calls
                .iter()
                .map(|(endpoint, calls, errors)| EndpointCalls {
                    endpoint: (*endpoint).into(),
                    calls: *calls,
                    errors: *errors,
                })
                .collect(),
        }
    }

    #[test]
    fn the_chart_has_a_bar_per_hour_scaled_to_the_busiest() {
        let hours: Vec<HourCalls> = (0..24)
            .map(|h| match h {
                5 => hour(
                    h,
                    &[("cgi-bin/token", 8, 2), ("cgi-bin/ticket/getticket", 2, 0)],
                ),
                9 => hour(h, &[("cgi-bin/token", 5, 0)]),
                _ => hour(h, &[]),
            })
            .collect();
        let svg = calls_svg(&hours);
        assert_eq!(svg.matches("class=\"bar\"").count(), 24);
        assert!(svg.contains("05:00 UTC: 10 calls, 2 errors"), "{svg}");
        // The busiest hour fills the plot; half of it, half the height.
        assert!(
            svg.contains("height=\"140\"/><rect class=\"bar-error\""),
            "{svg}"
        );
        assert!(svg.contains("height=\"70\"/>"), "{svg}");
        assert!(svg.contains("(peak 10)"), "{svg}");
    }

    #[test]
    fn totals_are_per_endpoint_most_called_first() {
        let hours = vec![
            hour(1, &[("a", 1, 0), ("b", 4, 1)]),
            hour(2, &[("a", 2, 2)]),
        ];
        assert_eq!(
            totals(&hours),
            vec![
                json!({"endpoint": "b", "calls": 4, "errors": 1}),
                json!({"endpoint": "a", "calls": 3, "errors": 2}),
            ]
        );
    }
}
