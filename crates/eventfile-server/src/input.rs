//! What comes from a socket, checked before it is used: request bodies read up to the size
//! limit, JSON refused when malformed or carrying unknown fields, query strings parsed into
//! typed parameters (unknown ones refused), and the read cursor.
//!
//! This module owns the parsing of untrusted bytes. It never calls the store: what only the
//! library can judge (names, tags, ids, metadata numbers) the library judges on the append.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::HeaderMap;
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// How much more than the limit an oversized body without a declared length is read (and
/// discarded) before the answer.
const DRAIN: usize = 16 << 20;

/// The bytes of append bodies the server holds at once, read or being read, until their
/// appends end ([`crate::ServeOptions::max_pending_bytes`]): what bounds its memory when many
/// clients send large bodies while the store is slow, where the body limit alone bounds only
/// one request.
pub(crate) struct Budget {
    used: AtomicUsize,
    cap: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            cap,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A request's share of the [`Budget`], given back when dropped (once its append has ended).
pub(crate) struct Held {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Held {
    fn new(budget: &Arc<Budget>) -> Held {
        Held {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Takes `more` bytes of the budget, or answers 503 if that would pass it.
    fn take(&mut self, more: usize) -> ApiResult<()> {
        let cap = self.budget.cap;
        self.budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&n| n <= cap)
            })
            .map_err(|_| {
                ApiError::unavailable(format!(
                    "the server holds {cap} bytes of append bodies already, the most it takes \
                     at once; nothing was written: retry later"
                ))
            })?;
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads a body of at most `limit` bytes within `timeout`, its bytes taken from `budget` as
/// they arrive, for as long as the returned [`Held`] lives. A declared length over the limit is
/// refused before a byte is read; a body that grows past the limit or the budget is refused at
/// the first chunk that does; a body still arriving after `timeout` (a client trickling bytes)
/// is a 408.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
    budget: &Arc<Budget>,
) -> ApiResult<(Vec<u8>, Held)> {
    let mut held = Held::new(budget);
    match tokio::time::timeout(timeout, read_limited(headers, body, limit, &mut held)).await {
        Ok(r) => r.map(|bytes| (bytes, held)),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request body did not arrive within {} ms; nothing was written",
                timeout.as_millis()
            ),
        )),
    }
}

async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    held: &mut Held,
) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        // Taken as the bytes arrive, not for a declared length up front: clients declaring
        // large bodies and sending nothing would otherwise hold the budget for the request
        // timeout at no cost to themselves.
        let refused = if bytes.len() + chunk.len() > limit {
            Some(ApiError::too_large(limit))
        } else {
            held.take(chunk.len()).err()
        };
        if let Some(refused) = refused {
            // Read on (discarding) for a while, so that a client still sending sees the answer
            // rather than a reset; past that, the connection is cut.
            let mut drained = bytes.len() + chunk.len();
            drop(bytes);
            while drained < limit.saturating_add(DRAIN) {
                match stream.next().await {
                    Some(Ok(c)) => drained += c.len(),
                    _ => break,
                }
            }
            return Err(refused);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Parses a JSON body into `T` (whose fields refuse unknown members), with serde's message
/// (line, column, what was expected) as the 400's message.
pub(crate) fn json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON body is required",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Parses a query string into `T`; repeated keys fill a `Vec`. Every key and value must be
/// UTF-8 once percent-decoded: the form decoder replaces what is not with U+FFFD, and a filter
/// would then match nothing without a word (a feed that never delivers).
pub(crate) fn params<T: DeserializeOwned>(query: Option<&str>) -> ApiResult<T> {
    let query = query.unwrap_or("");
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let Ok(text) = percent_encoding::percent_decode_str(part).decode_utf8() else {
            return Err(ApiError::bad_request(format!(
                "the query parameter `{part}` is not UTF-8 once percent-decoded"
            )));
        };
        // `limit=` (or a bare `limit`) is read by the form parser as no parameter at all: a
        // page asked for read the whole log, a feed from 0 replayed it. Refused instead.
        let (name, value) = text.split_once('=').unwrap_or((&text, ""));
        if value.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid query parameters: `{}` has no value",
                name.chars().take(40).collect::<String>()
            )));
        }
    }
    serde_html_form::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
}

/// A path segment (`/streams/{stream}`, `/events/{id}`): axum's `Path<String>`, with its
/// refusal (bytes that are not UTF-8 once percent-decoded) answered as every other bad input
/// is, a typed 400 in JSON, rather than axum's plain text.
pub(crate) struct PathText(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<PathText, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(text)) => Ok(PathText(text)),
            Err(e) => Err(ApiError::bad_request(format!(
                "invalid path: {}",
                e.body_text()
            ))),
        }
    }
}

/// The filters of `eventfile query` (and `tail`), under the same names, with the paging
/// parameters of `GET /events` and the start of `GET /subscribe`. Each endpoint refuses the
/// parameters that are not its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterParams {
    #[serde(default)]
    pub stream: Vec<String>,
    pub prefix: Option<String>,
    #[serde(default, rename = "type")]
    pub types: Vec<String>,
    #[serde(default)]
    pub tag: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub correlation: Option<String>,
    pub causation: Option<String>,
    pub actor: Option<String>,
    #[serde(rename = "from-seq")]
    pub from_seq: Option<String>,
    #[serde(rename = "to-seq")]
    pub to_seq: Option<String>,
    pub limit: Option<String>,
    pub backward: Option<String>,
    pub after: Option<String>,
    pub count: Option<String>,
    /// `GET /subscribe` only: the position to start after.
    pub from: Option<String>,
}

/// A number parameter, parsed with its name in the error.
pub(crate) fn number(name: &str, v: Option<&String>) -> ApiResult<Option<u64>> {
    v.map(|t| {
        position(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid query parameters: `{name}` is `{}`, not a whole number from 0 to \
                 9223372036854775807",
                t.chars().take(40).collect::<String>()
            ))
        })
    })
    .transpose()
}

/// A seq, version or count as the API writes them: decimal digits only (no sign), at most
/// `i64::MAX` (the largest any backend stores, and the documented maximum).
pub(crate) fn position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
}

/// A `true`/`false` parameter.
pub(crate) fn flag(name: &str, v: Option<&String>) -> ApiResult<bool> {
    match v.map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(t) => Err(ApiError::bad_request(format!(
            "invalid query parameters: `{name}` is `{}`, not true or false",
            t.chars().take(40).collect::<String>()
        ))),
    }
}

impl FilterParams {
    /// The query the filters name (not the paging), not yet validated by the library.
    pub fn query(&self) -> ApiResult<eventfile::Query> {
        let mut q = eventfile::Query::new()
            .streams(self.stream.iter().cloned())
            .types(self.types.iter().cloned());
        for t in &self.tag {
            q = q.tag(t.clone());
        }
        if let Some(p) = &self.prefix {
            q = q.prefix(p.clone());
        }
        if let Some(v) = &self.correlation {
            q = q.correlation(v.clone());
        }
        if let Some(v) = &self.causation {
            q = q.causation(v.clone());
        }
        if let Some(v) = &self.actor {
            q = q.actor(v.clone());
        }
        if let Some(t) = &self.since {
            q = q.since(time("since", t)?);
        }
        if let Some(t) = &self.until {
            q = q.until(time("until", t)?);
        }
        Ok(q)
    }

    /// Refuses, naming them, the parameters given that `endpoint` does not take.
    pub fn refuse(&self, endpoint: &str, names: &[&str]) -> ApiResult<()> {
        let given = |n: &str| match n {
            "from-seq" => self.from_seq.is_some(),
            "to-seq" => self.to_seq.is_some(),
            "limit" => self.limit.is_some(),
            "backward" => self.backward.is_some(),
            "after" => self.after.is_some(),
            "count" => self.count.is_some(),
            "from" => self.from.is_some(),
            _ => false,
        };
        match names.iter().find(|n| given(n)) {
            Some(n) => Err(ApiError::bad_request(format!(
                "invalid query parameters: `{n}` is not a parameter of {endpoint}"
            ))),
            None => Ok(()),
        }
    }
}

fn time(name: &str, text: &str) -> ApiResult<eventfile::Micros> {
    eventfile::parse_rfc3339(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid query parameters: `{name}` is `{text}`, not an RFC 3339 time such as \
             2026-11-22T10:00:00Z"
        ))
    })
}

/// A `limit` checked against the server's maximum.
pub(crate) fn limit(given: Option<u64>, max: usize) -> ApiResult<Option<usize>> {
    match given {
        Some(n) if n > max as u64 => Err(ApiError::bad_request(format!(
            "invalid query parameters: `limit` is {n}, over the server's maximum of {max}; page \
             with the `next` cursor"
        ))),
        Some(n) => Ok(Some(n as usize)),
        None => Ok(None),
    }
}

/// The position a page of `GET /events` ended at: opaque text (`c1.SEQ.f|b.CRC`) checked when
/// it comes back, so a damaged or hand-made one is a 400 rather than a wrong page. It names a
/// seq, which every backend orders by, so it works whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub backward: bool,
}

impl Cursor {
    fn body(&self) -> String {
        format!("c1.{}.{}", self.seq, if self.backward { 'b' } else { 'f' })
    }

    pub fn encode(&self) -> String {
        let body = self.body();
        format!("{body}.{:08x}", crc32fast::hash(body.as_bytes()))
    }

    pub fn parse(text: &str) -> ApiResult<Cursor> {
        let bad = || {
            ApiError::bad_request(format!(
                "invalid query parameters: `after` is not a cursor this server made: `{}`",
                text.chars().take(80).collect::<String>()
            ))
        };
        let (body, crc) = text.rsplit_once('.').ok_or_else(bad)?;
        let mut parts = body.split('.');
        let (Some("c1"), Some(seq), Some(dir), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let cursor = Cursor {
            seq: seq.parse().map_err(|_| bad())?,
            backward: match dir {
                "f" => false,
                "b" => true,
                _ => return Err(bad()),
            },
        };
        // Only the canonical text (`+5` or `05` would parse as 5) with its checksum.
        if cursor.body() != body || format!("{:08x}", crc32fast::hash(body.as_bytes())) != crc {
            return Err(bad());
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_damage() {
        let c = Cursor {
            seq: 42,
            backward: true,
        };
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        let damaged = c.encode().replace(".42.", ".43.");
        assert!(Cursor::parse(&damaged).is_err());
        for bad in [
            "",
            "c1",
            "c1.1.f",
            "c1.+1.f.00000000",
            "c2.1.f.00000000",
            "c1.1.x.0",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_filters_and_unknown_parameters() {
        let p: FilterParams = params(Some("type=A&type=B&tag=k%3Dv&limit=5")).unwrap();
        assert_eq!(p.types, ["A", "B"]);
        assert_eq!(p.tag, ["k=v"]);
        assert_eq!(number("limit", p.limit.as_ref()).unwrap(), Some(5));
        assert!(params::<FilterParams>(Some("colour=red")).is_err());
        let p: FilterParams = params(Some("limit=many")).unwrap();
        assert!(number("limit", p.limit.as_ref()).is_err());
    }
}
