//! The reads: `GET /streams/{stream}`, `GET /events` (the filters of `eventfile query`),
//! `GET /events/{id}`, the listings (`/streams`, `/types`, `/tags`) and `GET /head`.
//!
//! A read answers a JSON array, or NDJSON (one event a line, the `cat` line) when the request
//! accepts `application/x-ndjson`. A read without a `limit` is streamed: a batch is read from
//! the store only when the previous one has been written to the socket, so a client reading
//! slowly holds a few batches of memory, never the result. A page (`limit`, at most the
//! server's maximum) is read whole, so that its `Eventfile-Next` cursor can lead the answer.
//!
//! This module owns the shapes of the answers. It never filters or orders events itself: the
//! store's query does.

use std::io;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eventfile::{Direction, EventIter, Read};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::input::{self, Cursor, FilterParams};
use crate::state::{InFlight, Running, Shared};

/// The header a page's next cursor (or a listing's next `after`) comes in.
pub(crate) const NEXT: &str = "eventfile-next";

const NDJSON: &str = "application/x-ndjson";

/// Events (or items) per batch of a streamed read, and the most bytes a batch gathers.
const BATCH_EVENTS: usize = 256;
const BATCH_BYTES: usize = 256 << 10;

/// The bytes of events a page gathers before it ends short of its limit (with a next cursor):
/// a page is built whole, and `max_limit` events of the store's largest size would be tens of
/// gibibytes held for one request.
const PAGE_BYTES: usize = 16 << 20;

/// Whether the client asked for NDJSON.
pub(crate) fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(NDJSON))
}

/// A whole answer: JSON items as an array or as lines, with an optional next cursor.
fn items(lines: Vec<String>, ndjson: bool, next: Option<String>) -> Response {
    let body = if ndjson {
        let mut s = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in &lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    } else {
        format!("[{}]", lines.join(","))
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if ndjson { NDJSON } else { "application/json" }),
    );
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert(NEXT, next);
    }
    r
}

/// Where a streamed read is.
struct Pull {
    in_flight: Arc<InFlight>,
    iter: Option<EventIter>,
    ndjson: bool,
    wrote_any: bool,
    opened: bool,
}

/// The next chunk of a streamed read: up to a batch of events, read on the blocking pool.
async fn next_chunk(mut p: Pull) -> Option<(io::Result<Bytes>, Pull)> {
    let mut iter = p.iter.take()?;
    let (ndjson, mut wrote_any, opened) = (p.ndjson, p.wrote_any, p.opened);
    // Counted as a store call: the iterator may hold the store's files, and a shutdown waits
    // for it even if the client has gone.
    let running = Running::start(&p.in_flight);
    let batch = tokio::task::spawn_blocking(move || {
        let _running = running;
        let mut buf = String::new();
        if !ndjson && !opened {
            buf.push('[');
        }
        let mut n = 0;
        let mut failed = None;
        let mut ended = false;
        while n < BATCH_EVENTS && buf.len() < BATCH_BYTES {
            match iter.next() {
                None => {
                    ended = true;
                    break;
                }
                Some(Ok(e)) => {
                    if !ndjson && wrote_any {
                        buf.push(',');
                    }
                    buf.push_str(&e.to_json());
                    if ndjson {
                        buf.push('\n');
                    }
                    wrote_any = true;
                    n += 1;
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if ended && !ndjson {
            buf.push(']');
        }
        (iter, buf, wrote_any, ended, failed)
    })
    .await;
    let Ok((iter, mut buf, wrote_any, ended, failed)) = batch else {
        return Some((Err(io::Error::other("the read failed")), p));
    };
    p.opened = true;
    p.wrote_any = wrote_any;
    if let Some(e) = failed {
        let e = ApiError::from(e);
        if !p.ndjson {
            // A JSON array cannot say it failed: the connection is cut, so the client sees a
            // truncated body, never a short array taken for the whole answer.
            return Some((Err(io::Error::other(e.message)), p));
        }
        buf.push_str(&e.body());
        buf.push('\n');
        return Some((Ok(Bytes::from(buf)), p));
    }
    if !ended {
        p.iter = Some(iter);
    }
    Some((Ok(Bytes::from(buf)), p))
}

/// A streamed answer over `iter`.
fn streamed(state: &Shared, iter: EventIter, ndjson: bool) -> Response {
    let pull = Pull {
        in_flight: Arc::clone(&state.in_flight),
        iter: Some(iter),
        ndjson,
        wrote_any: false,
        opened: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(pull, next_chunk));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if ndjson { NDJSON } else { "application/json" }),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamParams {
    from: Option<String>,
    limit: Option<String>,
    backward: Option<String>,
}

/// `GET /streams/{stream}?from=V&limit=N&backward=true`.
pub(crate) async fn read_stream(
    State(state): State<Shared>,
    input::PathText(stream): input::PathText,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p: StreamParams = input::params(query.as_deref())?;
    let mut read = if input::flag("backward", p.backward.as_ref())? {
        Read::backward()
    } else {
        Read::forward()
    };
    if let Some(v) = input::number("from", p.from.as_ref())? {
        read = read.from(v);
    }
    if let Some(n) = input::limit(
        input::number("limit", p.limit.as_ref())?,
        state.options.max_limit,
    )? {
        read = read.limit(n);
    }
    let iter = state.call(move |s| s.read_stream(&stream, read)).await?;
    Ok(streamed(&state, iter, wants_ndjson(&headers)))
}

/// `GET /events?<filters>&from-seq&to-seq&limit&backward&after&count`.
pub(crate) async fn query_events(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p: FilterParams = input::params(query.as_deref())?;
    p.refuse("GET /events", &["from"])?;
    let backward = input::flag("backward", p.backward.as_ref())?;
    let mut q = p.query()?;
    if backward {
        q = q.direction(Direction::Backward);
    }
    let mut from = input::number("from-seq", p.from_seq.as_ref())?;
    let mut to = input::number("to-seq", p.to_seq.as_ref())?;
    let cursor = p.after.as_deref().map(Cursor::parse).transpose()?;
    if let Some(c) = cursor {
        if c.backward != backward {
            return Err(ApiError::bad_request(
                "invalid query parameters: `after` is a cursor of a read in the other direction",
            ));
        }
        if backward {
            to = Some(to.unwrap_or(u64::MAX).min(c.seq.saturating_sub(1)));
        } else {
            from = Some(from.unwrap_or(0).max(c.seq.saturating_add(1)));
        }
    }
    let ndjson = wants_ndjson(&headers);
    // A cursor past the end of the range: the last page was the end.
    if cursor.is_some() && (to == Some(0) || matches!((from, to), (Some(f), Some(t)) if f > t)) {
        return Ok(items(Vec::new(), ndjson, None));
    }
    if let Some(f) = from {
        q = q.from_seq(f);
    }
    if let Some(t) = to {
        q = q.to_seq(t);
    }
    q.validate().map_err(ApiError::from)?;
    if input::flag("count", p.count.as_ref())? {
        let n = state.call(move |s| s.count(&q)).await?;
        return Ok(Json(json!({ "count": n })).into_response());
    }
    let Some(limit) = input::limit(
        input::number("limit", p.limit.as_ref())?,
        state.options.max_limit,
    )?
    else {
        let iter = state.call(move |s| s.query(&q)).await?;
        return Ok(streamed(&state, iter, ndjson));
    };
    let q = q.limit(limit);
    let (page, cut) = state
        .call(move |s| {
            let mut page = Vec::new();
            let mut bytes = 0;
            for e in s.query(&q)? {
                let e = e?;
                let line = e.to_json();
                bytes += line.len();
                page.push((e.seq, line));
                if bytes >= PAGE_BYTES && page.len() < limit {
                    return Ok((page, true));
                }
            }
            Ok::<_, eventfile::Error>((page, false))
        })
        .await?;
    let next = match page.last() {
        Some((seq, _)) if cut || page.len() == limit => Some(
            Cursor {
                seq: *seq,
                backward,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(items(
        page.into_iter().map(|(_, l)| l).collect(),
        ndjson,
        next,
    ))
}

/// `GET /events/{id}`.
pub(crate) async fn get_event(
    State(state): State<Shared>,
    input::PathText(id): input::PathText,
) -> ApiResult<Response> {
    let wanted = id.clone();
    match state.call(move |s| s.get_event(&wanted)).await? {
        Some(e) => Ok(json_text(e.to_json())),
        None => Err(ApiError::not_found(format!("no event with id `{id}`"))),
    }
}

fn json_text(text: String) -> Response {
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /streams?prefix=P&after=S&limit=N`: `[{"stream","version"}]`.
pub(crate) async fn list_streams(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p: ListParams = input::params(query.as_deref())?;
    let limit = input::limit(
        input::number("limit", p.limit.as_ref())?,
        state.options.max_limit,
    )?
    .unwrap_or(state.options.max_limit);
    let (prefix, after) = (p.prefix, p.after);
    let page = state
        .call(move |s| s.streams(&prefix, after.as_deref(), limit))
        .await?;
    let next = (page.len() == limit && limit > 0)
        .then(|| page.last().map(|s| s.stream.clone()))
        .flatten();
    let lines = page
        .iter()
        .map(|s| json!({ "stream": s.stream, "version": s.version }).to_string())
        .collect();
    Ok(items(lines, wants_ndjson(&headers), next))
}

/// `GET /types` and `GET /tags`: `[{"type"|"tag","count"}]`.
async fn terms(
    state: Shared,
    query: Option<String>,
    headers: HeaderMap,
    tags: bool,
) -> ApiResult<Response> {
    let p: ListParams = input::params(query.as_deref())?;
    if !p.prefix.is_empty() {
        return Err(ApiError::bad_request(
            "invalid query parameters: `prefix` is a parameter of GET /streams only",
        ));
    }
    let limit = input::limit(
        input::number("limit", p.limit.as_ref())?,
        state.options.max_limit,
    )?
    .unwrap_or(state.options.max_limit);
    let after = p.after;
    let page = state
        .call(move |s| {
            if tags {
                s.tags(after.as_deref(), limit)
            } else {
                s.event_types(after.as_deref(), limit)
            }
        })
        .await?;
    let next = (page.len() == limit && limit > 0)
        .then(|| page.last().map(|t| t.name.clone()))
        .flatten();
    let key = if tags { "tag" } else { "type" };
    let lines = page
        .iter()
        .map(|t| json!({ key: t.name, "count": t.count }).to_string())
        .collect();
    Ok(items(lines, wants_ndjson(&headers), next))
}

pub(crate) async fn list_types(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    terms(state, query, headers, false).await
}

pub(crate) async fn list_tags(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    terms(state, query, headers, true).await
}

/// `GET /head`: `{"head","log_start"}`.
pub(crate) async fn head(State(state): State<Shared>) -> ApiResult<Response> {
    let (head, log_start) = state.call(|s| Ok((s.head_seq()?, s.log_start()?))).await?;
    Ok(Json(json!({ "head": head, "log_start": log_start })).into_response())
}
