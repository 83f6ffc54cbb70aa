//! Reads: one stream, or the global log, forwards or backwards, as iterators.
//!
//! A read takes a snapshot of which segments to visit (under the state lock, briefly) and then
//! reads lines lazily, holding at most one line window per segment in memory. It never returns
//! an event beyond the visible head (in the default durability mode: never one that is not yet
//! durable). Sealed segments are read through their maps, the active one with `pread`.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::event::{RecordedEvent, validate_stream};
use crate::record;
use crate::segment::{LineEnd, Lines, Segment};
use crate::store::{State, Store};

/// Which way a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// How to read: direction, starting point and limit.
///
/// ```
/// use eventfile::Read;
/// let first_ten = Read::forward().limit(10);
/// let newest_from_v5_down = Read::backward().from(5);
/// # let _ = (first_ten, newest_from_v5_down);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Read {
    direction: Direction,
    from: Option<u64>,
    limit: Option<usize>,
}

impl Read {
    /// Oldest first, from the start, no limit.
    pub fn forward() -> Read {
        Read::default()
    }

    /// Newest first, from the end, no limit.
    pub fn backward() -> Read {
        Read {
            direction: Direction::Backward,
            ..Read::default()
        }
    }

    /// Start at this version (stream reads) or seq (global reads), inclusive. Default: the first
    /// event going forwards, the last going backwards.
    pub fn from(mut self, position: u64) -> Read {
        self.from = Some(position);
        self
    }

    /// Return at most `n` events. Default: no limit.
    pub fn limit(mut self, n: usize) -> Read {
        self.limit = Some(n);
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: Direction) -> Read {
        self.direction = direction;
        self
    }
}

enum Cursor {
    /// Every line from `pos` (forward) or before `pos` (backward) down to `lower`.
    Scan { pos: u64, lower: u64 },
    /// The lines at these offsets, in order.
    Offsets { offsets: Vec<u64>, next: usize },
}

struct Source {
    lines: Lines,
    path: PathBuf,
    cursor: Cursor,
}

/// The stream filter of a stream read.
struct StreamFilter {
    name: String,
    /// `"stream":<name as JSON>,"version":`: a record of the stream contains it.
    needle: Vec<u8>,
}

/// An iterator over events. Each item is an event or the error that ended the read (damage found
/// on disk, or an I/O error); after an error the iterator is exhausted.
pub struct Events {
    sources: VecDeque<Source>,
    backward: bool,
    remaining: usize,
    /// Events with a greater seq are not visible.
    max_seq: u64,
    /// Global reads: lower (forward) or upper (backward) seq bound.
    seq_bound: u64,
    /// Stream reads: lower (forward) or upper (backward) version bound.
    version_bound: u64,
    stream: Option<StreamFilter>,
    done: bool,
}

impl Store {
    /// Reads the events of `stream`, in version order (or reversed). A stream with no events
    /// yields nothing.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// # for i in 0..5 {
    /// #     store.append("cart-1", ExpectedVersion::Any, [NewEvent::new("Added", serde_json::json!(i))])?;
    /// # }
    /// let last_two: Vec<u64> = store
    ///     .read_stream("cart-1", Read::backward().limit(2))?
    ///     .map(|e| e.map(|e| e.version))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(last_two, [5, 4]);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn read_stream(&self, stream: &str, read: Read) -> Result<Events> {
        validate_stream(stream)?;
        let st = self.inner.lock_state();
        let max_seq = self.head_seq();
        let max_line = self.inner.config.max_line();
        let backward = read.direction == Direction::Backward;
        let mut ev = Events::new(backward, read.limit, max_seq);
        let Some(entry) = st.streams.get(stream) else {
            return Ok(ev);
        };
        let mut needle = b"\"stream\":".to_vec();
        serde_json::to_writer(&mut needle, stream)?;
        needle.extend_from_slice(b",\"version\":");
        ev.stream = Some(StreamFilter {
            name: stream.to_owned(),
            needle,
        });

        // Sealed segments holding the stream, with the versions each holds.
        let mut sealed = Vec::with_capacity(entry.sealed.len());
        let mut first = 1;
        for &(base, last) in &entry.sealed {
            sealed.push((base, first, last));
            first = last + 1;
        }
        let active = st.active_streams.get(stream);
        if backward {
            let from = read.from.unwrap_or(u64::MAX).min(entry.version);
            ev.version_bound = from;
            if let (Some(a), Some(file_seg)) = (active, st.segments.last())
                && a.first_version <= from
            {
                let upto = ((from - a.first_version + 1) as usize).min(a.offsets.len());
                let offsets = a.offsets[..upto].iter().rev().copied().collect();
                ev.push_offsets(&st, file_seg, offsets, max_line);
            }
            for &(base, _, _) in sealed.iter().rev().filter(|s| s.1 <= from) {
                if let Some(seg) = segment_at(&st, base) {
                    ev.push_scan(&st, seg, seg_end(&st, seg), max_line);
                }
            }
        } else {
            let from = read.from.unwrap_or(1).max(1);
            ev.version_bound = from;
            for &(base, _, _) in sealed.iter().filter(|s| s.2 >= from) {
                if let Some(seg) = segment_at(&st, base) {
                    ev.push_scan(&st, seg, seg.data_start, max_line);
                }
            }
            if let (Some(a), Some(file_seg)) = (active, st.segments.last()) {
                let skip = from.saturating_sub(a.first_version) as usize;
                if skip < a.offsets.len() {
                    ev.push_offsets(&st, file_seg, a.offsets[skip..].to_vec(), max_line);
                }
            }
        }
        Ok(ev)
    }

    /// Reads the global log in seq order (or reversed), across all streams.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// store.append("a", ExpectedVersion::Any, [NewEvent::new("X", serde_json::json!(1))])?;
    /// store.append("b", ExpectedVersion::Any, [NewEvent::new("Y", serde_json::json!(2))])?;
    /// let streams: Vec<String> = store.read_all(Read::forward().from(2))?
    ///     .map(|e| e.map(|e| e.stream))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(streams, ["b"]);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn read_all(&self, read: Read) -> Result<Events> {
        let st = self.inner.lock_state();
        let max_seq = self.head_seq();
        let max_line = self.inner.config.max_line();
        let backward = read.direction == Direction::Backward;
        let mut ev = Events::new(backward, read.limit, max_seq);
        if st.segments.is_empty() {
            return Ok(ev);
        }
        let last = st.segments.len() - 1;
        if backward {
            let from = read.from.unwrap_or(u64::MAX).min(max_seq);
            ev.seq_bound = from;
            if from == 0 {
                return Ok(ev);
            }
            let start = st
                .segments
                .partition_point(|s| s.base <= from)
                .saturating_sub(1);
            for i in (0..=start).rev() {
                let seg = &st.segments[i];
                // Lines from the first sparse entry past `from` on hold only greater seqs.
                let sparse: &[(u64, u64)] = if i == last {
                    &st.active_sparse
                } else {
                    &seg.sparse
                };
                let end = seg_end(&st, seg);
                let stop = sparse
                    .get(sparse.partition_point(|&(s, _)| s <= from))
                    .map_or(end, |&(_, o)| o);
                ev.push_scan(&st, seg, stop, max_line);
            }
        } else {
            let from = read.from.unwrap_or(1).max(1);
            ev.seq_bound = from;
            let start = st
                .segments
                .partition_point(|s| s.base <= from)
                .saturating_sub(1);
            for i in start..=last {
                let seg = &st.segments[i];
                let pos = if i != start {
                    seg.data_start
                } else if i == last {
                    let idx = st.active_sparse.partition_point(|&(s, _)| s <= from);
                    if idx == 0 {
                        seg.data_start
                    } else {
                        st.active_sparse[idx - 1].1
                    }
                } else {
                    seg.seek(from)
                };
                ev.push_scan(&st, seg, pos, max_line);
            }
        }
        Ok(ev)
    }
}

fn segment_at(st: &State, base: u64) -> Option<&Segment> {
    let i = st.segments.partition_point(|s| s.base < base);
    st.segments.get(i).filter(|s| s.base == base)
}

/// Where a segment's complete data ends.
fn seg_end(st: &State, seg: &Segment) -> u64 {
    let is_active =
        st.active_file.is_some() && st.segments.last().map(|s| s.base) == Some(seg.base);
    if is_active { st.active_len } else { seg.len }
}

impl Events {
    fn new(backward: bool, limit: Option<usize>, max_seq: u64) -> Events {
        Events {
            sources: VecDeque::new(),
            backward,
            remaining: limit.unwrap_or(usize::MAX),
            max_seq,
            seq_bound: 0,
            version_bound: 0,
            stream: None,
            done: false,
        }
    }

    fn push_scan(&mut self, st: &State, seg: &Segment, pos: u64, max_line: usize) {
        let end = seg_end(st, seg);
        self.sources.push_back(Source {
            lines: Lines::new(seg.data.clone(), end, max_line),
            path: seg.path.clone(),
            cursor: Cursor::Scan {
                pos,
                lower: seg.data_start,
            },
        });
    }

    fn push_offsets(&mut self, st: &State, seg: &Segment, offsets: Vec<u64>, max_line: usize) {
        let end = seg_end(st, seg);
        self.sources.push_back(Source {
            lines: Lines::new(seg.data.clone(), end, max_line),
            path: seg.path.clone(),
            cursor: Cursor::Offsets { offsets, next: 0 },
        });
    }

    /// The next candidate event of the front source, or `None` when that source is exhausted.
    fn next_in_source(&mut self) -> Option<Result<RecordedEvent>> {
        let backward = self.backward;
        let src = self.sources.front_mut()?;
        loop {
            let io = |e| Error::io("read", &src.path, e);
            let (start, len) = match &mut src.cursor {
                Cursor::Offsets { offsets, next } => {
                    let &off = offsets.get(*next)?;
                    *next += 1;
                    match src.lines.line_end(off) {
                        Ok(LineEnd::Line(n)) => (off, n),
                        Ok(_) => {
                            return Some(Err(Error::corrupt(&src.path, off, "record is torn")));
                        }
                        Err(e) => return Some(Err(io(e))),
                    }
                }
                Cursor::Scan { pos, lower } if backward => {
                    if *pos <= *lower {
                        return None;
                    }
                    match src.lines.line_start_before(*pos, *lower) {
                        Ok(Some(s)) => {
                            let n = (*pos - 1 - s) as usize;
                            *pos = s;
                            (s, n)
                        }
                        Ok(None) => {
                            let at = *pos;
                            return Some(Err(Error::corrupt(&src.path, at, "line too long")));
                        }
                        Err(e) => return Some(Err(io(e))),
                    }
                }
                Cursor::Scan { pos, .. } => {
                    if *pos >= src.lines.end() {
                        return None;
                    }
                    let at = *pos;
                    match src.lines.line_end(at) {
                        Ok(LineEnd::Line(n)) => {
                            *pos += n as u64 + 1;
                            (at, n)
                        }
                        Ok(_) => return Some(Err(Error::corrupt(&src.path, at, "record is torn"))),
                        Err(e) => return Some(Err(io(e))),
                    }
                }
            };
            let line = match src.lines.window(start, len, backward) {
                Ok(l) => l,
                Err(e) => return Some(Err(io(e))),
            };
            if let Some(f) = &self.stream
                && memchr::memmem::find(line, &f.needle).is_none()
            {
                continue;
            }
            let meta = match record::decode_record(line) {
                Ok(m) => m,
                Err(reason) => return Some(Err(Error::corrupt(&src.path, start, reason))),
            };
            let (seq, version) = (meta.rec.seq, meta.rec.version);
            if let Some(f) = &self.stream {
                if meta.rec.stream != f.name.as_str() {
                    continue;
                }
                let before = if backward {
                    version > self.version_bound
                } else {
                    version < self.version_bound
                };
                if before {
                    continue;
                }
            } else {
                let before = if backward {
                    seq > self.seq_bound
                } else {
                    seq < self.seq_bound
                };
                if before {
                    continue;
                }
            }
            if seq > self.max_seq {
                if backward {
                    continue;
                }
                self.done = true;
                return None;
            }
            return Some(
                meta.to_event()
                    .map_err(|reason| Error::corrupt(&src.path, start, reason)),
            );
        }
    }
}

impl Iterator for Events {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.remaining > 0 && !self.sources.is_empty() {
            match self.next_in_source() {
                Some(Ok(e)) => {
                    self.remaining -= 1;
                    return Some(Ok(e));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None if self.done => return None,
                None => {
                    self.sources.pop_front();
                }
            }
        }
        None
    }
}
