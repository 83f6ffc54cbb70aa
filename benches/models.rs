//! Aggregates and projections: what loading an aggregate costs with and without a snapshot, and
//! how fast a projection catches up over a long log beside `read_all`.
//!
//! - `aggregate_load/{replay,snapshot}/{file,memory}`: `Repository::load` of one order of 1,000
//!   events (`ItemAdded`, ~80 bytes of data each) in a store that also holds 9,000 events of
//!   other orders. `replay`: no snapshot, every event read, decoded into the order's event enum
//!   and applied. `snapshot`: a snapshot at version 1,000, so the load reads the snapshot and
//!   finds no event after it. `read_stream` beside them: the same 1,000 events read as
//!   `RecordedEvent`s and dropped (what any load costs at least without a snapshot).
//! - `projection_catch_up`: a projection counting events by type over a store of 1,000,000
//!   events (`dataset.rs`, the query benchmarks' data set), rebuilt from 0 in each iteration
//!   (`Runner::rebuild`: reset, checkpoint to 0, catch up), committing every 1,000 events (the
//!   default batch); the checkpoint in the store (a file replaced and fsynced: two fsyncs) saved
//!   at most once a second (the default) or at every commit. `read_all` beside it: the same events read from 0 and counted by type the same way, with no
//!   checkpoint. Both produce every `RecordedEvent`.
//!
//! Run: `cargo bench -p eventfile-bench --bench models`. `EVENTFILE_BENCH_EVENTS` shrinks the
//! catch-up store for a quick look.

mod dataset;

use std::collections::HashMap;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use eventfile::aggregate::{Aggregate, Repository, VariantEvents};
use eventfile::projection::{BoxError, Projection, Runner};
use eventfile::{EventStore, ExpectedVersion, MemoryStore, Read, RecordedEvent, Store};
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Serialize, Deserialize)]
struct Order {
    lines: u64,
    quantity: u64,
    total_cents: u64,
}

#[derive(Serialize, Deserialize)]
enum OrderEvent {
    ItemAdded {
        sku: String,
        quantity: u64,
        price_cents: u64,
    },
}

impl VariantEvents for OrderEvent {}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Event = OrderEvent;
    type Command = ();
    type Error = Never;

    fn apply(&mut self, event: &OrderEvent) -> Result<(), Never> {
        let OrderEvent::ItemAdded {
            quantity,
            price_cents,
            ..
        } = event;
        self.lines += 1;
        self.quantity += quantity;
        self.total_cents += quantity * price_cents;
        Ok(())
    }

    fn decide(&self, _: &()) -> Result<Vec<OrderEvent>, Never> {
        Ok(Vec::new())
    }
}

const AGGREGATE_EVENTS: u64 = 1_000;
const OTHER_EVENTS: u64 = 9_000;

/// Order `big` with 1,000 events among 9,000 of ten other orders, appended in batches of 100.
fn fill(store: &dyn EventStore) {
    let item = |i: u64| {
        eventfile::aggregate::DomainEvent::encode(&OrderEvent::ItemAdded {
            sku: format!("SKU-{:06}", i % 1000),
            quantity: 1 + i % 3,
            price_cents: 1250,
        })
        .unwrap()
    };
    let mut i = 0;
    while i < AGGREGATE_EVENTS + OTHER_EVENTS {
        let stream = if (i / 100) % 10 == 0 {
            "order-big".to_owned()
        } else {
            format!("order-{}", (i / 100) % 10)
        };
        let batch: Vec<_> = (i..i + 100).map(item).collect();
        store.append(&stream, ExpectedVersion::Any, batch).unwrap();
        i += 100;
    }
    assert_eq!(store.stream_version("order-big").unwrap(), AGGREGATE_EVENTS);
}

fn aggregate_load(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let file = eventfile::OpenOptions::new()
        .durability(eventfile::Durability::None)
        .open(tmp.path())
        .unwrap();
    let memory = MemoryStore::new();
    let stores: [(&str, &dyn EventStore); 2] = [("file", &file), ("memory", &memory)];
    let mut g = c.benchmark_group("aggregate_load");
    g.throughput(Throughput::Elements(AGGREGATE_EVENTS));
    for (name, store) in stores {
        fill(store);
        let orders = Repository::<Order, _>::new(store);
        let loaded = orders.load("big").unwrap();
        assert_eq!(
            (loaded.replayed, loaded.state.lines),
            (AGGREGATE_EVENTS, AGGREGATE_EVENTS)
        );
        g.bench_function(format!("read_stream/{name}"), |b| {
            b.iter(|| {
                let n = store
                    .read_stream("order-big", Read::forward())
                    .unwrap()
                    .map(Result::unwrap)
                    .count();
                assert_eq!(n as u64, AGGREGATE_EVENTS);
            })
        });
        g.bench_function(format!("replay/{name}"), |b| {
            b.iter(|| {
                let order = orders.load("big").unwrap();
                assert_eq!(order.version, AGGREGATE_EVENTS);
                order
            })
        });
        orders.save_snapshot(&loaded).unwrap();
        g.bench_function(format!("snapshot/{name}"), |b| {
            b.iter(|| {
                let order = orders.load("big").unwrap();
                assert_eq!(
                    (order.snapshot, order.replayed),
                    (Some(AGGREGATE_EVENTS), 0)
                );
                order
            })
        });
    }
    g.finish();
}

/// Events counted by type: the projection's read model and `read_all`'s tally alike.
#[derive(Default)]
struct ByType {
    counts: HashMap<String, u64>,
}

impl ByType {
    fn count(&mut self, event: &RecordedEvent) {
        match self.counts.get_mut(&event.event_type) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(event.event_type.clone(), 1);
            }
        }
    }
}

impl Projection for ByType {
    fn name(&self) -> &str {
        "by-type"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        self.count(event);
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        self.counts.clear();
        Ok(())
    }
}

fn projection_catch_up(c: &mut Criterion) {
    let events = dataset::events();
    let tmp = tempfile::tempdir().unwrap();
    let built = std::cell::OnceCell::new();
    let store = || {
        built.get_or_init(|| {
            dataset::build_eventfile_timed(tmp.path(), events);
            Store::open(tmp.path()).unwrap()
        })
    };
    let mut g = c.benchmark_group("projection_catch_up");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(events));
    let total = |counts: &HashMap<String, u64>| counts.values().sum::<u64>();
    g.bench_function("read_all", |b| {
        let store = store();
        b.iter(|| {
            let mut tally = ByType::default();
            for e in store.read_all(Read::forward()).unwrap() {
                tally.count(&e.unwrap());
            }
            assert_eq!(total(&tally.counts), events);
            tally
        })
    });
    // The defaults (batches of 1,000, the store's checkpoint saved at most once a second),
    // then the checkpoint saved at every batch.
    for (name, every) in [
        ("runner/default", Duration::from_secs(1)),
        ("runner/checkpoint_every_batch", Duration::ZERO),
    ] {
        g.bench_function(name, |b| {
            let store = store();
            let mut runner = Runner::new(store, ByType::default())
                .unwrap()
                .checkpoint_every(every);
            b.iter(|| {
                let reached = runner.rebuild(|_| {}).unwrap();
                assert_eq!(reached, events);
                assert_eq!(total(&runner.projection().counts), events);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, aggregate_load, projection_catch_up);
criterion_main!(benches);
