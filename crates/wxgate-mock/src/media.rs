//! Temporary media in the mock: `cgi-bin/media/upload` and `cgi-bin/media/get`.
//!
//! They exist to test that wxgate's proxy streams large bodies both ways. The upload reads its
//! `multipart/form-data` body as a stream and only *counts* (and hashes) the bytes of the
//! `media` part — it never holds the file — so a test can check that every byte of a 20 MB
//! upload arrived intact. The download answers deterministic bytes ([`media_byte`]) of the size
//! of an uploaded media (or of `mock_size=N`), generated chunk by chunk, with the headers
//! WeChat sends (`Content-Type`, `Content-Disposition`, `Content-Length`, `Cache-Control`).
//! Like WeChat, the upload drains the whole body before it answers, even an error.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use sha1::{Digest, Sha1};

use super::wire::{random_token, WxErr};
use super::Shared;

/// Largest download the mock generates (`mock_size`).
const MAX_GENERATED: u64 = 1 << 30;
/// Chunk size of generated downloads.
const CHUNK: u64 = 64 * 1024;
/// Largest header block of one multipart part.
const MAX_PART_HEADERS: usize = 16 * 1024;

/// One upload the mock received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockMedia {
    pub media_id: String,
    /// `type` query parameter: `image`, `voice`, `video` or `thumb`.
    pub media_type: String,
    /// `filename` of the `media` part.
    pub filename: Option<String>,
    /// `Content-Type` of the `media` part.
    pub content_type: Option<String>,
    /// Bytes of the `media` part.
    pub size: u64,
    /// Hex SHA-1 of the `media` part.
    pub sha1: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Byte `i` of every generated download (a pattern without short periods, so truncation,
/// duplication and reordering all show).
pub fn media_byte(i: u64) -> u8 {
    let mixed = i ^ (i >> 7) ^ (i >> 17);
    (mixed.wrapping_mul(31).wrapping_add(7) & 0xff) as u8
}

fn params(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `POST cgi-bin/media/upload?access_token&type=image|voice|video|thumb`, multipart with a
/// `media` part → `{"type","media_id","created_at"}`.
pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let q = params(q);
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary_of);
    let mut scanner = boundary.map(|b| MultipartScanner::new(&b));
    let mut stream = body.into_data_stream();
    let mut broken = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if let Some(s) = scanner.as_mut() {
                    if s.feed(&chunk).is_err() {
                        broken = true;
                        scanner = None;
                    }
                }
            }
            Err(_) => return super::routes::wx_error(WxErr::code(-1)),
        }
    }
    let checked = shared
        .lock()
        .check_access_token(q.get("access_token").map(String::as_str));
    if let Err(e) = checked {
        return super::routes::wx_error(e);
    }
    let media_type = q.get("type").cloned().unwrap_or_default();
    if !matches!(media_type.as_str(), "image" | "voice" | "video" | "thumb") {
        return super::routes::wx_error(WxErr::code(40004));
    }
    let part = match scanner.and_then(MultipartScanner::finish) {
        Some(part) if !broken => part,
        _ => return super::routes::wx_error(WxErr::code(41005)),
    };
    let media = MockMedia {
        media_id: random_token(64),
        media_type: media_type.clone(),
        filename: part.filename,
        content_type: part.content_type,
        size: part.size,
        sha1: hex::encode(part.sha1.finalize()),
        created_at: unix_now(),
    };
    let answer = json!({
        "type": media_type,
        "media_id": media.media_id,
        "created_at": media.created_at,
    });
    tracing::debug!(size = media.size, "mock media uploaded");
    shared.lock().media.push(media);
    axum::Json(answer).into_response()
}

/// `GET cgi-bin/media/get?access_token&media_id[&mock_size=N]` → the media's bytes.
pub(super) async fn get(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = params(q);
    let (size, media_type) = {
        let s = shared.lock();
        if let Err(e) = s.check_access_token(q.get("access_token").map(String::as_str)) {
            return super::routes::wx_error(e);
        }
        let media_id = q.get("media_id").map(String::as_str).unwrap_or_default();
        let known = s.media.iter().find(|m| m.media_id == media_id);
        let requested = q.get("mock_size").and_then(|n| n.parse::<u64>().ok());
        match (known, requested) {
            _ if media_id.is_empty() => return super::routes::wx_error(WxErr::code(40007)),
            (_, Some(n)) if n <= MAX_GENERATED => (n, "image".to_owned()),
            (Some(m), None) => (m.size, m.media_type.clone()),
            _ => return super::routes::wx_error(WxErr::code(40007)),
        }
    };
    let media_id = q.get("media_id").cloned().unwrap_or_default();
    let (content_type, ext) = match media_type.as_str() {
        "voice" => ("audio/amr", "amr"),
        "video" => ("video/mp4", "mp4"),
        _ => ("image/jpeg", "jpg"),
    };
    let chunks = futures::stream::iter((0..size.div_ceil(CHUNK)).map(move |n| {
        let start = n * CHUNK;
        let end = (start + CHUNK).min(size);
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(
            (start..end).map(media_byte).collect::<Vec<u8>>(),
        ))
    }));
    let safe_id: String = media_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe_id}.{ext}\""),
            ),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CACHE_CONTROL,
                "no-cache, must-revalidate".to_owned(),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let kind = parts.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// The `media` part as counted by [`MultipartScanner`].
struct MediaPart {
    filename: Option<String>,
    content_type: Option<String>,
    size: u64,
    sha1: Sha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Inside a part's content (or the preamble), looking for the next delimiter.
    Content,
    /// Right after a delimiter: `--` ends the body, CRLF starts a part.
    AfterDelimiter,
    Headers,
    Done,
}

/// A streaming `multipart/form-data` reader that keeps at most a delimiter's length of
/// content (plus one part's headers) in memory.
struct MultipartScanner {
    /// `\r\n--boundary`; the body is read as if it started with `\r\n`.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    phase: Phase,
    in_media: bool,
    media: Option<MediaPart>,
}

struct Malformed;

impl MultipartScanner {
    fn new(boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Self {
            delimiter,
            buf: b"\r\n".to_vec(),
            phase: Phase::Content,
            in_media: false,
            media: None,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), Malformed> {
        if self.phase == Phase::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.phase {
                Phase::Done => {
                    self.buf.clear();
                    return Ok(());
                }
                Phase::Content => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.content(at);
                        self.buf.drain(..at + self.delimiter.len());
                        self.phase = Phase::AfterDelimiter;
                    }
                    None => {
                        // Keep what could be the start of a delimiter split across chunks.
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let upto = self.buf.len() - keep;
                            self.content(upto);
                            self.buf.drain(..upto);
                        }
                        return Ok(());
                    }
                },
                Phase::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    if self.buf.starts_with(b"--") {
                        self.in_media = false;
                        self.phase = Phase::Done;
                    } else {
                        // Transport padding (spaces, tabs) may precede the CRLF.
                        match find(&self.buf, b"\r\n") {
                            Some(at) => {
                                self.buf.drain(..at + 2);
                                self.phase = Phase::Headers;
                            }
                            None if self.buf.len() > 256 => return Err(Malformed),
                            None => return Ok(()),
                        }
                    }
                }
                Phase::Headers => match find(&self.buf, b"\r\n\r\n") {
                    Some(at) => {
                        let block = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                        self.buf.drain(..at + 4);
                        self.start_part(&block);
                        self.phase = Phase::Content;
                    }
                    None if self.buf.len() > MAX_PART_HEADERS => return Err(Malformed),
                    None => return Ok(()),
                },
            }
        }
    }

    /// `buf[..n]` is content of the current part.
    fn content(&mut self, n: usize) {
        if !self.in_media {
            return;
        }
        if let Some(m) = self.media.as_mut() {
            m.size += n as u64;
            m.sha1.update(&self.buf[..n]);
        }
    }

    fn start_part(&mut self, headers: &str) {
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim();
            if key.eq_ignore_ascii_case("content-disposition") {
                name = disposition_param(value, "name");
                filename = disposition_param(value, "filename");
            } else if key.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        self.in_media = name.as_deref() == Some("media") && self.media.is_none();
        if self.in_media {
            self.media = Some(MediaPart {
                filename,
                content_type,
                size: 0,
                sha1: Sha1::new(),
            });
        }
    }

    /// The `media` part, when the body was complete and had one.
    fn finish(self) -> Option<MediaPart> {
        (self.phase == Phase::Done).then_some(self.media).flatten()
    }
}

fn disposition_param(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(param)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(pos) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + pos;
        if haystack.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(boundary: &str, content: &[u8]) -> Vec<u8> {
        let mut b = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"media\"; \
             filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .into_bytes();
        b.extend_from_slice(content);
        b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        b
    }

    #[test]
    fn the_media_part_is_counted_whatever_the_chunking() {
        let content: Vec<u8> = (0..10_000u64).map(media_byte).collect();
        let whole = body("XyZ", &content);
        for chunk in [1, 2, 3, 7, 64, 1000, whole.len()] {
            let mut s = MultipartScanner::new("XyZ");
            for c in whole.chunks(chunk) {
                assert!(s.feed(c).is_ok());
            }
            let part = s.finish().unwrap();
            assert_eq!(part.size, content.len() as u64, "chunk {chunk}");
            assert_eq!(part.filename.as_deref(), Some("a.jpg"));
            assert_eq!(part.content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(
                hex::encode(part.sha1.finalize()),
                hex::encode(Sha1::digest(&content))
            );
        }
    }

    #[test]
    fn content_that_looks_like_a_delimiter_prefix_is_kept() {
        let content = b"\r\n--XyZ is not it\r\n--Xy".to_vec();
        let whole = body("XyZZ", &content);
        let mut s = MultipartScanner::new("XyZZ");
        assert!(s.feed(&whole).is_ok());
        assert_eq!(s.finish().unwrap().size, content.len() as u64);
    }

    #[test]
    fn a_truncated_body_or_one_without_media_has_no_media_part() {
        let whole = body("b", b"abc");
        let mut s = MultipartScanner::new("b");
        assert!(s.feed(&whole[..whole.len() - 6]).is_ok());
        assert!(s.finish().is_none());
        let mut s = MultipartScanner::new("b");
        assert!(s
            .feed(b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--")
            .is_ok());
        assert!(s.finish().is_none());
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary_of("application/json"), None);
    }
}
