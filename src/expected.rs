//! The optimistic-concurrency expectation of an append ([`ExpectedVersion`]), on its own so that
//! the error type can name it without depending on the event model. Its parser (`FromStr`) lives
//! with the event model, beside the other text forms a user gives.

use std::fmt;

/// What the caller expects a stream to hold when it appends: the optimistic-concurrency check.
///
/// A mismatch fails the append with [`crate::Error::WrongExpectedVersion`] and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// No check.
    #[default]
    Any,
    /// The stream must be empty (version 0).
    NoStream,
    /// The stream must hold at least one event.
    StreamExists,
    /// The stream must hold exactly this many events (its current version).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual > 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no-stream"),
            ExpectedVersion::StreamExists => f.write_str("exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}
