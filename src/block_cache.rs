//! A store-wide cache of 4 KiB blocks of sealed segments, their sidecars and the active
//! segment's checkpoint (files never written again while open), bounded in bytes, so that
//! reading the same stream again (loading a hot aggregate) makes no system call.
//!
//! Sealed files are read with `pread` (issue 16: a map leaves the pages it touches resident).
//! A stream read then costs a few `pread`s per sealed segment for the term lookup, one per
//! record position and one per record, each a system call even when the page cache holds the
//! bytes. SQLite keeps a page cache of its own (2 MiB by default) for the same reason. This is
//! that cache: small reads of sealed files ([`CachedFile::read_exact_at`]) are served from it.
//! Scans (a `read_all`'s records, a reindex, a sidecar's check, a walk of its terms or a sample
//! of them) read around it, so they neither pay for it nor flush it.
//!
//! A block is kept on its second miss, not its first: the first miss reads only the bytes asked
//! for and remembers the block's key (among as many keys as the cache holds blocks); a miss on a
//! remembered key reads the blocks the read lies in, in one `pread`, and keeps them. Reading many
//! different streams once each (every record read once) then leaves the cache to what is read
//! again: the sidecars' position tables and term directories, which every stream's lookups
//! share, and the streams read more than once.
//!
//! The bound ([`crate::OpenOptions::read_cache_bytes`], default 8 MiB): the blocks' bytes and
//! the memo's counted bytes together never exceed the capacity, the blocks holding at most the
//! capacity less an eighth and the memo at most that eighth. Not counted: the tables that find
//! the blocks and the keys of blocks missed once, about 170 bytes per block of the bound (a
//! slot, a map entry, the block's allocation header, a remembered key), about 4% on top. A
//! block is evicted by the clock algorithm (a block read since the hand last passed gets a
//! second chance). Keys are a file's number, taken afresh each time a sealed file is opened,
//! and the block's index: a sidecar rebuilt or a segment removed gets a new number, so a block
//! can never be served for another file.
//!
//! What a cache could still get wrong is caught downstream (`reader.rs`): every record read is
//! framed and CRC-checked, its seq must be the one its ordinal in the segment gives, and a
//! stream read's record must be the stream's at the very version its place in the postings
//! gives; a mismatch is an `Error::Corrupt`. A query's record is also checked against the
//! query, so a wrong posting there can only drop a record the query does not match (the index
//! named the wrong record, and that record is passed over), never return a wrong one.
//!
//! Beside the blocks, a [`Memo`] keeps, per sealed sidecar, where a stream's records lie (its
//! postings turned into extents with their ordinals), so that reading a stream again skips the
//! lookup too. It is bounded by an eighth of the capacity, each entry counted for its extents
//! (16 bytes each), its stream's name twice (the map's key and the order's) and a fixed cost
//! for the rest ([`MEMO_ENTRY_FIXED`]); an entry above a quarter of that eighth is not kept,
//! and a stream read of such a stream works out only the extents it wants. It is keyed by the
//! sidecar's number and the stream's name, and what it says is checked as an index's answer
//! is (above).
//!
//! This module holds bytes and nothing else: it never decides what a read returns.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::storage::StorageFile;

/// Bytes of a block.
pub(crate) const BLOCK: u64 = 4096;

/// Reads longer than this go around the cache (scans, and the sidecar walks that read 64 KiB
/// chunks): they would evict what lookups reuse.
pub(crate) const MAX_CACHED_READ: usize = 32 * 1024;

/// Numbers files, so that no two opened files share a key.
static NEXT_FILE: AtomicU64 = AtomicU64::new(1);

/// The cache, shared by a store's sealed segments.
pub(crate) struct BlockCache {
    capacity: usize,
    inner: Mutex<Blocks>,
    memo: Mutex<Memo>,
}

/// Where a record lies in its segment (offset, length with the newline) and its ordinal there
/// (the record's seq is the segment's base plus it); `(u64::MAX, 0, ord)` for a posting whose
/// positions did not add up. 16 bytes.
pub(crate) type Extent = (u64, u32, u32);

/// Extents of streams' records per sidecar, oldest first, within a byte bound.
#[derive(Default)]
pub(crate) struct Memo {
    at: foldhash::HashMap<(u64, Box<str>), Arc<[Extent]>>,
    order: VecDeque<(u64, Box<str>)>,
    bytes: usize,
}

/// Bytes a memo entry is counted for, besides its stream's name (twice) and its extents: the
/// key held twice (map and order, 24 bytes each), the map's slot for the value (a 16-byte
/// pointer and a control byte, at a load of up to 7/8 and after doubling: up to twice that),
/// the `Arc`'s two counts (16), and the allocator's rounding of three allocations.
const MEMO_ENTRY_FIXED: usize = 2 * 24 + 2 * (24 + 16 + 1) + 16 + 3 * 16;

/// Bytes a memo entry of `n` extents for a stream named with `name_len` bytes is counted for.
fn memo_bytes(name_len: usize, n: usize) -> usize {
    n.saturating_mul(std::mem::size_of::<Extent>())
        .saturating_add(name_len.saturating_mul(2))
        .saturating_add(MEMO_ENTRY_FIXED)
}

type Key = (u64, u64);

#[derive(Default)]
struct Blocks {
    /// Where each cached block's slot is.
    at: foldhash::HashMap<Key, usize>,
    /// Keys of blocks missed once and not kept, each with the stamp it was remembered under.
    missed: foldhash::HashMap<Key, u64>,
    /// The remembered keys with their stamps, oldest first, at most as many as fit. A key kept
    /// since stays here until its turn comes (removing it would cost a search of the queue on
    /// every keep); its stamp, no longer the map's, then forgets nothing.
    missed_order: VecDeque<(Key, u64)>,
    /// The next stamp.
    stamp: u64,
    slots: Vec<Slot>,
    /// The clock's hand: the next slot to consider for eviction.
    hand: usize,
    /// Bytes held by the slots' blocks.
    bytes: usize,
}

struct Slot {
    key: (u64, u64),
    data: Box<[u8]>,
    /// Read since the hand last passed.
    used: bool,
}

impl Blocks {
    /// Copies block `key`'s bytes from `skip` on into `out` (as many as both hold); `None` if it
    /// is not cached.
    fn copy(&mut self, key: (u64, u64), skip: usize, out: &mut [u8]) -> Option<usize> {
        let slot = &mut self.slots[*self.at.get(&key)?];
        slot.used = true;
        let src = slot.data.get(skip..)?;
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        Some(n)
    }

    /// The clock's next victim: the first slot from the hand on that was not read since the hand
    /// last passed it (clearing that mark on each slot it passes); the hand moves past it.
    fn next_victim(&mut self) -> usize {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            if !std::mem::take(&mut self.slots[i].used) {
                return i;
            }
        }
    }

    /// Removes slot `i`, whose block is already uncounted and unlisted, moving the last slot
    /// into its place (behind the hand: it waits for the hand's next turn).
    fn drop_slot(&mut self, i: usize) {
        self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.at.insert(moved.key, i);
        }
    }

    /// Whether the first missing block of a read, `keys[0]`, was missed before (it is then
    /// about to be kept, with the others); otherwise remembers each of `keys` not held, the
    /// first last, so that a read of more blocks than the memory of keys holds does not forget
    /// the block that decides.
    fn missed_before(&mut self, keys: impl DoubleEndedIterator<Item = Key>, limit: usize) -> bool {
        let mut keys = keys.peekable();
        if keys.peek().is_some_and(|k| self.missed.contains_key(k)) {
            return true;
        }
        for key in keys.rev() {
            self.remember(key, limit);
        }
        false
    }

    /// Remembers that block `key` was missed, forgetting the oldest key beyond `limit`.
    fn remember(&mut self, key: Key, limit: usize) {
        if limit > 0 && !self.missed.contains_key(&key) && !self.at.contains_key(&key) {
            while self.missed_order.len() >= limit {
                if let Some((old, stamp)) = self.missed_order.pop_front()
                    && self.missed.get(&old) == Some(&stamp)
                {
                    self.missed.remove(&old);
                }
            }
            self.stamp += 1;
            self.missed.insert(key, self.stamp);
            self.missed_order.push_back((key, self.stamp));
        }
    }

    /// Keeps `data` as block `key`, evicting the clock's choices until it fits. The new block
    /// takes the slot of the last one evicted, just behind the hand, so that it is considered
    /// only after a whole turn: a block must go unread for a turn to be evicted, the newest
    /// too. (Moving another slot into the freed place instead would put that one at the hand,
    /// and the newest block, pushed last, would be the next evicted unless read at once.)
    fn insert(&mut self, key: (u64, u64), data: Box<[u8]>, capacity: usize) {
        if data.len() > capacity || self.at.contains_key(&key) {
            return;
        }
        // Held, so no longer missed. Its entry in the order goes stale: remembered again after
        // an eviction, the key gets a new stamp, and the stale entry's turn does not forget it.
        self.missed.remove(&key);
        self.bytes += data.len();
        // A slot whose block was evicted (uncounted and unlisted), for the new block.
        let mut freed = None;
        while self.bytes > capacity {
            if let Some(i) = freed.take() {
                self.drop_slot(i);
            }
            let i = self.next_victim();
            let gone = &self.slots[i];
            self.bytes -= gone.data.len();
            self.at.remove(&gone.key);
            freed = Some(i);
        }
        let slot = Slot {
            key,
            data,
            used: false,
        };
        match freed {
            Some(i) => {
                self.at.insert(key, i);
                self.slots[i] = slot;
            }
            // Room without an eviction: behind the hand too. The slot at the hand (not yet
            // considered in this turn) moves to the end, still ahead of it.
            None => {
                let last = self.slots.len();
                self.slots.push(slot);
                self.at.insert(key, last);
                if self.hand <= last {
                    self.slots.swap(self.hand, last);
                    self.at.insert(self.slots[last].key, last);
                    self.at.insert(key, self.hand);
                    self.hand += 1;
                }
            }
        }
    }
}

impl BlockCache {
    /// A cache of at most `capacity` bytes of blocks (0: none kept).
    pub(crate) fn new(capacity: usize) -> Arc<BlockCache> {
        Arc::new(BlockCache {
            capacity,
            inner: Mutex::new(Blocks::default()),
            memo: Mutex::new(Memo::default()),
        })
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes the memo may hold: an eighth of the capacity.
    fn memo_capacity(&self) -> usize {
        self.capacity / 8
    }

    /// Bytes the blocks may hold: the capacity less the memo's eighth, so that the two together
    /// never exceed it.
    fn blocks_capacity(&self) -> usize {
        self.capacity - self.memo_capacity()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of blocks held now (never more than the capacity).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Bytes the memo holds now (never more than its bound).
    #[cfg(test)]
    pub(crate) fn memo_bytes(&self) -> usize {
        self.memo().bytes
    }

    /// Keys of blocks missed once that are remembered, and the entries of the order that
    /// stand for one of them (their stamp is the key's), and the order's length.
    #[cfg(test)]
    fn missed(&self) -> (usize, usize, usize) {
        let b = self.lock();
        let live = b
            .missed_order
            .iter()
            .filter(|(k, s)| b.missed.get(k) == Some(s))
            .count();
        (b.missed.len(), live, b.missed_order.len())
    }
}

/// The CRC of each [`BLOCK`] of `body` (the last may be short), as little-endian u32s: a
/// format-2 sidecar's block sums (`docs/format.md`).
pub(crate) fn block_sums(body: &[u8]) -> Vec<u8> {
    body.chunks(BLOCK as usize)
        .flat_map(|b| crc32fast::hash(b).to_le_bytes())
        .collect()
}

/// Checks `body`'s blocks of [`BLOCK`] bytes, the first of them block `first`, against their
/// CRCs in `sums` (little-endian u32s, one per block of the whole body): a format-2
/// sidecar's block sums (`docs/format.md`).
fn check_block_sums(body: &[u8], sums: &[u8], first: u64) -> Result<(), String> {
    for (i, block) in body.chunks(BLOCK as usize).enumerate() {
        let b = first + i as u64;
        let at = usize::try_from(b * 4).map_err(|_| "block out of range".to_string())?;
        let want = sums
            .get(at..at + 4)
            .ok_or_else(|| format!("index sidecar block {b} has no crc"))?;
        if crc32fast::hash(block).to_le_bytes()[..] != *want {
            return Err(format!("index sidecar block {b} fails its crc"));
        }
    }
    Ok(())
}

/// The CRC of every block of a file's first `body` bytes (a format-2 sidecar's block sums,
/// themselves checked against their own CRC when read).
pub(crate) struct BlockSums {
    /// Little-endian u32s, one per [`BLOCK`] of the body (the last may be short).
    sums: Box<[u8]>,
    body: u64,
}

impl BlockSums {
    /// The sums of a body of `body` bytes; `None` if they are not one per block.
    pub(crate) fn new(sums: Box<[u8]>, body: u64) -> Option<BlockSums> {
        (sums.len() as u64 == body.div_ceil(BLOCK) * 4).then_some(BlockSums { sums, body })
    }

    /// Checks `bytes`, whole blocks from block `first` (the last may end at the body's end).
    fn check(&self, bytes: &[u8], first: u64) -> io::Result<()> {
        check_block_sums(bytes, &self.sums, first)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// An immutable sealed file (a segment or a sidecar) of known length, read through the cache.
#[derive(Clone)]
pub(crate) struct CachedFile {
    pub file: Arc<dyn StorageFile>,
    /// The file's length when it was opened: blocks are never read past it.
    len: u64,
    id: u64,
    cache: Arc<BlockCache>,
    /// A format-2 sidecar's block sums: every byte read from the file is read as whole
    /// blocks and checked before use, and nothing past their body is read.
    sums: Option<Arc<BlockSums>>,
}

impl CachedFile {
    /// `file`, `len` bytes long, read through `cache` under a number of its own.
    pub(crate) fn new(file: Arc<dyn StorageFile>, len: u64, cache: &Arc<BlockCache>) -> Self {
        CachedFile {
            file,
            len,
            id: NEXT_FILE.fetch_add(1, Ordering::Relaxed),
            cache: Arc::clone(cache),
            sums: None,
        }
    }

    /// The same file, read through `cache` under a new number.
    pub(crate) fn recached(&self, cache: &Arc<BlockCache>) -> CachedFile {
        CachedFile {
            sums: self.sums.clone(),
            ..CachedFile::new(Arc::clone(&self.file), self.len, cache)
        }
    }

    /// The same file, every read of it checked against `sums`.
    pub(crate) fn checked_by(mut self, sums: Arc<BlockSums>) -> CachedFile {
        self.sums = Some(sums);
        self
    }

    /// The file's length when it was opened.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The block sums every read is checked against, if any.
    pub(crate) fn sums(&self) -> Option<&[u8]> {
        self.sums.as_deref().map(|s| &s.sums[..])
    }

    /// The end of what may be read: the file's length, or the end of a checked body.
    fn limit(&self) -> u64 {
        self.sums
            .as_ref()
            .map_or(self.len, |s| s.body.min(self.len))
    }

    /// Reads exactly `buf.len()` bytes at `at` around the cache (checked, if the file has
    /// block sums).
    pub(crate) fn read_around(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        match &self.sums {
            None => read_exact(self.file.as_ref(), buf, at),
            Some(_) => self.read_checked(buf, at),
        }
    }

    /// Reads the whole blocks around `buf.len()` bytes at `at`, checks them against the
    /// sums, and copies out the bytes wanted.
    fn read_checked(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let to = (at + buf.len() as u64).div_ceil(BLOCK);
        let (run, start) = self.checked_run(at / BLOCK, to)?;
        if run.len() < (at - start) as usize + buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let skip = (at - start) as usize;
        buf.copy_from_slice(&run[skip..skip + buf.len()]);
        Ok(())
    }

    /// Blocks `from..to` (to the body's end), read in one `pread`; checked if the file has
    /// sums. Returns the bytes and where they start.
    fn checked_run(&self, from: u64, to: u64) -> io::Result<(Vec<u8>, u64)> {
        let start = from * BLOCK;
        let stop = (to * BLOCK).min(self.limit());
        if stop < start {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut run = vec![0u8; (stop - start) as usize];
        read_exact(self.file.as_ref(), &mut run, start)?;
        if let Some(s) = &self.sums {
            s.check(&run, from)?;
        }
        Ok((run, start))
    }

    /// The extents remembered for `stream` in this file (a sidecar), if any.
    pub(crate) fn remembered(&self, stream: &str) -> Option<Arc<[Extent]>> {
        if self.cache.memo_capacity() == 0 {
            return None;
        }
        // A key borrowed as `(u64, &str)` would need a wrapper type; streams are short.
        let key = (self.id, Box::<str>::from(stream));
        self.cache.memo().at.get(&key).cloned()
    }

    /// Whether [`CachedFile::remember`] would keep `n` extents of `stream`: an entry larger
    /// than a quarter of the memo's bound is not kept.
    pub(crate) fn would_remember(&self, stream: &str, n: usize) -> bool {
        let cap = self.cache.memo_capacity();
        cap > 0 && memo_bytes(stream.len(), n) <= cap / 4
    }

    /// Remembers `extents` for `stream` in this file (a sidecar), forgetting the oldest
    /// entries beyond the bound; one larger than a quarter of the bound is not kept.
    pub(crate) fn remember(&self, stream: &str, extents: &Arc<[Extent]>) {
        let cap = self.cache.memo_capacity();
        let size = memo_bytes(stream.len(), extents.len());
        if !self.would_remember(stream, extents.len()) {
            return;
        }
        let key = (self.id, Box::<str>::from(stream));
        let mut memo = self.cache.memo();
        if memo.at.contains_key(&key) {
            return;
        }
        while memo.bytes.saturating_add(size) > cap {
            let Some(old) = memo.order.pop_front() else {
                break;
            };
            if let Some(e) = memo.at.remove(&old) {
                memo.bytes = memo.bytes.saturating_sub(memo_bytes(old.1.len(), e.len()));
            }
        }
        memo.bytes = memo.bytes.saturating_add(size);
        memo.order.push_back(key.clone());
        memo.at.insert(key, Arc::clone(extents));
    }

    /// Reads exactly `buf.len()` bytes at `at`: from the cache when they are small enough and
    /// held, else by one `pread` (of the blocks they lie in, kept, when small). Bytes past the
    /// length the file had when opened are an `UnexpectedEof`.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let end = at
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.limit())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if buf.len() > MAX_CACHED_READ || self.cache.capacity == 0 {
            return self.read_around(buf, at);
        }
        let (first, last) = (at / BLOCK, (end.max(at + 1) - 1) / BLOCK);
        // Serve the leading blocks that are held.
        let mut done = 0usize;
        {
            let mut blocks = self.cache.lock();
            let mut b = first;
            while done < buf.len() {
                let skip = (at + done as u64 - b * BLOCK) as usize;
                match blocks.copy((self.id, b), skip, &mut buf[done..]) {
                    Some(n) => done += n,
                    None => break,
                }
                b += 1;
            }
        }
        if done == buf.len() {
            return Ok(());
        }
        let from = (at + done as u64) / BLOCK;
        // A checked file's blocks are read whole anyway (to be checked): kept on their first
        // miss, since the read is paid already.
        let keep = self.sums.is_some() || {
            let limit = self.cache.blocks_capacity() / BLOCK as usize;
            let mut blocks = self.cache.lock();
            // The first block missing decides; the others are remembered if not kept.
            blocks.missed_before((from..=last).map(|b| (self.id, b)), limit)
        };
        if !keep {
            return self.read_around(&mut buf[done..], at + done as u64);
        }
        // The rest: its blocks in one read (checked), then kept.
        let (run, start) = self.checked_run(from, last + 1)?;
        let skip = (at + done as u64 - start) as usize;
        let rest = buf.len() - done;
        buf[done..].copy_from_slice(&run[skip..skip + rest]);
        let capacity = self.cache.blocks_capacity();
        let mut blocks = self.cache.lock();
        if run.len() <= BLOCK as usize {
            // One block, the common case: kept as read, without a copy.
            blocks.insert((self.id, from), run.into_boxed_slice(), capacity);
            return Ok(());
        }
        for (i, chunk) in run.chunks(BLOCK as usize).enumerate() {
            blocks.insert((self.id, from + i as u64), chunk.into(), capacity);
        }
        Ok(())
    }
}

/// `pread` of exactly `buf.len()` bytes; `UnexpectedEof` if the file ends first.
pub(crate) fn read_exact(file: &dyn StorageFile, buf: &mut [u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => done += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A file in memory that counts its reads.
    struct Counting(Vec<u8>, AtomicUsize);

    impl StorageFile for Counting {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
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
        fn map(&self) -> io::Result<Option<crate::storage::Mapped>> {
            Ok(None)
        }
    }

    fn file(len: usize) -> Arc<Counting> {
        let bytes = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        Arc::new(Counting(bytes, AtomicUsize::new(0)))
    }

    #[test]
    fn reads_answer_as_the_file_does_and_repeat_without_a_read() {
        let f = file(50_000);
        let cache = BlockCache::new(1 << 20);
        let c = CachedFile::new(f.clone(), 50_000, &cache);
        let spans = [
            (0, 1),
            (4090, 20),
            (4096, 4096),
            (12_000, 9_000),
            (49_990, 10),
        ];
        for (at, len) in spans {
            let mut buf = vec![0u8; len];
            c.read_exact_at(&mut buf, at as u64).unwrap();
            assert_eq!(buf, f.0[at..at + len], "{at} {len}");
        }
        // Read again: kept now (a block is kept on its second miss).
        for (at, len) in spans {
            let mut buf = vec![0u8; len];
            c.read_exact_at(&mut buf, at as u64).unwrap();
            assert_eq!(buf, f.0[at..at + len], "{at} {len}");
        }
        let reads = f.1.load(Ordering::Relaxed);
        for (at, len) in spans {
            let mut buf = vec![0u8; len];
            c.read_exact_at(&mut buf, at as u64).unwrap();
            assert_eq!(buf, f.0[at..at + len], "{at} {len}");
        }
        assert_eq!(
            f.1.load(Ordering::Relaxed),
            reads,
            "third pass read the file"
        );
        // Past the end: an error, not zeros.
        let mut buf = [0u8; 20];
        let err = c.read_exact_at(&mut buf, 49_990).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let f = file(1 << 20);
        let capacity = 10 * BLOCK as usize + 100;
        let cache = BlockCache::new(capacity);
        let c = CachedFile::new(f.clone(), 1 << 20, &cache);
        let ext: Arc<[Extent]> = (0..10u64).map(|i| (i * 10, 10, i as u32)).collect();
        for i in 0..2_000u64 {
            let at = (i * 7_919) % ((1 << 20) - 300);
            for _ in 0..2 {
                let mut buf = [0u8; 300];
                c.read_exact_at(&mut buf, at).unwrap();
                assert_eq!(buf[..], f.0[at as usize..at as usize + 300]);
                c.remember(&format!("stream-{i}"), &ext);
                // The blocks and the memo together: the memo is part of the bound.
                assert!(cache.bytes() + cache.memo_bytes() <= capacity);
                assert!(cache.bytes() <= capacity - capacity / 8);
            }
        }
        // Blocks fill what the memo leaves: 7/8 of 41,060 bytes hold 8 blocks.
        assert_eq!(cache.bytes(), 8 * BLOCK as usize);
        assert!(cache.memo_bytes() > 0);
        // No cache at all: every read reads.
        let none = BlockCache::new(0);
        let c = CachedFile::new(f.clone(), 1 << 20, &none);
        let before = f.1.load(Ordering::Relaxed);
        for _ in 0..3 {
            c.read_exact_at(&mut [0u8; 8], 100).unwrap();
        }
        assert_eq!(f.1.load(Ordering::Relaxed), before + 3);
        assert_eq!(none.bytes(), 0);
    }

    /// Blocks read once are not kept: a pass over many streams, each read once, leaves the cache
    /// to what is read again.
    #[test]
    fn a_block_read_once_is_not_kept() {
        let f = file(1 << 20);
        let cache = BlockCache::new(64 * BLOCK as usize);
        let c = CachedFile::new(f.clone(), 1 << 20, &cache);
        let hot = |c: &CachedFile| {
            let mut buf = [0u8; 100];
            c.read_exact_at(&mut buf, 5).unwrap();
        };
        hot(&c);
        hot(&c);
        for i in 0..200u64 {
            c.read_exact_at(&mut [0u8; 100], 8192 + i * 4096).unwrap();
        }
        assert_eq!(
            cache.bytes(),
            BLOCK as usize,
            "only the block read twice is kept"
        );
        let before = f.1.load(Ordering::Relaxed);
        hot(&c);
        assert_eq!(f.1.load(Ordering::Relaxed), before);
    }

    /// A block kept waits a whole turn of the clock's hand before it can be evicted: blocks kept
    /// one after another (the sidecars' position blocks of a read of many streams, each read
    /// again a while later) are not each evicted by the next one kept.
    #[test]
    fn a_kept_block_survives_until_the_hand_comes_round() {
        let f = file(1 << 20);
        let cache = BlockCache::new(19_000); // blocks: 16,625 bytes, 4 blocks
        let c = CachedFile::new(f.clone(), 1 << 20, &cache);
        let read = |b: u64| c.read_exact_at(&mut [0u8; 8], b * BLOCK).unwrap();
        let keep = |b: u64| {
            read(b);
            read(b);
        };
        (0..4).for_each(keep);
        (10..13).for_each(keep);
        assert_eq!(cache.bytes(), 4 * BLOCK as usize);
        let before = f.1.load(Ordering::Relaxed);
        (10..13).for_each(read);
        assert_eq!(
            f.1.load(Ordering::Relaxed),
            before,
            "the three blocks kept last are held"
        );
    }

    /// Checks that `b`'s map and byte count agree with its slots.
    fn consistent(b: &Blocks) {
        assert_eq!(b.at.len(), b.slots.len());
        for (i, slot) in b.slots.iter().enumerate() {
            assert_eq!(b.at.get(&slot.key), Some(&i));
            assert!(
                !b.missed.contains_key(&slot.key),
                "a held block is not missed"
            );
        }
        assert_eq!(b.bytes, b.slots.iter().map(|s| s.data.len()).sum::<usize>());
    }

    /// A block kept where it fits without an eviction waits a whole turn too (a file's last
    /// block is short, and leaves such room).
    #[test]
    fn a_block_kept_without_an_eviction_waits_a_turn_too() {
        let cap = 4 * BLOCK as usize;
        let full = || vec![0u8; BLOCK as usize].into_boxed_slice();
        let mut b = Blocks::default();
        (0..4).for_each(|k| b.insert((0, k), full(), cap));
        for k in 0..3 {
            b.copy((0, k), 0, &mut [0u8; 1]).unwrap();
        }
        b.insert((1, 0), vec![0u8; 1000].into(), cap); // evicts (0, 3), the one not read
        assert!(!b.at.contains_key(&(0, 3)));
        b.insert((2, 0), vec![0u8; 1000].into(), cap); // fits in the room left
        b.insert((3, 0), full(), cap); // the hand clears the others' marks first
        consistent(&b);
        assert!(b.at.contains_key(&(1, 0)) && b.at.contains_key(&(2, 0)));
        // With the hand inside the ring.
        let mut b = Blocks::default();
        (0..4).for_each(|k| b.insert((0, k), full(), cap));
        b.insert((1, 0), vec![0u8; 1000].into(), cap); // evicts (0, 0): the hand at 1
        b.insert((2, 0), vec![0u8; 1000].into(), cap); // fits
        b.insert((3, 0), full(), cap);
        b.insert((4, 0), full(), cap);
        consistent(&b);
        assert!(
            b.at.contains_key(&(2, 0)),
            "kept without an eviction, then evicted first"
        );
    }

    /// A read of several blocks that keeps them leaves none of them among the keys missed
    /// once, and one that does not keep them remembers the block that decides even when the
    /// memory of keys holds fewer than the read spans.
    #[test]
    fn a_read_of_several_blocks_is_remembered_and_kept_whole() {
        let f = file(1 << 20);
        let cache = BlockCache::new(64 * BLOCK as usize);
        let c = CachedFile::new(f.clone(), 1 << 20, &cache);
        for _ in 0..2 {
            c.read_exact_at(&mut [0u8; 3 * BLOCK as usize], 100)
                .unwrap();
        }
        assert_eq!(cache.bytes(), 4 * BLOCK as usize);
        consistent(&cache.lock());
        assert_eq!(cache.missed().0, 0);
        // Room for 4 blocks, so 4 keys remembered: a read of 5 blocks is kept at its second.
        let small = BlockCache::new(19_000);
        let c = CachedFile::new(f.clone(), 1 << 20, &small);
        for _ in 0..2 {
            c.read_exact_at(&mut [0u8; 4 * BLOCK as usize], 8192 + 100)
                .unwrap();
        }
        consistent(&small.lock());
        assert_eq!(
            small.bytes(),
            4 * BLOCK as usize,
            "four of its five blocks kept"
        );
    }

    /// Inserts, reads and remembered misses in a pseudo-random order, blocks short and full,
    /// capacities from none to ten blocks: the map, the count and the bound always agree with
    /// the slots, and a block that fits is held once inserted.
    #[test]
    fn random_inserts_keep_the_cache_consistent() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for cap in [0, 1, 100, 4095, 4096, 4097, 8192, 10_000, 40_000] {
            let mut b = Blocks::default();
            for step in 0..20_000 {
                let r = next();
                let key = (r % 3, (r >> 8) % 40);
                match r % 35 {
                    0..7 => {
                        let _ = b.copy(key, 0, &mut [0u8; 10]);
                        continue;
                    }
                    7..12 => {
                        b.remember(key, 8);
                        continue;
                    }
                    _ => {}
                }
                let len = match (r >> 20) % 4 {
                    0 => 1 + (r >> 30) as usize % BLOCK as usize,
                    _ => BLOCK as usize,
                };
                b.insert(key, vec![7u8; len].into(), cap);
                consistent(&b);
                assert!(b.bytes <= cap);
                assert!(
                    len > cap || b.at.contains_key(&key),
                    "cap {cap}, step {step}"
                );
            }
        }
    }

    /// The memo keeps a stream's extents per file, within an eighth of the capacity.
    #[test]
    fn the_memo_answers_per_file_and_stays_within_its_bound() {
        let cache = BlockCache::new(64 * 1024); // memo: 8 KiB
        let (a, b) = (
            CachedFile::new(file(100), 100, &cache),
            CachedFile::new(file(100), 100, &cache),
        );
        let ext: Arc<[Extent]> = (0..20u64).map(|i| (i * 10, 10, i as u32)).collect();
        a.remember("s", &ext);
        assert_eq!(a.remembered("s").as_deref(), Some(&ext[..]));
        assert!(b.remembered("s").is_none(), "another file's extents");
        assert!(a.remembered("t").is_none());
        for i in 0..1_000 {
            a.remember(&format!("s{i}"), &ext);
            assert!(cache.memo_bytes() <= 8 * 1024, "{}", cache.memo_bytes());
        }
        assert!(
            a.remembered("s").is_none(),
            "the oldest entry was forgotten"
        );
        assert_eq!(a.remembered("s999").as_deref(), Some(&ext[..]));
        // An entry above a quarter of the bound is not kept; no cache keeps nothing.
        let big: Arc<[Extent]> = (0..200u64).map(|i| (i, 1, i as u32)).collect();
        a.remember("big", &big);
        assert!(a.remembered("big").is_none());
        let none = CachedFile::new(file(100), 100, &BlockCache::new(0));
        none.remember("s", &ext);
        assert!(none.remembered("s").is_none());
    }

    /// An entry is counted for its name twice (map and order) and its fixed costs: a long name
    /// with few extents cannot slip past the bound.
    #[test]
    fn the_memo_counts_names_twice_and_each_entry_s_fixed_cost() {
        let cache = BlockCache::new(64 * 1024); // memo: 8 KiB, an entry at most 2 KiB
        let a = CachedFile::new(file(100), 100, &cache);
        let one: Arc<[Extent]> = Arc::from([(0u64, 10u32, 0u32)]);
        let name = "n".repeat(900);
        a.remember(&name, &one);
        assert_eq!(cache.memo_bytes(), 16 + 1_800 + MEMO_ENTRY_FIXED);
        // 2 * 1,000 bytes of name alone are near a quarter of the bound: not kept.
        assert!(!a.would_remember(&"n".repeat(1_000), 1));
        a.remember(&"n".repeat(1_000), &one);
        assert_eq!(cache.memo_bytes(), 16 + 1_800 + MEMO_ENTRY_FIXED);
        assert!(
            memo_bytes(usize::MAX, usize::MAX) == usize::MAX,
            "saturates"
        );
    }

    /// A key kept after its second miss is forgotten, and its place in the order of missed
    /// keys can no longer forget it: every remembered key stands in the order exactly once, and
    /// the order stays within its bound, however often blocks are missed, kept and evicted.
    #[test]
    fn keys_kept_leave_the_order_of_missed_keys() {
        let f = file(1 << 20);
        let cache = BlockCache::new(16 * BLOCK as usize);
        let limit = cache.blocks_capacity() / BLOCK as usize;
        let c = CachedFile::new(f.clone(), 1 << 20, &cache);
        for round in 0..50u64 {
            for b in 0..40u64 {
                // Some blocks read twice running (kept), the others once.
                let at = ((b * 13 + round) % 200) * BLOCK + 7;
                for _ in 0..1 + b % 2 {
                    c.read_exact_at(&mut [0u8; 16], at).unwrap();
                }
                let (set, live, order) = cache.missed();
                assert_eq!(set, live, "round {round} block {b}");
                assert!(order <= limit, "round {round} block {b}: {order}");
            }
        }
        assert!(cache.bytes() > 0);
    }

    #[test]
    fn two_files_never_share_blocks() {
        let (a, b) = (
            file(9_000),
            Arc::new(Counting(vec![9; 9_000], AtomicUsize::new(0))),
        );
        let cache = BlockCache::new(1 << 20);
        let (ca, cb) = (
            CachedFile::new(a.clone(), 9_000, &cache),
            CachedFile::new(b, 9_000, &cache),
        );
        let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
        ca.read_exact_at(&mut x, 4_000).unwrap();
        cb.read_exact_at(&mut y, 4_000).unwrap();
        assert_eq!(x[..], a.0[4_000..4_064]);
        assert_eq!(y, [9u8; 64]);
    }
}
