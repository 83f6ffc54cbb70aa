//! The one error type of the library.
//!
//! Every variant carries what a caller needs to act: the stream and versions of a conflict, the
//! file and byte offset of damage, the limit an input broke. A version conflict is an ordinary,
//! expected outcome of optimistic concurrency: match on [`Error::WrongExpectedVersion`].

use std::io;
use std::path::PathBuf;

use crate::expected::ExpectedVersion;

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in eventfile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream's current version did not match the caller's expectation; nothing was written.
    #[error(
        "wrong expected version for stream `{stream}`: expected {expected}, actual version is {actual}"
    )]
    WrongExpectedVersion {
        /// The stream whose expectation failed.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version at the time of the append (0 for an empty stream).
        actual: u64,
    },

    /// An argument was rejected before anything was written.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument: `stream name`, `event type`, `tag`, `metadata`, ...
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// One event's encoded record is larger than the store's `max_event_bytes`.
    #[error(
        "event of type `{event_type}` encodes to {size} bytes, over the store's limit of {max} bytes"
    )]
    EventTooLarge {
        /// The offending event's type.
        event_type: String,
        /// Its encoded size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },

    /// Another process (or another handle in this one) holds the store open for writing.
    #[error("store at {} is locked by another writer (open it read-only to read concurrently)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The store was opened read-only.
    #[error("store is open read-only: appends are not allowed")]
    ReadOnly,

    /// An earlier write or fsync failed; the handle refuses appends until the store is reopened.
    #[error(
        "store handle is poisoned by an earlier I/O failure ({cause}); reopen the store to recover"
    )]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },

    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `fdatasync`, `open`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Bytes on disk failed validation: a bad CRC, a malformed record, a broken invariant.
    #[error("corrupt store file {} at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first damaged record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },

    /// A file declares a format version this build does not understand.
    #[error("{} has format version {found}; this build of eventfile reads version {supported}", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },

    /// A directory that is not an eventfile store (or whose configuration is missing) was opened.
    #[error("{} is not an eventfile store: {reason}", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// An event id of the append is already in the log, and the append is not a retry of the
    /// batch that wrote it (same ids, same streams, same batch); nothing was written.
    #[error("event id `{id}` is already in the store (seq {seq}, stream `{stream}`)")]
    DuplicateEventId {
        /// The id that is already taken.
        id: String,
        /// Seq of the event that holds it.
        seq: u64,
        /// Stream of the event that holds it.
        stream: String,
    },

    /// The stream was hard-deleted (tombstoned): it can be neither read nor appended to again.
    #[error("stream `{stream}` was deleted permanently (tombstone at version {version})")]
    StreamDeleted {
        /// The stream.
        stream: String,
        /// Its version when it was deleted.
        version: u64,
    },

    /// A read asked for events that retention removed from the log.
    #[error(
        "{what} {requested} was removed by retention; the oldest retained is {first_available}"
    )]
    Expired {
        /// `seq` for global reads, ``stream `name` version`` for stream reads.
        what: String,
        /// The position asked for.
        requested: u64,
        /// The oldest position still in the log.
        first_available: u64,
    },

    /// Retention removed events a subscription had not reached yet: it goes on after them.
    #[error(
        "events {first}..={last} were removed by retention before the subscription reached them; it continues at {}", .last + 1
    )]
    Gap {
        /// The first seq removed unseen.
        first: u64,
        /// The last seq removed unseen.
        last: u64,
    },

    /// An append's condition failed: an event its query matches exists after the condition's
    /// position (DCB); nothing was written. Read again from `seq` and decide anew.
    #[error(
        "append condition failed: event {seq} matches the condition's query (after position {after}); nothing was written"
    )]
    ConditionFailed {
        /// The first matching event's seq.
        seq: u64,
        /// The position the condition named (0: the whole log).
        after: u64,
    },

    /// A retention policy or run was refused; nothing was changed.
    #[error("retention refused: {reason}")]
    RetentionRefused {
        /// Why.
        reason: String,
    },

    /// A call did not run to completion, or its outcome was lost, for a reason outside the
    /// backend: the async facade's blocking task panicked, a runtime shutting down cancelled it
    /// before it started, no runtime was there to run it, or a batched read lost its position.
    /// After a panic an append may or may not have been written: retry it with the same event
    /// ids or idempotency key, and the store returns the first result if it was.
    #[error("{op} did not complete: {reason}")]
    Aborted {
        /// The call (`append_request`, `read_all`, `next_batch`, ...).
        op: &'static str,
        /// What stopped it.
        reason: String,
    },

    /// Event data or metadata could not be converted to or from JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),

    /// A database backend could not be reached or used: the server is down or unreachable,
    /// refused the login, or the connection broke. Nothing was written, or (a connection lost
    /// during a commit) the outcome is unknown: retry with the same event ids or key.
    #[error("{backend} unavailable: {reason}")]
    Unreachable {
        /// `postgres`, `sqlite`, ...
        backend: &'static str,
        /// What failed, as the database client said it (no password).
        reason: String,
    },

    /// A database backend reported an error it should not have: the statement, and the
    /// database's message. Nothing was written.
    #[error("{backend} error: {reason}")]
    Database {
        /// `postgres`, `sqlite`, ...
        backend: &'static str,
        /// The database's message.
        reason: String,
    },

    /// The database holds no eventfile schema it can use: another application's tables, or a
    /// schema version newer than this build knows. Nothing was changed.
    #[error("{backend} database is not usable as an eventfile store: {reason}")]
    ForeignSchema {
        /// `postgres`, `sqlite`, ...
        backend: &'static str,
        /// What was found.
        reason: String,
    },

    /// The operation exists for other backends but not for this one (e.g. `compact` on
    /// PostgreSQL, which keeps no segments). Nothing was changed.
    #[error("{operation} is not supported by the {backend} backend{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Unsupported {
        /// What was asked.
        operation: String,
        /// `file`, `memory`, `postgres`, `sqlite`.
        backend: &'static str,
        /// Why, or what to do instead.
        reason: Option<String>,
    },
}

/// What kind of failure an [`Error`] is: what a caller, or a server mapping errors to
/// statuses, matches on, whatever the backend. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A stream's version did not match the append's expectation.
    Conflict,
    /// An append's condition matched an event after its position.
    ConditionFailed,
    /// An event id is already in the log as part of another append.
    DuplicateId,
    /// The stream was tombstoned.
    StreamDeleted,
    /// An argument or an event was refused before anything was written (also an event over the
    /// size limit, and JSON that does not parse).
    InvalidInput,
    /// The position asked for was removed by retention (or, for a subscription, events it had
    /// not reached yet were).
    Expired,
    /// The handle was opened read-only.
    ReadOnly,
    /// The store cannot be used now: another writer holds it, a failed write poisoned this
    /// handle, or the async facade could not run a call to completion.
    Unavailable,
    /// A policy or maintenance run was refused; nothing changed.
    Refused,
    /// The place named holds no store, or one of a format this version cannot read.
    NotAStore,
    /// Stored bytes failed their checks.
    Corrupt,
    /// The operating system or the backend's connection failed.
    Io,
}

impl Error {
    /// The kind of failure, for matching without caring which backend failed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WrongExpectedVersion { .. } => ErrorKind::Conflict,
            Error::ConditionFailed { .. } => ErrorKind::ConditionFailed,
            Error::DuplicateEventId { .. } => ErrorKind::DuplicateId,
            Error::StreamDeleted { .. } => ErrorKind::StreamDeleted,
            Error::InvalidInput { .. } | Error::EventTooLarge { .. } | Error::Json(_) => {
                ErrorKind::InvalidInput
            }
            Error::Expired { .. } | Error::Gap { .. } => ErrorKind::Expired,
            Error::ReadOnly => ErrorKind::ReadOnly,
            Error::Locked { .. } | Error::Poisoned { .. } | Error::Aborted { .. } => {
                ErrorKind::Unavailable
            }
            Error::RetentionRefused { .. } => ErrorKind::Refused,
            Error::NotAStore { .. } | Error::UnsupportedFormat { .. } => ErrorKind::NotAStore,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { .. } | Error::Database { .. } => ErrorKind::Io,
            Error::Unreachable { .. } => ErrorKind::Unavailable,
            Error::ForeignSchema { .. } => ErrorKind::NotAStore,
            Error::Unsupported { .. } => ErrorKind::Refused,
        }
    }

    /// True for the expected outcomes of optimistic concurrency: a version conflict
    /// ([`Error::WrongExpectedVersion`]) or a failed append condition
    /// ([`Error::ConditionFailed`]). Either way nothing was written: read again, decide anew.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::WrongExpectedVersion { .. } | Error::ConditionFailed { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
