//! JS-SDK signatures: `wx.config` and the 卡券 `card_ext`.
//!
//! A page may call JS-SDK APIs only with a signature over the jsapi_ticket, a nonce, a
//! timestamp and the page URL. WeChat recomputes it from the URL the browser is on, so the
//! URL must be signed exactly as the browser knows it: the `#fragment` removed and
//! everything else byte-for-byte, never decoded or re-encoded (the classic "invalid
//! signature" bug). The card (wx_card) signature is a different scheme: the *values* are
//! sorted and concatenated. Both are pure functions here; tickets come from the service.

use rand::Rng;
use sha1::{Digest, Sha1};

use crate::inline_ascii::InlineAscii;
use crate::signature::{sha1_hex_inline, sha1_sorted, Sha1Hex};

/// Length of the nonces made by [`nonce_str`].
pub const NONCE_LEN: usize = 16;

/// A nonce made by [`nonce_str`], held inline.
pub type NonceStr = InlineAscii<NONCE_LEN>;

/// The URL without its `#fragment` (from the first `#`), otherwise untouched.
pub fn strip_fragment(url: &str) -> &str {
    match url.find('#') {
        Some(i) => &url[..i],
        None => url,
    }
}

/// The `wx.config` signature:
/// `sha1("jsapi_ticket=T&noncestr=N&timestamp=S&url=U")`, lower-case hex, where `U` is
/// `url` with [`strip_fragment`] applied and nothing else changed.
pub fn sign(ticket: &str, noncestr: &str, timestamp: u64, url: &str) -> Sha1Hex {
    let url = strip_fragment(url);
    let mut hasher = Sha1::new();
    hasher.update(b"jsapi_ticket=");
    hasher.update(ticket.as_bytes());
    hasher.update(b"&noncestr=");
    hasher.update(noncestr.as_bytes());
    hasher.update(b"&timestamp=");
    hasher.update(itoa::Buffer::new().format(timestamp).as_bytes());
    hasher.update(b"&url=");
    hasher.update(url.as_bytes());
    sha1_hex_inline(&hasher.finalize().into())
}

/// Inputs of the 卡券 `card_ext` signature. Empty values are left out, as WeChat's
/// signing tool does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardExtSign<'a> {
    /// The `wx_card` api_ticket.
    pub api_ticket: &'a str,
    /// `card_id`.
    pub card_id: &'a str,
    /// `timestamp` as placed in `card_ext`.
    pub timestamp: &'a str,
    /// `code` (custom-code cards), may be empty.
    pub code: &'a str,
    /// `openid` (cards for one user), may be empty.
    pub openid: &'a str,
    /// `nonce_str`.
    pub nonce_str: &'a str,
    /// `balance` (stored-value cards), when used.
    pub balance: Option<&'a str>,
}

impl CardExtSign<'_> {
    /// `sha1(concat(sort(non-empty values)))`, lower-case hex.
    pub fn signature(&self) -> String {
        let mut values: Vec<&str> = vec![
            self.api_ticket,
            self.card_id,
            self.timestamp,
            self.code,
            self.openid,
            self.nonce_str,
        ];
        if let Some(balance) = self.balance {
            values.push(balance);
        }
        values.retain(|v| !v.is_empty());
        sha1_sorted(&values)
    }
}

/// A fresh 16-character `[A-Za-z0-9]` nonce for `wx.config` / `card_ext`, each character
/// uniform over the 62.
///
/// One random `u128` gives 21 six-bit draws; draws of 62 or 63 are dropped (so there is no
/// modulo bias) and, in the rare case that more than five are, another `u128` is taken.
pub fn nonce_str() -> NonceStr {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut out = [0u8; NONCE_LEN];
    let mut filled = 0;
    while filled < NONCE_LEN {
        let mut bits: u128 = rng.gen();
        for _ in 0..21 {
            // The low six bits (0–63); 62 and 63 are not in the alphabet.
            if let Some(&c) = ALPHABET.get((bits & 63) as usize) {
                out[filled] = c;
                filled += 1;
                if filled == NONCE_LEN {
                    break;
                }
            }
            bits >>= 6;
        }
    }
    NonceStr::from_known_ascii(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFICIAL_TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn v6_official_current_doc() {
        assert_eq!(
            sign(
                OFFICIAL_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }

    #[test]
    fn v7_official_older_doc() {
        assert_eq!(
            sign(
                OFFICIAL_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com"
            ),
            "f4d90daf4b3bca3078ab155816175ba34c443a7b"
        );
    }

    #[test]
    fn v8_wxjava() {
        assert_eq!(
            sign(
                "bxLdikRXVbTPdHSM05e5u4RbEYQn7pNQMPrfzl8lJNb1foLDa3HIwI3BRMkQmSO_5F64VFa75uURcq6Uz7QHgA",
                "82693e11-b9bc-448e-892f-f5289f46cd0f",
                1419835025,
                "http://omstest.vmall.com:23568/thirdparty/wechat/vcode/gotoshare?quantity=1&batchName=MATE7"
            ),
            "c6f04b64d6351d197b71bd23fb7dd2d44c0db486"
        );
    }

    #[test]
    fn v9_easywechat() {
        assert_eq!(
            sign(
                "mock-ticket",
                "mock-nonce",
                1601234567,
                "https://www.easywechat.com/"
            ),
            "22772d2fb393ab9f7f6a5a54168a566fbf1ab767"
        );
    }

    #[test]
    fn fragment_is_removed_and_nothing_else_changes() {
        let with_fragment = "http://mp.weixin.qq.com?params=value#/route?x=1";
        assert_eq!(
            strip_fragment(with_fragment),
            "http://mp.weixin.qq.com?params=value"
        );
        assert_eq!(
            sign(
                OFFICIAL_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                with_fragment
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
        assert_eq!(strip_fragment("#"), "");
        assert_eq!(strip_fragment("http://a/b?c=%20d"), "http://a/b?c=%20d");
        // Percent-encoding is signed as given: encoded and decoded forms differ.
        assert_ne!(
            sign("t", "n", 1, "http://a/?q=%E4%B8%AD"),
            sign("t", "n", 1, "http://a/?q=中")
        );
    }

    #[test]
    fn card_ext_signatures_match_wechatpy() {
        let base = CardExtSign {
            api_ticket: OFFICIAL_TICKET,
            card_id: "random_card_id",
            timestamp: "1414587457",
            nonce_str: "Wm3WZYTPz0wzccnW",
            ..CardExtSign::default()
        };
        assert_eq!(base.signature(), "22dce6bad4db532d4a2ef82ca2ca7bbe1e10ef28");
        let with_code = CardExtSign {
            code: "random_code",
            ..base
        };
        assert_eq!(
            with_code.signature(),
            "2e9c6d12952246e071717d7baeab20c30420b5cd"
        );
        let with_openid = CardExtSign {
            openid: "random_openid",
            ..base
        };
        assert_eq!(
            with_openid.signature(),
            "ded860a5dd4467312764bd86e544ad0579cbfad0"
        );
        let both = CardExtSign {
            openid: "random_openid",
            code: "random_code",
            ..base
        };
        assert_eq!(both.signature(), "950dc1842852457ea573d4d6af34879c1ec093c8");
        // balance joins the sorted values when given; empty values are skipped.
        let with_balance = CardExtSign {
            balance: Some("100"),
            ..base
        };
        assert_eq!(
            with_balance.signature(),
            sha1_sorted(&[
                OFFICIAL_TICKET,
                "random_card_id",
                "1414587457",
                "Wm3WZYTPz0wzccnW",
                "100"
            ])
        );
        assert_eq!(
            CardExtSign {
                balance: Some(""),
                ..base
            }
            .signature(),
            base.signature()
        );
    }

    #[test]
    fn nonces_are_16_alphanumerics_and_differ() {
        let a = nonce_str();
        let b = nonce_str();
        assert_eq!(a.len(), NONCE_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    /// Every one of the 62 characters comes up about equally often: no character is missing,
    /// and none is favoured (a modulo of six-bit draws would give the first two twice the
    /// share). 2000 nonces give each character about 516 draws, give or take 23.
    #[test]
    fn nonce_characters_are_uniform_over_the_62() {
        let mut counts = std::collections::HashMap::<u8, u32>::new();
        for _ in 0..2000 {
            for c in nonce_str().bytes() {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 62);
        let expected = 2000.0 * 16.0 / 62.0;
        for (c, n) in counts {
            assert!(c.is_ascii_alphanumeric());
            let share = f64::from(n) / expected;
            assert!(
                (0.75..1.25).contains(&share),
                "{} drawn {n} times",
                char::from(c)
            );
        }
    }
}
