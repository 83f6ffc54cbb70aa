//! What a cqrs-es event and snapshot become in eventfile, and back.
//!
//! This module owns the record layout (written down in the README, "What maps to what"):
//!
//! * a [`SerializedEvent`] is an eventfile event of the same type, whose data is the payload
//!   and whose metadata is `{"event_version": …, "metadata": <cqrs-es metadata, verbatim>}`,
//!   plus copies of `correlation_id`, `causation_id` and `actor` when the cqrs-es metadata
//!   holds them as valid strings, so that eventfile indexes and queries them;
//! * a snapshot is an eventfile snapshot at the version of the last event it includes, whose
//!   state is `{"eventfile_cqrs": 1, "current_snapshot": n, "aggregate": <payload>}`.
//!
//! It never talks to a store.

use cqrs_es::persist::{SerializedEvent, SerializedSnapshot};
use eventfile::{INDEXED_META_KEYS, MAX_NAME_BYTES, NewEvent, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::stream_name;

/// The metadata key holding cqrs-es's event version.
pub const EVENT_VERSION_KEY: &str = "event_version";
/// The metadata key holding cqrs-es's metadata, verbatim.
pub const METADATA_KEY: &str = "metadata";
/// The version of the snapshot state's layout, in its `eventfile_cqrs` member.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The eventfile event for a cqrs-es event.
pub fn new_event(event: &SerializedEvent) -> NewEvent {
    let mut meta = Map::new();
    meta.insert(
        EVENT_VERSION_KEY.to_owned(),
        Value::String(event.event_version.clone()),
    );
    meta.insert(METADATA_KEY.to_owned(), event.metadata.clone());
    // The indexed keys are copies, for eventfile's queries; the verbatim object is the truth.
    for key in INDEXED_META_KEYS {
        if let Some(Value::String(s)) = event.metadata.get(key)
            && indexable(s)
        {
            meta.insert(key.to_owned(), Value::String(s.clone()));
        }
    }
    NewEvent::new(event.event_type.clone(), event.payload.clone()).with_meta(meta)
}

/// Whether eventfile accepts `s` as the value of an indexed metadata key.
fn indexable(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES && !s.chars().any(char::is_control)
}

/// The cqrs-es event for an eventfile event of a stream of `aggregate_type`.
pub fn serialized_event(
    aggregate_type: &str,
    event: RecordedEvent,
) -> Result<SerializedEvent, Error> {
    let foreign = |reason: String| Error::ForeignEvent {
        stream: event.stream.clone(),
        version: event.version,
        reason,
    };
    let aggregate_id = stream_name::aggregate_id(aggregate_type, &event.stream)?.to_owned();
    let event_version = match event.meta.get(EVENT_VERSION_KEY) {
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(foreign(format!(
                "`{EVENT_VERSION_KEY}` is {other}, not a string"
            )));
        }
        None => {
            return Err(foreign(format!(
                "its metadata has no `{EVENT_VERSION_KEY}`"
            )));
        }
    };
    let metadata = event
        .meta
        .get(METADATA_KEY)
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let payload: Value = serde_json::from_str(event.data.get())
        .map_err(|e| foreign(format!("its data does not read as JSON: {e}")))?;
    let sequence = usize::try_from(event.version)
        .map_err(|_| foreign("its version does not fit this machine's usize".to_owned()))?;
    Ok(SerializedEvent {
        aggregate_id,
        sequence,
        aggregate_type: aggregate_type.to_owned(),
        event_type: event.event_type,
        event_version,
        payload,
        metadata,
    })
}

/// The state of an eventfile snapshot that holds a cqrs-es snapshot.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotState {
    /// The layout's version: [`SNAPSHOT_FORMAT`].
    pub eventfile_cqrs: u32,
    /// cqrs-es's snapshot counter (1 for the first snapshot of an aggregate).
    pub current_snapshot: usize,
    /// The aggregate, as cqrs-es serialised it.
    pub aggregate: Value,
}

/// The cqrs-es snapshot of an eventfile snapshot, or why it is not one.
pub fn serialized_snapshot(
    aggregate_id: &str,
    snapshot: &eventfile::Snapshot,
) -> Result<SerializedSnapshot, String> {
    let state: SnapshotState = snapshot
        .decode()
        .map_err(|e| format!("its state is not an eventfile-cqrs snapshot: {e}"))?;
    if state.eventfile_cqrs != SNAPSHOT_FORMAT {
        return Err(format!(
            "its layout version is {}, and this build reads {SNAPSHOT_FORMAT}",
            state.eventfile_cqrs
        ));
    }
    let current_sequence = usize::try_from(snapshot.version)
        .map_err(|_| "its version does not fit this machine's usize".to_owned())?;
    Ok(SerializedSnapshot {
        aggregate_id: aggregate_id.to_owned(),
        aggregate: state.aggregate,
        current_sequence,
        current_snapshot: state.current_snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(metadata: Value) -> SerializedEvent {
        SerializedEvent::new(
            "7".into(),
            1,
            "Account".into(),
            "Opened".into(),
            "1.0".into(),
            json!({"Opened": {"id": "7"}}),
            metadata,
        )
    }

    #[test]
    fn an_event_keeps_type_version_payload_and_metadata() {
        let meta = json!({"user": "ann", "correlation_id": "c-1", "actor": ""});
        let e = new_event(&event(meta.clone()));
        assert_eq!(e.event_type(), "Opened");
        assert_eq!(e.data_json(), r#"{"Opened":{"id":"7"}}"#);
        assert_eq!(e.meta()["event_version"], "1.0");
        assert_eq!(e.meta()["metadata"], meta);
        // A valid indexed key is copied for eventfile's index; an empty one is not.
        assert_eq!(e.meta()["correlation_id"], "c-1");
        assert!(!e.meta().contains_key("actor"));
    }

    #[test]
    fn metadata_that_is_not_an_object_is_kept_as_it_is() {
        let e = new_event(&event(Value::Null));
        assert_eq!(e.meta()["metadata"], Value::Null);
    }
}
