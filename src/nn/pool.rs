//! Pooling layers over NCHW images: [`MaxPool2d`], [`AvgPool2d`] and global average
//! pooling [`AdaptiveAvgPool2d`] (PyTorch's `nn.MaxPool2d`, `nn.AvgPool2d`,
//! `nn.AdaptiveAvgPool2d(1)`). None has parameters.
//!
//! # Shapes
//! `[N, C, H, W] -> [N, C, OH, OW]` with `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1` (`OW` alike), and
//! `[N, C, H, W] -> [N, C, 1, 1]` for global pooling.

use crate::autograd::Var;
use crate::autograd::ops::conv::output_len;
use crate::error::{Error, Result};
use crate::nn::module::{Fusable, Mode, Module};
use crate::nn::shape::{Spatial, shape_error, windowed_shape};

/// Kernel, stride and padding of a pooling layer, checked as PyTorch checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

impl Window {
    fn new(
        op: &'static str,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self> {
        if kernel.contains(&0) || stride.contains(&0) {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "kernel and stride must be positive, got kernel {kernel:?}, stride {stride:?}"
                ),
            });
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "padding must be at most half the kernel, got padding {padding:?}, kernel \
                     {kernel:?}"
                ),
            });
        }
        Ok(Window {
            kernel,
            stride,
            padding,
        })
    }

    /// `[OH, OW]` for an input of `[H, W]`, `None` when the kernel exceeds the padded image.
    fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let axis = |a| output_len(input[a], self.kernel[a], self.stride[a], self.padding[a], 1);
        Some([axis(0)?, axis(1)?])
    }

    /// The window as [`Module::spatial`] reports it (no dilation).
    fn spatial(&self) -> Spatial {
        Spatial::Window(crate::nn::Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: [1, 1],
        })
    }

    /// `[N, C, H, W] -> [N, C, OH, OW]`, checked.
    fn output_shape(&self, op: &'static str, input: &[usize]) -> Result<Vec<usize>> {
        let Spatial::Window(window) = self.spatial() else {
            unreachable!("a pooling window is a window")
        };
        windowed_shape(op, window, None, input)
    }

    fn describe(&self, name: &str) -> String {
        let [k, s, p] = [self.kernel, self.stride, self.padding];
        format!(
            "{name}(kernel_size=({}, {}), stride=({}, {}), padding=({}, {}))",
            k[0], k[1], s[0], s[1], p[0], p[1]
        )
    }
}

/// The reduction a [`Pool2d`] takes over each window: [`Max`] or [`Avg`].
///
/// # Examples
/// ```
/// use tapegrad::{Avg, Max, PoolKind};
/// assert_eq!(Max::NAME, "MaxPool2d");
/// assert_eq!(Avg::OP, "avg_pool2d");
/// ```
pub trait PoolKind: Copy + std::fmt::Debug + Eq + Send + Sync + 'static {
    /// The layer's name in PyTorch, e.g. `MaxPool2d`.
    const NAME: &'static str;
    /// The functional op's name in messages, e.g. `max_pool2d`.
    const OP: &'static str;
    /// What a 2×2, stride-2, unpadded pooling of this kind can fuse with
    /// ([`Module::fusable`]); `None` by default.
    const FUSABLE_2X2: Option<Fusable> = None;

    /// Records the pooling of `x` on its tape ([`Var::max_pool2d`] or [`Var::avg_pool2d`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Avg, Max, PoolKind, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[1, 1, 2, 2])?);
    /// assert_eq!(Max::pool(x, [2, 2], [2, 2], [0, 0]).item(), 6.0);
    /// assert_eq!(Avg::pool(x, [2, 2], [2, 2], [0, 0]).item(), 3.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn pool<'t>(x: Var<'t>, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2])
    -> Var<'t>;
}

/// The maximum of each window ([`MaxPool2d`]).
///
/// # Examples
/// ```
/// use tapegrad::{Max, MaxPool2d, Pool2d};
/// let pool: Pool2d<Max> = MaxPool2d::new(2)?;
/// assert_eq!(pool.output_size([4, 4]), Some([2, 2]));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Max;

impl PoolKind for Max {
    const NAME: &'static str = "MaxPool2d";
    const OP: &'static str = "max_pool2d";
    const FUSABLE_2X2: Option<Fusable> = Some(Fusable::MaxPool2x2);

    #[track_caller]
    fn pool<'t>(
        x: Var<'t>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Var<'t> {
        x.max_pool2d(kernel, stride, padding)
    }
}

/// The mean of each window, padding counted as zeros ([`AvgPool2d`]).
///
/// # Examples
/// ```
/// use tapegrad::{Avg, AvgPool2d, Pool2d};
/// let pool: Pool2d<Avg> = AvgPool2d::new(2)?;
/// assert_eq!(pool.output_size([4, 6]), Some([2, 3]));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avg;

impl PoolKind for Avg {
    const NAME: &'static str = "AvgPool2d";
    const OP: &'static str = "avg_pool2d";

    #[track_caller]
    fn pool<'t>(
        x: Var<'t>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Var<'t> {
        x.avg_pool2d(kernel, stride, padding)
    }
}

/// A pooling layer: a `kh × kw` window moved by a stride over each feature map, reduced by
/// `K` ([`Max`] or [`Avg`]); use it as [`MaxPool2d`] or [`AvgPool2d`].
///
/// # Shapes
/// `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1`, `OW` alike.
///
/// # Examples
/// ```
/// use tapegrad::{AvgPool2d, MaxPool2d, Module};
/// assert_eq!(MaxPool2d::new(2)?.describe(), "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
/// assert_eq!(AvgPool2d::new(2)?.output_shape(&[8, 3, 28, 28])?, [8, 3, 14, 14]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d<K: PoolKind> {
    window: Window,
    kind: std::marker::PhantomData<K>,
}

/// Max pooling (`torch.nn.MaxPool2d(kernel_size, stride, padding)`): each output is the
/// largest input of its window, and the gradient goes to that input (the first one on a
/// tie, as PyTorch). See [`Var::max_pool2d`] for the formula.
///
/// Pooling keeps the strongest response of each feature map in a neighbourhood, so the
/// output changes little when the input shifts by less than the window (LeCun et al. 1998,
/// <https://doi.org/10.1109/5.726791>; max pooling as in Ranzato et al. 2007).
///
/// # Shapes
/// `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1`, `OW` alike.
///
/// # Panics
/// `forward` panics (from [`Var::max_pool2d`]) on an input that is not 4-D or smaller than
/// the kernel after padding.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, MaxPool2d, Mode, Module, Tape};
/// let pool = MaxPool2d::new(2)?; // kernel 2×2, stride 2, as nn.MaxPool2d(2)
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?);
/// let y = pool.forward(x, Mode::Eval);
/// assert_eq!(y.value().as_slice().unwrap(), &[5.0, 7.0, 13.0, 15.0]);
/// assert_eq!(pool.output_size([28, 28]), Some([14, 14]));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type MaxPool2d = Pool2d<Max>;

/// Average pooling (`torch.nn.AvgPool2d(kernel_size, stride, padding)` with PyTorch's
/// default `count_include_pad=True`): each output is the mean of its `kh × kw` window, the
/// padding counted as zeros. See [`Var::avg_pool2d`] for the formula.
///
/// # Shapes
/// `[N, C, H, W] -> [N, C, OH, OW]`, `OH = ⌊(H + 2·ph − kh)/sh⌋ + 1`, `OW` alike.
///
/// # Panics
/// As [`MaxPool2d`] (from [`Var::avg_pool2d`]).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, AvgPool2d, Mode, Module, Tape};
/// let pool = AvgPool2d::new(2)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?);
/// let y = pool.forward(x, Mode::Eval);
/// assert_eq!(y.value().as_slice().unwrap(), &[2.5, 4.5, 10.5, 12.5]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type AvgPool2d = Pool2d<Avg>;

impl<K: PoolKind> Pool2d<K> {
    /// A `kernel × kernel` window moved by `kernel` (no overlap), no padding, as
    /// `nn.MaxPool2d(kernel)` or `nn.AvgPool2d(kernel)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `kernel` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{AvgPool2d, MaxPool2d};
    /// let pool = MaxPool2d::new(2)?;
    /// assert_eq!(pool.output_size([28, 28]), Some([14, 14]));
    /// assert_eq!(AvgPool2d::new(4)?.output_size([8, 12]), Some([2, 3]));
    /// assert!(MaxPool2d::new(0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(kernel: usize) -> Result<Self> {
        Self::with_options([kernel; 2], [kernel; 2], [0; 2])
    }

    /// A `kernel = [kh, kw]` window moved by `stride`, over an image with `padding` added on
    /// each side (for max pooling padding never wins the max; for average pooling it counts
    /// as zeros in the mean).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a kernel side or stride is 0, or the padding is more
    /// than half the kernel (PyTorch's rule): `max_pool2d: padding must be at most half the
    /// kernel, got padding [2, 2], kernel [3, 3]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, AvgPool2d, MaxPool2d, Mode, Module, Tape};
    /// // the overlapping 3×3/2 pooling of AlexNet
    /// let pool = MaxPool2d::with_options([3, 3], [2, 2], [1, 1])?;
    /// assert_eq!(pool.output_size([56, 56]), Some([28, 28]));
    /// assert!(MaxPool2d::with_options([3, 3], [2, 2], [2, 2]).is_err());
    /// let avg = AvgPool2d::with_options([3, 3], [1, 1], [1, 1])?;
    /// let tape = Tape::new();
    /// let y = avg.forward(tape.constant(tensor::ones(&[1, 1, 3, 3])), Mode::Eval);
    /// assert_eq!(y.value()[[0, 0, 1, 1]], 1.0);
    /// assert_eq!(y.value()[[0, 0, 0, 0]], 4.0 / 9.0); // 4 pixels and 5 zeros of padding
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_options(
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self> {
        Ok(Pool2d {
            window: Window::new(K::OP, kernel, stride, padding)?,
            kind: std::marker::PhantomData,
        })
    }

    /// The output's `[OH, OW]` for an input of `[H, W]`, or `None` when the kernel is
    /// larger than the padded image.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{AvgPool2d, MaxPool2d};
    /// let pool = MaxPool2d::new(3)?;
    /// assert_eq!(pool.output_size([7, 7]), Some([2, 2])); // ⌊(7 − 3)/3⌋ + 1
    /// assert_eq!(pool.output_size([2, 2]), None);
    /// let padded = AvgPool2d::with_options([3, 3], [1, 1], [1, 1])?;
    /// assert_eq!(padded.output_size([5, 5]), Some([5, 5])); // padded by one: same size
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.window.output_size(input)
    }
}

impl<K: PoolKind> Module for Pool2d<K> {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let w = self.window;
        K::pool(x, w.kernel, w.stride, w.padding)
    }

    crate::walk!();

    fn describe(&self) -> String {
        self.window.describe(K::NAME)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.window.output_shape(K::OP, input)
    }

    fn spatial(&self) -> Spatial {
        self.window.spatial()
    }

    fn fusable(&self) -> Option<Fusable> {
        let w = self.window;
        let two_by_two = w.kernel == [2, 2] && w.stride == [2, 2] && w.padding == [0, 0];
        K::FUSABLE_2X2.filter(|_| two_by_two)
    }
}

/// Global average pooling, `torch.nn.AdaptiveAvgPool2d(1)`: the mean of each feature map,
/// `y[n, c, 0, 0] = (1/(H·W)) · Σ_{i, j} x[n, c, i, j]`, for images of any size (Lin et al.
/// 2013, "Network in network", <https://arxiv.org/abs/1312.4400>). It is
/// [`Var::mean_axes`] over the two image axes, so its gradient is that of the mean:
/// `G[n, c]/(H·W)` to every pixel.
///
/// Only the 1×1 output size of PyTorch's adaptive pooling is provided.
///
/// # Shapes
/// `[N, C, H, W] -> [N, C, 1, 1]` (follow it with a [`Flatten`](crate::Flatten) for
/// `[N, C]`).
///
/// # Panics
/// `forward` panics if the input is not 4-D:
/// `adaptive_avg_pool2d: expected a 4-D input [N, C, H, W]; x shape [2, 3]`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, AdaptiveAvgPool2d, Mode, Module, Tape};
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec((0..8).map(|v| v as f32).collect(), &[1, 2, 2, 2])?);
/// let y = AdaptiveAvgPool2d.forward(x, Mode::Eval);
/// assert_eq!(y.shape(), [1, 2, 1, 1]);
/// assert_eq!(y.value().as_slice().unwrap(), &[1.5, 5.5]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d;

impl Module for AdaptiveAvgPool2d {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let shape = x.shape();
        assert!(
            shape.len() == 4,
            "adaptive_avg_pool2d: expected a 4-D input [N, C, H, W]; x shape {shape:?}"
        );
        x.mean_axes(&[2, 3], true)
    }

    crate::walk!();

    fn describe(&self) -> String {
        "AdaptiveAvgPool2d(output_size=1)".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input {
            &[n, c, _, _] => Ok(vec![n, c, 1, 1]),
            _ => Err(shape_error(
                "adaptive_avg_pool2d",
                "a 4-D input [N, C, H, W]".into(),
                input,
            )),
        }
    }

    fn spatial(&self) -> Spatial {
        Spatial::Global
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, gradcheck};

    #[test]
    fn layers_apply_their_ops_and_gradcheck() {
        let x = random(&[2, 3, 6, 5], 1);
        let max = MaxPool2d::with_options([3, 2], [2, 1], [1, 1]).unwrap();
        let avg = AvgPool2d::with_options([3, 3], [2, 2], [1, 0]).unwrap();
        let tape = Tape::new();
        let xv = tape.constant(x.clone());
        assert_eq!(
            max.forward(xv, Mode::Train).value(),
            xv.max_pool2d([3, 2], [2, 1], [1, 1]).value()
        );
        assert_eq!(max.output_size([6, 5]), Some([3, 6]));
        assert_eq!(max.forward(xv, Mode::Train).shape(), [2, 3, 3, 6]);
        assert_eq!(avg.forward(xv, Mode::Train).shape(), [2, 3, 3, 2]);
        gradcheck(|v| avg.forward(v[0], Mode::Train), std::slice::from_ref(&x)).unwrap();
        gradcheck(|v| AdaptiveAvgPool2d.forward(v[0], Mode::Train), &[x]).unwrap();
        let one = random(&[1, 2, 3, 3], 2);
        gradcheck(|v| AdaptiveAvgPool2d.forward(v[0], Mode::Train), &[one]).unwrap();
    }

    #[test]
    fn global_average_is_the_mean_of_each_map() {
        let x = random(&[2, 3, 4, 5], 3);
        let tape = Tape::new();
        let y = AdaptiveAvgPool2d
            .forward(tape.constant(x.clone()), Mode::Eval)
            .value();
        for (n, c) in [(0, 0), (1, 2)] {
            let mean = x.slice(ndarray::s![n, c, .., ..]).mean().unwrap();
            assert!((y[[n, c, 0, 0]] - mean).abs() < 1e-6);
        }
    }

    #[test]
    fn settings_are_checked_and_described() {
        let err = MaxPool2d::with_options([3, 3], [2, 2], [2, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_pool2d: padding must be at most half the kernel, got padding [2, 1], kernel [3, 3]"
        );
        assert!(MaxPool2d::new(0).is_err());
        assert!(AvgPool2d::with_options([2, 2], [0, 1], [0, 0]).is_err());
        assert_eq!(
            MaxPool2d::new(2).unwrap().describe(),
            "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
        );
        assert_eq!(
            AdaptiveAvgPool2d.describe(),
            "AdaptiveAvgPool2d(output_size=1)"
        );
        assert_eq!(AvgPool2d::new(3).unwrap().num_params(), 0);
    }

    #[test]
    #[should_panic(
        expected = "adaptive_avg_pool2d: expected a 4-D input [N, C, H, W]; x shape [2, 3]"
    )]
    fn global_pooling_of_rows_panics() {
        let tape = Tape::new();
        let _ = AdaptiveAvgPool2d.forward(tape.constant(random(&[2, 3], 0)), Mode::Eval);
    }
}
