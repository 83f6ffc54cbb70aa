//! `verify`: reads every record of every segment, checks its CRC and the store's invariants, and
//! reports each problem with its file and byte offset. It writes nothing and takes no lock, so it
//! can run beside a live writer.
//!
//! Whatever would stop a writer open is a problem: `verify` runs the open's own checks (a
//! read-only catch-up, which writes nothing) and adds what only a writer trips over (a directory
//! where the writer removes, rewrites or opens a file). What the next writer open repairs (a
//! torn tail, a crash during a roll, a damaged sidecar, leftovers of a removal run) is a note.

use std::collections::HashMap;
use std::fmt;
use std::io::ErrorKind;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config;
use crate::error::{Error, Result};
use crate::index::{INDEX_EXT, MemIndex};
use crate::segment::{self, Lines, SegmentData, Step, WalkEnd, parse_segment_name};
use crate::storage::{OsStorage, Storage};
use crate::summary_read::Refusal;

/// One thing wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.path.display(),
            self.offset,
            self.message
        )
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments read.
    pub segments: usize,
    /// Events whose records checked out.
    pub events: u64,
    /// Distinct streams.
    pub streams: usize,
    /// Snapshot files checked.
    pub snapshots: usize,
    /// Damage, broken invariants and whatever would stop a writer open (each with the file it
    /// names): the store is sound iff this is empty.
    pub problems: Vec<Problem>,
    /// Things that are not damage: a torn tail the next writer will cut, missing or damaged
    /// index sidecars of sealed segments (caches the next writer open rewrites), files that do
    /// not belong to the store.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every record of the store in `dir`, and everything a writer open checks. Returns `Err`
/// only if the store cannot be read at all (not a store, unreadable directory or configuration);
/// damage is reported in the [`VerifyReport`].
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_on(&(Arc::new(OsStorage) as Arc<dyn Storage>), dir.as_ref())
}

/// [`verify`] on any storage (the simulated disk of the crash suites, for one).
pub(crate) fn verify_on(storage: &Arc<dyn Storage>, dir: &Path) -> Result<VerifyReport> {
    let (config, _) =
        config::load_config(storage.as_ref(), dir)?.ok_or_else(|| Error::NotAStore {
            path: dir.to_owned(),
            reason: format!("{} is missing", config::CONFIG_FILE),
        })?;
    // Before the segments: a writer running meanwhile publishes only what it has written, so
    // a head read first never names more than the walk below finds.
    let published = crate::head::read_head(storage.as_ref(), dir);
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?;
    let mut report = VerifyReport::default();
    let mut bases = Vec::new();
    for name in &names {
        report
            .problems
            .extend(wrong_kind(storage.as_ref(), dir, name));
        if let Some(b) = parse_segment_name(name) {
            bases.push(b);
        } else if !known_file(name) {
            report
                .notes
                .push(format!("unexpected file `{name}` in the store directory"));
        }
    }
    bases.sort_unstable();
    let removed = match crate::manifest::load_manifest(storage.as_ref(), dir) {
        Ok(m) => m,
        Err(e) => {
            add_once(&mut report.problems, locate(e, dir));
            crate::manifest::Removed::default()
        }
    };
    bases.retain(|&b| {
        let covered = removed.covers(b);
        if covered {
            report.notes.push(format!(
                "{} was removed by retention or compaction (unlinked by the next writer open)",
                segment::segment_name(b)
            ));
        }
        !covered
    });
    let (checked, damaged) = crate::snapshot::verify_dir(storage.as_ref(), dir);
    report.snapshots = checked;
    for (path, message) in damaged {
        report.problems.push(Problem {
            path,
            offset: 0,
            message: format!("damaged snapshot (ignored by loads): {message}"),
        });
    }
    let mut v = Verifier {
        report,
        next_seq: 1,
        versions: HashMap::new(),
        last_time: i64::MIN,
        damaged_since_good: 0,
        damaged_total: 0,
    };
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(segment::segment_name(base));
        let is_last = i + 1 == bases.len();
        // Removed ranges continue the numbering: seqs, and each stream's versions.
        while let Some(r) = removed.ranges.iter().find(|r| r.base == v.next_seq) {
            v.next_seq = r.end;
            for (name, n) in &r.streams {
                *v.versions.entry(name.clone()).or_insert(0) += n;
            }
            v.last_time = v.last_time.max(r.last_time);
        }
        if let Err(e) = v.segment(
            storage.as_ref(),
            dir,
            &path,
            base,
            is_last.then(|| published.as_ref().ok().copied().flatten()),
            config.max_line(),
        ) {
            add_once(&mut v.report.problems, locate(e, dir));
        }
    }
    // A removed range no segment follows: the log after it is missing.
    if let Some(r) = removed.ranges.iter().find(|r| r.end > v.next_seq) {
        let message = format!(
            "removed range {}..{} lies beyond the log, which ends at seq {}",
            r.base,
            r.end,
            v.next_seq - 1
        );
        v.problem(dir.join(crate::manifest::MANIFEST_FILE), 0, message);
    }
    v.check_head(published, dir);
    v.open_check(storage, dir, &config);
    v.report.segments = bases.len();
    v.report.streams = v.versions.len();
    Ok(v.report)
}

/// Whether `name` is an index sidecar's name: the segment's 20 digits and `.idx`.
fn is_sidecar_name(name: &str) -> bool {
    name.strip_suffix(&format!(".{INDEX_EXT}"))
        .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
}

fn known_file(name: &str) -> bool {
    name == config::CONFIG_FILE
        || name == crate::manifest::MANIFEST_FILE
        || name == crate::files::SNAPSHOT_DIR
        || name == crate::files::CHECKPOINT_DIR
        || name == crate::store::LOCK_FILE
        || name == crate::head::HEAD_FILE
        || name == crate::summary::SUMMARY_FILE
        || name.ends_with(".tmp")
        || is_sidecar_name(name)
}

/// An entry of the wrong kind for what a writer does with its name: a directory where the store
/// keeps a file (open removes every `*.tmp`, opens `LOCK`, unlinks removed segments and rewrites
/// sidecars; it never removes a directory), or a file in place of the snapshot directory.
fn wrong_kind(storage: &dyn Storage, dir: &Path, name: &str) -> Option<Problem> {
    let path = dir.join(name);
    let message = if name == crate::files::SNAPSHOT_DIR {
        if storage.is_dir(&path, true).ok()? {
            return None;
        }
        "not a directory: every snapshot save and load, and every stream deletion, fails on it"
    } else if name.ends_with(".tmp") {
        // Removed without following a link: a link to a directory is harmless.
        if !storage.is_dir(&path, false).ok()? {
            return None;
        }
        "a directory named like a temporary file: a writer open removes every `*.tmp` entry \
         and fails on a directory"
    } else if name == config::CONFIG_FILE
        || name == crate::manifest::MANIFEST_FILE
        || name == crate::store::LOCK_FILE
        || name == crate::head::HEAD_FILE
        || parse_segment_name(name).is_some()
        || is_sidecar_name(name)
    {
        if !storage.is_dir(&path, true).ok()? {
            return None;
        }
        "a directory where the store keeps a file: a writer fails on it when it opens, \
         rewrites or removes the file"
    } else {
        return None;
    };
    Some(Problem {
        path,
        offset: 0,
        message: message.into(),
    })
}

/// An error as a problem: the file and byte offset it names (the store directory if none), and
/// what it says (a `Corrupt` error's reason, without the place it names again).
fn locate(e: Error, dir: &Path) -> Problem {
    let (path, offset, message) = match e {
        Error::Corrupt {
            path,
            offset,
            reason,
        } => (path, offset, reason),
        Error::Io { ref path, .. }
        | Error::UnsupportedFormat { ref path, .. }
        | Error::NotAStore { ref path, .. }
        | Error::Locked { ref path } => (path.clone(), 0, e.to_string()),
        e => (dir.to_owned(), 0, e.to_string()),
    };
    Problem {
        path,
        offset,
        message,
    }
}

/// Adds a file's failure unless a problem at the same place (a directory in place of the file)
/// already explains it.
fn add_once(problems: &mut Vec<Problem>, p: Problem) {
    if !problems
        .iter()
        .any(|q| q.path == p.path && q.offset == p.offset)
    {
        problems.push(p);
    }
}

struct Verifier {
    report: VerifyReport,
    next_seq: u64,
    versions: HashMap<String, u64>,
    last_time: i64,
    /// Damaged lines since the last good record: a seq gap up to this many is explained.
    damaged_since_good: u64,
    /// Damaged lines so far: a version gap up to this many is explained.
    damaged_total: u64,
}

impl Verifier {
    /// The writer's published head (`HEAD`) against the log: a head beyond the log's end names
    /// events the writer made durable that are gone. A damaged `HEAD` loses nothing (a writer
    /// open rewrites it), so it is a note.
    fn check_head(&mut self, head: Result<Option<u64>>, dir: &Path) {
        let last = self.next_seq - 1;
        match head {
            Ok(Some(head)) if head > last => self.problem(
                dir.join(crate::head::HEAD_FILE),
                0,
                format!(
                    "the writer published seq {head} as durable, but the log ends at seq {last}: \
                     acknowledged events are missing"
                ),
            ),
            Ok(_) => {}
            Err(e) => self.report.notes.push(format!(
                "{e}; read-only handles refuse to open until a writer opens the store"
            )),
        }
    }

    /// Runs what an open checks, by the code that opens: the catch-up of a read-only open,
    /// which writes nothing (a writer adds repairs to it, whose obstacles `wrong_kind` and
    /// `segment` report). Its error is a problem; where the walk already reported one at the same
    /// place, that one also says what the open says.
    fn open_check(&mut self, storage: &Arc<dyn Storage>, dir: &Path, config: &config::StoreConfig) {
        // Few maps: the check visits each segment once.
        let mut st = crate::state::State::new(crate::sealed::MapCache::new(
            64,
            true,
            config.max_line(),
            false,
            0,
        ));
        let Err(e) = crate::recovery::catch_up(storage, dir, config, true, u64::MAX, &mut st)
        else {
            return self.summary_check(storage, dir, config, &mut st);
        };
        let mut refused = locate(e, dir);
        match self
            .report
            .problems
            .iter_mut()
            .find(|p| p.path == refused.path && p.offset == refused.offset)
        {
            Some(p) if p.message == refused.message => {
                p.message.push_str("; a writer open refuses the store");
            }
            Some(p) => {
                let reason = refused.message;
                p.message = format!("{}; a writer open refuses the store: {reason}", p.message);
            }
            None => {
                refused.message = format!("a writer open refuses the store: {}", refused.message);
                self.report.problems.push(refused);
            }
        }
    }

    /// The summary's blocks must all read, whatever the open made of it: an open that meets a
    /// damaged block it reads itself (the `$lifecycle` stream's, a deleted stream's) starts
    /// over without the summary, at every open until a clean close rewrites it, so it is not
    /// `from_summary` here. And a summary the open used must say what the sidecars say: the
    /// same streams, versions, and events per sealed segment. One that passes its checks but
    /// differs would be trusted by every open.
    fn summary_check(
        &mut self,
        storage: &Arc<dyn Storage>,
        dir: &Path,
        config: &config::StoreConfig,
        with: &mut crate::state::State,
    ) {
        let path = dir.join(crate::summary::SUMMARY_FILE);
        match walk_summary(storage, &path, with.log.maps.blocks()) {
            Err(e) => {
                // Damage, or a block that could not be read (which may pass: no open removes
                // the file for it, and neither should the reader of this report).
                let advice = match e {
                    crate::error::Error::Io { .. } => {
                        "; opens that reach it read the sidecars instead while it cannot be \
                         read: check the disk"
                    }
                    _ => {
                        "; opens that reach it fall back to the sidecars until a clean close \
                         rewrites it: remove it"
                    }
                };
                let mut p = locate(e, dir);
                p.message.push_str(advice);
                self.report.problems.push(p);
                return;
            }
            Ok(Some(Refusal::Damaged(why))) => {
                let msg = format!(
                    "summary: {why}; opens do not use it and read every sidecar until a clean \
                     close rewrites it: remove it"
                );
                return self.problem(path, 0, msg);
            }
            Ok(Some(Refusal::Format(format))) => {
                self.report.notes.push(format!(
                    "{} is of format {format}, which this version does not read: opens read \
                     the sidecars until a clean close writes format {} in its place",
                    path.display(),
                    crate::summary_read::FORMAT
                ));
                return;
            }
            Ok(None) => {}
        }
        if !with.from_summary {
            return;
        }
        let mut without = crate::state::State::new(crate::sealed::MapCache::new(
            64,
            true,
            config.max_line(),
            false,
            0,
        ));
        let fresh = crate::recovery::catch_up_with(
            storage,
            dir,
            config,
            true,
            u64::MAX,
            false,
            &mut without,
        );
        // The summary's records are read block by block here, each checked: a damaged one is
        // reported as one that differs (an open falls back to the sidecars when it reaches it).
        let shape = stream_shape(with);
        if let Err(e) = &shape {
            let msg = format!("{e}: opens fall back to the sidecars when they reach it; remove it");
            self.problem(dir.join(crate::summary::SUMMARY_FILE), 0, msg);
            return;
        }
        let same = fresh.is_ok()
            && with.next_seq == without.next_seq
            && with.last_time == without.last_time
            && segment_shape(with) == segment_shape(&without)
            && shape.ok() == stream_shape(&mut without).ok();
        if !same {
            let msg = "passes its checks but does not describe the sealed segments as their \
                       sidecars do: opens trust it (stream versions, reads); remove it and the \
                       next open reads the sidecars";
            self.problem(dir.join(crate::summary::SUMMARY_FILE), 0, msg.into());
        }
    }

    fn problem(&mut self, path: PathBuf, offset: u64, message: String) {
        self.report.problems.push(Problem {
            path,
            offset,
            message,
        });
    }

    /// Ends the walk of the newest segment where a writer open cuts it when its scan finds
    /// pages of unsynced batches that a power loss kept out of order (`recovery.rs`,
    /// `unsynced_pages_lost`): they are no damage, and a note says so.
    fn unsynced_pages(
        &mut self,
        lines: &mut Lines,
        file: &Arc<dyn crate::storage::StorageFile>,
        path: &Path,
        pos: u64,
        published: Option<u64>,
        max_line: usize,
    ) -> Result<()> {
        let mut kept = 0;
        let scan = segment::scan(lines, path, pos, |batch| {
            kept += batch.len() as u64;
            Ok(())
        })?;
        let segment::ScanEnd::Damaged { offset, next, .. } = scan.end else {
            return Ok(());
        };
        let first_cut = self.next_seq + kept;
        let lost =
            crate::recovery::unsynced_pages_lost(lines, first_cut, offset, next, || published)
                .map_err(|e| Error::io("read", path, e))?;
        if lost {
            self.report.notes.push(format!(
                "{} ends in pages of unsynced batches that a power loss kept out of order, from \
                 byte {} (cut by the next writer open)",
                path.display(),
                scan.valid_end
            ));
            *lines = Lines::new(
                SegmentData::File(Arc::clone(file)),
                scan.valid_end,
                max_line,
            );
        }
        Ok(())
    }

    fn segment(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        path: &Path,
        base: u64,
        // For the newest segment, the head the writer published.
        last: Option<Option<u64>>,
        max_line: usize,
    ) -> Result<()> {
        let is_last = last.is_some();
        let problems_before = self.report.problems.len();
        let file = storage
            .open(path, false)
            .map_err(|e| Error::io("open", path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", path, e))?;
        let mut lines = Lines::new(SegmentData::File(Arc::clone(&file)), len, max_line);
        let (header_base, pos) = match segment::read_header(&mut lines, path) {
            Ok(h) => h,
            Err(Error::Corrupt { .. })
                if is_last && !crate::recovery::has_valid_record(&mut lines, path)? =>
            {
                // A writer open writes its header, then refuses it unless it continues the log.
                if base != self.next_seq {
                    self.problem(
                        path.to_owned(),
                        0,
                        format!(
                            "holds no event and starts at seq {base}, expected {}: not a \
                             segment whose creation a crash cut short (a writer open writes \
                             its header, then refuses the store)",
                            self.next_seq
                        ),
                    );
                    return Ok(());
                }
                self.report.notes.push(format!(
                    "{} has a torn header and no event: a crash while it was being created \
                     (rewritten by the next writer open)",
                    path.display()
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if header_base != base {
            self.problem(
                path.to_owned(),
                0,
                format!("header says base seq {header_base}, file name says {base}"),
            );
        }
        if base != self.next_seq {
            self.problem(
                path.to_owned(),
                0,
                format!("segment starts at seq {base}, expected {}", self.next_seq),
            );
            self.next_seq = base;
        }
        if let Some(published) = last {
            self.unsynced_pages(&mut lines, &file, path, pos, published, max_line)?;
        }
        let mut index = MemIndex::default();
        let mut open_batch: Option<u64> = None;
        let ended = segment::walk(&mut lines, path, pos, |step| {
            match step {
                Step::Bad { offset, reason } => {
                    self.problem(path.to_owned(), offset, reason);
                    self.damaged_since_good += 1;
                    self.damaged_total += 1;
                }
                Step::Record {
                    offset: pos,
                    meta: m,
                    ..
                } => {
                    let rec = &m.rec;
                    // Records lost to damage already reported explain a gap of their size.
                    let explained = rec.seq >= self.next_seq
                        && rec.seq - self.next_seq <= self.damaged_since_good;
                    if !explained {
                        self.problem(
                            path.to_owned(),
                            pos,
                            format!("seq {} where {} was expected", rec.seq, self.next_seq),
                        );
                    }
                    self.next_seq = rec.seq + 1;
                    self.damaged_since_good = 0;
                    let v = self.versions.entry(rec.stream.to_string()).or_insert(0);
                    let expected = *v + 1;
                    *v = rec.version;
                    let explained =
                        rec.version > expected && rec.version - expected <= self.damaged_total;
                    if rec.version != expected && !explained {
                        let msg = format!(
                            "stream `{}` has version {} where {expected} was expected",
                            rec.stream, rec.version
                        );
                        self.problem(path.to_owned(), pos, msg);
                    }
                    if m.time < self.last_time {
                        self.problem(path.to_owned(), pos, "time goes backwards".into());
                    }
                    self.last_time = self.last_time.max(m.time);
                    // Parsing the terms also checks the metadata object and the tags array.
                    match m.terms() {
                        Ok(terms) => index.add(pos, m.time, &terms.borrowed()),
                        Err(reason) => self.problem(path.to_owned(), pos, reason),
                    }
                    self.report.events += 1;
                    open_batch = if rec.more {
                        open_batch.or(Some(pos))
                    } else {
                        None
                    };
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        match ended {
            WalkEnd::Clean => {}
            WalkEnd::Partial { offset } if is_last => {
                self.report.notes.push(format!(
                    "{} ends in a torn record at byte {offset} (cut by the next writer open)",
                    path.display()
                ));
                return Ok(());
            }
            WalkEnd::Partial { offset } => {
                self.problem(
                    path.to_owned(),
                    offset,
                    "sealed segment ends in a torn record".into(),
                );
                return Ok(());
            }
            WalkEnd::TooLong { offset } => {
                self.problem(
                    path.to_owned(),
                    offset,
                    format!("no line end within {max_line} bytes"),
                );
                return Ok(());
            }
        }
        if let Some(at) = open_batch {
            if is_last {
                self.report.notes.push(format!(
                    "{} ends in a partial batch starting at byte {at} (cut by the next writer open)",
                    path.display()
                ));
            } else {
                self.problem(
                    path.to_owned(),
                    at,
                    "sealed segment ends in a partial batch".into(),
                );
            }
        }
        if !is_last && self.report.problems.len() == problems_before {
            self.sidecar(storage, dir, base, len, &index);
        }
        Ok(())
    }

    /// Compares a sealed segment's sidecar with the index of its records (a clean segment's).
    /// The sidecar is a cache: an open rebuilds (and a writer open rewrites) one that is missing
    /// or fails its checks. One that passes them is trusted, so if it differs it stays wrong.
    fn sidecar(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        base: u64,
        len: u64,
        index: &MemIndex,
    ) {
        let sidecar = crate::segment::index_path(dir, base);
        let note = match storage.read(&sidecar) {
            // Held to the encoding of its own format (an older store's sidecars are format 1).
            Ok(bytes)
                if bytes.get(8..12).is_some_and(|f| {
                    let format = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                    index.encode_as(base, len, format).is_ok_and(|e| e == bytes)
                }) =>
            {
                return;
            }
            Ok(_) if crate::sidecar::read_index(storage, dir, base, Some(len)).is_some() => {
                let msg = "passes its checks but does not describe its segment: opens trust \
                           it (stream versions, queries) and do not rebuild it; remove it and \
                           the next writer open rebuilds it";
                self.problem(sidecar, 0, msg.into());
                return;
            }
            Ok(_) => "fails its checks",
            Err(e) if e.kind() == ErrorKind::NotFound => "is missing",
            // Reported with the directory's entries: a writer cannot replace it.
            Err(e) if e.kind() == ErrorKind::IsADirectory => return,
            Err(_) => "cannot be read",
        };
        self.report.notes.push(format!(
            "{} {note} (never answered from: a read that needs it rebuilds it from its segment; \
             `eventfile reindex` rewrites it now)",
            sidecar.display()
        ));
    }
}

/// Per stream: its version, and the versions it has in each sealed segment of `st` (first and
/// last). Segments removed since a list was made are left out, so that a table kept across a
/// retention run compares equal to one read afresh.
type Shape = Vec<(String, u64, Vec<(u64, u64, u64)>)>;

/// Reads the head of the summary at `path` and walks every block it lists, each checked as a
/// look-up checks it (its CRC, then every record). A summary whose head an open does not take
/// (damaged, or of format 1) has no block to walk: opens ignore it, and the next clean close
/// writes it anew; the answer says why it is refused. A missing one is no summary, and a
/// directory in its place is reported with the directory's entries.
fn walk_summary(
    storage: &Arc<dyn Storage>,
    path: &Path,
    cache: &Arc<crate::block_cache::BlockCache>,
) -> Result<Option<Refusal>> {
    let file = match storage.open(path, false) {
        Ok(file) => file,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::IsADirectory) => {
            return Ok(None);
        }
        Err(e) => return Ok(Some(Refusal::Damaged(format!("it cannot be opened: {e}")))),
    };
    let Some(head) = crate::summary_read::read_head(Arc::clone(&file), path.to_owned(), cache)
    else {
        return Ok(Some(crate::summary_read::refusal(file.as_ref())));
    };
    for record in head.streams.walk(std::ops::Bound::Unbounded) {
        record?;
    }
    Ok(None)
}

/// Every sealed segment as the open took it: its base and length, and its events, last
/// time and sidecar size (which reads, counts, time lookups and retention rely on before the
/// sidecar is first mapped).
fn segment_shape(st: &crate::state::State) -> Vec<(u64, u64, u64, i64, u64)> {
    st.log
        .segments
        .iter()
        .filter_map(|s| s.sealed.as_ref())
        .map(|s| {
            let m = s.summary;
            (s.base, s.len, m.count, m.last_time, s.index_bytes())
        })
        .collect()
}

fn stream_shape(st: &mut crate::state::State) -> crate::error::Result<Shape> {
    let sealed: std::collections::HashSet<u64> = st
        .log
        .segments
        .iter()
        .filter(|s| !s.is_active())
        .map(|s| s.base)
        .collect();
    let mut shape = Vec::new();
    for item in st.streams.range(std::ops::Bound::Unbounded) {
        let (name, e) = item?;
        let mut first = 1;
        let mut parts = Vec::new();
        for (b, last) in e.sealed.iter() {
            if sealed.contains(&b) {
                parts.push((b, first, last));
            }
            first = last + 1;
        }
        shape.push((name.into_owned(), e.version, parts));
    }
    Ok(shape)
}
