//! The command line (clap), kept apart from what the commands do: every argument is parsed
//! here into the type a command uses, so that a malformed one is a usage error (exit 2) before
//! any store is opened.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use eventfile_shop::order::Cents;

/// shop: an example shop on eventfile. Orders are aggregates kept in the event store; two
/// projections keep a SQLite read model (order summary and order lines) exactly once.
///
/// The store is named by --url, else EVENTFILE_URL, else the `url` of the configuration file
/// (--config, EVENTFILE_CONFIG, or ./eventfile.toml), else ./shop-data (a file store). URLs:
/// file:PATH (or a bare path), sqlite:PATH, postgres://..., memory:.
///
/// Exit status: 0 done, 1 a refused command or a store error, 2 a usage error.
#[derive(Debug, Parser)]
#[command(name = "shop", version)]
pub struct Cli {
    /// The store: file:PATH, sqlite:PATH, postgres://USER@HOST/DB, or memory:.
    #[arg(long, global = true, env = "EVENTFILE_URL", value_name = "URL")]
    pub url: Option<String>,

    /// A configuration file (TOML: the url and each backend's options). Default:
    /// ./eventfile.toml if there is one.
    #[arg(long, global = true, env = "EVENTFILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The SQLite read-model file both projections write.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "./shop-read.db"
    )]
    pub read_db: PathBuf,

    /// Save a snapshot of an order every N of its events (0: never).
    #[arg(long, global = true, value_name = "N", default_value_t = 10)]
    pub snapshot_every: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// What the shop is asked to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Place order ORDER for CUSTOMER.
    Place {
        /// The order's id (letters, digits, `.`, `_`, `-`).
        #[arg(value_parser = order_id)]
        order: String,
        /// Who orders.
        customer: String,
    },
    /// Add QTY of SKU at PRICE each to an order (refused once payment has started).
    Add {
        /// The order's id.
        #[arg(value_parser = order_id)]
        order: String,
        /// The product.
        #[arg(value_parser = sku)]
        sku: String,
        /// How many.
        qty: u32,
        /// The price of one, e.g. 3.50.
        price: Cents,
    },
    /// Pay AMOUNT towards an order (never more than is owed).
    Pay {
        /// The order's id.
        #[arg(value_parser = order_id)]
        order: String,
        /// How much, e.g. 12.50.
        amount: Cents,
    },
    /// An order as the write side loads it (its events, from its newest snapshot).
    Show {
        /// The order's id.
        #[arg(value_parser = order_id)]
        order: String,
    },
    /// Every order, from the read model (caught up first).
    Orders,
    /// One order and its lines, from the read model (caught up first).
    Order {
        /// The order's id.
        #[arg(value_parser = order_id)]
        order: String,
    },
    /// The raw events, one JSON object a line: every order's, or one order's.
    Events {
        /// The order's id.
        #[arg(value_parser = order_id)]
        order: Option<String>,
    },
    /// Bring both projections up to the store's head; with --follow, keep following the log
    /// until Ctrl-C or SIGTERM.
    Project {
        /// Follow the log live.
        #[arg(long)]
        follow: bool,
        /// Events handled between commits.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
    },
    /// Empty both projections and replay the log into them, with progress on stderr.
    Rebuild,
    /// Each projection's position, lag and last error, one JSON object a line.
    Status,
    /// A scripted run: orders placed, items added, paid, a refused command, the projections
    /// caught up and both read models printed.
    Demo,
    /// An interactive menu on the terminal.
    Menu,
}

/// An order id: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
pub fn order_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an order id: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ))
    }
}

/// A product code: 1 to 64 characters, no control characters.
pub fn sku(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
        Err(format!(
            "`{s}` is not a product code: use 1 to 64 printable characters"
        ))
    } else {
        Ok(s.to_owned())
    }
}
