//! CPU time of the appending thread per call of 1,000 events, durable (the default
//! `Durability::Fsync`), for the cases of `benches/append.rs` (issue 16 items 4 and 5): `append`
//! to one stream (of 64 in turn), `append_multi` of 1,000 new streams, `import` continuing one
//! stream, `import` of 1,000 new streams. The requests are built outside the measured part. Read
//! from `/proc/thread-self/schedstat` around each call (Linux), so that a busy machine, which
//! moves wall times and sync times by several times, does not move it much: what an append
//! adds to its `fdatasync`. `bulk_cpu [CALLS]` (default 600, two 64 MiB segments and more;
//! `BULK_CASE=NAME` runs one case).

mod append_batch;

use eventfile::{ExpectedVersion, NewEvent, RecordedEvent, Store, StreamAppend};

fn main() {
    let calls: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(600);
    let events: Vec<NewEvent> = append_batch::order_items(1000);
    let mut out = Vec::new();
    // `BULK_CASE=import_one` (say) runs that case alone, for a profile.
    let only = std::env::var("BULK_CASE").ok();
    for case in ["append", "append_multi_new", "import_one", "import_new"] {
        if only.as_deref().is_some_and(|o| o != case) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let mut cpu = Vec::with_capacity(calls as usize);
        let mut wall = Vec::with_capacity(calls as usize);
        for round in 1..=calls {
            let (parts, recorded) = match case {
                "append" => (Vec::new(), Vec::new()),
                "append_multi_new" => (
                    events
                        .iter()
                        .enumerate()
                        .map(|(k, e)| {
                            StreamAppend::new(
                                format!("order-{round}-{k}"),
                                ExpectedVersion::NoStream,
                                [e.clone()],
                            )
                        })
                        .collect(),
                    Vec::new(),
                ),
                _ => (Vec::new(), recorded(&events, round, case == "import_one")),
            };
            let batch = events.clone();
            let before = thread_cpu_ns();
            let started = std::time::Instant::now();
            match case {
                "append" => {
                    store
                        .append(
                            &format!("order-{}", round % 64),
                            ExpectedVersion::Any,
                            batch,
                        )
                        .expect("append");
                }
                "append_multi_new" => {
                    store.append_multi(&parts).expect("append_multi");
                }
                _ => {
                    store.import(&recorded).expect("import");
                }
            }
            wall.push(started.elapsed().as_secs_f64() * 1e6);
            cpu.push((thread_cpu_ns() - before) as f64 / 1e3);
            drop((parts, recorded));
        }
        let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
        cpu.sort_by(f64::total_cmp);
        wall.sort_by(f64::total_cmp);
        out.push(format!(
            "{case}: mean {mean:.0} µs, median {:.0} µs (wall median {:.0} µs)",
            cpu[cpu.len() / 2],
            wall[wall.len() / 2]
        ));
    }
    println!(
        "CPU of the appending thread per call of 1,000 events: {}",
        out.join("; ")
    );
}

/// `events` as another store recorded them, for the `round`-th import (as `benches/append.rs`
/// makes them): fresh ids, the time now, one stream continuing or a new stream per event.
fn recorded(events: &[NewEvent], round: u64, one_stream: bool) -> Vec<RecordedEvent> {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64;
    let n = events.len() as u64;
    (0..n)
        .zip(events)
        .map(|(k, e)| {
            let (stream, version) = if one_stream {
                ("order-1".to_owned(), (round - 1) * n + k + 1)
            } else {
                (format!("order-{round}-{k}"), 1)
            };
            RecordedEvent {
                seq: 0,
                id: uuid::Uuid::now_v7().to_string(),
                stream,
                version,
                event_type: e.event_type().to_owned(),
                time,
                data: serde_json::value::RawValue::from_string(e.data_json().to_owned())
                    .expect("valid JSON"),
                meta: serde_json::Map::new(),
                tags: Vec::new(),
            }
        })
        .collect()
}

/// Time this thread has run, in nanoseconds (0 where the kernel does not say).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
