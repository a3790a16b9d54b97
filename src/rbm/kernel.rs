//! The RBM's inner loops: an affine map fused with a fast logistic sigmoid, a Bernoulli
//! sampler that compares seeded uniform draws with probabilities, and a numerically stable
//! softplus. Matrix products go through the crate's gemm kernel.

use crate::kernels::gemm::gemm;
use crate::kernels::simd::with_simd;
use crate::tensor::Elem;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::Rng;
use rayon::prelude::*;

/// `out = σ(lhs·rhs + bias)` row by row (`bias` broadcast over rows), with one product and
/// one fused pass for the bias and the sigmoid, vectorized for the CPU's vector unit and,
/// for large outputs, split by rows across threads (neither changes a number).
pub(crate) fn affine_sigmoid(
    lhs: ArrayView2<'_, Elem>,
    rhs: ArrayView2<'_, Elem>,
    bias: &[Elem],
    mut out: ArrayViewMut2<'_, Elem>,
) {
    gemm(lhs, rhs, out.view_mut(), 0.0, 1.0);
    let rows = out.nrows();
    let width = out.ncols();
    let out = out
        .as_slice_mut()
        .expect("internal error: RBM buffers are row-major");
    let activate = |block: &mut [Elem]| {
        with_simd(
            #[inline(always)]
            || {
                for row in block.chunks_exact_mut(width) {
                    row.iter_mut()
                        .zip(bias)
                        .for_each(|(x, &b)| *x = sigmoid(*x + b));
                }
            },
        )
    };
    match crate::threads::pieces(out.len(), rows) {
        1 => activate(out),
        pieces => out
            .par_chunks_mut(rows.div_ceil(pieces) * width)
            .for_each(activate),
    }
}

/// `1 / (1 + e^(−x))` through [`exp`]: no branch, so a loop of it vectorizes. Exact to a
/// few units in the last place; 0 and 1 at the far ends, never NaN for finite `x`.
#[inline(always)]
pub(crate) fn sigmoid(x: Elem) -> Elem {
    1.0 / (1.0 + exp(-x))
}

/// `e^x` for `x` clamped to `[−87, 88]` (so the result is a normal float), by Cody–Waite
/// range reduction `x = n·ln 2 + r`, `|r| <= ln 2 / 2`, and Cephes' degree-6 polynomial for
/// `e^r` (`expf.c`, relative error below 2e-7); `2^n` is put straight into the exponent
/// bits. Written without branches or calls, so the compiler vectorizes loops of it.
#[inline(always)]
pub(crate) fn exp(x: Elem) -> Elem {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let e_r = p * r * r + r + 1.0;
    // n is in [−126, 127]: its bits are ROUND's plus n (two's complement, wrapping)
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e_r * scale
}

/// `ln(1 + e^x)` without overflow, in `f64`: `max(x, 0) + ln(1 + e^(−|x|))`.
pub(crate) fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Replaces each probability `p` in `probs` by a Bernoulli draw: 1 when a uniform
/// `u ∈ [0, 1)` (24 random bits from `rng`) is below `p`, else 0 (`rng.uniform() < p`, as
/// scikit-learn samples). `bytes` is scratch space of at least `4·probs.len()` bytes; the
/// generator fills it in one call, which is faster than drawing number by number.
pub(crate) fn sample_bernoulli<R: Rng + ?Sized>(probs: &mut [Elem], bytes: &mut [u8], rng: &mut R) {
    let bytes = &mut bytes[..4 * probs.len()];
    rng.fill_bytes(bytes);
    const SCALE: f32 = 1.0 / 16_777_216.0; // 2^−24
    for (p, chunk) in probs.iter_mut().zip(bytes.chunks_exact(4)) {
        let bits = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let u = (bits >> 8) as f32 * SCALE;
        *p = if u < *p { 1.0 } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChaCha8Rng, SeedableRng};

    #[test]
    fn fast_exp_and_sigmoid_agree_with_f64_to_a_few_ulps() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let exact = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error of exp {worst}");
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            let got = f64::from(sigmoid(x));
            assert!(
                (got - exact).abs() <= 4e-7 * exact,
                "σ({x}) = {got}, exact {exact}"
            );
        }
        // the far ends saturate without NaN
        assert_eq!(sigmoid(1e6), 1.0);
        assert!(sigmoid(-1e6) >= 0.0 && sigmoid(-1e6) < 1e-37);
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn softplus_is_stable_at_both_ends() {
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert!((softplus(1.5) - (1.0 + 1.5f64.exp()).ln()).abs() < 1e-14);
    }

    #[test]
    fn bernoulli_draws_have_the_right_frequencies_and_respect_zero_and_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let n = 100_000;
        let mut probs = vec![0.3; n];
        let mut bytes = vec![0u8; 4 * n];
        sample_bernoulli(&mut probs, &mut bytes, &mut rng);
        let ones = probs.iter().filter(|&&s| s == 1.0).count();
        assert!(probs.iter().all(|&s| s == 0.0 || s == 1.0));
        // binomial(100000, 0.3): σ ≈ 145
        assert!((ones as f64 - 30_000.0).abs() < 800.0, "{ones}");
        let mut edges = vec![0.0, 1.0, 0.0, 1.0];
        sample_bernoulli(&mut edges, &mut bytes, &mut rng);
        assert_eq!(edges, [0.0, 1.0, 0.0, 1.0]);
    }
}
