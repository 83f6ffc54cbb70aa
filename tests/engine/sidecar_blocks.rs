//! Format-2 sidecars (docs/format.md, "Index sidecar"): checked a block at a time as lookups
//! read them, so that a first read of a stream reads only the blocks it needs; a damaged block
//! is found by the read that meets it, and the read is answered from the index made again from
//! the segment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eventfile::{OpenOptions, Query, Read, RecordedEvent, Store};

use crate::support::*;

const STREAMS: u64 = 2_000;
const EVENTS: u64 = 24_000;

/// A closed store of `EVENTS` events round-robin over `STREAMS` streams, in segments of
/// 1 MiB, three types.
fn closed_store(dir: &Path) {
    let store = fast_store(dir, 1 << 20);
    for i in 0..EVENTS {
        store
            .append(
                &format!("s{}", i % STREAMS),
                eventfile::ExpectedVersion::Any,
                [ev(&format!("T{}", i % 3), i)],
            )
            .unwrap();
    }
    store.close().unwrap();
}

/// The sealed segments' sidecars (not the active segment's checkpoint), oldest first.
fn sealed_sidecars(dir: &Path) -> Vec<PathBuf> {
    let mut idx = files_with_ext(dir, "idx");
    idx.pop();
    assert!(idx.len() >= 2, "{idx:?}");
    idx
}

#[test]
fn a_first_read_of_a_stream_reads_only_the_blocks_it_needs_of_each_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path());
    let sidecars = sealed_sidecars(dir.path());
    let read: Arc<Mutex<HashMap<PathBuf, usize>>> = Arc::default();
    let noted = Arc::clone(&read);
    let note = move |path: &Path, _: u64, len: usize| {
        *noted.lock().unwrap().entry(path.to_owned()).or_default() += len;
    };
    let store = OpenOptions::new()
        .read_only(true)
        .storage(Arc::new(NotingStorage(Arc::new(note))))
        .open(dir.path())
        .unwrap();
    let events = stream(&store, "s17", Read::forward());
    assert_eq!(events.len() as u64, EVENTS / STREAMS);
    let read = read.lock().unwrap();
    for s in &sidecars {
        let size = std::fs::metadata(s).unwrap().len() as usize;
        let got = read.get(s).copied().unwrap_or(0);
        assert!(
            size > 256 << 10,
            "{s:?}: a sidecar worth not reading: {size}"
        );
        // Its header, block sums and sample, the blocks of one lookup and of the stream's
        // postings and positions: a few dozen KiB, where a check of the whole file reads it all.
        assert!(
            got > 0 && got < size / 8,
            "{s:?}: read {got} of {size} bytes"
        );
    }
}

/// Byte offsets inside each part of a format-2 sidecar: positions, times, term offsets,
/// entries, postings, the sample, the block sums, their CRC, the file's CRC.
fn sections(bytes: &[u8]) -> Vec<(&'static str, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let (count, terms, entries_len, postings_len) =
        (u64_at(32), u64_at(40), u64_at(48), u64_at(56));
    let sample_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let times = 64 + count * 4;
    let offsets = times + count * 8;
    let entries = offsets + terms * 4;
    let postings = entries + entries_len;
    let sample = postings + postings_len * 4;
    let sums = sample + sample_len;
    let n = bytes.len();
    vec![
        ("header", 40),
        ("positions", 64 + count * 2),
        ("times", times + count * 4 + 3),
        ("term offsets", offsets + terms * 2),
        ("entries", entries + entries_len / 2),
        ("postings", postings + postings_len * 2),
        ("sample", sample + sample_len / 2),
        ("block sums", sums + (n - 8 - sums) / 2),
        ("their crc", n - 6),
        ("the file's crc", n - 2),
    ]
}

fn everything(
    store: &Store,
) -> (
    Vec<RecordedEvent>,
    Vec<Vec<RecordedEvent>>,
    Vec<RecordedEvent>,
) {
    let streams = (0..STREAMS)
        .step_by(37)
        .map(|s| stream(store, &format!("s{s}"), Read::forward()))
        .collect();
    let mut typed = store
        .query(&Query::new().event_type("T1"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    // A time range: each segment's binary search of its times starts in the middle.
    let log = all(store);
    let (since, until) = (log[log.len() / 3].time, log[log.len() / 2].time);
    typed.extend(
        store
            .query(&Query::new().since(since).until(until))
            .unwrap()
            .map(Result::unwrap),
    );
    (log, streams, typed)
}

/// A byte damaged anywhere in a sealed sidecar, after the close: every read answers exactly
/// what was written. A writer rewrites the sidecar when a read finds a damaged block (or its
/// block sums fail at first use); a read-only handle leaves the file alone. Damage no read
/// meets (the file's own CRC) is left for `verify` to note, never reported as a problem.
#[test]
fn a_damaged_block_anywhere_in_a_sidecar_is_found_and_read_around() {
    let pristine = tempfile::tempdir().unwrap();
    closed_store(pristine.path());
    let expected = everything(&Store::open_read_only(pristine.path()).unwrap());
    let target = sealed_sidecars(pristine.path())[1].clone();
    let name = target.file_name().unwrap().to_owned();
    let good = std::fs::read(&target).unwrap();
    for (section, at) in sections(&good) {
        for read_only in [false, true] {
            let case = format!("{section} (byte {at}), read-only {read_only}");
            let dir = copy_of(pristine.path());
            let file = dir.path().join(&name);
            let mut bad = good.clone();
            bad[at] ^= 0x21;
            std::fs::write(&file, &bad).unwrap();
            let store = OpenOptions::new()
                .read_only(read_only)
                .open(dir.path())
                .unwrap();
            assert!(everything(&store) == expected, "{case}: the reads differ");
            drop(store);
            let now = std::fs::read(&file).unwrap();
            if read_only {
                assert_eq!(now, bad, "{case}: a read-only handle wrote");
                continue;
            }
            let report = eventfile::verify(dir.path()).unwrap();
            assert!(report.problems.is_empty(), "{case}: {:?}", report.problems);
            let noted = report
                .notes
                .iter()
                .any(|n| n.contains(&*name.to_string_lossy()));
            match now == good {
                true => assert!(!noted, "{case}: {:?}", report.notes),
                false => {
                    assert_eq!(now, bad, "{case}: neither left nor rewritten");
                    assert!(noted, "{case}: verify says nothing of it");
                }
            }
            // What the reads above read (or the first use checks) was found and rewritten.
            let read = [
                "header",
                "positions",
                "times",
                "sample",
                "block sums",
                "their crc",
            ];
            if read.contains(&section) {
                assert_eq!(now, good, "{case}: not rewritten");
            }
        }
    }
}

/// The fuzz target's seeds (fuzz/seeds/index_sidecar) open in the mode each is meant for, so
/// that the fuzzer starts from sidecars of both formats that pass every check.
#[test]
fn the_fuzz_seeds_of_both_formats_open() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/index_sidecar");
    let seed = |name: &str| std::fs::read(seeds.join(name)).unwrap();
    let v1 = seed("seed_body");
    assert_eq!(v1[0] & 3, 0);
    let v1 = eventfile::internals::with_index_crc(&v1[1..]);
    assert_eq!(eventfile::internals::probe_index(&v1), Some(5));
    let v2 = seed("seed_v2_body");
    assert_eq!(v2[0] & 3, 2);
    let v2 = eventfile::internals::with_index_sums(&v2[1..]);
    assert_eq!(eventfile::internals::probe_index(&v2), Some(5));
    assert_eq!(eventfile::internals::probe_sealed_index(&v2), Some(5));
    // A format-1 file is read whole-checked only: the pread reader opens it too (its store
    // checks it in full first), and answers the same count.
    assert_eq!(eventfile::internals::probe_sealed_index(&v1), Some(5));
}

/// A segment whose format-2 sidecar was opened (checked only by its header and block sums) and
/// whose file is then replaced by a damaged format-1 one (as an older version's rebuild would
/// write it): the next open of the segment's files checks the format-1 file in full, rebuilds
/// it, and reads what was written.
#[test]
fn a_format_1_sidecar_found_after_a_format_2_one_is_checked_in_full() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path());
    let target = sealed_sidecars(dir.path())[0].clone();
    let good = std::fs::read(&target).unwrap();
    let expected = stream(
        &Store::open_read_only(dir.path()).unwrap(),
        "s17",
        Read::forward(),
    );
    // One segment open at a time: each read of s17 closes and opens every sealed segment.
    let store = OpenOptions::new()
        .max_mapped_segments(1)
        .open(dir.path())
        .unwrap();
    assert_eq!(stream(&store, "s17", Read::forward()), expected);
    // The same index as format 1, its postings zeroed, its CRC left as it was: damaged.
    let mut v1 = sidecar_as_format_1(&good);
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (count, terms) = (u64_at(&v1, 32) as usize, u64_at(&v1, 40) as usize);
    let (entries_len, postings_len) = (u64_at(&v1, 48) as usize, u64_at(&v1, 56) as usize);
    let postings = 64 + count * 12 + terms * 4 + entries_len;
    v1[postings..postings + postings_len * 4].fill(0);
    std::fs::write(&target, &v1).unwrap();
    assert_eq!(stream(&store, "s17", Read::forward()), expected);
    assert_eq!(std::fs::read(&target).unwrap(), good, "rebuilt as format 2");
}

/// A sidecar whose every CRC holds but whose postings name a record past its count (what the
/// fuzz target found in the pread reader, in both formats): the lookup fails with `Corrupt`,
/// no panic, no ordinal out of range handed on.
#[test]
fn postings_out_of_range_under_good_crcs_fail_the_lookup() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/index_sidecar");
    for (seed, reseal) in [
        (
            "seed_body",
            eventfile::internals::with_index_crc as fn(&[u8]) -> Vec<u8>,
        ),
        ("seed_v2_body", eventfile::internals::with_index_sums),
    ] {
        let mut body = std::fs::read(seeds.join(seed)).unwrap()[1..].to_vec();
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (count, terms, entries_len) = (u64_at(&body, 32), u64_at(&body, 40), u64_at(&body, 48));
        let postings = (64 + count * 12 + terms * 4 + entries_len) as usize;
        body[postings..postings + 4].copy_from_slice(&1000u32.to_le_bytes());
        let bytes = reseal(&body);
        // The whole check refuses it; the pread reader opens it, and its lookups fail.
        assert_eq!(eventfile::internals::probe_index(&bytes), None, "{seed}");
        assert_eq!(
            eventfile::internals::probe_sealed_index(&bytes),
            Some(count),
            "{seed}"
        );
    }
}

/// A sidecar whose every sum holds but whose position of a record lies far past its segment's
/// end (positions are not checked against the segment on a format-2 open): a read of the record
/// before it fails with `Corrupt` or is answered rightly, and never reads beyond the data (a
/// debug assertion in the segment reader, or an allocation of up to 4 GiB, before the fix).
#[test]
fn a_position_past_the_segment_under_good_sums_reads_nothing_beyond_it() {
    let pristine = tempfile::tempdir().unwrap();
    closed_store(pristine.path());
    let expected = stream(
        &Store::open_read_only(pristine.path()).unwrap(),
        "s5",
        Read::forward(),
    );
    let dir = copy_of(pristine.path());
    let name = sealed_sidecars(pristine.path())[0]
        .file_name()
        .unwrap()
        .to_owned();
    let target = dir.path().join(name);
    let mut bytes = std::fs::read(&target).unwrap();
    // Where record 6 starts, that is where record 5 (seq 6, stream s5's first event) ends.
    let at = 64 + 6 * 4;
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    recrc_sidecar(&mut bytes);
    std::fs::write(&target, &bytes).unwrap();
    for read_only in [true, false] {
        let store = OpenOptions::new()
            .read_only(read_only)
            .open(dir.path())
            .unwrap();
        let read: Result<Vec<RecordedEvent>, eventfile::Error> = store
            .read_stream("s5", Read::forward())
            .and_then(|r| r.collect());
        match read {
            Ok(events) => assert!(
                events == expected,
                "read-only {read_only}: the read differs"
            ),
            Err(e) => assert_eq!(e.kind(), eventfile::ErrorKind::Corrupt, "{e}"),
        }
        let first = store
            .query(&Query::new().stream("s5").limit(1))
            .and_then(|r| r.collect::<Result<Vec<_>, _>>());
        // Never an answer that leaves the record out in silence.
        match first {
            Ok(events) => assert!(
                events.first() == expected.first(),
                "read-only {read_only}: {events:?}"
            ),
            Err(e) => assert_eq!(e.kind(), eventfile::ErrorKind::Corrupt, "{e}"),
        }
    }
}
