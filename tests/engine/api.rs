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
