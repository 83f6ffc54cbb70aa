//! How the client's errors become [`eventfile::Error`]s: a server that cannot be reached, a
//! refused login or a broken connection is [`Error::Unreachable`]; anything else the server
//! says, and a value the client cannot convert, is [`Error::Database`]. The client's messages
//! never carry the password, and nothing here adds the URL.

use eventfile::Error;

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "postgres";

/// SQLSTATE classes and codes that mean the server cannot be used now, whatever the statement.
fn unreachable_code(code: &str) -> bool {
    // 08: connection exception; 28: invalid authorization; 57P0x: the server is shutting down
    // or terminated this backend; 53300: too many connections.
    code.starts_with("08") || code.starts_with("28") || code.starts_with("57P") || code == "53300"
}

/// The store's error for a client error.
pub(crate) fn pg(e: postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if unreachable_code(db.code().code()) => Error::Unreachable {
            backend: BACKEND,
            reason: db.message().to_owned(),
        },
        Some(db) => Error::Database {
            backend: BACKEND,
            reason: format!("{} ({})", db.message(), db.code().code()),
        },
        None if client_side(&e) => Error::Database {
            backend: BACKEND,
            reason: match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        },
        None => Error::Unreachable {
            backend: BACKEND,
            reason: e.to_string(),
        },
    }
}

/// Whether a client error without a server error is the client's own refusal of what it was
/// given or sent back (a value of the wrong type or out of range, a missing column, a row
/// count): the same answer on any connection, so `Database`, not `Unreachable` (which tells a
/// caller to retry). The client exposes no kind; its messages for these are fixed, and a
/// broken connection is an I/O error (its source) or `is_closed`.
fn client_side(e: &postgres::Error) -> bool {
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return false;
    }
    let text = e.to_string();
    [
        "error deserializing column",
        "error serializing parameter",
        "invalid column",
        "query returned an unexpected number",
        "expected ",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

/// A store error of the database kind, for results the server should never give.
pub(crate) fn database(reason: impl Into<String>) -> Error {
    Error::Database {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// Whether a client error is a unique violation of the constraint named `constraint`.
pub(crate) fn is_unique_violation(e: &postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code().code() == "23505" && db.constraint().is_some_and(|c| c == constraint)
    })
}
