//! The group table of one task: keys in one arena, an open-addressing index
//! that compares borrowed key bytes, and the accumulators of each group.

use hashbrown::HashTable;
use tally_protocol::packed::{push_key_part, KEY_PART_HEADER};
use tally_protocol::PackedPartial;

use super::accumulate::ValueAcc;
use super::number::low_bytes;

/// How the key bytes a table sees map to key columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyShape {
    /// No key columns: one group.
    Global,
    /// One key column: the key is the field's bytes (never empty; the null
    /// key has its own group).
    Single,
    /// Several: the key is [`encode_key`]'s encoding.
    Multi,
}

/// One group: where its key is, and its row count.
struct Entry {
    hash: u64,
    key_start: usize,
    key_len: usize,
    rows: u64,
}

/// Groups of a task.
pub(crate) struct GroupTable {
    shape: KeyShape,
    values: usize,
    index: HashTable<usize>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    /// `values` accumulators per group, group after group.
    accs: Vec<ValueAcc>,
    /// The group of the null key, for [`KeyShape::Single`].
    null_group: Option<usize>,
    /// A direct-mapped cache in front of `index` for keys of 1 to 8 bytes
    /// (country codes, status codes, short names): one load and one
    /// comparison instead of a probe, a slot and an entry, each waiting on
    /// the one before.
    short: Vec<ShortSlot>,
}

/// A [`GroupTable::short`] slot: a key of up to 8 bytes as a zero-padded
/// word, its length (0: empty slot), its group.
#[derive(Clone, Copy, Default)]
struct ShortSlot {
    word: u64,
    len: u32,
    group: u32,
}

/// Slots of the short-key cache.
const SHORT_SLOTS: usize = 256;

impl GroupTable {
    /// An empty table whose groups have `values` value columns.
    pub(crate) fn new(shape: KeyShape, values: usize) -> Self {
        GroupTable {
            shape,
            values,
            index: HashTable::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            accs: Vec::new(),
            null_group: None,
            short: vec![ShortSlot::default(); SHORT_SLOTS],
        }
    }

    /// The group of the key `base[start..end]` (not empty), created if new:
    /// [`GroupTable::group`], through the short-key cache when the key has
    /// at most 8 bytes and `base` has 8 bytes at `start`.
    #[inline]
    pub(crate) fn group_at(&mut self, base: &[u8], start: usize, end: usize) -> usize {
        let len = end.saturating_sub(start);
        let Some(bytes) = base
            .get(start..start + 8)
            .filter(|_| (1..=8).contains(&len))
        else {
            return self.group(base.get(start..end).unwrap_or_default());
        };
        let word = read_u64(bytes) & low_bytes(len);
        let at = (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % SHORT_SLOTS;
        if let Some(slot) = self.short.get(at) {
            if slot.word == word && slot.len as usize == len {
                return slot.group as usize;
            }
        }
        let group = self.group(bytes.get(..len).unwrap_or_default());
        if let (Some(slot), Ok(g)) = (self.short.get_mut(at), u32::try_from(group)) {
            *slot = ShortSlot {
                word,
                len: len as u32,
                group: g,
            };
        }
        group
    }

    /// The group of `key`, created if new.
    #[inline]
    pub(crate) fn group(&mut self, key: &[u8]) -> usize {
        let hash = hash_bytes(key);
        let (entries, arena) = (&self.entries, &self.arena);
        let found = self.index.find(hash, |&i| {
            let e = &entries[i];
            e.hash == hash
                && arena
                    .get(e.key_start..e.key_start + e.key_len)
                    .is_some_and(|stored| key_eq(stored, key))
        });
        match found {
            Some(&i) => i,
            None => self.insert(hash, key),
        }
    }

    /// The group of the null key (single key column).
    pub(crate) fn null_group(&mut self) -> usize {
        match self.null_group {
            Some(i) => i,
            None => {
                let i = self.push_entry(0, &[]);
                self.null_group = Some(i);
                i
            }
        }
    }

    #[cold]
    fn insert(&mut self, hash: u64, key: &[u8]) -> usize {
        let i = self.push_entry(hash, key);
        let entries = &self.entries;
        self.index.insert_unique(hash, i, |&j| entries[j].hash);
        i
    }

    fn push_entry(&mut self, hash: u64, key: &[u8]) -> usize {
        let i = self.entries.len();
        self.entries.push(Entry {
            hash,
            key_start: self.arena.len(),
            key_len: key.len(),
            rows: 0,
        });
        self.arena.extend_from_slice(key);
        self.accs
            .resize_with(self.accs.len() + self.values, ValueAcc::default);
        i
    }

    /// Counts a row in group `g`, and returns its accumulators.
    #[inline]
    pub(crate) fn row(&mut self, g: usize) -> &mut [ValueAcc] {
        if let Some(e) = self.entries.get_mut(g) {
            e.rows += 1;
        }
        let start = g * self.values;
        self.accs
            .get_mut(start..start + self.values)
            .unwrap_or_default()
    }

    /// Number of groups.
    /// Adds `n` records to group `g` without touching its values.
    pub(crate) fn add_rows(&mut self, g: usize, n: u64) {
        if let Some(e) = self.entries.get_mut(g) {
            e.rows += n;
        }
    }

    /// The accumulators of group `g`.
    pub(crate) fn accs(&mut self, g: usize) -> &mut [ValueAcc] {
        let start = g * self.values;
        self.accs
            .get_mut(start..start + self.values)
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Empties the table, keeping its memory: a worker's next task of the
    /// same query fills it again without growing it (rehashing, and
    /// faulting in fresh pages) from nothing.
    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.arena.clear();
        self.accs.clear();
        self.null_group = None;
        self.short.fill(ShortSlot::default());
    }

    /// The groups as a partial, built in the memory of `into` (its groups
    /// dropped), leaving the table empty (see [`GroupTable::clear`]);
    /// `squares[v]`: whether value column `v` keeps its sum of squares.
    pub(crate) fn take_partial(&mut self, squares: &[bool], into: PackedPartial) -> PackedPartial {
        let partial = self.to_partial(squares, into);
        self.clear();
        partial
    }

    /// The table as a partial, in the memory of `partial`; `squares[v]`:
    /// whether value column `v` keeps its sum of squares.
    fn to_partial(&self, squares: &[bool], mut partial: PackedPartial) -> PackedPartial {
        // Keys of one column gain a tag and a length each (`push_key_part`).
        let key_bytes = self.arena.len() + self.entries.len() * KEY_PART_HEADER;
        partial.clear_with_capacity(
            self.entries.len(),
            key_bytes,
            self.entries.len() * self.values,
        );
        for (i, e) in self.entries.iter().enumerate() {
            let key_bytes = self
                .arena
                .get(e.key_start..e.key_start + e.key_len)
                .unwrap_or_default();
            let values = self
                .accs
                .get(i * self.values..(i + 1) * self.values)
                .unwrap_or_default()
                .iter()
                .zip(squares)
                .map(|(a, &sq)| a.finish(sq));
            match self.shape {
                KeyShape::Global => partial.push_group([], e.rows, values),
                KeyShape::Single if Some(i) == self.null_group => {
                    partial.push_group([None], e.rows, values)
                }
                KeyShape::Single => partial.push_group([Some(key_bytes)], e.rows, values),
                // Already the protocol's encoding (see `encode_key`).
                KeyShape::Multi => partial.push_encoded_group(key_bytes, e.rows, values),
            }
        }
        partial
    }
}

/// Appends the encoding of one key column to `out`, an empty field as
/// the null key: the protocol's key encoding (decoded by
/// [`decode_key`]).
#[inline]
pub(crate) fn encode_key(out: &mut Vec<u8>, field: &[u8]) {
    push_key_part(out, (!field.is_empty()).then_some(field));
}

/// Key equality without a `memcmp` call for short keys (most group keys
/// are a few bytes, where the call costs more than the comparison).
#[inline(always)]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}

/// A cheap hash of short keys in the style of wyhash: keys up to 16 bytes
/// are read as two overlapping words (no loop), longer ones 16 bytes at a
/// time; each step is a folded 128-bit multiply.
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K0: u64 = 0x243F_6A88_85A3_08D3;
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let len = bytes.len();
    let (a, b) = if len >= 8 {
        (
            read_u64(bytes),
            read_u64(bytes.get(len - 8..).unwrap_or_default()),
        )
    } else if len >= 4 {
        (
            u64::from(read_u32(bytes)),
            u64::from(read_u32(bytes.get(len - 4..).unwrap_or_default())),
        )
    } else if len > 0 {
        let at = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
        ((at(0) << 16) | (at(len / 2) << 8) | at(len - 1), 0)
    } else {
        (0, 0)
    };
    let mut h = fold(a ^ K0 ^ (len as u64).wrapping_mul(K2), b ^ K1);
    if len > 16 {
        let mut rest = bytes.get(8..len - 8).unwrap_or_default();
        while let Some((block, tail)) = rest.split_first_chunk::<16>() {
            h = fold(read_u64(block) ^ h, read_u64(&block[8..]) ^ K2);
            rest = tail;
        }
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            h = fold(read_u64(&last) ^ h, read_u64(&last[8..]) ^ K2);
        }
    }
    h
}

/// The 128-bit product of `a` and `b`, high half xor low half.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The first 8 bytes as a little-endian word (`bytes.len() >= 8`).
#[inline]
fn read_u64(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = bytes.get(..8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// The first 4 bytes as a little-endian word (`bytes.len() >= 4`).
#[inline]
fn read_u32(bytes: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    if let Some(b) = bytes.get(..4) {
        w.copy_from_slice(b);
    }
    u32::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use tally_protocol::packed::decode_key;
    use tally_protocol::Partial;

    /// Thousands of short keys through the short-key cache (so its slots
    /// are taken over again and again), keys that differ only by a
    /// trailing NUL, keys near the end of the buffer: each always gets the
    /// group that `group` gives it, and distinct keys distinct groups.
    #[test]
    fn short_key_cache_agrees_with_the_index() {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for i in 0..3000u32 {
            let k = format!("{:x}", i.wrapping_mul(2_654_435_761) % 100_000_000);
            keys.push(k.clone().into_bytes());
            keys.push(format!("{k}\0").into_bytes());
        }
        let mut base = Vec::new();
        let mut spans = Vec::new();
        for round in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                if (i + round) % 3 != 0 {
                    spans.push((base.len(), base.len() + k.len(), i));
                    base.extend_from_slice(k);
                }
            }
        }
        let mut t = GroupTable::new(KeyShape::Single, 1);
        let mut seen = std::collections::HashMap::new();
        for &(a, b, i) in &spans {
            let g = t.group_at(&base, a, b);
            assert_eq!(*seen.entry(i).or_insert(g), g, "key {i}");
            assert_eq!(t.group(&keys[i]), g);
        }
        assert_eq!(t.len(), keys.len());
    }

    #[test]
    fn groups_by_bytes() {
        let mut t = GroupTable::new(KeyShape::Single, 1);
        let a = t.group(b"Hamburg");
        let b = t.group(b"Bulawayo");
        assert_ne!(a, b);
        assert_eq!(t.group(b"Hamburg"), a);
        let n = t.null_group();
        assert_eq!(t.null_group(), n);
        t.row(a)[0].push_exact(10, 0, false);
        t.row(a)[0].push_exact(20, 0, false);
        t.row(n);
        assert_eq!(t.len(), 3);
        let short = t.group_at(b"ab;cdefghij", 0, 2);
        t.row(short);
        let p = Partial::from(&t.take_partial(&[false], PackedPartial::default()));
        let h = p
            .groups
            .iter()
            .find(|g| g.key == vec![Some(ByteBuf::from(b"Hamburg".to_vec()))])
            .unwrap();
        assert_eq!(h.rows, 2);
        assert_eq!(h.values[0].exact_sum(), Some((30, 0)));
        assert!(p.groups.iter().any(|g| g.key == vec![None] && g.rows == 1));
        assert_eq!(p.groups.len(), 4);

        // Taken, the table is empty and starts again from group 0: no
        // stale key in the index, the short-key cache or the null group.
        assert_eq!(t.len(), 0);
        assert_eq!(t.group_at(b"ab;cdefghij", 0, 2), 0);
        assert_eq!(t.group(b"Hamburg"), 1);
        assert_eq!(t.null_group(), 2);
        t.row(0);
        let again = Partial::from(&t.take_partial(&[false], PackedPartial::default()));
        assert_eq!(again.groups.len(), 3);
        assert_eq!(again.groups[0].rows, 1);
        assert_eq!(again.groups[1].rows, 0);
    }

    #[test]
    fn multi_keys_round_trip() {
        let mut buf = Vec::new();
        encode_key(&mut buf, b"a");
        encode_key(&mut buf, b"");
        encode_key(&mut buf, b"xyz");
        assert_eq!(
            decode_key(&buf),
            vec![
                Some(ByteBuf::from(b"a".to_vec())),
                None,
                Some(ByteBuf::from(b"xyz".to_vec()))
            ]
        );
        // Corrupt encodings do not panic.
        for cut in 0..buf.len() {
            let _ = decode_key(&buf[..cut]);
        }
    }

    #[test]
    fn hash_spreads_similar_keys() {
        let mut seen = std::collections::HashSet::new();
        for len in 0..40 {
            for byte in 0..=255u8 {
                let mut k = vec![b'a'; len];
                if len > 0 {
                    k[len / 3] = byte;
                }
                seen.insert((len, k.clone(), hash_bytes(&k)));
            }
        }
        let hashes: std::collections::HashSet<u64> = seen.iter().map(|s| s.2).collect();
        let keys: std::collections::HashSet<Vec<u8>> = seen.into_iter().map(|s| s.1).collect();
        assert_eq!(hashes.len(), keys.len());
    }

    #[test]
    fn many_groups() {
        let mut t = GroupTable::new(KeyShape::Single, 0);
        for i in 0..10_000u32 {
            let g = t.group(format!("k{i}").as_bytes());
            t.row(g);
        }
        for i in 0..10_000u32 {
            assert_eq!(t.group(format!("k{i}").as_bytes()), i as usize);
        }
        assert_eq!(t.len(), 10_000);
    }
}
