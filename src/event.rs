//! The event model: what a caller appends ([`NewEvent`]), what the store gives back
//! ([`RecordedEvent`]), and the optimistic-concurrency expectation ([`ExpectedVersion`]).
//!
//! Validation of names, types, tags and ids lives here too, so that every rule an input must
//! follow is in one place and is checked before anything is written.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
pub use crate::expected::ExpectedVersion;
use crate::time::{Micros, format_rfc3339};

pub(crate) mod json_text;

/// Longest stream name, event type or event id, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

impl std::str::FromStr for ExpectedVersion {
    type Err = Error;

    /// Parses `any`, `no-stream`, `exists` or a version number.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no-stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::StreamExists),
            n => n.parse().map(ExpectedVersion::Exact).map_err(|_| {
                Error::invalid(
                    "expected version",
                    format!("`{s}` is not any, no-stream, exists or a version number"),
                )
            }),
        }
    }
}

/// A Rust type that names its own event type, for [`NewEvent::typed`].
///
/// ```
/// use eventfile::EventType;
/// #[derive(serde::Serialize)]
/// struct OrderPlaced { order: u64 }
/// impl EventType for OrderPlaced {
///     fn event_type(&self) -> &str { "OrderPlaced" }
/// }
/// ```
pub trait EventType: Serialize {
    /// The event type recorded with this value (may depend on an enum's variant).
    fn event_type(&self) -> &str;
}

/// An event to append.
#[derive(Debug, Clone)]
#[must_use]
pub struct NewEvent {
    pub(crate) event_type: String,
    pub(crate) data: Box<RawValue>,
    pub(crate) id: Option<String>,
    pub(crate) meta: Map<String, Value>,
    pub(crate) tags: Vec<String>,
    /// Data built in code that nests deeper than a parser reads back: refused by the append
    /// (a constructor that cannot fail records it here).
    pub(crate) too_deep: bool,
}

impl NewEvent {
    /// An event of `event_type` carrying `data`.
    ///
    /// ```
    /// let e = eventfile::NewEvent::new("OrderPlaced", serde_json::json!({"order": 42}));
    /// assert_eq!(e.event_type(), "OrderPlaced");
    /// ```
    ///
    /// Data nested deeper than 127 arrays and objects, which serde_json could not read back,
    /// is refused by the append ([`Error::InvalidInput`]).
    pub fn new(event_type: impl Into<String>, data: Value) -> NewEvent {
        let data = serde_json::value::to_raw_value(&data)
            .expect("serialising a serde_json::Value cannot fail");
        let too_deep = json_text::nests_too_deep(data.get());
        NewEvent {
            too_deep,
            ..NewEvent::from_raw(event_type, data)
        }
    }

    /// An event whose data is any serialisable value. The data is what serde_json writes for
    /// it: numbers as the Rust value holds them, a [`RawValue`] inside it as given (on one
    /// line: whitespace outside its strings is removed).
    pub fn serialize<T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        data: &T,
    ) -> Result<NewEvent> {
        let data = json_text::one_line_raw(serde_json::value::to_raw_value(data)?)?;
        if json_text::nests_too_deep(data.get()) {
            return Err(json_text::too_deep("event data"));
        }
        Ok(NewEvent::from_raw(event_type, data))
    }

    /// An event whose type comes from the value itself (see [`EventType`]).
    pub fn typed<T: EventType>(data: &T) -> Result<NewEvent> {
        NewEvent::serialize(data.event_type().to_owned(), data)
    }

    /// An event whose data is JSON text the caller already has, stored exactly as given: every
    /// number keeps its digits (`18446744073709551616`, `1.5e-400` and `1E+2` stay as written)
    /// and every string its bytes. Only whitespace outside strings is removed, since a record is
    /// one line.
    ///
    /// Malformed text is an [`Error::Json`]. Text that serde_json could not decode again is an
    /// [`Error::InvalidInput`]: arrays and objects nested deeper than 127 levels, or a string
    /// with half of a surrogate pair (`"\ud800"`).
    ///
    /// ```
    /// let e = eventfile::NewEvent::from_json_str("Paid", "{ \"amount\": 100000000000000000001 }")?;
    /// assert_eq!(e.data_json(), r#"{"amount":100000000000000000001}"#);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn from_json_str(event_type: impl Into<String>, json: &str) -> Result<NewEvent> {
        Ok(NewEvent::from_raw(
            event_type,
            json_text::one_line("event data", json)?,
        ))
    }

    fn from_raw(event_type: impl Into<String>, data: Box<RawValue>) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            data,
            id: None,
            meta: Map::new(),
            tags: Vec::new(),
            too_deep: false,
        }
    }

    /// Sets the event id (default: a fresh UUIDv7). Any text of 1 to 256 bytes without control
    /// characters is accepted; UUIDs are conventional.
    pub fn with_id(mut self, id: impl Into<String>) -> NewEvent {
        self.id = Some(id.into());
        self
    }

    /// Replaces the metadata object (default: empty).
    pub fn with_meta(mut self, meta: Map<String, Value>) -> NewEvent {
        self.meta = meta;
        self
    }

    /// Replaces the metadata object with one given as JSON text (default: empty).
    ///
    /// Metadata is read back as [`serde_json::Value`], so a number in it is accepted only if it
    /// reads back as the same number: an integer that fits `i64` or `u64`, or a fraction or
    /// exponent whose `f64` is the same decimal value (`0.1`, `1.0`, `1e2`, `-0.5`). Anything
    /// else (`100000000000000000001`, `1e400`, `1.5e-400`,
    /// `0.1000000000000000055511151231257827`) is refused with an [`Error::InvalidInput`] naming
    /// where it is, rather than stored changed: store such a number as a string, or in the
    /// event data, which keeps numbers as given. An accepted number's value is kept; its
    /// spelling may not be (`1e2` reads back as `100.0`). Text that is not a JSON object is an
    /// [`Error::InvalidInput`], malformed text an [`Error::Json`].
    ///
    /// ```
    /// use eventfile::NewEvent;
    /// let e = NewEvent::new("Paid", serde_json::json!({})).with_meta_json(r#"{"rate":0.1}"#)?;
    /// let refused = NewEvent::new("Paid", serde_json::json!({}))
    ///     .with_meta_json(r#"{"total":100000000000000000001}"#);
    /// assert!(refused.unwrap_err().to_string().contains("`total`"));
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn with_meta_json(mut self, json: &str) -> Result<NewEvent> {
        self.meta = metadata_from_json(json)?;
        Ok(self)
    }

    /// Sets one metadata key, e.g. `correlation_id`, `causation_id` or `actor`.
    pub fn with_meta_entry(mut self, key: impl Into<String>, value: impl Into<Value>) -> NewEvent {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Adds a `key=value` tag (default: no tags).
    pub fn with_tag(mut self, tag: impl Into<String>) -> NewEvent {
        self.tags.push(tag.into());
        self
    }

    /// The event type.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The payload as JSON text.
    pub fn data_json(&self) -> &str {
        self.data.get()
    }

    /// The caller-supplied id, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The payload, verbatim.
    pub fn data(&self) -> &RawValue {
        &self.data
    }

    /// The metadata.
    pub fn meta(&self) -> &Map<String, Value> {
        &self.meta
    }

    /// The tags, in the order given.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// An event as stored: the appended event plus the position and time the store gave it.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Global sequence number: gapless across the store, first event is 1.
    pub seq: u64,
    /// The event id.
    pub id: String,
    /// The stream the event belongs to.
    pub stream: String,
    /// Position within the stream: first event is 1.
    pub version: u64,
    /// The event type.
    pub event_type: String,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub time: Micros,
    /// The payload, verbatim JSON text: exactly what was appended (for text given to
    /// [`NewEvent::from_json_str`], minus whitespace outside strings).
    pub data: Box<RawValue>,
    /// Metadata.
    pub meta: Map<String, Value>,
    /// `key=value` tags.
    pub tags: Vec<String>,
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && self.id == other.id
            && self.stream == other.stream
            && self.version == other.version
            && self.event_type == other.event_type
            && self.time == other.time
            && self.data.get() == other.data.get()
            && self.meta == other.meta
            && self.tags == other.tags
    }
}

impl RecordedEvent {
    /// Decodes the payload into any deserialisable type.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = eventfile::Store::open(dir.path()).unwrap();
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct ItemAdded { sku: String, qty: u32 }
    /// let added = ItemAdded { sku: "A-1".into(), qty: 2 };
    /// store.append("order-1", eventfile::ExpectedVersion::Any,
    ///     [eventfile::NewEvent::serialize("ItemAdded", &added).unwrap()]).unwrap();
    /// let event = store.read_stream("order-1", eventfile::Read::forward()).unwrap()
    ///     .next().unwrap().unwrap();
    /// assert_eq!(event.decode::<ItemAdded>().unwrap(), added);
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_str(self.data.get())?)
    }

    /// The payload as a [`serde_json::Value`]: lossy. A number is read as an `i64`, `u64` or
    /// the nearest `f64` (`100000000000000000001` becomes `1e20`, `1.5e-400` becomes `0.0`),
    /// and data that does not fit a `Value` at all (a number beyond `f64`'s range, such as
    /// `1e400`) gives `Value::Null`. [`RecordedEvent::data`] is the exact text;
    /// [`RecordedEvent::decode`] reports what it cannot decode.
    pub fn data_value(&self) -> Value {
        serde_json::from_str(self.data.get()).unwrap_or(Value::Null)
    }

    /// The commit time as RFC 3339 text (`2026-11-22T21:31:12.123456Z`).
    pub fn time_rfc3339(&self) -> String {
        format_rfc3339(self.time)
    }

    /// The event as one JSON object with the members `seq`, `id`, `stream`, `version`, `type`,
    /// `time` (RFC 3339), `data`, `meta`, `tags`: the CLI's output format.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            seq: u64,
            id: &'a str,
            stream: &'a str,
            version: u64,
            #[serde(rename = "type")]
            event_type: &'a str,
            time: String,
            data: &'a RawValue,
            meta: &'a Map<String, Value>,
            tags: &'a [String],
        }
        serde_json::to_string(&Out {
            seq: self.seq,
            id: &self.id,
            stream: &self.stream,
            version: self.version,
            event_type: &self.event_type,
            time: self.time_rfc3339(),
            data: &self.data,
            meta: &self.meta,
            tags: &self.tags,
        })
        .expect("serialising strings and JSON values cannot fail")
    }

    /// Parses one line of [`RecordedEvent::to_json`] back (the format of `eventfile cat` and
    /// `export`, which `import` reads): every member present, none unknown, the data kept as
    /// an append keeps it. Anything else is [`Error::InvalidInput`] saying what was wrong.
    ///
    /// ```
    /// use eventfile::RecordedEvent;
    /// let line = r#"{"seq":1,"id":"0190a0b0-0000-7000-8000-000000000001","stream":"order-1","version":1,"type":"Placed","time":"2026-11-30T10:00:00.000001Z","data":{"n":1.50},"meta":{},"tags":["a=b"]}"#;
    /// let e = RecordedEvent::from_json(line)?;
    /// assert_eq!((e.seq, e.data.get()), (1, r#"{"n":1.50}"#));
    /// assert_eq!(e.to_json(), line);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn from_json(line: &str) -> Result<RecordedEvent> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            seq: u64,
            id: String,
            stream: String,
            version: u64,
            #[serde(rename = "type")]
            event_type: String,
            time: String,
            data: Box<RawValue>,
            meta: Box<RawValue>,
            tags: Vec<String>,
        }
        let bad = |why: String| Error::invalid("event line", why);
        let e: In = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let time = crate::time::parse_rfc3339(&e.time)
            .ok_or_else(|| bad(format!("`{}` is not an RFC 3339 time", e.time)))?;
        let data = NewEvent::from_json_str(e.event_type.clone(), e.data.get())?.data;
        Ok(RecordedEvent {
            seq: e.seq,
            id: e.id,
            stream: e.stream,
            version: e.version,
            event_type: e.event_type,
            time,
            data,
            // As an append takes metadata: a number it cannot hold exactly is refused.
            meta: metadata_from_json(e.meta.get())?,
            tags: e.tags,
        })
    }
}

/// The outcome of a successful append to one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendResult {
    /// The stream's version after the append (the version of its last new event).
    pub version: u64,
    /// Seq of the first event written.
    pub first_seq: u64,
    /// Seq of the last event written.
    pub last_seq: u64,
    /// True when nothing was written because the append was a retry of one already in the log
    /// (same event ids, or same idempotency key): the values are those of the original append.
    pub replayed: bool,
}

/// One stream's part of a multi-stream append ([`crate::Store::append_multi`]).
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream.
    pub stream: String,
    /// The expectation checked for this stream.
    pub expected: ExpectedVersion,
    /// The events to append to it, in order.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// Builds one stream's part of a multi-stream append.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> StreamAppend {
        StreamAppend {
            stream: stream.into(),
            expected,
            events: events.into_iter().collect(),
        }
    }
}

/// The outcome of a successful multi-stream append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiAppendResult {
    /// Per stream, in the order given: its new version and the seq range of its events.
    pub streams: Vec<(String, AppendResult)>,
    /// Seq of the first event of the whole batch.
    pub first_seq: u64,
    /// Seq of the last event of the whole batch.
    pub last_seq: u64,
    /// True when nothing was written because the append was a retry (see
    /// [`AppendResult::replayed`]).
    pub replayed: bool,
}

fn check_text(what: &'static str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            what,
            format!(
                "is {} bytes long, over the limit of {MAX_NAME_BYTES}",
                s.len()
            ),
        ));
    }
    // A control character (Unicode's Cc: U+0000-U+001F, U+007F-U+009F) is one of these bytes
    // or starts with 0xC2 (U+0080-U+009F): a byte scan clears nearly every name, and decoding
    // each name's characters was 5% of a bulk load's CPU.
    if !any_byte_below_or(s.as_bytes(), 0x20, 0x7f, 0xc2) {
        return Ok(());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            what,
            format!("`{}` holds the control character {:?}", s.escape_debug(), c),
        ));
    }
    Ok(())
}

/// Parses metadata given as JSON text, as [`NewEvent::with_meta_json`] does: a JSON object
/// whose every number reads back as the same number, or a typed error saying what is wrong
/// (a tool can check a user's metadata this way before it touches a store).
pub fn metadata_from_json(json: &str) -> Result<Map<String, Value>> {
    let raw: &RawValue = serde_json::from_str(json)?;
    let kind = match raw.get().as_bytes().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        _ => Some("a number"),
    };
    if let Some(kind) = kind {
        return Err(Error::invalid(
            "metadata",
            format!("must be a JSON object, not {kind}"),
        ));
    }
    json_text::check_numbers(raw.get())?;
    Ok(serde_json::from_str(raw.get())?)
}

/// Streams whose names start with this are the store's own (e.g. `$lifecycle`): they can be
/// read but not appended to.
pub(crate) const SYSTEM_PREFIX: char = '$';

/// Checks a stream name: 1 to 256 bytes of UTF-8, no control characters.
pub fn validate_stream(stream: &str) -> Result<()> {
    check_text("stream name", stream)
}

/// Checks a stream name a caller writes to: a valid name not reserved by the store.
pub fn validate_writable_stream(stream: &str) -> Result<()> {
    validate_stream(stream)?;
    if stream.starts_with(SYSTEM_PREFIX) {
        return Err(Error::invalid(
            "stream name",
            format!("`{stream}`: names starting with `{SYSTEM_PREFIX}` are reserved for the store"),
        ));
    }
    Ok(())
}

/// Checks an idempotency key: 1 to 256 bytes of UTF-8, no control characters.
pub fn validate_key(key: &str) -> Result<()> {
    check_text("idempotency key", key)
}

/// Checks an event type: 1 to 256 bytes of UTF-8, no control characters.
pub fn validate_event_type(event_type: &str) -> Result<()> {
    check_text("event type", event_type)
}

/// Checks an event id: 1 to 256 bytes of UTF-8, no control characters. UUIDs are conventional
/// but not required.
pub fn validate_id(id: &str) -> Result<()> {
    check_text("event id", id)
}

/// Checks a tag: `key=value` with a non-empty key, 1 to 256 bytes, no control characters.
pub fn validate_tag(tag: &str) -> Result<()> {
    check_text("tag", tag)?;
    match tag.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(()),
        _ => Err(Error::invalid(
            "tag",
            format!("`{tag}` is not of the form key=value"),
        )),
    }
}

/// Checks JSON text and puts it on one line without changing any value: the form in which
/// eventfile stores a caller's text. Whitespace outside strings is removed; every other byte,
/// every digit of every number included, is kept. It refuses what [`NewEvent::from_json_str`]
/// refuses.
///
/// Serialising the result writes it as it is, so it is how to save a snapshot state given as
/// text exactly ([`crate::Store::save_snapshot`]).
///
/// ```
/// let state = eventfile::compact_json("{\n  \"total\": 18446744073709551616\n}\n")?;
/// assert_eq!(state.get(), r#"{"total":18446744073709551616}"#);
/// # Ok::<(), eventfile::Error>(())
/// ```
pub fn compact_json(json: &str) -> Result<Box<RawValue>> {
    json_text::one_line("JSON", json)
}

/// The metadata keys the store indexes; their values must be strings of 1 to 256 bytes.
pub const INDEXED_META_KEYS: [&str; 3] = ["correlation_id", "causation_id", "actor"];

/// Checks everything about one event that does not depend on the store.
pub(crate) fn validate_event(event: &NewEvent) -> Result<()> {
    if event.too_deep {
        return Err(json_text::too_deep("event data"));
    }
    validate_event_fields(
        &event.event_type,
        event.id.as_deref(),
        &event.meta,
        &event.tags,
    )
}

/// [`validate_event`] on an event's fields, wherever they are (an import checks
/// [`RecordedEvent`]s without making a `NewEvent` of each).
pub(crate) fn validate_event_fields(
    event_type: &str,
    id: Option<&str>,
    meta: &Map<String, Value>,
    tags: &[String],
) -> Result<()> {
    validate_event_type(event_type)?;
    if let Some(id) = id {
        validate_id(id)?;
    }
    check_reserved_keys(meta)?;
    check_meta_depth(meta)?;
    for (key, value) in INDEXED_META_KEYS.iter().zip(indexed_meta(meta)) {
        match value {
            None => {}
            Some(Value::String(s)) => check_text("metadata", s)?,
            Some(other) => {
                return Err(Error::invalid(
                    "metadata",
                    format!("`{key}` must be a string, not {other}"),
                ));
            }
        }
    }
    tags.iter().try_for_each(|t| validate_tag(t))
}

/// How deep metadata may nest, the metadata object itself counted as 1: a record holds it one
/// level down, and serde_json reads 128 levels at most, so the file store read a record with
/// metadata nested one level deeper back as damaged (an acknowledged event no read returned).
/// One limit for every backend, so that a log moves between them.
pub(crate) const MAX_META_DEPTH: usize = 126;

/// Refuses metadata nested deeper than [`MAX_META_DEPTH`] (walked with a stack: a map built in
/// code may nest deeper than recursion should go).
fn check_meta_depth(meta: &Map<String, Value>) -> Result<()> {
    let nested = |v: &Value| v.is_object() || v.is_array();
    let mut stack: Vec<(&Value, usize)> = meta
        .values()
        .filter(|v| nested(v))
        .map(|v| (v, 2))
        .collect();
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_META_DEPTH {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "arrays and objects nest deeper than {MAX_META_DEPTH} levels (the metadata \
                     object counted); it could not be read back"
                ),
            ));
        }
        match v {
            Value::Object(m) => {
                stack.extend(m.values().filter(|v| nested(v)).map(|v| (v, depth + 1)))
            }
            Value::Array(a) => stack.extend(a.iter().filter(|v| nested(v)).map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// The object key serde_json's `Value` parser takes for its own raw-value marker: metadata
/// holding it at any depth would be written as given but not read back as given (the object
/// read as the text it holds, or refused), so it is refused when appended.
const SERDE_RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

/// Refuses metadata holding [`SERDE_RAW_VALUE_KEY`] as a key anywhere (walked with a stack, not
/// by recursion: a map built in code may nest deeper than any parser allows).
fn check_reserved_keys(meta: &Map<String, Value>) -> Result<()> {
    let mut stack: Vec<&Value> = Vec::new();
    let check = |map: &'_ Map<String, Value>| -> Result<()> {
        if map.contains_key(SERDE_RAW_VALUE_KEY) {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "the key `{SERDE_RAW_VALUE_KEY}` is reserved by the JSON parser, which would \
                     not read it back as written"
                ),
            ));
        }
        Ok(())
    };
    check(meta)?;
    stack.extend(meta.values().filter(|v| v.is_object() || v.is_array()));
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                check(m)?;
                stack.extend(m.values().filter(|v| v.is_object() || v.is_array()));
            }
            Value::Array(a) => stack.extend(a.iter().filter(|v| v.is_object() || v.is_array())),
            _ => {}
        }
    }
    Ok(())
}

/// The values of [`INDEXED_META_KEYS`] in `meta`, in that order. A small map (events seldom
/// carry more than a few entries) is walked once, comparing each key with the three: cheaper
/// than three searches, and a bulk load did six per event (its check and its index terms), 3% of
/// its CPU. A larger map is searched.
fn indexed_meta(meta: &Map<String, Value>) -> [Option<&Value>; 3] {
    if meta.len() > 8 {
        return INDEXED_META_KEYS.map(|k| meta.get(k));
    }
    let mut out = [None; 3];
    for (k, v) in meta {
        if let Some(i) = INDEXED_META_KEYS.iter().position(|x| x == k) {
            out[i] = Some(v);
        }
    }
    out
}

/// What the writer encodes of an event besides its position and id, borrowed.
pub(crate) struct BodyRef<'a> {
    pub event_type: &'a str,
    pub data: &'a RawValue,
    pub meta: &'a Map<String, Value>,
    pub tags: &'a [String],
}

/// An event the writer can encode: an append's [`NewEvent`], or an import's [`RecordedEvent`]
/// (written without being copied into a `NewEvent` first).
pub(crate) trait Body {
    fn body(&self) -> BodyRef<'_>;
}

impl Body for NewEvent {
    fn body(&self) -> BodyRef<'_> {
        BodyRef {
            event_type: &self.event_type,
            data: &self.data,
            meta: &self.meta,
            tags: &self.tags,
        }
    }
}

impl Body for RecordedEvent {
    fn body(&self) -> BodyRef<'_> {
        BodyRef {
            event_type: &self.event_type,
            data: &self.data,
            meta: &self.meta,
            tags: &self.tags,
        }
    }
}

impl<T: Body + ?Sized> Body for &T {
    fn body(&self) -> BodyRef<'_> {
        (**self).body()
    }
}

/// The index terms of an event about to be written, borrowed from it.
pub(crate) fn event_terms<'a>(
    stream: &'a str,
    id: &'a str,
    e: &BodyRef<'a>,
    key: Option<&'a str>,
) -> crate::index::TermsRef<'a> {
    let [correlation, causation, actor] = indexed_meta(e.meta).map(|v| v.and_then(Value::as_str));
    crate::index::TermsRef {
        stream,
        event_type: e.event_type,
        id,
        tags: e.tags,
        correlation,
        causation,
        actor,
        key,
    }
}

/// Whether a byte of `bytes` is below `below` (at most 0x80), or is `a` or `b`: eight bytes at
/// a time (names and ids are short, and a byte loop over them was 4% of a bulk load).
pub(crate) fn any_byte_below_or(bytes: &[u8], below: u8, a: u8, b: u8) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    debug_assert!(below <= 0x80);
    // A byte of `x` is zero: exact for the word as a whole (the borrow only runs past a byte
    // that is already zero).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let low = w.wrapping_sub(ONES * u64::from(below)) & !w & HIGH;
        if low | zero(w ^ (ONES * u64::from(a))) | zero(w ^ (ONES * u64::from(b))) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < below || c == a || c == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_scan_refuses_exactly_the_control_characters() {
        for c in (0..0x3000u32)
            .chain(0x10_fff0..0x11_0000)
            .filter_map(char::from_u32)
        {
            let name = format!("a{c}b");
            assert_eq!(check_text("tag", &name).is_err(), c.is_control(), "{c:?}");
        }
        assert!(check_text("stream", "order-\u{c2a0}\u{a0}é").is_ok());
    }

    #[test]
    fn indexed_metadata_is_found_in_small_and_large_maps() {
        for extra in [0usize, 2, 20] {
            let mut meta = Map::new();
            for i in 0..extra {
                meta.insert(format!("k{i}"), Value::from(i));
            }
            meta.insert("actor".into(), Value::from("ann"));
            meta.insert("correlation_id".into(), Value::from("c-1"));
            meta.insert("actors".into(), Value::from("not this"));
            let [c, k, a] = indexed_meta(&meta);
            assert_eq!(
                (c, k, a),
                (Some(&Value::from("c-1")), None, Some(&Value::from("ann")))
            );
            meta.insert("causation_id".into(), Value::from(7));
            assert!(validate_event_fields("T", None, &meta, &[]).is_err());
        }
    }

    #[test]
    fn expected_version_rules() {
        use ExpectedVersion::*;
        assert!(Any.matches(0) && Any.matches(7));
        assert!(NoStream.matches(0) && !NoStream.matches(1));
        assert!(!StreamExists.matches(0) && StreamExists.matches(1));
        assert!(Exact(3).matches(3) && !Exact(3).matches(2));
        for e in [Any, NoStream, StreamExists, Exact(12)] {
            assert_eq!(e.to_string().parse::<ExpectedVersion>().unwrap(), e);
        }
        assert!("-1".parse::<ExpectedVersion>().is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_stream("order-42").is_ok());
        assert!(validate_stream("").is_err());
        assert!(validate_stream("a\nb").is_err());
        assert!(validate_stream(&"x".repeat(257)).is_err());
        assert!(validate_stream(&"x".repeat(256)).is_ok());
        assert!(validate_tag("k=v").is_ok());
        assert!(validate_tag("k=").is_ok());
        assert!(validate_tag("=v").is_err());
        assert!(validate_tag("kv").is_err());
    }
}
