//! A store of many sealed segments: built, opened, read and verified, with the time each step
//! takes, the resident memory, and how many memory maps the process holds.
//! `cargo run --release --example many_segments -- [SEGMENTS] [DIR]` (default 100,000 segments,
//! in a temporary directory).
//!
//! Why: a store that mapped every sealed segment and its sidecar at open could not be opened past
//! about 32,700 segments (two maps each, and Linux allows a process `vm.max_map_count` maps,
//! 65,530 by default). Sealed segments were then mapped on demand, at most
//! `OpenOptions::max_mapped_segments` at once; since issue 16 they are read with `pread` and not
//! mapped at all (at most that many open, two files each, default 256). This run shows a store
//! well past the old limit working, and the process's map count staying bounded.
//!
//! The store has 4096-byte segments (the smallest allowed) and `Durability::None`; every append
//! is one batch that fills a segment, so each append seals the segment before it. A roll still
//! syncs the segment and writes its sidecar atomically, which is most of the build's time. With
//! DIR, the store is kept there: a second run with the same DIR skips (or finishes) the build and
//! measures again. Measurements run in a fresh process, so nothing of the build is resident.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use eventfile::{
    Durability, ExpectedVersion, NewEvent, OpenOptions, Query, Read, Store, StreamAppend, verify,
};
use serde_json::json;

mod support;

use support::rss;

/// The smallest segment size a store accepts.
const SEGMENT_BYTES: u64 = 4096;
/// The streams every batch appends to.
const STREAMS: usize = 4;
/// The default of `OpenOptions::max_mapped_segments`.
const MAX_MAPPED: usize = 256;
/// The type of the first event of every batch: counted with a type query.
const MARK: &str = "Marked";

fn stream(s: usize) -> String {
    format!("s-{s}")
}

/// One batch of `events` small events, spread over the streams; the first is a [`MARK`].
fn batch(events: usize) -> Vec<StreamAppend> {
    (0..STREAMS)
        .map(|s| {
            let n = events / STREAMS + usize::from(s < events % STREAMS);
            let events = (0..n).map(|i| {
                let t = if s == 0 && i == 0 { MARK } else { "Ticked" };
                NewEvent::new(t, json!({ "i": i }))
            });
            StreamAppend::new(stream(s), ExpectedVersion::Any, events)
        })
        .filter(|a| !a.events.is_empty())
        .collect()
}

/// Names in `dir` ending in `.ext`.
fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("list the store")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
        })
        .count()
}

/// Sealed segments: all but the newest (active) one.
fn sealed_segments(dir: &Path) -> usize {
    count_files(dir, "jsonl").saturating_sub(1)
}

/// How many events a batch can hold and still fit one segment, measured on a scratch
/// store: the encoding is the store's business, so ask it rather than guess.
fn events_per_batch() -> usize {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::None)
        .open(scratch.path())
        .expect("scratch store");
    let segment = scratch.path().join(format!("{:020}.jsonl", 1));
    let header = std::fs::metadata(&segment).expect("segment").len();
    const PROBE: usize = 4 * STREAMS;
    store.append_multi(&batch(PROBE)).expect("probe append");
    let per_event = (std::fs::metadata(&segment).expect("segment").len() - header) / PROBE as u64;
    // Room for seqs and versions growing by a few digits over the run.
    ((SEGMENT_BYTES - header) / (per_event + 16)).max(1) as usize
}

/// Appends until the store in `dir` has `target` sealed segments. Returns the segments this run
/// added and the time it took.
fn build(dir: &Path, target: usize) -> (usize, Duration) {
    let start_sealed = if dir.join("eventfile.json").exists() {
        sealed_segments(dir)
    } else {
        0
    };
    if start_sealed >= target {
        println!("{dir:?} already holds {start_sealed} sealed segments: nothing to build");
        return (0, Duration::ZERO);
    }
    let per_batch = events_per_batch();
    println!(
        "building {target} sealed segments of {SEGMENT_BYTES} bytes in {dir:?}: \
         batches of {per_batch} events in {STREAMS} streams, one per segment"
    );
    let started = Instant::now();
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::None)
        .open(dir)
        .expect("open the store to build");
    let batch = batch(per_batch);
    let mut sealed = start_sealed;
    let mut next_report = (sealed / 10_000 + 1) * 10_000;
    // Every append but the first into an empty segment seals one: count, then check the files.
    while sealed < target {
        for _ in 0..target - sealed {
            store.append_multi(&batch).expect("append");
            sealed += 1;
            if sealed >= next_report {
                let secs = started.elapsed().as_secs_f64();
                let rate = (sealed - start_sealed) as f64 / secs;
                println!(
                    "{sealed:>7} segments, {:>6.1} s, {rate:.0} segments/s, about {:.0} s to go",
                    secs,
                    (target - sealed) as f64 / rate
                );
                next_report += 10_000;
            }
        }
        sealed = sealed_segments(dir);
    }
    store.close().expect("close");
    let took = started.elapsed();
    println!(
        "built {} sealed segments ({} events) in {took:.1?}",
        sealed - start_sealed,
        (sealed - start_sealed) * per_batch
    );
    (sealed - start_sealed, took)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--measure") => {
            let built = args[3].parse().expect("segments built");
            let secs = args[4].parse().expect("build seconds");
            return measure(Path::new(&args[2]), built, secs);
        }
        Some("--unbounded") => return unbounded(Path::new(&args[2])),
        _ => {}
    }
    let target: usize = args
        .get(1)
        .map(|a| a.parse().expect("SEGMENTS: a number"))
        .unwrap_or(100_000);
    let temp;
    let dir: PathBuf = match args.get(2) {
        Some(d) => PathBuf::from(d),
        None => {
            temp = tempfile::tempdir().expect("temporary directory");
            temp.path().join("store")
        }
    };
    let run = Instant::now();
    let (built, took) = build(&dir, target);
    // Measure in a fresh process, so the allocator and page tables hold nothing from building.
    let status = Command::new(std::env::current_exe().expect("this program"))
        .arg("--measure")
        .arg(&dir)
        .arg(built.to_string())
        .arg(took.as_secs_f64().to_string())
        .status()
        .expect("run the measurement");
    assert!(status.success(), "measurement failed: {status}");
    println!(
        "\nthe whole run, build and measurements: {:.1?}",
        run.elapsed()
    );
}

/// A line of `/proc/self/status`, in KiB.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// This process's memory maps: (those of files in `dir`, all).
fn maps(dir: &Path) -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let prefix = format!("{}/", dir.display());
    let store = maps.lines().filter(|l| l.contains(&prefix)).count();
    (store, maps.lines().count())
}

fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The figures, in the order they are printed.
struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, figure: impl Into<String>) {
        let (what, figure) = (what.into(), figure.into());
        println!("  {what}: {figure}");
        self.0.push((what, figure));
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn kib_mib(kib: u64) -> String {
    mib(kib * 1024)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn measure(dir: &Path, built: u64, build_secs: f64) {
    let dir = dir.canonicalize().expect("store directory");
    let sealed = sealed_segments(&dir) as u64;
    let disk: u64 = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mut t = Table(Vec::new());
    println!("measuring {dir:?}:");
    t.row("sealed segments", thousands(sealed));
    t.row("bytes in the store's files", mib(disk));
    if built > 0 {
        t.row(
            format!(
                "build: {} segments appended (no fsync but at rolls)",
                thousands(built)
            ),
            format!(
                "{build_secs:.1} s ({:.0} segments/s)",
                built as f64 / build_secs
            ),
        );
    }

    // Open.
    let before = rss();
    let started = Instant::now();
    let store = Store::open(&dir).expect("open");
    let open = started.elapsed();
    let after = rss();
    let mut max_maps = maps(&dir);
    t.row("Store::open", format!("{open:.2?}"));
    t.row(
        "resident after open: heap (RssAnon) / mapped files (RssFile)",
        format!(
            "+{} / +{}",
            mib(after.0.saturating_sub(before.0)),
            mib(after.1.saturating_sub(before.1))
        ),
    );
    t.row(
        "VmRSS / VmHWM (peak) after open",
        format!(
            "{} / {}",
            kib_mib(status_kib("VmRSS:")),
            kib_mib(status_kib("VmHWM:"))
        ),
    );
    t.row(
        "maps of store files after open (all maps of the process)",
        format!("{} ({})", max_maps.0, max_maps.1),
    );
    let head = store.head_seq();

    // Every event, in order.
    let started = Instant::now();
    let (mut n, mut marks) = (0u64, 0u64);
    for e in store.read_all(Read::forward()).expect("read_all") {
        let e = e.expect("event");
        n += 1;
        assert_eq!(e.seq, n, "seqs must be gapless from 1");
        marks += u64::from(e.event_type == MARK);
        if n % 100_000 == 0 {
            let m = maps(&dir);
            max_maps = (max_maps.0.max(m.0), max_maps.1.max(m.1));
        }
    }
    let read_all = started.elapsed();
    assert_eq!(n, head, "read_all must reach the head");
    t.row(
        "read_all (seqs checked gapless from 1)",
        format!(
            "{} events in {read_all:.2?} ({:.2} µs per event)",
            thousands(n),
            read_all.as_secs_f64() * 1e6 / n as f64
        ),
    );

    // One stream, which every segment holds part of.
    let started = Instant::now();
    let mut v = 0u64;
    for e in store
        .read_stream(&stream(1), Read::forward())
        .expect("read_stream")
    {
        v += 1;
        assert_eq!(
            e.expect("event").version,
            v,
            "versions must be gapless from 1"
        );
    }
    let read_stream = started.elapsed();
    assert_eq!(v, store.stream_version(&stream(1)));
    let m = maps(&dir);
    max_maps = (max_maps.0.max(m.0), max_maps.1.max(m.1));
    t.row(
        format!("read_stream `{}` (versions checked)", stream(1)),
        format!("{} events in {read_stream:.2?}", thousands(v)),
    );

    // A count from the indexes only.
    let started = Instant::now();
    let counted = store.count(&Query::new().event_type(MARK)).expect("count");
    let count = started.elapsed();
    assert_eq!(counted, marks, "count must agree with read_all");
    t.row(
        format!("count of type `{MARK}` (agrees with read_all)"),
        format!("{} in {count:.2?}", thousands(counted)),
    );

    // One durable append (Store::open syncs every append).
    let started = Instant::now();
    let r = store
        .append(
            &stream(0),
            ExpectedVersion::Any,
            [NewEvent::new("Ticked", json!({"i": 0}))],
        )
        .expect("append");
    let append = started.elapsed();
    assert_eq!(r.first_seq, head + 1);
    t.row("append of one event, fsynced", format!("{append:.2?}"));
    t.row(
        "VmHWM (peak) after the reads",
        kib_mib(status_kib("VmHWM:")),
    );
    drop(store);

    // Verify reads every record of every segment.
    let started = Instant::now();
    let report = verify(&dir).expect("verify");
    let verified = started.elapsed();
    assert!(
        report.is_sound(),
        "verify found problems: {:?}",
        report.problems
    );
    assert_eq!(report.events, head + 1);
    t.row(
        "eventfile::verify (sound)",
        format!(
            "{} segments, {} events in {verified:.2?}",
            thousands(report.segments as u64),
            thousands(report.events)
        ),
    );

    // A read-only open and the last 1,000 events.
    let started = Instant::now();
    let reader = Store::open_read_only(&dir).expect("read-only open");
    let ro_open = started.elapsed();
    t.row("Store::open_read_only", format!("{ro_open:.2?}"));
    let started = Instant::now();
    let mut want = reader.head_seq();
    for e in reader
        .read_all(Read::backward().limit(1000))
        .expect("read last")
    {
        assert_eq!(e.expect("event").seq, want);
        want -= 1;
    }
    let last = started.elapsed();
    assert_eq!(reader.head_seq() - want, reader.head_seq().min(1000));
    let m = maps(&dir);
    max_maps = (max_maps.0.max(m.0), max_maps.1.max(m.1));
    t.row(
        "read of the last 1,000 events (read-only)",
        format!("{last:.2?}"),
    );
    drop(reader);

    t.row(
        "most maps of store files seen (all maps of the process)",
        format!("{} ({})", max_maps.0, max_maps.1),
    );
    let bound = 2 * MAX_MAPPED + 8;
    assert!(
        max_maps.0 <= bound,
        "{} maps of store files: unbounded",
        max_maps.0
    );
    t.row(
        "maps of store files had every sealed segment stayed mapped (before the fix)",
        thousands(2 * sealed),
    );
    t.row("vm.max_map_count", max_map_count());

    // The old behaviour, in a child process: map everything (the allocator may fail with it).
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().expect("this program"))
        .arg("--unbounded")
        .arg(&dir)
        .output()
        .expect("run the unbounded open");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = match stdout.lines().last() {
        Some(line) if out.status.success() => line.to_owned(),
        _ => format!("the process died: {}", out.status),
    };
    t.row(
        "open with max_mapped_segments(usize::MAX), as before the fix",
        format!("{result} ({:.2?})", started.elapsed()),
    );

    let command = format!("cargo run --release --example many_segments -- {sealed}");
    println!("\n`{command}`\n");
    println!("| | |\n|---|---|");
    for (what, figure) in &t.0 {
        println!("| {what} | {figure} |");
    }
}

/// Opens read-only with no bound on maps, as every open did before the fix, and says how it went.
fn unbounded(dir: &Path) {
    let opened = OpenOptions::new()
        .read_only(true)
        .max_mapped_segments(usize::MAX)
        .open(dir);
    match opened {
        Ok(store) => {
            let held = maps(dir).0;
            drop(store);
            println!("opened, holding {held} maps of store files");
        }
        Err(e) => println!("failed: {e}"),
    }
}
