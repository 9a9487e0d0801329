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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The state of `values`, pushed one by one.
    pub(crate) fn state_of(values: &[f64]) -> NumState {
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
    }
}
