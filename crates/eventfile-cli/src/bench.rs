//! `eventfile bench`: durable append throughput and latency on the user's own disk, next to a
//! raw write-and-fdatasync loop on the same disk, so the figures say what the hardware allows.
//!
//! Both run in a scratch directory created beside the store directory (same file system) and
//! removed afterwards. Output: one JSON object per measurement.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventfile::{ExpectedVersion, NewEvent, Store};
use serde::Serialize;
use serde_json::json;

use crate::Failure;

/// A ~200-byte event, as in the repository's benchmarks.
fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "ItemAdded",
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
}

#[derive(Serialize)]
struct Measurement {
    name: &'static str,
    threads: u64,
    batch: u64,
    events: u64,
    seconds: f64,
    events_per_sec: f64,
    /// Latency of one append (one batch), microseconds.
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Throughput as a fraction of the raw loop's.
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_raw: Option<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn measurement(
    name: &'static str,
    threads: u64,
    batch: u64,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) -> Measurement {
    latencies.sort_unstable();
    let events = latencies.len() as u64 * batch;
    Measurement {
        name,
        threads,
        batch,
        events,
        seconds: elapsed.as_secs_f64(),
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        max_us: percentile(&latencies, 1.0),
        vs_raw: None,
    }
}

/// Removes the scratch directory however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bar(len: u64, what: &str) -> Result<indicatif::ProgressBar, Failure> {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:<28} {{bar:40}} {{pos}}/{{len}} {{per_sec}} {{eta}}"
        ))
        .map_err(|e| Failure::Other(e.to_string()))?,
    );
    Ok(bar)
}

/// Runs `appends` appends split over `threads` threads (the first `appends % threads` threads do
/// one more), each with the worker `make(thread)` built before the clock starts; a worker does
/// one append and returns how long its durable part took. Returns the wall time and every
/// append's latency.
fn run_threads<W>(
    what: &str,
    appends: u64,
    threads: u64,
    make: impl Fn(u64) -> Result<W, Failure>,
) -> Result<(Duration, Vec<Duration>), Failure>
where
    W: FnMut(u64) -> Result<Duration, Failure> + Send,
{
    let workers = (0..threads).map(make).collect::<Result<Vec<W>, _>>()?;
    let bar = bar(appends, what)?;
    let started = Instant::now();
    let latencies = std::thread::scope(|s| -> Result<Vec<Duration>, Failure> {
        let handles = (0..threads)
            .zip(workers)
            .map(|(t, mut work)| {
                let bar = &bar;
                let mine = appends / threads + u64::from(t < appends % threads);
                std::thread::Builder::new()
                    .spawn_scoped(s, move || -> Result<Vec<Duration>, Failure> {
                        (0..mine)
                            .map(|i| {
                                let took = work(i)?;
                                bar.inc(1);
                                Ok(took)
                            })
                            .collect()
                    })
                    .map_err(|e| Failure::Other(format!("starting a {what} thread: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut all = Vec::new();
        for h in handles {
            all.push(
                h.join()
                    .map_err(|_| Failure::Other(format!("a {what} thread panicked")))??,
            );
        }
        Ok(all.concat())
    })?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok((elapsed, latencies))
}

/// The raw loop: the same bytes eventfile writes for a batch, one `write` and one `fdatasync`
/// per batch, each thread on its own file.
fn raw_loop(
    dir: &Path,
    appends: u64,
    threads: u64,
    line: &[u8],
    batch: u64,
) -> Result<Measurement, Failure> {
    let bytes: Vec<u8> = line.repeat(batch as usize);
    let io = |e: std::io::Error| Failure::Other(format!("raw loop: {e}"));
    let (elapsed, latencies) = run_threads("raw write + fdatasync", appends, threads, |t| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("raw-{t}.jsonl")))
            .map_err(io)?;
        let bytes = &bytes;
        Ok(move |_| {
            let t0 = Instant::now();
            f.write_all(bytes).map_err(io)?;
            f.sync_data().map_err(io)?;
            Ok(t0.elapsed())
        })
    })?;
    Ok(measurement(
        "raw_write_fdatasync",
        threads,
        batch,
        elapsed,
        latencies,
    ))
}

fn eventfile_appends(
    dir: &Path,
    appends: u64,
    threads: u64,
    batch: u64,
) -> Result<Measurement, Failure> {
    let store = Store::open(dir)?;
    let (elapsed, latencies) = run_threads("eventfile durable append", appends, threads, |t| {
        let store = store.clone();
        Ok(move |i: u64| {
            let events: Vec<NewEvent> = (0..batch).map(|k| event(i * batch + k)).collect();
            let t0 = Instant::now();
            store.append(
                &format!("bench-{t}-{}", i % 16),
                ExpectedVersion::Any,
                events,
            )?;
            Ok(t0.elapsed())
        })
    })?;
    store.close()?;
    Ok(measurement("eventfile", threads, batch, elapsed, latencies))
}

/// The line eventfile writes for one event, so the raw loop writes the same bytes.
fn sample_line(dir: &Path) -> Result<Vec<u8>, Failure> {
    let store = Store::open(dir)?;
    store.append("sample", ExpectedVersion::Any, [event(1)])?;
    store.close()?;
    let seg = std::fs::read(dir.join("00000000000000000001.jsonl"))
        .map_err(|e| Failure::Other(format!("reading the sample: {e}")))?;
    seg.split_inclusive(|&b| b == b'\n')
        .nth(1)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Failure::Other("the sample segment holds no event".into()))
}

/// Runs both measurements. The arguments are checked in `args.rs`: at least one append per
/// thread, at most 1024 threads, and a batch that fits in one segment.
pub fn run(
    store_dir: &Path,
    appends: u64,
    threads: u64,
    batch: u64,
    out: &mut impl std::io::Write,
) -> Result<(), Failure> {
    let parent = match store_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let scratch = Scratch(parent.join(format!(".eventfile-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)
        .map_err(|e| Failure::Other(format!("creating {}: {e}", scratch.0.display())))?;
    eprintln!(
        "eventfile bench: {appends} durable appends of {batch} event(s) from {threads} thread(s), in {}",
        scratch.0.display()
    );
    let line = sample_line(&scratch.0.join("sample"))?;
    let raw = raw_loop(&scratch.0, appends, threads, &line, batch)?;
    let mut ours = eventfile_appends(&scratch.0.join("store"), appends, threads, batch)?;
    ours.vs_raw = Some(ours.events_per_sec / raw.events_per_sec);
    for m in [&raw, &ours] {
        let text = serde_json::to_string(m).map_err(|e| Failure::Other(e.to_string()))?;
        writeln!(out, "{text}")?;
    }
    Ok(())
}
