//! Deterministic random numbers and floating-point helpers.
//!
//! The generators promise identical bytes for the same seed on every machine.
//! `f64::ln`/`f64::exp` call the platform's libm, whose last-bit results
//! differ between systems, so this module computes them with IEEE 754 basic
//! operations only (`+ - * /` and `sqrt` are correctly rounded everywhere).
//! Accuracy is about 1e-15 relative, far below what the generators print.

use rand::RngCore;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The SplitMix64 finaliser: a bijective 64-bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random stream of its own for `(seed, purpose, index)`.
///
/// Block `i` of a generator uses `stream(seed, TAG, i)`, so blocks can be
/// generated in any order and on any thread with the same result.
pub(crate) fn stream(seed: u64, purpose: u64, index: u64) -> Rng {
    let s = mix64(mix64(seed ^ mix64(purpose)) ^ index);
    Rng(Xoshiro256PlusPlus::seed_from_u64(s))
}

/// A seeded random source with the few draws the generators need.
pub(crate) struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; bias below 2^-40
    /// for the small `n` used here, and fully deterministic).
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform `f64` in `[0, 1)` on the 2^-53 grid (exact conversion).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform `f64` in `(-1, 1)`.
    #[inline]
    fn signed_unit(&mut self) -> f64 {
        // 53 random bits as a signed integer, scaled: exact.
        ((self.next_u64() >> 11) as f64 - (1u64 << 52) as f64) * (1.0 / (1u64 << 52) as f64)
    }
}

/// Standard normal deviates by Marsaglia's polar method, two per round.
pub(crate) struct Normal {
    spare: Option<f64>,
}

impl Normal {
    /// A source with no cached deviate.
    pub(crate) fn new() -> Self {
        Normal { spare: None }
    }

    /// One N(0, 1) deviate.
    #[inline]
    pub(crate) fn sample(&mut self, rng: &mut Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = rng.signed_unit();
            let v = rng.signed_unit();
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * ln(s) / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }
}

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const LN2: f64 = std::f64::consts::LN_2;

/// Natural logarithm of a positive, normal, finite `x`, deterministically.
pub(crate) fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x.is_finite() && x.is_normal());
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // Mantissa in [1, 2).
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(f), f = (m - 1) / (m + 1), |f| <= 0.1716.
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let series = 1.0
        + f2 * (1.0 / 3.0
            + f2 * (1.0 / 5.0
                + f2 * (1.0 / 7.0
                    + f2 * (1.0 / 9.0
                        + f2 * (1.0 / 11.0
                            + f2 * (1.0 / 13.0
                                + f2 * (1.0 / 15.0 + f2 * (1.0 / 17.0 + f2 * (1.0 / 19.0)))))))));
    let ef = e as f64;
    ef * LN2_HI + (ef * LN2_LO + 2.0 * f * series)
}

/// `e^x` for `x` in about `[-700, 700]` (clamped), deterministically.
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x / LN2).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r for |r| <= ln(2)/2, Horner form.
    let mut p = 1.0 / 479_001_600.0; // 1/12!
    for d in [
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
        1.0,
    ] {
        p = p * r + d;
    }
    let k = k as i64;
    // 2^k as a normal f64; k is within [-1010, 1010], split to stay normal.
    let half = k / 2;
    let pow = |n: i64| f64::from_bits(((n + 1023) as u64) << 52);
    p * pow(half) * pow(k - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_and_exp_match_libm_closely() {
        let mut x = 1e-30;
        while x < 1e30 {
            let a = ln(x);
            let b = x.ln();
            assert!(
                (a - b).abs() <= 1e-14 * b.abs().max(1.0),
                "ln({x}) {a} vs {b}"
            );
            x *= 1.37;
        }
        let mut y = -50.0;
        while y < 50.0 {
            let a = exp(y);
            let b = y.exp();
            assert!((a - b).abs() <= 1e-14 * b, "exp({y}) {a} vs {b}");
            y += 0.0137;
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = stream(1, 2, 3);
        let mut n = Normal::new();
        let count = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..count {
            let z = n.sample(&mut rng);
            s += z;
            s2 += z * z;
        }
        let mean = s / count as f64;
        let var = s2 / count as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = stream(9, 9, 9);
        for n in [1u64, 2, 3, 413, 10_000, 100_000] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
    }
}
