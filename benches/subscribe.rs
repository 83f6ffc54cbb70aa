//! Subscriptions: how soon an appended event reaches a subscriber, how fast a subscription
//! catches up over a long log, and what an idle follower costs.
//!
//! - `subscribe_latency/in_process`: a writer handle and a subscription on it in one process;
//!   the subscriber is its own thread, blocked in the subscription. The bench thread appends one
//!   event (durable: fsync, the default), notes the time the append returned, and waits until
//!   the subscriber thread reports the time it received that event; then the next.
//! - `subscribe_latency/cross_process`: the writer is a child process; the subscriber a
//!   read-only handle in the bench process, following the writer through its `HEAD` file. The
//!   bench tells the child to append one event, the child sends back the time its append
//!   returned, the bench notes when the event came out of the subscription. Times cross the
//!   process boundary as wall-clock nanoseconds ([`wall_ns`]).
//! - `catch_up`: a subscription from 0 over a store of 1,000,000 events (`dataset.rs`, the
//!   query benchmarks' data set), read until it is caught up, next to `read_all` over the same
//!   read-only handle. Both produce every `RecordedEvent`. Then both again, interleaved in one
//!   thread, a chunk of events from each in turn: a ratio that holds on a noisy machine.
//! - `idle_follower`: a read-only handle subscribed and waiting while its writer (a child
//!   process) appends nothing: the CPU time the process's threads use per second of wall time.
//!
//! The child is this bench binary run again with `EVENTFILE_BENCH_ROLE=writer`, not an example
//! binary: it is the same build of the library as the subscriber's, and there is nothing else to
//! build or find (cargo tells a bench where `[[bin]]` targets are, never examples, and this
//! crate has only benches).
//!
//! A latency is measured from the append's return, and an event can reach the subscriber before
//! that (the head is published before the appender's call returns): such latencies are negative.
//! criterion gets, per event, the latency or zero if it is negative, and prints the mean of each
//! sample's events; the raw latency of every event of the run (criterion's warm-up included) is
//! kept, and its percentiles printed after each latency benchmark. Linux only for the CPU
//! figures (`/proc`). Run: `cargo bench -p eventfile-bench --bench subscribe`.
//! `EVENTFILE_BENCH_EVENTS` shrinks the catch-up store for a quick look.

mod dataset;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use eventfile::{ExpectedVersion, NewEvent, Query, Read, RecordedEvent, Store};
use serde_json::json;

/// Set (to `writer`) in the environment of the child process that writes for the cross-process
/// benchmarks; the store's directory is in [`STORE_VAR`].
const ROLE_VAR: &str = "EVENTFILE_BENCH_ROLE";
const STORE_VAR: &str = "EVENTFILE_BENCH_STORE";

/// How long a benchmark waits for an event before it gives up (a lost wake-up, a dead child).
const STUCK: Duration = Duration::from_secs(10);

/// A ~200-byte event, as in the append benchmarks.
fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "ItemAdded",
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
}

/// Nanoseconds since the Unix epoch: the clock both processes read. `Instant` is the same
/// CLOCK_MONOTONIC in every process on Linux, but std offers no way to send one to another
/// process; a step of the wall clock during the run would show as one absurd sample.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// `later - earlier` in nanoseconds, negative when `later` is in fact earlier.
fn signed_ns(later: Instant, earlier: Instant) -> i64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_nanos() as i64,
        None => -((earlier - later).as_nanos() as i64),
    }
}

/// What criterion is given for `iters` events: the sum of their latencies. A latency below zero
/// (the event reached the subscriber before the append had returned to its caller) counts as
/// zero here, and a total of zero as 1 ns (criterion rejects a zero); the printed percentiles
/// keep the sign.
fn total(latencies: &[i64]) -> Duration {
    let ns: u64 = latencies.iter().map(|&ns| ns.max(0) as u64).sum();
    Duration::from_nanos(ns.max(1))
}

/// Prints the percentiles of every event's latency in a run.
fn report(name: &str, mut ns: Vec<i64>) {
    if ns.is_empty() {
        return; // not selected to run
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
    let us = |v: i64| format!("{:.1} µs", v as f64 / 1000.0);
    let early = ns.iter().filter(|&&v| v < 0).count();
    println!(
        "{name}: {} events: p50 {}, p99 {}, p99.9 {}, max {}, min {}; {early} ({:.1}%) reached the \
         subscriber before the append returned",
        ns.len(),
        us(at(0.5)),
        us(at(0.99)),
        us(at(0.999)),
        us(ns[ns.len() - 1]),
        us(ns[0]),
        100.0 * early as f64 / ns.len() as f64,
    );
}

/// Writer and subscriber in one process, the subscriber on its own thread.
fn in_process(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let sub = store.subscribe(&Query::new(), 0).unwrap();
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let subscriber = std::thread::Builder::new()
        .name("subscriber".into())
        .spawn(move || {
            for e in sub {
                let received = Instant::now();
                if tx.send((e.unwrap().seq, received)).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let mut all = Vec::new();
    let mut g = c.benchmark_group("subscribe_latency");
    g.sample_size(50).measurement_time(Duration::from_secs(6));
    g.bench_function("in_process", |b| {
        b.iter_custom(|iters| {
            let mut ns = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let r = store
                    .append("order-1", ExpectedVersion::Any, [event(all.len() as u64)])
                    .unwrap();
                let returned = Instant::now();
                let (seq, received) = rx.recv_timeout(STUCK).expect("the event within 10 s");
                assert_eq!(seq, r.first_seq);
                ns.push(signed_ns(received, returned));
            }
            all.extend_from_slice(&ns);
            total(&ns)
        })
    });
    g.finish();
    report("subscribe_latency/in_process", all);
    // Closing the store ends the subscription.
    drop(store);
    subscriber.join().unwrap();
}

/// The child process that writes for the cross-process benchmarks.
struct Writer {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl Writer {
    /// Starts this bench binary again as a writer of a new store in `dir`, and waits until it
    /// has opened the store and appended its first event.
    fn spawn(dir: &Path) -> Writer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_VAR, "writer")
            .env(STORE_VAR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        let mut w = Writer { child, to, from };
        assert_eq!(w.line(), "ready");
        w
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.from.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Asks for one append; [`Writer::appended`] reads its answer.
    fn append(&mut self) {
        self.to.write_all(b"append\n").unwrap();
        self.to.flush().unwrap();
    }

    /// The seq of the append asked for, and when it returned ([`wall_ns`]).
    fn appended(&mut self) -> (u64, i64) {
        let line = self.line();
        let (seq, at) = line.split_once(' ').expect("`seq time` from the writer");
        (seq.parse().unwrap(), at.parse().unwrap())
    }

    /// Closes its input, which ends it.
    fn stop(self) {
        let Writer { mut child, to, .. } = self;
        drop(to);
        assert!(child.wait().unwrap().success());
    }
}

/// The writer role: opens the store (default durability), appends one event, says `ready`, then
/// appends one event per line read and answers each with `seq time`, `time` taken ([`wall_ns`])
/// as soon as the append returned. Ends when its input closes.
fn writer_role(dir: &Path) {
    let store = Store::open(dir).unwrap();
    store
        .append("order-1", ExpectedVersion::Any, [event(0)])
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        line.unwrap();
        let r = store
            .append("order-1", ExpectedVersion::Any, [event(i as u64 + 1)])
            .unwrap();
        let returned = wall_ns();
        writeln!(out, "{} {returned}", r.first_seq).unwrap();
        out.flush().unwrap();
    }
    store.close().unwrap();
}

/// The writer in a child process, the subscriber a read-only handle in this one.
fn cross_process(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = Writer::spawn(tmp.path());
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let mut sub = reader.subscribe(&Query::new(), reader.head_seq()).unwrap();
    let mut all = Vec::new();
    let mut g = c.benchmark_group("subscribe_latency");
    g.sample_size(50).measurement_time(Duration::from_secs(6));
    g.bench_function("cross_process", |b| {
        b.iter_custom(|iters| {
            let mut ns = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                writer.append();
                let e = sub
                    .next_timeout(STUCK)
                    .unwrap()
                    .expect("the event within 10 s");
                let received = wall_ns();
                let (seq, returned) = writer.appended();
                assert_eq!(e.seq, seq);
                ns.push(received - returned);
            }
            all.extend_from_slice(&ns);
            total(&ns)
        })
    });
    g.finish();
    report("subscribe_latency/cross_process", all);
    drop(sub);
    drop(reader);
    writer.stop();
}

/// A subscription from 0 over the whole log against `read_all`, both producing every event.
fn catch_up(c: &mut Criterion) {
    let events = dataset::events();
    let tmp = tempfile::tempdir().unwrap();
    // Built when a benchmark first needs it: not at all when none of this group is selected.
    let built = std::cell::OnceCell::new();
    let store = || {
        built.get_or_init(|| {
            dataset::build_eventfile_timed(tmp.path(), events);
            Store::open_read_only(tmp.path()).unwrap()
        })
    };
    let mut g = c.benchmark_group("catch_up");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(events));
    let subscription = |store: &Store| {
        let mut sub = store.subscribe(&Query::new(), 0).unwrap();
        let n = sub
            .by_ref()
            .take(events as usize)
            .map(Result::unwrap)
            .count();
        // Caught up: nothing more without waiting.
        assert!(sub.next_timeout(Duration::ZERO).unwrap().is_none());
        assert!(sub.is_caught_up());
        assert_eq!(n as u64, events);
    };
    let read_all = |store: &Store| {
        let n = store
            .read_all(Read::forward())
            .unwrap()
            .map(Result::unwrap)
            .count();
        assert_eq!(n as u64, events);
    };
    // The store is built (once) outside the timed part.
    g.bench_function("subscription", |b| {
        let store = store();
        b.iter(|| subscription(store))
    });
    g.bench_function("read_all", |b| {
        let store = store();
        b.iter(|| read_all(store))
    });
    g.finish();

    let Some(store) = built.get() else {
        return; // not selected to run
    };
    // The two interleaved: one subscription and one read_all from 0, in one thread, taking
    // CHUNK events from each in turn (which goes first alternates) and timing each chunk, until
    // both have read every event. Both do all of their usual work; what the machine does to
    // one (another job, the host), it does to the other within milliseconds, so the ratio
    // holds on a noisy machine where back-to-back passes of a second each differ by 30%.
    let mut ratios = Vec::new();
    for pass in 0..INTERLEAVED_PASSES {
        let mut sub = store.subscribe(&Query::new(), 0).unwrap();
        let mut all = store.read_all(Read::forward()).unwrap();
        let (mut in_sub, mut in_all) = (Duration::ZERO, Duration::ZERO);
        let (mut n_sub, mut n_all) = (0, 0);
        let mut sub_first = true;
        while (n_sub as u64) < events {
            // The subscription would wait for events past the last: never more than are left.
            let n = CHUNK.min(events as usize - n_sub);
            let (a, b) = if sub_first {
                let a = chunk_of(&mut sub, n, &mut in_sub);
                (a, chunk_of(&mut all, n, &mut in_all))
            } else {
                let b = chunk_of(&mut all, n, &mut in_all);
                (chunk_of(&mut sub, n, &mut in_sub), b)
            };
            assert!(a > 0, "the subscription ended early");
            (n_sub, n_all) = (n_sub + a, n_all + b);
            sub_first = !sub_first;
        }
        assert!(sub.next_timeout(Duration::ZERO).unwrap().is_none() && sub.is_caught_up());
        assert_eq!((n_sub as u64, all.next().is_none()), (events, true));
        assert_eq!(n_all as u64, events);
        println!(
            "catch_up interleaved pass {pass}: subscription {:.0} ms, read_all {:.0} ms: the \
             subscription's throughput {:.3}x read_all's",
            in_sub.as_secs_f64() * 1e3,
            in_all.as_secs_f64() * 1e3,
            in_all.as_secs_f64() / in_sub.as_secs_f64(),
        );
        ratios.push(in_all.as_secs_f64() / in_sub.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "catch_up: the subscription's throughput {:.3}x read_all's, the median of \
         {INTERLEAVED_PASSES} interleaved passes",
        ratios[INTERLEAVED_PASSES / 2]
    );
}

/// Reads the next `n` events of `events` (fewer at the end of a read), adding the time it took
/// to `spent`; how many.
fn chunk_of(
    events: &mut dyn Iterator<Item = eventfile::Result<RecordedEvent>>,
    n: usize,
    spent: &mut Duration,
) -> usize {
    let started = Instant::now();
    let n = events.take(n).map(Result::unwrap).count();
    *spent += started.elapsed();
    n
}

/// How many events the interleaved catch-up takes from each side in turn.
const CHUNK: usize = 10_000;
/// How many interleaved catch-ups run after criterion's.
const INTERLEAVED_PASSES: usize = 5;

/// A thread of this process: its id, name, on-CPU nanoseconds and context switches (each
/// time it blocked or was preempted).
struct Thread {
    tid: u64,
    name: String,
    ns: u64,
    switches: u64,
}

/// This process's threads, from `/proc/self/task/*/{comm,schedstat}`: schedstat's first field is
/// the scheduler's count of the thread's time on a CPU, in nanoseconds (exact for a thread not
/// running at that moment: every thread here but the one reading).
fn threads() -> Vec<Thread> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap();
        let path = task.path();
        // A thread that ended meanwhile has no files left.
        let (Ok(name), Ok(stat), Ok(status)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
            std::fs::read_to_string(path.join("status")),
        ) else {
            continue;
        };
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
            .sum();
        threads.push(Thread {
            tid: task.file_name().to_str().unwrap().parse().unwrap(),
            name: name.trim_end().to_owned(),
            ns: stat.split_whitespace().next().unwrap().parse().unwrap(),
            switches,
        });
    }
    threads
}

/// The CPU time each thread used between two looks (a thread started meanwhile counts whole).
fn used(before: &[Thread], after: &[Thread]) -> Vec<Thread> {
    after
        .iter()
        .map(|t| {
            let was = before.iter().find(|b| b.tid == t.tid);
            Thread {
                tid: t.tid,
                name: t.name.clone(),
                ns: t.ns - was.map_or(0, |b| b.ns),
                switches: t.switches - was.map_or(0, |b| b.switches),
            }
        })
        .collect()
}

/// The process's user and system time in clock ticks (USER_HZ, 100 on Linux), from
/// `/proc/self/stat` (fields 14 and 15): a coarse cross-check of [`threads`].
fn process_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name is in parentheses and may hold spaces: count the fields after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// How long one iteration of the idle measurement sleeps.
const IDLE_WINDOW: Duration = Duration::from_millis(500);

/// A read-only handle subscribed and waiting, its writer (a child process) idle: the CPU time
/// this process uses per second of wall time.
fn idle_follower(c: &mut Criterion) {
    if !Path::new("/proc/self/task").exists() {
        println!("idle_follower: skipped, this system has no /proc/self/task");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = Writer::spawn(tmp.path());
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let mut sub = reader.subscribe(&Query::new(), reader.head_seq()).unwrap();
    // The subscriber: blocked in the subscription until one event comes (at the end).
    let subscriber = std::thread::Builder::new()
        .name("subscriber".into())
        .spawn(move || sub.next().map(|e| e.unwrap().seq))
        .unwrap();
    // Let the previous benchmarks' follower threads notice their handles are gone and end.
    std::thread::sleep(Duration::from_millis(1500));
    let (start, ticks0, wall0) = (threads(), process_ticks(), Instant::now());
    let mut g = c.benchmark_group("idle_follower");
    // Each iteration sleeps IDLE_WINDOW on this thread; each sample takes the CPU time every
    // other thread of the process used over its iterations (the follower, the subscriber, any
    // other the library runs; not this one, which measures), scaled to one second: what
    // criterion prints as "time" is their CPU time per second of idle wall time. A sample in
    // which they used none counts 1 ns (criterion rejects a zero). criterion runs this on the
    // main thread, whose id is the process's.
    let me = u64::from(std::process::id());
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    let mut ran = false;
    g.bench_function("cpu_per_idle_second", |b| {
        ran = true;
        b.iter_custom(|iters| {
            let before = threads();
            for _ in 0..iters {
                std::thread::sleep(IDLE_WINDOW);
            }
            let ns: u64 = used(&before, &threads())
                .iter()
                .filter(|t| t.tid != me)
                .map(|t| t.ns)
                .sum();
            Duration::from_nanos(ns.max(1)).mul_f64(1.0 / IDLE_WINDOW.as_secs_f64())
        })
    });
    g.finish();
    if ran {
        print_idle(
            &start,
            &threads(),
            process_ticks() - ticks0,
            wall0.elapsed(),
        );
    }
    // One event ends the subscriber; it must come through.
    writer.append();
    let (seq, _) = writer.appended();
    assert_eq!(subscriber.join().unwrap(), Some(seq));
    drop(reader);
    writer.stop();
}

/// Prints the CPU time each thread used over the whole idle measurement (criterion's analysis
/// between the samples included), as a share of `wall`.
fn print_idle(start: &[Thread], end: &[Thread], ticks: u64, wall: Duration) {
    let me = u64::from(std::process::id());
    let by_thread = used(start, end);
    let pct = |ns: u64| 100.0 * ns as f64 / wall.as_nanos() as f64;
    let all: u64 = by_thread.iter().map(|t| t.ns).sum();
    let threads: Vec<String> = by_thread
        .iter()
        .map(|t| {
            let role = if t.tid == me { " (measuring)" } else { "" };
            format!(
                "{}{role} {:.3} ms ({:.4}%) in {} context switches",
                t.name,
                t.ns as f64 / 1e6,
                pct(t.ns),
                t.switches,
            )
        })
        .collect();
    println!(
        "idle_follower: over {:.1} s of wall time the process used {:.3} ms of CPU, {:.4}% of a \
         core (/proc/self/stat: {ticks} ticks of 10 ms), criterion's analysis included; by \
         thread: {}",
        wall.as_secs_f64(),
        all as f64 / 1e6,
        pct(all),
        threads.join(", "),
    );
}

criterion_group!(benches, in_process, cross_process, idle_follower, catch_up);

/// criterion's `criterion_main!`, after a look at the role: run as the cross-process writer,
/// this binary writes and measures nothing.
fn main() {
    if std::env::var_os(ROLE_VAR).is_some_and(|r| r == "writer") {
        let dir = std::env::var_os(STORE_VAR).expect("EVENTFILE_BENCH_STORE");
        writer_role(Path::new(&dir));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
