//! The store at scale (issue 16): builds EVENTS events in STREAMS streams in a temporary
//! directory (by default 10,000,000 events in 100,000 streams, about 3 GB), then measures in a
//! fresh process, so that nothing of the build is resident:
//!
//! - the clean open (from the checkpoint a clean close leaves), and resident memory after it;
//! - reading one stream, and peak resident memory after opening and reading it;
//! - a type filter matching 1% of the events, and counting it;
//! - durable single appends (fsynced) at that size.
//!
//! `cargo run --release --example scale -- [--events N] [--streams S] [--dir DIR]`
//!
//! With `--dir`, the store is built there (or, if one is there already, only measured) and
//! kept; without, it is built in a temporary directory and removed. Run it at 1,000,000 events
//! in 10,000 streams as well to see the growth: `docs/performance.md` has both.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Query, Read, Store};
use serde_json::json;

mod support;

/// Event types: each matches 1% of the events.
const TYPES: u64 = 100;

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        format!("Type{}", i % TYPES),
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
    .with_tag(format!("customer=c{}", i % 1000))
}

fn stream(i: u64, streams: u64) -> String {
    format!("order-{}", i % streams)
}

/// Appends `events` events round-robin over `streams` streams (so every stream spreads over
/// the whole log, as an application's aggregates do), not fsynced, then closes cleanly.
fn build(dir: &Path, events: u64, streams: u64) {
    let store = OpenOptions::new()
        .durability(Durability::None)
        .open(dir)
        .expect("open the store to build");
    let already = store.head_seq();
    let mut progress = Progress::new(events);
    for i in already..events {
        store
            .append(&stream(i, streams), ExpectedVersion::Any, vec![event(i)])
            .expect("append");
        if i % 10_000 == 0 {
            progress.show(i);
        }
    }
    progress.show(events);
    progress.finish();
    store.close().expect("close");
}

/// A progress bar on stderr when it is a terminal; a line every 10% otherwise.
struct Progress {
    total: u64,
    started: Instant,
    terminal: bool,
    shown: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total: total.max(1),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: u64::MAX,
        }
    }

    fn show(&mut self, done: u64) {
        let percent = done * 100 / self.total;
        let step = if self.terminal { percent } else { percent / 10 };
        if step == self.shown {
            return;
        }
        self.shown = step;
        let elapsed = self.started.elapsed().as_secs_f64();
        let filled = (percent / 5) as usize;
        let line = format!(
            "[{}{}] {percent:>3}% {done} of {} events, {elapsed:.0} s",
            "#".repeat(filled),
            " ".repeat(20 - filled.min(20)),
            self.total
        );
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// Peak resident memory of this process in bytes (Linux's `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// In a fresh process: open the store at `dir` and measure (see the module's documentation).
fn measure(dir: &Path, streams: u64) {
    let started = Instant::now();
    let store = Store::open(dir).expect("open");
    let open = started.elapsed();
    let (anon, file) = support::rss();
    let events = store.head_seq();
    println!("events: {events}, streams: {streams}");
    println!("clean open: {open:?}");
    println!(
        "resident after open: {} (heap {}, mapped files {}); peak during the open {}",
        mib(anon + file),
        mib(anon),
        mib(file),
        mib(peak_rss())
    );

    // One stream, read once cold (what a command that opens, reads and exits does), then
    // warm: the median of 20 reads of other streams.
    let one = |k: u64| {
        let s = stream(k * 7919 % streams, streams);
        let started = Instant::now();
        let got: Vec<_> = store
            .read_stream(&s, Read::forward())
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(got.len() as u64, events / streams);
        started.elapsed()
    };
    let cold = one(0);
    let (anon, file) = support::rss();
    println!(
        "peak resident after opening and reading one stream: {} (now: heap {}, mapped files {})",
        mib(peak_rss()),
        mib(anon),
        mib(file)
    );
    let warm = median((1..=20).map(one).collect());
    println!(
        "one stream of {} events: first read {cold:?}, then median {warm:?}",
        events / streams
    );

    let q = Query::new().event_type("Type7");
    let started = Instant::now();
    let n = store.query(&q).expect("query").count();
    let filter = started.elapsed();
    let started = Instant::now();
    let counted = store.count(&q).expect("count");
    let count = started.elapsed();
    assert_eq!(n as u64, counted);
    println!("type filter, {n} events (streamed): {filter:?}; count: {count:?}");

    let times: Vec<Duration> = (0..50)
        .map(|k| {
            let started = Instant::now();
            store
                .append("scale-probe", ExpectedVersion::Any, vec![event(k)])
                .expect("append");
            started.elapsed()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "durable single append: median {:?}, p98 {:?} (50 appends)",
        median(times),
        sorted[48]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |flag: &str, default: u64| {
        value(flag).map_or(default, |v| {
            v.replace(['_', ','], "")
                .parse()
                .unwrap_or_else(|_| panic!("{flag} takes a number, not `{v}`"))
        })
    };
    let streams = number("--streams", 100_000).max(1);
    if let Some(dir) = value("--measure") {
        return measure(Path::new(&dir), streams);
    }
    let events = number("--events", 10_000_000);
    let tmp;
    let dir: PathBuf = match value("--dir") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("temporary directory");
            tmp.path().to_owned()
        }
    };

    let started = Instant::now();
    build(&dir, events, streams);
    let bytes: u64 = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "built {events} events in {streams} streams ({}) in {:.1} s",
        mib(bytes),
        started.elapsed().as_secs_f64()
    );
    // Whatever the build left in the page cache stays; the measuring process starts empty.
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("--measure")
        .arg(&dir)
        .arg("--streams")
        .arg(streams.to_string())
        .status()
        .expect("measure in a fresh process");
    assert!(status.success(), "the measuring process failed");
}
