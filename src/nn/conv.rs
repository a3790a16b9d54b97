//! The 2-D convolution layer [`Conv2d`] (`nn.Conv2d`): filters `[out, in/groups, kh, kw]`
//! slid over NCHW images, plus a bias per output channel.
//!
//! # Shapes
//! `x: [N, in, H, W]`, `W: [out, in/groups, kh, kw]`, `b: [out]`, `y: [N, out, OH, OW]`,
//! `OH = ⌊(H + 2·ph − dh·(kh − 1) − 1)/sh⌋ + 1` (and `OW` alike).

use crate::autograd::Var;
use crate::autograd::ops::conv::Conv2dOptions;
use crate::error::{Error, Result};
use crate::nn::init::{Init, default_bias, fans_grouped};
use crate::nn::module::{Mode, Module};
use crate::nn::shape::{Spatial, Window, windowed_shape};
use crate::param::Param;
use crate::tensor::Tensor;
use rand::Rng;

/// A 2-D convolution layer (`torch.nn.Conv2d`), `y = conv2d(x, W) + b`: see
/// [`Var::conv2d`] for the formula, the backward rule and the shapes, and
/// [`Conv2dOptions`] for stride, zero padding, dilation and groups.
///
/// The weight is stored `[out, in/groups, kh, kw]` and the bias `[out]`, as in PyTorch, so
/// initializers, fans and exported weights mean the same as there. Parameters are named
/// `"weight"` ([`Role::Weight`](crate::Role::Weight)) and `"bias"`
/// ([`Role::Bias`](crate::Role::Bias)).
///
/// A convolution has no fixed input *width* (its last axis is the image width), so
/// [`Module::in_features`] and [`Module::out_features`] are `None`: a
/// [`Sequential`](crate::Sequential) checks the widths of the `Linear` layers after a
/// [`Flatten`](crate::Flatten) and passes convolutions through. The channels are
/// [`Conv2d::in_channels`] and [`Conv2d::out_channels`].
///
/// # Shapes
/// `[N, in, H, W] -> [N, out, OH, OW]`.
///
/// # Panics
/// `forward` panics (from [`Var::conv2d`]) when the input is not 4-D, has not `in`
/// channels, or is smaller than the (dilated) kernel after padding.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Conv2d, Conv2dOptions, Mode, Module, Tape};
/// // one 2×2 filter of ones, bias 1, padding 1: each output is 1 + the sum of its window
/// let conv = Conv2d::from_parts(
///     tensor::ones(&[1, 1, 2, 2]),
///     Some(tensor::ones(&[1])),
///     Conv2dOptions::default().padding(1),
/// )?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?);
/// let y = conv.forward(x, Mode::Eval);
/// assert_eq!(y.shape(), [1, 1, 3, 3]);
/// assert_eq!(y.value()[[0, 0, 1, 1]], 11.0); // 1 + (1 + 2 + 3 + 4)
/// assert_eq!(y.value()[[0, 0, 0, 0]], 2.0); // 1 + x[0, 0], the rest is padding
/// assert_eq!(conv.describe(), "Conv2d(1, 1, kernel_size=(2, 2), stride=(1, 1), padding=(1, 1))");
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Param,
    bias: Option<Param>,
    options: Conv2dOptions,
}

impl Conv2d {
    /// A layer from `in_channels` to `out_channels` with a `kernel_size = [kh, kw]` kernel
    /// and a bias; the weight `[out, in/groups, kh, kw]` is drawn by `init` with
    /// `fan_in = in/groups·kh·kw` and `fan_out = out/groups·kh·kw` ([`fans_grouped`]).
    ///
    /// The bias is drawn as PyTorch's `nn.Conv2d` draws it, whatever `init` is:
    /// `b ~ U(−1/√fan_in, 1/√fan_in)`. With [`Init::default`] (`kaiming_uniform_(a=√5)`)
    /// the weight is `U(−1/√fan_in, 1/√fan_in)` too, so `Conv2d::new(1, 32, [3, 3],
    /// options, Init::default(), rng)` is PyTorch's default `nn.Conv2d(1, 32, 3, ...)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a channel count, kernel side, stride, dilation or the
    /// number of groups is 0, `groups` does not divide both channel counts, or `init`
    /// rejects its parameters: `conv2d: groups 3 must divide in_channels 4 and
    /// out_channels 6`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Conv2d, Conv2dOptions, Init, Module, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let conv = Conv2d::new(32, 64, [3, 3], Conv2dOptions::default().padding(1), Init::default(), &mut rng)?;
    /// assert_eq!(conv.weight().value().shape(), &[64, 32, 3, 3]);
    /// assert_eq!(conv.num_params(), 64 * 32 * 9 + 64);
    /// let bound = 1.0 / (32.0 * 9.0f32).sqrt(); // 1/√fan_in
    /// assert!(conv.weight().value().iter().all(|w| w.abs() <= bound));
    /// // a depthwise convolution: one 3×3 filter per channel
    /// let depthwise = Conv2d::new(8, 8, [3, 3], Conv2dOptions::default().groups(8), Init::default(), &mut rng)?;
    /// assert_eq!(depthwise.weight().value().shape(), &[8, 1, 3, 3]);
    /// assert!(Conv2d::new(4, 6, [3, 3], Conv2dOptions::default().groups(3), Init::default(), &mut rng).is_err());
    /// let err = Conv2d::new(1, 0, [3, 3], Conv2dOptions::default(), Init::default(), &mut rng);
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     "conv2d: channel counts must be positive, got in_channels 1 and out_channels 0"
    /// );
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: Conv2dOptions,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let mut layer =
            Self::new_no_bias(in_channels, out_channels, kernel_size, options, init, rng)?;
        let (fan_in, fan_out) = fans_grouped(layer.weight.value().shape(), options.groups)?;
        layer.bias = Some(default_bias(out_channels, fan_in, fan_out, rng)?);
        Ok(layer)
    }

    /// Like [`Conv2d::new`], without a bias (`nn.Conv2d(.., bias=False)`, as before a batch
    /// normalization).
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Conv2d, Conv2dOptions, Init, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let conv = Conv2d::new_no_bias(3, 16, [5, 5], Conv2dOptions::default(), Init::XavierUniform { gain: 1.0 }, &mut rng)?;
    /// assert!(conv.bias().is_none());
    /// // Xavier-uniform bound √(6/(fan_in + fan_out)) = √(6/(75 + 400))
    /// assert!(conv.weight().value().iter().all(|w| w.abs() <= (6.0f32 / 475.0).sqrt()));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new_no_bias<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: Conv2dOptions,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if in_channels == 0 || out_channels == 0 {
            return Err(Error::InvalidArgument {
                op: "conv2d",
                message: format!(
                    "channel counts must be positive, got in_channels {in_channels} and \
                     out_channels {out_channels}"
                ),
            });
        }
        let groups = options.groups;
        if groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
        {
            return Err(Error::InvalidArgument {
                op: "conv2d",
                message: format!(
                    "groups {groups} must divide in_channels {in_channels} and out_channels \
                     {out_channels}"
                ),
            });
        }
        let shape = [
            out_channels,
            in_channels / groups,
            kernel_size[0],
            kernel_size[1],
        ];
        check_options(&shape, options)?;
        let (fan_in, fan_out) = fans_grouped(&shape, groups)?;
        let weight = init.sample(&shape, fan_in, fan_out, rng)?;
        Ok(Conv2d {
            weight: Param::weight(weight),
            bias: None,
            options,
        })
    }

    /// A layer with known weights: `weight` is `[out, in/groups, kh, kw]`, `bias` (if any)
    /// is `[out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `weight` is not 4-D with every side positive, or `bias` is not
    /// `[out]`; [`Error::InvalidArgument`] if a stride or dilation is 0 or `groups` is 0 or
    /// does not divide `out`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[4, 2, 3, 3]), None, Conv2dOptions::default().groups(2))?;
    /// assert_eq!((conv.in_channels(), conv.out_channels()), (4, 4));
    /// let err = Conv2d::from_parts(tensor::ones(&[4, 2, 3, 3]), Some(tensor::ones(&[2])), Conv2dOptions::default());
    /// assert_eq!(err.unwrap_err().to_string(), "conv2d: expected bias shape [4], found [2]");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_parts(
        weight: Tensor,
        bias: Option<Tensor>,
        options: Conv2dOptions,
    ) -> Result<Self> {
        let shape = weight.shape().to_vec();
        if shape.len() != 4 || shape.contains(&0) {
            return Err(Error::Shape {
                op: "conv2d",
                expected: "a 4-D weight [out, in/groups, kh, kw] with positive sides".into(),
                found: format!("{shape:?}"),
            });
        }
        if options.groups == 0 || !shape[0].is_multiple_of(options.groups) {
            return Err(Error::InvalidArgument {
                op: "conv2d",
                message: format!(
                    "groups {} must divide out_channels {}",
                    options.groups, shape[0]
                ),
            });
        }
        check_options(&shape, options)?;
        if let Some(b) = &bias
            && b.shape() != [shape[0]]
        {
            return Err(Error::Shape {
                op: "conv2d",
                expected: format!("bias shape [{}]", shape[0]),
                found: format!("{:?}", b.shape()),
            });
        }
        Ok(Conv2d {
            weight: Param::weight(weight),
            bias: bias.map(Param::bias),
            options,
        })
    }

    /// The weight, `[out, in/groups, kh, kw]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[4, 3, 5, 5]), None, Conv2dOptions::default())?;
    /// assert_eq!(conv.weight().value().shape(), &[4, 3, 5, 5]);
    /// assert_eq!(conv.weight().name(), "weight");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The weight, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let mut conv = Conv2d::from_parts(tensor::ones(&[2, 1, 3, 3]), None, Conv2dOptions::default())?;
    /// conv.weight_mut().value_mut().fill(0.5);
    /// assert!(conv.weight().value().iter().all(|&w| w == 0.5));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    /// The bias, `[out]`, if the layer has one.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions, Role};
    /// let options = Conv2dOptions::default();
    /// let conv = Conv2d::from_parts(tensor::ones(&[2, 1, 3, 3]), Some(tensor::zeros(&[2])), options)?;
    /// assert_eq!(conv.bias().unwrap().role(), Role::Bias);
    /// let no_bias = Conv2d::from_parts(tensor::ones(&[2, 1, 3, 3]), None, options)?;
    /// assert!(no_bias.bias().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The bias, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let options = Conv2dOptions::default();
    /// let mut conv = Conv2d::from_parts(tensor::ones(&[2, 1, 3, 3]), Some(tensor::zeros(&[2])), options)?;
    /// conv.bias_mut().unwrap().value_mut().fill(0.1);
    /// assert_eq!(conv.bias().unwrap().value().as_slice().unwrap(), &[0.1, 0.1]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
    }

    /// Stride, padding, dilation and groups.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let options = Conv2dOptions::default().stride(2).padding(1);
    /// let conv = Conv2d::from_parts(tensor::ones(&[4, 2, 3, 3]), None, options)?;
    /// assert_eq!(conv.options(), options);
    /// assert_eq!(conv.options().stride, [2, 2]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn options(&self) -> Conv2dOptions {
        self.options
    }

    /// The number of input channels, `C` of `[N, C, H, W]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, Conv2dOptions::default())?;
    /// assert_eq!(conv.in_channels(), 4);
    /// // with 2 groups each filter sees 4 of the 8 input channels
    /// let grouped = Conv2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, Conv2dOptions::default().groups(2))?;
    /// assert_eq!(grouped.in_channels(), 8);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn in_channels(&self) -> usize {
        self.weight.value().shape()[1] * self.options.groups
    }

    /// The number of output channels (filters).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, Conv2dOptions::default())?;
    /// assert_eq!(conv.out_channels(), 6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn out_channels(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// The kernel's `[kh, kw]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[6, 4, 3, 5]), None, Conv2dOptions::default())?;
    /// assert_eq!(conv.kernel_size(), [3, 5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn kernel_size(&self) -> [usize; 2] {
        let s = self.weight.value().shape();
        [s[2], s[3]]
    }

    /// The output's `[OH, OW]` for an input image of `[H, W]`, or `None` when the (dilated)
    /// kernel does not fit the padded image ([`Conv2dOptions::output_size`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions};
    /// let conv = Conv2d::from_parts(tensor::ones(&[8, 3, 5, 5]), None, Conv2dOptions::default().stride(2))?;
    /// assert_eq!(conv.output_size([32, 32]), Some([14, 14])); // ⌊(32 − 5)/2⌋ + 1
    /// assert_eq!(conv.output_size([4, 4]), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.options.output_size(input, self.kernel_size())
    }
}

/// Strides and dilations must be positive.
fn check_options(shape: &[usize], options: Conv2dOptions) -> Result<()> {
    let sides = shape[2..]
        .iter()
        .chain(&options.stride)
        .chain(&options.dilation);
    if sides.copied().any(|v| v == 0) {
        return Err(Error::InvalidArgument {
            op: "conv2d",
            message: format!(
                "kernel sides, strides and dilations must be positive, got kernel {:?}, \
                 stride {:?}, dilation {:?}",
                &shape[2..],
                options.stride,
                options.dilation
            ),
        });
    }
    Ok(())
}

impl Module for Conv2d {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let tape = x.tape();
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.conv2d(tape.param(&self.weight), bias, self.options)
    }

    /// The convolution, a ReLU and 2×2 max pooling as one op (see
    /// [`Module::forward_relu_max_pool_2x2`]), for a 4-D input of the layer's channels whose
    /// output has an even height and width; `None` otherwise.
    #[track_caller]
    fn forward_relu_max_pool_2x2<'t>(&self, x: Var<'t>, _mode: Mode) -> Option<Var<'t>> {
        let shape = x.shape();
        if shape.len() != 4 || shape[1] != self.in_channels() {
            return None; // `forward` reports the mistake
        }
        self.options
            .output_size([shape[2], shape[3]], self.kernel_size())?;
        let tape = x.tape();
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.conv2d_relu_max_pool_2x2(tape.param(&self.weight), bias, self.options)
    }

    crate::walk!(weight, bias);

    /// PyTorch's `repr`: `Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))`,
    /// with `dilation`, `groups` and `bias=False` added when they are not the defaults.
    fn describe(&self) -> String {
        let [kh, kw] = self.kernel_size();
        let o = self.options;
        let mut text = format!(
            "Conv2d({}, {}, kernel_size=({kh}, {kw}), stride=({}, {}), padding=({}, {})",
            self.in_channels(),
            self.out_channels(),
            o.stride[0],
            o.stride[1],
            o.padding[0],
            o.padding[1]
        );
        if o.dilation != [1, 1] {
            text += &format!(", dilation=({}, {})", o.dilation[0], o.dilation[1]);
        }
        if o.groups != 1 {
            text += &format!(", groups={}", o.groups);
        }
        if self.bias.is_none() {
            text += ", bias=False";
        }
        text + ")"
    }

    /// `[N, in, H, W] -> [N, out, OH, OW]`; an error for another rank or channel count, or
    /// an image smaller than the dilated kernel after padding.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let Spatial::Window(window) = self.spatial() else {
            unreachable!("a convolution is a window")
        };
        let mut shape = windowed_shape("conv2d", window, Some(self.in_channels()), input)?;
        shape[1] = self.out_channels();
        Ok(shape)
    }

    fn spatial(&self) -> Spatial {
        let o = self.options;
        Spatial::Window(Window {
            kernel: self.kernel_size(),
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{ChaCha8Rng, SeedableRng, Tape, gradcheck, tensor};

    #[test]
    fn a_zero_channel_count_is_an_error_whatever_the_init() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let constant = Init::Constant { value: 0.5 };
        let options = Conv2dOptions::default();
        for (i, o) in [(1, 0), (0, 2), (0, 0)] {
            for init in [constant, Init::default()] {
                let no_bias = Conv2d::new_no_bias(i, o, [3, 3], options, init, &mut rng);
                let with_bias = Conv2d::new(i, o, [3, 3], options, init, &mut rng);
                for err in [no_bias.unwrap_err(), with_bias.unwrap_err()] {
                    assert!(
                        err.to_string().contains("channel counts must be positive"),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn gradcheck_the_layer_and_its_parameter_gradients() {
        let options = Conv2dOptions::default().padding(1).stride(2).groups(2);
        let (w, b) = (random(&[4, 1, 3, 3], 1), random(&[4], 2));
        let layer = Conv2d::from_parts(w.clone(), Some(b.clone()), options).unwrap();
        for batch in [2, 1] {
            let x = random(&[batch, 2, 5, 5], 3);
            gradcheck(
                |v| layer.forward(v[0], Mode::Train),
                std::slice::from_ref(&x),
            )
            .unwrap();
            // the layer's parameter gradients are the op's gradients of W and b
            let inputs = [x.clone(), w.clone(), b.clone()];
            gradcheck(|v| v[0].conv2d(v[1], Some(v[2]), options), &inputs).unwrap();
            let tape = Tape::new();
            let c = tape.constant(random(&[batch, 4, 3, 3], 4));
            let leaves: Vec<Var<'_>> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
            let by_op = (leaves[0].conv2d(leaves[1], Some(leaves[2]), options) * c)
                .sum()
                .backward();
            let by_layer = (layer.forward(tape.constant(x), Mode::Train) * c)
                .sum()
                .backward();
            assert_eq!(by_layer.param(layer.weight()), by_op.get(leaves[1]));
            assert_eq!(by_layer.param(layer.bias().unwrap()), by_op.get(leaves[2]));
        }
    }

    #[test]
    fn default_init_is_pytorchs_and_names_are_stable() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let layer = Conv2d::new(
            16,
            64,
            [5, 5],
            Conv2dOptions::default(),
            Init::default(),
            &mut rng,
        )
        .unwrap();
        let bound = 1.0 / 20.0; // 1/√(16·25)
        let w = layer.weight().value();
        assert!(w.iter().all(|x| x.abs() <= bound));
        let var = w.var(0.0);
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.03, "{var}");
        let b = layer.bias().unwrap().value();
        assert!(b.iter().all(|x| x.abs() <= bound));
        assert!(b.iter().any(|x| x.abs() > 0.5 * bound));
        let mut names = Vec::new();
        layer.visit_params(&mut |n, p| names.push((n.to_string(), p.role())));
        assert_eq!(
            names,
            [
                ("weight".into(), crate::Role::Weight),
                ("bias".into(), crate::Role::Bias)
            ]
        );
        assert_eq!((layer.in_features(), layer.out_features()), (None, None));
    }

    #[test]
    fn describe_follows_pytorchs_repr() {
        let d = Conv2dOptions::default();
        let layer =
            Conv2d::from_parts(tensor::ones(&[6, 2, 3, 1]), None, d.groups(2).dilation(2)).unwrap();
        assert_eq!(
            layer.describe(),
            "Conv2d(4, 6, kernel_size=(3, 1), stride=(1, 1), padding=(0, 0), dilation=(2, 2), \
             groups=2, bias=False)"
        );
    }

    #[test]
    fn bad_settings_are_errors_naming_the_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let d = Conv2dOptions::default();
        let err = Conv2d::new(4, 6, [3, 3], d.groups(4), Init::default(), &mut rng).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conv2d: groups 4 must divide in_channels 4 and out_channels 6"
        );
        let err = Conv2d::new(4, 6, [3, 3], d.stride(0), Init::default(), &mut rng).unwrap_err();
        assert!(err.to_string().contains("stride [0, 0]"), "{err}");
        assert!(Conv2d::new(0, 6, [3, 3], d, Init::default(), &mut rng).is_err());
        assert!(Conv2d::new(2, 6, [0, 3], d, Init::default(), &mut rng).is_err());
        assert!(Conv2d::from_parts(tensor::ones(&[4, 3, 3]), None, d).is_err());
        assert!(Conv2d::from_parts(tensor::ones(&[4, 3, 3, 3]), None, d.groups(3)).is_err());
        assert!(Conv2d::from_parts(tensor::ones(&[4, 3, 3, 3]), None, d.dilation(0)).is_err());
    }
}
