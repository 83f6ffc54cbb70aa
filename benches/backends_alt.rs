//! The comparisons issue 12 sets targets on, each side measured in turn with its peer, many
//! rounds, so that the load of a shared machine falls on both sides alike (criterion, in
//! `backends.rs`, runs one group after the other, and its ratios move with the load by more
//! than the gaps they judge).
//!
//! - **append**: one event per `append` on the PostgreSQL backend, one thread, against the
//!   plain baseline of `backends.rs` on the same server (a copy of the `events` table with the
//!   same indexes, seq and version from sequences, no checks): the prepared INSERT in autocommit
//!   (`plain`, one round trip), and the same INSERT in a transaction of its own as an
//!   application writes it (`plain-tx`: `client.transaction()`, `execute`, `commit`, three round
//!   trips). Target: the backend at least 0.8x as fast.
//! - **pg-stream**, **pg-type**, **pg-tag**, **sqlite-stream**, **sqlite-type**, **sqlite-tag**:
//!   `read_stream` of a 100-event stream, a type filter selecting 1,000 of 20,000 events and a
//!   tag filter selecting 400, through the `EventStore` API, against the same query written by
//!   hand in SQL (`peers.rs`). Both sides decode every row into the same `RecordedEvent` with
//!   fallible getters, errors handed back, and collect with `collect::<Result<Vec<_>, _>>()`.
//!   Target: the backend at least as fast (1.0x).
//!
//! Each timing runs one side's operation `n` times in a row (about 10 to 40 ms); a round times
//! every side of every comparison once, the order of the sides rotating from round to round.
//! Measured per operation: wall time, this thread's CPU time (`/proc/thread-self/schedstat`)
//! and, for PostgreSQL, the CPU time of all the server's processes (`/proc/<pid>/schedstat` of
//! every `pg_stat_activity` pid; both sides' statements run there). Printed: each side's
//! medians, the ratio of the medians (peer time / backend time: above 1.0, the backend is
//! faster) and the median and quartiles of the per-round ratios (each round's pair measured
//! seconds apart, so these are the ones least moved by the load).
//!
//! Run: `cargo bench -p eventfile-bench --bench backends_alt [ROUNDS] [FILTER]` (default 30
//! rounds; FILTER: only the comparisons whose name contains it). `-v` prints every round.

mod peers;

use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, Query, Read, RecordedEvent};
use peers::*;

/// CPU time this thread has run (nanoseconds in `/proc/thread-self/schedstat`).
fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

/// The CPU time all of `pids` have run (those gone count nothing).
fn server_cpu(pids: &[i32]) -> Vec<Option<Duration>> {
    pids.iter()
        .map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok()?;
            s.split_whitespace()
                .next()?
                .parse()
                .ok()
                .map(Duration::from_nanos)
        })
        .collect()
}

/// The server's CPU between two readings of the same processes: a process that ended (an
/// autovacuum worker) or began between them is left out, so the sum never goes backwards.
fn server_cpu_since(before: &[Option<Duration>], after: &[Option<Duration>]) -> Duration {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
        .sum()
}

/// The server's processes, if this machine can see them.
fn server_pids(c: &mut postgres::Client) -> Vec<i32> {
    let pids: Vec<i32> = c
        .query("SELECT pid FROM pg_stat_activity", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let visible = pids
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}/schedstat")).exists());
    if visible { pids } else { Vec::new() }
}

/// One side: what it runs once (returning how many events it read or wrote).
struct Side<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> usize + 'a>,
}

/// A comparison: the backend first, then its peers; each operation timed `n` at a time.
struct Comparison<'a> {
    name: &'static str,
    target: f64,
    n: u32,
    /// Whether the server's CPU is measured (PostgreSQL).
    server: bool,
    sides: Vec<Side<'a>>,
}

/// Per operation, per round: wall, thread CPU, server CPU.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    server: Duration,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn least(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 4], v[(v.len() * 3) / 4])
}

fn micros(d: f64) -> String {
    if d >= 1000.0 {
        format!("{:.2} ms", d / 1000.0)
    } else {
        format!("{d:.0} µs")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn collected(it: eventfile::Result<eventfile::EventIter>) -> usize {
    let got: Vec<RecordedEvent> = it.unwrap().collect::<Result<_, _>>().unwrap();
    got.len()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut rounds = 30usize;
    let mut filter = String::new();
    let mut verbose = false;
    for a in args.by_ref() {
        if a == "-v" {
            verbose = true;
        } else if let Ok(n) = a.parse() {
            rounds = n;
        } else {
            filter = a;
        }
    }
    println!("load average at the start: {}", loadavg());

    // The stores the queries read (filled alike), and the ones the appends write.
    let queried = Stores::new("alt_query");
    for (_, store) in &queried.list {
        fill(&**store);
    }
    let appended = Stores::new("alt_append");
    let store_of = |stores: &Stores, name: &str| -> std::sync::Arc<dyn EventStore> {
        stores
            .list
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| std::sync::Arc::clone(s))
            .unwrap()
    };

    let lite = rusqlite::Connection::open(queried.dir.path().join("events.db")).unwrap();
    let lite_sql = sqlite_sql();
    let lite_store = store_of(&queried, "sqlite");

    // The PostgreSQL clients: the hand queries', the autocommit INSERT's, the transaction's.
    let pg_clients = queried.pg.as_ref().map(|(url, options)| {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path TO {}", options.schema_name()))
            .unwrap();
        // What autovacuum would do soon after the fill, done now (as in `backends.rs`).
        c.batch_execute("VACUUM ANALYZE").unwrap();
        let statements = pg_sql().map(|sql| c.prepare(&sql).unwrap());
        let (_, append_options) = appended.pg.as_ref().unwrap();
        let table = plain_table(url, append_options.schema_name());
        let mut auto = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let mut tx = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let auto_insert = plain_statement(&mut auto, &table, "plain");
        let tx_insert = plain_statement(&mut tx, &table, "plain-tx");
        (
            url.clone(),
            table,
            std::cell::RefCell::new(c),
            statements,
            std::cell::RefCell::new((auto, auto_insert)),
            std::cell::RefCell::new((tx, tx_insert)),
        )
    });
    let mut comparisons: Vec<Comparison<'_>> = Vec::new();
    if let Some((_, _, hand, statements, auto, tx)) = pg_clients.as_ref() {
        let pg_store = store_of(&queried, "postgres");
        let pg_append = store_of(&appended, "postgres");
        let mut i = 0u64;
        let mut j = 0u64;
        let mut k = 0u64;
        comparisons.push(Comparison {
            name: "append",
            target: 0.8,
            n: 40,
            server: true,
            sides: vec![
                Side {
                    name: "postgres",
                    run: Box::new(move || {
                        i += 1;
                        pg_append
                            .append("backend", ExpectedVersion::Any, vec![event(i)])
                            .unwrap();
                        1
                    }),
                },
                Side {
                    name: "plain",
                    run: Box::new(move || {
                        j += 1;
                        let (c, insert) = &mut *auto.borrow_mut();
                        plain_insert(c, insert, &event(j));
                        1
                    }),
                },
                Side {
                    name: "plain-tx",
                    run: Box::new(move || {
                        k += 1;
                        let (c, insert) = &mut *tx.borrow_mut();
                        plain_insert_tx(c, insert, &event(k));
                        1
                    }),
                },
            ],
        });
        let reads: [(&'static str, u32, usize, &'static str); 3] = [
            ("pg-stream", 40, 0, STREAM),
            ("pg-type", 8, 1, TYPE),
            ("pg-tag", 16, 2, TAG),
        ];
        for (name, n, at, arg) in reads {
            let store = std::sync::Arc::clone(&pg_store);
            let statement = statements[at].clone();
            comparisons.push(Comparison {
                name,
                target: 1.0,
                n,
                server: true,
                sides: vec![
                    Side {
                        name: "postgres",
                        run: Box::new(move || {
                            collected(match at {
                                0 => store.read_stream(STREAM, Read::forward()),
                                1 => store.query(&Query::new().event_type(TYPE)),
                                _ => store.query(&Query::new().tag(TAG)),
                            })
                        }),
                    },
                    Side {
                        name: "hand SQL",
                        run: Box::new(move || {
                            pg_events(&mut hand.borrow_mut(), &statement, arg, at == 0)
                                .unwrap()
                                .len()
                        }),
                    },
                ],
            });
        }
    }
    let reads: [(&'static str, u32, usize, &'static str); 3] = [
        ("sqlite-stream", 100, 0, STREAM),
        ("sqlite-type", 10, 1, TYPE),
        ("sqlite-tag", 25, 2, TAG),
    ];
    for (name, n, at, arg) in reads {
        let store = std::sync::Arc::clone(&lite_store);
        let (lite, sql) = (&lite, &lite_sql[at]);
        comparisons.push(Comparison {
            name,
            target: 1.0,
            n,
            server: false,
            sides: vec![
                Side {
                    name: "sqlite",
                    run: Box::new(move || {
                        collected(match at {
                            0 => store.read_stream(STREAM, Read::forward()),
                            1 => store.query(&Query::new().event_type(TYPE)),
                            _ => store.query(&Query::new().tag(TAG)),
                        })
                    }),
                },
                Side {
                    name: "hand SQL",
                    run: Box::new(move || sqlite_events(lite, sql, arg, at == 0).unwrap().len()),
                },
            ],
        });
    }
    comparisons.retain(|c| c.name.contains(&filter));

    // Every side once, untimed (caches, prepared statements, connections), checking that the
    // sides of a comparison give as many events.
    for c in &mut comparisons {
        let counts: Vec<usize> = c.sides.iter_mut().map(|s| (s.run)()).collect();
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "{}: the sides disagree: {counts:?}",
            c.name
        );
    }

    let mut samples: Vec<Vec<Vec<Sample>>> = comparisons
        .iter()
        .map(|c| vec![Vec::new(); c.sides.len()])
        .collect();
    // The server's processes, the pool's connections included (made by the pass above), again
    // each round (outside the timings).
    let refresh = |pids: &mut Vec<i32>| {
        if let Some((_, _, hand, ..)) = &pg_clients {
            *pids = server_pids(&mut hand.borrow_mut());
        }
    };
    let mut pg_pids = Vec::new();
    for round in 0..rounds {
        refresh(&mut pg_pids);
        for (ci, c) in comparisons.iter_mut().enumerate() {
            let sides = c.sides.len();
            for step in 0..sides {
                let si = (round + step) % sides;
                let side = &mut c.sides[si];
                let (w, t) = (Instant::now(), cpu());
                let s = if c.server {
                    server_cpu(&pg_pids)
                } else {
                    Vec::new()
                };
                for _ in 0..c.n {
                    (side.run)();
                }
                let sample = Sample {
                    wall: w.elapsed() / c.n,
                    cpu: (cpu() - t) / c.n,
                    server: if c.server {
                        server_cpu_since(&s, &server_cpu(&pg_pids)) / c.n
                    } else {
                        Duration::ZERO
                    },
                };
                if verbose {
                    eprintln!(
                        "round {round} {} {}: wall {:?} cpu {:?} server {:?}",
                        c.name, side.name, sample.wall, sample.cpu, sample.server
                    );
                }
                samples[ci][si].push(sample);
            }
        }
    }

    println!("load average at the end: {}", loadavg());
    println!(
        "{rounds} rounds; ratio = peer time / backend time (above 1.0: the backend is faster)"
    );
    for (ci, c) in comparisons.iter().enumerate() {
        let us = |si: usize, f: fn(&Sample) -> Duration| -> Vec<f64> {
            samples[ci][si]
                .iter()
                .map(|s| f(s).as_secs_f64() * 1e6)
                .collect()
        };
        let wall = |s: &Sample| s.wall;
        let thread = |s: &Sample| s.cpu;
        let server = |s: &Sample| s.server;
        let b = (
            median(us(0, wall)),
            median(us(0, thread)),
            median(us(0, server)),
        );
        print!(
            "{}: {} wall {} (least {}), cpu {}",
            c.name,
            c.sides[0].name,
            micros(b.0),
            micros(least(us(0, wall))),
            micros(b.1)
        );
        if c.server && !pg_pids.is_empty() {
            print!(", server cpu {}", micros(b.2));
        }
        println!();
        for si in 1..c.sides.len() {
            let p = (
                median(us(si, wall)),
                median(us(si, thread)),
                median(us(si, server)),
            );
            let paired: Vec<f64> = us(si, wall)
                .iter()
                .zip(us(0, wall))
                .map(|(p, b)| p / b)
                .collect();
            let (q1, q3) = quartiles(paired.clone());
            let r = median(paired);
            print!(
                "  vs {}: wall {} (least {}), cpu {}",
                c.sides[si].name,
                micros(p.0),
                micros(least(us(si, wall))),
                micros(p.1)
            );
            if c.server && !pg_pids.is_empty() {
                print!(", server cpu {}", micros(p.2));
            }
            println!();
            print!(
                "    ratio {:.2}x (medians), per round {r:.2}x (quartiles {q1:.2}-{q3:.2}); cpu {:.2}x",
                p.0 / b.0,
                p.1 / b.1
            );
            if c.server && !pg_pids.is_empty() {
                print!(", server cpu {:.2}x", p.2 / b.2);
            }
            println!(
                "; target {:.1}x: {}",
                c.target,
                if r >= c.target { "met" } else { "missed" }
            );
        }
    }
    drop(comparisons);
    if let Some((url, table, ..)) = &pg_clients {
        drop_plain_table(url, table);
    }
}
