//! The console's HTML: one server-rendered page per account, forms posting back to the
//! console's routes, no script.
//!
//! It is what a person (or the gateway's browser test) sees instead of mp.weixin.qq.com: the
//! sections are titled like WeChat's, every control has a `<label for>` and a stable `id`, and
//! the page reads at 360 px. The ids are the console's contract with browser tests: sections
//! `server`, `push`, `js-domain`, `oauth-domain`, `ip-whitelist`, each with `#<section>-form`,
//! `#<section>-submit` and, after an action, WeChat's message in `#<section>-message`
//! (`data-ok="true"` or `"false"`); fields `server-url`, `server-token`,
//! `server-encoding-aes-key`, `server-mode-{plaintext,compatible,safe}`, `push-kind`,
//! `push-content`, `push-openid`, `js-domain-input`, `oauth-domain-input`, `ip-whitelist-ips`;
//! read-outs `server-status`, `push-reply-type`, `push-reply-content`, `push-reply-xml`,
//! `<domain section>-saved`, `-verify-file` (the download link), `-verify-code`,
//! `ip-whitelist-saved`. Every value shown is HTML-escaped by `html-escape`; nothing submitted
//! is written out raw.

use std::fmt::Write as _;

use axum::response::Html;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::{push, Outcome, Section};
use crate::state::console::{verify_code, verify_file_name, AppConsole, Mode};
use crate::Shared;

/// What the page shows of one account.
pub(crate) struct View {
    appid: String,
    app: AppConsole,
}

impl View {
    pub fn of(shared: &Shared, appid: &str) -> View {
        View {
            appid: appid.to_owned(),
            app: shared.lock().console.app(appid),
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:44rem;\
padding:1rem;line-height:1.5}section{border-top:1px solid #ccc;padding:.5rem 0 1rem}\
label{display:block;margin-top:.6rem;font-weight:600}fieldset label{display:inline;font-weight:400}\
input[type=text],input[type=url],select,textarea{box-sizing:border-box;width:100%;padding:.4rem;\
font:inherit}button{margin-top:.8rem;padding:.5rem 1rem;font:inherit}fieldset{margin-top:.6rem}\
.ok{color:#06791e}.error{color:#b00020}pre{white-space:pre-wrap;word-break:break-all;\
background:#f4f4f4;padding:.5rem}code{word-break:break-all}";

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        text(title)
    );
}

/// `#<section>-message`, when `outcome` concerns `section`.
fn message(out: &mut String, section: Section, outcome: Option<&Outcome>) {
    let Some(o) = outcome.filter(|o| o.section == section) else {
        return;
    };
    let _ = write!(
        out,
        "<p id=\"{id}-message\" role=\"status\" class=\"{class}\" data-ok=\"{ok}\">{msg}</p>",
        id = section.id(),
        class = if o.ok { "ok" } else { "error" },
        ok = o.ok,
        msg = text(&o.message),
    );
    if let Some(reply) = &o.reply {
        let _ = write!(
            out,
            "<p>MsgType: <code id=\"push-reply-type\">{}</code></p>",
            text(&reply.msg_type)
        );
        if let Some(content) = &reply.content {
            let _ = write!(
                out,
                "<p>Content: <span id=\"push-reply-content\">{}</span></p>",
                text(content)
            );
        }
        let _ = write!(out, "<pre id=\"push-reply-xml\">{}</pre>", text(&reply.xml));
    }
}

fn input(out: &mut String, id: &str, name: &str, label: &str, kind: &str, value: &str) {
    let _ = write!(
        out,
        "<label for=\"{id}\">{label}</label><input type=\"{kind}\" id=\"{id}\" name=\"{name}\" \
         value=\"{value}\" autocomplete=\"off\" spellcheck=\"false\">",
        label = text(label),
        value = attr(value),
    );
}

fn form_start(out: &mut String, appid: &str, section: Section, action: &str) {
    let _ = write!(
        out,
        "<form id=\"{id}-form\" method=\"post\" action=\"/__mock/console/{appid}/{action}\">",
        id = section.id(),
        appid = attr(&url_segment(appid)),
    );
}

fn url_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn submit(out: &mut String, section: Section, label: &str) {
    let _ = write!(
        out,
        "<button type=\"submit\" id=\"{}-submit\">{}</button></form>",
        section.id(),
        text(label)
    );
}

fn server_section(out: &mut String, view: &View, outcome: Option<&Outcome>) {
    let s = Section::Server;
    out.push_str("<section id=\"server\"><h2>服务器配置 Server configuration</h2>");
    let saved = view.app.server.as_ref();
    match saved {
        Some(c) => {
            let _ = write!(
                out,
                "<p id=\"server-status\">已启用 Enabled — {} ({}) · <code>{}</code></p>",
                text(c.mode.label()),
                c.mode.as_str(),
                text(&c.url)
            );
        }
        None => out.push_str("<p id=\"server-status\">未启用 Not configured</p>"),
    }
    message(out, s, outcome);
    form_start(out, &view.appid, s, "server");
    let get = |f: fn(&crate::state::console::ServerConfig) -> &str| saved.map(f).unwrap_or("");
    input(
        out,
        "server-url",
        "url",
        "URL 服务器地址",
        "url",
        get(|c| &c.url),
    );
    input(
        out,
        "server-token",
        "token",
        "Token 令牌",
        "text",
        get(|c| &c.token),
    );
    input(
        out,
        "server-encoding-aes-key",
        "encoding_aes_key",
        "EncodingAESKey 消息加解密密钥",
        "text",
        get(|c| &c.encoding_aes_key),
    );
    out.push_str("<fieldset><legend>消息加解密方式 Message encryption mode</legend>");
    let current = saved.map_or(Mode::Plaintext, |c| c.mode);
    for mode in Mode::ALL {
        let id = format!("server-mode-{}", mode.as_str());
        let _ = write!(
            out,
            "<div><input type=\"radio\" id=\"{id}\" name=\"mode\" value=\"{value}\"{checked}> \
             <label for=\"{id}\">{label} {value}</label></div>",
            value = mode.as_str(),
            checked = if mode == current { " checked" } else { "" },
            label = text(mode.label()),
        );
    }
    out.push_str("</fieldset>");
    submit(out, s, "提交 Submit");
    out.push_str("</section>");
}

fn push_section(out: &mut String, view: &View, outcome: Option<&Outcome>) {
    let s = Section::Push;
    out.push_str("<section id=\"push\"><h2>发送测试消息 Send a test message</h2>");
    message(out, s, outcome);
    form_start(out, &view.appid, s, "push");
    out.push_str(
        "<label for=\"push-kind\">消息类型 Message</label><select id=\"push-kind\" name=\"kind\">\
         <option value=\"text\" selected>文本消息 text message</option>\
         <option value=\"subscribe\">关注事件 subscribe event</option></select>",
    );
    input(
        out,
        "push-content",
        "content",
        "文本内容 Text content",
        "text",
        "hello",
    );
    let openid = push::default_openid(&view.appid);
    input(
        out,
        "push-openid",
        "openid",
        "发送者 openid Sender",
        "text",
        &openid,
    );
    submit(out, s, "发送 Send");
    out.push_str("</section>");
}

fn domain_section(
    out: &mut String,
    view: &View,
    outcome: Option<&Outcome>,
    section: Section,
    title: &str,
) {
    let id = section.id();
    let saved = match section {
        Section::OauthDomain => view.app.oauth_domain.as_deref(),
        _ => view.app.js_domain.as_deref(),
    };
    let file = verify_file_name(&view.appid);
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2>{title}</h2><p id=\"{id}-saved\">{saved}</p>\
         <p>请将文件 <a id=\"{id}-verify-file\" href=\"/__mock/console/{appid}/{file_href}\" \
         download>{file}</a>（内容 content: <code id=\"{id}-verify-code\">{code}</code>）\
         上传至域名根目录 — upload it to the domain's root.</p>",
        title = text(title),
        saved = match saved {
            Some(d) => format!("已设置 Saved: <code>{}</code>", text(d)),
            None => "未设置 Not set".to_owned(),
        },
        appid = attr(&url_segment(&view.appid)),
        file_href = attr(&file),
        file = text(&file),
        code = text(&verify_code(&view.appid)),
    );
    message(out, section, outcome);
    let action = match section {
        Section::OauthDomain => "oauth_domain",
        _ => "js_domain",
    };
    form_start(out, &view.appid, section, action);
    input(
        out,
        &format!("{id}-input"),
        "domain",
        "域名 Domain (host[:port])",
        "text",
        saved.unwrap_or(""),
    );
    submit(out, section, "保存 Save");
    out.push_str("</section>");
}

fn whitelist_section(out: &mut String, view: &View, outcome: Option<&Outcome>) {
    let s = Section::IpWhitelist;
    let ips: Vec<String> = view
        .app
        .ip_whitelist
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = write!(
        out,
        "<section id=\"ip-whitelist\"><h2>IP白名单 IP whitelist</h2><p id=\"ip-whitelist-saved\">{}</p>",
        if ips.is_empty() {
            "未设置：不限制 Not set: any IP may fetch access tokens".to_owned()
        } else {
            format!("已设置 Saved: {}", text(&ips.join(", ")))
        }
    );
    message(out, s, outcome);
    form_start(out, &view.appid, s, "ip_whitelist");
    let _ = write!(
        out,
        "<label for=\"ip-whitelist-ips\">IP地址（每行一个） IP addresses, one a line</label>\
         <textarea id=\"ip-whitelist-ips\" name=\"ips\" rows=\"4\">{}</textarea>",
        text(&ips.join("\n"))
    );
    submit(out, s, "保存 Save");
    out.push_str("</section>");
}

/// The account's console, with `outcome`'s message in its section.
pub(crate) fn render(view: &View, outcome: Option<&Outcome>) -> Html<String> {
    let mut out = String::with_capacity(8 * 1024);
    head(
        &mut out,
        &format!("基本配置 · 公众号设置 — {} — mock WeChat", view.appid),
    );
    let _ = write!(
        out,
        "<header><h1 id=\"console-title\">设置与开发 · 基本配置</h1>\
         <p>AppID 开发者ID: <code id=\"console-appid\">{}</code> · 原始ID: <code>{}</code></p>\
         <p><small>wxgate-mock's stand-in for mp.weixin.qq.com.</small></p></header>",
        text(&view.appid),
        text(&push::original_id(&view.appid)),
    );
    server_section(&mut out, view, outcome);
    push_section(&mut out, view, outcome);
    domain_section(
        &mut out,
        view,
        outcome,
        Section::JsDomain,
        "JS接口安全域名 JS-safe domain",
    );
    domain_section(
        &mut out,
        view,
        outcome,
        Section::OauthDomain,
        "网页授权域名 Web-authorization domain",
    );
    whitelist_section(&mut out, view, outcome);
    out.push_str("</body></html>");
    Html(out)
}

/// The console's 404 for an appid the mock does not know.
pub(crate) fn not_found(appid: &str) -> Html<String> {
    let mut out = String::new();
    head(&mut out, "404 — mock WeChat console");
    let _ = write!(
        out,
        "<h1>404</h1><p id=\"console-error\">未知的 AppID unknown appid: <code>{}</code></p>\
         <p><a href=\"/__mock/console\">accounts</a></p></body></html>",
        text(appid)
    );
    Html(out)
}

/// The list of accounts, each a link to its console.
pub(crate) fn index(appids: &[String]) -> Html<String> {
    let mut out = String::new();
    head(&mut out, "mock WeChat console");
    out.push_str("<h1>公众号 Accounts</h1><ul id=\"console-accounts\">");
    for appid in appids {
        let _ = write!(
            out,
            "<li><a href=\"/__mock/console/{}\">{}</a></li>",
            attr(&url_segment(appid)),
            text(appid)
        );
    }
    out.push_str("</ul></body></html>");
    Html(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_values_are_escaped() {
        let app = AppConsole {
            js_domain: Some("<script>x</script>".into()),
            ..AppConsole::default()
        };
        let view = View {
            appid: "wx\"><b>".into(),
            app,
        };
        let html = render(&view, None).0;
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        for id in [
            "server-url",
            "server-token",
            "server-encoding-aes-key",
            "server-mode-safe",
            "push-kind",
            "push-content",
            "push-openid",
            "js-domain-input",
            "oauth-domain-input",
            "ip-whitelist-ips",
        ] {
            assert!(html.contains(&format!("<label for=\"{id}\"")), "{id}");
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
    }
}
