//! A small "WeChat console" per test account: what an operator does on mp.weixin.qq.com →
//! 设置与开发 (基本配置, 公众号设置), played by the mock under `/__mock/console/{appid}`.
//!
//! A gateway's onboarding can only be tested end to end if something plays WeChat's side of
//! it: verifying the server URL with a signed GET and `echostr`, pushing messages to it once
//! saved, fetching `MP_verify_<code>.txt` before saving a domain, and enforcing the IP
//! whitelist and the web-authorization domain afterwards. Every action is both a form (the
//! server-rendered page of [`page`], for a person or a headless browser: POST, then the page
//! again with WeChat's message in the section acted on) and a JSON control (the same route with
//! a JSON body answers `{"ok", "message", …}`). The lock is never held across the outgoing
//! requests, which wait at most 5 s (WeChat's own limit) and read at most 64 KiB. Saved
//! settings live in [`crate::state::console`]; the token endpoints and the OAuth authorize page
//! consult them.

mod page;
pub(crate) mod push;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Map, Value};

use self::push::{PushKind, Reply};
use crate::routes::{bad_request, not_json};
use crate::state::console::{
    check_domain, check_server, parse_ips, verify_code, verify_file_name, Mode, ServerConfig,
};
use crate::Shared;

type St = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__mock/console", get(index))
        .route("/__mock/console/{appid}", get(console_page))
        .route("/__mock/console/{appid}/server", post(server))
        .route("/__mock/console/{appid}/push", post(push_message))
        .route("/__mock/console/{appid}/js_domain", post(js_domain))
        .route("/__mock/console/{appid}/oauth_domain", post(oauth_domain))
        .route("/__mock/console/{appid}/ip_whitelist", post(ip_whitelist))
        .route("/__mock/console/{appid}/state", get(saved_state))
        .route("/__mock/console/{appid}/{file}", get(verify_file))
}

/// The page's sections (each an HTML id prefix too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Server,
    Push,
    JsDomain,
    OauthDomain,
    IpWhitelist,
}

impl Section {
    pub fn id(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Push => "push",
            Section::JsDomain => "js-domain",
            Section::OauthDomain => "oauth-domain",
            Section::IpWhitelist => "ip-whitelist",
        }
    }
}

/// What an action ended with: WeChat's message, shown in its section or answered as JSON.
pub(crate) struct Outcome {
    pub section: Section,
    pub ok: bool,
    pub message: String,
    /// A push's accepted reply.
    pub reply: Option<Reply>,
    /// More JSON fields of the answer.
    extra: Map<String, Value>,
}

impl Outcome {
    fn new(section: Section, ok: bool, message: impl Into<String>) -> Self {
        Self {
            section,
            ok,
            message: message.into(),
            reply: None,
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

/// A form post answers with the page, a JSON post with JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Form,
    Json,
}

/// Why an action was not even tried.
enum Refusal {
    /// A body neither a form nor a JSON object.
    NotJson,
    /// An appid the mock does not know.
    UnknownAppid(Via),
}

impl Refusal {
    fn answer(self, appid: &str) -> Response {
        match self {
            Refusal::NotJson => not_json(),
            Refusal::UnknownAppid(via) => unknown_appid(via, appid),
        }
    }
}

/// The submitted fields of a known account's action, as a JSON object (form fields are
/// strings).
fn input(
    shared: &Shared,
    appid: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Via, Value), Refusal> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let (via, fields) = if is_form {
        let fields: Map<String, Value> = url::form_urlencoded::parse(body)
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        (Via::Form, Value::Object(fields))
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => (Via::Json, v),
            _ => return Err(Refusal::NotJson),
        }
    };
    if !known(shared, appid) {
        return Err(Refusal::UnknownAppid(via));
    }
    Ok((via, fields))
}

fn text<'a>(fields: &'a Value, key: &str) -> &'a str {
    fields.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn known(shared: &Shared, appid: &str) -> bool {
    shared.lock().known_appid(appid)
}

fn unknown_appid(via: Via, appid: &str) -> Response {
    let message = format!("unknown appid {appid:?}: the mock has no such account");
    match via {
        Via::Form => (StatusCode::NOT_FOUND, page::not_found(appid)).into_response(),
        Via::Json => (
            StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "message": message})),
        )
            .into_response(),
    }
}

fn respond(shared: &Shared, appid: &str, via: Via, outcome: Outcome) -> Response {
    match via {
        Via::Form => page::render(&page::View::of(shared, appid), Some(&outcome)).into_response(),
        Via::Json => {
            let mut answer = outcome.extra;
            answer.insert("ok".into(), Value::Bool(outcome.ok));
            answer.insert("message".into(), Value::String(outcome.message));
            Json(Value::Object(answer)).into_response()
        }
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // The URLs are the tests' own servers: no proxy from the environment, no redirects
        // (WeChat follows none), WeChat's 5 s.
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

/// The most of an answer the console reads.
const MAX_ANSWER: usize = 64 * 1024;

/// Status and (at most [`MAX_ANSWER`] bytes of) body of a request.
async fn fetch(request: reqwest::RequestBuilder) -> Result<(u16, String), reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn index(State(shared): St) -> Response {
    page::index(&shared.lock().appids()).into_response()
}

async fn console_page(State(shared): St, Path(appid): Path<String>) -> Response {
    if !known(&shared, &appid) {
        return unknown_appid(Via::Form, &appid);
    }
    page::render(&page::View::of(&shared, &appid), None).into_response()
}

/// WeChat's check of a new server URL: a signed GET whose answer must be `echostr` exactly.
async fn verify_url(server: &ServerConfig) -> Result<(), String> {
    let mut url = url::Url::parse(&server.url).map_err(|_| "URL格式错误".to_owned())?;
    let timestamp = crate::platform::push::unix_now().to_string();
    let (nonce, echostr) = {
        let mut rng = rand::thread_rng();
        (
            rng.gen_range(100_000_000u32..2_000_000_000).to_string(),
            rng.gen_range(1_000_000_000_000_000u64..u64::MAX)
                .to_string(),
        )
    };
    url.query_pairs_mut()
        .append_pair(
            "signature",
            &crate::platform::crypto::signature(&server.token, &timestamp, &nonce),
        )
        .append_pair("timestamp", &timestamp)
        .append_pair("nonce", &nonce)
        .append_pair("echostr", &echostr);
    let (status, body) = fetch(client().get(url.as_str()))
        .await
        .map_err(|_| "请求URL超时".to_owned())?;
    if !(200..300).contains(&status) {
        return Err(format!("token验证失败（URL 返回 HTTP {status}）"));
    }
    if body != echostr {
        return Err("token验证失败".into());
    }
    Ok(())
}

/// 服务器配置: `{url, token, encoding_aes_key, mode}` → verified against the URL, then saved.
async fn server(
    State(shared): St,
    Path(appid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (via, fields) = match input(&shared, &appid, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.answer(&appid),
    };
    let fail = |message: String| Outcome::new(Section::Server, false, message);
    let mode = match text(&fields, "mode") {
        "" => Some(Mode::Plaintext),
        m => Mode::parse(m),
    };
    let outcome = match mode {
        None => fail("请选择消息加解密方式（plaintext、compatible 或 safe）".into()),
        Some(mode) => match check_server(
            text(&fields, "url"),
            text(&fields, "token"),
            text(&fields, "encoding_aes_key").trim(),
            mode,
        ) {
            Err(message) => fail(message),
            Ok(config) => match verify_url(&config).await {
                Err(message) => fail(message),
                Ok(()) => {
                    tracing::debug!(%appid, mode = config.mode.as_str(), "mock console: server saved");
                    shared.lock().console.app_mut(&appid).server = Some(config);
                    Outcome::new(Section::Server, true, "提交成功")
                }
            },
        },
    };
    respond(&shared, &appid, via, outcome)
}

/// 发送测试消息: `{kind: "text"|"subscribe", content?, openid?}` pushed to the saved URL.
async fn push_message(
    State(shared): St,
    Path(appid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (via, fields) = match input(&shared, &appid, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.answer(&appid),
    };
    let outcome = push_outcome(&shared, &appid, &fields).await;
    respond(&shared, &appid, via, outcome)
}

async fn push_outcome(shared: &Shared, appid: &str, fields: &Value) -> Outcome {
    let fail = |message: String| Outcome::new(Section::Push, false, message);
    let kind = match text(fields, "kind") {
        "" | "text" => {
            let content = text(fields, "content");
            PushKind::Text(if content.is_empty() { "hello" } else { content }.to_owned())
        }
        "subscribe" => PushKind::Subscribe,
        other => return fail(format!("unknown kind {other:?} (text or subscribe)")),
    };
    let openid = match text(fields, "openid").trim() {
        "" => push::default_openid(appid),
        given => given.to_owned(),
    };
    let Some(server) = shared.lock().console.app(appid).server else {
        return fail("请先完成服务器配置（URL 未验证）".into());
    };
    let sealed = match push::seal(appid, &server, &kind, &openid) {
        Ok(sealed) => sealed,
        Err(message) => return fail(message),
    };
    let request = client()
        .post(&sealed.url)
        .header(header::CONTENT_TYPE.as_str(), "text/xml")
        .body(sealed.body);
    let (status, answer) = match fetch(request).await {
        Ok(answer) => answer,
        Err(e) if e.is_timeout() => return fail("请求URL超时（5 秒内没有回复）".into()),
        Err(_) => return fail("请求URL超时（无法连接）".into()),
    };
    if !(200..300).contains(&status) {
        return fail(format!("URL 返回 HTTP {status}"));
    }
    match push::open_reply(appid, &server, &sealed.openid, &answer) {
        Err(message) => fail(message),
        Ok(None) => Outcome::new(Section::Push, true, "no reply (success)")
            .with("reply", Value::Null)
            .with("openid", json!(sealed.openid)),
        Ok(Some(reply)) => {
            let shown = reply
                .content
                .clone()
                .unwrap_or_else(|| reply.msg_type.clone());
            let mut outcome = Outcome::new(Section::Push, true, format!("回复 reply: {shown}"))
                .with("reply", reply.to_json())
                .with("openid", json!(sealed.openid));
            outcome.reply = Some(reply);
            outcome
        }
    }
}

/// WeChat's check of a domain: `http://<domain>/MP_verify_<code>.txt` must hold `<code>`.
async fn check_verify_file(appid: &str, domain: &str) -> Result<(), String> {
    let url = format!("http://{domain}/{}", verify_file_name(appid));
    let unreachable =
        |detail: String| format!("无法访问 {url}（{detail}），请确认文件已上传至域名根目录");
    let (status, body) = fetch(client().get(&url)).await.map_err(|e| {
        unreachable(if e.is_timeout() {
            "超时".into()
        } else {
            "无法连接".into()
        })
    })?;
    if status != 200 {
        return Err(unreachable(format!("HTTP {status}")));
    }
    if body.trim() != verify_code(appid) {
        return Err("文件内容不一致".into());
    }
    Ok(())
}

async fn domain_action(shared: &Shared, appid: &str, section: Section, fields: &Value) -> Outcome {
    let domain = match check_domain(text(fields, "domain")) {
        Ok(domain) => domain,
        Err(message) => return Outcome::new(section, false, message),
    };
    if let Err(message) = check_verify_file(appid, &domain).await {
        return Outcome::new(section, false, message);
    }
    {
        let mut s = shared.lock();
        let app = s.console.app_mut(appid);
        match section {
            Section::OauthDomain => app.oauth_domain = Some(domain.clone()),
            _ => app.js_domain = Some(domain.clone()),
        }
    }
    Outcome::new(section, true, "提交成功").with("domain", json!(domain))
}

async fn domain_route(
    shared: &Shared,
    appid: &str,
    section: Section,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let (via, fields) = match input(shared, appid, headers, body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.answer(appid),
    };
    let outcome = domain_action(shared, appid, section, &fields).await;
    respond(shared, appid, via, outcome)
}

/// JS接口安全域名: `{domain}`.
async fn js_domain(
    State(shared): St,
    Path(appid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    domain_route(&shared, &appid, Section::JsDomain, &headers, &body).await
}

/// 网页授权域名: `{domain}`.
async fn oauth_domain(
    State(shared): St,
    Path(appid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    domain_route(&shared, &appid, Section::OauthDomain, &headers, &body).await
}

/// IP白名单: `{ips: [..]}` (the form's textarea: one address a line); empty: no check.
async fn ip_whitelist(
    State(shared): St,
    Path(appid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (via, fields) = match input(&shared, &appid, &headers, &body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.answer(&appid),
    };
    let entries: Vec<&str> = match fields.get("ips") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => match items.iter().map(Value::as_str).collect() {
            Some(entries) => entries,
            None => return bad_request("`ips` must be a list of strings"),
        },
        Some(_) => return bad_request("`ips` must be a list of strings"),
    };
    let outcome = match parse_ips(entries) {
        Err(message) => Outcome::new(Section::IpWhitelist, false, message),
        Ok(ips) => {
            let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
            shared.lock().console.app_mut(&appid).ip_whitelist = ips;
            let message = if shown.is_empty() {
                "提交成功（白名单为空：不限制IP）"
            } else {
                "提交成功"
            };
            Outcome::new(Section::IpWhitelist, true, message).with("ips", json!(shown))
        }
    };
    respond(&shared, &appid, via, outcome)
}

/// What is saved for `appid` (Token and EncodingAESKey included: this is a test control).
async fn saved_state(State(shared): St, Path(appid): Path<String>) -> Response {
    if !known(&shared, &appid) {
        return unknown_appid(Via::Json, &appid);
    }
    let app = shared.lock().console.app(&appid);
    let server = app.server.as_ref().map(|s| {
        json!({
            "url": s.url,
            "token": s.token,
            "encoding_aes_key": s.encoding_aes_key,
            "mode": s.mode.as_str(),
        })
    });
    let ips: Vec<String> = app.ip_whitelist.iter().map(ToString::to_string).collect();
    Json(json!({
        "appid": appid,
        "server": server,
        "js_domain": app.js_domain,
        "oauth_domain": app.oauth_domain,
        "ip_whitelist": ips,
        "verify_file": verify_file_name(&appid),
        "verify_code": verify_code(&appid),
        "original_id": push::original_id(&appid),
        "default_openid": push::default_openid(&appid),
    }))
    .into_response()
}

/// The download of the account's `MP_verify_<code>.txt`.
async fn verify_file(State(shared): St, Path((appid, file)): Path<(String, String)>) -> Response {
    if !known(&shared, &appid) || file != verify_file_name(&appid) {
        return (StatusCode::NOT_FOUND, "404 Not Found").into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        verify_code(&appid),
    )
        .into_response()
}
