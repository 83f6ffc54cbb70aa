//! The term dictionary of one kind in a segment's in-memory index (`index.rs`): every
//! term's text in one arena, the terms' slots in the order they were added, and a hash table
//! of 8-byte buckets pointing at the slots.
//!
//! A map keyed by `Box<str>` made one allocation per new term and freed it when the segment was
//! sealed: in a bulk load of new streams, whose causation ids, streams and correlation ids are
//! nearly all new, that was an allocation and a free per term, about six per event, and the
//! seal's emptying of the tables was 5% of a million-event `generate`. Here a new term is an
//! append to the arena and to the slots, and a bucket in the table; emptying drops nothing but
//! the values.
//!
//! The slots are not in the table itself: a table of 56-byte slots for the 270,000 new
//! streams of a full segment is some 30 MB, and a new term's slot was a cache and TLB miss
//! at a random place in it (a bulk load of new streams spent about 300 ns an event on its
//! stream terms). A new term now writes an 8-byte bucket, in a table a seventh of the size, and
//! appends its slot where the last one ended. A lookup compares 32 bits of the hash kept in
//! the bucket before it reads a slot, as the stream table does (`stream_table.rs`).

use hashbrown::HashTable;

/// Terms (text) to values, with the text in one arena.
#[derive(Clone)]
pub(crate) struct TermMap<V> {
    text: String,
    /// The terms, in the order they were added.
    slots: Vec<Slot<V>>,
    /// Per term: 32 bits of its hash ([`TermMap::hash`]), and its index in `slots`, placed by
    /// a hash made from those bits ([`TermMap::spread`]), so that growing the table reads no
    /// slot.
    table: HashTable<(u32, u32)>,
    state: foldhash::fast::RandomState,
}

#[derive(Clone)]
struct Slot<V> {
    /// The term's first 16 bytes (zero-padded): a term of at most 16 bytes, nearly every
    /// stream, type, tag and actor, is compared here without reading the arena, whose bytes
    /// were a cache miss on most lookups (a bulk load's index spent 8% of its thread in
    /// `memcmp` on them).
    head: [u64; 2],
    /// The term is `text[start..start + len]`.
    start: usize,
    len: u32,
    value: V,
}

/// The first 16 bytes of `term`, zero-padded, as two little-endian words. Read a word (or two
/// overlapping ones) at a time: copying the bytes into a zeroed buffer called `memcpy` for a
/// length known only at run time, and reading the buffer back as words stalled on the bytes
/// just stored; that was about 6% of a bulk load of new streams.
#[inline]
fn head(term: &[u8]) -> [u64; 2] {
    /// The first `term.len()` bytes of a word, for `term` of at most 8 bytes.
    #[inline]
    fn short(term: &[u8]) -> u64 {
        let n = term.len();
        let word = |at: usize| {
            u64::from(u32::from_le_bytes(
                term[at..at + 4].try_into().expect("4 bytes"),
            ))
        };
        if n >= 4 {
            // Two overlapping halves: the overlap holds the same bytes in both.
            word(0) | (word(n - 4) << (8 * (n - 4)))
        } else {
            term.iter().rev().fold(0, |w, &b| (w << 8) | u64::from(b))
        }
    }
    let word = |at: usize| u64::from_le_bytes(term[at..at + 8].try_into().expect("8 bytes"));
    match term.len() {
        n if n >= 16 => [word(0), word(8)],
        n if n > 8 => [word(0), word(n - 8) >> (8 * (16 - n))],
        8 => [word(0), 0],
        _ => [short(term), 0],
    }
}

impl<V> Slot<V> {
    /// Whether the slot holds `term`, whose [`head`] is `h`.
    #[inline]
    fn is(&self, text: &[u8], term: &[u8], h: [u64; 2]) -> bool {
        self.len as usize == term.len()
            && self.head == h
            && (term.len() <= 16 || text[self.start + 16..self.start + term.len()] == term[16..])
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len as usize
    }
}

impl<V> Default for TermMap<V> {
    fn default() -> TermMap<V> {
        TermMap {
            text: String::new(),
            slots: Vec::new(),
            table: HashTable::new(),
            state: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V> TermMap<V> {
    /// The 32 bits of `term`'s hash a bucket keeps.
    fn hash(&self, term: &str) -> u32 {
        let h = std::hash::BuildHasher::hash_one(&self.state, term);
        (h ^ (h >> 32)) as u32
    }

    /// The table's hash of a term whose kept bits are `k`: the same at insertion, lookup and
    /// growth, its high bits (the table's tags) mixed from all of `k`.
    fn spread(k: u32) -> u64 {
        u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The number of terms.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Empties the map, keeping its allocations.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.slots.clear();
        self.text.clear();
    }

    /// The index of `term`'s slot.
    fn find(&self, term: &str) -> Option<usize> {
        let k = self.hash(term);
        let h = head(term.as_bytes());
        let (text, slots) = (self.text.as_bytes(), &self.slots);
        self.table
            .find(Self::spread(k), |&(g, i)| {
                g == k && slots[i as usize].is(text, term.as_bytes(), h)
            })
            .map(|&(_, i)| i as usize)
    }

    /// The value of `term`.
    pub(crate) fn get(&self, term: &str) -> Option<&V> {
        self.find(term).map(|i| &self.slots[i].value)
    }

    /// The value of `term`, to change.
    pub(crate) fn get_mut(&mut self, term: &str) -> Option<&mut V> {
        self.find(term).map(|i| &mut self.slots[i].value)
    }

    /// The value of `term`, made by `new` if the map has none.
    pub(crate) fn get_or_insert_with(&mut self, term: &str, new: impl FnOnce() -> V) -> &mut V {
        let k = self.hash(term);
        let h = head(term.as_bytes());
        let TermMap {
            text, slots, table, ..
        } = self;
        let entry = table.entry(
            Self::spread(k),
            |&(g, i)| g == k && slots[i as usize].is(text.as_bytes(), term.as_bytes(), h),
            |&(g, _)| Self::spread(g),
        );
        let i = match entry {
            hashbrown::hash_table::Entry::Occupied(o) => o.get().1 as usize,
            hashbrown::hash_table::Entry::Vacant(v) => {
                // A segment's terms are distinct strings of its records, so fewer than its
                // bytes (1 GiB at most: `Config::validate`).
                let i = u32::try_from(slots.len()).expect("fewer than 2^32 terms");
                let start = text.len();
                text.push_str(term);
                slots.push(Slot {
                    head: h,
                    start,
                    // A term is at most a record long, and a record far less than 4 GiB.
                    len: term.len() as u32,
                    value: new(),
                });
                v.insert((k, i));
                i as usize
            }
        };
        &mut slots[i].value
    }

    /// Every term with its value, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.slots.iter().map(|s| (&self.text[s.range()], &s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`head`] is the first 16 bytes zero-padded, at every length around its cases.
    #[test]
    fn head_is_the_first_16_bytes_zero_padded() {
        let bytes: Vec<u8> = (1..=40u8).map(|b| b.wrapping_mul(37)).collect();
        for n in 0..=bytes.len() {
            let term = &bytes[..n];
            let mut padded = [0u8; 16];
            padded[..n.min(16)].copy_from_slice(&term[..n.min(16)]);
            let want = [
                u64::from_le_bytes(padded[..8].try_into().unwrap()),
                u64::from_le_bytes(padded[8..].try_into().unwrap()),
            ];
            assert_eq!(head(term), want, "{n} bytes");
        }
    }

    #[test]
    fn terms_keep_their_values_through_growth_and_clearing() {
        let mut m: TermMap<u32> = TermMap::default();
        for round in 0..2 {
            for i in 0..5000u32 {
                *m.get_or_insert_with(&format!("order-{i}"), || 0) += i + round;
                // A term that is a prefix of another is its own term.
                *m.get_or_insert_with(&format!("order-{}", i / 10), || 0) += 1;
            }
            assert_eq!(m.len(), 5000);
            assert_eq!(m.get("order-7"), Some(&(7 + round + 10)));
            assert_eq!(m.get("order-4999"), Some(&(4999 + round)));
            assert_eq!(m.get("order-5000"), None);
            assert_eq!(m.get("order"), None);
            *m.get_mut("order-1").unwrap() = 99;
            assert_eq!(
                m.iter().find(|(t, _)| *t == "order-1"),
                Some(("order-1", &99))
            );
            assert_eq!(m.iter().count(), 5000);
            m.clear();
            assert_eq!((m.len(), m.get("order-1")), (0, None));
        }
        let mut m: TermMap<u32> = TermMap::default();
        *m.get_or_insert_with("", || 5) += 1;
        *m.get_or_insert_with("é", || 1) += 1;
        assert_eq!(
            (m.get(""), m.get("é"), m.get("e")),
            (Some(&6), Some(&2), None)
        );
        // Terms alike in their first 16 bytes, or padded with what a shorter one pads with.
        let long = "0123456789abcdef";
        for (i, t) in [long, &format!("{long}x"), &format!("{long}y"), "a\0", "a"]
            .into_iter()
            .enumerate()
        {
            *m.get_or_insert_with(t, || i as u32 * 10) += 1;
        }
        let got = [
            long,
            &format!("{long}x"),
            &format!("{long}y"),
            "a\0",
            "a",
            "0123",
        ]
        .map(|t| m.get(t).copied());
        assert_eq!(got, [Some(1), Some(11), Some(21), Some(31), Some(41), None]);
    }
}
