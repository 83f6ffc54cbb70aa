//! # eventfile-shop
//!
//! A shop on eventfile, end to end: orders are aggregates (place, add items, pay) kept in the
//! event store, and two projections (an order summary and the order lines) keep a SQLite read
//! model that the shop's queries read. Both projections are exactly-once: the rows an event
//! changes and the projection's position are committed in one SQLite transaction.
//!
//! | module | owns |
//! |---|---|
//! | [`order`] | the order aggregate: events, commands, the rules that refuse them |
//! | [`projections`] | what each event does to the read model's rows, and the exactly-once commit |
//! | [`read_model`] | the read-model file: schema, queries, the one-projector lock |
//! | [`Shop`] | the application over any store: commands, catch-up, follow, rebuild, status |
//!
//! The `shop` binary is the command line over it (`shop --help`).
//!
//! ```
//! use eventfile_shop::order::{Cents, Line, OrderCommand};
//! use eventfile_shop::Shop;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let read_db = dir.path().join("read.db");
//! let shop = Shop::new(eventfile::MemoryStore::new(), read_db, 10);
//! shop.execute("1", &OrderCommand::Place { customer: "ann".into() })?;
//! shop.execute("1", &OrderCommand::AddItem(Line {
//!     sku: "tea".into(), quantity: 2, unit_price: Cents(350),
//! }))?;
//! shop.execute("1", &OrderCommand::Pay { amount: Cents(700) })?;
//! shop.catch_up()?;
//! let orders = shop.read_model()?.orders()?;
//! assert_eq!((orders[0].total, orders[0].status.as_str()), (Cents(700), "paid"));
//! # Ok::<(), eventfile_shop::ShopError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod order;
pub mod projections;
pub mod read_model;
mod shop;

pub use shop::{ATTEMPTS, PROJECTIONS, ReadModelStatus, Shop, ShopError};
