//! What the templates are given: times in words, health lines, and the context every page
//! shares (the CSRF token for its forms, the server's name for its title).

use minijinja::Value;
use serde_json::json;

use crate::credentials::{ErrorRecord, HealthLine};
use crate::domain::unix_now;

/// Unix seconds as `2026-12-06 05:20:11 UTC`.
pub fn utc(unix_s: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix_s.to_string())
}

/// How long ago unix second `at` was, in a word or two.
pub fn ago(at: i64) -> String {
    let s = unix_now().saturating_sub(at);
    match s {
        i64::MIN..=4 => "just now".to_owned(),
        5..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A duration in seconds as `1 h 58 min`, `4 min 10 s`.
pub fn span(s: i64) -> String {
    match s {
        i64::MIN..=0 => "expired".to_owned(),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

pub fn error(e: &ErrorRecord) -> serde_json::Value {
    json!({
        "at": utc(e.at),
        "ago": ago(e.at),
        "message": e.message,
        "hint": e.hint,
        "errcode": e.wechat_errcode,
    })
}

pub fn health(line: &HealthLine) -> serde_json::Value {
    json!({
        "word": line.health.as_str(),
        "expires_in": line.expires_in.map(span),
        "last_error": line.last_error.as_ref().map(error),
    })
}

/// The context of every signed-in page, with `page`'s own values merged in.
pub fn page(csrf: &str, title: &str, values: serde_json::Value) -> Value {
    let mut ctx = json!({
        "csrf": csrf,
        "title": title,
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(ctx), serde_json::Value::Object(values)) = (ctx.as_object_mut(), values) {
        ctx.extend(values);
    }
    Value::from_serialize(&ctx)
}
