//! Batch normalization as one op (forward and backward each one pass over the data after the
//! statistics): [`Var::batch_norm`], used by the [`BatchNorm1d`](crate::BatchNorm1d) and
//! [`BatchNorm2d`](crate::BatchNorm2d) layers.
//!
//! # Shapes
//! `x` is `[N, C, ...]` (channels on axis 1, any number of trailing axes), `affine` is
//! `[2, C]` (the scale `γ` in row 0, the shift `β` in row 1); the output has `x`'s shape.

use crate::autograd::tape::Var;
use crate::tensor::Elem;

/// Which mean and variance normalize the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NormStats<'a> {
    /// The batch's own (biased) statistics per channel, over every axis but the channels';
    /// over the whole batch when the tape runs a shard of a data-parallel step.
    Batch,
    /// Given statistics per channel (a layer's running estimates, in evaluation).
    Fixed { mean: &'a [Elem], var: &'a [Elem] },
}

/// The statistics a [`NormStats::Batch`] normalization used, for the running estimates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchMoments {
    /// Per-channel mean.
    pub(crate) mean: Vec<f64>,
    /// Per-channel biased variance (divided by `count`).
    pub(crate) var: Vec<f64>,
    /// Values per channel the statistics were taken over (`N·H·W` of the whole batch).
    pub(crate) count: f64,
    /// Whether these are the whole batch's statistics and this tape should update state kept
    /// across steps: false on every shard but the first, and when the shards of the step
    /// could not share their sums (the step then runs again).
    pub(crate) update_running: bool,
}

impl<'t> Var<'t> {
    /// Batch normalization (Ioffe & Szegedy, 2015), `torch.nn.functional.batch_norm`:
    /// per channel `c`, `y = γ_c·(x − μ_c)/√(σ²_c + eps) + β_c`, with `μ`, `σ²` from `stats`
    /// and `γ`, `β` the rows of `affine` (`γ = 1`, `β = 0` without it). Returns the output
    /// and, for [`NormStats::Batch`], the statistics used.
    ///
    /// Backward, with `x̂ = (x − μ)/√(σ² + eps)` and sums over the `M` values of a channel:
    /// `∂L/∂γ = Σ G·x̂`, `∂L/∂β = Σ G`, and `∂L/∂x = γ/√(σ² + eps)·(G − Σ G/M − x̂·Σ G·x̂/M)`
    /// for batch statistics (they depend on `x`), `γ/√(σ² + eps)·G` for fixed ones. Under a
    /// data-parallel [`TrainStep`](crate::TrainStep) both the statistics and the sums of
    /// `∂L/∂x` are the whole batch's.
    ///
    /// # Panics
    /// If `x` has fewer than 2 axes or `affine` is not `[2, C]`.
    #[track_caller]
    pub(crate) fn batch_norm(
        self,
        affine: Option<Var<'t>>,
        stats: NormStats<'_>,
        eps: f64,
    ) -> (Var<'t>, Option<BatchMoments>) {
        let shape = self.shape();
        assert!(
            shape.len() >= 2,
            "batch_norm: expected an input [N, C, ...] of at least 2 axes; x shape {shape:?}"
        );
        let channels = shape[1];
        if let Some(affine) = affine {
            assert!(
                affine.shape() == [2, channels],
                "batch_norm: expected scale and shift [2, {channels}]; affine shape {:?}",
                affine.shape()
            );
        }
        let x = self.contiguous();
        let data = x.data();
        let values = data.as_slice().expect("contiguous");
        let inner: usize = shape[2..].iter().product();
        let tape = self.tape();
        let member = tape.shard();

        let (mean, var, moments) = match stats {
            NormStats::Fixed { mean, var } => {
                assert!(
                    mean.len() == channels && var.len() == channels,
                    "batch_norm: expected {channels} statistics per channel; found {} means and \
                     {} variances",
                    mean.len(),
                    var.len()
                );
                let widen = |v: &[Elem]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
                (widen(mean), widen(var), None)
            }
            NormStats::Batch => {
                // two rounds, each summed over the step's shards, as PyTorch's two passes: the
                // mean, then the squares around it (Σx² − n·μ² would cancel when the mean is
                // large against the spread: 8e-4 off in the variance of values 998..1002)
                let planes = || values.chunks(inner.max(1)).enumerate();
                // [Σx per channel, count]
                let mut sums = vec![0.0f64; channels + 1];
                for (i, plane) in planes() {
                    sums[i % channels] += lanes_sum(plane, |x| x);
                }
                sums[channels] = (values.len() / channels.max(1)) as f64;
                if let Some(member) = &member {
                    member.sum(&mut sums);
                }
                let count = sums[channels];
                let mean: Vec<f64> = sums[..channels].iter().map(|s| s / count).collect();
                // Σ(x − μ)² per channel
                let mut squares = vec![0.0f64; channels];
                for (i, plane) in planes() {
                    let mu = mean[i % channels] as Elem;
                    squares[i % channels] += lanes_sum(plane, |x| (x - mu) * (x - mu));
                }
                if let Some(member) = &member {
                    member.sum(&mut squares);
                }
                let var: Vec<f64> = squares.iter().map(|s| s / count).collect();
                let update_running = member
                    .as_ref()
                    .is_none_or(|m| m.is_lead() && m.sums_whole_batch());
                let moments = BatchMoments {
                    mean: mean.clone(),
                    var: var.clone(),
                    count,
                    update_running,
                };
                (mean, var, Some(moments))
            }
        };
        let inv_std: Vec<Elem> = var
            .iter()
            .map(|v| (1.0 / (v + eps).sqrt()) as Elem)
            .collect();
        let mean: Vec<Elem> = mean.iter().map(|&m| m as Elem).collect();
        let (scale, shift): (Vec<Elem>, Vec<Elem>) = match affine {
            Some(affine) => {
                let a = affine.data();
                let a = a.as_standard_layout();
                let a = a.as_slice().expect("standard layout");
                (a[..channels].to_vec(), a[channels..].to_vec())
            }
            None => (vec![1.0; channels], vec![0.0; channels]),
        };
        // y = (x − μ)·a + β per channel, with a = γ/σ (x·a + (β − μ·a) would cancel when μ
        // is large against σ)
        let a: Vec<Elem> = (0..channels).map(|c| scale[c] * inv_std[c]).collect();
        let mut out = tape.scratch(&shape, false);
        let out_values = out.as_slice_mut().expect("a fresh row-major buffer");
        for (i, (o, x)) in (out_values.chunks_mut(inner.max(1)))
            .zip(values.chunks(inner.max(1)))
            .enumerate()
        {
            let c = i % channels;
            let (ac, mu, bc) = (a[c], mean[c], shift[c]);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = (x - mu) * ac + bc;
            }
        }
        let batch_stats = moments.is_some();
        let has_affine = affine.is_some();
        let inputs: Vec<Var<'t>> = std::iter::once(x).chain(affine).collect();
        let y = tape.record("batch_norm", &inputs, out, move |bw| {
            let x = bw.inputs[0].as_slice().expect("contiguous");
            let grad = bw.grad.as_standard_layout();
            let g = grad.as_slice().expect("standard layout");
            // [Σ G·x̂ per channel, Σ G per channel]: ∂L/∂γ and ∂L/∂β of this shard
            let mut sums = vec![0.0f64; 2 * channels];
            for (i, (xs, gs)) in x
                .chunks(inner.max(1))
                .zip(g.chunks(inner.max(1)))
                .enumerate()
            {
                let c = i % channels;
                let (gx, g_sum) = centered_dot_and_sum(xs, gs, mean[c]);
                sums[c] += gx * f64::from(inv_std[c]);
                sums[channels + c] += g_sum;
            }
            let affine_grad = (has_affine && bw.needs[1]).then(|| {
                bw.tape
                    .collect(&[2, channels], sums.iter().map(|&s| s as Elem))
            });
            let dx = bw.needs[0].then(|| {
                let mut dx = bw.tape.scratch(&shape, false);
                let dx_values = dx.as_slice_mut().expect("a fresh row-major buffer");
                if !batch_stats {
                    for (i, (d, gs)) in (dx_values.chunks_mut(inner.max(1)))
                        .zip(g.chunks(inner.max(1)))
                        .enumerate()
                    {
                        let ac = a[i % channels];
                        for (d, &gv) in d.iter_mut().zip(gs) {
                            *d = gv * ac;
                        }
                    }
                    return dx;
                }
                // the whole batch's sums and count, as the forward pass's statistics
                let mut whole = sums.clone();
                whole.push((x.len() / channels.max(1)) as f64);
                if let Some(member) = &member {
                    member.sum(&mut whole);
                }
                let m = whole[2 * channels];
                let mean_gx: Vec<Elem> =
                    whole[..channels].iter().map(|s| (s / m) as Elem).collect();
                let mean_g: Vec<Elem> = (whole[channels..2 * channels].iter())
                    .map(|s| (s / m) as Elem)
                    .collect();
                for (i, ((d, xs), gs)) in (dx_values.chunks_mut(inner.max(1)))
                    .zip(x.chunks(inner.max(1)))
                    .zip(g.chunks(inner.max(1)))
                    .enumerate()
                {
                    let c = i % channels;
                    // a·(G − mean G − x̂·mean(G·x̂)) with x̂ = (x − μ)·is, as
                    // G·a + (x − μ)·k + offset (centred, as the forward)
                    let (ac, mu, is) = (a[c], mean[c], inv_std[c]);
                    let k = -ac * is * mean_gx[c];
                    let offset = -ac * mean_g[c];
                    for ((d, &xv), &gv) in d.iter_mut().zip(xs).zip(gs) {
                        *d = ac * gv + (xv - mu) * k + offset;
                    }
                }
                dx
            });
            [dx, affine_grad]
        });
        (y, moments)
    }
}

/// `Σ f(v)` over a plane, in 8 lanes of f32 (which vectorize) added up in f64: the lanes
/// hold at most a plane's worth of values (an image's pixels), so their rounding stays near
/// f32's, and the totals over the batch are f64.
#[inline(always)]
fn lanes_sum(plane: &[Elem], f: impl Fn(Elem) -> Elem) -> f64 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = plane.chunks_exact(8);
    for chunk in &mut chunks {
        for k in 0..8 {
            lanes[k] += f(chunk[k]);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f64::from(f(v))).sum();
    tail + lanes.iter().map(|&v| f64::from(v)).sum::<f64>()
}

/// `(Σ G·(x − μ), Σ G)` of a plane, in 8 lanes of f32 added up in f64 (as
/// [`lanes_sum`]).
fn centered_dot_and_sum(xs: &[Elem], gs: &[Elem], mu: Elem) -> (f64, f64) {
    let (mut dot, mut sum) = ([0.0f32; 8], [0.0f32; 8]);
    let mut x_chunks = xs.chunks_exact(8);
    let mut g_chunks = gs.chunks_exact(8);
    for (xc, gc) in (&mut x_chunks).zip(&mut g_chunks) {
        for k in 0..8 {
            dot[k] += gc[k] * (xc[k] - mu);
            sum[k] += gc[k];
        }
    }
    let (mut t1, mut t2) = (0.0f64, 0.0f64);
    for (&xv, &gv) in x_chunks.remainder().iter().zip(g_chunks.remainder()) {
        t1 += f64::from(gv) * f64::from(xv - mu);
        t2 += f64::from(gv);
    }
    let lanes = |s: [f32; 8]| s.iter().map(|&v| f64::from(v)).sum::<f64>();
    (t1 + lanes(dot), t2 + lanes(sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::tensor::Tensor;
    use crate::{Tape, gradcheck};

    /// The definition, element by element, with statistics in f64.
    fn naive(x: &Tensor, gamma: &[f32], beta: &[f32], eps: f64) -> Tensor {
        let c = x.shape()[1];
        let inner: usize = x.shape()[2..].iter().product();
        let v = x.as_slice().unwrap();
        let mut out = v.to_vec();
        for ch in 0..c {
            let idx: Vec<usize> = (0..v.len()).filter(|i| (i / inner) % c == ch).collect();
            let m = idx.iter().map(|&i| v[i] as f64).sum::<f64>() / idx.len() as f64;
            let var =
                idx.iter().map(|&i| (v[i] as f64 - m).powi(2)).sum::<f64>() / idx.len() as f64;
            for &i in &idx {
                out[i] = (gamma[ch] as f64 * (v[i] as f64 - m) / (var + eps).sqrt()
                    + beta[ch] as f64) as f32;
            }
        }
        Tensor::from_shape_vec(x.raw_dim(), out).unwrap()
    }

    #[test]
    fn batch_statistics_normalize_every_channel_as_the_definition() {
        for shape in [vec![5, 3], vec![2, 3, 4], vec![3, 2, 3, 2]] {
            let x = random(&shape, 1);
            let c = shape[1];
            let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
            let beta: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
            let tape = Tape::new();
            let affine = tape.constant(
                Tensor::from_shape_vec(
                    ndarray::IxDyn(&[2, c]),
                    [gamma.clone(), beta.clone()].concat(),
                )
                .unwrap(),
            );
            let (y, moments) =
                tape.constant(x.clone())
                    .batch_norm(Some(affine), NormStats::Batch, 1e-5);
            let want = naive(&x, &gamma, &beta, 1e-5);
            for (a, b) in y.value().iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-5, "{shape:?}: {a} vs {b}");
            }
            let moments = moments.unwrap();
            assert_eq!(moments.count, (x.len() / c) as f64);
            assert!(moments.update_running);
        }
    }

    #[test]
    fn a_mean_far_above_the_spread_keeps_the_statistics_and_output_accurate() {
        // values 998..1002 (mean ~870 times the spread): Σx² − n·μ² gave a variance 8e-4 off
        let x = random(&[8, 2, 4, 4], 3).mapv(|v| 1000.0 + 2.0 * v);
        let (gamma, beta) = ([1.5, 0.5], [0.25, -1.0]);
        let tape = Tape::new();
        let affine = tape.constant(
            Tensor::from_shape_vec(ndarray::IxDyn(&[2, 2]), [gamma, beta].concat()).unwrap(),
        );
        let (y, moments) =
            tape.constant(x.clone())
                .batch_norm(Some(affine), NormStats::Batch, 1e-5);
        let want = naive(&x, &gamma, &beta, 1e-5);
        let worst =
            (y.value().iter().zip(want.iter())).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-4, "largest error {worst}");
        let v = x.as_slice().unwrap();
        for (c, &var) in moments.unwrap().var.iter().enumerate() {
            let values: Vec<f64> = (0..v.len())
                .filter(|i| (i / 16) % 2 == c)
                .map(|i| f64::from(v[i]))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let exact =
                values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64;
            assert!(
                ((var - exact) / exact).abs() < 1e-5,
                "channel {c}: {var} vs {exact}"
            );
        }
    }

    #[test]
    fn gradcheck_batch_norm_with_batch_and_fixed_statistics() {
        for (case, shape) in [vec![6, 3], vec![3, 2, 5], vec![2, 3, 3, 2]]
            .into_iter()
            .enumerate()
        {
            let c = shape[1];
            let seed = case as u64;
            let affine = random(&[2, c], 10 + seed);
            gradcheck(
                |v| v[0].batch_norm(Some(v[1]), NormStats::Batch, 1e-3).0,
                &[random(&shape, seed), affine.clone()],
            )
            .unwrap_or_else(|e| panic!("batch, affine, {shape:?}: {e}"));
            gradcheck(
                |v| v[0].batch_norm(None, NormStats::Batch, 1e-3).0,
                &[random(&shape, 20 + seed)],
            )
            .unwrap_or_else(|e| panic!("batch, no affine, {shape:?}: {e}"));
            let mean: Vec<f32> = (0..c).map(|i| 0.3 * i as f32 - 0.2).collect();
            let var: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
            gradcheck(
                |v| {
                    let stats = NormStats::Fixed {
                        mean: &mean,
                        var: &var,
                    };
                    v[0].batch_norm(Some(v[1]), stats, 1e-5).0
                },
                &[random(&shape, 30 + seed), affine],
            )
            .unwrap_or_else(|e| panic!("fixed, {shape:?}: {e}"));
        }
    }

    #[test]
    fn fixed_statistics_are_a_per_channel_affine_map() {
        let tape = Tape::new();
        let x = tape.constant(crate::autograd::ops::t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
        let stats = NormStats::Fixed {
            mean: &[1.0, 0.0],
            var: &[4.0, 1.0],
        };
        let (y, moments) = x.batch_norm(None, stats, 0.0);
        assert_eq!(y.value().as_slice().unwrap(), &[0.0, 2.0, 1.0, 4.0]);
        assert!(moments.is_none());
    }
}
