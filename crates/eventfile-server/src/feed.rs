//! `GET /subscribe`: a live feed of the events a filter selects, history then live, as
//! Server-Sent Events (`id:` the seq, `data:` the `cat` line) or, for a request that accepts
//! `application/x-ndjson`, as NDJSON.
//!
//! **Position.** A feed starts after `from` (0: the whole log), or after the seq a reconnecting
//! client names in `Last-Event-ID`, which wins: a browser's `EventSource` reconnects to the same
//! URL with it. Every event is sent once, in seq order, with none skipped: the feed reads
//! `(position, head]` with the filter, and moves its position only past what it has read.
//!
//! **Back-pressure.** A feed holds no queue. It reads the next batch from the store only when
//! the connection has taken the previous one (hyper asks for the next chunk only while its write
//! buffer holds less than about 400 KiB, and that buffer drains only as the socket takes it),
//! so a slow client reads the log at its own pace and costs one batch of memory plus the
//! connection's buffers; a thousand feeds cost no thread each (they wait on one head watch, not
//! on a blocked subscription each). A feed whose chunk waits for its connection counts in the
//! `eventfile_feeds_blocked` gauge of `/metrics`.
//!
//! **Idle and end.** An idle feed sends a heartbeat (an SSE comment, an NDJSON
//! `{"heartbeat":HEAD}` line) once a heartbeat interval has passed since it last sent
//! anything, however often appends its filter does not select come. A feed ends when the server shuts down.
//! Events retention removed before the feed reached them come as one SSE `event: gap` (NDJSON
//! `{"gap":{"first","last"}}`), whose SSE `id:` is the gap's last seq, and the feed goes on
//! after them.
//!
//! This module owns the feed's wire format and pacing; which events match is the store's query.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use eventfile::Query;
use tokio::sync::watch;

use crate::error::{ApiError, ApiResult};
use crate::input::{self, FilterParams};
use crate::read::wants_ndjson;
use crate::state::{Shared, SubscriberSlot};

/// Events per batch read from the store for one feed.
const BATCH: usize = 256;

/// The bytes a batch gathers before it is handed on, as a streamed read's (`read.rs`): with
/// events of up to the store's limit (4 MiB by default), 256 of them made a chunk of up to a
/// gibibyte, held for a client that may read nothing.
const BATCH_BYTES: usize = 256 << 10;

/// What a feed has sent and waits on.
struct Feed {
    state: Shared,
    query: Query,
    /// The seq the feed has delivered through.
    position: u64,
    ndjson: bool,
    head: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    heartbeat: Duration,
    ended: bool,
    /// A chunk was handed to the connection, which has not asked for the next one yet.
    blocked: bool,
    /// When the last chunk was handed over: the heartbeat is due a heartbeat interval after
    /// it, however often appends of events the filter does not select wake the feed.
    last_sent: tokio::time::Instant,
    _slot: SubscriberSlot,
}

impl Feed {
    /// The connection asks for the next chunk: it took the last one.
    fn taken(&mut self) {
        if std::mem::take(&mut self.blocked) {
            self.state
                .metrics
                .feeds_blocked
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Hands `text` to the connection; the feed is blocked until it asks for more.
    fn chunk(mut self, text: String) -> Option<(io::Result<Bytes>, Feed)> {
        self.blocked = true;
        self.last_sent = tokio::time::Instant::now();
        self.state
            .metrics
            .feeds_blocked
            .fetch_add(1, Ordering::Relaxed);
        Some((Ok(Bytes::from(text)), self))
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Ended, or the client went away with a chunk not taken.
        self.taken();
    }
}

/// What one batch read found.
struct Batch {
    text: String,
    events: u64,
    position: u64,
}

fn sse_event(out: &mut String, seq: u64, line: &str) {
    // The `cat` line is one line of JSON (no raw newline in it), so one `data:` field holds it.
    out.push_str("id: ");
    out.push_str(&seq.to_string());
    out.push_str("\ndata: ");
    out.push_str(line);
    out.push_str("\n\n");
}

/// Reads the matching events in `(position, head]`, at most a batch.
fn read_batch(
    store: &dyn eventfile::EventStore,
    query: &Query,
    position: u64,
    head: u64,
    ndjson: bool,
) -> eventfile::Result<Batch> {
    let mut text = String::new();
    let mut position = position;
    // Retention may have removed what the feed has not reached: say so, go on after it.
    let start = store.log_start()?;
    if position + 1 < start {
        let (first, last) = (position + 1, start - 1);
        if ndjson {
            text.push_str(&format!(
                "{{\"gap\":{{\"first\":{first},\"last\":{last}}}}}\n"
            ));
        } else {
            // With the id of its last seq: a client reconnecting after it names that in
            // `Last-Event-ID`, and is not told of the same gap again.
            text.push_str(&format!(
                "event: gap\nid: {last}\ndata: {{\"first\":{first},\"last\":{last}}}\n\n"
            ));
        }
        position = last;
    }
    if position >= head {
        return Ok(Batch {
            text,
            events: 0,
            position,
        });
    }
    let q = query
        .clone()
        .from_seq(position + 1)
        .to_seq(head)
        .limit(BATCH);
    let mut n = 0;
    let mut last = position;
    let mut full = false;
    for e in store.query(&q)? {
        let e = e?;
        if ndjson {
            text.push_str(&e.to_json());
            text.push('\n');
        } else {
            sse_event(&mut text, e.seq, &e.to_json());
        }
        last = e.seq;
        n += 1;
        if text.len() >= BATCH_BYTES {
            full = true;
            break;
        }
    }
    // A short batch read everything up to `head`; a full one only up to its last event.
    let position = if n < BATCH && !full { head } else { last };
    Ok(Batch {
        text,
        events: n as u64,
        position,
    })
}

/// The next chunk of a feed: a batch of events, a heartbeat, or the end.
async fn next_chunk(mut f: Feed) -> Option<(io::Result<Bytes>, Feed)> {
    f.taken();
    if f.ended {
        return None;
    }
    loop {
        if *f.stop.borrow() {
            return None;
        }
        let head = *f.head.borrow_and_update();
        if head > f.position {
            let (query, position, ndjson) = (f.query.clone(), f.position, f.ndjson);
            let r = f
                .state
                .call_untimed(move |s| read_batch(s, &query, position, head, ndjson))
                .await;
            match r {
                Ok(b) => {
                    f.position = b.position;
                    if !b.text.is_empty() {
                        f.state
                            .metrics
                            .feed_events
                            .fetch_add(b.events, Ordering::Relaxed);
                        return f.chunk(b.text);
                    }
                    continue;
                }
                Err(e) => {
                    // Said on the feed, then the feed ends; the client may reconnect.
                    f.ended = true;
                    let text = if f.ndjson {
                        format!("{}\n", e.body())
                    } else {
                        format!("event: error\ndata: {}\n\n", e.body())
                    };
                    return f.chunk(text);
                }
            }
        }
        tokio::select! {
            changed = f.head.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = f.stop.changed() => return None,
            _ = tokio::time::sleep_until(f.last_sent + f.heartbeat) => {
                let text = if f.ndjson {
                    format!("{{\"heartbeat\":{}}}\n", f.position)
                } else {
                    ": heartbeat\n\n".to_owned()
                };
                return f.chunk(text);
            }
        }
    }
}

/// `GET /subscribe?<filters>&from=SEQ`.
pub(crate) async fn subscribe(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p: FilterParams = input::params(query.as_deref())?;
    p.refuse(
        "GET /subscribe",
        &["from-seq", "to-seq", "limit", "backward", "after", "count"],
    )?;
    let q = p.query()?;
    q.validate().map_err(ApiError::from)?;
    let position = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(input::position)
            .ok_or_else(|| {
                ApiError::bad_request("the Last-Event-ID header is not a seq (a whole number)")
            })?,
        None => input::number("from", p.from.as_ref())?.unwrap_or(0),
    };
    let Some(slot) = state.subscriber_slot() else {
        return Err(ApiError::unavailable(format!(
            "the server already serves its maximum of {} live feeds; retry later",
            state.options.max_subscribers
        )));
    };
    let ndjson = wants_ndjson(&headers);
    let feed = Feed {
        head: state.head.subscribe(),
        stop: state.stop.clone(),
        heartbeat: state.options.heartbeat,
        state: state.clone(),
        query: q,
        position,
        ndjson,
        ended: false,
        blocked: false,
        last_sent: tokio::time::Instant::now(),
        _slot: slot,
    };
    // A first chunk right away (the retry hint, or an empty line), so that the client knows the
    // feed is open before any event comes.
    let opening = if ndjson {
        Bytes::new()
    } else {
        Bytes::from_static(b"retry: 1000\n\n")
    };
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, io::Error>(opening)]),
        futures_util::stream::unfold(feed, next_chunk),
    );
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if ndjson {
            "application/x-ndjson"
        } else {
            "text/event-stream"
        }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must not hold the feed back in a buffer.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Query};

    use super::*;

    /// A batch stops gathering at about [`BATCH_BYTES`], not only at [`BATCH`] events, and the
    /// next one goes on from its last event.
    #[test]
    fn a_batch_of_large_events_stops_at_its_bytes() {
        let store = MemoryStore::new();
        let pad = "x".repeat(100 << 10);
        for i in 0..10u64 {
            let e = NewEvent::new("E", serde_json::json!({ "i": i, "pad": pad }));
            store.append("s", ExpectedVersion::Any, vec![e]).unwrap();
        }
        let mut position = 0;
        let mut seen = 0;
        while position < 10 {
            let b = read_batch(&store, &Query::new(), position, 10, true).unwrap();
            assert!(
                b.text.len() < BATCH_BYTES + (110 << 10),
                "{} bytes",
                b.text.len()
            );
            assert!(b.events > 0 && b.events < 10, "{} events", b.events);
            assert_eq!(b.position, position + b.events);
            seen += b.events;
            position = b.position;
        }
        assert_eq!(seen, 10);
    }
}
