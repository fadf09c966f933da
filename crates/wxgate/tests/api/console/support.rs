//! A signed-in console client for the tests: a gateway with `admin.keys` and a master key, and
//! a plain HTTP client that keeps the session cookie and reads the CSRF token off the pages.

use secrecy::ExposeSecret as _;
use wxgate::vault::MasterKey;
use wxgate_mock::{MockAccount, MockWechat};

use crate::helpers::*;

pub const ADMIN_KEY: &str = "console-admin-key-0123456789";
/// An appid the mock knows, for onboarding.
pub const NEW_APPID: &str = "wx00000000000000c1";
pub const NEW_SECRET: &str = "new-account-secret-0123456789";

/// A mock that knows [`NEW_APPID`], and a config with the console on.
pub async fn setup() -> (MockWechat, GatewayConfig) {
    let (mock, addr) = start_mock_with(|c| {
        c.accounts.push(MockAccount {
            appid: NEW_APPID.into(),
            secret: NEW_SECRET.into(),
        })
    })
    .await;
    let mut config = GatewayConfig::new(addr);
    config.tail = format!(
        "[admin]\nkeys = [\"{ADMIN_KEY}\"]\nmaster_key = \"{}\"\n",
        MasterKey::random().to_base64().expose_secret()
    );
    (mock, config)
}

/// A gateway from `config`, a console client signed in to it, and its CSRF token.
pub async fn signed_in(config: &GatewayConfig) -> (TestApp, Console, String) {
    let app = spawn_app(config).await;
    let mut console = Console::new(&app.base);
    console.sign_in(ADMIN_KEY).await;
    let csrf = console.csrf().await;
    (app, console, csrf)
}

/// A browser-like client of the console: no automatic redirects, the session cookie kept by
/// hand (so tests can replay or drop it).
pub struct Console {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
        re.captures(&self.body)
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body))[1]
            .to_owned()
    }

    /// The `value` of the input with `id`.
    pub fn input(&self, id: &str) -> String {
        let re = regex::Regex::new(&format!(r#"id="{id}"[^>]*value="([^"]*)""#)).unwrap();
        let raw = &re
            .captures(&self.body)
            .unwrap_or_else(|| panic!("no input #{id} in:\n{}", self.body))[1];
        html_escape::decode_html_entities(raw).into_owned()
    }
}

impl Console {
    pub fn new(base: &str) -> Self {
        Console {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn finish(&self, resp: reqwest::Response) -> Page {
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    fn with_cookie(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let req = self.with_cookie(self.http.get(format!("{}{path}", self.base)));
        self.finish(req.send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.with_cookie(self.http.post(format!("{}{path}", self.base)).form(form));
        self.finish(req.send().await.unwrap()).await
    }

    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        let req = self.with_cookie(
            self.http
                .post(format!("{}{path}", self.base))
                .multipart(form),
        );
        self.finish(req.send().await.unwrap()).await
    }

    /// Signs in with `key`; keeps the cookie when it worked.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.post_form("/admin/sign-in", &[("key", key)]).await;
        if let Some(set) = page.headers.get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        page
    }

    /// Onboards `name` (the mock's [`NEW_APPID`], pages on h5.example.com over https).
    pub async fn onboard(&self, csrf: &str, name: &str) -> Page {
        self.post_form(
            "/admin/onboard",
            &[
                ("csrf", csrf),
                ("name", name),
                ("appid", NEW_APPID),
                ("secret", NEW_SECRET),
                ("h5_domain", "h5.example.com"),
                ("scheme", "https"),
            ],
        )
        .await
    }

    /// The CSRF token, from the overview.
    pub async fn csrf(&self) -> String {
        self.get("/admin/overview").await.csrf()
    }
}
