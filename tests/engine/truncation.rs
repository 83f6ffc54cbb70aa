//! Cutting the newest segment at every byte of its last three records, and damage in its middle.

use crate::support::*;
use eventfile::{Error, ExpectedVersion::*, NewEvent, StreamAppend};
use serde_json::json;
use std::path::Path;

/// Batches: (stream, events). The last three records are a two-stream batch and a single event.
fn build(dir: &Path) -> Vec<(u64, u64)> {
    let store = fast_store(dir, 1 << 20);
    let mut batch_ends = Vec::new(); // (last seq of batch, byte end) filled from the file below
    store.append("a", NoStream, [ev("A", 1)]).unwrap();
    store
        .append("b", NoStream, (0..3).map(|i| ev("B", i)))
        .unwrap();
    store.append("a", Exact(1), [ev("A", 2)]).unwrap();
    store
        .append_multi(&[
            StreamAppend::new("a", Exact(2), [ev("A", 3)]),
            StreamAppend::new("c", NoStream, [ev("C", 1)]),
        ])
        .unwrap();
    store.append("b", Exact(3), [ev("B", 4)]).unwrap();
    store.close().unwrap();
    // Byte end of each record line in the segment, and whether it closes a batch.
    let bytes = std::fs::read(newest_segment(dir)).unwrap();
    let mut pos = 0;
    // Line 0 is the header; line n holds seq n.
    for (seq, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        pos += line.len() as u64;
        if seq > 0 {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            if v.get("more").is_none() {
                batch_ends.push((seq as u64, pos));
            }
        }
    }
    batch_ends
}

#[test]
fn cut_at_every_offset_of_the_last_three_records() {
    let src = tempfile::tempdir().unwrap();
    let batch_ends = build(src.path());
    assert_eq!(
        batch_ends.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1, 4, 5, 7, 8]
    );
    let seg = newest_segment(src.path());
    let full = std::fs::read(&seg).unwrap();
    // Start of the third-to-last record (seq 6) = end of the batch ending at seq 5.
    let start = batch_ends[2].1;
    let mut cases = 0;
    for cut in start..=full.len() as u64 {
        let dir = copy_of(src.path());
        // As a crash leaves it: `HEAD` names no more than the batches every cut keeps.
        published_up_to(dir.path(), batch_ends[2].0);
        let seg = newest_segment(dir.path());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let store = small_store(dir.path(), 1 << 20);
        let expect = batch_ends
            .iter()
            .filter(|(_, end)| *end <= cut)
            .map(|b| b.0)
            .max()
            .unwrap();
        let events = all(&store);
        assert_eq!(events.len() as u64, expect, "cut at {cut}");
        assert_gapless(&events);
        // The file was cut back to the last complete batch.
        let kept = batch_ends.iter().find(|b| b.0 == expect).unwrap().1;
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), kept, "cut at {cut}");
        // New appends continue both numberings.
        let v = store.stream_version("a");
        let r = store.append("a", Exact(v), [ev("A", 9)]).unwrap();
        assert_eq!((r.first_seq, r.version), (expect + 1, v + 1));
        drop(store);
        assert!(eventfile::verify(dir.path()).unwrap().is_sound());
        cases += 1;
    }
    assert!(cases > 300, "only {cases} offsets tried");
}

#[test]
fn damage_in_the_middle_of_the_newest_segment_refuses_to_open() {
    let src = tempfile::tempdir().unwrap();
    let batch_ends = build(src.path());
    let seg = newest_segment(src.path());
    // As after a crash: no checkpoint, so recovery scans the whole newest segment. (Behind a
    // checkpoint from a clean close, the covered part is not rescanned; a read of a damaged
    // record there reports it, see query::a_checkpoint_spares_the_rescan_...)
    std::fs::remove_file(seg.with_extension("idx")).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a byte in the record of seq 2 (inside the batch 2..=4); valid records follow.
    let at = batch_ends[0].1 + 10;
    bytes[at as usize] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    match eventfile::Store::open(src.path()) {
        Err(Error::Corrupt {
            path,
            offset,
            reason,
        }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, batch_ends[0].1);
            assert!(reason.contains("valid record follows"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was truncated.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    let report = eventfile::verify(src.path()).unwrap();
    assert!(!report.is_sound());
    assert_eq!(report.problems[0].offset, batch_ends[0].1);
}

/// Damage to the last batch that `HEAD` names, with nothing valid after it, looks like a torn
/// tail; but `HEAD` names only synced events, so they were acknowledged. The writer's open
/// refuses instead of cutting them (before, it cut them without a word, wrote `HEAD` lower and
/// gave their seqs to new events, which readers that had applied the old ones never saw), and
/// says how to accept the loss: removing `HEAD`.
#[test]
fn a_writer_never_cuts_published_events() {
    let src = tempfile::tempdir().unwrap();
    let batch_ends = build(src.path());
    let seg = newest_segment(src.path());
    std::fs::remove_file(seg.with_extension("idx")).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // A byte of the last record (seq 8, alone in its batch).
    let at = batch_ends[3].1 as usize + 10;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    match eventfile::Store::open(src.path()) {
        Err(Error::Corrupt { path, reason, .. }) => {
            assert_eq!(path, seg);
            assert!(reason.contains("published events up to seq 8"), "{reason}");
            assert!(reason.contains("remove its HEAD file"), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
    assert!(!eventfile::verify(src.path()).unwrap().is_sound());
    // The operator accepts the loss.
    std::fs::remove_file(src.path().join("HEAD")).unwrap();
    let store = small_store(src.path(), 1 << 20);
    assert_eq!(store.head_seq(), 7);
    drop(store);
    assert!(eventfile::verify(src.path()).unwrap().is_sound());
}

#[test]
fn garbage_after_the_last_batch_is_a_torn_tail() {
    let src = tempfile::tempdir().unwrap();
    build(src.path());
    let seg = newest_segment(src.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 5000]).unwrap();
    std::io::Write::write_all(&mut f, b"\n{\"seq\":9}\n").unwrap();
    drop(f);
    let store = small_store(src.path(), 1 << 20);
    assert_eq!(store.head_seq(), 8);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn a_torn_header_of_a_fresh_segment_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    let n = fill_until_segments(&store, dir.path(), 3);
    store.close().unwrap();
    // The newest segment holds exactly one event; make it look like a crash mid-creation.
    let seg = newest_segment(dir.path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(17)
        .unwrap();
    published_up_to(dir.path(), n - 1);
    let store = small_store(dir.path(), 4096);
    assert_eq!(store.head_seq(), n - 1);
    let r = append_one(&store, "s", 0);
    assert_eq!(r.first_seq, n);
    drop(store);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}

/// The newest segment as a power loss during the sync of a batch of several pages can leave it:
/// a later page of the batch reached the disk and an earlier one did not (zeros), with `HEAD`
/// as it was before the batch (`acked`, the events synced before it) or naming the batch
/// (`head_from_after`). Returns the copy, the batch's first seq and its page of zeros.
fn pages_out_of_order(head_from_after: bool) -> (tempfile::TempDir, u64, u64) {
    let (image, first_cut, zeroed, _) = pages_lost(head_from_after, false);
    (image, first_cut, zeroed)
}

/// [`pages_out_of_order`], or with `first_lost` the page holding the batch's start lost
/// instead (it reads as the last sync left it: the events before the batch, then zeros to the
/// page's end), the next one kept. Also returns where the batch starts.
fn pages_lost(head_from_after: bool, first_lost: bool) -> (tempfile::TempDir, u64, u64, u64) {
    let before = tempfile::tempdir().unwrap();
    let batch_ends = build(before.path());
    let acked = batch_ends.last().unwrap().0;
    let after = copy_of(before.path());
    let store = small_store(after.path(), 1 << 20);
    let big = (0..40).map(|i| NewEvent::new("Big", json!({ "i": i, "pad": "x".repeat(200) })));
    store.append("big", NoStream, big).unwrap();
    store.close().unwrap();
    // The image: every file as before the batch, the segment as it is after it, with the
    // second page the batch wrote zeroed.
    let image = copy_of(before.path());
    let seg = newest_segment(image.path());
    let mut bytes = std::fs::read(newest_segment(after.path())).unwrap();
    let start = batch_ends.last().unwrap().1;
    let zeroed = start.div_ceil(4096) * 4096;
    assert!(
        zeroed + 2 * 4096 < bytes.len() as u64,
        "the batch spans pages"
    );
    if first_lost {
        bytes[start as usize..zeroed as usize].fill(0);
    } else {
        bytes[zeroed as usize..zeroed as usize + 4096].fill(0);
    }
    std::fs::write(&seg, &bytes).unwrap();
    if head_from_after {
        std::fs::copy(after.path().join("HEAD"), image.path().join("HEAD")).unwrap();
    }
    (image, acked + 1, zeroed, start)
}

/// The page holding the end of what the last sync covered lost, the next one kept: zeros from
/// the batch's start to the page's end, then the middle of a record. Also a torn tail.
#[test]
fn a_lost_first_page_of_an_unsynced_batch_is_a_torn_tail() {
    let (image, first_cut, _, _) = pages_lost(false, true);
    let seg = newest_segment(image.path());
    let before = std::fs::read(&seg).unwrap();
    let store = small_store(image.path(), 1 << 20);
    assert_eq!(all(&store).len() as u64, first_cut - 1);
    assert!((std::fs::metadata(&seg).unwrap().len() as usize) < before.len());
    drop(store);
    assert!(eventfile::verify(image.path()).unwrap().is_sound());
}

/// A complete line damaged before the zeros (an acknowledged event hit by a flipped bit, then
/// the power lost during the next batch's sync, `HEAD` not yet naming the damaged event):
/// refused, not cut with the unsynced pages.
#[test]
fn a_damaged_line_before_lost_pages_is_still_damage() {
    let (image, first_cut, zeroed, start) = pages_lost(false, true);
    // Whole sectors of zeros after the damaged line (what the rule before took for lost pages).
    assert!(zeroed - start >= 1024, "{start}..{zeroed}");
    let seg = newest_segment(image.path());
    std::fs::remove_file(seg.with_extension("idx")).unwrap();
    published_up_to(image.path(), first_cut - 2);
    let mut bytes = std::fs::read(&seg).unwrap();
    // A byte of the last event before the batch (seq `first_cut - 1`, alone in its batch,
    // ending at `start`, where the zeros of the lost page begin).
    bytes[start as usize - 10] ^= 0x08;
    std::fs::write(&seg, &bytes).unwrap();
    match eventfile::Store::open(image.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, seg),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
}

#[test]
fn a_later_page_of_an_unsynced_batch_without_an_earlier_one_is_a_torn_tail() {
    let (image, first_cut, _) = pages_out_of_order(false);
    let seg = newest_segment(image.path());
    let before = std::fs::read(&seg).unwrap();
    // A reader sees the events published before the batch, and changes nothing.
    let reader = eventfile::OpenOptions::new()
        .read_only(true)
        .open(image.path())
        .unwrap();
    assert_eq!(all(&reader).len() as u64, first_cut - 1);
    drop(reader);
    assert_eq!(std::fs::read(&seg).unwrap(), before);
    let report = eventfile::verify(image.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert!(
        report.notes.iter().any(|n| n.contains("out of order")),
        "{:?}",
        report.notes
    );

    let store = small_store(image.path(), 1 << 20);
    let events = all(&store);
    assert_eq!(events.len() as u64, first_cut - 1);
    assert_gapless(&events);
    assert!(events.iter().all(|e| e.stream != "big"));
    assert!((std::fs::metadata(&seg).unwrap().len() as usize) < before.len());
    let r = store.append("big", NoStream, [ev("Big", 0)]).unwrap();
    assert_eq!(r.first_seq, first_cut);
    drop(store);
    assert!(eventfile::verify(image.path()).unwrap().is_sound());
}

#[test]
fn a_page_of_zeros_before_published_events_is_damage() {
    // `HEAD` names the batch: it was synced, so its bytes were acknowledged, and the page of
    // zeros is damage to them.
    let (image, _, zeroed) = pages_out_of_order(true);
    let seg = newest_segment(image.path());
    std::fs::remove_file(seg.with_extension("idx")).unwrap();
    let before = std::fs::read(&seg).unwrap();
    match eventfile::Store::open(image.path()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert!(offset <= zeroed, "reported at {offset}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing was cut");
}

#[test]
fn damage_past_the_published_head_without_a_page_of_zeros_is_still_damage() {
    let (image, _, zeroed) = pages_out_of_order(false);
    let seg = newest_segment(image.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // Other bytes than zeros in that page: a write that went wrong, not one that never came.
    bytes[zeroed as usize..zeroed as usize + 4096].fill(b'a');
    std::fs::write(&seg, &bytes).unwrap();
    match eventfile::Store::open(image.path()) {
        Err(Error::Corrupt { path, reason, .. }) => {
            assert_eq!(path, seg);
            assert!(reason.contains("valid record follows"), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
}
