//! `wxgate sandbox` as a user runs it: the binary on free ports, its printout read back, and
//! the printed calls made as printed. The demo platform must be ready by the time the printout
//! appears (its merchant's token answers), the printed authorize link must lead to the mock's
//! authorization page, the printed curl steps must authorize another merchant, the printed
//! `wxgate simulate` call must work with the sandbox's config file, and Ctrl-C (SIGTERM here)
//! must stop it and remove its files.
//! It only runs the `wxgate` executable (a child process) and talks HTTP to it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MERCHANT: &str = "wxdemomerchant0001";
const NEXT_MERCHANT: &str = "wxdemomerchant0002";

/// A running `wxgate sandbox` and everything it printed up to `Ctrl-C stops it.`.
struct Sandbox {
    child: Child,
    printout: String,
}

impl Sandbox {
    async fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wxgate"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--mock-listen",
                "127.0.0.1:0",
            ])
            .env("WXGATE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("wxgate sandbox starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printout = String::new();
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                printout.push_str(&line);
                printout.push('\n');
                if line.trim() == "Ctrl-C stops it." {
                    return true;
                }
            }
            false
        };
        let complete = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the sandbox prints within 60 s");
        assert!(complete, "the sandbox stopped after printing:\n{printout}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, printout }
    }

    /// The value printed after `label` at the start of a line (`  gateway         http://…`).
    fn field(&self, label: &str) -> String {
        self.printout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.printout))
            .to_owned()
    }

    /// The one printed line that starts with `start` (trimmed) and contains `part`.
    fn line(&self, start: &str, part: &str) -> String {
        let found: Vec<&str> = self
            .printout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(start) && l.contains(part))
            .collect();
        assert_eq!(found.len(), 1, "{start}…{part} in:\n{}", self.printout);
        found[0].to_owned()
    }

    /// The lines after the line containing `heading`, up to the next empty line.
    fn block_after(&self, heading: &str) -> Vec<String> {
        let mut lines = self.printout.lines();
        assert!(
            lines.any(|l| l.contains(heading)),
            "no {heading:?} in:\n{}",
            self.printout
        );
        lines
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

/// `curl -H 'Authorization: Bearer KEY' URL` as printed → (KEY, URL).
fn printed_get(line: &str) -> (String, String) {
    let key = line
        .split("Bearer ")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no key in {line:?}"));
    let url = line.split_whitespace().last().unwrap();
    (key.to_owned(), url.to_owned())
}

async fn get_json(http: &reqwest::Client, key: &str, url: &str) -> (u16, Value) {
    let resp = http.get(url).bearer_auth(key).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_serves_a_demo_platform_with_an_authorized_merchant_and_prints_how_to_add_one()
{
    let sandbox = Sandbox::start().await;
    let http = no_redirects();
    let base = sandbox.field("gateway");
    let mock = sandbox.field("mock WeChat API");
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "{base}"
    );
    assert_eq!(sandbox.field("demo platform"), "demo-platform");
    assert_eq!(sandbox.field("authorizer"), MERCHANT);

    // The authorizer's token, as printed, answers at once.
    let (key, url) = printed_get(&sandbox.line("curl", &format!("/accounts/{MERCHANT}/")));
    assert_eq!(
        url,
        format!("{base}/api/v1/accounts/{MERCHANT}/access_token")
    );
    let (status, token) = get_json(&http, &key, &url).await;
    assert_eq!(status, 200, "{token}");
    assert!(
        !token["access_token"].as_str().unwrap().is_empty(),
        "{token}"
    );

    // The platform's status: its ticket arrived, its merchant is authorized.
    let (key, url) = printed_get(&sandbox.line("curl", "/components/demo-platform/status"));
    let (status, st) = get_json(&http, &key, &url).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["ticket"]["usable"], true, "{st}");
    assert_eq!(st["authorizers"]["authorized"], 1, "{st}");
    let (key, url) = printed_get(&sandbox.line("curl", "/components/demo-platform/authorizers"));
    let (status, list) = get_json(&http, &key, &url).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["authorizers"][0]["appid"], MERCHANT, "{list}");
    assert_eq!(list["authorizers"][0]["status"], "authorized", "{list}");

    // The link to open in a browser: a 302 to the mock's authorization page, which has the form.
    let browser = sandbox.block_after("open in a browser");
    let link = browser
        .iter()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {browser:?}"));
    assert!(
        link.starts_with(&format!(
            "{base}/component/demo-platform/authorize?redirect="
        )),
        "{link}"
    );
    let start = http.get(link).send().await.unwrap();
    assert_eq!(start.status(), 302, "{:?}", start.text().await);
    let page = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        page.starts_with(&format!("{mock}/cgi-bin/componentloginpage?")),
        "{page}"
    );
    let form = http.get(&page).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    assert!(form.contains("id=\"authorize\""), "{form}");

    // The curl steps, run as printed: another merchant authorizes and is served.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
    {
        let steps = sandbox.block_after("the same steps with curl");
        assert_eq!(steps.len(), 4, "{steps:?}");
        let out = Command::new("sh")
            .arg("-c")
            .arg(steps[..3].join("\n"))
            .output()
            .await
            .unwrap();
        let landed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "{landed}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            landed,
            format!("{base}/demo/authorized?wxgate_authorizer={NEXT_MERCHANT}")
        );
        let landing = http.get(&landed).send().await.unwrap();
        assert_eq!(landing.status(), 200);
        assert!(landing.text().await.unwrap().contains(NEXT_MERCHANT));
        let (key, url) = printed_get(&steps[3]);
        assert_eq!(
            url,
            format!("{base}/api/v1/accounts/{NEXT_MERCHANT}/access_token")
        );
        let (status, token) = get_json(&http, &key, &url).await;
        assert_eq!(status, 200, "{token}");
    } else {
        eprintln!("skipping the printed curl steps: curl is not installed");
    }

    // The demo mini program: the printed curl mints a wx.login code at the mock and logs in.
    assert_eq!(sandbox.field("mini program"), "demo-mini");
    let login = sandbox.block_after("then log the user in");
    assert_eq!(login.len(), 2, "{login:?}");
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = Command::new("sh")
            .arg("-c")
            .arg(login.join("\n"))
            .output()
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            answer["openid"].as_str().is_some_and(|o| !o.is_empty()),
            "{answer}"
        );
        assert!(answer["unionid"].is_string(), "{answer}");
        assert!(answer.get("session_key").is_none(), "{answer}");
    }

    // The printed `simulate` line names the running binary (a `cargo run` user has no
    // `wxgate` on their PATH) and still reads the sandbox's config (which has the platform).
    let me = env!("CARGO_BIN_EXE_wxgate");
    let simulate = sandbox.line(me, "--text help");
    let mut words = simulate.split_whitespace();
    let program = words.next().unwrap();
    assert!(std::path::Path::new(program).is_file(), "{simulate}");
    let args: Vec<&str> = words.collect();
    let out = Command::new(program).args(&args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Try: hello"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The printed console signs in with the printed admin key.
    let console = sandbox.field("admin console");
    assert_eq!(console, format!("{base}/admin"));
    let admin_key = sandbox.field("admin key");
    let signed_in = http
        .post(format!("{console}/sign-in"))
        .form(&[("key", admin_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The demo platform's page: its two URLs and the authorize link.
    let platform = http
        .get(format!("{console}/components/demo-platform"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(platform.status(), 200);
    let page = html_escape::decode_html_entities(&platform.text().await.unwrap()).into_owned();
    assert!(
        page.contains(&format!("{base}/wx/component/demo-platform")),
        "{page}"
    );
    assert!(page.contains("id=\"authorize-link\""), "{page}");
    // The printed stand-in for WeChat's console answers.
    let mock_console = sandbox.line("(server URL, Token", "__mock/console/");
    let url = mock_console
        .split_whitespace()
        .find(|w| w.contains("/__mock/console/"))
        .unwrap();
    assert_eq!(http.get(url).send().await.unwrap().status(), 200);

    // Ctrl-C (SIGTERM) stops it, and its store and config file are gone.
    let store = sandbox.field("store");
    let db = store.strip_prefix("sqlite://").unwrap().to_owned();
    let mut child = sandbox.child;
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the sandbox stops within 20 s")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!std::path::Path::new(&db).exists(), "{db} is left behind");
    let config = std::path::Path::new(&db).with_extension("toml");
    assert!(!config.exists(), "{} is left behind", config.display());
}
