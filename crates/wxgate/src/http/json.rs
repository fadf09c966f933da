//! A small JSON object writer for the answers of the busiest routes: `GET
//! /jssdk/{account}/config` (called on every page view) and the credential answers of the
//! business API (called by every service before each WeChat call).
//!
//! `axum::Json` goes through serde: every key and value is a serializer call, the buffer starts
//! at 128 bytes and grows, and the answer's strings are first cloned into an owned struct. Here
//! the keys are written as they are, the values are borrowed and escaped in one pass, and the
//! buffer is sized once. The output is ordinary JSON (the same escaping as `serde_json`: `"`,
//! `\` and control characters; everything else, non-ASCII included, as it is); a property test
//! checks it against `serde_json` for any strings.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;
use wxgate_proto::inline_ascii::InlineAscii;

/// One JSON object, written field by field.
pub struct JsonObject {
    buf: Vec<u8>,
}

impl JsonObject {
    /// An empty object with room for about `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        JsonObject { buf }
    }

    /// `,"key":` (no comma for the first). Keys are literals of this crate with nothing to
    /// escape, so they are copied as they are.
    fn key(&mut self, key: &'static str) {
        debug_assert!(
            !needs_escape(key.as_bytes()),
            "JSON key {key:?} needs escaping"
        );
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// `"key":"value"`.
    pub fn string(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        push_string(&mut self.buf, value);
        self
    }

    /// `"key":"value"` for an inline ASCII value (a nonce, a hex digest), written from its
    /// bytes without reading them as UTF-8 again.
    pub fn ascii<const N: usize>(
        &mut self,
        key: &'static str,
        value: &InlineAscii<N>,
    ) -> &mut Self {
        self.key(key);
        push_json_string(&mut self.buf, value.as_bytes());
        self
    }

    /// `"key":123` (any integer: `u64`, `i64`, …).
    pub fn number(&mut self, key: &'static str, value: impl itoa::Integer) -> &mut Self {
        self.key(key);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// `"key":["a","b"]`.
    pub fn strings<'v>(
        &mut self,
        key: &'static str,
        values: impl IntoIterator<Item = &'v str>,
    ) -> &mut Self {
        self.key(key);
        self.buf.push(b'[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            push_string(&mut self.buf, value);
        }
        self.buf.push(b']');
        self
    }

    /// The object's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }

    /// A `200 OK` answer with `Content-Type: application/json`, as `axum::Json` gives.
    pub fn into_response(self) -> Response {
        json_response(self.finish())
    }
}

/// A `200 OK` answer of the JSON `body`, with `Content-Type: application/json`.
///
/// A body whose capacity is its length becomes the answer's buffer as it is; any other takes
/// one more allocation (the shared header of `bytes::Bytes`), so the busiest answers size
/// their buffer for the usual case of nothing to escape ([`string_len_unescaped`]).
pub fn json_response(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The number of bytes [`push_string`] writes for `s` when nothing in it needs escaping (the
/// usual case; a string with escapes is longer).
pub fn string_len_unescaped(s: &str) -> usize {
    s.len() + 2
}

/// [`string_len_unescaped`] for [`JsonObject::ascii`].
pub fn ascii_len_unescaped<const N: usize>(_: &InlineAscii<N>) -> usize {
    N + 2
}

/// Whether any byte must be escaped. Most strings need no escape at all; this check has no
/// early exit, so it is vectorised.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Appends `s` as a JSON string: quoted, with `"`, `\` and the control characters escaped.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    push_json_string(out, s.as_bytes());
}

/// [`push_string`] for bytes known to be UTF-8 (a `str`'s, or ASCII).
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The body of an in-memory answer (the hand-written ones), for unit tests.
#[cfg(test)]
pub(crate) fn answer_body(response: Response) -> Vec<u8> {
    use http_body_util::BodyExt;
    #[allow(clippy::unwrap_used)]
    let collected = futures::executor::block_on(response.into_body().collect()).unwrap();
    collected.to_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_an_object_field_by_field() {
        let mut o = JsonObject::with_capacity(8);
        o.string("a", "x\"y\\z\n\u{1}中")
            .number("n", u64::MAX)
            .number("i", i64::MIN)
            .strings("l", ["p", "q"])
            .strings("e", []);
        assert_eq!(
            String::from_utf8(o.finish()).unwrap(),
            r#"{"a":"x\"y\\z\n\u0001中","n":18446744073709551615,"i":-9223372036854775808,"l":["p","q"],"e":[]}"#
        );
        assert_eq!(JsonObject::with_capacity(0).finish(), b"{}");
    }

    proptest! {
        /// Byte for byte what `serde_json` writes for the same string, and as long as
        /// `string_len_unescaped` says exactly when nothing needs escaping.
        #[test]
        fn strings_are_written_as_serde_json_writes_them(s in "\\PC*|[\\x00-\\x7f]*") {
            let mut out = Vec::new();
            push_string(&mut out, &s);
            prop_assert_eq!(out.len() == string_len_unescaped(&s), !needs_escape(s.as_bytes()));
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }
}
