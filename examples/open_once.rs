//! One open of a kept store, measured, and nothing written: the open's time and resident
//! memory, then (with `--read STREAM`) one stream read and the peak resident memory after it,
//! then the process exits without closing the store, so that the store's files stay exactly as
//! they were and the same store can be measured again and again (by this build and another,
//! alternately). A writer's clean close rewrites the checkpoint and the summary; this skips it.
//!
//! `cargo run --release --example open_once -- DIR [--read STREAM] [--read-only]
//! [--warm N --streams S]`
//!
//! With `--warm N`, then reads N more streams of a store made by `examples/scale.rs` (`order-K`
//! for K = k * 7919 mod S, k = 1..=N, as `scale` picks them) and prints the median read.
//!
//! Run it in a loop under `perf record` to profile the open alone.

use std::time::Instant;

use eventfile::{OpenOptions, Read};

mod support;

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .expect("usage: open_once DIR [--read STREAM] [--read-only]");
    let read = args
        .iter()
        .position(|a| a == "--read")
        .and_then(|i| args.get(i + 1));
    let read_only = args.iter().any(|a| a == "--read-only");
    let number = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("a number"))
    };
    let (warm, streams) = (
        number("--warm").unwrap_or(0),
        number("--streams").unwrap_or(1),
    );
    let started = Instant::now();
    let store = OpenOptions::new()
        .read_only(read_only)
        .open(dir)
        .expect("open");
    let open = started.elapsed();
    let (anon, file) = support::rss();
    print!(
        "open {:.3} ms; resident {} (heap {}, files {}); peak {}",
        open.as_secs_f64() * 1e3,
        mib(anon + file),
        mib(anon),
        mib(file),
        mib(peak_rss())
    );
    if let Some(s) = read {
        let started = Instant::now();
        let events: Vec<_> = store
            .read_stream(s, Read::forward())
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("read");
        let n = events.len();
        let took = started.elapsed();
        let (anon, file) = support::rss();
        print!(
            "; read {n} events of {s} in {:.3} ms; peak after {} (heap {}, files {})",
            took.as_secs_f64() * 1e3,
            mib(peak_rss()),
            mib(anon),
            mib(file)
        );
    }
    if warm > 0 {
        let mut times: Vec<f64> = (1..=warm)
            .map(|k| {
                let s = format!("order-{}", k * 7919 % streams);
                let started = Instant::now();
                let events: Vec<_> = store
                    .read_stream(&s, Read::forward())
                    .expect("read")
                    .collect::<Result<_, _>>()
                    .expect("read");
                assert!(!events.is_empty(), "{s} has events");
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        print!(
            "; {warm} more streams, median {:.3} ms",
            times[times.len() / 2]
        );
    }
    println!();
    // No close: the files stay as they were (a writer's close rewrites the checkpoint and the
    // summary). The lock goes with the process.
    std::process::exit(0);
}
