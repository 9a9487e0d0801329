//! The fast path's group table: open addressing over cache-line entries
//! that hold a key's head (the key itself, up to [`SHORT_KEY`] bytes, see
//! [`Lanes::key`]) and integer sums of its values.

use super::super::accumulate::ValueAcc;
use super::huge::{HugeSlice, HUGE};
use super::lanes::{Lanes, SHORT_KEY};
use super::word_at;

/// The table's hash of `key`, whose head's hash is `head` ([`Lanes::mix`]):
/// that, and for a key longer than [`SHORT_KEY`] (never when `SHORT`) its
/// last 8 bytes mixed in, so that long keys sharing their head still
/// spread.
#[inline(always)]
fn key_hash<const SHORT: bool>(head: u64, key: &[u8]) -> u64 {
    if SHORT || key.len() <= SHORT_KEY {
        return head;
    }
    // A long key has more than 8 bytes: its last 8 are one word.
    let tail = word_at(key, key.len() - 8);
    head ^ tail.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One group of the fast table, stored in the table itself (no index to
/// follow: a lookup is one dependent load). One cache line: the key's head
/// (a key of up to [`SHORT_KEY`] bytes entire, with its length: most keys;
/// see [`Lanes::key`]), its length (0: a free entry), and integer sums of
/// the values in tenths. All zeros is a free entry (see [`FREE`]).
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Entry {
    head: [u64; 4],
    key_len: u32,
    min: i16,
    max: i16,
    count: u64,
    // Not beside `count`: the compiler would add the two with one vector
    // instruction, which takes three more to set up than two scalar adds
    // to memory.
    sum_sq: i64,
    sum: i64,
}

/// An entry's size in bytes.
const ENTRY: usize = std::mem::size_of::<Entry>();

// `byte_mask` masks to whole entries only if their size is a power of two.
const _: () = assert!(ENTRY.is_power_of_two());

/// The byte offset of the entry where a lookup of `hash` starts, in a
/// table whose [`FastTable::byte_mask`] is `byte_mask`: bits 6 and up of
/// the hash (an entry is 64 bytes) pick it.
#[inline(always)]
fn home(hash: u64, byte_mask: usize) -> usize {
    (hash as usize) & byte_mask
}

/// A free entry, as a group emptied by [`FastTable::reset`] leaves it: its
/// extremes ready for the first value. A new table's entries are all zeros,
/// also free (`key_len` 0): [`FastTable::insert`] writes every field.
const FREE: Entry = Entry {
    head: [0; 4],
    key_len: 0,
    min: i16::MAX,
    max: i16::MIN,
    count: 0,
    sum: 0,
    sum_sq: 0,
};

/// Entries up to which the fast table stays at most [`SPARSE_LOAD`] full:
/// a lookup then almost always hits on its first probe, and the probe
/// loop's branch stays predictable. The sparse entries cost no cache: only
/// the lines of groups that exist are read. Past this size (8 MiB) the
/// table may fill to half.
const SPARSE_ENTRIES: usize = 1 << 17;

/// Entries per group, at least, below [`SPARSE_ENTRIES`]. A lookup that
/// misses its first probe costs a mispredicted branch: a table half full
/// sent a quarter of Q1's records round the probe loop again (Q1 on one
/// core 0.81 s at half full, 0.50 s at an eighth), and at an eighth full
/// still about one in sixteen. At one in 64 about one in 128: Q1's kernel
/// alone (one core, Intel Xeon, `scan_file FILE hot`, medians of 9
/// alternating runs) 7.82 -> 7.46 ns a record. Q1's 413 groups then take
/// 32,768 entries: 2 MiB, one huge page, as the 4,096 entries of an eighth
/// did (see [`super::huge`]).
const SPARSE_LOAD: usize = 64;

/// Groups the fast table takes at most (512 MiB of entries at half full);
/// once it is full the rest of the task goes to the general path, so a
/// chunk of ever new keys costs the fast path bounded memory.
///
/// Why so many: past the cap, the rest of the task and every later task
/// (see `KeptTables::fast_overflowed`) take the general path, whose lookup
/// reads an index slot, an entry and the key, each waiting on the one
/// before, where the fast table reads one entry, and whose partials are
/// larger to build and to send. With 65,536 (8 MiB), Q4's 2,000,000 groups
/// went the general way: Q4 (`tally run`, 5 alternating runs) 4.92 ->
/// 4.10 s, and 8.84 -> 4.11 s in an hour when this VM's fresh memory was
/// slow (system time, all processes, 5.1 -> 2.2 s);
/// 12M distinct keys, 7 bytes each: 9.87 -> 7.68 s. Worker peak RSS,
/// mapped file included: Q4 679 -> 540 MiB, the 12M keys 433 -> 506 MiB;
/// the coordinator's, Q4: 1,299 -> 977 MiB. (The unit tests fill a table
/// of the old size: the same code, a test of seconds instead of minutes.)
#[cfg(not(test))]
pub(super) const MAX_GROUPS: usize = 1 << 22;
/// See above.
#[cfg(test)]
pub(super) const MAX_GROUPS: usize = 1 << 16;

/// An open-addressing table (linear probing, power-of-two size, a 64th to
/// half full, see [`SPARSE_ENTRIES`]) of [`Entry`]s.
pub(crate) struct FastTable {
    entries: HugeSlice<Entry>,
    /// The table's size in bytes less one entry's: masks a hash to the
    /// byte offset of an entry (see [`home`]). Set by `new` and `grow`;
    /// held rather than derived from `entries.len()` for each lookup, which
    /// measured 1.1 instructions a record more on Q1's kernel.
    byte_mask: usize,
    /// The entries in use, in insertion order, each with where its key
    /// starts in `arena`: what [`FastTable::groups`] and
    /// [`FastTable::reset`] walk, in one sequential pass (with `key_at`
    /// alone, each group cost a second random read).
    used: Vec<Used>,
    /// Per entry (same index): where its key starts in `arena`, when it
    /// is in use (read to compare keys longer than [`SHORT_KEY`] bytes, and
    /// to hand the keys out).
    key_at: Vec<usize>,
    arena: Vec<u8>,
    /// Whether the query needs sums of squares (variance).
    squares: bool,
}

/// An entry in use: its index and where its key starts in the arena.
#[derive(Clone, Copy)]
struct Used {
    entry: u32,
    key_at: usize,
}

/// Groups ahead of the one being read that [`FastTable::groups`] and
/// [`FastTable::reset`] ask the processor to fetch. After a task's scan has
/// streamed 16 MiB through the caches, the entries of many groups are in
/// none of them; fetched one at a time, each waited on memory (Q2, 10,000
/// groups: a tenth of a worker's time went to reading its groups out).
const FETCH_AHEAD: usize = 8;

/// A merged group: key bytes, count, sum, sum of squares, min, max (tenths).
pub(crate) struct FastGroup<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) count: u64,
    pub(crate) sum: i64,
    pub(crate) sum_sq: i64,
    pub(crate) min: i64,
    pub(crate) max: i64,
}

impl FastGroup<'_> {
    /// Adds this group's values (tenths: scale 1) to `acc`.
    pub(crate) fn merge_into(&self, acc: &mut ValueAcc) {
        acc.merge_exact(
            self.count,
            i128::from(self.sum),
            i128::from(self.sum_sq),
            1,
            self.min,
            self.max,
        );
    }
}

/// Whether `a` and `b`, of the same length and longer than [`SHORT_KEY`]
/// bytes, agree after their first [`SHORT_KEY`] (what a long key's head
/// holds). Word by word, the last word ending at the keys' end (the bytes
/// it shares with the head are equal already): a call of `memcmp` for
/// these few bytes cost more than the comparison.
#[inline(always)]
fn tail_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() || len <= SHORT_KEY {
        return a.get(SHORT_KEY..) == b.get(SHORT_KEY..);
    }
    let mut at = SHORT_KEY;
    while at + 8 < len {
        if word_at(a, at) != word_at(b, at) {
            return false;
        }
        at += 8;
    }
    word_at(a, len - 8) == word_at(b, len - 8)
}

/// The `len` bytes of `arena` where `key_at[i]` says.
fn key_in<'a>(arena: &'a [u8], key_at: &[usize], i: usize, len: usize) -> &'a [u8] {
    key_at
        .get(i)
        .and_then(|&at| arena.get(at..at + len))
        .unwrap_or_default()
}

impl FastTable {
    /// An empty table; `squares`: keep sums of squares.
    pub(crate) fn new(squares: bool) -> Self {
        // One 2 MiB page of entries (see `huge`), which up to 512 groups
        // fill no more than SPARSE_LOAD allows: no growth, and no page
        // cleared for nothing, below that.
        const FIRST_ENTRIES: usize = HUGE / ENTRY;
        FastTable {
            entries: HugeSlice::zeroed(FIRST_ENTRIES),
            byte_mask: (FIRST_ENTRIES - 1) * ENTRY,
            used: Vec::new(),
            key_at: vec![0; FIRST_ENTRIES],
            arena: Vec::new(),
            squares,
        }
    }

    /// Empties every group, keeping the keys: a task on a chunk of the
    /// same file mostly meets the same keys, and finds them in place.
    pub(crate) fn reset(&mut self) {
        for (n, u) in self.used.iter().enumerate() {
            self.prefetch_used(n + FETCH_AHEAD);
            if let Some(e) = self.entries.get_mut(u.entry as usize) {
                *e = Entry {
                    head: e.head,
                    key_len: e.key_len,
                    ..FREE
                };
            }
        }
    }

    /// Whether the table is small enough to keep for the next task: a file
    /// with ever new keys would otherwise hold on to the most memory any
    /// task needed.
    pub(crate) fn worth_keeping(&self) -> bool {
        const MAX_KEPT_GROUPS: usize = 1 << 14;
        const MAX_KEPT_KEY_BYTES: usize = 4 << 20;
        self.used.len() <= MAX_KEPT_GROUPS && self.arena.len() <= MAX_KEPT_KEY_BYTES
    }

    /// Whether the table takes no new key ([`MAX_GROUPS`]).
    pub(crate) fn is_full(&self) -> bool {
        self.used.len() >= MAX_GROUPS
    }

    /// Whether the table keeps sums of squares.
    pub(crate) fn squares(&self) -> bool {
        self.squares
    }

    /// Groups, and the bytes of their keys.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.used.len(), self.arena.len())
    }

    /// Records added.
    pub(crate) fn records(&self) -> u64 {
        self.groups().map(|g| g.count).sum()
    }

    /// Adds `value` (tenths, within ±999) to the group of `key`, whose
    /// head ([`Lanes::key`]) is `head`; `false` (and the table untouched)
    /// when the key is new and the table has [`MAX_GROUPS`]. `SQUARES` is
    /// `self.squares`, as a constant; `SHORT`: the key is known to have at
    /// most [`SHORT_KEY`] bytes (no tail to hash or compare).
    ///
    /// # Safety
    /// The processor supports `L`.
    #[inline(always)]
    pub(super) unsafe fn add<L: Lanes, const SQUARES: bool, const SHORT: bool>(
        &mut self,
        key: &[u8],
        head: L::Key,
        value: i64,
    ) -> bool {
        // SAFETY: passed on from the caller.
        unsafe {
            let hash = Self::hash::<L, SHORT>(key, head);
            self.add_hashed::<L, SQUARES, SHORT>(key, head, hash, value)
        }
    }

    /// The hash [`FastTable::add_hashed`] takes for `key`, whose head is
    /// `head`; `SHORT` as in [`FastTable::add`].
    ///
    /// # Safety
    /// The processor supports `L`.
    #[inline(always)]
    pub(super) unsafe fn hash<L: Lanes, const SHORT: bool>(key: &[u8], head: L::Key) -> u64 {
        // SAFETY: the caller guarantees the processor.
        key_hash::<SHORT>(unsafe { L::mix(head) }, key)
    }

    /// Asks the processor to bring the entry where a lookup of `hash`
    /// starts into its caches: a lookup issued a record or two later then
    /// finds it there instead of waiting on memory. Only a hint: nothing
    /// changes if the table grows in between.
    #[inline(always)]
    pub(super) fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = home(hash, self.byte_mask);
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch reads
            // nothing and cannot fault, and `at` is in bounds anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.entries.as_ptr().cast::<i8>().add(at)) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Asks the processor to fetch the entry of the `n`th group in
    /// insertion order, if there is one (see [`FETCH_AHEAD`]).
    #[inline(always)]
    fn prefetch_used(&self, n: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(u) = self.used.get(n) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = u.entry as usize * ENTRY;
            let p = self.entries.as_ptr().cast::<i8>().wrapping_add(at);
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch reads
            // nothing and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = n;
    }

    /// [`FastTable::add`] with the key's [`FastTable::hash`] given.
    ///
    /// # Safety
    /// The processor supports `L`; `hash` is `key`'s.
    #[inline(always)]
    pub(super) unsafe fn add_hashed<L: Lanes, const SQUARES: bool, const SHORT: bool>(
        &mut self,
        key: &[u8],
        head: L::Key,
        hash: u64,
        value: i64,
    ) -> bool {
        // Every `L` call below: the caller guarantees the processor.
        let short = SHORT || key.len() <= SHORT_KEY;
        // Byte offsets, not indices: the mask picks whole entries, and the
        // offset addresses one without a multiplication.
        let mask = self.byte_mask;
        let mut at = home(hash, mask);
        loop {
            // SAFETY: `at` is a multiple of the entry size below
            // `byte_mask + ENTRY`, the table's size in bytes (see
            // `byte_mask`).
            let e = unsafe { &mut *self.entries.as_mut_ptr().byte_add(at) };
            // Equal heads are equal keys up to SHORT_KEY bytes (their
            // lengths are in the heads); a longer key also compares its
            // length and its rest.
            if unsafe { L::same(head, &e.head) }
                && (short
                    || (e.key_len as usize == key.len()
                        && tail_eq(
                            key,
                            key_in(&self.arena, &self.key_at, at / ENTRY, key.len()),
                        )))
            {
                // Values in tenths are within ±999: the narrowing is exact.
                let v = value as i16;
                e.count += 1;
                e.sum += value;
                if SQUARES {
                    e.sum_sq += value * value;
                }
                // New extremes are rare after a group's first records: a
                // predictable branch, and no store, instead of a store each.
                if v < e.min {
                    e.min = v;
                }
                if v > e.max {
                    e.max = v;
                }
                return true;
            }
            if e.key_len == 0 {
                return unsafe { self.insert::<L>(at / ENTRY, key, L::words(head), value) };
            }
            at = (at + ENTRY) & mask;
        }
    }

    /// Makes entry `i` the group of `key`, whose head is `head`, with its
    /// first value; `false` (the table untouched) at [`MAX_GROUPS`].
    ///
    /// # Safety
    /// The processor supports `L` (the way that filled the table, whose
    /// hash a growth places the groups by).
    #[cold]
    unsafe fn insert<L: Lanes>(
        &mut self,
        i: usize,
        key: &[u8],
        head: [u64; 4],
        value: i64,
    ) -> bool {
        if self.used.len() >= MAX_GROUPS {
            return false;
        }
        // A key longer than u32::MAX bytes cannot be in a chunk that fits
        // in memory; saturating keeps such a key apart from shorter ones.
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        let v = value as i16;
        let entry = Entry {
            head,
            key_len,
            min: v,
            max: v,
            count: 1,
            sum: value,
            sum_sq: if self.squares { value * value } else { 0 },
        };
        let key_at = self.arena.len();
        if let (Some(e), Some(at)) = (self.entries.get_mut(i), self.key_at.get_mut(i)) {
            *e = entry;
            *at = key_at;
            self.arena.extend_from_slice(key);
        }
        // MAX_GROUPS keeps indices far below u32::MAX.
        self.used.push(Used {
            entry: i as u32,
            key_at,
        });
        let load = if self.entries.len() < SPARSE_ENTRIES {
            SPARSE_LOAD
        } else {
            2
        };
        if self.used.len() * load > self.entries.len() {
            // SAFETY: passed on from the caller.
            unsafe { self.grow::<L>() };
        }
        true
    }

    /// Doubles the table, placing every group again by `L`'s hash.
    ///
    /// # Safety
    /// The processor supports `L`.
    unsafe fn grow<L: Lanes>(&mut self) {
        let size = self.entries.len() * 2;
        let byte_mask = (size - 1) * ENTRY;
        let mask = size - 1;
        let mut entries = HugeSlice::<Entry>::zeroed(size);
        let mut key_at = vec![0; size];
        for slot in &mut self.used {
            let old = slot.entry as usize;
            let Some(&e) = self.entries.get(old) else {
                continue;
            };
            let key = key_in(&self.arena, &self.key_at, old, e.key_len as usize);
            // SAFETY: passed on from the caller.
            let hash = key_hash::<false>(unsafe { L::mix_words(&e.head) }, key);
            let mut i = home(hash, byte_mask) / ENTRY;
            while entries.get(i).is_some_and(|n| n.key_len != 0) {
                i = (i + 1) & mask;
            }
            if let (Some(n), Some(at)) = (entries.get_mut(i), key_at.get_mut(i)) {
                *n = e;
                *at = self.key_at.get(old).copied().unwrap_or(0);
            }
            slot.entry = i as u32;
        }
        self.entries = entries;
        self.byte_mask = byte_mask;
        self.key_at = key_at;
    }

    /// The groups with records, in the order their keys were first seen.
    pub(crate) fn groups(&self) -> impl Iterator<Item = FastGroup<'_>> {
        self.used.iter().enumerate().filter_map(|(n, u)| {
            self.prefetch_used(n + FETCH_AHEAD);
            let e = self.entries.get(u.entry as usize)?;
            (e.count > 0).then(|| FastGroup {
                key: self
                    .arena
                    .get(u.key_at..u.key_at + e.key_len as usize)
                    .unwrap_or_default(),
                count: e.count,
                sum: e.sum,
                sum_sq: e.sum_sq,
                min: i64::from(e.min),
                max: i64::from(e.max),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long keys of every length up to 80 bytes: equal tails compare
    /// equal, and a change in any byte after the head, or in the length,
    /// is seen.
    #[test]
    fn tails_compare_byte_for_byte() {
        for len in SHORT_KEY + 1..=80 {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert!(tail_eq(&a, &a.clone()), "{len}");
            for at in SHORT_KEY..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!tail_eq(&a, &b), "{len} {at}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!tail_eq(&a, &longer), "{len}");
        }
    }

    /// The hash of a long key mixes in its last 8 bytes: keys that share
    /// their head spread.
    #[test]
    fn long_keys_sharing_a_head_hash_apart() {
        let head = 12;
        let hashes: std::collections::HashSet<u64> = (0..1000u32)
            .map(|i| {
                let key = format!("{:L<31}{i:08}", "x");
                key_hash::<false>(head, key.as_bytes())
            })
            .collect();
        assert_eq!(hashes.len(), 1000);
    }
}
