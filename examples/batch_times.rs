//! Wall time of each durable 1,000-event append to one stream, how much of the total the
//! appends that rolled a segment took, and the CPU time of the appending thread and of the
//! whole process per batch (Linux: `/proc/thread-self/schedstat`, `/proc/self/stat`):
//! `batch_times [ROUNDS]` (default 1,500 batches, about five 64 MiB segments). A measurement
//! aid for issue 16 item 5 (`docs/performance.md`): on a machine too busy for wall times to
//! settle anything, the appending thread's CPU is what an append adds to its `fdatasync`. Then
//! the raw loop of `benches/append.rs` in the same directory, as many times: the same 1,000
//! lines (the store's first record, repeated) written with one `write` and `fdatasync`ed.

mod append_batch;

use std::time::Instant;

use eventfile::{ExpectedVersion, NewEvent, Store};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1500);
    let events: Vec<NewEvent> = append_batch::order_items(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let segments = || {
        std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            })
            .count()
    };
    let mut times = Vec::with_capacity(rounds);
    let mut rolled = Vec::new();
    let mut before = segments();
    let (thread0, process0) = (thread_cpu_ns(), process_cpu_ns());
    for i in 0..rounds {
        let batch = events.clone();
        let t = Instant::now();
        store
            .append(&format!("order-{}", i % 64), ExpectedVersion::Any, batch)
            .expect("append");
        let us = t.elapsed().as_secs_f64() * 1e6;
        times.push(us);
        if i % 50 == 49 || i + 1 == rounds {
            let now = segments();
            if now != before {
                // The roll happened somewhere in the last 50: take the slowest of them.
                let from = times.len().saturating_sub(50);
                let (k, _) = times[from..]
                    .iter()
                    .enumerate()
                    .fold((0, 0.0f64), |m, (k, &v)| if v > m.1 { (k, v) } else { m });
                rolled.push(times[from + k]);
                before = now;
            }
        }
    }
    let thread = (thread_cpu_ns() - thread0) as f64 / 1e3 / rounds as f64;
    let process = (process_cpu_ns() - process0) as f64 / 1e3 / rounds as f64;
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{rounds} batches: mean {:.0} µs, median {:.0} µs, p90 {:.0} µs; {} rolls, slowest batch of each: {:?} µs ({:.1}% of the total)",
        total / rounds as f64,
        sorted[rounds / 2],
        sorted[rounds * 9 / 10],
        rolled.len(),
        rolled.iter().map(|v| v.round()).collect::<Vec<_>>(),
        rolled.iter().sum::<f64>() * 100.0 / total
    );
    println!("CPU per batch: appending thread {thread:.0} µs, whole process {process:.0} µs");

    let segment = std::fs::read(dir.path().join("00000000000000000001.jsonl")).expect("segment");
    let line = segment
        .split_inclusive(|&b| b == b'\n')
        .nth(1)
        .expect("a record")
        .to_vec();
    let bytes = line.repeat(1000);
    let mut raw = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw.jsonl"))
        .expect("raw file");
    let t = Instant::now();
    for _ in 0..rounds {
        use std::io::Write;
        raw.write_all(&bytes).expect("write");
        raw.sync_data().expect("fdatasync");
    }
    let raw_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    println!(
        "raw loop: mean {raw_us:.0} µs per batch; eventfile vs raw (throughput): {:.2}x",
        raw_us / (total / rounds as f64)
    );
}

/// Time this thread has run, in nanoseconds (0 where the kernel does not say).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Time every thread of the process has run (user and system), in nanoseconds, at the
/// kernel's tick of 10 ms (0 where the kernel does not say).
fn process_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime: fields 14 and 15 of the line, the 12th and 13th after the name.
    f.get(11)
        .zip(f.get(12))
        .map_or(0, |(u, s)| (u + s) * 10_000_000)
}
