//! The resizing layer [`Upsample`] (`nn.Upsample`): nearest-neighbour or bilinear
//! interpolation of NCHW images to whole multiples of their size or to a given size. It has
//! no parameters.
//!
//! # Shapes
//! `[N, C, H, W] -> [N, C, OH, OW]`, `OH = H·sh` for a scale factor, or the size asked for.

use crate::autograd::Var;
use crate::autograd::ops::upsample::Resize;
use crate::error::Result;
use crate::nn::module::{Mode, Module};
use crate::nn::shape::{Spatial, shape_error};

/// How [`Upsample`] interpolates: PyTorch's `mode="nearest"` or `mode="bilinear"` (with
/// `align_corners=False`, its default).
///
/// # Examples
/// ```
/// use tapegrad::UpsampleMode;
/// assert_eq!(UpsampleMode::default(), UpsampleMode::Nearest);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UpsampleMode {
    /// Each output copies the input pixel it falls in ([`Var::upsample_nearest2d`]).
    #[default]
    Nearest,
    /// Each output is the weighted mean of the 2×2 input pixels around its center
    /// ([`Var::upsample_bilinear2d`]).
    Bilinear,
}

/// An upsampling layer (`torch.nn.Upsample(size=None, scale_factor=None, mode="nearest")`):
/// each image resized by whole scale factors or to a size ([`Resize`]), by nearest-neighbour
/// or bilinear interpolation ([`UpsampleMode`]). Followed by a [`Conv2d`](crate::Conv2d), it
/// is the "resize-convolution" that Odena et al. recommend over a strided transposed
/// convolution, whose overlapping kernels draw checkerboard patterns (Distill 2016,
/// <https://distill.pub/2016/deconv-checkerboard/>).
///
/// It has no parameters, and like a convolution no fixed input width. Its output pixels sit
/// a fraction of an input pixel apart, which the receptive-field recurrence (whole jumps)
/// cannot follow: its [`Module::spatial`] is [`Spatial::Flat`], where the report ends.
///
/// # Shapes
/// `[N, C, H, W] -> [N, C, OH, OW]` ([`Resize::output_size`]).
///
/// # Panics
/// `forward` panics (from [`Var::upsample_nearest2d`] or [`Var::upsample_bilinear2d`]) when
/// the input is not 4-D or is empty.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Resize, Tape, Upsample, UpsampleMode};
/// let up = Upsample::new(Resize::Scale([2, 2]), UpsampleMode::Nearest)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 1, 1, 2])?);
/// let y = up.forward(x, Mode::Eval);
/// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// assert_eq!(up.output_shape(&[8, 16, 7, 7])?, [8, 16, 14, 14]);
/// assert_eq!(up.describe(), "Upsample(scale_factor=2.0, mode='nearest')");
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upsample {
    resize: Resize,
    mode: UpsampleMode,
}

impl Upsample {
    /// A layer that resizes by `resize` with `mode`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a scale factor or a
    /// size of 0 ([`Resize::check`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Resize, Upsample, UpsampleMode};
    /// let up = Upsample::new(Resize::Size([28, 28]), UpsampleMode::Bilinear)?;
    /// assert_eq!(up.output_size([7, 7]), Some([28, 28]));
    /// assert!(Upsample::new(Resize::Scale([2, 0]), UpsampleMode::Nearest).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(resize: Resize, mode: UpsampleMode) -> Result<Self> {
        resize.check()?;
        Ok(Upsample { resize, mode })
    }

    /// The output size asked for.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Resize, Upsample, UpsampleMode};
    /// let up = Upsample::new(Resize::Scale([2, 3]), UpsampleMode::Nearest)?;
    /// assert_eq!(up.resize(), Resize::Scale([2, 3]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn resize(&self) -> Resize {
        self.resize
    }

    /// The interpolation.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Resize, Upsample, UpsampleMode};
    /// let up = Upsample::new(Resize::Scale([2, 2]), UpsampleMode::Bilinear)?;
    /// assert_eq!(up.mode(), UpsampleMode::Bilinear);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn mode(&self) -> UpsampleMode {
        self.mode
    }

    /// The output's `[OH, OW]` for an input image of `[H, W]`, or `None` for an empty
    /// image ([`Resize::output_size`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Resize, Upsample, UpsampleMode};
    /// let up = Upsample::new(Resize::Scale([2, 2]), UpsampleMode::Nearest)?;
    /// assert_eq!(up.output_size([7, 5]), Some([14, 10]));
    /// assert_eq!(up.output_size([0, 5]), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.resize.output_size(input)
    }
}

impl Module for Upsample {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        match self.mode {
            UpsampleMode::Nearest => x.upsample_nearest2d(self.resize),
            UpsampleMode::Bilinear => x.upsample_bilinear2d(self.resize),
        }
    }

    crate::walk!();

    /// PyTorch's `repr`: `Upsample(scale_factor=2.0, mode='nearest')`,
    /// `Upsample(scale_factor=(2.0, 3.0), mode='bilinear')` or
    /// `Upsample(size=(28, 28), mode='nearest')`.
    fn describe(&self) -> String {
        let size = match self.resize {
            Resize::Scale([sh, sw]) if sh == sw => format!("scale_factor={sh}.0"),
            Resize::Scale([sh, sw]) => format!("scale_factor=({sh}.0, {sw}.0)"),
            Resize::Size([h, w]) => format!("size=({h}, {w})"),
        };
        let mode = match self.mode {
            UpsampleMode::Nearest => "nearest",
            UpsampleMode::Bilinear => "bilinear",
        };
        format!("Upsample({size}, mode='{mode}')")
    }

    /// `[N, C, H, W] -> [N, C, OH, OW]`; an error for another rank or an empty image.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let size = match input {
            [_, _, h, w] => self.output_size([*h, *w]),
            _ => None,
        };
        let Some([oh, ow]) = size else {
            let expected = "a 4-D input [N, C, H, W] with H, W > 0".to_string();
            return Err(shape_error("upsample", expected, input));
        };
        Ok(vec![input[0], input[1], oh, ow])
    }

    /// [`Spatial::Flat`]: the outputs sit a fraction of an input pixel apart, which the
    /// receptive-field recurrence of whole jumps does not describe, so the report ends here.
    fn spatial(&self) -> Spatial {
        Spatial::Flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{Tape, gradcheck};

    #[test]
    fn the_layer_runs_its_modes_op_and_gradchecks() {
        let x = random(&[2, 3, 3, 2], 1);
        for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
            let up = Upsample::new(Resize::Scale([2, 3]), mode).unwrap();
            gradcheck(|v| up.forward(v[0], Mode::Train), std::slice::from_ref(&x)).unwrap();
            let tape = Tape::new();
            let xv = tape.constant(x.clone());
            let by_op = match mode {
                UpsampleMode::Nearest => xv.upsample_nearest2d(Resize::Scale([2, 3])),
                UpsampleMode::Bilinear => xv.upsample_bilinear2d(Resize::Scale([2, 3])),
            };
            assert_eq!(up.forward(xv, Mode::Eval).value(), by_op.value());
            assert_eq!(up.num_params(), 0);
        }
    }

    #[test]
    fn describe_and_output_shape_follow_pytorch() {
        let bilinear = Upsample::new(Resize::Scale([2, 3]), UpsampleMode::Bilinear).unwrap();
        assert_eq!(
            bilinear.describe(),
            "Upsample(scale_factor=(2.0, 3.0), mode='bilinear')"
        );
        let sized = Upsample::new(Resize::Size([3, 4]), UpsampleMode::Nearest).unwrap();
        assert_eq!(sized.describe(), "Upsample(size=(3, 4), mode='nearest')");
        assert_eq!(sized.output_shape(&[2, 5, 9, 9]).unwrap(), [2, 5, 3, 4]);
        assert_eq!(
            sized.output_shape(&[2, 9, 9]).unwrap_err().to_string(),
            "upsample: expected a 4-D input [N, C, H, W] with H, W > 0, found [2, 9, 9]"
        );
        assert!(bilinear.output_shape(&[2, 5, 0, 9]).is_err());
        assert_eq!(sized.spatial(), Spatial::Flat);
    }

    #[test]
    fn zero_factors_and_sizes_are_errors() {
        let err = Upsample::new(Resize::Size([0, 4]), UpsampleMode::Nearest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upsample: sizes must be positive, got [0, 4]"
        );
        assert!(Upsample::new(Resize::Scale([1, 0]), UpsampleMode::Bilinear).is_err());
        // a factor of 1 is the identity
        let same = Upsample::new(Resize::Scale([1, 1]), UpsampleMode::Bilinear).unwrap();
        let tape = Tape::new();
        let x = random(&[1, 2, 3, 4], 2);
        assert_eq!(
            same.forward(tape.constant(x.clone()), Mode::Eval).value(),
            x
        );
    }
}
