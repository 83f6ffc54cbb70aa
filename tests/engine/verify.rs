//! `verify` finds every damaged record and names its file and offset.

use crate::support::*;

#[test]
fn a_sound_store_verifies_and_damage_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    for i in 0..100 {
        append_one(&store, &format!("s{}", i % 3), i);
    }
    store.close().unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.events, 100);
    assert_eq!(report.streams, 3);
    assert!(report.segments > 2);

    // Damage two records in the first (sealed) segment.
    let first = dir.path().join("00000000000000000001.jsonl");
    let mut bytes = std::fs::read(&first).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let (r2, r5) = (starts[2], starts[5]);
    bytes[r2 + 15] ^= 0x01;
    bytes[r5 + 40] = b'#';
    std::fs::write(&first, &bytes).unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    let offsets: Vec<u64> = report.problems.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [r2 as u64, r5 as u64], "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.path == first && p.message.contains("crc"))
    );
    assert_eq!(report.events, 98);
}

#[test]
fn unexpected_files_are_noted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    append_one(&store, "s", 1);
    store.close().unwrap();
    std::fs::write(dir.path().join("README.txt"), "hi").unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound());
    assert!(report.notes.iter().any(|n| n.contains("README.txt")));
}
