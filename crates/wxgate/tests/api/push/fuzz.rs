//! Fuzz-style robustness: random and mutated pushes never get a 5xx, and the server keeps
//! serving.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wxgate_proto::signature::msg_signature;
use wxgate_proto::xml::Fields;
use wxgate_proto::Reply;

use crate::helpers::{AES_KEY, TOKEN};

use super::support::*;

fn mutate(rng: &mut StdRng, s: &str) -> String {
    let mut bytes = s.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..6) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..6) {
            0 => bytes[i] = rng.gen(),
            1 => {
                bytes.truncate(i);
            }
            2 => bytes.insert(i, *b"<>&;]![/\"'".get(rng.gen_range(0..10)).unwrap()),
            3 => {
                bytes.remove(i);
            }
            4 => {
                let ins = [
                    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
                    "&a;",
                    "]]>",
                    "<![CDATA[",
                    "<x>",
                    "</xml>",
                    "\u{0}",
                    "é",
                ];
                let pick = ins[rng.gen_range(0..ins.len())].as_bytes();
                bytes.splice(i..i, pick.iter().copied());
            }
            _ => {
                let j = rng.gen_range(i..=bytes.len());
                let dup = bytes[i..j].to_vec();
                bytes.splice(j..j, dup);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn random_and_mutated_pushes_never_get_a_5xx_and_the_server_keeps_serving() {
    let (app, _) = app_with(&aes_extra(), HELLO_RULE).await;
    let wx = Wechat::new(&app);
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for case in 0..400 {
        let xml = if rng.gen_bool(0.5) {
            text_xml("oFuzz", "hello", rng.gen())
        } else {
            event_xml(
                "oFuzz",
                "subscribe",
                Some("qrscene_1"),
                rng.gen_range(0..i64::MAX),
            )
        };
        let (query, body): (String, Vec<u8>) = match rng.gen_range(0..7) {
            // A valid signature over a mutated plaintext body.
            0 => (wx.plain(&xml).query, mutate(&mut rng, &xml).into_bytes()),
            // A mutated encrypted envelope.
            1 => {
                let p = wx.safe(&xml);
                (p.query, mutate(&mut rng, &p.body).into_bytes())
            }
            // A correctly signed but corrupted ciphertext (reaches decryption).
            2 => {
                let (q, ts, n) = wx.signed_query_at(now());
                let p = wx.safe(&xml);
                let (_, fields) = Fields::parse_document(p.body.as_bytes()).unwrap();
                let enc = mutate(&mut rng, fields.text("Encrypt").unwrap());
                let ms = msg_signature(TOKEN, &ts, &n, &enc);
                let body = format!("<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>");
                (
                    format!("{q}&encrypt_type=aes&msg_signature={ms}"),
                    body.into_bytes(),
                )
            }
            // A correctly encrypted, mutated plaintext.
            3 => {
                let p = wx.safe(&mutate(&mut rng, &xml));
                (p.query, p.body.into_bytes())
            }
            // Mutated query string.
            4 => {
                let p = wx.safe(&xml);
                (mutate(&mut rng, &p.query), p.body.into_bytes())
            }
            // Random bytes everywhere.
            5 => {
                let n = rng.gen_range(0..2000);
                let body: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                let q: String = (0..rng.gen_range(0..80))
                    .map(|_| char::from(rng.gen_range(0x20u8..0x7f)))
                    .filter(|c| *c != '#')
                    .collect();
                (q, body)
            }
            // Deep nesting.
            _ => {
                let depth = rng.gen_range(10..3000);
                let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
                (wx.plain("").query, body.into_bytes())
            }
        };
        let query = query.replace([' ', '#'], "%20");
        let resp = wx
            .http
            .post(format!("{}?{query}", wx.url()))
            .body(body)
            .send()
            .await;
        let resp = resp.unwrap_or_else(|e| panic!("case {case}: request failed: {e}"));
        let status = resp.status().as_u16();
        assert!((200..500).contains(&status), "case {case}: status {status}");
        if status >= 400 {
            let text = resp.text().await.unwrap();
            assert!(!error_code(&text).is_empty(), "case {case}: {text}");
        }
    }
    let (s, _, body) = wx
        .send(&wx.safe(&text_xml("oFuzz", "hello", msg_id())))
        .await;
    assert_eq!(s, 200);
    assert_eq!(open_encrypted(&body, AES_KEY).0.reply, Reply::text("world"));
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}
