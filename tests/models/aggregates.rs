//! Aggregates: load, save, conflicts, retries, snapshots and their fallbacks, upcasting, and
//! histories an aggregate cannot apply.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use eventfile::aggregate::{AggregateError, Repository, SCHEMA_VERSION_KEY, Upcaster};
use eventfile::{EventStore, ExpectedVersion, NewEvent, Read, RecordedEvent};
use serde_json::json;

use crate::support::*;

type Orders<'a> = Repository<Order, &'a dyn EventStore>;

fn events(store: &dyn EventStore, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, Read::forward())
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("events")
}

fn place_and_fill(orders: &Orders<'_>, id: &str, items: u32) {
    orders
        .execute(id, &Command::Place("ann".into()), 1)
        .expect("place");
    for i in 0..items {
        orders
            .execute(id, &Command::Add(format!("sku-{i}"), i + 1), 1)
            .expect("add");
    }
}

#[test]
fn commands_become_events_in_the_aggregates_stream_and_load_back() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        assert!(!orders.exists("7").unwrap(), "{}", b.name);
        let fresh = orders.load("7").unwrap();
        assert_eq!((fresh.version, &fresh.state), (0, &Order::default()));
        place_and_fill(&orders, "7", 2);
        let paid = orders.execute("7", &Command::Pay(30), 1).unwrap();
        assert_eq!(paid.version, 4, "{}", b.name);
        assert!(orders.exists("7").unwrap());

        let stored = events(&*b.store, "order-7");
        let types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["Placed", "ItemAdded", "ItemAdded", "Paid"]);
        assert_eq!(stored[0].data.get(), r#"{"customer":"ann"}"#);
        assert_eq!(stored[1].data.get(), r#"{"sku":"sku-0","quantity":1}"#);
        // ItemAdded is at schema 2, so it says so; the others are at 1 and carry nothing.
        assert_eq!(stored[1].meta[SCHEMA_VERSION_KEY], json!(2));
        assert!(stored[0].meta.is_empty());

        let loaded = orders.load("7").unwrap();
        assert_eq!(loaded.state, paid.state);
        assert_eq!(
            loaded.state.items,
            [("sku-0".into(), 1), ("sku-1".into(), 2)]
        );
        assert_eq!(
            (loaded.version, loaded.replayed, loaded.snapshot),
            (4, 4, None)
        );
        // A refused command writes nothing.
        let refused = orders
            .execute("7", &Command::Place("bob".into()), 3)
            .unwrap_err();
        assert!(matches!(
            refused,
            AggregateError::Rejected(Refused::AlreadyPlaced)
        ));
        assert_eq!(b.store.stream_version("order-7").unwrap(), 4);
    }
}

#[test]
fn a_unit_variant_is_stored_with_null_data_and_reads_back() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&orders, "u", 0);
        let cancelled = orders.execute("u", &Command::Cancel, 1).unwrap();
        assert!(cancelled.state.cancelled);
        let stored = events(&*b.store, "order-u");
        assert_eq!(
            (stored[1].event_type.as_str(), stored[1].data.get()),
            ("Cancelled", "null")
        );
        assert!(orders.load("u").unwrap().state.cancelled, "{}", b.name);
    }
}

#[test]
fn a_save_from_a_stale_load_is_a_conflict_and_writes_nothing() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&orders, "c", 1);
        let mut first = orders.load("c").unwrap();
        let mut second = orders.load("c").unwrap();
        orders
            .save(&mut first, vec![Versioned(OrderEvent::Paid { amount: 1 })])
            .unwrap();
        let err = orders
            .save(&mut second, vec![Versioned(OrderEvent::Paid { amount: 2 })])
            .unwrap_err();
        assert!(err.is_conflict(), "{}: {err}", b.name);
        assert_eq!(second.version, 2, "the stale copy is left as it was");
        assert_eq!(orders.load("c").unwrap().state.paid, 1);
        assert_eq!(b.store.head_seq().unwrap(), 3);
    }
}

#[test]
fn execute_retries_a_conflict_within_its_bound() {
    for b in backends() {
        let name = b.name;
        let store: Arc<dyn EventStore> = Arc::from(b.store);
        let orders: Orders<'_> = Repository::new(&*store);
        place_and_fill(&orders, "r", 0);
        // Another writer pays between each load and save, `races` times.
        let races = Rc::new(Cell::new(2u32));
        let decisions = Rc::new(Cell::new(0u32));
        let hook = {
            let (races, decisions) = (Rc::clone(&races), Rc::clone(&decisions));
            let store = Arc::clone(&store);
            move || {
                decisions.set(decisions.get() + 1);
                if races.get() > 0 {
                    races.set(races.get() - 1);
                    let paid = NewEvent::new("Paid", json!({ "amount": 100 }));
                    store
                        .append("order-r", ExpectedVersion::Any, vec![paid])
                        .unwrap();
                }
            }
        };
        let command = Command::PayRacing(1, Rc::new(hook));
        // Racing twice, three attempts: the third decides on the fresh state and is saved.
        let saved = orders.execute("r", &command, 3).unwrap();
        assert_eq!(decisions.get(), 3, "{name}");
        assert_eq!(saved.state.paid, 201, "both racing payments and ours");
        assert_eq!((saved.version, orders.load("r").unwrap().version), (4, 4));
        // Racing more often than the bound: a typed conflict naming the attempts.
        races.set(5);
        decisions.set(0);
        let err = orders.execute("r", &command, 3).unwrap_err();
        match &err {
            AggregateError::Conflict {
                stream, attempts, ..
            } => assert_eq!((stream.as_str(), *attempts), ("order-r", 3)),
            other => panic!("{name}: not a conflict: {other}"),
        }
        assert!(err.is_conflict());
        assert_eq!(decisions.get(), 3);
        assert_eq!(
            orders.load("r").unwrap().state.paid,
            501,
            "only the racers wrote"
        );
    }
}

#[test]
fn snapshots_every_n_events_shorten_the_load_to_the_events_after_them() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store).snapshot_every(10);
        place_and_fill(&orders, "s", 24); // versions 1..=25
        let snapshot = b.store.load_snapshot("order-s").unwrap().expect("snapshot");
        assert_eq!(snapshot.version, 20, "{}", b.name);
        let loaded = orders.load("s").unwrap();
        assert_eq!(
            (loaded.snapshot, loaded.replayed, loaded.version),
            (Some(20), 5, 25)
        );
        // The same state as a replay of every event, by a repository that never snapshots:
        // it still starts from the snapshot, so compare with a replay by hand.
        let mut replayed = Order::default();
        for e in events(&*b.store, "order-s") {
            let event =
                <Versioned as eventfile::aggregate::DomainEvent>::decode(&e.event_type, &e.data)
                    .unwrap();
            eventfile::aggregate::Aggregate::apply(&mut replayed, &event).unwrap();
        }
        assert_eq!(loaded.state, replayed);
        // Off by default: no snapshot for another order.
        let plain: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&plain, "p", 30);
        assert!(b.store.load_snapshot("order-p").unwrap().is_none());
    }
}

#[test]
fn a_snapshot_that_no_longer_decodes_falls_back_to_replay() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&orders, "f", 3);
        let want = orders.load("f").unwrap().state;
        let bad = [
            r#"{"layout":1,"state":"not an order"}"#,
            r#"{"layout":2,"state":{"customer":null,"items":[],"paid":0,"cancelled":false}}"#,
            r#"[1,2,3]"#,
        ];
        for state in bad {
            let raw = serde_json::value::RawValue::from_string(state.into()).unwrap();
            b.store.save_snapshot("order-f", 3, &raw).unwrap();
            let loaded = orders.load("f").unwrap();
            assert_eq!(
                (loaded.snapshot, loaded.replayed),
                (None, 4),
                "{}: {state}",
                b.name
            );
            assert_eq!(loaded.state, want);
        }
        // A good snapshot is used again.
        let loaded = orders.load("f").unwrap();
        orders.save_snapshot(&loaded).unwrap();
        assert_eq!(orders.load("f").unwrap().snapshot, Some(4));
    }
}

#[test]
fn an_event_the_aggregate_cannot_apply_or_decode_is_a_typed_error() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        // Paid before Placed: the order cannot apply it.
        let paid = NewEvent::new("Paid", json!({ "amount": 5 }));
        b.store
            .append("order-x", ExpectedVersion::NoStream, vec![paid])
            .unwrap();
        match orders.load("x").unwrap_err() {
            AggregateError::Apply {
                stream,
                version,
                event_type,
                source,
            } => {
                assert_eq!(
                    (stream.as_str(), version, event_type.as_str()),
                    ("order-x", 1, "Paid")
                );
                assert_eq!(source, Refused::NotPlaced);
            }
            other => panic!("{}: {other}", b.name),
        }
        // A type the aggregate does not know, and a known type with the wrong shape.
        for (stream, event) in [
            ("order-y", NewEvent::new("Refunded", json!({}))),
            ("order-z", NewEvent::new("Placed", json!({ "who": 1 }))),
        ] {
            b.store
                .append(stream, ExpectedVersion::NoStream, vec![event])
                .unwrap();
            let id = stream.strip_prefix("order-").unwrap();
            let err = orders.load(id).unwrap_err();
            assert!(
                matches!(&err, AggregateError::Decode { version: 1, .. }),
                "{}: {err}",
                b.name
            );
        }
        // Saving an event the state cannot apply writes nothing.
        let mut fresh = orders.load("new").unwrap();
        let err = orders
            .save(&mut fresh, vec![Versioned(OrderEvent::Paid { amount: 1 })])
            .unwrap_err();
        assert!(
            matches!(err, AggregateError::Apply { version: 1, .. }),
            "{err}"
        );
        assert_eq!(b.store.stream_version("order-new").unwrap(), 0);
    }
}

/// The upcaster of `ItemAdded` from schema 1 (`qty`) to 2 (`quantity`).
fn qty_to_quantity() -> Upcaster {
    Upcaster::new("ItemAdded", 1, |mut d| {
        let qty = d.get_mut("qty").map(serde_json::Value::take);
        d["quantity"] = qty.ok_or("no qty")?;
        Ok(d)
    })
}

#[test]
fn upcasters_bring_old_event_shapes_up_to_date() {
    for b in backends() {
        // Written by an older version: ItemAdded at schema 1, with `qty`.
        let old = [
            NewEvent::new("Placed", json!({ "customer": "ann" })),
            NewEvent::from_json_str("ItemAdded", r#"{"sku":"A","qty":3}"#).unwrap(),
        ];
        b.store
            .append("order-old", ExpectedVersion::NoStream, old.to_vec())
            .unwrap();
        // Without an upcaster the old shape does not decode.
        let plain: Orders<'_> = Repository::new(&*b.store);
        assert!(matches!(
            plain.load("old").unwrap_err(),
            AggregateError::Decode { version: 2, .. }
        ));
        let orders: Orders<'_> = Repository::new(&*b.store).with_upcaster(qty_to_quantity());
        let mut loaded = orders.load("old").unwrap();
        assert_eq!(loaded.state.items, [("A".into(), 3)], "{}", b.name);
        // New events are written at the current schema and read as they are.
        orders
            .save(
                &mut loaded,
                vec![Versioned(OrderEvent::ItemAdded {
                    sku: "B".into(),
                    quantity: 1,
                })],
            )
            .unwrap();
        let again = orders.load("old").unwrap();
        assert_eq!(again.state.items, [("A".into(), 3), ("B".into(), 1)]);
        // The stored event is never changed.
        assert_eq!(
            events(&*b.store, "order-old")[1].data.get(),
            r#"{"sku":"A","qty":3}"#
        );
        // An upcaster that fails is a decode error naming it.
        let failing: Orders<'_> =
            Repository::new(&*b.store)
                .with_upcaster(Upcaster::new("ItemAdded", 1, |_| Err("no".into())));
        let err = failing.load("old").unwrap_err();
        assert!(err.to_string().contains("upcaster from schema 1"), "{err}");
    }
}

/// A stream truncated with no snapshot at or after the truncation cannot be rebuilt: the load
/// fails naming the gap (it once applied the events left to a default state, and the next
/// command decided on that wrong state). With a snapshot at the truncation it loads; a new
/// life after a soft deletion loads from the default state.
#[test]
fn a_truncated_aggregate_without_its_snapshot_is_refused_not_rebuilt_from_part() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&orders, "t", 2);
        b.store.truncate_stream("order-t", 2).unwrap();
        match orders.load("t") {
            Err(AggregateError::Missing {
                expected: 1,
                found: 2,
                ..
            }) => {}
            other => panic!("{}: {:?}", b.name, other.map(|l| l.version)),
        }
        assert!(
            orders.execute("t", &Command::Pay(1), 1).is_err(),
            "{}",
            b.name
        );
        assert_eq!(events(&*b.store, "order-t").len(), 2, "{}", b.name);
    }
}

#[test]
fn deleted_aggregates_do_not_exist_and_continue_their_numbering() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        place_and_fill(&orders, "d", 1);
        b.store
            .delete_stream("order-d", ExpectedVersion::Exact(2))
            .unwrap();
        assert!(!orders.exists("d").unwrap(), "{}", b.name);
        // It loads as new, at the stream's version: placing it again continues the numbering.
        let loaded = orders.load("d").unwrap();
        assert_eq!((loaded.version, &loaded.state), (2, &Order::default()));
        let placed = orders
            .execute("d", &Command::Place("bob".into()), 1)
            .unwrap();
        assert_eq!(placed.version, 3);
        b.store
            .tombstone_stream("order-d", ExpectedVersion::Any)
            .unwrap();
        assert!(!orders.exists("d").unwrap());
        let err = orders.load("d").unwrap_err();
        assert_eq!(
            match err {
                AggregateError::Store(e) => e.kind(),
                other => panic!("{other}"),
            },
            eventfile::ErrorKind::StreamDeleted
        );
    }
}

#[test]
fn save_with_adds_metadata_to_every_event_and_the_file_store_keeps_it_across_a_reopen() {
    for mut b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store);
        let mut order = orders.load("m").unwrap();
        orders
            .save_with(
                &mut order,
                vec![
                    Versioned(OrderEvent::Placed {
                        customer: "ann".into(),
                    }),
                    Versioned(OrderEvent::Paid { amount: 9 }),
                ],
                |e| {
                    e.with_meta_entry("correlation_id", "req-1")
                        .with_tag("customer=ann")
                },
            )
            .unwrap();
        assert_eq!(order.version, 2);
        drop(orders);
        let reopened = b.reopen();
        let orders: Orders<'_> = Repository::new(&*b.store);
        let stored = events(&*b.store, "order-m");
        assert!(
            stored
                .iter()
                .all(|e| e.meta["correlation_id"] == json!("req-1"))
        );
        assert!(stored.iter().all(|e| e.tags == ["customer=ann"]));
        if reopened {
            assert_eq!(orders.load("m").unwrap().state.paid, 9);
        }
    }
}

/// `save_with`'s `each` may set the whole metadata map: the event's schema version stays
/// (it was written before `each` ran, and a `with_meta` dropped it: the current event then
/// loaded as schema 1 and went through the upcaster meant for old ones).
#[test]
fn save_with_keeps_the_schema_version_whatever_each_does_to_the_metadata() {
    for b in backends() {
        let orders: Orders<'_> = Repository::new(&*b.store).with_upcaster(qty_to_quantity());
        let mut order = orders.load("w").unwrap();
        let mut meta = serde_json::Map::new();
        meta.insert("correlation_id".into(), json!("req-2"));
        orders
            .save_with(
                &mut order,
                vec![
                    Versioned(OrderEvent::Placed {
                        customer: "ann".into(),
                    }),
                    Versioned(OrderEvent::ItemAdded {
                        sku: "A".into(),
                        quantity: 2,
                    }),
                ],
                |e| e.with_meta(meta.clone()),
            )
            .unwrap();
        let stored = events(&*b.store, "order-w");
        assert_eq!(stored[1].meta[SCHEMA_VERSION_KEY], json!(2), "{}", b.name);
        assert_eq!(stored[1].meta["correlation_id"], json!("req-2"));
        assert_eq!(orders.load("w").unwrap().state.items, [("A".into(), 2)]);
    }
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Meter {
    total: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum MeterEvent {
    Read { value: f64 },
}

impl eventfile::aggregate::VariantEvents for MeterEvent {}

impl eventfile::aggregate::Aggregate for Meter {
    const CATEGORY: &'static str = "meter";
    type Event = MeterEvent;
    type Command = f64;
    type Error = std::convert::Infallible;

    fn apply(&mut self, event: &MeterEvent) -> Result<(), Self::Error> {
        let MeterEvent::Read { value } = event;
        self.total += value;
        Ok(())
    }

    fn decide(&self, value: &f64) -> Result<Vec<MeterEvent>, Self::Error> {
        Ok(vec![MeterEvent::Read { value: *value }])
    }
}

/// An event that does not read back as it was written is refused before anything is written:
/// serde_json writes a NaN or an infinite `f64` as `null`, which no load could then decode,
/// and the aggregate could never be loaded or changed again.
#[test]
fn an_event_that_does_not_read_back_is_refused_and_nothing_is_written() {
    for b in backends() {
        let meters: Repository<Meter, &dyn EventStore> = Repository::new(&*b.store);
        meters.execute("m-1", &1.5, 1).expect("a number");
        for bad in [f64::NAN, f64::INFINITY] {
            match meters.execute("m-1", &bad, 1) {
                Err(AggregateError::Decode { reason, .. }) => {
                    assert!(reason.contains("read back"), "{}: {reason}", b.name)
                }
                other => panic!("{}: {bad} gave {:?}", b.name, other.map(|_| ())),
            }
        }
        assert_eq!(
            b.store.stream_version("meter-m-1").unwrap(),
            1,
            "{}",
            b.name
        );
        assert_eq!(meters.load("m-1").expect("loads").state.total, 1.5);
    }
}
