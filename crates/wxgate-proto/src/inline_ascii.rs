//! Short ASCII strings of a fixed length, kept inline instead of on the heap.
//!
//! A `wx.config` answer is made on every page view and carries two such strings: a SHA-1 in hex
//! (40 characters) and a nonce (16). As `String`s each is an allocation and a free per request
//! for a value whose length is known in advance; [`InlineAscii`] holds the bytes in place and
//! lends them as `&str`. It can only be built from ASCII, so it is always valid UTF-8.

use std::fmt;

/// `N` ASCII bytes, read as a `&str` ([`InlineAscii::as_str`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineAscii<const N: usize>([u8; N]);

impl<const N: usize> InlineAscii<N> {
    /// The bytes of `s` when it is exactly `N` ASCII characters, else `None`.
    pub fn new(s: &str) -> Option<Self> {
        let bytes: [u8; N] = s.as_bytes().try_into().ok()?;
        Self::from_ascii(bytes)
    }

    /// `bytes` when all of them are ASCII, else `None`.
    pub fn from_ascii(bytes: [u8; N]) -> Option<Self> {
        bytes.is_ascii().then_some(InlineAscii(bytes))
    }

    /// `bytes` the caller made from an ASCII alphabet (hex digits, alphanumerics).
    pub(crate) fn from_known_ascii(bytes: [u8; N]) -> Self {
        debug_assert!(bytes.is_ascii());
        InlineAscii(bytes)
    }

    /// The ASCII bytes, without the UTF-8 check [`Self::as_str`] makes (writers of JSON and
    /// HTTP take bytes).
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// The characters as a string slice.
    pub fn as_str(&self) -> &str {
        // Every constructor makes or checks ASCII, so this never falls back to "".
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const N: usize> std::ops::Deref for InlineAscii<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for InlineAscii<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineAscii<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq<&str> for InlineAscii<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> serde::Serialize for InlineAscii<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_n_ascii_characters() {
        let s = InlineAscii::<3>::new("abc").unwrap();
        assert_eq!(s, "abc");
        assert_eq!(s.len(), 3);
        assert_eq!(s.to_string(), "abc");
        assert_eq!(format!("{s:?}"), "\"abc\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"abc\"");
        assert_eq!(InlineAscii::<3>::new("ab"), None);
        assert_eq!(InlineAscii::<3>::new("abcd"), None);
        // Three bytes, but not ASCII.
        assert_eq!(InlineAscii::<3>::new("中"), None);
        assert_eq!(InlineAscii::<2>::from_ascii([b'a', 0x80]), None);
    }
}
