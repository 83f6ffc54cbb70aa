//! [`PostgresOptions`]: how a [`crate::PostgresStore`] is opened (pool size, schema, whether to
//! migrate). It owns the defaults and the check of a schema name, and never connects.

use eventfile::{Error, Result};

/// How a [`crate::PostgresStore`] is opened: built with [`PostgresOptions::new`] and its
/// methods, each of which states its default.
///
/// ```
/// use eventfile_postgres::PostgresOptions;
/// let options = PostgresOptions::new().schema("orders").pool_size(4).migrate(false);
/// assert_eq!(options.schema_name(), "orders");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct PostgresOptions {
    pub(crate) pool_size: usize,
    pub(crate) schema: String,
    pub(crate) migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            schema: "eventfile".to_owned(),
            migrate: true,
        }
    }
}

impl PostgresOptions {
    /// The defaults: a pool of 8 connections, schema `eventfile`, migrations applied on open.
    pub fn new() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// Most connections the store's pool of readers keeps open (at least 1). Default 8. The
    /// store opens two more: its appender's and its listener's.
    pub fn pool_size(mut self, n: usize) -> PostgresOptions {
        self.pool_size = n.max(1);
        self
    }

    /// The PostgreSQL schema holding the store's tables: lower-case ASCII letters, digits and
    /// `_`, starting with a letter or `_`, at most 48 bytes. Default `eventfile`.
    pub fn schema(mut self, schema: impl Into<String>) -> PostgresOptions {
        self.schema = schema.into();
        self
    }

    /// Whether opening applies pending migrations (under an advisory lock, so that processes
    /// opening at once are safe). Default `true`; without it, a schema that is not at this
    /// build's version is refused.
    pub fn migrate(mut self, migrate: bool) -> PostgresOptions {
        self.migrate = migrate;
        self
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Checks the schema name, so it can be written into SQL as an identifier.
    pub(crate) fn checked_schema(&self) -> Result<&str> {
        let s = self.schema.as_str();
        let ok = !s.is_empty()
            && s.len() <= 48
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
            && !s.starts_with("pg_");
        if ok {
            Ok(s)
        } else {
            Err(Error::InvalidInput {
                what: "schema name",
                reason: format!(
                    "`{s}` is not a lower-case ASCII identifier of at most 48 bytes (not `pg_*`)"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_identifiers() {
        for good in ["eventfile", "t_1", "_x"] {
            assert!(PostgresOptions::new().schema(good).checked_schema().is_ok());
        }
        for bad in ["", "1a", "A", "a-b", "a\"b", "pg_x", &"a".repeat(49)] {
            assert!(PostgresOptions::new().schema(bad).checked_schema().is_err());
        }
    }
}
