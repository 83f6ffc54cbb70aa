//! The two projections, order summary and order details, and the exactly-once rule they share
//! ([`SqliteProjection`]): the rows a batch of events changes and the projection's checkpoint
//! row are written in one SQLite transaction.
//!
//! The runner (`eventfile::projection::Runner`) hands events over one by one and then calls
//! `commit(position)`. The first event of a batch opens a transaction (`BEGIN IMMEDIATE`),
//! each event changes rows in it, and `commit` writes the checkpoint row and commits. A crash
//! anywhere before the commit loses the whole batch (rows and position); a crash after it
//! loses nothing. On restart the runner asks the projection for its position, which is the
//! checkpoint row, so each event changes the rows exactly once, whatever the store's own
//! checkpoint (which the runner also saves, after the read model's) says.
//!
//! This module owns what each event does to the rows; it never decides which events exist
//! (that is [`crate::order`]) nor what queries read (that is [`crate::read_model`]).

use std::path::Path;

use eventfile::aggregate::DomainEvent;
use eventfile::projection::{BoxError, Projection};
use eventfile::{Query, RecordedEvent};
use rusqlite::{Connection, params};

use crate::order::{Cents, OrderEvent, Status, line_amount};
use crate::read_model::{ReadModelError, connect, position};

/// The stream prefix of orders.
const ORDERS: &str = "order-";

/// What one projection does to its tables.
pub trait Tables: Send {
    /// The projection's name: its checkpoint row and the store's checkpoint.
    const NAME: &'static str;
    /// The tables it owns (emptied by a reset).
    const TABLES: &'static [&'static str];
    /// The order event types it reads.
    const TYPES: &'static [&'static str];

    /// Applies one order event to the rows, inside the batch's transaction.
    fn apply(
        conn: &Connection,
        order: &str,
        event: &OrderEvent,
        recorded: &RecordedEvent,
    ) -> rusqlite::Result<()>;
}

/// A projection into the read-model file that writes its rows and its checkpoint row in one
/// transaction: exactly-once.
pub struct SqliteProjection<T: Tables> {
    conn: Connection,
    /// Whether a batch's transaction is open.
    open: bool,
    /// The checkpoint row as this projection last committed (or read) it.
    committed: u64,
    _tables: std::marker::PhantomData<fn() -> T>,
}

/// The order summary: one row per order.
pub type OrderSummary = SqliteProjection<Summary>;
/// The order details: one row per line.
pub type OrderDetails = SqliteProjection<Details>;

impl<T: Tables> SqliteProjection<T> {
    /// The projection, writing to the read model at `path`.
    pub fn open(path: &Path) -> Result<SqliteProjection<T>, ReadModelError> {
        let conn = connect(path)?;
        let committed = position(&conn, T::NAME).map_err(|e| ReadModelError::new(path, e))?;
        Ok(SqliteProjection {
            conn,
            open: false,
            committed,
            _tables: std::marker::PhantomData,
        })
    }

    /// Opens the batch's transaction, checking that the checkpoint row is where this
    /// projection left it: another process writing the same rows would apply events twice.
    fn begin(&mut self) -> Result<(), BoxError> {
        if self.open {
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.open = true;
        let now = position(&self.conn, T::NAME)?;
        if now != self.committed {
            self.rollback()?;
            return Err(format!(
                "{}: its checkpoint row moved from {} to {now} under it: another projector \
                 writes this read model",
                T::NAME,
                self.committed
            )
            .into());
        }
        Ok(())
    }
}

impl<T: Tables> Projection for SqliteProjection<T> {
    fn name(&self) -> &str {
        T::NAME
    }

    fn query(&self) -> Query {
        Query::new().prefix(ORDERS).types(T::TYPES.iter().copied())
    }

    fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let Some(order) = event.stream.strip_prefix(ORDERS) else {
            return Ok(());
        };
        let decoded = OrderEvent::decode(&event.event_type, &event.data)?;
        self.begin()?;
        T::apply(&self.conn, order, &decoded, event)?;
        Ok(())
    }

    fn commit(&mut self, position: u64) -> Result<(), BoxError> {
        self.begin()?;
        let result = self
            .conn
            .execute(
                "INSERT INTO projection_checkpoints (name, position) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                params![T::NAME, i64::try_from(position)?],
            )
            .and_then(|_| self.conn.execute_batch("COMMIT"));
        if let Err(e) = result {
            self.rollback()?;
            return Err(e.into());
        }
        self.open = false;
        self.committed = position;
        Ok(())
    }

    fn rollback(&mut self) -> Result<bool, BoxError> {
        if self.open {
            self.open = false;
            if !self.conn.is_autocommit() {
                self.conn.execute_batch("ROLLBACK")?;
            }
        }
        Ok(true)
    }

    fn position(&mut self) -> Result<Option<u64>, BoxError> {
        self.committed = position(&self.conn, T::NAME)?;
        Ok(Some(self.committed))
    }

    fn reset(&mut self) -> Result<(), BoxError> {
        self.rollback()?;
        let mut sql = String::from("BEGIN IMMEDIATE;");
        for table in T::TABLES {
            sql.push_str(&format!("DELETE FROM {table};"));
        }
        sql.push_str(&format!(
            "DELETE FROM projection_checkpoints WHERE name = '{}'; COMMIT;",
            T::NAME
        ));
        if let Err(e) = self.conn.execute_batch(&sql) {
            if !self.conn.is_autocommit() {
                self.conn.execute_batch("ROLLBACK")?;
            }
            return Err(e.into());
        }
        self.committed = 0;
        Ok(())
    }
}

/// The order summary's rows.
pub struct Summary;

impl Tables for Summary {
    const NAME: &'static str = "order-summary";
    const TABLES: &'static [&'static str] = &["order_summary"];
    const TYPES: &'static [&'static str] =
        &["OrderPlaced", "ItemAdded", "PaymentReceived", "OrderPaid"];

    fn apply(
        conn: &Connection,
        order: &str,
        event: &OrderEvent,
        _: &RecordedEvent,
    ) -> rusqlite::Result<()> {
        // A plain INSERT: an order placed twice in the rows (an event applied twice) fails
        // loudly rather than hide.
        match event {
            OrderEvent::OrderPlaced { customer } => conn.execute(
                "INSERT INTO order_summary (order_id, customer, items, total, paid, status) \
                 VALUES (?1, ?2, 0, 0, 0, ?3)",
                params![order, customer, Status::Placed.as_str()],
            ),
            OrderEvent::ItemAdded {
                quantity,
                unit_price,
                ..
            } => conn.execute(
                "UPDATE order_summary SET items = items + ?2, total = total + ?3 \
                 WHERE order_id = ?1",
                params![order, quantity, amount(*quantity, *unit_price)?],
            ),
            OrderEvent::PaymentReceived { amount } => conn.execute(
                "UPDATE order_summary SET paid = paid + ?2, status = ?3 WHERE order_id = ?1",
                params![order, cents(*amount)?, Status::PartPaid.as_str()],
            ),
            OrderEvent::OrderPaid => conn.execute(
                "UPDATE order_summary SET status = ?2 WHERE order_id = ?1",
                params![order, Status::Paid.as_str()],
            ),
        }
        .map(drop)
    }
}

/// The order details' rows.
pub struct Details;

impl Tables for Details {
    const NAME: &'static str = "order-details";
    const TABLES: &'static [&'static str] = &["order_lines"];
    const TYPES: &'static [&'static str] = &["ItemAdded"];

    fn apply(
        conn: &Connection,
        order: &str,
        event: &OrderEvent,
        recorded: &RecordedEvent,
    ) -> rusqlite::Result<()> {
        let OrderEvent::ItemAdded {
            sku,
            quantity,
            unit_price,
        } = event
        else {
            return Ok(());
        };
        // `seq` is UNIQUE: an event applied twice fails loudly.
        conn.execute(
            "INSERT INTO order_lines (order_id, line, sku, quantity, unit_price, amount, seq) \
             VALUES (?1, (SELECT COUNT(*) + 1 FROM order_lines WHERE order_id = ?1), \
                     ?2, ?3, ?4, ?5, ?6)",
            params![
                order,
                sku,
                quantity,
                cents(*unit_price)?,
                amount(*quantity, *unit_price)?,
                i64::try_from(recorded.seq).map_err(too_large)?
            ],
        )
        .map(drop)
    }
}

/// Cents as SQLite's signed integer.
fn cents(c: Cents) -> rusqlite::Result<i64> {
    i64::try_from(c.0).map_err(too_large)
}

fn amount(quantity: u32, unit_price: Cents) -> rusqlite::Result<i64> {
    cents(line_amount(quantity, unit_price).map_err(too_large)?)
}

fn too_large(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}
