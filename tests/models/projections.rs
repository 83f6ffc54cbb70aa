//! Projections: catch-up, live following, failures that stop at their event, rebuilds, the
//! checkpoint rules, and the status listing.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use eventfile::projection::{
    BoxError, Progress, Projection, ProjectionError, Runner, Stop, status,
};
use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, RecordedEvent};
use serde_json::json;

use crate::support::*;

/// Paid totals by order, committed in batches like a database would: `handle` writes to a
/// pending copy, `commit` makes it the committed one, `rollback` drops it.
#[derive(Default)]
struct Totals {
    committed: BTreeMap<String, u64>,
    pending: Option<BTreeMap<String, u64>>,
    /// The read model's own position, committed with its rows, when it keeps one.
    own_position: Option<u64>,
    keeps_position: bool,
    /// Fails on events whose amount is this.
    poison: Option<u64>,
    /// Every seq handled, in order, committed or not.
    handled: Vec<u64>,
    commits: Vec<u64>,
    /// Told each event handled, when set.
    tell: Option<mpsc::Sender<u64>>,
    /// How many commits fail next (keeping the pending rows, as a database whose commit
    /// failed keeps its open transaction).
    fail_commits: u32,
}

impl Projection for Totals {
    fn name(&self) -> &str {
        "paid-totals"
    }
    fn query(&self) -> Query {
        Query::new().event_type("Paid")
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let amount = event.data_value()["amount"].as_u64().ok_or("no amount")?;
        if Some(amount) == self.poison {
            return Err(format!("cannot take {amount}").into());
        }
        let rows = self.pending.get_or_insert_with(|| self.committed.clone());
        *rows.entry(event.stream.clone()).or_default() += amount;
        self.handled.push(event.seq);
        if let Some(tell) = &self.tell {
            let _ = tell.send(event.seq);
        }
        Ok(())
    }
    fn commit(&mut self, position: u64) -> Result<(), BoxError> {
        if self.fail_commits > 0 {
            self.fail_commits -= 1;
            return Err("the commit failed".into());
        }
        if let Some(rows) = self.pending.take() {
            self.committed = rows;
        }
        if self.keeps_position {
            self.own_position = Some(position);
        }
        self.commits.push(position);
        Ok(())
    }
    fn rollback(&mut self) -> Result<bool, BoxError> {
        self.pending = None;
        Ok(true)
    }
    fn position(&mut self) -> Result<Option<u64>, BoxError> {
        Ok(if self.keeps_position {
            Some(self.own_position.unwrap_or(0))
        } else {
            None
        })
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        self.committed.clear();
        self.pending = None;
        self.own_position = None;
        Ok(())
    }
}

fn pay(store: &dyn EventStore, order: u32, amount: u64) -> u64 {
    store
        .append(
            &format!("order-{order}"),
            ExpectedVersion::Any,
            vec![NewEvent::new("Paid", json!({ "amount": amount }))],
        )
        .unwrap()
        .first_seq
}

fn note(store: &dyn EventStore) -> u64 {
    store
        .append(
            "notes",
            ExpectedVersion::Any,
            vec![NewEvent::new("Noted", json!({}))],
        )
        .unwrap()
        .first_seq
}

/// The totals a replay of every `Paid` event gives.
fn expected(store: &dyn EventStore) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in store.query(&Query::new().event_type("Paid")).unwrap() {
        let e = e.unwrap();
        *out.entry(e.stream).or_default() += e.data_value()["amount"].as_u64().unwrap();
    }
    out
}

#[test]
fn catch_up_handles_every_selected_event_once_and_commits_in_batches() {
    for b in backends() {
        let store = &*b.store;
        for i in 0..25 {
            pay(store, i % 4, u64::from(i) + 1);
            note(store);
        }
        let head = store.head_seq().unwrap();
        let mut runner = Runner::new(store, Totals::default())
            .unwrap()
            .batch_size(10);
        let mut seen: Vec<Progress> = Vec::new();
        assert_eq!(
            runner.catch_up_with(|p| seen.push(p)).unwrap(),
            head,
            "{}",
            b.name
        );
        let totals = runner.projection();
        assert_eq!(totals.committed, expected(store));
        assert_eq!(totals.handled.len(), 25, "each Paid once, no Noted");
        assert!(
            totals.commits.len() >= 3,
            "batches of 10: {:?}",
            totals.commits
        );
        assert_eq!(
            seen.last().map(|p| (p.position, p.head, p.handled)),
            Some((head, head, 25))
        );
        assert_eq!(store.checkpoints().load("paid-totals").unwrap(), Some(head));
        // Nothing new: a second catch-up handles nothing.
        assert_eq!(runner.catch_up().unwrap(), head);
        assert_eq!(runner.projection().handled.len(), 25);
        // A new runner resumes from the checkpoint: only the new event is handled.
        let seq = pay(store, 9, 1000);
        let mut again = Runner::new(store, Totals::default()).unwrap();
        assert_eq!(again.position(), head);
        again.catch_up().unwrap();
        assert_eq!(again.projection().handled, [seq]);
    }
}

#[test]
fn a_runner_follows_the_log_live_until_stopped() {
    for b in backends() {
        let store = &*b.store;
        pay(store, 1, 5);
        let (tell, told) = mpsc::channel();
        let totals = Totals {
            tell: Some(tell),
            ..Totals::default()
        };
        let mut runner = Runner::new(store, totals)
            .unwrap()
            .poll(Duration::from_millis(10));
        let stop = Stop::new();
        std::thread::scope(|s| {
            let running = s.spawn(|| {
                runner.run(&stop).unwrap();
                runner
            });
            assert_eq!(told.recv_timeout(Duration::from_secs(10)).unwrap(), 1);
            let a = pay(store, 2, 7);
            note(store);
            let c = pay(store, 1, 1);
            assert_eq!(told.recv_timeout(Duration::from_secs(10)).unwrap(), a);
            assert_eq!(told.recv_timeout(Duration::from_secs(10)).unwrap(), c);
            stop.stop();
            let runner = running.join().unwrap();
            assert_eq!(runner.projection().committed, expected(store), "{}", b.name);
            assert_eq!(runner.position(), c);
            assert_eq!(store.checkpoints().load("paid-totals").unwrap(), Some(c));
        });
    }
}

#[test]
fn a_failing_event_stops_the_runner_there_and_is_never_skipped() {
    for b in backends() {
        let store = &*b.store;
        let mut seqs = Vec::new();
        for amount in [1, 2, 3, 666, 4, 5] {
            seqs.push(pay(store, 1, amount));
        }
        let bad = seqs[3];
        let poisoned = || Totals {
            poison: Some(666),
            ..Totals::default()
        };
        let mut runner = Runner::new(store, poisoned()).unwrap().batch_size(100);
        match runner.catch_up().unwrap_err() {
            ProjectionError::Handler {
                name,
                seq,
                event_type,
                source,
            } => {
                assert_eq!(
                    (name.as_str(), seq, event_type.as_str()),
                    ("paid-totals", bad, "Paid")
                );
                assert_eq!(source.to_string(), "cannot take 666");
            }
            other => panic!("{}: {other}", b.name),
        }
        // The events before it are committed once, the failing one and those after it not.
        assert_eq!(runner.position(), bad - 1);
        assert_eq!(runner.projection().committed["order-1"], 6, "{}", b.name);
        let saved = store.checkpoints().get("paid-totals").unwrap().unwrap();
        assert_eq!(saved.position, bad - 1);
        assert!(saved.error.as_deref().unwrap().contains("cannot take 666"));
        let listed = status(store).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].lag, 3);
        assert!(listed[0].error.is_some());
        // A restart meets the same event again: it is not skipped.
        let mut restarted = Runner::new(store, poisoned()).unwrap();
        assert!(matches!(
            restarted.catch_up().unwrap_err(),
            ProjectionError::Handler { seq, .. } if seq == bad
        ));
        assert!(restarted.projection().handled.is_empty());
        // Fixed, it goes on from there and the error is cleared.
        let mut fixed = Runner::new(store, Totals::default()).unwrap();
        fixed.catch_up().unwrap();
        assert_eq!(fixed.projection().handled, &seqs[3..]);
        let saved = store.checkpoints().get("paid-totals").unwrap().unwrap();
        assert_eq!((saved.position, saved.error), (seqs[5], None));
    }
}

#[test]
fn rebuild_resets_the_read_model_and_replays_from_the_start() {
    for b in backends() {
        let store = &*b.store;
        for i in 0..30 {
            pay(store, i % 3, 2);
        }
        let mut runner = Runner::new(store, Totals::default()).unwrap().batch_size(7);
        runner.catch_up().unwrap();
        // A read model gone wrong (say, a bug fixed since): a rebuild starts it over.
        runner
            .projection_mut()
            .committed
            .insert("order-0".into(), 999_999);
        let mut progress = Vec::new();
        let head = store.head_seq().unwrap();
        assert_eq!(runner.rebuild(|p| progress.push(p.position)).unwrap(), head);
        assert_eq!(runner.projection().committed, expected(store), "{}", b.name);
        assert!(progress.len() >= 5, "a report per batch: {progress:?}");
        assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(store.checkpoints().load("paid-totals").unwrap(), Some(head));
    }
}

#[test]
fn a_checkpoint_ahead_of_the_head_is_refused_until_a_rebuild() {
    for b in backends() {
        let store = &*b.store;
        pay(store, 1, 1);
        store.checkpoints().save("paid-totals", 50).unwrap();
        let mut runner = Runner::new(store, Totals::default()).unwrap();
        for refused in [
            runner.catch_up().unwrap_err(),
            runner.run(&Stop::new()).unwrap_err(),
        ] {
            match refused {
                ProjectionError::AheadOfHead { position, head, .. } => {
                    assert_eq!((position, head), (50, 1), "{}", b.name)
                }
                other => panic!("{}: {other}", b.name),
            }
        }
        assert!(runner.projection().handled.is_empty());
        // A rebuild starts over from 0.
        assert_eq!(runner.rebuild(|_| {}).unwrap(), 1);
        assert_eq!(store.checkpoints().load("paid-totals").unwrap(), Some(1));
        // The read model's own position is checked the same way.
        store.checkpoints().remove("paid-totals").unwrap();
        let own = Totals {
            keeps_position: true,
            own_position: Some(9),
            ..Totals::default()
        };
        assert!(matches!(
            Runner::new(store, own).unwrap().catch_up().unwrap_err(),
            ProjectionError::AheadOfHead { position: 9, .. }
        ));
    }
}

#[test]
fn a_read_model_that_keeps_its_position_resumes_from_it() {
    for b in backends() {
        let store = &*b.store;
        let seqs: Vec<u64> = (1..=6).map(|a| pay(store, 1, a)).collect();
        // The store's checkpoint says 0 (say it was saved before a crash that the read
        // model's own transaction survived); the read model says 3.
        store.checkpoints().save("paid-totals", 0).unwrap();
        let own = Totals {
            keeps_position: true,
            own_position: Some(seqs[2]),
            ..Totals::default()
        };
        let mut runner = Runner::new(store, own).unwrap();
        assert_eq!(runner.position(), seqs[2], "{}", b.name);
        runner.catch_up().unwrap();
        assert_eq!(runner.projection().handled, &seqs[3..]);
        assert_eq!(runner.projection().own_position, Some(seqs[5]));
        // The store's checkpoint follows, for the listing.
        assert_eq!(
            store.checkpoints().load("paid-totals").unwrap(),
            Some(seqs[5])
        );
    }
}

#[test]
fn status_lists_every_checkpoint_with_its_lag_and_the_file_store_keeps_them() {
    for mut b in backends() {
        for i in 0..10 {
            pay(&*b.store, 1, i);
        }
        b.store.checkpoints().save("b-reader", 4).unwrap();
        b.store.checkpoints().save("a-reader", 10).unwrap();
        // The file store's checkpoints outlive the handle.
        b.reopen();
        let listed = status(&*b.store).unwrap();
        let got: Vec<(&str, u64, u64, u64)> = listed
            .iter()
            .map(|s| (s.name.as_str(), s.position, s.head, s.lag))
            .collect();
        assert_eq!(
            got,
            [("a-reader", 10, 10, 0), ("b-reader", 4, 10, 6)],
            "{}",
            b.name
        );
        assert!(listed.iter().all(|s| s.error.is_none() && s.time > 0));
    }
}

/// A read that fails in the middle of a batch (here the store's file, from the sixth `Paid`
/// event on) ends the run with the error, and undoes the batch's handled part in the read
/// model: a run after it handles those events once, not again on top of themselves.
#[test]
fn a_read_failing_mid_batch_undoes_the_batch_and_the_next_run_counts_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = eventfile::FaultyStorage::new();
    let store = eventfile::OpenOptions::new()
        .storage(std::sync::Arc::new(std::sync::Arc::clone(&storage)))
        .open(dir.path())
        .unwrap();
    for i in 0..25 {
        pay(&store, i % 4, u64::from(i) + 1);
        note(&store);
    }
    // The sixth `Paid` event is seq 11: the segment's twelfth line (its header first).
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(10)
        .map(|(i, _)| i as u64 + 1)
        .unwrap();
    storage.fail_reads_of(segment.file_name().unwrap().to_str().unwrap(), at);
    let mut runner = Runner::new(&store, Totals::default())
        .unwrap()
        .batch_size(10);
    assert!(runner.catch_up().is_err(), "the read failed");
    assert_eq!(runner.projection().handled.len(), 5, "seqs 1 to 9");
    storage.heal_reads();
    runner.catch_up().unwrap();
    assert_eq!(runner.projection().committed, expected(&store));
}

/// A read model whose commit fails keeps its open batch; the runner rolls it back, so that the
/// next run handles those events once, not again on top of the uncommitted ones.
#[test]
fn a_failed_commit_undoes_the_batch_and_the_next_run_counts_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = eventfile::Store::open(dir.path()).unwrap();
    for i in 0..25 {
        pay(&store, i % 4, u64::from(i) + 1);
    }
    let totals = Totals {
        fail_commits: 1,
        ..Totals::default()
    };
    let mut runner = Runner::new(&store, totals).unwrap().batch_size(10);
    assert!(runner.catch_up().is_err(), "the commit failed");
    runner.catch_up().unwrap();
    assert_eq!(runner.projection().committed, expected(&store));
}

/// Retention removed the log's first events past a projection: its catch-up reports the gap
/// (it cannot be exact), and a rebuild replays what the log holds, from its start. A rebuild
/// once set the checkpoint to 0 and failed on the gap on every call, its read model emptied.
#[test]
fn a_rebuild_after_retention_replays_from_the_logs_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = eventfile::OpenOptions::new()
        .segment_bytes(4096)
        .open(dir.path())
        .unwrap();
    for i in 0..200 {
        pay(&store, i % 4, u64::from(i) + 1);
    }
    store
        .set_retention_policy(eventfile::RetentionPolicy::keep_all().max_events(100))
        .unwrap();
    store.run_retention(false).unwrap();
    assert!(store.log_start() > 1, "retention removed nothing");
    let mut runner = Runner::new(&store, Totals::default()).unwrap();
    assert!(runner.catch_up().is_err(), "the gap is reported");
    let head = store.head_seq();
    assert_eq!(runner.rebuild(|_| {}).unwrap(), head);
    assert_eq!(runner.projection().committed, expected(&store));
    runner.catch_up().unwrap();
}

/// A read model in memory, as the module's example writes one: no `commit`, no `rollback`
/// (it cannot undo), `handle` all-or-nothing.
#[derive(Default)]
struct Counted {
    /// Handled, by seq: an event handled twice shows as 2.
    seen: BTreeMap<u64, u32>,
    /// Fails on events whose amount is this.
    poison: Option<u64>,
    /// Starts at this seq (its query's `from_seq`).
    from: Option<u64>,
    /// Its query's limit and `to_seq`, which the runner ignores.
    limit: Option<usize>,
    to: Option<u64>,
    /// The store's checkpoint when `reset` was called.
    checkpoint_at_reset: Option<Option<u64>>,
    store: Option<std::sync::Arc<dyn EventStore>>,
}

impl Projection for Counted {
    fn name(&self) -> &str {
        "counted"
    }
    fn query(&self) -> Query {
        let mut q = Query::new().event_type("Paid");
        if let Some(f) = self.from {
            q = q.from_seq(f);
        }
        if let Some(n) = self.limit {
            q = q.limit(n);
        }
        if let Some(t) = self.to {
            q = q.to_seq(t);
        }
        q
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        if event.data_value()["amount"].as_u64() == self.poison {
            return Err("poisoned".into());
        }
        *self.seen.entry(event.seq).or_default() += 1;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        if let Some(store) = &self.store {
            self.checkpoint_at_reset = Some(store.checkpoints().load("counted")?);
        }
        self.seen.clear();
        Ok(())
    }
}

/// A read model that cannot roll back keeps the events a failing batch handled before the
/// failing one: they are committed as they are, not handled again on top of themselves (the
/// runner once replayed them after a rollback that undid nothing, and counted them twice).
#[test]
fn a_read_model_that_cannot_roll_back_counts_each_event_once_when_one_fails() {
    for b in backends() {
        let store = &*b.store;
        let mut seqs = Vec::new();
        for amount in [1, 2, 3, 666, 4] {
            seqs.push(pay(store, 1, amount));
        }
        let counted = Counted {
            poison: Some(666),
            ..Counted::default()
        };
        let mut runner = Runner::new(store, counted).unwrap().batch_size(100);
        assert!(matches!(
            runner.catch_up().unwrap_err(),
            ProjectionError::Handler { seq, .. } if seq == seqs[3]
        ));
        let once: BTreeMap<u64, u32> = seqs[..3].iter().map(|&s| (s, 1)).collect();
        assert_eq!(runner.projection().seen, once, "{}", b.name);
        assert_eq!(runner.position(), seqs[3] - 1);
        assert_eq!(
            store.checkpoints().load("counted").unwrap(),
            Some(seqs[3] - 1)
        );
        // Fixed, the same read model goes on from the failing event.
        runner.projection_mut().poison = None;
        runner.catch_up().unwrap();
        let once: BTreeMap<u64, u32> = seqs.iter().map(|&s| (s, 1)).collect();
        assert_eq!(runner.projection().seen, once, "{}", b.name);
    }
}

/// A read failing mid-batch under a read model that cannot roll back: what it handled is
/// committed, and the next run goes on after it.
#[test]
fn a_read_failing_under_a_read_model_that_cannot_roll_back_counts_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = eventfile::FaultyStorage::new();
    let store = eventfile::OpenOptions::new()
        .storage(std::sync::Arc::new(std::sync::Arc::clone(&storage)))
        .open(dir.path())
        .unwrap();
    for i in 0..25 {
        pay(&store, i % 4, u64::from(i) + 1);
        note(&store);
    }
    // The sixth `Paid` event is seq 11: the segment's twelfth line (its header first).
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(10)
        .map(|(i, _)| i as u64 + 1)
        .unwrap();
    storage.fail_reads_of(segment.file_name().unwrap().to_str().unwrap(), at);
    let mut runner = Runner::new(&store, Counted::default())
        .unwrap()
        .batch_size(10);
    assert!(runner.catch_up().is_err(), "the read failed");
    assert_eq!(runner.projection().seen.len(), 5, "seqs 1 to 9");
    assert_eq!(runner.position(), 9, "what was handled is committed");
    storage.heal_reads();
    runner.catch_up().unwrap();
    assert_eq!(runner.projection().seen.len(), 25);
    assert!(runner.projection().seen.values().all(|&n| n == 1));
}

/// After a failure, the events before the failing one are handled again from the projection's
/// own start: those before its `from_seq` were never delivered, and stay unhandled.
#[test]
fn a_failure_replays_the_batch_from_the_projections_own_start() {
    for b in backends() {
        let store = &*b.store;
        let mut seqs = Vec::new();
        for amount in [1, 2, 3, 4, 666] {
            seqs.push(pay(store, 1, amount));
        }
        let totals = Totals {
            poison: Some(666),
            ..Totals::default()
        };
        // `Totals` rolls back, so the runner replays the batch; it starts at the third event.
        struct From(Totals, u64);
        impl Projection for From {
            fn name(&self) -> &str {
                self.0.name()
            }
            fn query(&self) -> Query {
                self.0.query().from_seq(self.1)
            }
            fn handle(&mut self, e: &RecordedEvent) -> Result<(), BoxError> {
                self.0.handle(e)
            }
            fn commit(&mut self, position: u64) -> Result<(), BoxError> {
                self.0.commit(position)
            }
            fn rollback(&mut self) -> Result<bool, BoxError> {
                self.0.rollback()
            }
            fn reset(&mut self) -> Result<(), BoxError> {
                self.0.reset()
            }
        }
        let mut runner = Runner::new(store, From(totals, seqs[2]))
            .unwrap()
            .batch_size(100);
        assert!(runner.catch_up().is_err());
        let p = &runner.projection().0;
        assert_eq!(p.committed["order-1"], 3 + 4, "{}", b.name);
        assert!(p.handled.iter().all(|&s| s >= seqs[2]), "{:?}", p.handled);
    }
}

/// A projection's query limit and `to_seq` are ignored, as `Projection::query` says: a
/// catch-up goes to the head, and `run` follows the log past the `to_seq`.
#[test]
fn a_projections_limit_and_to_seq_are_ignored() {
    for b in backends() {
        let store = &*b.store;
        for amount in 1..=10 {
            pay(store, 1, amount);
        }
        let counted = Counted {
            limit: Some(5),
            to: Some(3),
            ..Counted::default()
        };
        let mut runner = Runner::new(store, counted).unwrap();
        assert_eq!(runner.catch_up().unwrap(), 10, "{}", b.name);
        assert_eq!(runner.projection().seen.len(), 10);
    }
}

/// A rebuild moves the checkpoint back before it empties the read model: a crash between the
/// two must leave events to handle again, never an empty read model at a built checkpoint.
#[test]
fn a_rebuild_moves_the_checkpoint_back_before_it_resets_the_read_model() {
    for b in backends() {
        let (name, _dir) = (b.name, b.dir);
        let store: std::sync::Arc<dyn EventStore> = std::sync::Arc::from(b.store);
        for amount in 1..=4 {
            pay(&*store, 1, amount);
        }
        let counted = Counted {
            store: Some(store.clone()),
            ..Counted::default()
        };
        let mut runner = Runner::new(&*store, counted).unwrap();
        runner.catch_up().unwrap();
        assert_eq!(store.checkpoints().load("counted").unwrap(), Some(4));
        runner.rebuild(|_| {}).unwrap();
        assert_eq!(
            runner.projection().checkpoint_at_reset,
            Some(Some(0)),
            "{name}"
        );
        assert_eq!(runner.projection().seen.len(), 4);
    }
}
