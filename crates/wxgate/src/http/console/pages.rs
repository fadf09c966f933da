//! The overview (every account's health line, filtered and paged; the platforms; the server's
//! facts) and an account's page (credentials with live countdowns, refresh history, the last
//! 24 hours of WeChat calls, quota on demand, the last pushes, users, settings).

use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde_json::{json, Value};

use super::session::SignedIn;
use super::{chart, failure, message, render, view};
use crate::activity;
use crate::admin;
use crate::console::overview::{self, Filter};
use crate::console::settings::{self, SettingsForm};
use crate::console::ConsoleError;
use crate::credentials::Health;
use crate::http::AppState;
use crate::query;
use crate::registry::record::Source;

fn url_kind(url: &str) -> &'static str {
    match url.split_once(':').map_or("", |(scheme, _)| scheme) {
        "memory" => "memory",
        "sqlite" => "SQLite",
        "redis" => "Redis",
        "redis+sentinel" => "Redis (Sentinel)",
        "postgres" | "postgresql" => "PostgreSQL",
        "mongodb" => "MongoDB",
        _ => "unknown",
    }
}

/// `GET /admin/overview?q=&health=&page=`; with `HX-Request`, the accounts table alone.
pub async fn overview(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let [q, health, page] = query::params(raw.as_deref(), ["q", "health", "page"]);
    let filter = Filter {
        text: q.and_then(Result::ok).unwrap_or_default(),
        health: health
            .and_then(Result::ok)
            .as_deref()
            .and_then(Health::parse),
        page: page
            .and_then(Result::ok)
            .and_then(|p| p.parse().ok())
            .unwrap_or(1),
    };
    let page = match overview::overview(&state, &filter).await {
        Ok(page) => page,
        Err(e) => return failure(e.into()),
    };
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "appid": r.appid,
                "kind": r.kind,
                "source": r.source,
                "health": view::health(&r.health),
                "last_push": r.last_push.map(|ms| view::ago(ms / 1000)),
            })
        })
        .collect();
    let health_word = filter.health.map(Health::as_str).unwrap_or("");
    let table = json!({
        "rows": rows,
        "matching": page.matching,
        "total": page.total,
        "page": page.page,
        "pages": page.pages,
        "q": filter.text,
        "health": health_word,
        "prev": (page.page > 1).then(|| page.page - 1),
        "next": (page.page < page.pages).then(|| page.page + 1),
    });
    if headers.contains_key("hx-request") {
        return render(
            StatusCode::OK,
            "overview_table.html",
            view::page(&me.session.csrf, "Overview", table),
        );
    }
    let platforms: Vec<Value> = overview::platforms(&state)
        .await
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "appid": p.appid,
                "health": view::health(&p.health),
                "authorizers": p.authorizers,
            })
        })
        .collect();
    let instances: Vec<Value> = state
        .activity
        .instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| json!({ "id": i.id, "version": i.version, "seen": view::ago(i.last_seen / 1000) }))
        .collect();
    let egress = state
        .activity
        .learned_egress_ip()
        .await
        .ok()
        .flatten()
        .map(|(ip, at)| json!({ "ip": ip, "ago": view::ago(at / 1000) }));
    let by_health: Vec<Value> = page
        .by_health
        .iter()
        .map(|(h, n)| json!({ "word": h.as_str(), "count": n }))
        .collect();
    let mut ctx = table;
    ctx["table"] = ctx.clone();
    ctx["platforms"] = json!(platforms);
    ctx["by_health"] = json!(by_health);
    ctx["server"] = json!({
        "store": url_kind(&state.settings.storage.url),
        "database": url_kind(&state.settings.database.url),
        "instances": instances,
        "egress": egress,
        "public_url": state.settings.server.public_url,
    });
    render(
        StatusCode::OK,
        "overview.html",
        view::page(&me.session.csrf, "Overview", ctx),
    )
}

/// `GET /admin/accounts/{name}[?user=<openid or unionid>]`.
pub async fn account(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let entry = match admin::account(&state, &name) {
        Ok(entry) => entry,
        Err(e) => return failure(e.into()),
    };
    let credentials: Vec<Value> = state
        .creds
        .status(&name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            json!({
                "credential": c.credential,
                "present": c.present,
                "expires_at": c.expires_at,
                "expires_in": c.expires_in.map(view::span),
                "fetched": c.last_refresh_at.map(view::ago),
                "reason": c.last_refresh_reason,
                "refreshes_here": c.refreshes_by_this_instance,
                "last_error": c.last_error.as_ref().map(view::error),
            })
        })
        .collect();
    let refreshes: Vec<Value> = state
        .activity
        .refreshes(&name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({
                "at": view::utc(r.at / 1000),
                "kind": r.kind.as_str(),
                "ok": r.ok,
                "forced": r.forced,
                "errcode": r.errcode,
                "message": r.message,
            })
        })
        .collect();
    let hours = state.activity.calls_24h(&name).await.unwrap_or_default();
    let pushes: Vec<Value> = state
        .activity
        .pushes(&name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            json!({
                "at": view::utc(p.at / 1000),
                "ago": view::ago(p.at / 1000),
                "kind": p.kind,
                "answered_by": answered(&p.answered_by),
                "encrypted": p.encrypted,
                "content": p.content,
            })
        })
        .collect();
    let [user, saved] = query::params(raw.as_deref(), ["user", "saved"]);
    let search = user
        .and_then(Result::ok)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let users_db = state.users.for_account(&name);
    // An openid of this account, else a unionid: that person in every account.
    let found: Vec<Value> = match &search {
        Some(id) => match users_db.get(id).await.ok().flatten() {
            Some(user) => vec![json!({ "account": name, "user": user })],
            None => users_db
                .find_by_unionid(id)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|u| json!({ "account": u.account, "user": u.user }))
                .collect(),
        },
        None => Vec::new(),
    };
    let users = users_db.list(None, 20).await.unwrap_or_default();
    let editable = matches!(entry.source, Source::Database);
    let current = settings::editable(&entry);
    let ctx = json!({
        "name": name,
        "appid": entry.account.appid,
        "kind": current.get("kind").and_then(Value::as_str).unwrap_or("official"),
        "source": overview::source_label(&entry.source),
        "editable": editable,
        "settings": current,
        "rules_json": serde_json::to_string_pretty(&current["rules"]).unwrap_or_default(),
        "has": {
            "secret": !secrecy::ExposeSecret::expose_secret(&entry.account.secret).is_empty(),
            "token": entry.settings.has_token,
            "encoding_aes_key": entry.settings.has_encoding_aes_key,
        },
        "credentials": credentials,
        "refreshes": refreshes,
        "chart": chart::calls_svg(&hours),
        "endpoints": chart::totals(&hours),
        "pushes": pushes,
        "search": search,
        "saved": saved.is_some(),
        "found": found,
        "users": users,
    });
    render(
        StatusCode::OK,
        "account.html",
        view::page(&me.session.csrf, &name, ctx),
    )
}

fn answered(a: &activity::Answered) -> &'static str {
    match a {
        activity::Answered::Rule => "rule",
        activity::Answered::Webhook => "webhook",
        activity::Answered::LateReply => "late reply",
        activity::Answered::Nothing => "nothing",
    }
}

/// `POST /admin/accounts/{name}/quota` (htmx): WeChat's daily quota of the main APIs.
pub async fn quota(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(name): Path<String>,
) -> Response {
    let Some(account) = state.account(&name) else {
        return failure(ConsoleError::Admin(admin::AdminError::UnknownAccount(name)));
    };
    let ctx = match activity::quota(&state, &account, &activity::quota::MAIN_PATHS).await {
        Ok(quotas) => json!({ "quotas": quotas }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    render(
        StatusCode::OK,
        "quota.html",
        view::page(&me.session.csrf, &name, ctx),
    )
}

/// `POST /admin/accounts/{name}/settings`: the settings form, through the admin service.
pub async fn save_settings(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let entry = match admin::account(&state, &name) {
        Ok(entry) => entry,
        Err(e) => return failure(e.into()),
    };
    let body = match settings::apply_form(settings::editable(&entry), &form) {
        Ok(body) => body,
        Err(e) => return failure(e),
    };
    match admin::put_account(&state, &name, body.to_string().as_bytes()).await {
        Ok(_) => super::session::see_other(&format!("/admin/accounts/{name}?saved=1")),
        Err(e) => failure(e.into()),
    }
}

/// `POST /admin/accounts/{name}/verify-file` (multipart, one file): serves WeChat's
/// `MP_verify_….txt` for the account's domains.
pub async fn upload_verify_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let mut upload = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = field.file_name().unwrap_or("").to_owned();
        match field.text().await {
            Ok(text) => upload = Some((file_name, text)),
            Err(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Not uploaded",
                    "The file could not be read as text.",
                )
            }
        }
    }
    let Some((file_name, content)) = upload else {
        return message(
            StatusCode::BAD_REQUEST,
            "Not uploaded",
            "Choose the MP_verify file to upload.",
        );
    };
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or("");
    let valid = base.starts_with("MP_verify_")
        && base.ends_with(".txt")
        && base.len() <= 64
        && base[10..base.len() - 4]
            .chars()
            .all(|c| c.is_ascii_alphanumeric());
    if !valid || content.len() > 256 {
        return message(
            StatusCode::BAD_REQUEST,
            "Not uploaded",
            "That is not a WeChat verification file: its name is MP_verify_<letters and digits>.txt and it holds a short code.",
        );
    }
    let entry = match admin::account(&state, &name) {
        Ok(entry) => entry,
        Err(e) => return failure(e.into()),
    };
    let mut body = settings::editable(&entry);
    body["verify_files"][base] = json!(content.trim());
    match admin::put_account(&state, &name, body.to_string().as_bytes()).await {
        Ok(_) => super::session::see_other(&format!("/admin/onboard/{name}?uploaded=1")),
        Err(e) => failure(e.into()),
    }
}
