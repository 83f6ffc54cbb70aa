//! Reading ahead for scans: a thread that fetches the next runs of a sealed segment's records and
//! checks their frames while the caller decodes the ones before.
//!
//! A `read_all` over segments read by `pread` spends about a fifth of its time on work that
//! does not need the previous record decoded: the kernel's copy of each run of records into
//! memory, each record's CRC and the UTF-8 check of its text. This module owns that work for
//! one segment of one scan: a thread (one per segment a scan reaches, ended when the segment is
//! done or the read dropped) reads the same runs the caller would ([`run`] decides them for
//! both), checks every record in a run as [`record::check_frame`] does, and hands the run over
//! as checked UTF-8 text, at most [`DEPTH`] runs ahead, so memory stays bounded.
//!
//! It decides nothing about damage: a run with any record that fails its check (or is not
//! UTF-8) is handed over unchecked, and the caller reads and decodes it the ordinary way, which
//! reports the damage at the record that holds it, after the records before it. A read error is
//! handed over in its place in the sequence, and reported when the caller gets there. Bytes are
//! trusted only where this module checked them, in the buffer it checked them in.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use crate::record;
use crate::storage::StorageFile;

/// A record to read: where it lies in its segment (offset, length including the newline), its
/// ordinal there and, for a stream read, the version it must hold (0 otherwise).
#[derive(Clone, Copy)]
pub(crate) struct Extent {
    pub at: u64,
    pub len: u32,
    pub ord: u32,
    pub version: u64,
}

/// Most bytes one read fetches when it gathers adjacent records.
pub(crate) const RUN_BYTES: u64 = 256 * 1024;

/// Runs read but not yet taken by the caller, at most.
const DEPTH: usize = 2;

/// Scans shorter than this many records are read without a thread.
pub(crate) const MIN_RECORDS: usize = 4096;

/// The bytes `[lo, hi)` of the run starting at extent `i`: that record and those that follow it
/// on disk in read order, up to [`RUN_BYTES`] (forwards, each starts where the last ended;
/// backwards, each ends where the last started); and the index past the run's last extent.
pub(crate) fn run(extents: &[Extent], i: usize, backward: bool) -> (u64, u64, usize) {
    let first = extents[i];
    let (mut lo, mut hi) = (first.at, first.at + u64::from(first.len));
    let mut next = i + 1;
    for &Extent { at: o, len: l, .. } in &extents[i + 1..] {
        if hi - lo >= RUN_BYTES {
            break;
        }
        if !backward && o == hi {
            hi += u64::from(l);
        } else if backward && o + u64::from(l) == lo {
            lo = o;
        } else {
            break;
        }
        next += 1;
    }
    (lo, hi, next)
}

/// One run as the thread read it.
pub(crate) struct Chunk {
    /// The first extent of the run and the index past its last.
    pub first: usize,
    pub end: usize,
    /// Where the run starts in the segment.
    pub lo: u64,
    /// The run's bytes, as UTF-8 text if every record in it passed [`record::check_frame`]
    /// (and its newline is where its extent says), else as read.
    pub body: Body,
}

/// A run's bytes, checked or not.
pub(crate) enum Body {
    Checked(String),
    Unchecked(Vec<u8>),
}

/// The thread reading ahead of one segment's scan.
pub(crate) struct ReadAhead {
    rx: Option<Receiver<(usize, io::Result<Chunk>)>>,
    /// Buffers the caller is done with, for the thread to read into again.
    recycle: Sender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    /// A run received before the caller asked for it.
    pending: Option<(usize, io::Result<Chunk>)>,
}

impl ReadAhead {
    /// Starts reading `extents` of `file` (whose complete data ends at `end`) from extent
    /// `from` on, in the order a scan visits them; `None` if no thread can be started (the scan
    /// then reads for itself).
    pub(crate) fn start(
        file: Arc<dyn StorageFile>,
        extents: Arc<Vec<Extent>>,
        from: usize,
        end: u64,
        backward: bool,
    ) -> Option<ReadAhead> {
        let (tx, rx) = sync_channel(DEPTH);
        let (recycle, reuse) = channel();
        let thread = std::thread::Builder::new()
            .name("eventfile-read-ahead".into())
            .spawn(move || produce(&*file, &extents, from, end, backward, &tx, &reuse))
            .ok()?;
        Some(ReadAhead {
            rx: Some(rx),
            recycle,
            thread: Some(thread),
            pending: None,
        })
    }

    /// The run starting at extent `i`, if the thread read it (waiting for it if need be);
    /// `None` if its next run starts elsewhere (the caller then reads for itself). Runs before
    /// `i` that the caller passed over are dropped.
    pub(crate) fn take(&mut self, i: usize) -> Option<io::Result<Chunk>> {
        loop {
            let (first, chunk) = match self.pending.take() {
                Some(p) => p,
                None => self.rx.as_ref()?.recv().ok()?,
            };
            if first == i {
                return Some(chunk);
            }
            if first > i {
                self.pending = Some((first, chunk));
                return None;
            }
        }
    }

    /// Hands a buffer back for the thread to read into.
    pub(crate) fn give_back(&self, buf: Vec<u8>) {
        let _ = self.recycle.send(buf);
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel ends the thread at its next hand-over (at most one read and its
        // checks away); wait for it, so that no read of this segment outlives the scan.
        self.rx = None;
        self.pending = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's loop: each run from extent `from` on, read, checked and sent, until the last or
/// until the caller stops taking them.
fn produce(
    file: &dyn StorageFile,
    extents: &[Extent],
    from: usize,
    end: u64,
    backward: bool,
    tx: &SyncSender<(usize, io::Result<Chunk>)>,
    reuse: &Receiver<Vec<u8>>,
) {
    let mut i = from;
    while i < extents.len() {
        let (lo, hi, next) = run(extents, i, backward);
        // A buffer the caller handed back, or a new one.
        let mut buf = reuse.try_recv().unwrap_or_default();
        // The caller's read stops at the segment's end too.
        buf.resize(hi.min(end).saturating_sub(lo) as usize, 0);
        let chunk = crate::block_cache::read_exact(file, &mut buf, lo).map(|()| Chunk {
            first: i,
            end: next,
            lo,
            body: check(buf, lo, &extents[i..next]),
        });
        let failed = chunk.is_err();
        if tx.send((i, chunk)).is_err() || failed {
            return;
        }
        i = next;
    }
}

/// `buf` (the bytes from `lo` on) as checked text if each of `extents` lies in it, ends in a
/// newline and passes [`record::check_frame`], and the whole is UTF-8; else as it is.
fn check(buf: Vec<u8>, lo: u64, extents: &[Extent]) -> Body {
    let framed = extents.iter().all(|e| {
        let Some(start) = e.at.checked_sub(lo) else {
            return false;
        };
        let start = start as usize;
        buf.get(start..start + e.len as usize)
            .and_then(|b| b.strip_suffix(b"\n"))
            .is_some_and(|line| record::check_frame(line).is_ok())
    });
    if !framed {
        return Body::Unchecked(buf);
    }
    match String::from_utf8(buf) {
        Ok(text) => Body::Checked(text),
        Err(e) => Body::Unchecked(e.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Mapped;

    /// A file in memory.
    struct Mem(Vec<u8>);

    impl StorageFile for Mem {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let from = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            unreachable!("read only")
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            unreachable!("read only")
        }
        fn map(&self) -> io::Result<Option<Mapped>> {
            Ok(None)
        }
    }

    /// `n` framed lines of about `size` bytes each, and their extents.
    fn lines(n: usize, size: usize) -> (Vec<u8>, Vec<Extent>) {
        let mut bytes = Vec::new();
        let mut extents = Vec::new();
        for k in 0..n {
            let at = bytes.len();
            bytes.extend_from_slice(format!("{{\"k\":{k},\"pad\":\"").as_bytes());
            bytes.extend(std::iter::repeat_n(b'x', size));
            bytes.extend_from_slice(b"\"");
            record::seal_line(&mut bytes, at);
            extents.push(Extent {
                at: at as u64,
                len: (bytes.len() - at) as u32,
                ord: k as u32,
                version: 0,
            });
        }
        (bytes, extents)
    }

    /// Every run of a scan, as the caller takes them: (first, end, checked).
    fn runs(bytes: Vec<u8>, extents: Vec<Extent>, backward: bool) -> Vec<(usize, usize, bool)> {
        let end = bytes.len() as u64;
        let extents = Arc::new(extents);
        let mut ra =
            ReadAhead::start(Arc::new(Mem(bytes)), Arc::clone(&extents), 0, end, backward).unwrap();
        let mut got = Vec::new();
        let mut i = 0;
        while i < extents.len() {
            let c = ra.take(i).expect("a run at each run start").unwrap();
            let (lo, _, next) = run(&extents, i, backward);
            assert_eq!((c.first, c.end, c.lo), (i, next, lo));
            let checked = match c.body {
                Body::Checked(t) => {
                    ra.give_back(t.into_bytes());
                    true
                }
                Body::Unchecked(b) => {
                    ra.give_back(b);
                    false
                }
            };
            got.push((i, next, checked));
            i = next;
        }
        assert!(ra.take(i).is_none());
        got
    }

    #[test]
    fn runs_are_those_the_caller_gathers_and_are_checked() {
        let (bytes, extents) = lines(3000, 200);
        let got = runs(bytes.clone(), extents.clone(), false);
        assert!(got.len() > 2, "{got:?}");
        assert!(got.iter().all(|r| r.2));
        assert_eq!(got.last().unwrap().1, 3000);
        let mut rev = extents;
        rev.reverse();
        let got = runs(bytes, rev, true);
        assert!(got.len() > 2 && got.iter().all(|r| r.2));
    }

    #[test]
    fn a_run_with_a_damaged_record_is_handed_over_unchecked() {
        let (mut bytes, extents) = lines(3000, 200);
        // One bit of one record's data, then one byte made invalid UTF-8 in another run.
        bytes[extents[10].at as usize + 20] ^= 1;
        let (_, _, second) = run(&extents, 0, false);
        let at = extents[second + 5].at as usize + 20;
        bytes[at] = 0xff;
        let got = runs(bytes, extents, false);
        assert!(!got[0].2 && !got[1].2, "{got:?}");
        assert!(got[2..].iter().all(|r| r.2));
    }

    #[test]
    fn extents_outside_the_bytes_leave_a_run_unchecked() {
        let (bytes, mut extents) = lines(10, 50);
        extents[3].len += 1;
        // Extent 3 now takes the next line's first byte: the run ends with it, unchecked.
        let got = runs(bytes, extents, false);
        assert_eq!(got, [(0, 4, false), (4, 10, true)]);
    }

    #[test]
    fn a_read_error_is_handed_over_in_its_place() {
        let (bytes, extents) = lines(3000, 200);
        let cut = extents[2000].at as usize;
        let end = bytes.len() as u64;
        let extents = Arc::new(extents);
        // The file ends early: the run holding extent 2000 cannot be read.
        let mut ra = ReadAhead::start(
            Arc::new(Mem(bytes[..cut].to_vec())),
            Arc::clone(&extents),
            0,
            end,
            false,
        )
        .unwrap();
        let mut i = 0;
        loop {
            match ra.take(i).unwrap() {
                Ok(c) => i = c.end,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    assert!(i <= 2000 && run(&extents, i, false).2 > 2000);
                    break;
                }
            }
        }
        assert!(ra.take(i).is_none());
    }

    #[test]
    fn runs_the_caller_passes_over_are_dropped() {
        let (bytes, extents) = lines(20_000, 200);
        let end = bytes.len() as u64;
        let extents = Arc::new(extents);
        let mut ra =
            ReadAhead::start(Arc::new(Mem(bytes)), Arc::clone(&extents), 0, end, false).unwrap();
        let (_, _, second) = run(&extents, 0, false);
        let (_, _, third) = run(&extents, second, false);
        // Not a run start: nothing, and the run starting before it is dropped.
        assert!(ra.take(1).is_none());
        let c = ra.take(third).unwrap().unwrap();
        assert_eq!((c.first, c.lo), (third, extents[third].at));
        // Dropping the reader ends the thread (joined in `drop`) with runs unread.
        drop(ra);
    }
}
