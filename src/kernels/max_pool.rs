//! 2×2 max pooling with stride 2 and no padding, the common case of convolutional networks
//! (`torch.nn.MaxPool2d(2)`), over one `[H, W]` plane at a time: the forward maxima and the
//! backward routing of each output's gradient to its window's first maximum, sixteen
//! windows at a time with AVX-512 or eight with AVX2, whichever the CPU has (masked loads and
//! stores for a row's last few).
//! A row pair that holds a NaN is redone one window at a time by the exact rule (a NaN is
//! the maximum, the last NaN of a window takes the gradient), so the vector loops only ever
//! see numbers.
//!
//! With `RELU`, each input goes through the rectifier `relu(x) = x if x > 0 (or NaN), else
//! 0` before the pooling, and each gradient through its derivative (1 for `x > 0` or NaN, 0
//! otherwise) after it: the numbers of a ReLU followed by the pooling, bit for bit, without
//! the ReLU's own pass over the full-size input and gradient.
//!
//! The forward can also write each window's route (which input is its first maximum, and
//! whether the rectifier's derivative there is 0), from which the backward routes the
//! gradients without reading the input plane again ([`forward_2x2_routed`],
//! [`backward_2x2_routed`]).

use crate::kernels::simd::Unit;
use crate::tensor::Elem;

/// Writes the maximum of each 2×2 window of `plane` (`[H, W]`, row-major, `W = w`) to `out`
/// (`[⌊H/2⌋, ow]` with `ow = ⌊W/2⌋`): `out[oy, ox] = max(x[2oy, 2ox], x[2oy, 2ox + 1],
/// x[2oy + 1, 2ox], x[2oy + 1, 2ox + 1])`, NaN when the window holds a NaN, of the rectified
/// inputs with `RELU`. An odd last row or column is not read.
pub(crate) fn forward_2x2<const RELU: bool>(plane: &[Elem], w: usize, out: &mut [Elem], ow: usize) {
    forward_2x2_on::<RELU>(Unit::detect(), plane, w, out, ow, None);
}

/// [`forward_2x2`] that also writes each window's route to `routes` (laid out as `out`), for
/// [`backward_2x2_routed`]: the position of the window's first maximum in `[top left, top
/// right, bottom left, bottom right]` (0 to 3), plus 4 where the rectifier's derivative
/// there is 0 (with `RELU`), as an `f32`. A quarter of the plane's size, where the backward
/// would otherwise read the whole plane again.
pub(crate) fn forward_2x2_routed<const RELU: bool>(
    plane: &[Elem],
    w: usize,
    out: &mut [Elem],
    ow: usize,
    routes: &mut [Elem],
) {
    forward_2x2_on::<RELU>(Unit::detect(), plane, w, out, ow, Some(routes));
}

/// [`forward_2x2`] (with `routes`, [`forward_2x2_routed`]) on the vector unit `unit` (one
/// this CPU has), or by scalar code alone.
fn forward_2x2_on<const RELU: bool>(
    unit: Option<Unit>,
    plane: &[Elem],
    w: usize,
    out: &mut [Elem],
    ow: usize,
    routes: Option<&mut [Elem]>,
) {
    // SAFETY: the CPU has `unit` (the caller's promise, from `Unit::detect`).
    match unit {
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx512) => unsafe { avx512::forward_plane::<RELU>(plane, w, out, ow, routes) },
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx2) => unsafe { avx2::forward_plane::<RELU>(plane, w, out, ow, routes) },
        _ => forward_rows::<RELU>(plane, w, out, ow, routes, |_, _, _, _| 0),
    }
}

/// A window `[top left, top right, bottom left, bottom right]` through the rectifier and
/// 2×2 max pooling by the exact rule: its maximum and its route (see
/// [`forward_2x2_routed`]), NaN included, for kernels that pool windows laid out otherwise.
pub(crate) fn relu_window(window: [Elem; 4]) -> (Elem, Elem) {
    let window = rectified::<true>(window);
    let first = first_max_of_4(window);
    (window[first], route::<true>(first, window[first]))
}

/// The route code of a window whose first maximum is at `first` and holds `value` (see
/// [`forward_2x2_routed`]).
#[inline(always)]
fn route<const RELU: bool>(first: usize, value: Elem) -> Elem {
    let slope_zero = RELU && relu_slope(value) == 0.0;
    first as Elem + if slope_zero { 4.0 } else { 0.0 }
}

/// The backward of [`forward_2x2_routed`] from the routes alone, for a plane whose windows
/// tile it (`W = w` even): writes every element of `dx` (`[H, W]`, two rows per row of
/// `grad`): `grad[oy, ox]` at the window's routed input, times the rectifier's derivative
/// there (0 or 1, from the route), and 0 at its other three inputs — the numbers
/// [`backward_2x2`] gives on the plane the routes came from, without reading that plane.
pub(crate) fn backward_2x2_routed(routes: &[Elem], w: usize, grad: &[Elem], dx: &mut [Elem]) {
    backward_2x2_routed_on(Unit::detect(), routes, w, grad, dx);
}

/// [`backward_2x2_routed`] on the vector unit `unit` (one this CPU has), or by scalar code
/// alone.
fn backward_2x2_routed_on(
    unit: Option<Unit>,
    routes: &[Elem],
    w: usize,
    grad: &[Elem],
    dx: &mut [Elem],
) {
    // SAFETY: the CPU has `unit` (the caller's promise, from `Unit::detect`).
    match unit {
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx512) => unsafe { avx512::routed_plane(routes, w, grad, dx) },
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx2) => unsafe { avx2::routed_plane(routes, w, grad, dx) },
        _ => routed_rows(routes, w, grad, dx, |_, _, _, _| 0),
    }
}

/// The row pairs of [`backward_2x2_routed`]: `vector` writes what it can of a row pair's
/// gradients and returns how many windows, the rule the rest (see [`forward_rows`]).
#[inline(always)]
fn routed_rows(
    routes: &[Elem],
    w: usize,
    grad: &[Elem],
    dx: &mut [Elem],
    vector: impl Fn(&[Elem], &[Elem], &mut [[Elem; 2]], &mut [[Elem; 2]]) -> usize,
) {
    let ow = w / 2;
    let rows = grad.chunks_exact(ow).zip(routes.chunks_exact(ow));
    for ((g, r), dx) in rows.zip(dx.chunks_exact_mut(2 * w)) {
        let (dtop, dbottom) = dx.split_at_mut(w);
        let (dtop, dbottom) = (dtop.as_chunks_mut::<2>().0, dbottom.as_chunks_mut::<2>().0);
        let done = vector(r, g, dtop, dbottom);
        let windows = g.iter().zip(r).zip(dtop.iter_mut().zip(dbottom)).skip(done);
        for ((&g, &r), (dt, db)) in windows {
            let (at, slope) = if r >= 4.0 { (r - 4.0, 0.0) } else { (r, 1.0) };
            let routed = g * slope;
            let to = |k: Elem| if at == k { routed } else { 0.0 };
            *dt = [to(0.0), to(1.0)];
            *db = [to(2.0), to(3.0)];
        }
    }
}

/// The row pairs of [`forward_2x2`]: `vector` writes what it can of a row pair's maxima
/// and returns how many (all, or 0 when the pair holds a NaN), the exact rule the rest.
/// Inlined into each vector unit's plane loop, so that a narrow plane's many short rows
/// cost no call each.
#[inline(always)]
fn forward_rows<const RELU: bool>(
    plane: &[Elem],
    w: usize,
    out: &mut [Elem],
    ow: usize,
    mut routes: Option<&mut [Elem]>,
    vector: impl Fn(&[[Elem; 2]], &[[Elem; 2]], &mut [Elem], Option<&mut [Elem]>) -> usize,
) {
    for (oy, y) in out.chunks_exact_mut(ow).enumerate() {
        let (top, bottom) = rows(plane, w, oy, ow);
        let mut codes = routes.as_deref_mut().map(|r| &mut r[oy * ow..][..ow]);
        let done = vector(top, bottom, y, codes.as_deref_mut());
        let windows = y.iter_mut().zip(top).zip(bottom).enumerate().skip(done);
        for (x, ((y, t), b)) in windows {
            let window = rectified::<RELU>([t[0], t[1], b[0], b[1]]);
            let first = first_max_of_4(window);
            *y = window[first];
            if let Some(codes) = codes.as_deref_mut() {
                codes[x] = route::<RELU>(first, window[first]);
            }
        }
    }
}

/// The backward of [`forward_2x2`] for a plane whose windows tile it (`H` and `W` even):
/// writes every element of `dx` (`[H, W]`): each output's gradient `grad[oy, ox]` at its
/// window's first maximum in row-major order ([`first_max_of_4`]), 0 elsewhere; with
/// `RELU`, the first maximum of the rectified window, and the gradient times the
/// rectifier's derivative there.
pub(crate) fn backward_2x2<const RELU: bool>(
    plane: &[Elem],
    w: usize,
    grad: &[Elem],
    dx: &mut [Elem],
) {
    backward_2x2_on::<RELU>(Unit::detect(), plane, w, grad, dx);
}

/// [`backward_2x2`] on the vector unit `unit` (one this CPU has), or by scalar code alone.
fn backward_2x2_on<const RELU: bool>(
    unit: Option<Unit>,
    plane: &[Elem],
    w: usize,
    grad: &[Elem],
    dx: &mut [Elem],
) {
    // SAFETY: the CPU has `unit` (the caller's promise, from `Unit::detect`).
    match unit {
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx512) => unsafe { avx512::backward_plane::<RELU>(plane, w, grad, dx) },
        #[cfg(target_arch = "x86_64")]
        Some(Unit::Avx2) => unsafe { avx2::backward_plane::<RELU>(plane, w, grad, dx) },
        _ => backward_rows::<RELU>(plane, w, grad, dx, |_, _, _, _, _| 0),
    }
}

/// The row pairs of [`backward_2x2`]: `vector` writes what it can of a row pair's
/// gradients and returns how many windows (all, or 0 when the pair holds a NaN), the exact
/// rule the rest (see [`forward_rows`]).
#[inline(always)]
fn backward_rows<const RELU: bool>(
    plane: &[Elem],
    w: usize,
    grad: &[Elem],
    dx: &mut [Elem],
    vector: impl Fn(&[[Elem; 2]], &[[Elem; 2]], &[Elem], &mut [[Elem; 2]], &mut [[Elem; 2]]) -> usize,
) {
    let ow = w / 2;
    let rows_of_dx = dx.chunks_exact_mut(2 * w);
    for (oy, (g, dx)) in grad.chunks_exact(ow).zip(rows_of_dx).enumerate() {
        let (top, bottom) = rows(plane, w, oy, ow);
        let (dtop, dbottom) = dx.split_at_mut(w);
        let (dtop, dbottom) = (dtop.as_chunks_mut::<2>().0, dbottom.as_chunks_mut::<2>().0);
        let done = vector(top, bottom, g, dtop, dbottom);
        let windows = top.iter().zip(bottom).zip(dtop.iter_mut().zip(dbottom));
        for (&g, ((t, b), (dt, db))) in g.iter().zip(windows).skip(done) {
            let mut routed = [0.0; 4];
            let window = rectified::<RELU>([t[0], t[1], b[0], b[1]]);
            let first = first_max_of_4(window);
            routed[first] = if RELU {
                g * relu_slope(window[first])
            } else {
                g
            };
            *dt = [routed[0], routed[1]];
            *db = [routed[2], routed[3]];
        }
    }
}

/// The window through the rectifier with `RELU` (NaN stays NaN, as in `Var::relu`), else
/// as it is.
#[inline(always)]
fn rectified<const RELU: bool>(window: [Elem; 4]) -> [Elem; 4] {
    match RELU {
        true => window.map(|x| if x <= 0.0 { 0.0 } else { x }),
        false => window,
    }
}

/// The rectifier's derivative at `x` (or at `relu(x)`, the same): 0 for `x <= 0`, 1 for
/// `x > 0` and for NaN, as `Var::relu`'s backward.
#[inline(always)]
fn relu_slope(x: Elem) -> Elem {
    if x <= 0.0 { 0.0 } else { 1.0 }
}

/// The first `2·ow` columns of rows `2oy` and `2oy + 1` of a plane `w` wide, as pairs.
fn rows(plane: &[Elem], w: usize, oy: usize, ow: usize) -> (&[[Elem; 2]], &[[Elem; 2]]) {
    let pairs = |y: usize| plane[y * w..][..2 * ow].as_chunks::<2>().0;
    (pairs(2 * oy), pairs(2 * oy + 1))
}

/// Eight windows at a time with AVX2 (a row's last few with masked loads and stores). A
/// window is `[p, q]` over `[r, s]`; eight of them are two 8-lane loads per row, split into
/// `p`, `q` (and `r`, `s`) vectors whose lanes hold windows `0, 1, 4, 5, 2, 3, 6, 7` (the
/// order `_mm256_shuffle_ps` leaves; outputs and gradients are brought into that order and
/// back by swapping the middle 64-bit quarters).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Elem;
    use std::arch::x86_64::*;

    /// A mask of the first `lanes` of 8 lanes (all of them from 8 up).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn first(lanes: usize) -> __m256i {
        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes.min(8) as i32), iota)
    }

    /// The 8 elements at `at`, of which the first `lanes` are read (the others are 0).
    ///
    /// # Safety
    /// `min(lanes, 8)` elements from `at` are readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(at: *const Elem, lanes: usize) -> __m256 {
        // SAFETY: the caller's promise; masked-off lanes are not accessed.
        unsafe {
            match lanes {
                8.. => _mm256_loadu_ps(at),
                _ => _mm256_maskload_ps(at, first(lanes)),
            }
        }
    }

    /// Writes the first `lanes` of `v` to `at`.
    ///
    /// # Safety
    /// `min(lanes, 8)` elements from `at` are writable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(at: *mut Elem, lanes: usize, v: __m256) {
        // SAFETY: the caller's promise; masked-off lanes are not accessed.
        unsafe {
            match lanes {
                8.. => _mm256_storeu_ps(at, v),
                _ => _mm256_maskstore_ps(at, first(lanes), v),
            }
        }
    }

    /// Swaps the middle two 64-bit quarters: window order `0, 1, 4, 5, 2, 3, 6, 7` to
    /// `0..8` and back.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn swap_middle(v: __m256) -> __m256 {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
    }

    /// The left and right columns of the `windows` (1 to 8) pairs from `pairs[0]`, as `p`
    /// and `q` vectors (lanes past `windows` are 0).
    ///
    /// # Safety
    /// `pairs` holds at least `min(windows, 8)` pairs.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn split(pairs: &[[Elem; 2]], windows: usize) -> (__m256, __m256) {
        let at = pairs.as_ptr().cast::<Elem>();
        let lanes = 2 * windows.min(8);
        // SAFETY: `lanes` elements from `at` lie inside `pairs` (the caller's promise).
        let (lo, hi) = unsafe {
            (
                load(at, lanes),
                load(at.wrapping_add(8), lanes.saturating_sub(8)),
            )
        };
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
        )
    }

    /// Writes the gradients `gp`, `gq` of the `windows` (1 to 8) pairs from `pairs[0]` back
    /// in pair order.
    ///
    /// # Safety
    /// `pairs` holds at least `min(windows, 8)` pairs.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn merge(pairs: &mut [[Elem; 2]], windows: usize, gp: __m256, gq: __m256) {
        let at = pairs.as_mut_ptr().cast::<Elem>();
        let lanes = 2 * windows.min(8);
        // SAFETY: `lanes` elements from `at` lie inside `pairs` (the caller's promise).
        unsafe {
            store(at, lanes, _mm256_unpacklo_ps(gp, gq));
            store(
                at.wrapping_add(8),
                lanes.saturating_sub(8),
                _mm256_unpackhi_ps(gp, gq),
            );
        }
    }

    /// `relu(v)` in every lane with `RELU`, else `v`, for lanes that hold numbers (a lane
    /// holding a NaN comes out 0): `max(v, 0)`, which gives its second operand, +0.0, for
    /// -0.0 as for every other `v <= 0`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rectified<const RELU: bool>(v: __m256) -> __m256 {
        match RELU {
            true => _mm256_max_ps(v, _mm256_setzero_ps()),
            false => v,
        }
    }

    /// The `windows` (1 to 8) windows from window `i` of a row pair: their inputs
    /// `[p, q, r, s]` (rectified with `RELU`) and their maxima; sets in `nan` the lanes of
    /// windows holding a NaN.
    ///
    /// # Safety
    /// Both rows hold at least `i + min(windows, 8)` pairs.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn windows_at<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        i: usize,
        windows: usize,
        nan: &mut __m256,
    ) -> ([__m256; 4], __m256) {
        // SAFETY: the caller's promise.
        let ((p, q), (r, s)) = unsafe { (split(&top[i..], windows), split(&bottom[i..], windows)) };
        let unordered = |a, b| _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b);
        *nan = _mm256_or_ps(*nan, _mm256_or_ps(unordered(p, q), unordered(r, s)));
        // NaN lanes are found before the rectifier, which maps them to 0
        let [p, q, r, s] = [p, q, r, s].map(|v| rectified::<RELU>(v));
        let max = _mm256_max_ps(_mm256_max_ps(p, q), _mm256_max_ps(r, s));
        ([p, q, r, s], max)
    }

    /// Masks of the first position of `[p, q, r, s]` that holds `max`, in each lane
    /// (`s` when none of the first three does); 0.0 and -0.0 count as equal, as in the
    /// scan's comparison.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn firsts([p, q, r]: [__m256; 3], max: __m256) -> [__m256; 4] {
        let at_p = _mm256_cmp_ps::<_CMP_EQ_OQ>(p, max);
        let at_q = _mm256_andnot_ps(at_p, _mm256_cmp_ps::<_CMP_EQ_OQ>(q, max));
        let taken = _mm256_or_ps(at_p, at_q);
        let at_r = _mm256_andnot_ps(taken, _mm256_cmp_ps::<_CMP_EQ_OQ>(r, max));
        let taken = _mm256_or_ps(taken, at_r);
        let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        [at_p, at_q, at_r, _mm256_andnot_ps(taken, all)]
    }

    /// [`super::forward_2x2`] of a plane (and its routes, [`super::forward_2x2_routed`]), 8
    /// windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn forward_plane<const RELU: bool>(
        plane: &[Elem],
        w: usize,
        out: &mut [Elem],
        ow: usize,
        routes: Option<&mut [Elem]>,
    ) {
        super::forward_rows::<RELU>(
            plane,
            w,
            out,
            ow,
            routes,
            // SAFETY: the CPU has AVX2 (this function's contract).
            #[inline(always)]
            |top, bottom, y, codes| unsafe { forward_row::<RELU>(top, bottom, y, codes) },
        );
    }

    /// [`super::backward_2x2`] of a plane, 8 windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn backward_plane<const RELU: bool>(
        plane: &[Elem],
        w: usize,
        grad: &[Elem],
        dx: &mut [Elem],
    ) {
        super::backward_rows::<RELU>(
            plane,
            w,
            grad,
            dx,
            // SAFETY: the CPU has AVX2 (this function's contract).
            #[inline(always)]
            |top, bottom, g, dtop, dbottom| unsafe {
                backward_row::<RELU>(top, bottom, g, dtop, dbottom)
            },
        );
    }

    /// The maxima of the row pair's windows, 8 at a time, into `out` (and their routes into
    /// `codes`); returns how many windows it wrote: all of them, or 0 when a window holds a
    /// NaN (the caller then does the row by the exact rule).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn forward_row<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        out: &mut [Elem],
        mut codes: Option<&mut [Elem]>,
    ) -> usize {
        let n = out.len().min(top.len()).min(bottom.len());
        let n = codes.as_deref().map_or(n, |codes| n.min(codes.len()));
        let mut nan = _mm256_setzero_ps();
        for i in (0..n).step_by(8) {
            let windows = n - i;
            // SAFETY: min(windows, 8) windows from i lie inside both rows and `out`.
            unsafe {
                let ([p, q, r, s], max) = windows_at::<RELU>(top, bottom, i, windows, &mut nan);
                let value = match RELU {
                    // rectified inputs hold no -0.0: the maximum is the value
                    true => max,
                    // the value at the first maximum: of 0.0 and -0.0 the first, as the scan
                    false => {
                        let [at_p, at_q, at_r, _] = firsts([p, q, r], max);
                        let value = _mm256_blendv_ps(_mm256_blendv_ps(s, r, at_r), q, at_q);
                        _mm256_blendv_ps(value, p, at_p)
                    }
                };
                store(out[i..].as_mut_ptr(), windows, swap_middle(value));
                if let Some(codes) = codes.as_deref_mut() {
                    let [_, at_q, at_r, at_s] = firsts([p, q, r], max);
                    let code = |at, k| _mm256_and_ps(at, _mm256_set1_ps(k));
                    let mut route = _mm256_or_ps(code(at_q, 1.0), code(at_r, 2.0));
                    route = _mm256_or_ps(route, code(at_s, 3.0));
                    if RELU {
                        let above = _mm256_cmp_ps::<_CMP_NLE_UQ>(max, _mm256_setzero_ps());
                        let slope_zero = _mm256_andnot_ps(above, _mm256_set1_ps(4.0));
                        route = _mm256_add_ps(route, slope_zero);
                    }
                    store(codes[i..].as_mut_ptr(), windows, swap_middle(route));
                }
            }
        }
        if _mm256_movemask_ps(nan) != 0 { 0 } else { n }
    }

    /// The gradients of the row pair's windows, 8 at a time: `g` to each window's first
    /// maximum (times the rectifier's derivative there with `RELU`), 0 to its other three
    /// inputs. Returns how many windows it wrote: all of
    /// them, or 0 when a window holds a NaN (the caller then does the row by the exact
    /// rule, overwriting what was written).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn backward_row<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        grad: &[Elem],
        dtop: &mut [[Elem; 2]],
        dbottom: &mut [[Elem; 2]],
    ) -> usize {
        let lens = [
            top.len(),
            bottom.len(),
            grad.len(),
            dtop.len(),
            dbottom.len(),
        ];
        let n = lens.into_iter().min().unwrap_or(0);
        let mut nan = _mm256_setzero_ps();
        for i in (0..n).step_by(8) {
            let windows = n - i;
            // SAFETY: min(windows, 8) windows from i lie inside every slice.
            unsafe {
                let ([p, q, r, _], max) = windows_at::<RELU>(top, bottom, i, windows, &mut nan);
                let mut g = swap_middle(load(grad[i..].as_ptr(), windows));
                if RELU {
                    // times 1 where the maximum is > 0 (NaN is redone by the caller), else 0
                    let above = _mm256_cmp_ps::<_CMP_NLE_UQ>(max, _mm256_setzero_ps());
                    g = _mm256_mul_ps(g, _mm256_and_ps(above, _mm256_set1_ps(1.0)));
                }
                // the first position that holds the maximum takes the gradient
                let [at_p, at_q, at_r, at_s] = firsts([p, q, r], max);
                let (gp, gq) = (_mm256_and_ps(at_p, g), _mm256_and_ps(at_q, g));
                let (gr, gs) = (_mm256_and_ps(at_r, g), _mm256_and_ps(at_s, g));
                merge(&mut dtop[i..], windows, gp, gq);
                merge(&mut dbottom[i..], windows, gr, gs);
            }
        }
        if _mm256_movemask_ps(nan) != 0 { 0 } else { n }
    }

    /// [`super::backward_2x2_routed`] of a plane, 8 windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn routed_plane(routes: &[Elem], w: usize, grad: &[Elem], dx: &mut [Elem]) {
        super::routed_rows(
            routes,
            w,
            grad,
            dx,
            // SAFETY: the CPU has AVX2 (this function's contract).
            #[inline(always)]
            |r, g, dtop, dbottom| unsafe { routed_row(r, g, dtop, dbottom) },
        );
    }

    /// The gradients of a row pair's windows from their routes, 8 at a time; returns how
    /// many windows it wrote (all of them).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn routed_row(
        routes: &[Elem],
        grad: &[Elem],
        dtop: &mut [[Elem; 2]],
        dbottom: &mut [[Elem; 2]],
    ) -> usize {
        let lens = [routes.len(), grad.len(), dtop.len(), dbottom.len()];
        let n = lens.into_iter().min().unwrap_or(0);
        let four = _mm256_set1_ps(4.0);
        for i in (0..n).step_by(8) {
            let windows = n - i;
            // SAFETY: min(windows, 8) windows from i lie inside every slice.
            unsafe {
                let r = swap_middle(load(routes[i..].as_ptr(), windows));
                let g = swap_middle(load(grad[i..].as_ptr(), windows));
                // times 0 where the route says so (a product: a negative gradient leaves
                // -0.0), else times 1
                let slope_zero = _mm256_cmp_ps::<_CMP_GE_OQ>(r, four);
                let at = _mm256_sub_ps(r, _mm256_and_ps(slope_zero, four));
                let g = _mm256_mul_ps(g, _mm256_andnot_ps(slope_zero, _mm256_set1_ps(1.0)));
                let to = |k| _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(at, _mm256_set1_ps(k)), g);
                merge(&mut dtop[i..], windows, to(0.0), to(1.0));
                merge(&mut dbottom[i..], windows, to(2.0), to(3.0));
            }
        }
        n
    }
}

/// Sixteen windows at a time with AVX-512F: the same steps as [`avx2`], with mask registers
/// for the comparisons and a row's last few windows, and two-source permutes that split the
/// pairs into `p`, `q` (and `r`, `s`) vectors in window order and merge them back.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::Elem;
    use std::arch::x86_64::*;

    /// The first `lanes` of 16 lanes (all of them from 16 up).
    #[inline]
    fn first(lanes: usize) -> __mmask16 {
        match lanes {
            16.. => 0xffff,
            _ => (1u16 << lanes) - 1,
        }
    }

    /// The left and right columns of the `windows` (1 to 16) pairs from `pairs[0]`, as `p`
    /// and `q` vectors (lanes past `windows` are 0).
    ///
    /// # Safety
    /// `pairs` holds at least `min(windows, 16)` pairs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split(pairs: &[[Elem; 2]], windows: usize) -> (__m512, __m512) {
        let at = pairs.as_ptr().cast::<Elem>();
        let lanes = 2 * windows.min(16);
        // SAFETY: `lanes` elements from `at` lie inside `pairs` (the caller's promise);
        // masked-off lanes are not accessed.
        let (lo, hi) = unsafe {
            (
                _mm512_maskz_loadu_ps(first(lanes), at),
                _mm512_maskz_loadu_ps(first(lanes.saturating_sub(16)), at.wrapping_add(16)),
            )
        };
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        (
            _mm512_permutex2var_ps(lo, even, hi),
            _mm512_permutex2var_ps(lo, odd, hi),
        )
    }

    /// Writes the gradients `gp`, `gq` of the `windows` (1 to 16) pairs from `pairs[0]`
    /// back in pair order.
    ///
    /// # Safety
    /// `pairs` holds at least `min(windows, 16)` pairs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn merge(pairs: &mut [[Elem; 2]], windows: usize, gp: __m512, gq: __m512) {
        let at = pairs.as_mut_ptr().cast::<Elem>();
        let lanes = 2 * windows.min(16);
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        // SAFETY: `lanes` elements from `at` lie inside `pairs` (the caller's promise);
        // masked-off lanes are not accessed.
        unsafe {
            _mm512_mask_storeu_ps(at, first(lanes), _mm512_permutex2var_ps(gp, low, gq));
            _mm512_mask_storeu_ps(
                at.wrapping_add(16),
                first(lanes.saturating_sub(16)),
                _mm512_permutex2var_ps(gp, high, gq),
            );
        }
    }

    /// `relu(v)` in every lane with `RELU`, else `v`, for lanes that hold numbers (a lane
    /// holding a NaN comes out 0): `max(v, 0)`, which gives its second operand, +0.0, for
    /// -0.0 as for every other `v <= 0`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rectified<const RELU: bool>(v: __m512) -> __m512 {
        match RELU {
            true => _mm512_max_ps(v, _mm512_setzero_ps()),
            false => v,
        }
    }

    /// The `windows` (1 to 16) windows from window `i` of a row pair: their inputs
    /// `[p, q, r, s]` (rectified with `RELU`) and their maxima; sets in `nan` the lanes of
    /// windows holding a NaN.
    ///
    /// # Safety
    /// Both rows hold at least `i + min(windows, 16)` pairs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn windows_at<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        i: usize,
        windows: usize,
        nan: &mut __mmask16,
    ) -> ([__m512; 4], __m512) {
        // SAFETY: the caller's promise.
        let ((p, q), (r, s)) = unsafe { (split(&top[i..], windows), split(&bottom[i..], windows)) };
        let unordered = |a, b| _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
        *nan |= unordered(p, q) | unordered(r, s);
        // NaN lanes are found before the rectifier, which maps them to 0
        let [p, q, r, s] = [p, q, r, s].map(|v| rectified::<RELU>(v));
        let max = _mm512_max_ps(_mm512_max_ps(p, q), _mm512_max_ps(r, s));
        ([p, q, r, s], max)
    }

    /// Masks of the first position of `[p, q, r, s]` that holds `max`, in each lane
    /// (`s` when none of the first three does); 0.0 and -0.0 count as equal, as in the
    /// scan's comparison.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn firsts([p, q, r]: [__m512; 3], max: __m512) -> [__mmask16; 4] {
        let at_p = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(p, max);
        let at_q = !at_p & _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(q, max);
        let at_r = !(at_p | at_q) & _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(r, max);
        [at_p, at_q, at_r, !(at_p | at_q | at_r)]
    }

    /// The route codes ([`super::forward_2x2_routed`]) of 16 windows whose inputs `[p, q,
    /// r, s]` (rectified with `RELU`) hold numbers and whose maxima are `max`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn routes<const RELU: bool>([p, q, r]: [__m512; 3], max: __m512) -> __m512 {
        let [_, at_q, at_r, at_s] = firsts([p, q, r], max);
        let mut route = _mm512_maskz_mov_ps(at_q, _mm512_set1_ps(1.0));
        route = _mm512_mask_mov_ps(route, at_r, _mm512_set1_ps(2.0));
        route = _mm512_mask_mov_ps(route, at_s, _mm512_set1_ps(3.0));
        if RELU {
            let above = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(max, _mm512_setzero_ps());
            route = _mm512_mask_add_ps(route, !above, route, _mm512_set1_ps(4.0));
        }
        route
    }

    /// The ReLU and 2×2 max pooling of 16 windows whose inputs `[p, q, r, s]` hold numbers
    /// (one window per lane, laid out however the caller's plane is): their maxima and
    /// route codes, as [`super::forward_2x2_routed`] gives them.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn relu_windows(inputs: [__m512; 4]) -> (__m512, __m512) {
        let [p, q, r, s] = inputs.map(|v| rectified::<true>(v));
        let max = _mm512_max_ps(_mm512_max_ps(p, q), _mm512_max_ps(r, s));
        (max, routes::<true>([p, q, r], max))
    }

    /// [`super::forward_2x2`] of a plane (and its routes, [`super::forward_2x2_routed`]), 16
    /// windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_plane<const RELU: bool>(
        plane: &[Elem],
        w: usize,
        out: &mut [Elem],
        ow: usize,
        routes: Option<&mut [Elem]>,
    ) {
        super::forward_rows::<RELU>(
            plane,
            w,
            out,
            ow,
            routes,
            // SAFETY: the CPU has AVX-512F (this function's contract).
            #[inline(always)]
            |top, bottom, y, codes| unsafe { forward_row::<RELU>(top, bottom, y, codes) },
        );
    }

    /// [`super::backward_2x2`] of a plane, 16 windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_plane<const RELU: bool>(
        plane: &[Elem],
        w: usize,
        grad: &[Elem],
        dx: &mut [Elem],
    ) {
        super::backward_rows::<RELU>(
            plane,
            w,
            grad,
            dx,
            // SAFETY: the CPU has AVX-512F (this function's contract).
            #[inline(always)]
            |top, bottom, g, dtop, dbottom| unsafe {
                backward_row::<RELU>(top, bottom, g, dtop, dbottom)
            },
        );
    }

    /// The maxima of the row pair's windows, 16 at a time, into `out` (and their routes into
    /// `codes`); returns how many windows it wrote: all of them, or 0 when a window holds a
    /// NaN (the caller then does the row by the exact rule).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_row<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        out: &mut [Elem],
        mut codes: Option<&mut [Elem]>,
    ) -> usize {
        let n = out.len().min(top.len()).min(bottom.len());
        let n = codes.as_deref().map_or(n, |codes| n.min(codes.len()));
        let mut nan = 0;
        for i in (0..n).step_by(16) {
            let windows = n - i;
            // SAFETY: min(windows, 16) windows from i lie inside both rows and `out`.
            unsafe {
                let ([p, q, r, s], max) = windows_at::<RELU>(top, bottom, i, windows, &mut nan);
                let value = match RELU {
                    // rectified inputs hold no -0.0: the maximum is the value
                    true => max,
                    // the value at the first maximum: of 0.0 and -0.0 the first, as the scan
                    false => {
                        let [at_p, at_q, at_r, _] = firsts([p, q, r], max);
                        let value = _mm512_mask_blend_ps(at_r, s, r);
                        let value = _mm512_mask_blend_ps(at_q, value, q);
                        _mm512_mask_blend_ps(at_p, value, p)
                    }
                };
                _mm512_mask_storeu_ps(out[i..].as_mut_ptr(), first(windows), value);
                if let Some(codes) = codes.as_deref_mut() {
                    let route = routes::<RELU>([p, q, r], max);
                    _mm512_mask_storeu_ps(codes[i..].as_mut_ptr(), first(windows), route);
                }
            }
        }
        if nan != 0 { 0 } else { n }
    }

    /// The gradients of the row pair's windows, 16 at a time: `g` to each window's first
    /// maximum (times the rectifier's derivative there with `RELU`), 0 to its other three
    /// inputs. Returns how many windows it wrote: all of them, or 0 when a window holds a
    /// NaN (the caller then does the row by the exact rule, overwriting what was written).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn backward_row<const RELU: bool>(
        top: &[[Elem; 2]],
        bottom: &[[Elem; 2]],
        grad: &[Elem],
        dtop: &mut [[Elem; 2]],
        dbottom: &mut [[Elem; 2]],
    ) -> usize {
        let lens = [
            top.len(),
            bottom.len(),
            grad.len(),
            dtop.len(),
            dbottom.len(),
        ];
        let n = lens.into_iter().min().unwrap_or(0);
        let mut nan = 0;
        for i in (0..n).step_by(16) {
            let windows = n - i;
            // SAFETY: min(windows, 16) windows from i lie inside every slice.
            unsafe {
                let ([p, q, r, _], max) = windows_at::<RELU>(top, bottom, i, windows, &mut nan);
                let mut g = _mm512_maskz_loadu_ps(first(windows), grad[i..].as_ptr());
                if RELU {
                    // times 1 where the maximum is > 0 (NaN is redone by the caller), else 0
                    // (a product, so that a negative gradient leaves -0.0 as `g·0` does)
                    let above = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(max, _mm512_setzero_ps());
                    g = _mm512_mul_ps(g, _mm512_maskz_mov_ps(above, _mm512_set1_ps(1.0)));
                }
                // the first position that holds the maximum takes the gradient
                let [at_p, at_q, at_r, at_s] = firsts([p, q, r], max);
                let (gp, gq) = (_mm512_maskz_mov_ps(at_p, g), _mm512_maskz_mov_ps(at_q, g));
                let (gr, gs) = (_mm512_maskz_mov_ps(at_r, g), _mm512_maskz_mov_ps(at_s, g));
                merge(&mut dtop[i..], windows, gp, gq);
                merge(&mut dbottom[i..], windows, gr, gs);
            }
        }
        if nan != 0 { 0 } else { n }
    }

    /// [`super::backward_2x2_routed`] of a plane, 16 windows at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn routed_plane(routes: &[Elem], w: usize, grad: &[Elem], dx: &mut [Elem]) {
        super::routed_rows(
            routes,
            w,
            grad,
            dx,
            // SAFETY: the CPU has AVX-512F (this function's contract).
            #[inline(always)]
            |r, g, dtop, dbottom| unsafe { routed_row(r, g, dtop, dbottom) },
        );
    }

    /// The gradients of a row pair's windows from their routes, 16 at a time; returns how
    /// many windows it wrote (all of them).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn routed_row(
        routes: &[Elem],
        grad: &[Elem],
        dtop: &mut [[Elem; 2]],
        dbottom: &mut [[Elem; 2]],
    ) -> usize {
        let lens = [routes.len(), grad.len(), dtop.len(), dbottom.len()];
        let n = lens.into_iter().min().unwrap_or(0);
        let four = _mm512_set1_ps(4.0);
        for i in (0..n).step_by(16) {
            let windows = n - i;
            // SAFETY: min(windows, 16) windows from i lie inside every slice.
            unsafe {
                let r = _mm512_maskz_loadu_ps(first(windows), routes[i..].as_ptr());
                let g = _mm512_maskz_loadu_ps(first(windows), grad[i..].as_ptr());
                // times 0 where the route says so (a product: a negative gradient leaves
                // -0.0), else times 1
                let slope_zero = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(r, four);
                let at = _mm512_mask_sub_ps(r, slope_zero, r, four);
                let slope = _mm512_maskz_mov_ps(!slope_zero, _mm512_set1_ps(1.0));
                let g = _mm512_mul_ps(g, slope);
                let to = |k| {
                    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(at, _mm512_set1_ps(k)), g)
                };
                merge(&mut dtop[i..], windows, to(0.0), to(1.0));
                merge(&mut dbottom[i..], windows, to(2.0), to(3.0));
            }
        }
        n
    }
}

/// Which of a 2×2 window `[top left, top right, bottom left, bottom right]` is its first
/// maximum in row-major order, as PyTorch's CPU kernel picks it (`val > max || isnan(val)`
/// scanning in order): the first position holding the largest number, or, when the window
/// holds a NaN, the last NaN. Branch-free but for the rare NaN, since comparisons of real
/// data are unpredictable.
#[inline(always)]
pub(crate) fn first_max_of_4(window: [Elem; 4]) -> usize {
    let [a, b, c, d] = window;
    // the first position holding the largest non-NaN value, from a bit mask of the
    // positions that hold it (no branch on the data)
    let max = a.max(b).max(c.max(d));
    let holds = |v: Elem, bit: u32| u32::from(v == max) << bit;
    let first = (holds(a, 0) | holds(b, 1) | holds(c, 2) | 8).trailing_zeros();
    let nan = |v: Elem, bit: u32| u32::from(v.is_nan()) << bit;
    match nan(a, 0) | nan(b, 1) | nan(c, 2) | nan(d, 3) {
        0 => first as usize,
        nans => (31 - nans.leading_zeros()) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window's first maximum by the definition: scan in order, take a value when it is
    /// larger than the best so far or NaN.
    fn scan(window: [Elem; 4]) -> usize {
        let mut best = (0, Elem::NEG_INFINITY);
        for (i, v) in window.into_iter().enumerate() {
            if v > best.1 || v.is_nan() {
                best = (i, v);
            }
        }
        best.0
    }

    /// A plane of small integers (many ties), with NaN at the given positions.
    fn plane(h: usize, w: usize, seed: u32, nans: &[usize]) -> Vec<Elem> {
        let mut state = seed;
        let mut v: Vec<Elem> = (0..h * w)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 28) % 4) as Elem - 1.0
            })
            .collect();
        for &at in nans {
            v[at] = Elem::NAN;
        }
        v
    }

    #[test]
    fn first_max_of_4_agrees_with_the_scan_on_ties_and_nans() {
        let values = [-1.0, 0.0, 2.0, Elem::NAN];
        for code in 0..256 {
            let window = [0, 2, 4, 6].map(|shift| values[(code >> shift) & 3]);
            assert_eq!(first_max_of_4(window), scan(window), "{window:?}");
        }
    }

    /// Forward and backward with or without the rectifier against the definition: a ReLU
    /// (`x <= 0` to 0, NaN kept; derivative 1 for `x > 0` and NaN) then the scan.
    fn check<const RELU: bool>(unit: Option<Unit>) {
        // widths of 1, 7, 10, 17 and 33 windows: full vectors of 8 and 16 and masked tails;
        // NaN in some row pairs only; many ties, negatives and zeros (all-negative windows
        // included)
        for (h, w, nans) in [
            (4, 66, vec![]),
            (4, 66, vec![200]),
            (4, 20, vec![]),
            (6, 20, vec![21, 47]),
            (5, 7, vec![3]),
            (14, 14, vec![]),
            (4, 34, vec![]),
            (2, 2, vec![]),
        ] {
            let mut x = plane(h, w, 7, &nans);
            // a first window [-0.0, 0.0 / -1, -1]: its first maximum is -0.0
            (x[0], x[1], x[w], x[w + 1]) = (-0.0, 0.0, -1.0, -1.0);
            let relu = |v: Elem| if RELU && v <= 0.0 { 0.0 } else { v };
            let (oh, ow) = (h / 2, w / 2);
            let mut y = vec![0.0; oh * ow];
            forward_2x2_on::<RELU>(unit, &x, w, &mut y, ow, None);
            // negative gradients too: where the derivative is 0 they leave -0.0, as g·0 does
            let grad: Vec<Elem> = (0..oh * ow).map(|i| i as Elem - 3.5).collect();
            let mut expected_dx = vec![0.0; h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let at = [0, 1, w, w + 1].map(|o| 2 * oy * w + 2 * ox + o);
                    let first = at[scan(at.map(|i| relu(x[i])))];
                    let (got, want) = (y[oy * ow + ox], relu(x[first]));
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{unit:?}, relu {RELU}, {h}x{w} {oy},{ox}: {got} against {want}"
                    );
                    let slope = if RELU && x[first] <= 0.0 { 0.0 } else { 1.0 };
                    expected_dx[first] = grad[oy * ow + ox] * slope;
                }
            }
            if h % 2 == 0 && w % 2 == 0 {
                let mut dx = vec![Elem::NAN; h * w]; // every element must be written
                backward_2x2_on::<RELU>(unit, &x, w, &grad, &mut dx);
                let bits = |v: &[Elem]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&dx),
                    bits(&expected_dx),
                    "{unit:?}, relu {RELU}, {h}x{w}"
                );
                // the same maxima with routes, and the same gradients from the routes alone
                let (mut routed_y, mut routes) = (vec![0.0; oh * ow], vec![Elem::NAN; oh * ow]);
                forward_2x2_on::<RELU>(unit, &x, w, &mut routed_y, ow, Some(&mut routes));
                assert_eq!(bits(&routed_y), bits(&y), "{unit:?}, relu {RELU}, {h}x{w}");
                let mut dx = vec![Elem::NAN; h * w];
                backward_2x2_routed_on(unit, &routes, w, &grad, &mut dx);
                let what = format!("{unit:?}, relu {RELU}, {h}x{w}, from routes");
                assert_eq!(bits(&dx), bits(&expected_dx), "{what}");
            }
        }
    }

    /// Every vector unit this CPU has, then scalar code alone.
    fn units() -> impl Iterator<Item = Option<Unit>> {
        Unit::all_here().iter().copied().map(Some).chain([None])
    }

    #[test]
    fn forward_and_backward_match_the_definition_with_ties_nans_and_odd_sizes() {
        units().for_each(check::<false>);
    }

    #[test]
    fn with_relu_they_equal_a_relu_then_the_pooling_bit_for_bit() {
        units().for_each(check::<true>);
    }
}
