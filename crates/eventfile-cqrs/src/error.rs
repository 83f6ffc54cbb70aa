//! The errors of the adapter, and how eventfile's errors become cqrs-es's
//! [`PersistenceError`].
//!
//! This module owns that mapping, in one function ([`persistence_error`]), so that every call of
//! the repository reports a failure the same way. cqrs-es's error has four cases; the typed
//! detail travels as the boxed source, where a caller can downcast it to [`Error`] or to
//! [`eventfile::Error`].

use cqrs_es::persist::PersistenceError;
use eventfile::ErrorKind;

use crate::stream_name::NameError;

/// What the adapter refuses or finds wrong, beyond eventfile's own errors. It reaches the
/// caller inside a [`PersistenceError`] (`UnknownError`, or `DeserializationError` for what
/// was read back), from which it can be downcast.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An aggregate type or id that cannot be named as a stream.
    #[error(transparent)]
    Name(#[from] NameError),

    /// The events of one `persist` call are not one aggregate's consecutive sequence numbers
    /// starting above 0; nothing was written.
    #[error(
        "events to persist must be one aggregate's consecutive sequence numbers from 1 up: {reason}"
    )]
    BadBatch {
        /// What was wrong.
        reason: String,
    },

    /// An event read back is not one this adapter wrote: its metadata lacks `event_version`, or
    /// its payload is not JSON a `serde_json::Value` holds.
    #[error("event {version} of stream `{stream}` cannot be read as a cqrs-es event: {reason}")]
    ForeignEvent {
        /// The stream.
        stream: String,
        /// The event's version in it.
        version: u64,
        /// What was missing or wrong.
        reason: String,
    },

    /// A read of one aggregate's events did not return consecutive versions from the one asked
    /// for (the stream was truncated or deleted below them): the aggregate cannot be rebuilt
    /// from them, and is not rebuilt wrongly.
    #[error(
        "stream `{stream}`: expected version {expected}, found {found}; events before it were deleted or truncated"
    )]
    MissingEvents {
        /// The stream.
        stream: String,
        /// The version that should have come next.
        expected: u64,
        /// The version that came (0: none, the stream ended).
        found: u64,
    },

    /// cqrs-es asked for a snapshot update that this adapter cannot place at a version.
    #[error("snapshot of `{stream}` not saved: {reason}")]
    Snapshot {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },

    /// The events were committed, but the snapshot that cqrs-es asked an aggregate store to
    /// save with them was not: the store failed in between (see the README on atomicity). The
    /// events are durable; the snapshot stays at its previous version. (A snapshot store logs
    /// the failure and reports the commit: its snapshots are a cache.)
    #[error(
        "events of stream `{stream}` committed up to version {version}, but the snapshot after them was not saved: {source}"
    )]
    SnapshotAfterCommit {
        /// The stream.
        stream: String,
        /// Its version after the committed events.
        version: u64,
        /// The store's error.
        #[source]
        source: eventfile::Error,
    },
}

/// cqrs-es's error for an eventfile error: a version conflict is the optimistic lock; an
/// unreachable, locked, poisoned or aborted store a connection error; bytes that do not decode
/// a deserialisation error; anything else unknown. The eventfile error is the source in each.
pub fn persistence_error(e: eventfile::Error) -> PersistenceError {
    if e.is_conflict() {
        return PersistenceError::OptimisticLockError;
    }
    match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Io => PersistenceError::ConnectionError(Box::new(e)),
        ErrorKind::Corrupt => PersistenceError::DeserializationError(Box::new(e)),
        _ => PersistenceError::UnknownError(Box::new(e)),
    }
}

impl From<Error> for PersistenceError {
    fn from(e: Error) -> PersistenceError {
        match e {
            Error::ForeignEvent { .. } => PersistenceError::DeserializationError(Box::new(e)),
            _ => PersistenceError::UnknownError(Box::new(e)),
        }
    }
}

impl From<NameError> for PersistenceError {
    fn from(e: NameError) -> PersistenceError {
        Error::Name(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_conflict_is_the_optimistic_lock() {
        let conflict = eventfile::Error::WrongExpectedVersion {
            stream: "Account-1".into(),
            expected: eventfile::ExpectedVersion::Exact(1),
            actual: 2,
        };
        assert!(matches!(
            persistence_error(conflict),
            PersistenceError::OptimisticLockError
        ));
    }

    #[test]
    fn an_unreachable_database_is_a_connection_error_with_its_source() {
        let down = eventfile::Error::Unreachable {
            backend: "postgres",
            reason: "connection refused".into(),
        };
        match persistence_error(down) {
            PersistenceError::ConnectionError(source) => {
                let e = source.downcast_ref::<eventfile::Error>().unwrap();
                assert!(matches!(e, eventfile::Error::Unreachable { .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_name_is_an_unknown_error_carrying_the_typed_detail() {
        let e: PersistenceError = crate::stream_name::stream_name("a-b", "1")
            .unwrap_err()
            .into();
        match e {
            PersistenceError::UnknownError(source) => {
                assert!(matches!(
                    source.downcast_ref::<Error>(),
                    Some(Error::Name(NameError::AggregateType { .. }))
                ));
            }
            other => panic!("{other:?}"),
        }
    }
}
