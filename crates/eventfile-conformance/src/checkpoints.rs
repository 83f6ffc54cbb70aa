//! Checkpoints: the positions consumers keep beside the events, saved whole, listed in name
//! order, never part of the log.

use eventfile::{ErrorKind, ExpectedVersion::*, MAX_ERROR_BYTES};

use crate::Factory;
use crate::support::*;

/// A checkpoint reads back as saved, with its error until a save clears it, and the listing
/// is in name order.
pub fn checkpoints_round_trip_in_name_order(factory: &Factory<'_>) {
    let store = factory();
    let c = store.checkpoints();
    assert_eq!(c.get("orders").unwrap(), None);
    assert_eq!(c.load("orders").unwrap(), None);
    assert!(c.list().unwrap().is_empty());
    c.save("orders", 7).unwrap();
    c.put("billing.v2", 3, Some("seq 4: no such customer"))
        .unwrap();
    c.save("a_b-c", 0).unwrap();
    let got = c.get("billing.v2").unwrap().expect("saved");
    assert_eq!((got.name.as_str(), got.position), ("billing.v2", 3));
    assert_eq!(got.error.as_deref(), Some("seq 4: no such customer"));
    assert!(got.time > 0, "the time it was saved");
    let names: Vec<(String, u64)> = c
        .list()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.position))
        .collect();
    assert_eq!(
        names,
        [
            ("a_b-c".into(), 0),
            ("billing.v2".into(), 3),
            ("orders".into(), 7)
        ]
    );
    // A save replaces the position and clears the error.
    c.save("billing.v2", 9).unwrap();
    let got = c.get("billing.v2").unwrap().expect("saved");
    assert_eq!((got.position, got.error), (9, None));
    assert!(c.remove("orders").unwrap());
    assert!(!c.remove("orders").unwrap());
    assert_eq!(c.load("orders").unwrap(), None);
    assert_eq!(c.list().unwrap().len(), 2);
}

/// Bad names are refused by every call, and a long error is cut at a character boundary.
pub fn bad_checkpoint_names_are_refused_and_long_errors_cut(factory: &Factory<'_>) {
    let store = factory();
    let c = store.checkpoints();
    for bad in ["", ".hidden", "a/b", "../x", "é", "a b", &"x".repeat(129)] {
        assert_eq!(
            c.save(bad, 1).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(c.get(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(c.remove(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    assert!(c.list().unwrap().is_empty());
    let long = "é".repeat(MAX_ERROR_BYTES); // two bytes each
    c.put("x", 1, Some(&long)).unwrap();
    let kept = c.get("x").unwrap().unwrap().error.unwrap();
    assert_eq!(kept.len(), MAX_ERROR_BYTES);
    assert!(long.starts_with(&kept));
}

/// Saving a checkpoint writes no event: the log and its head stay as they were.
pub fn checkpoints_are_not_events(factory: &Factory<'_>) {
    let store = factory();
    store
        .append("s", NoStream, vec![ev("A", 1), ev("B", 2)])
        .unwrap();
    store.checkpoints().save("reader", 2).unwrap();
    store
        .checkpoints()
        .put("reader", 1, Some("failed"))
        .unwrap();
    assert_eq!(store.head_seq().unwrap(), 2);
    assert_eq!(seqs(&all(&*store)), [1, 2]);
}

/// A backend that counts appends (`metrics`) counts those that wrote, with their events, and
/// neither a retry that replayed nor a refused append; one that counts nothing says zero.
pub fn metrics_count_only_appends_that_wrote(factory: &Factory<'_>) {
    let store = factory();
    let before = store.metrics();
    store
        .append("m", NoStream, vec![ev("A", 1).with_id("m-1")])
        .unwrap();
    store
        .append("m", Exact(1), vec![ev("B", 2), ev("C", 3)])
        .unwrap();
    let retry = store
        .append("m", NoStream, vec![ev("A", 1).with_id("m-1")])
        .unwrap();
    assert!(retry.replayed);
    assert!(store.append("m", NoStream, vec![ev("D", 4)]).is_err());
    let after = store.metrics();
    let counted = (after.appends - before.appends, after.events - before.events);
    assert!(
        counted == (2, 3) || after == eventfile::Metrics::default(),
        "counted {counted:?}"
    );
}
