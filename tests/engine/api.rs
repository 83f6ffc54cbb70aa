//! The typed convenience API and the durability modes.

use crate::support::*;
use eventfile::{Durability, EventType, ExpectedVersion, NewEvent, OpenOptions, Read, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Cart {
    Opened { owner: String },
    Added { sku: String, qty: u32 },
}

impl EventType for Cart {
    fn event_type(&self) -> &str {
        match self {
            Cart::Opened { .. } => "CartOpened",
            Cart::Added { .. } => "ItemAdded",
        }
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Plain {
    a: u8,
}

#[test]
fn typed_events_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let events = [
        Cart::Opened {
            owner: "ann".into(),
        },
        Cart::Added {
            sku: "A-1".into(),
            qty: 2,
        },
    ];
    let new: Vec<NewEvent> = events.iter().map(|e| NewEvent::typed(e).unwrap()).collect();
    store
        .append("cart-1", ExpectedVersion::NoStream, new)
        .unwrap();
    store
        .append(
            "cart-1",
            ExpectedVersion::Exact(2),
            [NewEvent::serialize("Plain", &Plain { a: 7 }).unwrap()],
        )
        .unwrap();
    let got = stream(&store, "cart-1", Read::forward());
    assert_eq!(got[0].event_type, "CartOpened");
    assert_eq!(got[1].event_type, "ItemAdded");
    assert_eq!(got[0].decode::<Cart>().unwrap(), events[0]);
    assert_eq!(got[1].decode::<Cart>().unwrap(), events[1]);
    assert_eq!(got[2].decode::<Plain>().unwrap(), Plain { a: 7 });
    // Decoding into the wrong type is an error, not a panic.
    assert!(matches!(
        got[2].decode::<Cart>(),
        Err(eventfile::Error::Json(_))
    ));
}

#[test]
fn weaker_durability_modes_keep_everything_after_close() {
    for mode in [
        Durability::None,
        Durability::Periodic(std::time::Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = OpenOptions::new()
            .durability(mode)
            .segment_bytes(4096)
            .open(dir.path())
            .unwrap();
        for i in 0..100 {
            let r = append_one(&store, "s", i);
            // Visible as soon as written in these modes.
            assert_eq!(store.head_seq(), r.last_seq);
        }
        store.sync().unwrap();
        store.close().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(all(&store).len(), 100, "{mode:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = OpenOptions::new()
        .durability(Durability::Periodic(std::time::Duration::ZERO))
        .open(dir.path())
        .unwrap_err();
    assert!(matches!(err, eventfile::Error::InvalidInput { .. }));
}

#[test]
fn time_never_decreases_when_the_clock_steps_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(2_000_000_000_000_000));
    let clock = Arc::clone(&now);
    let store = OpenOptions::new()
        .durability(Durability::None)
        .clock(move || clock.load(Ordering::SeqCst))
        .open(dir.path())
        .unwrap();
    let t0 = append_one(&store, "s", 0);
    now.fetch_sub(3_600_000_000, Ordering::SeqCst); // the wall clock steps back an hour
    append_one(&store, "s", 1);
    now.fetch_add(7_200_000_000, Ordering::SeqCst); // and then forward
    append_one(&store, "s", 2);
    store.close().unwrap();
    // Also across a reopen whose clock is behind the last event.
    let behind = Arc::clone(&now);
    let store = OpenOptions::new()
        .clock(move || behind.load(Ordering::SeqCst) - 86_400_000_000)
        .open(dir.path())
        .unwrap();
    append_one(&store, "s", 3);
    let times: Vec<i64> = all(&store).iter().map(|e| e.time).collect();
    assert_eq!(t0.first_seq, 1);
    assert_eq!(times[0], 2_000_000_000_000_000);
    assert_eq!(times[1], times[0], "a step back keeps the last time");
    assert_eq!(times[2], 2_000_003_600_000_000);
    assert_eq!(
        times[3], times[2],
        "a reopen with a clock behind keeps the last time"
    );
}
