//! [`GroupTable`]: groups merged from many partials, looked up by key.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use serde_bytes::ByteBuf;

use crate::packed::{decode_key, encode_key_into, key_parts, KeyParts, PackedPartial};
use crate::partial::{GroupState, NumState, Partial};

/// Groups merged from many partials, looked up by key.
///
/// Merge partials in a fixed order (chunk order) and the result is the
/// same bits whatever the worker count.
///
/// Laid out for merging millions of groups: each key is encoded once into
/// one byte arena, the per-group data lives in flat arrays (key span and
/// rows; the value states `stride` apiece), and the index is an
/// open-addressing array of `(hash, group)` slots. Written by hand rather
/// than on `hashbrown`'s table so that [`GroupTable::merge_packed`] can
/// fetch a group's slot, then its row, states and key bytes, several
/// groups ahead of the one it merges: with more groups than the caches
/// hold, each of those is a miss, and waiting on them in turn was most of
/// a many-group merge's time.
#[derive(Debug, Clone)]
pub struct GroupTable {
    /// Open addressing, linear probing; a power of two long, at most half
    /// full.
    slots: Vec<Slot>,
    meta: Vec<GroupMeta>,
    /// The encoded keys (see [`PackedPartial`]), back to back.
    arena: Vec<u8>,
    /// The value states, `stride` per group, in group order.
    values: Vec<NumState>,
    /// Value states per group: that of the first group merged.
    stride: usize,
    /// The key being looked up, encoded.
    scratch: Vec<u8>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// An index slot: a key's hash and its group, plus one (0: a free slot).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u64,
    group: u32,
}

/// Per group: its key's place in the arena, and its row count.
#[derive(Debug, Clone, Copy)]
struct GroupMeta {
    key_start: usize,
    key_len: usize,
    rows: u64,
}

/// Slots of an empty table.
const FIRST_SLOTS: usize = 16;

/// How many groups ahead of the one it merges [`GroupTable::merge_packed`]
/// fetches a group's row and states (its slot twice as far, its key bytes
/// half as far).
const AHEAD: usize = 8;

impl Default for GroupTable {
    fn default() -> Self {
        GroupTable {
            slots: vec![Slot::default(); FIRST_SLOTS],
            meta: Vec::new(),
            arena: Vec::new(),
            values: Vec::new(),
            stride: 0,
            scratch: Vec::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }
}

impl GroupTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges every group of `partial`.
    pub fn merge(&mut self, partial: Partial) {
        for g in partial.groups {
            self.merge_group(g);
        }
    }

    /// Merges one group.
    pub fn merge_group(&mut self, g: GroupState) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        encode_key_into(&g.key, &mut scratch);
        let hash = self.hasher.hash_one(&scratch[..]);
        self.merge_hashed(hash, &scratch, g.rows, &g.values);
        self.scratch = scratch;
    }

    /// Merges every group of a packed partial (see [`PackedPartial`]): the
    /// keys are looked up and kept as they were received, never decoded.
    ///
    /// Group `k` is merged after three hints: its slot was fetched at
    /// group `k - 2 * AHEAD`, the row and states of the group in that slot
    /// (when the hash matches) at `k - AHEAD`, its key bytes at
    /// `k - AHEAD / 2`. A wrong guess (a collision, a group new to the
    /// table) costs only the miss the hints were to hide.
    pub fn merge_packed(&mut self, partial: &PackedPartial) {
        const RING: usize = 4 * AHEAD;
        let n = partial.len();
        let mut hashes = [0u64; RING];
        let mut guesses = [usize::MAX; RING];
        let hash_ahead = |table: &Self, k: usize, hashes: &mut [u64; RING]| {
            if let Some(g) = partial.group(k) {
                let hash = table.hasher.hash_one(g.encoded_key);
                hashes[k % RING] = hash;
                prefetch(table.slots.get(hash as usize & (table.slots.len() - 1)));
            }
        };
        for k in 0..(2 * AHEAD).min(n) {
            hash_ahead(self, k, &mut hashes);
        }
        for k in 0..n {
            hash_ahead(self, k + 2 * AHEAD, &mut hashes);
            if k + AHEAD < n {
                let at = (k + AHEAD) % RING;
                guesses[at] = self.home_group(hashes[at]).unwrap_or(usize::MAX);
                self.prefetch_group(guesses[at]);
            }
            if k + AHEAD / 2 < n {
                self.prefetch_key(guesses[(k + AHEAD / 2) % RING]);
            }
            if let Some(g) = partial.group(k) {
                self.merge_hashed(hashes[k % RING], g.encoded_key, g.rows, g.values);
            }
        }
    }

    /// The group in the first slot `hash` probes, if it has that hash.
    fn home_group(&self, hash: u64) -> Option<usize> {
        let slot = self.slots.get(hash as usize & (self.slots.len() - 1))?;
        (slot.group != 0 && slot.hash == hash).then(|| slot.group as usize - 1)
    }

    /// Merges one group whose key is `encoded` (see [`encode_key_into`]),
    /// of hash `hash`.
    fn merge_hashed(&mut self, hash: u64, encoded: &[u8], rows: u64, values: &[NumState]) {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let Some(&slot) = self.slots.get(at) else {
                return;
            };
            if slot.group == 0 {
                self.insert(at, hash, encoded, rows, values);
                return;
            }
            let i = slot.group as usize - 1;
            if slot.hash == hash && self.encoded_key(i) == encoded {
                if let Some(m) = self.meta.get_mut(i) {
                    m.rows += rows;
                }
                let base = i * self.stride;
                if let Some(states) = self.values.get_mut(base..base + self.stride) {
                    for (a, b) in states.iter_mut().zip(values) {
                        a.merge(b);
                    }
                }
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds a new group in the free slot `at`.
    #[cold]
    fn insert(&mut self, at: usize, hash: u64, encoded: &[u8], rows: u64, values: &[NumState]) {
        // Slots hold the group plus one; more than 4 billion groups cannot
        // be held in memory anyway.
        let Ok(group) = u32::try_from(self.meta.len() + 1) else {
            return;
        };
        if self.meta.is_empty() {
            self.stride = values.len();
        }
        // A group with another number of states than the first (not sent
        // by a correct worker) keeps the first `stride`, padded if short.
        let kept = values.len().min(self.stride);
        self.values
            .extend_from_slice(values.get(..kept).unwrap_or_default());
        self.values
            .resize(self.values.len() + self.stride - kept, NumState::default());
        self.meta.push(GroupMeta {
            key_start: self.arena.len(),
            key_len: encoded.len(),
            rows,
        });
        self.arena.extend_from_slice(encoded);
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = Slot { hash, group };
        }
        if self.meta.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Doubles the index, placing every slot again.
    fn grow(&mut self) {
        let mut slots = vec![Slot::default(); self.slots.len() * 2];
        let mask = slots.len() - 1;
        for slot in self.slots.iter().filter(|s| s.group != 0) {
            let mut at = slot.hash as usize & mask;
            while slots.get(at).is_some_and(|s| s.group != 0) {
                at = (at + 1) & mask;
            }
            if let Some(s) = slots.get_mut(at) {
                *s = *slot;
            }
        }
        self.slots = slots;
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether no group has been merged.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Group `i` (in the order first seen), borrowed.
    pub fn group(&self, i: usize) -> Option<GroupRef<'_>> {
        let m = self.meta.get(i)?;
        let base = i * self.stride;
        Some(GroupRef {
            key: KeyRef::Encoded(self.key_of(m)?),
            rows: m.rows,
            values: self.values.get(base..base + self.stride)?,
        })
    }

    /// Group `order[n]` (see [`GroupTable::sorted_order`]), borrowed.
    /// Groups visited in key order are scattered over the table, so this
    /// also fetches the row and states of `order[n + 2 * AHEAD]` and the
    /// key bytes of `order[n + AHEAD]`: walking `n` up, each group is in
    /// cache when its turn comes.
    pub fn group_in_order(&self, order: &[u32], n: usize) -> Option<GroupRef<'_>> {
        if let Some(&i) = order.get(n + 2 * AHEAD) {
            self.prefetch_group(i as usize);
        }
        if let Some(&i) = order.get(n + AHEAD) {
            self.prefetch_key(i as usize);
        }
        self.group(*order.get(n)? as usize)
    }

    /// Starts loading the row and value states of group `i` (a hint: any
    /// `i` will do).
    fn prefetch_group(&self, i: usize) {
        let base = i.saturating_mul(self.stride);
        prefetch(self.meta.get(i));
        prefetch(self.values.get(base));
        prefetch(
            self.values
                .get(base.saturating_add(self.stride.saturating_sub(1))),
        );
    }

    /// Starts loading the key bytes of group `i`, whose place is in its
    /// row: fetched by [`GroupTable::prefetch_group`] some groups earlier,
    /// or this costs the miss it would save.
    fn prefetch_key(&self, i: usize) {
        prefetch(self.meta.get(i).and_then(|m| self.arena.get(m.key_start)));
    }

    /// The encoded key of the group of row `m`.
    fn key_of(&self, m: &GroupMeta) -> Option<&[u8]> {
        self.arena.get(m.key_start..m.key_start + m.key_len)
    }

    /// The encoded key of group `i` (empty if there is none).
    fn encoded_key(&self, i: usize) -> &[u8] {
        self.meta
            .get(i)
            .and_then(|m| self.key_of(m))
            .unwrap_or_default()
    }

    /// The groups, in the order first seen.
    pub fn groups(&self) -> impl Iterator<Item = GroupState> + '_ {
        (0..self.len()).filter_map(|i| self.group(i).map(|g| g.to_group_state()))
    }

    /// The indices of the groups (see [`GroupTable::group`]) in key order:
    /// the order of [`GroupState::key`]s, part by part, a null part first.
    ///
    /// Sorts `(prefix, index)` pairs, the prefix being the first 16 bytes
    /// of the first key part: most comparisons are decided in the pair
    /// itself, and only keys sharing their prefix read their bytes.
    pub fn sorted_order(&self) -> Vec<u32> {
        let mut pairs: Vec<(u128, u32)> = (0..self.len())
            .map(|i| (sort_prefix(self.encoded_key(i)), i as u32))
            .collect();
        pairs.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                cmp_encoded(
                    self.encoded_key(a.1 as usize),
                    self.encoded_key(b.1 as usize),
                )
            })
        });
        pairs.into_iter().map(|(_, i)| i).collect()
    }

    /// The groups sorted by key.
    pub fn into_sorted(self) -> Vec<GroupState> {
        self.sorted_order()
            .into_iter()
            .filter_map(|i| self.group(i as usize).map(|g| g.to_group_state()))
            .collect()
    }

    /// The groups as a partial, in the order first seen.
    pub fn into_partial(self) -> Partial {
        Partial {
            groups: self.groups().collect(),
        }
    }
}

/// Starts loading the cache line of `item`, if any (x86-64; elsewhere
/// nothing). Written by hand: the standard library has no portable
/// prefetch hint, and a plain read would stall on the miss it is meant to
/// hide.
#[inline(always)]
fn prefetch<T>(item: Option<&T>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = item {
        // SAFETY: a prefetch is a hint that never faults, and SSE is part
        // of every x86-64 processor.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (item as *const T).cast(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// A big-endian number of the first 16 bytes (zero-padded) of an encoded
/// key's first part, 0 when it is null: a key that sorts before another
/// never has a greater prefix.
fn sort_prefix(encoded: &[u8]) -> u128 {
    let mut head = [0u8; 16];
    if let Some(Some(bytes)) = key_parts(encoded).next() {
        let n = bytes.len().min(16);
        if let (Some(to), Some(from)) = (head.get_mut(..n), bytes.get(..n)) {
            to.copy_from_slice(from);
        }
    }
    u128::from_be_bytes(head)
}

/// The order of two encoded keys: that of their parts as
/// [`GroupState::key`]s (`Vec<Option<ByteBuf>>`) compare.
fn cmp_encoded(a: &[u8], b: &[u8]) -> Ordering {
    key_parts(a).cmp(key_parts(b))
}

/// One group, borrowed from a [`GroupTable`] or a [`GroupState`].
#[derive(Debug, Clone, Copy)]
pub struct GroupRef<'a> {
    key: KeyRef<'a>,
    /// Records in the group.
    pub rows: u64,
    /// One state per value column.
    pub values: &'a [NumState],
}

/// Where a [`GroupRef`]'s key is.
#[derive(Debug, Clone, Copy)]
enum KeyRef<'a> {
    /// Encoded (see [`encode_key_into`]).
    Encoded(&'a [u8]),
    /// As parts.
    Parts(&'a [Option<ByteBuf>]),
}

impl<'a> GroupRef<'a> {
    /// The key, one entry per key column; `None` is the null key.
    pub fn key_parts(&self) -> GroupKeyParts<'a> {
        match self.key {
            KeyRef::Encoded(enc) => GroupKeyParts::Encoded(key_parts(enc)),
            KeyRef::Parts(parts) => GroupKeyParts::Parts(parts.iter()),
        }
    }

    /// The group as a [`GroupState`] (allocates).
    pub fn to_group_state(&self) -> GroupState {
        GroupState {
            key: match self.key {
                KeyRef::Encoded(enc) => decode_key(enc),
                KeyRef::Parts(parts) => parts.to_vec(),
            },
            rows: self.rows,
            values: self.values.to_vec(),
        }
    }
}

/// The key parts of a [`GroupRef`].
#[derive(Debug, Clone)]
pub enum GroupKeyParts<'a> {
    /// Of an encoded key.
    Encoded(KeyParts<'a>),
    /// Of a key held as parts.
    Parts(std::slice::Iter<'a, Option<ByteBuf>>),
}

impl<'a> Iterator for GroupKeyParts<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Option<&'a [u8]>> {
        match self {
            GroupKeyParts::Encoded(parts) => parts.next(),
            GroupKeyParts::Parts(parts) => parts.next().map(|p| p.as_ref().map(|b| b.as_slice())),
        }
    }
}

impl GroupState {
    /// The group, borrowed.
    pub fn as_group_ref(&self) -> GroupRef<'_> {
        GroupRef {
            key: KeyRef::Parts(&self.key),
            rows: self.rows,
            values: &self.values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partial::tests::state_of;
    use proptest::prelude::*;

    proptest! {
        /// The table's key order (a 16-byte prefix, then the encoded keys
        /// part by part) is the order of the keys as `Vec<Option<ByteBuf>>`:
        /// null parts, empty parts, keys sharing their first 16 bytes, keys
        /// that differ only by trailing zero bytes.
        #[test]
        fn sorted_order_is_key_order(
            keys in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::option::of(proptest::collection::vec(
                        proptest::sample::select(vec![0u8, b'a', b'b', 0xff]), 0..20)),
                    1..3),
                0..40),
        ) {
            let mut table = GroupTable::new();
            let mut expected: Vec<Vec<Option<ByteBuf>>> = Vec::new();
            for key in keys {
                let key: Vec<Option<ByteBuf>> = key.into_iter().map(|p| p.map(ByteBuf::from)).collect();
                if !expected.contains(&key) {
                    expected.push(key.clone());
                }
                table.merge_group(GroupState { key, rows: 1, values: vec![NumState::default()] });
            }
            expected.sort();
            let sorted: Vec<_> = table
                .sorted_order()
                .into_iter()
                .map(|i| table.group(i as usize).unwrap().to_group_state().key)
                .collect();
            prop_assert_eq!(&sorted, &expected);
            let owned: Vec<_> = table.into_sorted().into_iter().map(|g| g.key).collect();
            prop_assert_eq!(owned, expected);
        }
    }

    #[test]
    fn packed_and_unpacked_partials_merge_alike() {
        // Keys that differ only in null vs empty, in the split between
        // parts, and groups that repeat across partials.
        let part = |s: &str| Some(ByteBuf::from(s.as_bytes().to_vec()));
        let group = |key: Vec<Option<ByteBuf>>, rows, x| GroupState {
            key,
            rows,
            values: vec![state_of(&[x, x + 1.0])],
        };
        let partials = [
            Partial {
                groups: vec![
                    group(vec![part("a"), None], 2, 1.0),
                    group(vec![part("a"), part("")], 2, 2.0),
                    group(vec![part("ab"), part("c")], 2, 3.0),
                ],
            },
            Partial {
                groups: vec![
                    group(vec![part("a"), part("bc")], 2, 4.0),
                    group(vec![part("a"), None], 2, 5.0),
                    group(vec![part("ab"), part("c")], 2, 6.0),
                ],
            },
        ];
        let mut plain = GroupTable::new();
        let mut packed = GroupTable::new();
        for p in &partials {
            plain.merge(p.clone());
            packed.merge_packed(&PackedPartial::from(p));
        }
        assert_eq!(plain.len(), 4);
        assert_eq!(plain.into_sorted(), packed.into_sorted());
    }

    #[test]
    fn many_groups_merge_alike_packed_or_not() {
        // Enough groups to grow the index many times and to run the
        // prefetching loop past its ring; half the keys of each partial
        // are in the one before, some keys collide in their first 16
        // bytes, and one group sends an extra state (kept to the stride).
        let key = |i: u32| {
            vec![Some(ByteBuf::from(
                format!("station-with-a-long-name-{i}").into_bytes(),
            ))]
        };
        let partials: Vec<Partial> = (0..4u32)
            .map(|p| Partial {
                groups: (p * 3000..p * 3000 + 6000)
                    .map(|i| GroupState {
                        key: key(i),
                        rows: u64::from(i % 7 + 1),
                        values: vec![state_of(&[f64::from(i), f64::from(p)])],
                    })
                    .collect(),
            })
            .collect();
        let (mut plain, mut packed) = (GroupTable::new(), GroupTable::new());
        for p in &partials {
            plain.merge(p.clone());
            packed.merge_packed(&PackedPartial::from(p));
        }
        assert_eq!(packed.len(), 15_000);
        let rows: u64 = (0..packed.len())
            .map(|i| packed.group(i).unwrap().rows)
            .sum();
        let sent: u64 = partials
            .iter()
            .flat_map(|p| &p.groups)
            .map(|g| g.rows)
            .sum();
        assert_eq!(rows, sent);
        let sorted = packed.into_sorted();
        assert!(sorted.windows(2).all(|w| w[0].key < w[1].key));
        assert_eq!(plain.into_sorted(), sorted);
    }

    #[test]
    fn group_refs_of_states_and_tables_agree() {
        let g = GroupState {
            key: vec![
                None,
                Some(ByteBuf::from(b"x,y".to_vec())),
                Some(ByteBuf::new()),
            ],
            rows: 3,
            values: vec![state_of(&[1.0, 2.0, 4.0])],
        };
        let mut table = GroupTable::new();
        table.merge_group(g.clone());
        let from_table = table.group(0).unwrap();
        let parts: Vec<_> = from_table.key_parts().collect();
        assert_eq!(parts, vec![None, Some(&b"x,y"[..]), Some(&b""[..])]);
        assert_eq!(g.as_group_ref().key_parts().collect::<Vec<_>>(), parts);
        assert_eq!(from_table.to_group_state(), g);
        assert!(table.group(1).is_none());
        // The prefetches ahead are hints only: any index, in or out of the
        // table.
        let order = [0, 7, 0, u32::MAX];
        for n in 0..order.len() {
            assert_eq!(table.group_in_order(&order, n).is_some(), order[n] == 0);
        }
        assert!(table.group_in_order(&order, order.len()).is_none());
    }
}
