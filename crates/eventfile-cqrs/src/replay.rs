//! The replay streams cqrs-es reads ([`ReplayStream`]): a task that pulls an eventfile read a
//! batch at a time and pushes each event, converted, into the stream's bounded channel.
//!
//! This module owns that task: it holds one batch at a time, stops at the first error (which it
//! pushes as the stream's last item) and stops when the reader drops the stream. It never
//! decides what is read; the repository hands it an open read.

use cqrs_es::persist::{PersistenceError, ReplayFeed, ReplayStream};
use eventfile::AsyncEvents;

use crate::error::{Error, persistence_error};
use crate::mapping;

/// Events pulled from the store per batch.
const READ_BATCH: usize = 256;

/// Whether the stream checks that versions follow each other from 1 (one aggregate's stream).
pub enum Order {
    /// One stream: versions 1, 2, 3, … with no gap (a gap is [`Error::MissingEvents`]), up to
    /// at least `through`, the stream's version before the read began (a read that ends short
    /// of it lost its last events to a deletion: [`Error::MissingEvents`] too).
    Versions { stream: String, through: u64 },
    /// The global log: seq order across streams, as eventfile returns it.
    Seq,
}

/// A [`ReplayStream`] of `events`, all of streams of `aggregate_type`, buffering at most
/// `channel_size` converted events ahead of the reader. Needs a tokio runtime.
pub fn spawn(
    aggregate_type: &'static str,
    events: AsyncEvents,
    order: Order,
    channel_size: usize,
) -> ReplayStream {
    let (feed, stream) = ReplayStream::new(channel_size.max(1));
    tokio::spawn(run(aggregate_type, events, order, feed));
    stream
}

async fn run(
    aggregate_type: &'static str,
    mut events: AsyncEvents,
    order: Order,
    mut feed: ReplayFeed,
) {
    let mut next_version = 1;
    loop {
        let batch = match events.next_batch(READ_BATCH).await {
            Ok(batch) if batch.is_empty() => {
                if let Order::Versions { stream, through } = &order
                    && next_version <= *through
                {
                    let missing = Error::MissingEvents {
                        stream: stream.to_owned(),
                        expected: next_version,
                        found: 0,
                    };
                    let _ = feed.push(Err(missing.into())).await;
                }
                return;
            }
            Ok(batch) => batch,
            Err(e) => {
                // The reader may have gone; there is no one else to tell.
                let _ = feed.push(Err(persistence_error(e))).await;
                return;
            }
        };
        for event in batch {
            let item: Result<_, PersistenceError> = match &order {
                Order::Versions { .. } if event.version != next_version => {
                    Err(Error::MissingEvents {
                        stream: event.stream.clone(),
                        expected: next_version,
                        found: event.version,
                    }
                    .into())
                }
                _ => mapping::serialized_event(aggregate_type, event).map_err(Into::into),
            };
            next_version += 1;
            let failed = item.is_err();
            if feed.push(item).await.is_err() || failed {
                return;
            }
        }
    }
}
