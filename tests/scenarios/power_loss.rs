//! Power loss at every kind of moment never loses an acknowledged append, snapshot or
//! deletion, whatever the store was doing: appends, rolls, clean closes, snapshots,
//! deletions, retention and compaction runs, or recovery itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use eventfile::sim::{Image, SimDisk};
use eventfile::{
    AppendRequest, ExpectedVersion, LIFECYCLE_STREAM, NewEvent, OpenOptions, Read, RetentionPolicy,
    Storage, Store, StreamAppend, internals,
};

/// Events retention keeps in the simulated store (small, so runs remove segments).
const KEEP: u64 = 60;

fn open(root: &Path, disk: &Arc<SimDisk>) -> eventfile::Result<Store> {
    OpenOptions::new()
        .segment_bytes(4096)
        .retention(RetentionPolicy::keep_all().max_events(KEEP))
        .storage(Arc::new(Arc::clone(disk)))
        .open(root)
}

/// xorshift64*: the suites' deterministic generator.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// How many power losses a suite simulates: `EVENTFILE_POWER_LOSS_RUNS`, default 1,000.
pub(crate) fn runs() -> usize {
    std::env::var("EVENTFILE_POWER_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn batch(id: &str, n: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent::new("Step", json!({ "batch": id, "i": i, "n": n })))
        .collect()
}

/// Everything a workload was told succeeded.
///
/// Why this record and not `MemoryStore`, the oracle of `model.rs` and of the fuzz `operations`
/// target: what survives a power loss is not determined by what was acknowledged. The operation
/// in flight when the power fails (an append, a deletion's `$lifecycle` event, a snapshot file, a
/// retention or compaction run whose report never came back) may or may not have landed, and the
/// checks here are bounds, not equalities: every acknowledged batch at its seqs (or below the log
/// start), no partial batch visible (unacknowledged ones included, which an oracle never sees),
/// every acknowledged deletion kept, every acknowledged snapshot at its version or newer, the log
/// start never going back. An exact oracle would first have to be told, by reading the store under
/// test, which way each of those uncertainties fell: it would copy its answer for the very
/// operation this suite is about. Where nothing is in flight (a power loss between operations),
/// `model.rs` and the fuzz target do compare the store with `MemoryStore` exactly.
#[derive(Default)]
struct Acked {
    /// Batch id -> (first seq, last seq).
    batches: HashMap<String, (u64, u64)>,
    /// Stream -> newest snapshot version saved.
    snapshots: HashMap<String, u64>,
    /// Streams deleted.
    deleted: Vec<String>,
    /// The highest log start a retention run reported.
    log_start: u64,
    /// How many of each operation were acknowledged.
    ops: HashMap<&'static str, u64>,
}

impl Acked {
    fn count(&mut self, op: &'static str) {
        *self.ops.entry(op).or_default() += 1;
    }
}

/// Runs a random workload until the power fails (or it ends), recording what was
/// acknowledged.
fn workload(root: &Path, disk: &Arc<SimDisk>, rng: &mut Rng, run: usize, acked: &mut Acked) {
    let Ok(mut store) = open(root, disk) else {
        return;
    };
    for k in 0..30 {
        let id = format!("r{run}-{k}");
        let stream = format!("s{}", rng.below(3));
        let r = match rng.below(10) {
            0 => {
                // A clean close (checkpoint written) and a reopen.
                drop(store);
                match open(root, disk) {
                    Ok(s) => store = s,
                    Err(_) => return,
                }
                acked.count("reopen");
                continue;
            }
            1 => {
                let n = 2 + rng.below(3);
                let mut first = batch(&id, n);
                let rest = first.split_off(1);
                store
                    .append_multi(&[
                        StreamAppend::new("m-a", ExpectedVersion::Any, first),
                        StreamAppend::new("m-b", ExpectedVersion::Any, rest),
                    ])
                    .map(|m| (m.first_seq, m.last_seq))
            }
            2 => {
                let v = store.stream_version("s0");
                if v == 0 {
                    continue;
                }
                if store.save_snapshot("s0", v, &json!({ "at": v })).is_err() {
                    return;
                }
                let e = acked.snapshots.entry("s0".into()).or_default();
                *e = (*e).max(v);
                acked.count("snapshot");
                continue;
            }
            3 => {
                // A short-lived stream, written and deleted.
                let junk = format!("junk-{id}");
                let ok = store
                    .append(&junk, ExpectedVersion::NoStream, batch(&id, 6))
                    .and_then(|_| store.delete_stream(&junk, ExpectedVersion::Exact(6)));
                if ok.is_err() {
                    return;
                }
                acked.deleted.push(junk);
                acked.count("delete");
                continue;
            }
            4 => {
                match store.run_retention(false) {
                    Ok(r) => acked.log_start = acked.log_start.max(r.log_start),
                    Err(_) => return,
                }
                acked.count("retention");
                continue;
            }
            5 => {
                if store.compact(false).is_err() {
                    return;
                }
                acked.count("compaction");
                continue;
            }
            6 => {
                // Independent requests sharing one sync (what the server's workers send).
                let requests = ["a", "b", "c"].map(|part| {
                    let id = format!("{id}-{part}");
                    let stream = format!("s{}", rng.below(3));
                    (
                        id.clone(),
                        AppendRequest::new(
                            stream,
                            ExpectedVersion::Any,
                            batch(&id, 1 + rng.below(3)),
                        ),
                    )
                });
                let (ids, requests): (Vec<String>, Vec<AppendRequest>) =
                    requests.into_iter().unzip();
                let mut failed = false;
                for (id, r) in ids.into_iter().zip(store.append_requests(requests)) {
                    match r {
                        Ok(m) => {
                            acked.batches.insert(id, (m.first_seq, m.last_seq));
                            acked.count("append_requests");
                        }
                        Err(_) => failed = true,
                    }
                }
                if failed {
                    return;
                }
                continue;
            }
            _ => store
                .append(&stream, ExpectedVersion::Any, batch(&id, 1 + rng.below(4)))
                .map(|a| (a.first_seq, a.last_seq)),
        };
        match r {
            Ok(range) => {
                acked.batches.insert(id, range);
                acked.count("append");
            }
            Err(_) => return,
        }
    }
}

/// Recovers on what survived: this must succeed and hold everything acknowledged.
fn check(root: &Path, image: &Image, acked: &mut Acked, run: usize) -> Image {
    check_with(root, image, acked, run, open)
}

/// [`check`], opening the store with `open`.
fn check_with(
    root: &Path,
    image: &Image,
    acked: &mut Acked,
    run: usize,
    open: fn(&Path, &Arc<SimDisk>) -> eventfile::Result<Store>,
) -> Image {
    let disk = SimDisk::new(root, image.clone(), u64::MAX, 0);
    let store = open(root, &disk).unwrap_or_else(|e| panic!("run {run}: recovery failed: {e}"));
    let log_start = store.log_start();
    assert!(
        log_start >= acked.log_start,
        "run {run}: the log start went back"
    );
    let events: Vec<_> = store
        .read_all(Read::forward())
        .unwrap()
        .map(|e| e.unwrap_or_else(|e| panic!("run {run}: read failed: {e}")))
        .collect();
    let mut batches: HashMap<String, Vec<u64>> = HashMap::new();
    let mut last = 0;
    for e in events.iter().filter(|e| e.stream != LIFECYCLE_STREAM) {
        assert!(e.seq > last, "run {run}: seqs out of order");
        last = e.seq;
        let d = e.data_value();
        batches
            .entry(d["batch"].as_str().unwrap().to_owned())
            .or_default()
            .push(e.seq);
    }
    for (id, seqs) in &batches {
        let n = events
            .iter()
            .find(|e| e.seq == seqs[0])
            .unwrap()
            .data_value()["n"]
            .as_u64()
            .unwrap();
        assert_eq!(
            seqs.len() as u64,
            n,
            "run {run}: partial batch {id} visible"
        );
    }
    for (id, &(first, last)) in &acked.batches {
        match batches.get(id) {
            Some(seqs) => assert_eq!(
                (seqs[0], seqs[seqs.len() - 1]),
                (first, last),
                "run {run}: {id} moved"
            ),
            None => assert!(
                last < log_start,
                "run {run}: acknowledged batch {id} lost (seq {first}, log start {log_start})"
            ),
        }
    }
    for junk in &acked.deleted {
        assert!(
            store
                .read_stream(junk, Read::forward())
                .unwrap()
                .next()
                .is_none(),
            "run {run}: deleted stream {junk} came back"
        );
    }
    for (s, &v) in &acked.snapshots {
        let snap = store
            .load_snapshot(s)
            .unwrap()
            .unwrap_or_else(|| panic!("run {run}: acknowledged snapshot of {s} lost"));
        assert!(snap.version >= v, "run {run}: snapshot of {s} went back");
    }
    let head = store.head_seq();
    let r = store
        .append(
            "after",
            ExpectedVersion::Any,
            batch(&format!("after-{run}"), 1),
        )
        .unwrap();
    assert_eq!(r.first_seq, head + 1);
    acked
        .batches
        .insert(format!("after-{run}"), (r.first_seq, r.last_seq));
    drop(store);
    let image = disk.power_loss();
    // `verify` on the image itself, through the same storage seam as the store.
    let survivor: Arc<dyn Storage> = Arc::new(SimDisk::new(root, image.clone(), u64::MAX, 0));
    let report = internals::verify_on(&survivor, root).unwrap();
    assert!(report.is_sound(), "run {run}: {:?}", report.problems);
    image
}

#[test]
fn power_loss_never_loses_an_acknowledged_operation() {
    let runs = runs();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0dd_ba11);
    let mut image = Image::new();
    let mut acked = Acked::default();
    let mut during_open = 0;
    let mut totals: HashMap<&'static str, u64> = HashMap::new();
    let mut add_totals = |acked: &Acked| {
        for (op, n) in &acked.ops {
            *totals.entry(op).or_default() += n;
        }
    };
    for run in 0..runs {
        if run % 25 == 0 {
            add_totals(&acked);
            image.clear();
            acked = Acked::default();
        }
        let disk = SimDisk::new(
            root.path(),
            image.clone(),
            1 + rng.below(200),
            rng.below(u64::MAX),
        );
        let before = acked.ops.values().sum::<u64>();
        workload(root.path(), &disk, &mut rng, run, &mut acked);
        during_open += usize::from(disk.ops() < 12 && acked.ops.values().sum::<u64>() == before);
        image = disk.power_loss();
        image = check(root.path(), &image, &mut acked, run);
    }
    add_totals(&acked);
    // Every kind of operation was acknowledged at least once before some crash.
    for op in ["append", "append_requests", "snapshot", "delete", "reopen"] {
        assert!(
            totals.get(op).is_some_and(|&n| n > 0),
            "no {op} acknowledged: {totals:?}"
        );
    }
    let mut ops: Vec<_> = totals.into_iter().collect();
    ops.sort();
    eprintln!(
        "power loss: {runs} simulated, {during_open} while opening; acknowledged and checked \
         after the crashes: {ops:?}; none lost"
    );
}

/// Batches large enough to have their sync run by the handle's sync thread while the appender
/// adds their index entries (`commit.rs`, `Ahead`): to as many new streams as events, alone
/// and as independent requests sharing a sync, between batches into one stream that the
/// appender syncs itself. A power loss at any moment loses none
/// that was acknowledged, and shows none in part. The appends run on the sync thread's heels,
/// so the operation the power fails at is the writer's or that thread's.
#[test]
fn power_loss_never_loses_a_large_batch_synced_ahead() {
    fn open_large(root: &Path, disk: &Arc<SimDisk>) -> eventfile::Result<Store> {
        OpenOptions::new()
            .segment_bytes(160 * 1024)
            .storage(Arc::new(Arc::clone(disk)))
            .open(root)
    }
    let runs = runs() / 10;
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0001_a43e_ba7c);
    let mut image = Image::new();
    let mut acked = Acked::default();
    let mut total = 0;
    for run in 0..runs {
        if run % 10 == 0 {
            total += acked.ops.values().sum::<u64>();
            image.clear();
            acked = Acked::default();
        }
        let disk = SimDisk::new(
            root.path(),
            image.clone(),
            1 + rng.below(80),
            rng.below(u64::MAX),
        );
        if let Ok(store) = open_large(root.path(), &disk) {
            // One batch into many new streams each: enough index work to ask for the sync
            // ahead (`writer.rs`, `SYNC_AHEAD_WORK`); a request's parts are new streams too.
            let new_streams = |id: &str, n: u64| -> Vec<StreamAppend> {
                batch(id, n)
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| {
                        StreamAppend::new(format!("{id}-{i}"), ExpectedVersion::NoStream, [e])
                    })
                    .collect()
            };
            for k in 0..6 {
                let id = format!("r{run}-{k}");
                let n = 410 + rng.below(200);
                let r = match rng.below(3) {
                    // Into one stream: below the threshold, synced by the appender.
                    0 => store
                        .append("big", ExpectedVersion::Any, batch(&id, n))
                        .map(|a| vec![(id.clone(), (a.first_seq, a.last_seq))]),
                    1 => store
                        .append_multi(&new_streams(&id, n))
                        .map(|m| vec![(id.clone(), (m.first_seq, m.last_seq))]),
                    _ => {
                        let ids = [format!("{id}-a"), format!("{id}-b")];
                        let requests = ids
                            .clone()
                            .map(|i| AppendRequest::multi(new_streams(&i, n)));
                        store
                            .append_requests(requests.into())
                            .into_iter()
                            .zip(ids)
                            .map(|(r, i)| r.map(|m| (i, (m.first_seq, m.last_seq))))
                            .collect()
                    }
                };
                match r {
                    Ok(done) => {
                        for (id, range) in done {
                            acked.batches.insert(id, range);
                            acked.count("large batch");
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        image = disk.power_loss();
        image = check_with(root.path(), &image, &mut acked, run, open_large);
    }
    total += acked.ops.values().sum::<u64>();
    assert!(total > 0 || runs == 0, "no large batch acknowledged");
    eprintln!("power loss: {runs} simulated with large batches; {total} acknowledged, none lost");
}

/// A writer whose `fdatasync` failed leaves its last batch in the page cache, marked clean
/// (Linux's behaviour after a failed writeback; the simulated disk's `fail_syncs`). The next
/// open recovers the batch from there and publishes it: it must write those bytes again first,
/// or its own sync writes nothing, and after a power loss the next acknowledged append sits
/// behind a hole the open refuses as damage.
#[test]
fn an_open_after_a_failed_sync_writes_the_unsynced_tail_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let disk = SimDisk::new(root, Image::new(), u64::MAX, 1);
    let store = open(root, &disk).unwrap();
    store
        .append("a", ExpectedVersion::Any, batch("a", 2))
        .unwrap();
    disk.fail_syncs(1);
    let err = store
        .append("b", ExpectedVersion::Any, batch("b", 2))
        .unwrap_err();
    assert!(matches!(err, eventfile::Error::Io { .. }), "{err}");
    drop(store);
    let store = open(root, &disk).unwrap();
    assert_eq!(
        store.head_seq(),
        4,
        "the reopen recovers b from the page cache"
    );
    store
        .append("c", ExpectedVersion::Any, batch("c", 2))
        .unwrap();
    drop(store);
    let image = disk.power_loss();
    let store = open(root, &SimDisk::new(root, image, u64::MAX, 0))
        .unwrap_or_else(|e| panic!("the open after the power loss failed: {e}"));
    let streams: Vec<String> = store
        .read_all(Read::forward())
        .unwrap()
        .map(|e| e.unwrap().stream)
        .collect();
    assert_eq!(streams, ["a", "a", "b", "b", "c", "c"]);
}
