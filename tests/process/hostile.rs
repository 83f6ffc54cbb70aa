//! Hostile files: a multi-gigabyte "line", a header from a future format, a directory with
//! strangers in it, a sidecar describing more than its segment. Each is a clear error or a safe
//! repair, with bounded memory.

use std::fs::OpenOptions as FsOpen;
use std::io::Write;
use std::path::Path;

use eventfile::{Error, ExpectedVersion, NewEvent, OpenOptions, Read, Store, verify};
use serde_json::json;

use crate::support::{all, files_with_ext, frame, newest_segment};

/// Peak resident memory of this process so far, in bytes (Linux).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn small(dir: &Path) -> Store {
    OpenOptions::new().segment_bytes(4096).open(dir).unwrap()
}

fn fill(store: &Store, n: u64) {
    for i in 0..n {
        store
            .append(
                "s",
                ExpectedVersion::Any,
                [NewEvent::new("T", json!({ "i": i }))],
            )
            .unwrap();
    }
}

/// Appends a "line" of `len` bytes without a newline: a `{` and a sparse hole.
fn append_giant_line(path: &Path, len: u64) {
    let mut f = FsOpen::new().append(true).open(path).unwrap();
    f.write_all(b"{\"seq\":").unwrap();
    let end = f.metadata().unwrap().len() + len;
    f.set_len(end).unwrap();
}

const GIANT: u64 = 2 << 30;

#[test]
fn a_multi_gigabyte_line_is_cut_from_the_tail_or_refused_with_bounded_memory() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let (acked, sealed) = {
        let store = small(dir.path());
        fill(&store, 200);
        let acked = store.head_seq();
        drop(store);
        (acked, files_with_ext(dir.path(), "jsonl")[1].clone())
    };
    let before = peak_rss();

    // At the end of the newest segment it is a torn tail: a reader ignores it, the writer cuts it.
    let active = newest_segment(dir.path());
    let good_len = std::fs::metadata(&active).unwrap().len();
    append_giant_line(&active, GIANT);
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head_seq(), acked);
    drop(reader);
    let report = verify(dir.path()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == active && p.offset == good_len)
            || report.notes.iter().any(|n| n.contains("torn")),
        "{:?} {:?}",
        report.problems,
        report.notes
    );
    let store = small(dir.path());
    assert_eq!(store.head_seq(), acked);
    assert_eq!(all(&store).len() as u64, acked);
    drop(store);
    assert_eq!(std::fs::metadata(&active).unwrap().len(), good_len);

    // Inside a sealed segment it is damage: the open refuses, naming the file and offset.
    let sealed_len = std::fs::metadata(&sealed).unwrap().len();
    append_giant_line(&sealed, GIANT);
    match Store::open(dir.path()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, sealed);
            assert_eq!(offset, sealed_len);
        }
        other => panic!("open gave {:?}", other.map(|_| ())),
    }
    let report = verify(dir.path()).unwrap();
    assert!(report.problems.iter().any(|p| p.path == sealed));

    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 << 20,
        "peak memory grew by {grew} bytes reading a 2 GiB line"
    );
    eprintln!(
        "hostile: a 2 GiB line cost {} KiB of peak memory",
        grew / 1024
    );
}

#[test]
fn a_header_from_a_future_format_is_refused() {
    // Reopens a store: no child of another test may be holding its lock (main.rs says why).
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    drop(small(dir.path()));
    let seg = newest_segment(dir.path());
    let header = frame(r#"{"eventfile":"segment","format":2,"base_seq":1"#);
    std::fs::write(&seg, header).unwrap();
    match Store::open(dir.path()) {
        Err(Error::UnsupportedFormat {
            found: 2,
            supported: 1,
            path,
        }) => assert_eq!(path, seg),
        other => panic!("open gave {:?}", other.map(|_| ())),
    }
    let config = dir.path().join("eventfile.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let body = text
        .trim_end()
        .rsplit_once(",\"crc\"")
        .unwrap()
        .0
        .replace("\"format\":1", "\"format\":7");
    std::fs::write(&config, frame(&body)).unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(Error::UnsupportedFormat { found: 7, .. })
    ));
}

#[test]
fn strangers_in_the_directory_are_noted_and_left_alone() {
    // Reopens a store: no child of another test may be holding its lock (main.rs says why).
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let store = small(dir.path());
    fill(&store, 100);
    drop(store);
    let strangers = [
        "notes.txt",
        "00000000000000000001.jsonl.bak",
        "12.jsonl",
        "0000000000000000000x.idx",
    ];
    for s in strangers {
        std::fs::write(dir.path().join(s), b"not mine").unwrap();
    }
    std::fs::create_dir(dir.path().join("backup")).unwrap();
    let store = small(dir.path());
    assert_eq!(all(&store).len(), 100);
    store
        .append("s", ExpectedVersion::Any, [NewEvent::new("T", json!(1))])
        .unwrap();
    drop(store);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    for s in strangers.iter().chain(&["backup"]) {
        assert!(
            report.notes.iter().any(|n| n.contains(s)),
            "{s} not noted: {:?}",
            report.notes
        );
        assert!(dir.path().join(s).exists(), "{s} was removed");
    }
}

#[test]
fn a_sidecar_describing_more_than_its_segment_is_rebuilt() {
    // Reopens a store: no child of another test may be holding its lock (main.rs says why).
    let _serial = crate::serial();
    // The first segment's sidecar of a store with larger segments: same base, longer segment.
    let big = tempfile::tempdir().unwrap();
    let store = OpenOptions::new()
        .segment_bytes(64 * 1024)
        .open(big.path())
        .unwrap();
    fill(&store, 600);
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let store = small(dir.path());
    fill(&store, 100);
    let expected = all(&store);
    drop(store);
    std::fs::copy(
        big.path().join("00000000000000000001.idx"),
        dir.path().join("00000000000000000001.idx"),
    )
    .unwrap();
    let store = small(dir.path());
    assert_eq!(all(&store), expected);
    let versions: Vec<u64> = store
        .read_stream("s", Read::backward().limit(3))
        .unwrap()
        .map(|e| e.unwrap().version)
        .collect();
    assert_eq!(versions, [100, 99, 98]);
    drop(store);
    assert!(verify(dir.path()).unwrap().is_sound());
}
