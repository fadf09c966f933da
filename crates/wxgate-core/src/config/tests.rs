//! Unit tests of the parent module, kept in their own file so the module reads short.

use super::*;

const MINIMAL: &str = r#"
[[accounts]]
name = "main"
appid = "wx1234567890abcdef"
secret = "s3cr3t-app-secret"
"#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_toml_and_env(
        text,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

fn err_key(r: Result<Settings, ConfigError>) -> String {
    match r {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn defaults_fill_every_section_but_the_account_credentials() {
    let s = load(MINIMAL, &[]).unwrap();
    assert_eq!(s.server.listen, "127.0.0.1:8080");
    assert_eq!(s.server.max_body_bytes, 1_048_576);
    assert_eq!(s.storage.url, "sqlite://wxgate.db");
    assert_eq!(s.storage.key_prefix, "wxgate:");
    assert_eq!(s.push.replay_window_s, 600);
    assert_eq!(s.upstream.api_base, "https://api.weixin.qq.com");
    assert_eq!(s.upstream.timeout_ms, 5000);
    assert!(s.api.keys.is_empty());
    assert_eq!(s.accounts[0].token_api, TokenApi::Stable);
}

#[test]
fn environment_overrides_sections_and_account_secrets() {
    let s = load(
        MINIMAL,
        &[
            ("WXGATE__SERVER__LISTEN", "0.0.0.0:9000"),
            ("WXGATE__SERVER__MAX_BODY_BYTES", "4096"),
            ("WXGATE__API__KEYS", "k1,k2"),
            ("WXGATE__ACCOUNTS__MAIN__SECRET", "from-env"),
            ("WXGATE__ACCOUNTS__MAIN__TOKEN", "abc123"),
            ("OTHER", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(s.server.listen, "0.0.0.0:9000");
    assert_eq!(s.server.max_body_bytes, 4096);
    assert_eq!(s.api.keys.len(), 2);
    assert_eq!(s.accounts[0].secret.expose_secret(), "from-env");
    assert_eq!(
        s.accounts[0].token.as_ref().unwrap().expose_secret(),
        "abc123"
    );
}

#[test]
fn env_for_an_unknown_account_is_an_error_naming_the_variable() {
    let key = err_key(load(MINIMAL, &[("WXGATE__ACCOUNTS__NOPE__SECRET", "x")]));
    assert_eq!(key, "WXGATE__ACCOUNTS__NOPE__SECRET");
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let r = load(&format!("[server]\nlisten_addr = \"x\"\n{MINIMAL}"), &[]);
    let Err(ConfigError::Invalid { key, message }) = r else {
        panic!("expected an error");
    };
    assert_eq!(key, "server.listen_addr");
    assert!(message.contains("listen_addr"), "{message}");
}

#[test]
fn js_domains_take_hosts_with_an_optional_port_and_refuse_schemes_and_paths() {
    let with = |d: &str| load(&format!("{MINIMAL}js_domains = [{d:?}]\n"), &[]);
    for ok in [
        "h5.example.com",
        "*.example.com",
        "h5.example.com:8443",
        "*.example.com:443",
        "localhost",
    ] {
        assert!(with(ok).is_ok(), "{ok}");
    }
    for bad in [
        "https://h5.example.com:443",
        "http://h5.example.com",
        "h5.example.com/path",
        "h5.example.com:",
        "h5.example.com:0",
        "h5.example.com:99999",
        ":443",
        "*.",
        "h5 example.com",
    ] {
        assert_eq!(
            err_key(with(bad)),
            "accounts[0].js_domains[0]",
            "{bad} must be refused"
        );
    }
}

#[test]
fn bad_values_name_the_key() {
    let bad_appid = MINIMAL.replace("wx1234567890abcdef", "1234");
    assert_eq!(err_key(load(&bad_appid, &[])), "accounts[0].appid");
    let bad_aes = format!("{MINIMAL}encoding_aes_key = \"short\"\n");
    assert_eq!(err_key(load(&bad_aes, &[])), "accounts[0].encoding_aes_key");
    let bad_token = format!("{MINIMAL}token = \"a!\"\n");
    assert_eq!(err_key(load(&bad_token, &[])), "accounts[0].token");
    let dup = format!("{MINIMAL}{MINIMAL}");
    assert_eq!(err_key(load(&dup, &[])), "accounts[1].name");
    let bad_listen = format!("[server]\nlisten = \"nowhere\"\n{MINIMAL}");
    assert_eq!(err_key(load(&bad_listen, &[])), "server.listen");
    let bad_store = format!("[storage]\nurl = \"mysql://x\"\n{MINIMAL}");
    assert_eq!(err_key(load(&bad_store, &[])), "storage.url");
    let bad_verify = format!("{MINIMAL}verify_files = {{ \"../etc/passwd\" = \"x\" }}\n");
    assert_eq!(
        err_key(load(&bad_verify, &[])),
        "accounts[0].verify_files.../etc/passwd"
    );
    let bad_rule = format!("{MINIMAL}[[accounts.rules]]\nkeyword = \"x\"\nreply = {{ type = \"news\", articles = [] }}\n");
    assert_eq!(err_key(load(&bad_rule, &[])), "accounts[0].rules[0].reply");
    let two_selectors = format!("{MINIMAL}[[accounts.rules]]\nkeyword = \"x\"\nevent = \"subscribe\"\nreply = {{ type = \"text\", content = \"a\" }}\n");
    assert_eq!(err_key(load(&two_selectors, &[])), "accounts[0].rules[0]");
    let bad_regex = format!("{MINIMAL}[[accounts.rules]]\nregex = \"(\"\nreply = {{ type = \"text\", content = \"a\" }}\n");
    assert_eq!(err_key(load(&bad_regex, &[])), "accounts[0].rules[0].regex");
    let bad_api = MINIMAL.replace("appid", "app_id");
    assert!(err_key(load(&bad_api, &[])).starts_with("accounts[0]"));
}

#[test]
fn a_missing_secret_is_reported() {
    let text = "[[accounts]]\nname = \"main\"\nappid = \"wx1234567890abcdef\"\n";
    let Err(ConfigError::Invalid { key, message }) = load(text, &[]) else {
        panic!("expected an error");
    };
    assert!(key.starts_with("accounts[0]"), "{key}");
    assert!(message.contains("secret"), "{message}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let s = load(
        &format!("[api]\nkeys = [\"api-key-123456\"]\n{MINIMAL}token = \"tok123\"\n"),
        &[],
    )
    .unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cr3t-app-secret"));
    assert!(!dbg.contains("api-key-123456"));
    assert!(!dbg.contains("tok123"));
}

#[test]
fn a_full_spec_example_is_accepted() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://wx.example.com"
max_body_bytes = 1048576
[storage]
url = "redis://127.0.0.1:6379/0"
key_prefix = "wxgate:"
[database]
url = "postgres://user@host/db"
[push]
replay_window_s = 600
dedup_ttl_s = 300
[upstream]
api_base = "https://api.weixin.qq.com"
open_base = "https://open.weixin.qq.com"
timeout_ms = 5000
[api]
keys = ["a-long-random-key"]
[[accounts]]
name = "main"
appid = "wx1234567890abcdef"
secret = "abc"
token = "TokenABC"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
encoding_aes_key_previous = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
token_api = "classic"
js_domains = ["h5.example.com", "*.example.org"]
oauth_redirects = ["https://h5.example.com/"]
webhook = { url = "http://127.0.0.1:9000/wechat", secret = "whsec", timeout_ms = 3000 }
proxy_allow = ["/cgi-bin/menu/", "/cgi-bin/message/"]
verify_files = { "MP_verify_AbC123.txt" = "AbC123" }
[[accounts.rules]]
event = "subscribe"
reply = { type = "text", content = "欢迎关注" }
[[accounts.rules]]
keyword = "help"
reply = { type = "text", content = "..." }
"#;
    let s = load(text, &[]).unwrap();
    assert_eq!(s.accounts[0].token_api, TokenApi::Classic);
    assert_eq!(s.accounts[0].rules.len(), 2);
    assert_eq!(s.accounts[0].js_domains[1], "*.example.org");
}

const PLATFORM: &str = r#"
[admin]
master_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

[[components]]
name = "platform"
appid = "wx00000000000c0de1"
secret = "component-secret"
token = "platformtoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
auth_redirects = ["https://saas.example.com/"]
js_domains = ["h5.example.com"]
proxy_allow = ["/cgi-bin/menu/"]

[[components.rules]]
keyword = "hi"
reply = { type = "text", content = "hello" }
"#;

#[test]
fn a_component_is_validated_and_its_authorizers_inherit_its_settings() {
    let s = load(PLATFORM, &[]).unwrap();
    assert_eq!(s.upstream.mp_base, "https://mp.weixin.qq.com");
    let validated = s.validate().unwrap();
    let c = &validated.components[0];
    assert_eq!(
        (c.name.as_str(), c.appid.as_str()),
        ("platform", "wx00000000000c0de1")
    );
    assert_eq!(c.credentials.name, "component:platform");
    assert_eq!(
        c.credentials.token_source,
        TokenSource::Component {
            component: "platform".into()
        }
    );
    let a = c.authorizer(
        "wx1111111111111111",
        crate::domain::AuthorizerStatus::Authorized,
    );
    assert_eq!(
        (a.name.as_str(), a.appid.as_str()),
        ("wx1111111111111111", "wx1111111111111111")
    );
    assert_eq!(
        a.receive_id(),
        "wx00000000000c0de1",
        "the platform's key and appid"
    );
    assert_eq!(a.component(), Some("platform"));
    assert_eq!(a.proxy_allow, vec!["/cgi-bin/menu/".to_owned()]);
    assert_eq!(a.rules.len(), 1);
    assert_eq!(a.js_domains.len(), 1);
    assert!(a.keyring.is_some() && a.token.is_some());
    assert!(
        !a.accept_plaintext,
        "a platform's pushes are always encrypted"
    );
    assert!(
        a.secret.expose_secret().is_empty(),
        "no AppSecret of its own"
    );
    assert!(
        std::sync::Arc::ptr_eq(&c.authorizer_settings(), &c.authorizer_settings()),
        "one copy of the inherited settings for every authorizer"
    );
}

#[test]
fn component_errors_name_the_key() {
    let without_master_key = PLATFORM.replace("master_key = ", "# ");
    let mut bad = without_master_key.clone();
    assert_eq!(err_key(load(&bad, &[])), "admin.master_key");
    bad = PLATFORM.replace("wx00000000000c0de1", "nope");
    assert_eq!(err_key(load(&bad, &[])), "components[0].appid");
    bad = PLATFORM.replace("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "short");
    assert_eq!(err_key(load(&bad, &[])), "components[0].encoding_aes_key");
    bad = PLATFORM.replace("https://saas.example.com/", "saas.example.com");
    assert_eq!(err_key(load(&bad, &[])), "components[0].auth_redirects[0]");
    bad = PLATFORM.replace("h5.example.com", "https://h5.example.com/x");
    assert!(err_key(load(&bad, &[])).starts_with("components[0].js_domains[0]"));
    bad = PLATFORM.replace("keyword = \"hi\"", "regex = \"(\"");
    assert_eq!(err_key(load(&bad, &[])), "components[0].rules[0].regex");
    bad = format!("{PLATFORM}\n[[components]]\nname = \"platform\"\nappid = \"wx00000000000c0de2\"\nsecret = \"s\"\ntoken = \"tok\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n");
    assert_eq!(err_key(load(&bad, &[])), "components[1].name");
    bad = PLATFORM
        .replace("[upstream]", "")
        .replace("[admin]", "[upstream]\nmp_base = \"nope\"\n[admin]");
    assert_eq!(err_key(load(&bad, &[])), "upstream.mp_base");
}

#[test]
fn component_secrets_come_from_the_environment_too() {
    let s = load(
        PLATFORM,
        &[
            ("WXGATE__COMPONENTS__PLATFORM__SECRET", "from-env"),
            ("WXGATE__COMPONENTS__PLATFORM__TOKEN", "envtoken"),
        ],
    )
    .unwrap();
    assert_eq!(s.components[0].secret.expose_secret(), "from-env");
    assert_eq!(s.components[0].token.expose_secret(), "envtoken");
    let missing = load(PLATFORM, &[("WXGATE__COMPONENTS__OTHER__SECRET", "x")]);
    assert!(err_key(missing).contains("WXGATE__COMPONENTS__OTHER__SECRET"));
}

#[test]
fn upstream_max_in_flight_defaults_to_64_and_takes_1_to_10000() {
    let s = load(MINIMAL, &[]).unwrap();
    assert_eq!(s.upstream.max_in_flight, 64);
    assert_eq!(s.upstream.in_flight_limit(), 64);
    let with = |n: &str| load(&format!("[upstream]\nmax_in_flight = {n}\n{MINIMAL}"), &[]);
    assert_eq!(with("1").unwrap().upstream.in_flight_limit(), 1);
    assert_eq!(with("10000").unwrap().upstream.in_flight_limit(), 10_000);
    for bad in ["0", "10001"] {
        let Err(ConfigError::Invalid { key, message }) = with(bad) else {
            panic!("{bad} must be refused");
        };
        assert_eq!(key, "upstream.max_in_flight", "{bad}");
        assert!(message.contains("10000"), "{message}");
    }
    assert_eq!(err_key(with("-1")), "upstream.max_in_flight");
    let env = load(MINIMAL, &[("WXGATE__UPSTREAM__MAX_IN_FLIGHT", "8")]).unwrap();
    assert_eq!(env.upstream.max_in_flight, 8);
    let bad_env = load(MINIMAL, &[("WXGATE__UPSTREAM__MAX_IN_FLIGHT", "0")]);
    assert_eq!(err_key(bad_env), "upstream.max_in_flight");
}

#[test]
fn console_message_content_is_off_by_default_and_a_boolean() {
    assert!(!load(MINIMAL, &[]).unwrap().admin.console_message_content);
    let with = |v: &str| {
        load(
            &format!("[admin]\nconsole_message_content = {v}\n{MINIMAL}"),
            &[],
        )
    };
    assert!(with("true").unwrap().admin.console_message_content);
    assert_eq!(err_key(with("\"yes\"")), "admin.console_message_content");
    let env = load(
        MINIMAL,
        &[("WXGATE__ADMIN__CONSOLE_MESSAGE_CONTENT", "true")],
    )
    .unwrap();
    assert!(env.admin.console_message_content);
}

#[test]
fn an_account_is_official_and_xml_unless_it_says_otherwise() {
    let s = load(MINIMAL, &[]).unwrap();
    assert_eq!(s.accounts[0].kind, AccountKind::Official);
    assert_eq!(s.accounts[0].data_format, DataFormat::Xml);
    let mini = format!("{MINIMAL}kind = \"miniprogram\"\ndata_format = \"json\"\n");
    let s = load(&mini, &[]).unwrap();
    assert_eq!(s.accounts[0].kind, AccountKind::Miniprogram);
    assert_eq!(s.accounts[0].data_format, DataFormat::Json);
    let account = Account::try_from(&s.accounts[0]).unwrap();
    assert_eq!(account.kind, AccountKind::Miniprogram);
    let refused = account.require_official("the JS-SDK").unwrap_err();
    assert!(refused.to_string().contains("mini program"), "{refused}");
    // Written settings leave the defaults out (stored rows keep their shape).
    let official = serde_json::to_value(&load(MINIMAL, &[]).unwrap().accounts[0]).unwrap();
    assert!(official.get("kind").is_none() && official.get("data_format").is_none());
    let written = serde_json::to_value(&s.accounts[0]).unwrap();
    assert_eq!(written["kind"], "miniprogram");
    assert_eq!(written["data_format"], "json");
}

#[test]
fn an_unknown_kind_or_data_format_is_refused() {
    for line in ["kind = \"applet\"", "data_format = \"yaml\""] {
        assert!(load(&format!("{MINIMAL}{line}\n"), &[]).is_err(), "{line}");
    }
}
