//! What WeChat answered: the one check every answer of the attempt loop goes through (HTTP
//! status, a JSON object, a zero or absent `errcode`) and the typed readings of the answers
//! that several calls share (a credential and its lifetime, a web-login token, fields).
//!
//! Kept apart from the attempt loop of [`WechatClient`](super::WechatClient) so each reads
//! short: the loop decides when and how often to ask, this file what an answer means. Nothing
//! here logs or keeps a value: credentials leave as [`SecretString`]s.

use secrecy::SecretString;
use serde_json::Value;

use super::{IssuedCredential, OAuthToken, UpstreamError};

/// WeChat's answer to one attempt → its JSON object, or the error it stands for: a non-2xx
/// status, a body that is not a JSON object, or a non-zero `errcode` (with `errmsg` and rid).
pub(super) fn check(status: reqwest::StatusCode, body: &[u8]) -> Result<Value, UpstreamError> {
    if !status.is_success() {
        return Err(UpstreamError::HttpStatus(status.as_u16()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        UpstreamError::Unparseable(format!(
            "HTTP {} with a {}-byte body that is not JSON",
            status.as_u16(),
            body.len()
        ))
    })?;
    if !value.is_object() {
        return Err(UpstreamError::Unparseable(
            "the JSON answer is not an object".into(),
        ));
    }
    match value.get("errcode") {
        None | Some(Value::Null) => Ok(value),
        Some(code) => {
            let errcode = code
                .as_i64()
                .or_else(|| code.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| UpstreamError::Unparseable("errcode is not a number".into()))?;
            if errcode == 0 {
                return Ok(value);
            }
            let errmsg = value
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(UpstreamError::wechat(errcode, errmsg))
        }
    }
}

/// The answer of a web-login code exchange (`sns/oauth2/access_token` and its component
/// flavour) → an [`OAuthToken`].
pub(super) fn oauth_token(answer: &Value) -> Result<OAuthToken, UpstreamError> {
    let access = credential(answer, "access_token")?;
    let refresh_token = str_field(answer, "refresh_token")
        .ok_or_else(|| missing("refresh_token"))?
        .to_owned();
    let openid = str_field(answer, "openid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("openid"))?
        .to_owned();
    let scope = str_field(answer, "scope").unwrap_or_default().to_owned();
    let unionid = str_field(answer, "unionid")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let is_snapshotuser = match answer.get("is_snapshotuser") {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        _ => false,
    };
    Ok(OAuthToken {
        access_token: access.value,
        expires_in: access.expires_in,
        refresh_token: SecretString::from(refresh_token),
        openid,
        scope,
        unionid,
        is_snapshotuser,
    })
}

pub(super) fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

pub(super) fn missing(field: &str) -> UpstreamError {
    UpstreamError::Unparseable(format!("the answer has no `{field}`"))
}

/// `{"<field>": "...", "expires_in": N}` → an [`IssuedCredential`].
pub(super) fn credential(answer: &Value, field: &str) -> Result<IssuedCredential, UpstreamError> {
    let value = str_field(answer, field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(field))?;
    let expires_in = match answer.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| missing("expires_in"))?;
    Ok(IssuedCredential {
        value: SecretString::from(value.to_owned()),
        expires_in,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_an_object_without_a_nonzero_errcode() {
        let ok = reqwest::StatusCode::OK;
        assert!(check(ok, br#"{"access_token":"t","expires_in":7200}"#).is_ok());
        assert!(check(ok, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(check(ok, br#"{"errcode":"0"}"#).is_ok());
        let e = check(ok, br#"{"errcode":"40001","errmsg":"invalid rid: a-b"}"#).unwrap_err();
        assert_eq!(
            (e.wechat_errcode(), e.wechat_rid()),
            (Some(40001), Some("a-b"))
        );
        for bad in [&b"[1]"[..], b"<html>", br#"{"errcode":"x"}"#] {
            assert!(matches!(check(ok, bad), Err(UpstreamError::Unparseable(_))));
        }
        let status = reqwest::StatusCode::BAD_GATEWAY;
        assert!(matches!(
            check(status, b"{}"),
            Err(UpstreamError::HttpStatus(502))
        ));
    }

    #[test]
    fn a_credential_needs_its_value_and_lifetime() {
        let c = credential(
            &serde_json::json!({"ticket": "t", "expires_in": "7200"}),
            "ticket",
        );
        assert_eq!(c.unwrap().expires_in, 7200);
        assert!(credential(&serde_json::json!({"ticket": ""}), "ticket").is_err());
        assert!(credential(&serde_json::json!({"ticket": "t"}), "ticket").is_err());
    }
}
