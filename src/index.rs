//! The index of one segment: in memory while the segment is active ([`MemIndex`]), and as a
//! sidecar file (`<base>.idx`) once it is sealed: encoded here, and checked whole and read in
//! place from its bytes by [`IndexFile`] (what `verify` and a whole check use; lookups of a
//! sealed sidecar or of the active segment's checkpoint read it by `pread`, `sealed_index.rs`).
//!
//! An index holds, per record (by *ordinal*: its position in the segment, seq = base + ordinal),
//! its byte offset and time, and a dictionary of *terms* (stream, type, tag, correlation id,
//! causation id, actor, event id), each with the sorted ordinals of the records carrying it.
//! Every byte of a sidecar is checked before use (CRC, then structure); anything wrong makes the
//! caller rebuild it from the segment. Nothing here panics on any input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::block_cache::{BLOCK, Extent, block_sums};
use crate::error::Result;
use crate::storage::Mapped;

/// What a term says about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Kind {
    Stream = 0,
    Type = 1,
    Tag = 2,
    Correlation = 3,
    Causation = 4,
    Actor = 5,
    Id = 6,
    /// An append's idempotency key (on the first record of its batch).
    Key = 7,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Stream,
        Kind::Type,
        Kind::Tag,
        Kind::Correlation,
        Kind::Causation,
        Kind::Actor,
        Kind::Id,
        Kind::Key,
    ];

    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(b)).copied()
    }
}

/// The terms of one record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Terms {
    pub stream: String,
    pub event_type: String,
    pub id: String,
    pub tags: Vec<String>,
    pub correlation: Option<String>,
    pub causation: Option<String>,
    pub actor: Option<String>,
    pub key: Option<String>,
}

impl Terms {
    /// The terms, borrowed.
    pub(crate) fn borrowed(&self) -> TermsRef<'_> {
        TermsRef {
            stream: &self.stream,
            event_type: &self.event_type,
            id: &self.id,
            tags: &self.tags,
            correlation: self.correlation.as_deref(),
            causation: self.causation.as_deref(),
            actor: self.actor.as_deref(),
            key: self.key.as_deref(),
        }
    }
}

/// The terms of one record, borrowed from wherever they are (a scanned record, an event about
/// to be written).
pub(crate) struct TermsRef<'a> {
    pub stream: &'a str,
    pub event_type: &'a str,
    pub id: &'a str,
    pub tags: &'a [String],
    pub correlation: Option<&'a str>,
    pub causation: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub key: Option<&'a str>,
}

impl TermsRef<'_> {
    fn each(&self, mut f: impl FnMut(Kind, &str)) {
        f(Kind::Stream, self.stream);
        f(Kind::Type, self.event_type);
        f(Kind::Id, self.id);
        for t in self.tags {
            f(Kind::Tag, t);
        }
        for (kind, v) in [
            (Kind::Correlation, self.correlation),
            (Kind::Causation, self.causation),
            (Kind::Actor, self.actor),
            (Kind::Key, self.key),
        ] {
            if let Some(v) = v {
                f(kind, v);
            }
        }
    }
}

/// The term dictionary of one kind, in memory: the text in one arena (`term_map.rs`). Hashed
/// with foldhash: several times cheaper than the default SipHash on short keys (a profile of
/// 1,000-event appends spent 13% hashing), and seeded per process like it.
type TermMap = crate::term_map::TermMap<Posting>;

/// A term's postings. Most terms of an active segment are event ids, carried by one record
/// each: those keep their ordinal inline instead of in a one-element vector (an allocation and
/// ~32 bytes less per event).
#[derive(Debug, Clone)]
enum Posting {
    One(u32),
    Many(Vec<u32>),
}

impl Posting {
    fn as_slice(&self) -> &[u32] {
        match self {
            Posting::One(o) => std::slice::from_ref(o),
            Posting::Many(v) => v,
        }
    }

    fn push(&mut self, ord: u32) {
        match self {
            Posting::One(o) if *o == ord => {}
            Posting::One(o) => *self = Posting::Many(vec![*o, ord]),
            // A tag repeated on one record is one posting.
            Posting::Many(v) if v.last() == Some(&ord) => {}
            Posting::Many(v) => v.push(ord),
        }
    }
}

impl From<Vec<u32>> for Posting {
    fn from(v: Vec<u32>) -> Posting {
        match v[..] {
            [o] => Posting::One(o),
            _ => Posting::Many(v),
        }
    }
}

/// Hashes a `u64` that is already a hash: the identity.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The event ids of an active segment: one per record, nearly all distinct, so they are kept
/// as one text arena (no allocation per id) with a table from a 64-bit hash of the id to the
/// first ordinal carrying it. A hash shared by several ordinals (a duplicate id, or a collision)
/// sends the rest to `more`; every lookup compares the text.
///
/// The table is brought up to date by the first lookup after an append, not by the append
/// itself: an append whose ids the store generated never looks ids up, and hashing each id as
/// it was written was 14% of the CPU of 1,000-event appends. An import or a retry, which look
/// up every id, hash each once as before.
#[derive(Debug, Default)]
struct Ids {
    text: String,
    /// `ends[ord]`: where the id of record `ord` ends in `text`.
    ends: Vec<u32>,
    /// Behind a mutex so that a lookup through `&self` can catch it up; only ever taken under
    /// the state lock (or on an index no one else sees), so never contended.
    table: std::sync::Mutex<IdTable>,
    state: foldhash::fast::RandomState,
}

/// The hash table of [`Ids`], covering the ordinals below `hashed`.
#[derive(Debug, Clone, Default)]
struct IdTable {
    first: HashMap<u64, u32, std::hash::BuildHasherDefault<PassThrough>>,
    more: Vec<(u64, u32)>,
    hashed: u32,
}

impl Clone for Ids {
    fn clone(&self) -> Ids {
        Ids {
            text: self.text.clone(),
            ends: self.ends.clone(),
            table: std::sync::Mutex::new(self.lock().clone()),
            state: self.state.clone(),
        }
    }
}

impl Ids {
    fn get(&self, ord: u32) -> &str {
        let end = self.ends[ord as usize] as usize;
        let start = ord
            .checked_sub(1)
            .map_or(0, |p| self.ends[p as usize] as usize);
        &self.text[start..end]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        let t = self.table.get_mut().unwrap_or_else(|p| p.into_inner());
        t.first.clear();
        t.more.clear();
        t.hashed = 0;
    }

    fn push(&mut self, ord: u32, id: &str) {
        if ord as usize != self.ends.len() {
            return; // a second id term on one record: not an event the store writes
        }
        self.text.push_str(id);
        self.ends.push(self.text.len() as u32);
    }

    /// The greatest ordinal carrying `id`.
    fn last(&self, id: &str) -> Option<u32> {
        self.matching(id, |ords| ords.max())
    }

    fn postings(&self, id: &str) -> Vec<u32> {
        let mut v: Vec<u32> = self.matching(id, |ords| ords.collect());
        v.sort_unstable();
        v
    }

    /// `f` of the ordinals carrying `id` (in no order), after bringing the table up to date.
    fn matching<T>(&self, id: &str, f: impl FnOnce(&mut dyn Iterator<Item = u32>) -> T) -> T {
        let mut t = self.lock();
        for ord in t.hashed..self.ends.len() as u32 {
            let h = std::hash::BuildHasher::hash_one(&self.state, self.get(ord));
            match t.first.entry(h) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(ord);
                }
                std::collections::hash_map::Entry::Occupied(_) => t.more.push((h, ord)),
            }
        }
        t.hashed = self.ends.len() as u32;
        let h = std::hash::BuildHasher::hash_one(&self.state, id);
        let first = t.first.get(&h).copied();
        let more = first.map_or(&[][..], |_| &t.more[..]);
        let mut ords = first
            .into_iter()
            .chain(more.iter().filter(|m| m.0 == h).map(|m| m.1))
            .filter(|&o| self.get(o) == id);
        f(&mut ords)
    }

    /// Every distinct id, sorted by id, with the range of its ordinals in the second vector
    /// (ascending): no vector per id. Ids generated by the store (UUIDv7) arrive in order, and
    /// the sort finds them sorted in one pass.
    fn entries(&self) -> (Vec<(&str, std::ops::Range<usize>)>, Vec<u32>) {
        let mut all: Vec<(&str, u32)> = (0..self.ends.len() as u32)
            .map(|o| (self.get(o), o))
            .collect();
        all.sort_unstable();
        let mut out: Vec<(&str, std::ops::Range<usize>)> = Vec::with_capacity(all.len());
        let ords = all.iter().map(|&(_, o)| o).collect();
        for (i, (id, _)) in all.into_iter().enumerate() {
            match out.last_mut() {
                Some((last, r)) if *last == id => r.end = i + 1,
                _ => out.push((id, i..i + 1)),
            }
        }
        (out, ords)
    }
}

/// The first 16 bytes of `term` as a big-endian number, zero-padded: `a < b` between two keys
/// means the same between the terms (a term that ends first pads with zeros, which no byte is
/// below), and equal keys leave the order to the whole terms.
fn prefix_key(term: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = term.len().min(16);
    b[..n].copy_from_slice(&term.as_bytes()[..n]);
    u128::from_be_bytes(b)
}

/// The records an active segment's index continues from: a checkpoint's, checked already (an
/// [`IndexFile`]) or a block at a time as lookups read it (`active_checkpoint.rs`). Every
/// lookup answers a [`Result`]: reading the checkpoint may find it damaged, and making its
/// index again from the segment may find the segment itself damaged.
pub(crate) trait CheckpointIndex: Send + Sync {
    /// Records it holds (known without checking it).
    fn count(&self) -> u64;
    /// The time of its first record, if it holds any (known without checking it).
    fn first_time(&self) -> Option<i64>;
    /// Byte offset of record `ord` in the segment.
    fn position(&self, ord: u32) -> Result<Option<u32>>;
    /// Time of record `ord`.
    fn time(&self, ord: u32) -> Result<Option<i64>>;
    /// The first ordinal whose time is at least `t` (`count` if none).
    fn first_at_or_after(&self, t: i64) -> Result<u32>;
    /// The ordinals of records carrying `term`, ascending.
    fn postings(&self, kind: Kind, term: &str) -> Result<Vec<u32>>;
    /// The greatest ordinal of a record carrying `term`.
    fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>>;
    /// Every term of `kind` starting with `prefix`, in byte order, with its postings.
    fn terms_with_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u32>)>>;
    /// Where each of the records `ords` (ascending, all below `count`) starts, how long it is
    /// and its ordinal, the last record ending where the checkpoint does; records whose
    /// positions do not add up are left out.
    fn extents(&self, ords: &[u32]) -> Result<Vec<Extent>>;
    /// Its records copied into memory (checked whole first).
    fn expand(&self) -> Result<MemIndex>;
}

impl CheckpointIndex for IndexFile {
    fn count(&self) -> u64 {
        self.count
    }

    fn first_time(&self) -> Option<i64> {
        self.time(0)
    }

    fn position(&self, ord: u32) -> Result<Option<u32>> {
        Ok(IndexFile::position(self, ord))
    }

    fn time(&self, ord: u32) -> Result<Option<i64>> {
        Ok(IndexFile::time(self, ord))
    }

    fn first_at_or_after(&self, t: i64) -> Result<u32> {
        Ok(IndexFile::first_at_or_after(self, t))
    }

    fn postings(&self, kind: Kind, term: &str) -> Result<Vec<u32>> {
        Ok(IndexFile::postings(self, kind, term).iter().collect())
    }

    fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>> {
        Ok(IndexFile::postings(self, kind, term).iter().last())
    }

    fn terms_with_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u32>)>> {
        Ok(IndexFile::terms_with_prefix(self, kind, prefix)
            .map(|(t, p)| (t.to_owned(), p.iter().collect()))
            .collect())
    }

    fn extents(&self, ords: &[u32]) -> Result<Vec<Extent>> {
        Ok(ords
            .iter()
            .filter_map(|&o| {
                let at = IndexFile::position(self, o)?;
                let next = IndexFile::position(self, o + 1).map_or(self.segment_len, u64::from);
                if next > self.segment_len {
                    return None;
                }
                let len = next.checked_sub(u64::from(at))?;
                Some((u64::from(at), u32::try_from(len).ok()?, o))
            })
            .collect())
    }

    fn expand(&self) -> Result<MemIndex> {
        Ok(MemIndex::expand(self))
    }
}

/// A segment's index under construction (the active segment's, or one being rebuilt).
///
/// An active segment continued from its checkpoint (an open after a clean close) keeps the
/// checkpoint's records in place, in the file (`base`): the open reads no more of it than its
/// header, builds nothing per event, and lookups read and check the blocks they need
/// (`active_checkpoint.rs`, issue 16). That is why the methods that may reach those records
/// return a [`Result`]: a read may find the checkpoint damaged, and rebuilding its index the
/// segment itself. The records appended
/// since are in the maps below, with their ordinals counted on from the checkpoint's. Only
/// `encode` (at a seal or a clean close) copies the checkpoint's records into memory.
#[derive(Default, Clone)]
pub(crate) struct MemIndex {
    /// The first records, read in place: ordinals `0..base.count()`.
    base: Option<Arc<dyn CheckpointIndex>>,
    /// Positions and times of the records after `base`.
    positions: Vec<u32>,
    times: Vec<i64>,
    /// Every kind's terms but the ids, with ordinals counted from the segment's first record.
    terms: [TermMap; 8],
    /// The ids of the records after `base`, by ordinal counted from the first of them.
    ids: Ids,
}

impl std::fmt::Debug for MemIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemIndex")
            .field("records", &self.len())
            .field("from_checkpoint", &self.base_len())
            .finish_non_exhaustive()
    }
}

impl MemIndex {
    /// Records read in place from the checkpoint.
    fn base_len(&self) -> u32 {
        self.base.as_ref().map_or(0, |b| b.count() as u32)
    }

    /// The checkpoint's records.
    fn base(&self) -> Option<&dyn CheckpointIndex> {
        self.base.as_deref()
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.base_len() as usize + self.positions.len()
    }

    /// Byte offset of record `ord` in the segment.
    pub(crate) fn position(&self, ord: u32) -> Result<Option<u32>> {
        Ok(match ord.checked_sub(self.base_len()) {
            None => match self.base() {
                Some(b) => b.position(ord)?,
                None => None,
            },
            Some(i) => self.positions.get(i as usize).copied(),
        })
    }

    /// Time of record `ord` (the last one's is the sealed segment's summary: `sealer.rs`).
    pub(crate) fn time(&self, ord: u32) -> Result<Option<i64>> {
        Ok(match ord.checked_sub(self.base_len()) {
            None => match self.base() {
                Some(b) => b.time(ord)?,
                None => None,
            },
            Some(i) => self.times.get(i as usize).copied(),
        })
    }

    /// The first ordinal whose time is at least `t` (`len` if none).
    pub(crate) fn first_at_or_after(&self, t: i64) -> Result<u32> {
        let n = self.base_len();
        if let Some(b) = self.base()
            && n > 0
            && b.time(n - 1)?.is_some_and(|last| last >= t)
        {
            return b.first_at_or_after(t);
        }
        Ok(n + self.times.partition_point(|&x| x < t) as u32)
    }

    /// Where each of the records `ords` (ascending) starts, how long it is and its ordinal,
    /// the last record ending at `end`; records whose positions do not add up are left out.
    /// The checkpoint's records are looked up together (its positions read a run at a time).
    pub(crate) fn extents(&self, ords: impl Iterator<Item = u32>, end: u64) -> Result<Vec<Extent>> {
        let ords: Vec<u32> = ords.collect();
        let n = self.base_len();
        let split = ords.partition_point(|&o| o < n);
        let mut out = match self.base() {
            Some(b) if split > 0 => b.extents(&ords[..split])?,
            _ => Vec::new(),
        };
        for &o in &ords[split..] {
            let i = (o - n) as usize;
            let Some(&at) = self.positions.get(i) else {
                continue;
            };
            let next = self.positions.get(i + 1).map_or(end, |&p| u64::from(p));
            if let Some(len) = (next <= end)
                .then(|| next.checked_sub(u64::from(at)))
                .flatten()
                .and_then(|l| u32::try_from(l).ok())
            {
                out.push((u64::from(at), len, o));
            }
        }
        Ok(out)
    }

    /// Empties the index, keeping its allocations for the next segment's records.
    pub(crate) fn clear(&mut self) {
        self.base = None;
        self.positions.clear();
        self.times.clear();
        self.terms.iter_mut().for_each(TermMap::clear);
        self.ids.clear();
    }

    /// Adds the next record.
    pub(crate) fn add(&mut self, offset: u64, time: i64, terms: &TermsRef<'_>) {
        let ord = self.len() as u32;
        let local = self.positions.len() as u32;
        self.positions.push(offset as u32);
        self.times.push(time);
        terms.each(|kind, term| {
            if kind == Kind::Id {
                self.ids.push(local, term);
                return;
            }
            self.terms[kind as usize]
                .get_or_insert_with(term, || Posting::One(ord))
                .push(ord);
        });
    }

    /// The ordinals of records carrying `term`.
    pub(crate) fn postings(&self, kind: Kind, term: &str) -> Result<std::borrow::Cow<'_, [u32]>> {
        let n = self.base_len();
        let here: std::borrow::Cow<'_, [u32]> = if kind == Kind::Id {
            let mut v = self.ids.postings(term);
            v.iter_mut().for_each(|o| *o += n);
            v.into()
        } else {
            self.terms[kind as usize]
                .get(term)
                .map_or(&[][..], Posting::as_slice)
                .into()
        };
        Ok(match self.base() {
            Some(b) => {
                let mut v = b.postings(kind, term)?;
                if v.is_empty() {
                    return Ok(here);
                }
                v.extend_from_slice(&here);
                v.into()
            }
            None => here,
        })
    }

    /// The greatest ordinal of a record carrying `term`, without collecting them: an import
    /// looks up every event's id, and a vector per lookup was an allocation per event.
    pub(crate) fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>> {
        let here = if kind == Kind::Id {
            self.ids.last(term).map(|o| o + self.base_len())
        } else {
            self.terms[kind as usize]
                .get(term)
                .and_then(|p| p.as_slice().last().copied())
        };
        if here.is_some() {
            return Ok(here);
        }
        match self.base() {
            Some(b) => b.last_posting(kind, term),
            None => Ok(None),
        }
    }

    /// Every term of `kind` starting with `prefix`, with its postings (unordered). Not for
    /// event ids (look those up one by one with [`MemIndex::postings`]).
    pub(crate) fn terms_with_prefix<'a>(
        &'a self,
        kind: Kind,
        prefix: &str,
    ) -> Result<impl Iterator<Item = (Cow<'a, str>, Cow<'a, [u32]>)> + 'a> {
        let map = &self.terms[kind as usize];
        let before = match self.base() {
            Some(b) => b.terms_with_prefix(kind, prefix)?,
            None => Vec::new(),
        };
        // The checkpoint's terms come in byte order: a term only here is one not found there.
        let only_here: Vec<(Cow<'a, str>, Cow<'a, [u32]>)> = map
            .iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .filter(|(t, _)| before.binary_search_by(|(b, _)| b.as_str().cmp(t)).is_err())
            .map(|(t, p)| (Cow::Borrowed(t), Cow::Borrowed(p.as_slice())))
            .collect();
        let from_base = before.into_iter().map(move |(t, mut v)| {
            if let Some(here) = map.get(t.as_str()) {
                v.extend_from_slice(here.as_slice());
            }
            (Cow::Owned(t), Cow::Owned(v))
        });
        Ok(from_base.chain(only_here))
    }

    /// The time of the first record, if any (read from the segment at open for a checkpoint's,
    /// so that asking checks nothing).
    pub(crate) fn first_time(&self) -> Option<i64> {
        match &self.base {
            Some(b) if b.count() > 0 => b.first_time(),
            _ => self.times.first().copied(),
        }
    }

    /// The same index with the checkpoint's records copied into memory.
    fn expanded(&self) -> Result<std::borrow::Cow<'_, MemIndex>> {
        let Some(b) = self.base() else {
            return Ok(std::borrow::Cow::Borrowed(self));
        };
        let mut m = b.expand()?;
        let n = self.base_len();
        m.positions.extend_from_slice(&self.positions);
        m.times.extend_from_slice(&self.times);
        for (kind, map) in self.terms.iter().enumerate() {
            for (t, p) in map.iter() {
                match m.terms[kind].get_mut(t) {
                    Some(q) => p.as_slice().iter().for_each(|&o| q.push(o)),
                    None => {
                        m.terms[kind].get_or_insert_with(t, || p.clone());
                    }
                }
            }
        }
        for i in 0..self.ids.ends.len() as u32 {
            m.ids.push(n + i, self.ids.get(i));
        }
        Ok(std::borrow::Cow::Owned(m))
    }

    /// Serialises the index as a sidecar file describing `segment_len` bytes of segment `base`.
    /// Fails only where the checkpoint it continues from had to be rebuilt, and the segment
    /// turned out damaged.
    pub(crate) fn encode(&self, base: u64, segment_len: u64) -> Result<Vec<u8>> {
        self.encode_as(base, segment_len, FORMAT)
    }

    /// [`MemIndex::encode`] in `format` ([`FORMAT`], or [`FORMAT_WHOLE`], as `verify` holds a
    /// sidecar of that format to its segment).
    pub(crate) fn encode_as(&self, base: u64, segment_len: u64, format: u32) -> Result<Vec<u8>> {
        if format != FORMAT && format != FORMAT_WHOLE {
            return Err(crate::error::Error::invalid(
                "index format",
                format!("{format} is not one this version writes"),
            ));
        }
        let full = self.expanded()?;
        let this = full.as_ref();
        debug_assert!(this.base.is_none());
        // In (kind, term bytes) order: kind by kind, each kind's terms sorted on their own
        // (the ids come sorted), rather than one sort of every entry.
        let (ids, id_ords) = this.ids.entries();
        let mut entries: Vec<(Kind, &str, &[u32])> =
            Vec::with_capacity(ids.len() + this.terms.iter().map(TermMap::len).sum::<usize>());
        let mut keyed: Vec<(u128, &str, &[u32])> = Vec::new();
        for kind in Kind::ALL {
            if kind == Kind::Id {
                entries.extend(ids.iter().map(|(t, r)| (kind, *t, &id_ords[r.clone()])));
                continue;
            }
            // Sorted by the first 16 bytes as a number, then by the whole term: the same order
            // as the bytes', with most comparisons on integers rather than through `memcmp`
            // (sorting a bulk load's correlation and causation ids was 3% of its CPU).
            keyed.clear();
            keyed.extend(
                this.terms[kind as usize]
                    .iter()
                    .map(|(t, p)| (prefix_key(t), t, p.as_slice())),
            );
            keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            entries.extend(keyed.iter().map(|&(_, t, p)| (kind, t, p)));
        }
        // Sized once, written once: no intermediate buffers copied into the file's.
        let entry_len: usize = entries.iter().map(|e| ENTRY_FIXED + e.1.len()).sum();
        let posting_count: usize = entries.iter().map(|e| e.2.len()).sum();
        let count = this.positions.len();
        let blocks = format == FORMAT;
        let sample_len: usize = match blocks {
            true => entries
                .iter()
                .step_by(SAMPLE_EVERY as usize)
                .map(|e| 3 + e.1.len())
                .sum(),
            false => 0,
        };
        let body =
            HEADER + count * 12 + entries.len() * 4 + entry_len + posting_count * 4 + sample_len;
        let total = match blocks {
            true => body + (body as u64).div_ceil(BLOCK) as usize * 4 + 8,
            false => body + 4,
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&format.to_le_bytes());
        let sample_field = u32::try_from(sample_len).map_err(|_| {
            crate::error::Error::invalid(
                "segment",
                format!("the index of segment {base} holds more terms than a sidecar can sample"),
            )
        })?;
        out.extend_from_slice(&sample_field.to_le_bytes());
        for v in [
            segment_len,
            base,
            count as u64,
            entries.len() as u64,
            entry_len as u64,
            posting_count as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        debug_assert_eq!(out.len(), HEADER);
        this.positions
            .iter()
            .for_each(|p| out.extend_from_slice(&p.to_le_bytes()));
        this.times
            .iter()
            .for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
        let mut offset = 0u32;
        for (_, term, _) in &entries {
            out.extend_from_slice(&offset.to_le_bytes());
            offset += (ENTRY_FIXED + term.len()) as u32;
        }
        let mut first = 0u32;
        for (kind, term, p) in &entries {
            out.push(*kind as u8);
            out.extend_from_slice(&(term.len() as u16).to_le_bytes());
            out.extend_from_slice(term.as_bytes());
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            first += p.len() as u32;
        }
        for (_, _, p) in &entries {
            p.iter()
                .for_each(|o| out.extend_from_slice(&o.to_le_bytes()));
        }
        if blocks {
            // The sample: every `SAMPLE_EVERY`th term, so that a first lookup reads it at once.
            for (kind, term, _) in entries.iter().step_by(SAMPLE_EVERY as usize) {
                out.push(*kind as u8);
                out.extend_from_slice(&(term.len() as u16).to_le_bytes());
                out.extend_from_slice(term.as_bytes());
            }
            debug_assert_eq!(out.len(), body);
            // A CRC per block, then the CRC of those, then the CRC of everything.
            let sums = block_sums(&out);
            out.extend_from_slice(&sums);
            out.extend_from_slice(&crc32fast::hash(&sums).to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }

    /// Continues an active segment from its checkpoint, read in place.
    pub(crate) fn from_checkpoint(c: Arc<dyn CheckpointIndex>) -> MemIndex {
        MemIndex {
            base: Some(c),
            ..MemIndex::default()
        }
    }

    /// A sidecar's records copied into memory.
    fn expand(f: &IndexFile) -> MemIndex {
        let mut m = MemIndex::default();
        let n = f.count as usize;
        m.positions = (0..n).filter_map(|i| f.position(i as u32)).collect();
        m.times = (0..n).filter_map(|i| f.time(i as u32)).collect();
        let mut ids: Vec<Option<&str>> = vec![None; n];
        for i in 0..f.terms {
            if let Some((kind, term, p)) = f.entry(i) {
                if kind == Kind::Id {
                    for o in p.iter() {
                        if let Some(slot) = ids.get_mut(o as usize) {
                            slot.get_or_insert(term);
                        }
                    }
                    continue;
                }
                let p: Vec<u32> = p.iter().collect();
                if !p.is_empty() {
                    // A sidecar's terms are distinct (checked when it was opened); were one
                    // repeated, the last would win, as before.
                    *m.terms[kind as usize].get_or_insert_with(term, || Posting::One(0)) = p.into();
                }
            }
        }
        for (o, id) in ids.into_iter().enumerate() {
            m.ids.push(o as u32, id.unwrap_or(""));
        }
        m
    }
}

/// Extension of index sidecars.
pub(crate) const INDEX_EXT: &str = "idx";
pub(crate) const MAGIC: &[u8; 8] = b"EVFIDX\0\x01";
/// The format written: 2, with a sample of the terms and a CRC per block (`docs/format.md`).
pub(crate) const FORMAT: u32 = 2;
/// The format before it, still read: one CRC for the whole file, so checked in full.
pub(crate) const FORMAT_WHOLE: u32 = 1;
pub(crate) const HEADER: usize = 64;
/// A format-2 sidecar's sample holds terms `0, SAMPLE_EVERY, 2 * SAMPLE_EVERY, ...`.
pub(crate) const SAMPLE_EVERY: u64 = 512;
/// An entry's bytes besides its term: kind (1), term length (2), first posting (4), count (4).
const ENTRY_FIXED: usize = 11;

/// Sorted ordinals stored in a sidecar (little-endian u32s).
#[derive(Clone, Copy)]
pub(crate) struct Postings<'a>(&'a [u8]);

impl<'a> Postings<'a> {
    pub(crate) fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The greatest ordinal.
    #[cfg(test)]
    pub(crate) fn last(&self) -> Option<u32> {
        let b = self.0.rchunks_exact(4).next()?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A validated, immutable sidecar.
pub(crate) struct IndexFile {
    bytes: Arc<Mapped>,
    format: u32,
    /// Bytes before the block CRCs or the CRC.
    body_len: usize,
    pub segment_len: u64,
    pub count: u64,
    terms: u64,
    positions_at: usize,
    times_at: usize,
    offsets_at: usize,
    entries_at: usize,
    entries_len: usize,
    postings_at: usize,
    postings_len: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// The terms of a format-2 sidecar's sample (`bytes`, the whole section), checked: one for
/// each [`SAMPLE_EVERY`] of the `terms`, each of a known kind, in strictly ascending order,
/// and nothing after the last.
pub(crate) fn sample_terms(bytes: &[u8], terms: u64) -> Result<Vec<(Kind, &[u8])>, String> {
    let bad = || "index sample is malformed".to_string();
    let want = terms.div_ceil(SAMPLE_EVERY);
    let mut out: Vec<(Kind, &[u8])> = Vec::with_capacity(want.min(1 << 20) as usize);
    let mut at = 0usize;
    while at < bytes.len() {
        let head = bytes.get(at..at + 3).ok_or_else(bad)?;
        let kind = Kind::from_u8(head[0]).ok_or_else(bad)?;
        let len = usize::from(u16::from_le_bytes([head[1], head[2]]));
        let term = bytes.get(at + 3..at + 3 + len).ok_or_else(bad)?;
        if out.last().is_some_and(|&last| last >= (kind, term)) {
            return Err(bad());
        }
        out.push((kind, term));
        at += 3 + len;
    }
    if out.len() as u64 != want {
        return Err(bad());
    }
    Ok(out)
}

/// A sidecar's header, checked: its magic and format, that it describes the segment at `base`
/// (and, if given, exactly `segment_len` bytes of it), counts in range, and sections that add
/// up to the file's length. What both ways of checking a sidecar read first: the whole file
/// mapped ([`IndexFile::open`]) or through small reads (`sidecar::check_by_reads`).
pub(crate) struct Header {
    /// [`FORMAT`] or [`FORMAT_WHOLE`].
    pub format: u32,
    pub segment_len: u64,
    pub count: u64,
    pub terms: u64,
    pub entries_len: u64,
    pub postings_len: u64,
    /// Bytes of the sample of terms (format 2; 0 in format 1).
    pub sample_len: u64,
}

impl Header {
    /// `head` is at least the file's first [`HEADER`] bytes; `file_len` its whole length.
    pub(crate) fn parse(
        head: &[u8],
        file_len: u64,
        base: u64,
        segment_len: Option<u64>,
    ) -> Result<Header, String> {
        if file_len < (HEADER + 4) as u64 || head.len() < HEADER || &head[..8] != MAGIC {
            return Err("not an index sidecar".into());
        }
        let format = u32_at(head, 8).unwrap_or(0);
        if format != FORMAT && format != FORMAT_WHOLE {
            return Err(format!(
                "index sidecar of format {format}, not one this version reads"
            ));
        }
        let field = |i: usize| u64_at(head, 16 + i * 8).unwrap_or(u64::MAX);
        let (seg_len, file_base, count, terms, entries_len, postings_len) =
            (field(0), field(1), field(2), field(3), field(4), field(5));
        if file_base != base || segment_len.is_some_and(|l| l != seg_len) {
            return Err(format!(
                "index describes {seg_len} bytes of segment {file_base}, not {segment_len:?} bytes of {base}"
            ));
        }
        let too_big = |v: u64| v > u32::MAX as u64;
        if too_big(count) || too_big(terms) || too_big(entries_len) || too_big(postings_len) {
            return Err("index counts out of range".into());
        }
        let h = Header {
            format,
            segment_len: seg_len,
            count,
            terms,
            entries_len,
            postings_len,
            sample_len: match format {
                FORMAT => u64::from(u32_at(head, 12).unwrap_or(u32::MAX)),
                _ => 0,
            },
        };
        // A sampled term takes fewer bytes than its entry: a sample larger than the entries
        // is not one this crate wrote (and would be read whole by a first lookup).
        if h.sample_len > h.entries_len || h.file_len() != file_len {
            return Err("index sections do not add up to its length".into());
        }
        Ok(h)
    }

    /// Where the sample of terms starts (format 2), after the postings.
    pub(crate) fn sample_at(&self) -> u64 {
        self.postings_at() + self.postings_len * 4
    }

    /// Bytes before the block CRCs (format 2) or the CRC (format 1).
    pub(crate) fn body_len(&self) -> u64 {
        self.sample_at() + self.sample_len
    }

    /// How many blocks of the body have a CRC (format 2; 0 in format 1).
    pub(crate) fn blocks(&self) -> u64 {
        match self.format {
            FORMAT => self.body_len().div_ceil(BLOCK),
            _ => 0,
        }
    }

    /// The length of the file these fields describe.
    pub(crate) fn file_len(&self) -> u64 {
        match self.format {
            FORMAT => self.body_len() + self.blocks() * 4 + 8,
            _ => self.body_len() + 4,
        }
    }

    /// Where the term offsets start (after the positions and times).
    pub(crate) fn offsets_at(&self) -> u64 {
        HEADER as u64 + self.count * 12
    }

    pub(crate) fn entries_at(&self) -> u64 {
        self.offsets_at() + self.terms * 4
    }

    pub(crate) fn postings_at(&self) -> u64 {
        self.entries_at() + self.entries_len
    }
}

impl IndexFile {
    /// Checks a sidecar's CRC and structure, and that it describes the segment starting at
    /// `base` and (if given) exactly `segment_len` bytes of it. Every later access stays within
    /// what was checked here.
    pub(crate) fn open(
        bytes: Arc<Mapped>,
        base: u64,
        segment_len: Option<u64>,
    ) -> Result<IndexFile, String> {
        let b: &[u8] = &bytes;
        if b.len() < HEADER + 4 || &b[..8] != MAGIC {
            return Err("not an index sidecar".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("index sidecar crc mismatch".into());
        }
        let f = IndexFile::layout(bytes, base, segment_len)?;
        f.validate()?;
        // As `sidecar::check_by_reads`: the file's CRC covers the body and the block sums, so
        // the sums are checked by their own CRC and not recomputed.
        if f.format == FORMAT {
            let b: &[u8] = &f.bytes;
            let body = f.body_len;
            let blocks = body.div_ceil(BLOCK as usize);
            let sums = &b[body..body + blocks * 4];
            if crc32fast::hash(sums).to_le_bytes()[..] != b[body + blocks * 4..][..4] {
                return Err("index sidecar block sums fail their crc".into());
            }
            let sample = sample_terms(&b[f.postings_at + f.postings_len * 4..body], f.terms)?;
            for (k, (kind, term)) in sample.into_iter().enumerate() {
                let i = k as u64 * SAMPLE_EVERY;
                if f.entry_raw(i).map(|(k, t, _)| (k, t)) != Some((kind, term)) {
                    return Err(format!("index sample differs from term {i}"));
                }
            }
        }
        Ok(f)
    }

    /// A sidecar whose bytes were checked already (by reads, in `sidecar.rs`, when it was
    /// first used): reads only its header. Every later access is bounds-checked, and
    /// the header must still name `base` and `segment_len` and add up to the file's length.
    pub(crate) fn open_checked(
        bytes: Arc<Mapped>,
        base: u64,
        segment_len: Option<u64>,
    ) -> Result<IndexFile, String> {
        if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
            return Err("not an index sidecar".into());
        }
        IndexFile::layout(bytes, base, segment_len)
    }

    /// The header's fields and where each section starts.
    fn layout(
        bytes: Arc<Mapped>,
        base: u64,
        segment_len: Option<u64>,
    ) -> Result<IndexFile, String> {
        let h = Header::parse(&bytes, bytes.len() as u64, base, segment_len)?;
        Ok(IndexFile {
            format: h.format,
            body_len: h.body_len() as usize,
            bytes: bytes.clone(),
            segment_len: h.segment_len,
            count: h.count,
            terms: h.terms,
            positions_at: HEADER,
            times_at: HEADER + h.count as usize * 4,
            offsets_at: h.offsets_at() as usize,
            entries_at: h.entries_at() as usize,
            entries_len: h.entries_len as usize,
            postings_at: h.postings_at() as usize,
            postings_len: h.postings_len as usize,
        })
    }

    fn validate(&self) -> Result<(), String> {
        let mut prev_pos: Option<u32> = None;
        let mut prev_time = i64::MIN;
        for i in 0..self.count as u32 {
            let (p, t) = (self.position(i), self.time(i));
            let (Some(p), Some(t)) = (p, t) else {
                return Err("index record table truncated".into());
            };
            if prev_pos.is_some_and(|q| p <= q) || u64::from(p) >= self.segment_len {
                return Err(format!(
                    "index position {p} of record {i} is out of order or past the segment"
                ));
            }
            if t < prev_time {
                return Err("index times decrease".into());
            }
            prev_pos = Some(p);
            prev_time = t;
        }
        let mut prev: Option<(Kind, &[u8])> = None;
        for i in 0..self.terms {
            let (kind, term, p) = self
                .entry_raw(i)
                .ok_or_else(|| format!("index term {i} is malformed"))?;
            if prev.is_some_and(|q| q >= (kind, term)) {
                return Err("index terms out of order".into());
            }
            prev = Some((kind, term));
            let mut last: Option<u32> = None;
            for o in p.iter() {
                if o as u64 >= self.count || last.is_some_and(|l| o <= l) {
                    return Err("index postings out of order or out of range".into());
                }
                last = Some(o);
            }
        }
        Ok(())
    }

    /// The sidecar's bytes.
    pub(crate) fn bytes(&self) -> &Arc<Mapped> {
        &self.bytes
    }

    /// Size of the sidecar in bytes.
    pub(crate) fn byte_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Byte offset of record `ord` in the segment.
    pub(crate) fn position(&self, ord: u32) -> Option<u32> {
        if u64::from(ord) >= self.count {
            return None;
        }
        u32_at(&self.bytes, self.positions_at + ord as usize * 4)
    }

    /// Time of record `ord`.
    pub(crate) fn time(&self, ord: u32) -> Option<i64> {
        if u64::from(ord) >= self.count {
            return None;
        }
        u64_at(&self.bytes, self.times_at + ord as usize * 8).map(|v| v as i64)
    }

    /// The first ordinal whose time is at least `t` (`count` if none).
    pub(crate) fn first_at_or_after(&self, t: i64) -> u32 {
        let (mut lo, mut hi) = (0u32, self.count as u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid).is_some_and(|m| m < t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn entry_raw(&self, i: u64) -> Option<(Kind, &[u8], Postings<'_>)> {
        let b: &[u8] = &self.bytes;
        let off = u32_at(b, self.offsets_at + i as usize * 4)? as usize;
        if off >= self.entries_len {
            return None;
        }
        let e = self.entries_at + off;
        let kind = Kind::from_u8(*b.get(e)?)?;
        let len = u16::from_le_bytes([*b.get(e + 1)?, *b.get(e + 2)?]) as usize;
        let term_end = e + 3 + len;
        if term_end + 8 > self.entries_at + self.entries_len {
            return None;
        }
        let term = b.get(e + 3..term_end)?;
        let start = u32_at(b, term_end)? as usize;
        let n = u32_at(b, term_end + 4)? as usize;
        if start.checked_add(n)? > self.postings_len {
            return None;
        }
        let p = b.get(self.postings_at + start * 4..self.postings_at + (start + n) * 4)?;
        Some((kind, term, Postings(p)))
    }

    /// Entry `i`: kind, term (as text), postings.
    pub(crate) fn entry(&self, i: u64) -> Option<(Kind, &str, Postings<'_>)> {
        let (k, t, p) = self.entry_raw(i)?;
        Some((k, std::str::from_utf8(t).ok()?, p))
    }

    /// Index of the first entry not less than `(kind, term)`.
    fn lower_bound(&self, kind: Kind, term: &[u8]) -> u64 {
        let (mut lo, mut hi) = (0u64, self.terms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry_raw(mid) {
                Some((k, t, _)) if (k, t) < (kind, term) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// The postings of one term (empty if absent).
    pub(crate) fn postings(&self, kind: Kind, term: &str) -> Postings<'_> {
        let i = self.lower_bound(kind, term.as_bytes());
        match self.entry_raw(i) {
            Some((k, t, p)) if k == kind && t == term.as_bytes() => p,
            _ => Postings(&[]),
        }
    }

    /// The least and greatest event id of the segment, if it holds any (two binary searches).
    pub(crate) fn id_range(&self) -> Option<(Box<str>, Box<str>)> {
        let first = self.lower_bound(Kind::Id, b"");
        let end = self.lower_bound(Kind::Key, b"");
        let id = |i: u64| match self.entry(i) {
            Some((Kind::Id, t, _)) => Some(Box::from(t)),
            _ => None,
        };
        Some((id(first)?, id(end.checked_sub(1)?)?))
    }

    /// Every term of `kind` starting with `prefix`, in order, with its postings.
    pub(crate) fn terms_with_prefix<'a>(
        &'a self,
        kind: Kind,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, Postings<'a>)> + 'a {
        let start = self.lower_bound(kind, prefix.as_bytes());
        (start..self.terms).map_while(move |i| {
            let (k, t, p) = self.entry(i)?;
            (k == kind && t.starts_with(prefix)).then_some((t, p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MemIndex {
        let mut m = MemIndex::default();
        fill(&mut m);
        m
    }

    fn fill(m: &mut MemIndex) {
        for i in 0..50u64 {
            m.add(
                100 + i * 40,
                1_000 + i as i64 / 3,
                &Terms {
                    stream: format!("s{}", i % 4),
                    event_type: format!("T{}", i % 3),
                    id: format!("id-{i}"),
                    tags: vec![format!("k={}", i % 2), format!("k={}", i % 2)],
                    correlation: (i % 5 == 0).then(|| "corr".to_string()),
                    causation: None,
                    actor: Some("ann".into()),
                    key: (i % 10 == 0).then(|| format!("key-{i}")),
                }
                .borrowed(),
            );
        }
    }

    fn open(bytes: Vec<u8>) -> Result<IndexFile, String> {
        IndexFile::open(Arc::new(Mapped::Bytes(bytes)), 7, Some(5000))
    }

    #[test]
    fn round_trip_matches_memory() {
        let m = sample();
        let f = open(m.encode(7, 5000).unwrap()).unwrap();
        assert_eq!(f.count, 50);
        for i in 0..50 {
            assert_eq!(f.position(i), Some(m.positions[i as usize]));
            assert_eq!(f.time(i), Some(m.times[i as usize]));
        }
        for kind in Kind::ALL {
            for (t, p) in f.terms_with_prefix(kind, "") {
                assert_eq!(&*m.postings(kind, t).unwrap(), p.iter().collect::<Vec<_>>());
            }
        }
        assert_eq!(&*m.postings(Kind::Id, "id-7").unwrap(), [7]);
        assert!(m.postings(Kind::Id, "id-x").unwrap().is_empty());
        assert_eq!(f.postings(Kind::Tag, "k=1").len(), 25);
        assert_eq!(f.postings(Kind::Correlation, "corr").len(), 10);
        assert_eq!(f.postings(Kind::Stream, "nope").len(), 0);
        let streams: Vec<&str> = f
            .terms_with_prefix(Kind::Stream, "s")
            .map(|(t, _)| t)
            .collect();
        assert_eq!(streams, ["s0", "s1", "s2", "s3"]);
        assert_eq!(f.first_at_or_after(1_005), 15);
        assert_eq!(f.first_at_or_after(0), 0);
        assert_eq!(f.first_at_or_after(9_999), 50);
        let back = MemIndex::expand(&f);
        assert_eq!(back.encode(7, 5000).unwrap(), m.encode(7, 5000).unwrap());
        // Ids in byte order: "id-0" is the least, "id-9" the greatest.
        let (least, greatest) = f.id_range().unwrap();
        assert_eq!((&*least, &*greatest), ("id-0", "id-9"));
        let empty = open(MemIndex::default().encode(7, 5000).unwrap()).unwrap();
        assert!(empty.id_range().is_none());
    }

    #[test]
    fn an_index_continued_from_a_checkpoint_answers_as_one_built_in_memory() {
        let whole = sample();
        let terms = |i: u64| Terms {
            stream: format!("s{}", i % 6),
            event_type: format!("T{}", i % 3),
            id: format!("id-{i}"),
            tags: vec![format!("k={}", i % 2)],
            key: i.is_multiple_of(10).then(|| format!("key-{i}")),
            ..Terms::default()
        };
        // The first 50 records as a checkpoint, 30 more appended after it; and all 80 in memory.
        let checkpoint = Arc::new(open(whole.encode(7, 5000).unwrap()).unwrap());
        let mut layered = MemIndex::from_checkpoint(checkpoint);
        let mut flat = whole.clone();
        for i in 50..80u64 {
            for m in [&mut layered, &mut flat] {
                m.add(5000 + i * 40, 1_020 + i as i64, &terms(i).borrowed());
            }
        }
        assert_eq!(layered.len(), 80);
        for ord in 0..81 {
            assert_eq!(
                layered.position(ord).unwrap(),
                flat.position(ord).unwrap(),
                "{ord}"
            );
            assert_eq!(layered.time(ord).unwrap(), flat.time(ord).unwrap(), "{ord}");
        }
        for t in [0, 1_000, 1_005, 1_016, 1_017, 1_070, 1_099, 1_100, 9_999] {
            assert_eq!(
                layered.first_at_or_after(t).unwrap(),
                flat.first_at_or_after(t).unwrap(),
                "{t}"
            );
        }
        for kind in Kind::ALL.into_iter().filter(|&k| k != Kind::Id) {
            let mut a: Vec<(String, Vec<u32>)> = layered
                .terms_with_prefix(kind, "")
                .unwrap()
                .map(|(t, p)| (t.into_owned(), p.into_owned()))
                .collect();
            let mut b: Vec<(String, Vec<u32>)> = flat
                .terms_with_prefix(kind, "")
                .unwrap()
                .map(|(t, p)| (t.into_owned(), p.to_vec()))
                .collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{kind:?}");
            for (t, p) in &b {
                assert_eq!(&*layered.postings(kind, t).unwrap(), &p[..], "{kind:?} {t}");
            }
        }
        for id in ["id-0", "id-49", "id-50", "id-79", "id-80"] {
            assert_eq!(
                layered.postings(Kind::Id, id).unwrap(),
                flat.postings(Kind::Id, id).unwrap(),
                "{id}"
            );
            assert_eq!(
                layered.last_posting(Kind::Id, id).unwrap(),
                flat.last_posting(Kind::Id, id).unwrap(),
                "{id}"
            );
        }
        for (kind, term) in [
            (Kind::Stream, "s0"),
            (Kind::Stream, "s5"),
            (Kind::Type, "T2"),
            (Kind::Tag, "k=1"),
            (Kind::Stream, "absent"),
        ] {
            assert_eq!(
                layered.last_posting(kind, term).unwrap(),
                flat.last_posting(kind, term).unwrap(),
                "{kind:?} {term}"
            );
        }
        assert_eq!(layered.first_time(), Some(1_000));
        assert_eq!(
            layered.encode(7, 9000).unwrap(),
            flat.encode(7, 9000).unwrap()
        );
    }

    #[test]
    fn terms_are_written_in_byte_order_whatever_their_prefixes() {
        let long = "0123456789abcdef";
        let mut terms: Vec<String> = vec![
            String::new() + "a",
            "a\0".into(),
            "ab".into(),
            long.into(),
            format!("{long}"),
            format!("{long}\0"),
            format!("{long}0"),
            format!("{long}00"),
            format!("{long}1"),
            format!("{}x", &long[..15]),
            "é".into(),
            "z".into(),
            "\u{10ffff}".into(),
        ];
        let mut m = MemIndex::default();
        for (i, t) in terms.iter().enumerate() {
            let r = Terms {
                stream: t.clone(),
                event_type: "T".into(),
                id: format!("id-{i}"),
                causation: Some(t.clone()),
                ..Terms::default()
            };
            m.add(i as u64 * 10, 1, &r.borrowed());
        }
        terms.sort();
        terms.dedup();
        let f = open(m.encode(7, 5000).unwrap()).unwrap();
        for kind in [Kind::Stream, Kind::Causation] {
            let got: Vec<&str> = f.terms_with_prefix(kind, "").map(|(t, _)| t).collect();
            assert_eq!(got, terms, "{kind:?}");
        }
        let all: Vec<(Kind, String)> = (0..f.terms)
            .filter_map(|i| f.entry(i).map(|(k, t, _)| (k, t.to_owned())))
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    }

    #[test]
    fn a_cleared_index_fills_again_as_a_new_one() {
        let mut m = sample();
        assert_eq!(&*m.postings(Kind::Id, "id-3").unwrap(), [3]);
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(
            m.encode(7, 5000).unwrap(),
            MemIndex::default().encode(7, 5000).unwrap()
        );
        assert!(m.postings(Kind::Id, "id-3").unwrap().is_empty());
        fill(&mut m);
        assert_eq!(
            m.encode(7, 5000).unwrap(),
            sample().encode(7, 5000).unwrap()
        );
        assert_eq!(&*m.postings(Kind::Id, "id-3").unwrap(), [3]);
    }

    #[test]
    fn ids_appended_after_a_lookup_are_found_by_the_next() {
        let mut m = sample();
        assert_eq!(&*m.postings(Kind::Id, "id-3").unwrap(), [3]);
        let terms = |id: &str| Terms {
            stream: "s".into(),
            event_type: "T".into(),
            id: id.into(),
            ..Terms::default()
        };
        m.add(9_000, 2_000, &terms("late").borrowed());
        m.add(9_100, 2_000, &terms("id-3").borrowed());
        assert_eq!(&*m.postings(Kind::Id, "late").unwrap(), [50]);
        assert_eq!(&*m.postings(Kind::Id, "id-3").unwrap(), [3, 51]);
        assert_eq!(m.last_posting(Kind::Id, "id-3").unwrap(), Some(51));
        assert_eq!(m.last_posting(Kind::Id, "id-x").unwrap(), None);
        assert_eq!(m.last_posting(Kind::Stream, "s1").unwrap(), Some(49));
        assert_eq!(m.last_posting(Kind::Stream, "nope").unwrap(), None);
        let f = IndexFile::open(
            Arc::new(Mapped::Bytes(m.encode(7, 9_200).unwrap())),
            7,
            Some(9_200),
        )
        .unwrap();
        for (kind, term) in [(Kind::Id, "id-3"), (Kind::Stream, "s1"), (Kind::Id, "x")] {
            assert_eq!(
                f.postings(kind, term).last(),
                m.last_posting(kind, term).unwrap()
            );
        }
        assert_eq!(&*m.clone().postings(Kind::Id, "late").unwrap(), [50]);
    }

    #[test]
    fn damage_and_mismatch_are_refused() {
        let bytes = sample().encode(7, 5000).unwrap();
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(open(bad).is_err(), "flip at {i} accepted");
        }
        assert!(open(bytes[..bytes.len() - 1].to_vec()).is_err());
        assert!(IndexFile::open(Arc::new(Mapped::Bytes(bytes.clone())), 8, Some(5000)).is_err());
        assert!(IndexFile::open(Arc::new(Mapped::Bytes(bytes.clone())), 7, Some(4999)).is_err());
        assert_eq!(
            IndexFile::open(Arc::new(Mapped::Bytes(bytes)), 7, None)
                .unwrap()
                .segment_len,
            5000
        );
    }
}
