//! Element-wise loops over row-major buffers: an activation's forward `y = f(x)` and its
//! backward `dx = g · f'(x, y)`, vectorized for the CPU's vector unit ([`with_simd`]) and
//! split across threads when long ([`parallel`]). Each element is computed alone, so neither
//! the split nor the vector width changes a number.

use crate::kernels::simd::with_simd;
use crate::tensor::Elem;
use crate::threads::parallel;
use rayon::prelude::*;

/// Elements per piece when a loop is split across threads: large enough that a piece's
/// work outweighs handing it to a thread, small enough to balance two cores.
const PIECE: usize = 1 << 14;

/// `y[i] = f(x[i])` for every `i`.
///
/// # Panics
/// If the lengths differ (an internal error).
pub(crate) fn map(x: &[Elem], y: &mut [Elem], f: impl Fn(Elem) -> Elem + Sync) {
    assert_eq!(x.len(), y.len(), "internal error: map lengths");
    let run = |x: &[Elem], y: &mut [Elem]| {
        with_simd(
            #[inline(always)]
            || y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x)),
        )
    };
    if parallel(x.len()) {
        let pieces = x.par_chunks(PIECE).zip(y.par_chunks_mut(PIECE));
        pieces.for_each(|(x, y)| run(x, y));
    } else {
        run(x, y);
    }
}

/// `dx[i] = g[i] · df(x[i], y[i])` for every `i`: the backward of [`map`] with `y = f(x)`.
///
/// # Panics
/// If the lengths differ (an internal error).
pub(crate) fn map_backward(
    g: &[Elem],
    x: &[Elem],
    y: &[Elem],
    dx: &mut [Elem],
    df: impl Fn(Elem, Elem) -> Elem + Sync,
) {
    let n = dx.len();
    assert!(
        g.len() == n && x.len() == n && y.len() == n,
        "internal error: map_backward lengths"
    );
    let run = |g: &[Elem], x: &[Elem], y: &[Elem], dx: &mut [Elem]| {
        with_simd(
            #[inline(always)]
            || {
                for (((d, &g), &x), &y) in dx.iter_mut().zip(g).zip(x).zip(y) {
                    *d = g * df(x, y);
                }
            },
        )
    };
    if parallel(n) {
        let inputs = g.par_chunks(PIECE).zip(x.par_chunks(PIECE));
        let pieces = inputs
            .zip(y.par_chunks(PIECE))
            .zip(dx.par_chunks_mut(PIECE));
        pieces.for_each(|(((g, x), y), dx)| run(g, x, y, dx));
    } else {
        run(g, x, y, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_its_backward_apply_the_rule_to_every_element() {
        // longer than a piece, so the split runs when there are two threads
        let x: Vec<Elem> = (0..40_000).map(|i| (i % 7) as Elem - 3.0).collect();
        let mut y = vec![0.0; x.len()];
        map(&x, &mut y, |v| v.max(0.0));
        let g: Vec<Elem> = (0..x.len()).map(|i| i as Elem).collect();
        let mut dx = vec![Elem::NAN; x.len()];
        map_backward(&g, &x, &y, &mut dx, |x, _| if x > 0.0 { 1.0 } else { 0.0 });
        for i in 0..x.len() {
            assert_eq!(y[i], x[i].max(0.0));
            assert_eq!(dx[i], if x[i] > 0.0 { g[i] } else { 0.0 });
        }
    }
}
