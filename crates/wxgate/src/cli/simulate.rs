//! `wxgate simulate`: play WeChat against a running wxgate, to try rules and webhooks without
//! a real Official Account.
//!
//! It builds the push XML WeChat would send (a text message with a fresh MsgId, or an event),
//! signs it with the account's Token, encrypts it in safe mode when the account has an
//! `encoding_aes_key` (`encrypt_type=aes`, `msg_signature`), POSTs it to `/wx/{account}`,
//! then checks the answer the way WeChat does — `MsgSignature` verified, decrypted, appid
//! checked — and prints the decoded reply as JSON on stdout (or `(no reply: success)`). Any
//! HTTP error or an answer WeChat would refuse makes it exit non-zero with a sentence saying
//! what went wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use secrecy::ExposeSecret;
use wxgate_proto::crypto::{seal_reply, KeyRing};
use wxgate_proto::signature::{signature, verify_msg_signature};
use wxgate_proto::xml::{push_cdata_element, push_plain_element, Fields};
use wxgate_proto::Reply;

use crate::config::Settings;
use crate::domain::unix_now;

/// Arguments of `wxgate simulate`.
#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The gateway's config file (Token, EncodingAESKey, appid and listen address come from it).
    #[arg(long, short)]
    config: PathBuf,
    /// The account to push to.
    #[arg(long)]
    account: String,
    /// Send a text message with this content.
    #[arg(long, conflicts_with = "event", required_unless_present = "event")]
    text: Option<String>,
    /// Send an event instead (subscribe, unsubscribe, CLICK, SCAN, ...).
    #[arg(long)]
    event: Option<String>,
    /// The event's EventKey (e.g. qrscene_42 for a QR-code subscribe, a menu key for CLICK).
    #[arg(long, requires = "event")]
    event_key: Option<String>,
    /// Where wxgate runs (default: http://{server.listen} of the config).
    #[arg(long)]
    url: Option<String>,
    /// The sender's openid.
    #[arg(long, default_value = "oSimulatedUser000000000000001")]
    openid: String,
}

/// The account original id used as `ToUserName` (wxgate does not need the real one).
const SIMULATED_TO_USER: &str = "gh_wxgate_simulate";

pub async fn run(args: SimulateArgs) -> Result<(), String> {
    let (settings, validated) =
        Settings::load_validated(&args.config).map_err(|e| e.to_string())?;
    let account = validated.accounts.get(&args.account).ok_or_else(|| {
        format!(
            "no account named {:?} in {}",
            args.account,
            args.config.display()
        )
    })?;
    let token = account
        .token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .ok_or_else(|| {
            format!(
                "account {:?} has no `token`: message push is disabled for it",
                account.name
            )
        })?;
    // The push is sealed with the current key, so only the current key opens the answer.
    let keyring = account
        .keyring
        .as_ref()
        .map(|ring| KeyRing::new(ring.current.clone(), None));
    let base = match &args.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => default_base(&settings.server.listen)?,
    };

    let now = unix_now();
    let xml = push_xml(&args, now);
    let timestamp = now.to_string();
    let nonce = rand::thread_rng()
        .gen_range(1_000_000_000u64..10_000_000_000)
        .to_string();
    let mut query = vec![
        ("signature", signature(&token, &timestamp, &nonce)),
        ("timestamp", timestamp.clone()),
        ("nonce", nonce.clone()),
        ("openid", args.openid.clone()),
    ];
    let body = match &keyring {
        Some(ring) => {
            let sealed = seal_reply(
                &ring.current,
                &token,
                &account.appid,
                &xml,
                Some(now.unsigned_abs()),
                Some(&nonce),
            );
            query.push(("encrypt_type", "aes".into()));
            query.push(("msg_signature", sealed.msg_signature));
            let mut env = String::from("<xml>");
            push_cdata_element(&mut env, "ToUserName", SIMULATED_TO_USER);
            push_cdata_element(&mut env, "Encrypt", &sealed.encrypt);
            env.push_str("</xml>");
            env
        }
        None => xml,
    };
    let url = format!("{base}/wx/{}", account.name);
    eprintln!(
        "wxgate simulate: POST {url} ({} mode, {})",
        if keyring.is_some() {
            "safe"
        } else {
            "plaintext"
        },
        match (&args.text, &args.event) {
            (Some(t), _) => format!("text {t:?}"),
            (_, Some(e)) => format!("event {e:?}"),
            _ => String::new(),
        }
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = http
        .post(&url)
        .query(&query)
        .header(reqwest::header::CONTENT_TYPE, "text/xml")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach wxgate at {url}: {e}"))?;
    let status = response.status();
    let answer = response
        .text()
        .await
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{url} answered HTTP {}: {}",
            status.as_u16(),
            answer.trim()
        ));
    }
    let trimmed = answer.trim();
    if trimmed.is_empty() || trimmed == "success" {
        println!("(no reply: success)");
        return Ok(());
    }
    let reply_xml = open_answer(trimmed, &token, &account.appid, keyring.as_ref())?;
    let parsed = Reply::parse_xml(reply_xml.as_bytes())
        .map_err(|e| format!("the answer is not a passive reply WeChat would accept: {e}"))?;
    if parsed.to_user != args.openid {
        return Err(format!(
            "the reply is addressed to {:?}, not to the sender {:?}",
            parsed.to_user, args.openid
        ));
    }
    let json = serde_json::to_string(&parsed.reply).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

/// The plaintext reply XML of an answer: checked and decrypted when it is an encrypted
/// envelope, as is otherwise (compatible mode allows either).
fn open_answer(
    answer: &str,
    token: &str,
    appid: &str,
    keyring: Option<&KeyRing>,
) -> Result<String, String> {
    let (_, fields) = Fields::parse_document(answer.as_bytes())
        .map_err(|e| format!("the answer is not XML ({e}): {answer}"))?;
    let Some(encrypt) = fields.text("Encrypt") else {
        if keyring.is_some() {
            eprintln!(
                "wxgate simulate: note: the reply is plaintext (accepted in compatible mode only)"
            );
        }
        return Ok(answer.to_owned());
    };
    let ring = keyring.ok_or("the answer is encrypted but the account has no encoding_aes_key")?;
    let field = |name: &'static str| {
        fields
            .text(name)
            .ok_or_else(|| format!("the encrypted answer has no <{name}>"))
    };
    let (sig, ts, nonce) = (field("MsgSignature")?, field("TimeStamp")?, field("Nonce")?);
    if !verify_msg_signature(token, ts, nonce, encrypt, sig) {
        return Err("the answer's MsgSignature does not verify: WeChat would refuse it".into());
    }
    let (decrypted, used) = ring
        .decrypt(encrypt, Some(appid))
        .map_err(|e| format!("the answer cannot be decrypted: {e}"))?;
    eprintln!("wxgate simulate: reply verified and decrypted ({used:?} key)");
    decrypted
        .into_message_string()
        .map_err(|e| format!("the decrypted answer is not text: {e}"))
}

fn push_xml(args: &SimulateArgs, now: i64) -> String {
    let mut x = String::from("<xml>");
    push_cdata_element(&mut x, "ToUserName", SIMULATED_TO_USER);
    push_cdata_element(&mut x, "FromUserName", &args.openid);
    push_plain_element(&mut x, "CreateTime", now);
    match (&args.text, &args.event) {
        (Some(text), _) => {
            push_cdata_element(&mut x, "MsgType", "text");
            push_cdata_element(&mut x, "Content", text);
            let id: u64 = rand::thread_rng().gen_range(1..i64::MAX.unsigned_abs());
            push_plain_element(&mut x, "MsgId", id);
        }
        (None, Some(event)) => {
            push_cdata_element(&mut x, "MsgType", "event");
            push_cdata_element(&mut x, "Event", event);
            if let Some(k) = &args.event_key {
                push_cdata_element(&mut x, "EventKey", k);
            }
        }
        (None, None) => {}
    }
    x.push_str("</xml>");
    x
}

fn default_base(listen: &str) -> Result<String, String> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| format!("server.listen {listen:?} is not address:port; pass --url"))?;
    if addr.port() == 0 {
        return Err("server.listen uses port 0, so wxgate's address is unknown; pass --url".into());
    }
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    Ok(format!("http://{host}:{}", addr.port()))
}
