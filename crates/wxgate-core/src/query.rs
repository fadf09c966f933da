//! Reading parameters out of a raw query string, decoded exactly once: the one query decoder
//! of every route (JS-SDK, OAuth, the proxy's token filter, the OAuth redirect's filter).
//!
//! The JS-SDK signature is over the page URL byte for byte, so the `url` parameter must come out
//! of the query string exactly as the page encoded it with `encodeURIComponent` (or any
//! `application/x-www-form-urlencoded` encoder): split on `&`, `+` read as a space, `%XX`
//! decoded once (by `percent-encoding`; a `%` not followed by two hex digits stays as it is, like
//! the WHATWG form decoder) — nothing more, nothing re-encoded afterwards. Bytes that do not
//! decode to UTF-8 are refused rather than silently replaced (a replaced byte would sign a URL
//! the browser never had). A value without `+` or `%` is borrowed; any other costs one
//! allocation.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The decoded value of the first `name` parameter in `raw` (the part after `?`), or `None`
/// when absent. `Some(Err(()))` when its value is not valid UTF-8 once decoded.
pub fn param(raw: Option<&str>, name: &str) -> Option<Result<String, ()>> {
    let [value] = params(raw, [name]);
    value
}

/// [`param`] for several names in one pass over `raw` (the busiest route reads two): each
/// name's first value, in the order of `names`.
pub fn params<const N: usize>(
    raw: Option<&str>,
    names: [&str; N],
) -> [Option<Result<String, ()>>; N] {
    let mut found = [const { None }; N];
    let Some(raw) = raw else {
        return found;
    };
    let mut missing = N;
    for pair in raw.split('&') {
        if missing == 0 {
            break;
        }
        let (key, value) = split(pair);
        let Ok(key) = decode(key) else {
            continue;
        };
        if let Some(i) = names.iter().position(|name| *name == key.as_ref()) {
            if found[i].is_none() {
                found[i] = Some(decode(value).map(Cow::into_owned));
                missing -= 1;
            }
        }
    }
    found
}

/// Whether the parameter `pair` (one `&`-separated piece of a query) is named `name` once
/// decoded; the value is not decoded. A name that is not UTF-8 once decoded is no name.
pub fn is_named(pair: &str, name: &str) -> bool {
    decode(split(pair).0).is_ok_and(|key| key == name)
}

/// A parameter's raw name and value (`""` when it has no `=`).
fn split(pair: &str) -> (&str, &str) {
    pair.split_once('=').unwrap_or((pair, ""))
}

/// Form-decodes one key or value: `+` → space, then `%XX` once. A `+` is never part of an
/// escape, so decoding the pieces between `+`s is decoding the whole; into one buffer of the
/// input's length (the output is never longer), so at most one allocation.
fn decode(s: &str) -> Result<Cow<'_, str>, ()> {
    if !s.contains(['+', '%']) {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    for (i, piece) in s.split('+').enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(percent_decode_str(piece));
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| ())
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
        assert_eq!(param(Some("a=%4"), "a"), Some(Ok("%4".to_owned())));
        assert_eq!(param(Some("a=100%"), "a"), Some(Ok("100%".to_owned())));
        assert_eq!(param(Some("a=%2b%2B+"), "a"), Some(Ok("++ ".to_owned())));
        assert_eq!(param(Some("%61=x"), "a"), Some(Ok("x".to_owned())));
    }

    #[test]
    fn names_pairs_by_their_decoded_name() {
        assert!(is_named("access_token=x", "access_token"));
        assert!(is_named("access%5Ftoken", "access_token"));
        assert!(is_named("wxgate_cod%65=1=2", "wxgate_code"));
        assert!(!is_named("access+token=x", "access_token"));
        assert!(!is_named("%FF=x", "access_token"));
        assert!(!is_named("x=access_token", "access_token"));
    }

    #[test]
    fn reads_several_names_in_one_pass_as_one_at_a_time() {
        let q = Some("apis=x&url=u%26v&apis=y&%FF=1&url=w&bad=%FF");
        assert_eq!(
            params(q, ["url", "apis", "missing", "bad"]),
            [
                Some(Ok("u&v".to_owned())),
                Some(Ok("x".to_owned())),
                None,
                Some(Err(()))
            ]
        );
        assert_eq!(params(None, ["url", "apis"]), [None, None]);
        assert_eq!(
            params(Some("url=a&url=b"), ["url", "url"]),
            [Some(Ok("a".to_owned())), None]
        );
    }

    proptest::proptest! {
        /// The decoder reads every string exactly as `+` → space followed by the
        /// `percent-encoding` crate's decoder, whichever of its paths it takes.
        #[test]
        fn decodes_like_plus_then_percent_decoding(s in "([a-zA-Z0-9+%/?&=#:. -]|%[0-9a-fA-F]{2}|%[0-9a-fA-F]|\\PC){0,40}") {
            let reference = percent_encoding::percent_decode(s.replace('+', " ").as_bytes())
                .collect::<Vec<u8>>();
            let expected = String::from_utf8(reference).map_err(|_| ());
            proptest::prop_assert_eq!(decode(&s).map(Cow::into_owned), expected);
        }

        /// Reading two names in one pass answers what a search for each name alone answers.
        #[test]
        fn one_pass_agrees_with_a_search_per_name(q in "([ab]{1,2}|%61|%FF)(=([xy+]|%26|%FF){0,3})?(&([ab]{1,2}|%61|%FF)?(=([xy+]|%26|%FF){0,3})?){0,5}") {
            let alone = |name: &str| {
                q.split('&').find_map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(key).ok()?.as_ref() == name).then(|| decode(value).map(Cow::into_owned))
                })
            };
            let [a, b] = params(Some(&q), ["a", "b"]);
            proptest::prop_assert_eq!(a, alone("a"));
            proptest::prop_assert_eq!(b, alone("b"));
        }
    }
}
