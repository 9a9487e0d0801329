//! Exact accumulation of one value column in one group.
//!
//! Short decimals are summed as integers at the largest scale seen so far;
//! when something does not fit (a sum of squares past `i128`, a rescale past
//! `i64` for min/max), the exact part is folded into a [`NumState`] "spill"
//! and accumulation restarts, so nothing panics and nothing is lost. Values
//! that are not short decimals go to the spill directly.

use tally_protocol::partial::POW10;
use tally_protocol::NumState;

/// Count, sum, min, max (and optionally sum of squares) of one column in one
/// group, as integers scaled by `10^scale`.
#[derive(Debug, Clone)]
pub(crate) struct ValueAcc {
    count: u64,
    scale: u8,
    min: i64,
    max: i64,
    sum: i128,
    sum_sq: i128,
    spill: Option<Box<NumState>>,
}

impl Default for ValueAcc {
    fn default() -> Self {
        ValueAcc {
            count: 0,
            scale: 0,
            min: i64::MAX,
            max: i64::MIN,
            sum: 0,
            sum_sq: 0,
            spill: None,
        }
    }
}

impl ValueAcc {
    /// Adds `mantissa / 10^scale` (`scale <= 18`). `squares`: keep the sum of
    /// squared mantissas (for variance).
    ///
    /// Inlined into the record loop for the common case (a value at the
    /// scale of those before it, sums that do not overflow); everything else
    /// goes through [`ValueAcc::push_exact_other`].
    #[inline(always)]
    pub(crate) fn push_exact(&mut self, mantissa: i64, scale: u8, squares: bool) {
        if self.count != 0 && scale == self.scale {
            let wide = i128::from(mantissa);
            if let Some(sum) = self.sum.checked_add(wide) {
                // Without squares, `sum_sq` is neither read nor written.
                let sum_sq = if squares {
                    self.sum_sq.checked_add(wide * wide)
                } else {
                    Some(0)
                };
                if let Some(sum_sq) = sum_sq {
                    self.count += 1;
                    self.sum = sum;
                    if squares {
                        self.sum_sq = sum_sq;
                    }
                    // New extremes are rare after a group's first values: a
                    // predictable branch, and no store, instead of a store
                    // each.
                    if mantissa < self.min {
                        self.min = mantissa;
                    }
                    if mantissa > self.max {
                        self.max = mantissa;
                    }
                    return;
                }
            }
        }
        self.push_exact_other(mantissa, scale, squares);
    }

    /// [`ValueAcc::push_exact`] for a first value, another scale, or an
    /// overflow.
    #[inline(never)]
    fn push_exact_other(&mut self, mantissa: i64, scale: u8, squares: bool) {
        if self.count == 0 {
            self.start(mantissa, scale, squares);
            return;
        }
        let m = if scale == self.scale {
            mantissa
        } else if scale < self.scale {
            match pow10(self.scale - scale).and_then(|p| mantissa.checked_mul(p)) {
                Some(m) => m,
                None => return self.spill_then_start(mantissa, scale, squares),
            }
        } else {
            if !self.rescale(scale, squares) {
                return self.spill_then_start(mantissa, scale, squares);
            }
            mantissa
        };
        let wide = i128::from(m);
        let sum = self.sum.checked_add(wide);
        let sum_sq = if squares {
            self.sum_sq.checked_add(wide * wide)
        } else {
            Some(0)
        };
        match (sum, sum_sq) {
            (Some(s), Some(q)) => {
                self.count += 1;
                self.sum = s;
                self.sum_sq = q;
                self.min = self.min.min(m);
                self.max = self.max.max(m);
            }
            _ => self.spill_then_start(mantissa, scale, squares),
        }
    }

    /// Adds a value that is not a short decimal.
    /// Adds `count` values known by their exact sums at `scale`: the same
    /// result as pushing each of them.
    pub(crate) fn merge_exact(
        &mut self,
        count: u64,
        sum: i128,
        sum_sq: i128,
        scale: u8,
        min: i64,
        max: i64,
    ) {
        if count == 0 {
            return;
        }
        if self.count == 0 && self.spill.is_none() {
            *self = ValueAcc {
                count,
                scale,
                min,
                max,
                sum,
                sum_sq,
                spill: None,
            };
            return;
        }
        let other = NumState::from_exact(count, sum, Some(sum_sq), scale, min, max);
        // Bring both to the larger scale; what does not fit goes to the
        // float spill, as in push_exact.
        if scale > self.scale && self.count > 0 && !self.rescale(scale, true) {
            self.spill
                .get_or_insert_with(Default::default)
                .merge(&other);
            return;
        }
        if self.count == 0 {
            self.scale = scale;
        }
        let d = self.scale - scale.min(self.scale);
        let p = i128::from(POW10[usize::from(d)]);
        let aligned = (
            sum.checked_mul(p),
            sum_sq.checked_mul(p * p),
            min.checked_mul(POW10[usize::from(d)]),
            max.checked_mul(POW10[usize::from(d)]),
        );
        let (Some(s), Some(q), Some(lo), Some(hi)) = aligned else {
            self.spill
                .get_or_insert_with(Default::default)
                .merge(&other);
            return;
        };
        match (self.sum.checked_add(s), self.sum_sq.checked_add(q)) {
            (Some(s), Some(q)) => {
                if self.count == 0 {
                    self.min = lo;
                    self.max = hi;
                } else {
                    self.min = self.min.min(lo);
                    self.max = self.max.max(hi);
                }
                self.count += count;
                self.sum = s;
                self.sum_sq = q;
            }
            _ => self
                .spill
                .get_or_insert_with(Default::default)
                .merge(&other),
        }
    }

    pub(crate) fn push_f64(&mut self, x: f64) {
        self.spill.get_or_insert_with(Default::default).push_f64(x);
    }

    /// The state of everything pushed.
    pub(crate) fn finish(&self, squares: bool) -> NumState {
        let mut state = self.exact_state(squares);
        if let Some(spill) = &self.spill {
            state.merge(spill);
        }
        state
    }

    /// The first value of a (re)started exact accumulation.
    fn start(&mut self, mantissa: i64, scale: u8, squares: bool) {
        let wide = i128::from(mantissa);
        self.count = 1;
        self.scale = scale;
        self.min = mantissa;
        self.max = mantissa;
        self.sum = wide;
        // |mantissa| < 2^63, so the square fits an i128.
        self.sum_sq = if squares { wide * wide } else { 0 };
    }

    /// Moves the exact part to the spill, then starts over with one value.
    #[cold]
    fn spill_then_start(&mut self, mantissa: i64, scale: u8, squares: bool) {
        let exact = self.exact_state(squares);
        self.spill
            .get_or_insert_with(Default::default)
            .merge(&exact);
        self.start(mantissa, scale, squares);
    }

    /// Raises the scale to `to`; false (nothing changed) on overflow.
    fn rescale(&mut self, to: u8, squares: bool) -> bool {
        let Some(p) = pow10(to - self.scale) else {
            return false;
        };
        let wide = i128::from(p);
        let sum_sq = if squares {
            self.sum_sq.checked_mul(wide * wide)
        } else {
            Some(0)
        };
        match (
            self.min.checked_mul(p),
            self.max.checked_mul(p),
            self.sum.checked_mul(wide),
            sum_sq,
        ) {
            (Some(min), Some(max), Some(sum), Some(sum_sq)) => {
                self.min = min;
                self.max = max;
                self.sum = sum;
                self.sum_sq = sum_sq;
                self.scale = to;
                true
            }
            _ => false,
        }
    }

    fn exact_state(&self, squares: bool) -> NumState {
        NumState::from_exact(
            self.count,
            self.sum,
            squares.then_some(self.sum_sq),
            self.scale,
            self.min,
            self.max,
        )
    }
}

/// `10^d` when it fits an `i64`.
fn pow10(d: u8) -> Option<i64> {
    POW10.get(usize::from(d)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_scales_sum_exactly() {
        let mut a = ValueAcc::default();
        a.push_exact(123, 1, true); // 12.3
        a.push_exact(25, 2, true); // 0.25
        a.push_exact(-4, 0, true); // -4
        let s = a.finish(true);
        assert_eq!(s.count, 3);
        assert_eq!(s.exact_sum(), Some((855, 2)));
        assert_eq!(s.min, -4.0);
        assert_eq!(s.max, 12.3);
        let mean = 8.55 / 3.0;
        let m2: f64 = [12.3f64, 0.25, -4.0]
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum();
        assert!((s.m2 - m2).abs() < 1e-9, "{} vs {m2}", s.m2);
    }

    #[test]
    fn overflow_spills_without_losing_values() {
        let mut a = ValueAcc::default();
        let big = 999_999_999_999_999_999i64;
        for _ in 0..1000 {
            a.push_exact(big, 0, true);
        }
        a.push_exact(1, 18, true); // rescale of min/max overflows
        a.push_f64(2.0);
        let s = a.finish(true);
        assert_eq!(s.count, 1002);
        assert!((s.sum() - (1000.0 * big as f64 + 2.0)).abs() / s.sum() < 1e-12);
        assert_eq!(s.min, 1e-18);
        assert!(s.var().is_some_and(|v| v.is_finite() && v >= 0.0));
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(ValueAcc::default().finish(true), NumState::default());
    }
}
