//! Reading parameters out of a raw query string, decoded exactly once.
//!
//! The JS-SDK signature is over the page URL byte for byte, so the `url` parameter must come out
//! of the query string exactly as the page encoded it with `encodeURIComponent` (or any
//! `application/x-www-form-urlencoded` encoder): split on `&`, `+` read as a space, `%XX`
//! decoded once — nothing more, nothing re-encoded afterwards. Bytes that do not decode to UTF-8
//! are refused rather than silently replaced (a replaced byte would sign a URL the browser never
//! had). The OAuth routes use the same reader so every browser-facing route decodes alike.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// The decoded value of the first `name` parameter in `raw` (the part after `?`), or `None`
/// when absent. `Some(Err(()))` when its value is not valid UTF-8 once decoded.
pub fn param(raw: Option<&str>, name: &str) -> Option<Result<String, ()>> {
    let raw = raw?;
    raw.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key).ok()?.as_ref() == name).then(|| decode(value).map(Cow::into_owned))
    })
}

/// Form-decodes one key or value: `+` → space, then `%XX` once.
fn decode(s: &str) -> Result<Cow<'_, str>, ()> {
    if !s.contains(['+', '%']) {
        return Ok(Cow::Borrowed(s));
    }
    let plus_as_space = s.replace('+', " ");
    let bytes: Vec<u8> = percent_decode(plus_as_space.as_bytes()).collect();
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_and_keeps_everything_else() {
        let q = Some("url=https%3A%2F%2Fh5.example.com%2Fa%3Fq%3D%2525E4%26b%3D1&apis=x,y");
        assert_eq!(
            param(q, "url"),
            Some(Ok("https://h5.example.com/a?q=%25E4&b=1".to_owned()))
        );
        assert_eq!(param(q, "apis"), Some(Ok("x,y".to_owned())));
        assert_eq!(param(q, "missing"), None);
        assert_eq!(param(None, "url"), None);
        assert_eq!(param(Some("url"), "url"), Some(Ok(String::new())));
        assert_eq!(param(Some("a=1+2%2B3"), "a"), Some(Ok("1 2+3".to_owned())));
        assert_eq!(param(Some("a=%E4%B8%AD"), "a"), Some(Ok("中".to_owned())));
        assert_eq!(param(Some("a=%FF"), "a"), Some(Err(())));
        assert_eq!(param(Some("a=1&a=2"), "a"), Some(Ok("1".to_owned())));
        assert_eq!(param(Some("a=%zz"), "a"), Some(Ok("%zz".to_owned())));
    }
}
