//! `read_all` and the one-stream read of `benches/query.rs`, timed in CPU time as well as wall
//! time, eventfile and SQLite alternately: on a machine shared with other work, a criterion
//! median is the process's share of a core as much as its cost, and CPU time is not. CPU time
//! is given twice: the reading thread's, and the whole process's (which charges eventfile's
//! `read_all` for its read-ahead thread; SQLite reads on the calling thread alone).
//!
//! Both sides do exactly what `benches/query.rs` has them do (the same data set, the same
//! `RecordedEvent`s, dropped by `read_all`, collected into a `Vec` by the stream read).
//!
//! Run: `[EVENTFILE_BENCH_MAP=1] cargo bench -p eventfile-bench --bench read_cpu [ROUNDS]`
//! (default 7; with the variable, eventfile's sealed segments are mapped). Prints each
//! round, then the medians and the ratios of the medians. `EVENTFILE_BENCH_EVENTS` shrinks the
//! data set. `EVENTFILE_BENCH_DIR=DIR` keeps the two stores in `DIR` (built there once, reused by
//! later runs, so that two builds can be alternated quickly); `EVENTFILE_BENCH_ONLY=WORD` runs
//! only the measurements whose name contains `WORD` (e.g. `stream`, for a profile);
//! `EVENTFILE_BENCH_STRIDE=N` reads streams `1, 1 + N, 1 + 2N, ...` in the varied reads (default
//! 7).

mod dataset;

use std::time::{Duration, Instant};

use dataset::*;
use eventfile::{OpenOptions, Read};
use rusqlite::params;

const SELECT: &str = "SELECT seq, id, stream, version, type, time, data, meta, tags FROM events";

/// Stream reads per timing: one takes about 0.2 ms.
const STREAM_READS: u32 = 2000;

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds).
fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

/// CPU time of the whole process, every thread's (those that ended included).
fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the call writes only it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Wall, thread CPU and process CPU time of `f`.
fn timed(f: impl FnOnce() -> usize) -> (Duration, Duration, Duration, usize) {
    let (w, c, p) = (Instant::now(), cpu(), process_cpu());
    let n = f();
    (w.elapsed(), cpu() - c, process_cpu() - p, n)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let events = dataset::events();
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("EVENTFILE_BENCH_DIR").map(std::path::PathBuf::from);
    let root = kept.clone().unwrap_or_else(|| tmp.path().to_owned());
    let dir = root.join("eventfile");
    let db_path = root.join("events.sqlite");
    // A kept store is reused when both sides finished building (the marker is written last).
    let marker = root.join(format!("built-{events}"));
    let db = if kept.is_some() && marker.exists() {
        rusqlite::Connection::open(&db_path).unwrap()
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&db_path);
        std::fs::create_dir_all(&root).unwrap();
        build_eventfile(&dir, events);
        let db = build_sqlite(&db_path, events);
        std::fs::write(&marker, b"").unwrap();
        db
    };
    let only = std::env::var("EVENTFILE_BENCH_ONLY").unwrap_or_default();
    // `EVENTFILE_BENCH_MAP=1`: sealed segments mapped (`OpenOptions::map_sealed_segments`).
    let map = std::env::var_os("EVENTFILE_BENCH_MAP").is_some_and(|v| v == "1");
    let store = OpenOptions::new()
        .read_only(true)
        .map_sealed_segments(map)
        .open(&dir)
        .unwrap();
    eprintln!("sealed segments {}", if map { "mapped" } else { "read" });
    let s = stream(4242);
    let all_sql = format!("{SELECT} ORDER BY seq");
    let stream_sql = format!("{SELECT} WHERE stream = ?1 ORDER BY version");

    // A different stream for each read (what loading aggregates one after another does; the
    // reads above repeat one stream, whose pages each side then holds in its own cache).
    // Streams 1, 8, 15, ... by default: the log is written round-robin, so two streams 7 apart
    // share blocks (about 14 records each) and the second read of a block can be served from a
    // cache. `EVENTFILE_BENCH_STRIDE=29` reads streams that share none.
    let stride: u64 = std::env::var("EVENTFILE_BENCH_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let varied: Vec<String> = (0..u64::from(STREAM_READS))
        .map(|i| stream(i * stride + 1))
        .collect();
    type Run<'a> = Box<dyn Fn() -> usize + 'a>;
    let runs: [(&str, Run<'_>); 6] = [
        (
            "read_all/eventfile",
            Box::new(|| {
                store
                    .read_all(Read::forward())
                    .unwrap()
                    .map(Result::unwrap)
                    .count()
            }),
        ),
        (
            "read_all/sqlite",
            Box::new(|| sqlite_streamed(&db, &all_sql, [])),
        ),
        (
            "read_stream_100/eventfile",
            Box::new(|| {
                (0..STREAM_READS)
                    .map(|_| {
                        store
                            .read_stream(&s, Read::forward())
                            .unwrap()
                            .map(Result::unwrap)
                            .collect::<Vec<_>>()
                            .len()
                    })
                    .sum()
            }),
        ),
        (
            "read_stream_100/sqlite",
            Box::new(|| {
                (0..STREAM_READS)
                    .map(|_| sqlite_events(&db, &stream_sql, params![s]).len())
                    .sum()
            }),
        ),
        (
            "read_streams_varied/eventfile",
            Box::new(|| {
                varied
                    .iter()
                    .map(|s| {
                        store
                            .read_stream(s, Read::forward())
                            .unwrap()
                            .map(Result::unwrap)
                            .collect::<Vec<_>>()
                            .len()
                    })
                    .sum()
            }),
        ),
        (
            "read_streams_varied/sqlite",
            Box::new(|| {
                varied
                    .iter()
                    .map(|s| sqlite_events(&db, &stream_sql, params![s]).len())
                    .sum()
            }),
        ),
    ];
    let mut wall = vec![Vec::new(); runs.len()];
    let mut cpus = vec![Vec::new(); runs.len()];
    let mut procs = vec![Vec::new(); runs.len()];
    // One untimed pass of each, to warm the page cache and the statement cache.
    for (name, f) in &runs {
        if name.contains(&*only) {
            f();
        }
    }
    for round in 0..rounds {
        // The runs come in pairs (eventfile, SQLite); odd rounds run SQLite first, so that
        // neither side always runs on what the other left in the caches.
        let order = (0..runs.len()).map(|i| if round % 2 == 1 { i ^ 1 } else { i });
        for i in order {
            let (name, f) = &runs[i];
            if !name.contains(&*only) {
                continue;
            }
            let (w, c, p, n) = timed(f);
            let per = if name.starts_with("read_stream") {
                STREAM_READS
            } else {
                1
            };
            eprintln!(
                "round {round} {name}: {n} events, wall {:?}, cpu {:?}, process cpu {:?} per read",
                w / per,
                c / per,
                p / per
            );
            wall[i].push(w / per);
            cpus[i].push(c / per);
            procs[i].push(p / per);
        }
    }
    if !only.is_empty() {
        return;
    }
    let wall: Vec<Duration> = wall.iter_mut().map(|v| median(v)).collect();
    let cpus: Vec<Duration> = cpus.iter_mut().map(|v| median(v)).collect();
    let procs: Vec<Duration> = procs.iter_mut().map(|v| median(v)).collect();
    for (i, (name, _)) in runs.iter().enumerate() {
        println!(
            "{name}: median wall {:?}, median cpu {:?}, median process cpu {:?}",
            wall[i], cpus[i], procs[i]
        );
    }
    for (i, what) in [
        (0, "read_all"),
        (2, "read_stream_100"),
        (4, "read_streams_varied"),
    ] {
        println!(
            "{what}: eventfile {:.2}x SQLite in wall time, {:.2}x in the reading thread's CPU \
             time, {:.2}x in the process's",
            wall[i + 1].as_secs_f64() / wall[i].as_secs_f64(),
            cpus[i + 1].as_secs_f64() / cpus[i].as_secs_f64(),
            procs[i + 1].as_secs_f64() / procs[i].as_secs_f64(),
        );
    }
}
