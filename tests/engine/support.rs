//! Helpers shared by the engine tests.

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Read, RecordedEvent, Store};
use serde_json::json;
use std::path::Path;

/// A store opened with small segments, so tests cross segment boundaries.
pub fn small_store(dir: &Path, segment_bytes: u64) -> Store {
    OpenOptions::new()
        .segment_bytes(segment_bytes)
        .open(dir)
        .expect("open store")
}

/// The same, without fsync (for building fixtures fast).
pub fn fast_store(dir: &Path, segment_bytes: u64) -> Store {
    OpenOptions::new()
        .segment_bytes(segment_bytes)
        .durability(Durability::None)
        .open(dir)
        .expect("open store")
}

pub fn ev(t: &str, n: u64) -> NewEvent {
    NewEvent::new(t, json!({ "n": n }))
}

pub fn append_one(store: &Store, stream: &str, n: u64) -> eventfile::AppendResult {
    store
        .append(stream, ExpectedVersion::Any, [ev("Tick", n)])
        .expect("append")
}

pub fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(Read::forward())
        .expect("read_all")
        .collect::<Result<_, _>>()
        .expect("read_all events")
}

pub fn stream(store: &Store, name: &str, read: Read) -> Vec<RecordedEvent> {
    store
        .read_stream(name, read)
        .expect("read_stream")
        .collect::<Result<_, _>>()
        .expect("read_stream events")
}

/// Checks the global invariants: seq gapless from 1, versions gapless per stream.
pub fn assert_gapless(events: &[RecordedEvent]) {
    let mut versions = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq gap at {e:?}");
        let v = versions.entry(e.stream.clone()).or_insert(0u64);
        *v += 1;
        assert_eq!(e.version, *v, "version gap at {e:?}");
    }
}

/// Frames a record body (a JSON object without its closing brace) as the writer does: a line
/// that passes the CRC check, whatever its content.
pub fn frame(body: &str) -> String {
    format!(
        "{body},\"crc\":\"{:08x}\"}}\n",
        crc32fast::hash(body.as_bytes())
    )
}

/// Creates a store whose single segment holds `lines` (already framed) after a valid header.
pub fn store_with_lines(dir: &Path, lines: &[String]) {
    drop(fast_store(dir, 1 << 20));
    let seg = dir.join("00000000000000000001.jsonl");
    let mut bytes = std::fs::read(&seg).unwrap();
    for l in lines {
        bytes.extend_from_slice(l.as_bytes());
    }
    std::fs::write(seg, bytes).unwrap();
}

/// A record body with the given position fields.
pub fn body(seq: u64, stream: &str, version: u64, time: &str, more: bool) -> String {
    format!(
        r#"{{"seq":{seq},"id":"e-{seq}","stream":"{stream}","version":{version},"type":"T","time":"{time}","data":{{}},"meta":{{}},"tags":[]{}"#,
        if more { r#","more":true"# } else { "" }
    )
}

/// The files in `dir` with extension `ext`, sorted (segments sort in log order).
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// The newest segment file of the store in `dir`.
pub fn newest_segment(dir: &Path) -> std::path::PathBuf {
    files_with_ext(dir, "jsonl").pop().expect("a segment")
}

/// A copy of the store in `dir`, in a new temporary directory. A file that vanishes between
/// the listing and its copy is left out: a writer's sealer (`src/sealer.rs`) may be writing a
/// sidecar meanwhile, and renames its `*.tmp` (the copy then has neither, as a crash at that
/// instant could leave: the open rebuilds the sidecar).
pub fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        match std::fs::copy(e.path(), copy.path().join(e.file_name())) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            r => {
                r.unwrap();
            }
        }
    }
    copy
}

/// Appends single events to stream `s` until the store has `segments` segment files; returns
/// how many were appended.
pub fn fill_until_segments(store: &Store, dir: &Path, segments: usize) -> u64 {
    fill_streams(store, dir, &["s"], segments)
}

/// Appends single events, round-robin over `streams`, until the store has `segments` segment
/// files; returns how many were appended.
pub fn fill_streams(store: &Store, dir: &Path, streams: &[&str], segments: usize) -> u64 {
    let mut n = 0;
    while files_with_ext(dir, "jsonl").len() < segments {
        append_one(store, streams[n as usize % streams.len()], n);
        n += 1;
    }
    n
}

/// xorshift64*: a tiny deterministic generator for tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The blocks of a format-2 summary (`docs/format.md`): the offset and length of each.
pub fn summary_blocks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (r, s, p, blocks) = (u64_at(64), u64_at(72), u64_at(80), u64_at(88));
    let directory = 112 + r * 16 + s * 40 + p * 8;
    (0..blocks)
        .map(|i| {
            let at = directory + i * 16;
            let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            (u64_at(at), len as usize)
        })
        .collect()
}

/// The bases a format-2 summary's lists name (`docs/format.md`): the offset of the first, and
/// all of them.
pub fn summary_points(bytes: &[u8]) -> (usize, Vec<u64>) {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (r, s, p) = (u64_at(64), u64_at(72), u64_at(80));
    let at = (112 + r * 16 + s * 40) as usize;
    (at, (0..p as usize).map(|i| u64_at(at + i * 8)).collect())
}

/// Makes every CRC of a format-2 summary match its bytes again: each block's in the directory,
/// the head's, the header's (so that a test's forgery reaches the checks behind them).
pub fn recrc_summary(bytes: &mut [u8]) {
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (r, s, p) = (u64_at(bytes, 64), u64_at(bytes, 72), u64_at(bytes, 80));
    let directory = (112 + r * 16 + s * 40 + p * 8) as usize;
    for (i, (offset, len)) in summary_blocks(bytes).into_iter().enumerate() {
        let at = directory + i * 16;
        let crc = crc32fast::hash(&bytes[offset..offset + len]);
        bytes[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
    }
    let end = 112 + u64_at(bytes, 96) as usize - 4;
    let crc = crc32fast::hash(&bytes[112..end]);
    bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..108]);
    bytes[108..112].copy_from_slice(&crc.to_le_bytes());
}

/// Where a sidecar's sample starts (after its postings) and its format (docs/format.md).
fn sidecar_layout(bytes: &[u8]) -> (u32, usize) {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let format = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let (count, terms, entries_len, postings_len) =
        (u64_at(32), u64_at(40), u64_at(48), u64_at(56));
    (
        format,
        64 + count * 12 + terms * 4 + entries_len + postings_len * 4,
    )
}

/// Makes every CRC of a sidecar match its bytes again (format 2: each block's, the block
/// sums', the whole file's; format 1: the file's), so that a test's forgery passes every check
/// and reaches what comes behind them.
pub fn recrc_sidecar(bytes: &mut [u8]) {
    let (format, sample_at) = sidecar_layout(bytes);
    let n = bytes.len();
    if format == 2 {
        let body = sample_at + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let sums: Vec<u8> = bytes[..body]
            .chunks(4096)
            .flat_map(|b| crc32fast::hash(b).to_le_bytes())
            .collect();
        bytes[body..body + sums.len()].copy_from_slice(&sums);
        let crc = crc32fast::hash(&sums);
        bytes[body + sums.len()..body + sums.len() + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// A format-2 sidecar as the format-1 file of the same index: no sample, no block sums.
pub fn sidecar_as_format_1(bytes: &[u8]) -> Vec<u8> {
    let (format, sample_at) = sidecar_layout(bytes);
    assert_eq!(format, 2);
    let mut out = bytes[..sample_at].to_vec();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[12..16].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What a [`NotingStorage`] is told of each read: the file's path, the offset, the length.
pub type Note = dyn Fn(&Path, u64, usize) + Send + Sync;

/// The OS's storage, telling `note` of every read of a file it opened before making it: what
/// a test needs to see which files an operation reads, and on which thread.
pub struct NotingStorage(pub std::sync::Arc<Note>);

impl std::fmt::Debug for NotingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotingStorage")
    }
}

struct NotingFile {
    file: std::sync::Arc<dyn eventfile::StorageFile>,
    path: std::path::PathBuf,
    note: std::sync::Arc<Note>,
}

impl eventfile::StorageFile for NotingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        (self.note)(&self.path, offset, buf.len());
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn map(&self) -> std::io::Result<Option<eventfile::Mapped>> {
        self.file.map()
    }
}

impl eventfile::Storage for NotingStorage {
    fn open(
        &self,
        path: &Path,
        write: bool,
    ) -> std::io::Result<std::sync::Arc<dyn eventfile::StorageFile>> {
        Ok(std::sync::Arc::new(NotingFile {
            file: eventfile::OsStorage.open(path, write)?,
            path: path.to_owned(),
            note: std::sync::Arc::clone(&self.0),
        }))
    }
    fn create_new(
        &self,
        path: &Path,
    ) -> std::io::Result<std::sync::Arc<dyn eventfile::StorageFile>> {
        eventfile::OsStorage.create_new(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        eventfile::OsStorage.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        eventfile::OsStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        eventfile::OsStorage.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        eventfile::OsStorage.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        eventfile::OsStorage.list_dir(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        eventfile::OsStorage.read(path)
    }
    fn is_dir(&self, path: &Path, follow: bool) -> std::io::Result<bool> {
        eventfile::OsStorage.is_dir(path, follow)
    }
    fn try_lock(
        &self,
        path: &Path,
        dir: bool,
    ) -> std::io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        eventfile::OsStorage.try_lock(path, dir)
    }
}

/// Writes the store's `HEAD` as naming `head`: what a crash leaves when the writer never
/// published the events a test then cuts or damages (a writer names in `HEAD` only events it
/// synced, and an open refuses to cut those).
pub fn published_up_to(dir: &Path, head: u64) {
    std::fs::write(
        dir.join("HEAD"),
        eventfile::internals::head_file(head, head),
    )
    .unwrap();
}
