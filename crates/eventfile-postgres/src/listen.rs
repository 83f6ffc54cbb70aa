//! How the store learns of commits it did not make: a thread per store holding a connection
//! that `LISTEN`s on the schema's channel (the append function sends `NOTIFY` with the new head
//! inside its transaction, so it is delivered at commit), advancing the store's [`HeadWatch`];
//! and, since a notification can be lost with a connection, a poll of the head whenever none
//! came for [`POLL`] and after every reconnection. Also the [`Feed`] that serves
//! subscriptions.
//!
//! It owns the watch's advances from outside this process; it never writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use eventfile::subscription::{Feed, FeedEvents, HeadWatch, Waited};
use eventfile::{Query, Result};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config};

use crate::error::pg;
use crate::lookup::head;
use crate::pool::connect;
use crate::store::{PostgresStore, Shared};

/// Longest wait without a notification before the head is read anyway; also how soon the
/// thread notices that its store was dropped.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// A connection listening on the schema's channel.
pub(crate) fn listener(config: &Config, schema: &str, channel: &str) -> Result<Client> {
    let mut client = connect(config)?;
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .map_err(pg)?;
    let _ = schema;
    Ok(client)
}

/// Runs the listener until `stop` is set: each notification's head, or the polled head,
/// advances `watch`.
pub(crate) fn run(
    config: Config,
    schema: String,
    channel: String,
    mut client: Option<Client>,
    watch: Arc<HeadWatch>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let Some(c) = client.as_mut() else {
            match listener(&config, &schema, &channel) {
                Ok(mut c) => {
                    // Whatever was committed while no one listened.
                    if let Ok(h) = head(&mut c, &schema) {
                        watch.advance(h);
                    }
                    client = Some(c);
                }
                // Try again after a pause: the server is away.
                Err(_) => std::thread::sleep(POLL),
            }
            continue;
        };
        let next = c.notifications().timeout_iter(POLL).next();
        match next {
            Ok(Some(n)) => {
                if let Ok(h) = n.payload().parse::<u64>() {
                    watch.advance(h);
                }
            }
            Ok(None) => match head(c, &schema) {
                Ok(h) => watch.advance(h),
                Err(_) => client = None,
            },
            Err(_) => client = None,
        }
    }
}

/// A subscription's feed: holds the store weakly, so that dropping the store ends it.
pub(crate) struct PgFeed {
    pub(crate) shared: Weak<Shared>,
    pub(crate) watch: Arc<HeadWatch>,
}

impl PgFeed {
    fn store(&self) -> Option<PostgresStore> {
        self.shared.upgrade().map(PostgresStore::from_shared)
    }
}

impl Feed for PgFeed {
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        store.run(&query.clone().from_seq(after + 1)).map(Some)
    }

    fn bounds(&self, _fresh: bool) -> Result<Option<(u64, u64)>> {
        match self.store() {
            Some(s) => Ok(Some((s.read_head()?, 1))),
            None => Ok(None),
        }
    }

    fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited {
        self.watch.wait_past(after, deadline)
    }
}
