//! `POST /streams/{stream}` and `POST /append`: the append bodies, turned into one
//! [`eventfile::AppendRequest`] each, and their results.
//!
//! This module owns the JSON shape of an append and of its answer. Every member is checked by
//! serde (unknown ones refused) and every value by the library, on the append itself: nothing
//! here decides whether a name, tag, id or metadata number is acceptable.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use eventfile::{
    AppendCondition, AppendRequest, ExpectedVersion, MultiAppendResult, NewEvent, QueryItem,
    StreamAppend,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ApiError, ApiResult};
use crate::input;
use crate::queue;
use crate::state::Shared;

/// One event of an append body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(rename = "type")]
    event_type: String,
    /// Default `{}` when absent; `null` is data like any other.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    meta: Option<Box<RawValue>>,
    #[serde(default)]
    tags: Vec<String>,
}

/// An optional member that, when present, must be a value of its type: `null` is not taken as
/// "absent" (serde's reading of an `Option`), which stored `"data": null` as `{}` and turned
/// `"expect": null` into no check at all.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `"any"`, `"no-stream"`, `"exists"` or a version number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expect {
    Version(u64),
    Word(String),
}

impl Expect {
    fn parse(e: Option<Expect>) -> ApiResult<ExpectedVersion> {
        match e {
            None => Ok(ExpectedVersion::Any),
            Some(Expect::Version(n)) => Ok(ExpectedVersion::Exact(n)),
            // A version is a JSON number: `"7"` is a string, refused like any other word.
            Some(Expect::Word(w)) => match w.parse() {
                Ok(ExpectedVersion::Exact(_)) | Err(_) => Err(ApiError::bad_request(format!(
                    "invalid JSON body: `expect` is `{w:?}`, not \"any\", \"no-stream\", \
                     \"exists\" or a version number"
                ))),
                Ok(e) => Ok(e),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionBody {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    after: u64,
}

/// `POST /streams/{stream}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamBody {
    events: Vec<EventBody>,
    #[serde(default, deserialize_with = "present")]
    expect: Option<Expect>,
    #[serde(default, deserialize_with = "present")]
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    condition: Option<ConditionBody>,
}

/// One stream's part of `POST /append`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartBody {
    stream: String,
    events: Vec<EventBody>,
    #[serde(default, deserialize_with = "present")]
    expect: Option<Expect>,
}

/// `POST /append` in its object form (with a key or a condition).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiBody {
    streams: Vec<PartBody>,
    #[serde(default, deserialize_with = "present")]
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    condition: Option<ConditionBody>,
}

fn events(list: Vec<EventBody>) -> ApiResult<Vec<NewEvent>> {
    if list.is_empty() {
        return Err(ApiError::bad_request(
            "invalid JSON body: `events` is empty; an append needs at least one event",
        ));
    }
    list.into_iter()
        .map(|e| {
            let data = e.data.as_deref().map_or("{}", RawValue::get);
            let mut event = NewEvent::from_json_str(e.event_type, data)?;
            if let Some(id) = e.id {
                event = event.with_id(id);
            }
            if let Some(meta) = e.meta {
                event = event.with_meta_json(meta.get())?;
            }
            for tag in e.tags {
                event = event.with_tag(tag);
            }
            Ok(event)
        })
        .collect()
}

fn finish(
    mut request: AppendRequest,
    key: Option<String>,
    condition: Option<ConditionBody>,
) -> AppendRequest {
    if let Some(k) = key {
        request = request.key(k);
    }
    if let Some(c) = condition {
        request = request
            .condition(AppendCondition::items([QueryItem::new(c.types, c.tags)]).after(c.after));
    }
    request
}

/// One stream's result.
#[derive(Serialize)]
struct StreamResult {
    stream: String,
    version: u64,
    first_seq: u64,
    last_seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

#[derive(Serialize)]
struct MultiResult {
    streams: Vec<StreamResult>,
    first_seq: u64,
    last_seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

fn stream_results(r: &MultiAppendResult) -> Vec<StreamResult> {
    r.streams
        .iter()
        .map(|(stream, a)| StreamResult {
            stream: stream.clone(),
            version: a.version,
            first_seq: a.first_seq,
            last_seq: a.last_seq,
            replayed: false,
        })
        .collect()
}

/// Runs an append through the append queue (`queue.rs`), within the request timeout. An
/// append whose client hung up, or that outlived the timeout, still completes and is counted
/// as what it was.
async fn run(
    state: &Shared,
    request: AppendRequest,
    body_bytes: usize,
    held: input::Held,
) -> ApiResult<MultiAppendResult> {
    let outcome = queue::submit(state, request, body_bytes, held);
    let timeout = state.options.request_timeout;
    match tokio::time::timeout(timeout, outcome).await {
        Ok(Ok(r)) => r.map_err(ApiError::from),
        Ok(Err(_)) => Err(ApiError::internal()),
        Err(_) => Err(ApiError::timed_out(timeout)),
    }
}

pub(crate) async fn append_stream(
    State(state): State<Shared>,
    input::PathText(stream): input::PathText,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let (bytes, held) = input::read_body(
        &headers,
        body,
        state.options.body_limit,
        state.options.request_timeout,
        &state.pending,
    )
    .await?;
    let b: StreamBody = input::json(&bytes)?;
    let request = AppendRequest::new(stream.clone(), Expect::parse(b.expect)?, events(b.events)?);
    let request = finish(request, b.key, b.condition);
    let r = run(&state, request, bytes.len(), held).await?;
    let mut one = stream_results(&r)
        .into_iter()
        .next()
        .unwrap_or(StreamResult {
            stream,
            version: 0,
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            replayed: false,
        });
    one.replayed = r.replayed;
    Ok(Json(serde_json::to_value(one).expect("serialisable")))
}

pub(crate) async fn append_multi(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let (bytes, held) = input::read_body(
        &headers,
        body,
        state.options.body_limit,
        state.options.request_timeout,
        &state.pending,
    )
    .await?;
    // A list of parts, or an object with the parts, a key and a condition.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let b: MultiBody = if first == Some(&b'[') {
        MultiBody {
            streams: input::json(&bytes)?,
            key: None,
            condition: None,
        }
    } else {
        input::json(&bytes)?
    };
    if b.streams.is_empty() {
        return Err(ApiError::bad_request(
            "invalid JSON body: no streams; an append needs at least one",
        ));
    }
    let parts = b
        .streams
        .into_iter()
        .map(|p| {
            Ok(StreamAppend::new(
                p.stream,
                Expect::parse(p.expect)?,
                events(p.events)?,
            ))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let request = finish(AppendRequest::multi(parts), b.key, b.condition);
    let r = run(&state, request, bytes.len(), held).await?;
    let out = MultiResult {
        streams: stream_results(&r),
        first_seq: r.first_seq,
        last_seq: r.last_seq,
        replayed: r.replayed,
    };
    Ok(Json(serde_json::to_value(out).expect("serialisable")))
}
