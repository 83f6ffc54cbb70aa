//! The naming of streams: one aggregate instance of cqrs-es is one eventfile stream, named
//! `{aggregate_type}-{aggregate_id}`.
//!
//! This module owns that naming, both ways, and the rules that keep it reversible: the aggregate
//! type holds no `-` (so the first `-` ends it and the id may hold any), and the name as a whole
//! is one eventfile accepts. It never shortens, escapes or otherwise changes a name: what cannot
//! map is refused with a [`NameError`].

use eventfile::MAX_NAME_BYTES;

/// The separator between the aggregate type and the aggregate id in a stream name: eventfile's
/// category convention (`order-42` is stream `42` of category `order`).
pub const SEPARATOR: char = '-';

/// An aggregate type or id that cannot be named as a stream; nothing was read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The aggregate type (`Aggregate::TYPE`) cannot start a stream name.
    #[error("aggregate type `{aggregate_type}` cannot name eventfile streams: {reason}")]
    AggregateType {
        /// The type, escaped for display.
        aggregate_type: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The aggregate id cannot complete a stream name.
    #[error(
        "aggregate id `{aggregate_id}` of type `{aggregate_type}` cannot name an eventfile stream: {reason}"
    )]
    AggregateId {
        /// The aggregate type.
        aggregate_type: String,
        /// The id, escaped for display.
        aggregate_id: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A stream read back does not belong to the aggregate type (it lacks the type's prefix).
    #[error("stream `{stream}` is not a stream of aggregate type `{aggregate_type}`")]
    ForeignStream {
        /// The stream.
        stream: String,
        /// The aggregate type it was read for.
        aggregate_type: String,
    },
}

/// Checks an aggregate type: 1 byte or more, no `-`, no control character, not starting with
/// `$` (eventfile's own streams).
pub fn check_type(aggregate_type: &str) -> Result<(), NameError> {
    let refuse = |reason| {
        Err(NameError::AggregateType {
            aggregate_type: aggregate_type.escape_debug().to_string(),
            reason,
        })
    };
    if aggregate_type.is_empty() {
        return refuse("it is empty");
    }
    if aggregate_type.contains(SEPARATOR) {
        return refuse(
            "it holds `-`, which separates the type from the id (name the type without it, \
             e.g. `BankAccount` rather than `bank-account`)",
        );
    }
    if aggregate_type.starts_with('$') {
        return refuse("names starting with `$` are reserved for the store's own streams");
    }
    if aggregate_type.chars().any(char::is_control) {
        return refuse("it holds a control character");
    }
    if aggregate_type.len() + SEPARATOR.len_utf8() > MAX_NAME_BYTES {
        return refuse("it leaves no room for an id within eventfile's 256-byte stream names");
    }
    Ok(())
}

/// The prefix of every stream of `aggregate_type`: `{aggregate_type}-`.
pub fn type_prefix(aggregate_type: &str) -> Result<String, NameError> {
    check_type(aggregate_type)?;
    Ok(format!("{aggregate_type}{SEPARATOR}"))
}

/// The stream of one aggregate instance: `{aggregate_type}-{aggregate_id}`.
///
/// The id may be anything eventfile accepts in a name: any UTF-8 (a `-` too, as in a UUID, and
/// the empty id) but no control character, and the whole name at most 256 bytes.
pub fn stream_name(aggregate_type: &str, aggregate_id: &str) -> Result<String, NameError> {
    let prefix = type_prefix(aggregate_type)?;
    let refuse = |reason: String| {
        Err(NameError::AggregateId {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.escape_debug().to_string(),
            reason,
        })
    };
    if let Some(c) = aggregate_id.chars().find(|c| c.is_control()) {
        return refuse(format!(
            "it holds the control character {c:?}, which eventfile refuses in stream names"
        ));
    }
    let len = prefix.len() + aggregate_id.len();
    if len > MAX_NAME_BYTES {
        return refuse(format!(
            "the stream name would be {len} bytes, over eventfile's limit of {MAX_NAME_BYTES} \
             (the id may be at most {} bytes for this type)",
            MAX_NAME_BYTES - prefix.len()
        ));
    }
    Ok(prefix + aggregate_id)
}

/// The aggregate id of a stream of `aggregate_type`: the inverse of [`stream_name`].
pub fn aggregate_id<'a>(aggregate_type: &str, stream: &'a str) -> Result<&'a str, NameError> {
    stream
        .strip_prefix(aggregate_type)
        .and_then(|rest| rest.strip_prefix(SEPARATOR))
        .ok_or_else(|| NameError::ForeignStream {
            stream: stream.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in [
            "42",
            "",
            "a-b-c",
            "0190a0b0-0000-7000-8000-000000000001",
            "ü/ 空",
        ] {
            let stream = stream_name("BankAccount", id).unwrap();
            assert_eq!(stream, format!("BankAccount-{id}"));
            assert_eq!(aggregate_id("BankAccount", &stream).unwrap(), id);
            eventfile::validate_writable_stream(&stream).unwrap();
        }
    }

    #[test]
    fn types_that_cannot_name_streams_are_refused() {
        for t in ["", "bank-account", "$system", "a\nb", &"x".repeat(256)] {
            assert!(
                matches!(check_type(t), Err(NameError::AggregateType { .. })),
                "{t:?}"
            );
        }
        check_type(&"x".repeat(255)).unwrap();
    }

    #[test]
    fn ids_that_cannot_name_streams_are_refused_not_mangled() {
        let err = stream_name("Account", "a\u{0}b").unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        let longest = "x".repeat(MAX_NAME_BYTES - "Account-".len());
        stream_name("Account", &longest).unwrap();
        let err = stream_name("Account", &(longest + "x")).unwrap_err();
        assert!(matches!(err, NameError::AggregateId { .. }));
        assert!(err.to_string().contains("257 bytes"), "{err}");
    }

    #[test]
    fn a_stream_of_another_type_is_foreign() {
        assert!(matches!(
            aggregate_id("Account", "Accounts-1"),
            Err(NameError::ForeignStream { .. })
        ));
        assert!(aggregate_id("Account", "Account").is_err());
    }
}
