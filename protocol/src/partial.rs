//! Mergeable aggregate states.
//!
//! A [`NumState`] summarises the non-null values of one column in one group:
//! count, sum, min, max and the sum of squared deviations from the mean
//! (`m2`), from which every [`crate::AggFunc`] follows. Two states merge
//! associatively; variance merges with the parallel formula of Chan, Golub
//! and LeVeque, never by summing squares.
//!
//! The sum has an exact part and a float part. Values that are short
//! decimals (`-12.3`, `4`, `0.125`) are added exactly as integers scaled by
//! `10^scale`, so a mean printed to one decimal is rounded from the exact
//! sum, and the result does not depend on the order of the merge. Values in
//! other forms (`1e5`, more than 18 digits) and exact sums that would
//! overflow go to the float part.
//!
//! On the wire, [`GroupState`] and [`NumState`] are arrays of their fields
//! in declaration order, while every other struct of the protocol is a map
//! keyed by field name: a partial holds one group per key, thousands of
//! them per chunk, and the field names were most of its bytes (about 80 of
//! a 1BRC group's 130) and most of the time a coordinator spent decoding
//! it. Both forms decode, with serde or by hand (see
//! [`crate::PackedPartial`]), so a worker may send either.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use std::cmp::Ordering;

use crate::packed::{encode_key_into, key_parts, KeyParts, PackedPartial};

/// Powers of ten that fit an `i64`.
pub const POW10: [i64; 19] = {
    let mut t = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Aggregate state of one value column in one group.
///
/// On the wire an array of its fields in order (see the module
/// documentation); it decodes from that or from a map keyed by field name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NumState {
    /// Non-null values.
    pub count: u64,
    /// Exact part of the sum, as an integer: the sum of the decimal values
    /// times `10^scale`.
    pub sum_scaled: i64,
    /// Decimal digits of `sum_scaled` (0..=18).
    pub scale: u8,
    /// Part of the sum that is not exact (values in other forms, overflow).
    pub sum_float: f64,
    /// Smallest value (`+inf` when `count` is 0).
    pub min: f64,
    /// Largest value (`-inf` when `count` is 0).
    pub max: f64,
    /// Sum of squared deviations from the mean; 0 when the query needs no
    /// variance.
    pub m2: f64,
}

impl Default for NumState {
    fn default() -> Self {
        NumState {
            count: 0,
            sum_scaled: 0,
            scale: 0,
            sum_float: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            m2: 0.0,
        }
    }
}

impl NumState {
    /// A state built from exact integer sums over `count` values, each
    /// value being `mantissa / 10^scale`. `sum_sq` is the sum of squared
    /// mantissas, when variance is wanted.
    pub fn from_exact(
        count: u64,
        sum: i128,
        sum_sq: Option<i128>,
        scale: u8,
        min_mantissa: i64,
        max_mantissa: i64,
    ) -> NumState {
        if count == 0 {
            return NumState::default();
        }
        let scale = scale.min(18);
        let unit = POW10[scale as usize] as f64;
        let m2 = match sum_sq {
            None => 0.0,
            Some(sq) => {
                let n = i128::from(count);
                // n*Σx² - (Σx)², exact while it fits; it is ≥ 0.
                match n
                    .checked_mul(sq)
                    .and_then(|a| sum.checked_mul(sum).and_then(|b| a.checked_sub(b)))
                {
                    Some(num) => num as f64 / (count as f64 * unit * unit),
                    None => {
                        let s = sum as f64 / unit;
                        ((sq as f64 / (unit * unit)) - s * s / count as f64).max(0.0)
                    }
                }
            }
        };
        let (sum_scaled, sum_float) = match i64::try_from(sum) {
            Ok(s) => (s, 0.0),
            Err(_) => (0, sum as f64 / unit),
        };
        NumState {
            count,
            sum_scaled,
            scale,
            sum_float,
            min: min_mantissa as f64 / unit,
            max: max_mantissa as f64 / unit,
            m2,
        }
    }

    /// Adds one value that is not a short decimal (Welford's update).
    pub fn push_f64(&mut self, x: f64) {
        let old_mean = if self.count == 0 {
            0.0
        } else {
            self.sum() / self.count as f64
        };
        self.count += 1;
        self.sum_float += x;
        let new_mean = self.sum() / self.count as f64;
        self.m2 += (x - old_mean) * (x - new_mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Merges `other` into `self` (`self` holds the earlier records).
    pub fn merge(&mut self, other: &NumState) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let delta = other.sum() / nb - self.sum() / na;
        let m2 = self.m2 + other.m2 + delta * delta * na * nb / (na + nb);

        let mut b_scaled = other.sum_scaled;
        let mut b_float = other.sum_float;
        if other.scale > self.scale {
            if !self.rescale(other.scale) {
                // Cannot fit both exactly: keep ours, move theirs to float.
                b_float += b_scaled as f64 / POW10[other.scale as usize] as f64;
                b_scaled = 0;
            }
        } else if other.scale < self.scale {
            let d = (self.scale - other.scale) as usize;
            match b_scaled.checked_mul(POW10[d]) {
                Some(v) => b_scaled = v,
                None => {
                    b_float += b_scaled as f64 / POW10[other.scale as usize] as f64;
                    b_scaled = 0;
                }
            }
        }
        match self.sum_scaled.checked_add(b_scaled) {
            Some(s) => self.sum_scaled = s,
            None => {
                self.sum_float += self.sum_scaled as f64 / POW10[self.scale as usize] as f64
                    + b_scaled as f64 / POW10[self.scale as usize] as f64;
                self.sum_scaled = 0;
            }
        }
        self.sum_float += b_float;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.m2 = m2;
    }

    /// Raises `scale` to `to`, multiplying the exact sum; false (and no
    /// change) if it would overflow.
    fn rescale(&mut self, to: u8) -> bool {
        let d = (to - self.scale) as usize;
        match self.sum_scaled.checked_mul(POW10[d]) {
            Some(v) => {
                self.sum_scaled = v;
                self.scale = to;
                true
            }
            None => false,
        }
    }

    /// The sum as a float.
    pub fn sum(&self) -> f64 {
        self.sum_scaled as f64 / POW10[self.scale as usize] as f64 + self.sum_float
    }

    /// The exact sum as `(mantissa, scale)`, when no part of it is inexact.
    pub fn exact_sum(&self) -> Option<(i64, u8)> {
        (self.sum_float == 0.0).then_some((self.sum_scaled, self.scale))
    }

    /// Mean, `None` without values.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum() / self.count as f64)
    }

    /// Sample variance, `None` with fewer than two values.
    pub fn var(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).max(0.0))
    }

    /// Sample standard deviation, `None` with fewer than two values.
    pub fn stddev(&self) -> Option<f64> {
        self.var().map(f64::sqrt)
    }

    /// Smallest value, `None` without values.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, `None` without values.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
}

/// One group of a partial: its key, its row count, a state per value column.
///
/// On the wire an array of its fields in order (see the module
/// documentation); it decodes from that or from a map keyed by field name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupState {
    /// One entry per key column; `None` is the null key (an empty field).
    pub key: Vec<Option<ByteBuf>>,
    /// Records in the group.
    pub rows: u64,
    /// One state per [`crate::QuerySpec::value_columns`] entry.
    pub values: Vec<NumState>,
}

impl Serialize for NumState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(7)?;
        t.serialize_element(&self.count)?;
        t.serialize_element(&self.sum_scaled)?;
        t.serialize_element(&self.scale)?;
        t.serialize_element(&self.sum_float)?;
        t.serialize_element(&self.min)?;
        t.serialize_element(&self.max)?;
        t.serialize_element(&self.m2)?;
        t.end()
    }
}

impl Serialize for GroupState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.key)?;
        t.serialize_element(&self.rows)?;
        t.serialize_element(&self.values)?;
        t.end()
    }
}

impl GroupState {
    /// Merges a later group with the same key into this one.
    pub fn merge(&mut self, other: &GroupState) {
        self.rows += other.rows;
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            a.merge(b);
        }
    }
}

/// The aggregate of some records: one entry per group, in no given order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The groups.
    pub groups: Vec<GroupState>,
}

/// Groups merged from many partials, looked up by key.
///
/// Merge partials in a fixed order (chunk order) and the result is the
/// same bits whatever the worker count.
///
/// Laid out for merging thousands of groups from every partial: each key
/// is encoded once into one byte arena, and the per-group data lives in
/// flat arrays (hash, rows, key span; the value states `stride` apiece), so
/// a lookup touches a few cache lines instead of chasing a pointer per key
/// part and per value list.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    /// Indices into `meta`, by key hash.
    index: hashbrown::HashTable<u32>,
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

/// Per group: its key's hash and place in the arena, and its row count.
#[derive(Debug, Clone, Copy)]
struct GroupMeta {
    hash: u64,
    key_start: usize,
    key_len: usize,
    rows: u64,
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
        self.merge_encoded(&scratch, g.rows, &g.values);
        self.scratch = scratch;
    }

    /// Merges every group of a packed partial (see [`PackedPartial`]): the
    /// keys are looked up and kept as they were received, never decoded.
    pub fn merge_packed(&mut self, partial: &PackedPartial) {
        for g in partial.groups() {
            self.merge_encoded(g.encoded_key, g.rows, g.values);
        }
    }

    /// Merges one group whose key is `encoded` (see [`encode_key_into`]).
    fn merge_encoded(&mut self, encoded: &[u8], rows: u64, values: &[NumState]) {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, encoded);
        let (meta, arena) = (&self.meta, &self.arena);
        let found = self.index.find(hash, |&i| {
            meta.get(i as usize).is_some_and(|m| {
                m.hash == hash && arena.get(m.key_start..m.key_start + m.key_len) == Some(encoded)
            })
        });
        match found {
            Some(&i) => {
                let i = i as usize;
                if let Some(m) = self.meta.get_mut(i) {
                    m.rows += rows;
                }
                let base = i * self.stride;
                if let Some(states) = self.values.get_mut(base..base + self.stride) {
                    for (a, b) in states.iter_mut().zip(values) {
                        a.merge(b);
                    }
                }
            }
            None => self.insert(hash, encoded, rows, values),
        }
    }

    #[cold]
    fn insert(&mut self, hash: u64, encoded: &[u8], rows: u64, values: &[NumState]) {
        let Ok(idx) = u32::try_from(self.meta.len()) else {
            // More than 4 billion groups cannot be held in memory anyway.
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
            hash,
            key_start: self.arena.len(),
            key_len: encoded.len(),
            rows,
        });
        self.arena.extend_from_slice(encoded);
        let meta = &self.meta;
        self.index
            .insert_unique(hash, idx, |&i| meta.get(i as usize).map_or(0, |m| m.hash));
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
            key: KeyRef::Encoded(self.arena.get(m.key_start..m.key_start + m.key_len)?),
            rows: m.rows,
            values: self.values.get(base..base + self.stride)?,
        })
    }

    /// Asks the processor to start loading what [`GroupTable::group`]
    /// reads of group `i`, a hint that changes no result: where groups are
    /// visited out of the order they were stored in (millions of them, in
    /// key order), each visit would otherwise wait on a cache miss per
    /// array. `stage` 0 fetches the group's row and value states; stage 1
    /// its key bytes, whose place is in the row (fetched at stage 0 some
    /// visits earlier, or this costs the miss it would save).
    pub fn prefetch(&self, i: usize, stage: u8) {
        let base = i * self.stride;
        match stage {
            0 => {
                prefetch(self.meta.get(i));
                prefetch(self.values.get(base));
                prefetch(self.values.get(base + self.stride.saturating_sub(1)));
            }
            _ => prefetch(self.meta.get(i).and_then(|m| self.arena.get(m.key_start))),
        }
    }

    /// The encoded key of group `i` (empty if there is none).
    fn encoded_key(&self, i: usize) -> &[u8] {
        self.meta
            .get(i)
            .and_then(|m| self.arena.get(m.key_start..m.key_start + m.key_len))
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
            key: self
                .key_parts()
                .map(|p| p.map(|b| ByteBuf::from(b.to_vec())))
                .collect(),
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
    use proptest::prelude::*;

    fn state_of(values: &[f64]) -> NumState {
        let mut s = NumState::default();
        for &v in values {
            s.push_f64(v);
        }
        s
    }

    #[test]
    fn chan_merge_matches_one_pass() {
        let xs = [1.0, 4.0, 9.0, 16.0, 25.0, -3.5];
        let whole = state_of(&xs);
        let mut a = state_of(&xs[..2]);
        a.merge(&state_of(&xs[2..]));
        assert_eq!(a.count, 6);
        assert!((a.var().unwrap() - whole.var().unwrap()).abs() < 1e-9);
        assert_eq!(a.min().unwrap(), -3.5);
        assert_eq!(a.max().unwrap(), 25.0);
    }

    #[test]
    fn exact_sums_rescale() {
        // 12.3 + 0.25 at scales 1 and 2.
        let a0 = NumState::from_exact(1, 123, Some(123 * 123), 1, 123, 123);
        let b = NumState::from_exact(1, 25, Some(25 * 25), 2, 25, 25);
        let mut a = a0.clone();
        a.merge(&b);
        assert_eq!(a.exact_sum(), Some((1255, 2)));
        let mut b2 = b.clone();
        b2.merge(&a0);
        assert_eq!(b2.exact_sum(), Some((1255, 2)));
        assert!((a.var().unwrap() - 72.60125).abs() < 1e-9);
    }

    #[test]
    fn exact_overflow_falls_back_to_float() {
        let big = NumState::from_exact(1, i64::MAX as i128, None, 0, i64::MAX, i64::MAX);
        let mut a = big.clone();
        a.merge(&big);
        assert_eq!(a.exact_sum(), None);
        assert!((a.sum() - 2.0 * i64::MAX as f64).abs() < 1e6);
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
    fn empty_states_are_neutral() {
        let mut a = NumState::default();
        let b = state_of(&[2.0, 3.0]);
        a.merge(&b);
        assert_eq!(a, b);
        a.merge(&NumState::default());
        assert_eq!(a, b);
        assert_eq!(NumState::default().mean(), None);
    }

    proptest! {
        #[test]
        fn merge_is_associative_on_exact_parts(xs in proptest::collection::vec(-9999i64..9999, 1..60), cut1 in 0usize..60, cut2 in 0usize..60) {
            let n = xs.len();
            let (c1, c2) = (cut1.min(n), cut2.min(n));
            let (lo, hi) = (c1.min(c2), c1.max(c2));
            let st = |s: &[i64]| {
                if s.is_empty() { return NumState::default(); }
                let sum: i128 = s.iter().map(|&v| v as i128).sum();
                let sq: i128 = s.iter().map(|&v| (v as i128) * (v as i128)).sum();
                NumState::from_exact(s.len() as u64, sum, Some(sq), 1, *s.iter().min().unwrap(), *s.iter().max().unwrap())
            };
            let whole = st(&xs);
            let mut left = st(&xs[..lo]);
            let mut mid = st(&xs[lo..hi]);
            mid.merge(&st(&xs[hi..]));
            left.merge(&mid);
            prop_assert_eq!(left.count, whole.count);
            prop_assert_eq!(left.exact_sum(), whole.exact_sum());
            prop_assert_eq!(left.min, whole.min);
            prop_assert_eq!(left.max, whole.max);
            prop_assert!((left.m2 - whole.m2).abs() <= 1e-6 * whole.m2.abs().max(1.0));
        }

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
    fn group_refs_of_states_and_tables_agree() {
        let g = GroupState {
            key: vec![None, Some(ByteBuf::from(b"x,y".to_vec())), Some(ByteBuf::new())],
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
        // A hint only: any index, in or out of the table.
        table.prefetch(0, 0);
        table.prefetch(0, 1);
        table.prefetch(7, 1);
    }
}
