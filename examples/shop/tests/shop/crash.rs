//! A projector killed with SIGKILL while orders are written, restarted each time: at the end
//! the read model is row for row what a rebuild from scratch gives, and every event was
//! projected exactly once.
//!
//! The test writes orders through the library (the file store's writer is this process) on
//! one thread, and runs `shop project --follow` (a read-only handle following the writer in
//! another process) with small batches so that commits are frequent. It waits for a
//! projection's checkpoint row to advance (polling the read-model file with a deadline), kills
//! the projector there, starts it again, and does so several times. Then the writer stops, a
//! last projector catches up and is stopped by SIGTERM (a clean stop), and the read model is
//! compared with a rebuild into a fresh file and with sums taken from the events themselves.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventfile::{EventStore, Query, Store};
use eventfile_shop::Shop;
use eventfile_shop::order::{Cents, Line, OrderCommand};

use crate::support::{bare, dump, ok, positions, run_with};

/// Kills of the projector.
const KILLS: usize = 10;
/// Orders written at least, whatever the kills need.
const MIN_ORDERS: u64 = 30;
/// Orders written at most.
const MAX_ORDERS: u64 = 2000;
/// The longest any wait for the projector lasts.
const DEADLINE: Duration = Duration::from_secs(30);

/// Writes order `i`: placed, one to three items, then paid in one or two payments, or not.
fn write_order(shop: &Shop<&Store>, i: u64) {
    let id = format!("K{i}");
    let run = |c: OrderCommand| {
        shop.execute(&id, &c)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    };
    run(OrderCommand::Place {
        customer: format!("customer{}", i % 7),
    });
    let mut total = 0;
    for j in 0..=i % 3 {
        let line = Line {
            sku: format!("sku{}", (i + j) % 11),
            quantity: 1 + ((i + j) % 4) as u32,
            unit_price: Cents(100 + (37 * i + j) % 500),
        };
        total += u64::from(line.quantity) * line.unit_price.0;
        run(OrderCommand::AddItem(line));
    }
    match i % 4 {
        0 => run(OrderCommand::Pay {
            amount: Cents(total),
        }),
        1 => {
            run(OrderCommand::Pay {
                amount: Cents(total / 2),
            });
            run(OrderCommand::Pay {
                amount: Cents(total - total / 2),
            });
        }
        2 => run(OrderCommand::Pay {
            amount: Cents(total / 3),
        }),
        _ => {}
    }
}

fn projector(url: &str, read_db: &Path) -> Child {
    let mut c = bare();
    c.args(["--url", url, "--read-db"])
        .arg(read_db)
        .args(["project", "--follow", "--batch", "7"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.spawn().expect("start the projector")
}

/// Polls the read model until `done` holds of its checkpoint rows; panics at the deadline, or
/// as soon as the projector has exited (with what it said).
fn wait_for(
    child: &mut Child,
    read_db: &Path,
    what: &str,
    done: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = positions(read_db);
        if done(&now) {
            return now;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("{what}: the projector exited ({status}) at {now:?}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still at {now:?} after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn crash_a_projector_killed_at_any_point_resumes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let url = format!("file:{}", store_dir.display());
    let read_db = tmp.path().join("read.db");
    let store = Store::open(&store_dir).unwrap();
    let writer = Shop::new(&store, tmp.path().join("unused.db"), 5);
    let stop_writing = AtomicBool::new(false);
    let names = ["order-details", "order-summary"];
    // (the row that advanced, its position when the kill came, the store's checkpoint then)
    let mut kills: Vec<(String, u64, u64, Option<u64>)> = Vec::new();

    let written = std::thread::scope(|s| {
        let writing = s.spawn(|| {
            let mut i = 0;
            while i < MAX_ORDERS && (i < MIN_ORDERS || !stop_writing.load(Ordering::Relaxed)) {
                write_order(&writer, i);
                i += 1;
            }
            i
        });
        let mut seen = positions(&read_db);
        for k in 0..KILLS {
            let mut child = projector(&url, &read_db);
            // Each kill waits for one projection's row to move past where it was: by one
            // commit, or by several batches.
            let name = names[k % 2];
            let step = if k % 3 == 2 { 1 } else { 20 };
            let from = seen.get(name).copied().unwrap_or(0);
            let at = wait_for(
                &mut child,
                &read_db,
                "the projector's row to advance",
                |p| p.get(name).is_some_and(|&n| n >= from + step),
            );
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert!(!status.success(), "killed, not stopped: {status:?}");
            // What was committed stays committed.
            seen = positions(&read_db);
            for (n, &p) in &at {
                assert!(seen[n] >= p, "{n} went back from {p} to {}", seen[n]);
            }
            kills.push((
                name.to_owned(),
                at[name],
                seen[name],
                store.checkpoints().load(name).unwrap(),
            ));
        }
        stop_writing.store(true, Ordering::Relaxed);
        writing.join().unwrap()
    });

    // The last projector reaches the head and is stopped cleanly.
    let head = EventStore::head_seq(&store).unwrap();
    let mut child = projector(&url, &read_db);
    wait_for(
        &mut child,
        &read_db,
        "the projector to reach the head",
        |p| names.iter().all(|n| p.get(*n) == Some(&head)),
    );
    #[cfg(unix)]
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every kill came before the end of the log, and each projection's kills later and later.
    eprintln!(
        "{written} orders, {head} events; kills (row, position seen, after the kill, the \
         store's checkpoint): {kills:?}"
    );
    assert!(kills.iter().all(|k| k.1 < head), "{kills:?}");
    for name in names {
        let at: Vec<u64> = kills.iter().filter(|k| k.0 == name).map(|k| k.1).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{name}: {at:?}");
    }

    // A query catches up (nothing to do) and reads the same rows.
    let resumed = dump(&read_db);
    ok(
        &run_with(&mut command(&url, &read_db, &["orders"]), ""),
        &["orders"],
    );
    assert_eq!(dump(&read_db), resumed);
    // A rebuild into a fresh file: identical, row for row, checkpoints included.
    let fresh = tmp.path().join("fresh.db");
    ok(
        &run_with(&mut command(&url, &fresh, &["rebuild"]), ""),
        &["rebuild"],
    );
    let rebuilt = dump(&fresh);
    assert_eq!(resumed.summary, rebuilt.summary);
    assert_eq!(resumed.lines, rebuilt.lines);
    assert_eq!(resumed, rebuilt);
    assert_eq!(
        resumed.checkpoints,
        names.map(|n| (n.to_owned(), head as i64))
    );

    // Exactly once, against the events themselves: one row per order placed, one line per
    // item added, the totals and payments summed from the events.
    let (mut placed, mut items, mut total, mut paid) = (0, 0, 0, 0);
    for e in store.query(&Query::new().prefix("order-")).unwrap() {
        let e = e.unwrap();
        let d = e.data_value();
        match e.event_type.as_str() {
            "OrderPlaced" => placed += 1,
            "ItemAdded" => {
                items += 1;
                total += d["quantity"].as_i64().unwrap() * d["unit_price"].as_i64().unwrap();
            }
            "PaymentReceived" => paid += d["amount"].as_i64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(resumed.summary.len(), placed);
    assert_eq!(placed as u64, written);
    assert_eq!(resumed.lines.len(), items);
    assert_eq!(resumed.summary.iter().map(|r| r.3).sum::<i64>(), total);
    assert_eq!(resumed.summary.iter().map(|r| r.4).sum::<i64>(), paid);
}

fn command(url: &str, read_db: &Path, args: &[&str]) -> std::process::Command {
    let mut c = bare();
    c.args(["--url", url, "--read-db"]).arg(read_db).args(args);
    c
}
