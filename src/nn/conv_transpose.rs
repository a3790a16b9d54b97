//! The 2-D transposed convolution layer [`ConvTranspose2d`] (`nn.ConvTranspose2d`): filters
//! `[in, out/groups, kh, kw]` that each input pixel stamps into the output, plus a bias per
//! output channel; the upsampling layer of convolutional decoders.
//!
//! # Shapes
//! `x: [N, in, H, W]`, `W: [in, out/groups, kh, kw]`, `b: [out]`, `y: [N, out, OH, OW]`,
//! `OH = (H − 1)·sh − 2·ph + dh·(kh − 1) + oph + 1` (and `OW` alike).

use crate::autograd::Var;
use crate::autograd::ops::conv_transpose::ConvTranspose2dOptions;
use crate::error::{Error, Result};
use crate::nn::init::{Init, default_bias, fans_grouped};
use crate::nn::module::{Mode, Module};
use crate::nn::shape::{Spatial, shape_error};
use crate::param::Param;
use crate::tensor::Tensor;
use rand::Rng;

/// A 2-D transposed convolution layer (`torch.nn.ConvTranspose2d`),
/// `y = conv_transpose2d(x, W) + b`: see [`Var::conv_transpose2d`] for the formula, the
/// backward rule and the shapes, and [`ConvTranspose2dOptions`] for stride, padding, output
/// padding, dilation and groups.
///
/// The weight is stored `[in, out/groups, kh, kw]` and the bias `[out]`, PyTorch's layout
/// and `state_dict` names (`"weight"`, [`Role::Weight`](crate::Role::Weight), and `"bias"`,
/// [`Role::Bias`](crate::Role::Bias)), so checkpoints and
/// [`export_safetensors`](crate::checkpoint::export_safetensors) files hold what
/// `nn.ConvTranspose2d` holds. With the options of a [`Conv2d`](crate::Conv2d) (and an output
/// padding where that convolution's stride rounded down) it maps that convolution's output
/// size back to its input size, as a decoder mirrors an encoder.
///
/// Like a convolution it has no fixed input width, so [`Module::in_features`] and
/// [`Module::out_features`] are `None`; the channels are [`ConvTranspose2d::in_channels`]
/// and [`ConvTranspose2d::out_channels`]. Its output pixels sit a fraction of an input pixel
/// apart, which the receptive-field recurrence (whole jumps) cannot follow: its
/// [`Module::spatial`] is [`Spatial::Flat`], where the report ends.
///
/// # Shapes
/// `[N, in, H, W] -> [N, out, OH, OW]`.
///
/// # Panics
/// `forward` panics (from [`Var::conv_transpose2d`]) when the input is not 4-D, has not
/// `in` channels, or the padding leaves no output.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions, Mode, Module, Tape};
/// // one 2×2 filter [[1, 2], [3, 4]] with stride 2: each pixel stamps v·filter, no overlap
/// let up = ConvTranspose2d::from_parts(
///     tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?,
///     Some(tensor::zeros(&[1])),
///     ConvTranspose2dOptions::default().stride(2),
/// )?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 10.0], &[1, 1, 1, 2])?);
/// let y = up.forward(x, Mode::Eval);
/// assert_eq!(y.shape(), [1, 1, 2, 4]);
/// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0]);
/// assert_eq!(
///     up.describe(),
///     "ConvTranspose2d(1, 1, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
/// );
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Param,
    bias: Option<Param>,
    options: ConvTranspose2dOptions,
}

impl ConvTranspose2d {
    /// A layer from `in_channels` to `out_channels` with a `kernel_size = [kh, kw]` kernel
    /// and a bias; the weight `[in, out/groups, kh, kw]` is drawn by `init`.
    ///
    /// The fans are PyTorch's for this layout: `torch.nn.init._calculate_fan_in_and_fan_out`
    /// reads the weight as if it were a convolution's `[out, in, k…]`, so for a transposed
    /// convolution `fan_in = (out/groups)·kh·kw` (its second axis) and `fan_out =
    /// in·kh·kw`, here divided by the groups as for [`Conv2d`](crate::Conv2d)
    /// ([`fans_grouped`]). The bias is drawn as PyTorch's `nn.ConvTranspose2d` draws it
    /// (`_ConvNd.reset_parameters`), whatever `init` is: `b ~ U(−1/√fan_in, 1/√fan_in)`.
    /// With [`Init::default`] (`kaiming_uniform_(a=√5)`) the weight is
    /// `U(−1/√fan_in, 1/√fan_in)` too, so this is PyTorch's default `nn.ConvTranspose2d`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a channel count is 0, `groups` does not divide both
    /// channel counts, the options are wrong for the kernel
    /// ([`ConvTranspose2dOptions::check`]: a zero side, stride or dilation, an output padding
    /// not smaller than its stride or dilation), or `init` rejects its parameters:
    /// `conv_transpose2d: groups 3 must divide in_channels 4 and out_channels 6`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, ConvTranspose2d, ConvTranspose2dOptions, Init, Module, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let options = ConvTranspose2dOptions::default().stride(2).padding(1).output_padding(1);
    /// let up = ConvTranspose2d::new(64, 32, [3, 3], options, Init::default(), &mut rng)?;
    /// assert_eq!(up.weight().value().shape(), &[64, 32, 3, 3]);
    /// assert_eq!(up.num_params(), 64 * 32 * 9 + 32);
    /// let bound = 1.0 / (32.0 * 9.0f32).sqrt(); // 1/√fan_in, fan_in = out·kh·kw
    /// assert!(up.weight().value().iter().all(|w| w.abs() <= bound));
    /// assert_eq!(up.output_size([7, 7]), Some([14, 14]));
    /// let bad = ConvTranspose2d::new(64, 32, [3, 3], options.output_padding(2), Init::default(), &mut rng);
    /// assert!(bad.unwrap_err().to_string().contains("output_padding [2, 2], stride [2, 2]"));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: ConvTranspose2dOptions,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let mut layer =
            Self::new_no_bias(in_channels, out_channels, kernel_size, options, init, rng)?;
        let (fan_in, fan_out) = fans_grouped(layer.weight.value().shape(), options.groups)?;
        layer.bias = Some(default_bias(out_channels, fan_in, fan_out, rng)?);
        Ok(layer)
    }

    /// Like [`ConvTranspose2d::new`], without a bias (`nn.ConvTranspose2d(.., bias=False)`,
    /// as before a batch normalization).
    ///
    /// # Errors
    /// As [`ConvTranspose2d::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, ConvTranspose2d, ConvTranspose2dOptions, Init, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let xavier = Init::XavierUniform { gain: 1.0 };
    /// let up = ConvTranspose2d::new_no_bias(8, 4, [2, 2], ConvTranspose2dOptions::default().stride(2), xavier, &mut rng)?;
    /// assert!(up.bias().is_none());
    /// // Xavier-uniform bound √(6/(fan_in + fan_out)), fan_in = 4·2·2, fan_out = 8·2·2
    /// assert!(up.weight().value().iter().all(|w| w.abs() <= (6.0f32 / 48.0).sqrt()));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new_no_bias<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: ConvTranspose2dOptions,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let groups = options.groups;
        if in_channels == 0
            || out_channels == 0
            || groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
        {
            return Err(Error::InvalidArgument {
                op: "conv_transpose2d",
                message: format!(
                    "groups {groups} must divide in_channels {in_channels} and out_channels \
                     {out_channels}, each positive"
                ),
            });
        }
        options.check(kernel_size)?;
        let shape = [
            in_channels,
            out_channels / groups,
            kernel_size[0],
            kernel_size[1],
        ];
        let (fan_in, fan_out) = fans_grouped(&shape, groups)?;
        let weight = init.sample(&shape, fan_in, fan_out, rng)?;
        Ok(ConvTranspose2d {
            weight: Param::weight(weight),
            bias: None,
            options,
        })
    }

    /// A layer with known weights: `weight` is `[in, out/groups, kh, kw]` (a PyTorch
    /// `nn.ConvTranspose2d`'s `weight` as it is), `bias` (if any) is `[out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `weight` is not 4-D with every side positive, or `bias` is not
    /// `[out]`; [`Error::InvalidArgument`] if `groups` is 0 or does not divide `in`, or the
    /// options are wrong for the kernel ([`ConvTranspose2dOptions::check`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let options = ConvTranspose2dOptions::default();
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[4, 2, 3, 3]), None, options.groups(2))?;
    /// assert_eq!((up.in_channels(), up.out_channels()), (4, 4));
    /// let err = ConvTranspose2d::from_parts(tensor::ones(&[4, 2, 3, 3]), Some(tensor::ones(&[4])), options);
    /// assert_eq!(err.unwrap_err().to_string(), "conv_transpose2d: expected bias shape [2], found [4]");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_parts(
        weight: Tensor,
        bias: Option<Tensor>,
        options: ConvTranspose2dOptions,
    ) -> Result<Self> {
        let shape = weight.shape().to_vec();
        if shape.len() != 4 || shape.contains(&0) {
            return Err(Error::Shape {
                op: "conv_transpose2d",
                expected: "a 4-D weight [in, out/groups, kh, kw] with positive sides".into(),
                found: format!("{shape:?}"),
            });
        }
        if options.groups == 0 || !shape[0].is_multiple_of(options.groups) {
            return Err(Error::InvalidArgument {
                op: "conv_transpose2d",
                message: format!(
                    "groups {} must divide in_channels {}",
                    options.groups, shape[0]
                ),
            });
        }
        options.check([shape[2], shape[3]])?;
        let out_channels = shape[1] * options.groups;
        if let Some(b) = &bias
            && b.shape() != [out_channels]
        {
            return Err(Error::Shape {
                op: "conv_transpose2d",
                expected: format!("bias shape [{out_channels}]"),
                found: format!("{:?}", b.shape()),
            });
        }
        Ok(ConvTranspose2d {
            weight: Param::weight(weight),
            bias: bias.map(Param::bias),
            options,
        })
    }

    /// The weight, `[in, out/groups, kh, kw]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 5, 5]), None, ConvTranspose2dOptions::default())?;
    /// assert_eq!(up.weight().value().shape(), &[4, 3, 5, 5]);
    /// assert_eq!(up.weight().name(), "weight");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The weight, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let mut up = ConvTranspose2d::from_parts(tensor::ones(&[2, 1, 3, 3]), None, ConvTranspose2dOptions::default())?;
    /// up.weight_mut().value_mut().fill(0.5);
    /// assert!(up.weight().value().iter().all(|&w| w == 0.5));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    /// The bias, `[out]`, if the layer has one.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions, Role};
    /// let options = ConvTranspose2dOptions::default();
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[2, 3, 3, 3]), Some(tensor::zeros(&[3])), options)?;
    /// assert_eq!(up.bias().unwrap().role(), Role::Bias);
    /// assert!(ConvTranspose2d::from_parts(tensor::ones(&[2, 3, 3, 3]), None, options)?.bias().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The bias, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let options = ConvTranspose2dOptions::default();
    /// let mut up = ConvTranspose2d::from_parts(tensor::ones(&[2, 1, 3, 3]), Some(tensor::zeros(&[1])), options)?;
    /// up.bias_mut().unwrap().value_mut().fill(0.1);
    /// assert_eq!(up.bias().unwrap().value().as_slice().unwrap(), &[0.1]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
    }

    /// Stride, padding, output padding, dilation and groups.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let options = ConvTranspose2dOptions::default().stride(2).output_padding(1);
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[4, 2, 3, 3]), None, options)?;
    /// assert_eq!(up.options(), options);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn options(&self) -> ConvTranspose2dOptions {
        self.options
    }

    /// The number of input channels, `C` of `[N, C, H, W]`: the weight's first axis.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, ConvTranspose2dOptions::default())?;
    /// assert_eq!(up.in_channels(), 6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn in_channels(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// The number of output channels: the weight's second axis times the groups.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let options = ConvTranspose2dOptions::default();
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, options)?;
    /// assert_eq!(up.out_channels(), 4);
    /// let grouped = ConvTranspose2d::from_parts(tensor::ones(&[6, 4, 3, 3]), None, options.groups(3))?;
    /// assert_eq!(grouped.out_channels(), 12);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn out_channels(&self) -> usize {
        self.weight.value().shape()[1] * self.options.groups
    }

    /// The kernel's `[kh, kw]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[6, 4, 3, 5]), None, ConvTranspose2dOptions::default())?;
    /// assert_eq!(up.kernel_size(), [3, 5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn kernel_size(&self) -> [usize; 2] {
        let s = self.weight.value().shape();
        [s[2], s[3]]
    }

    /// The output's `[OH, OW]` for an input image of `[H, W]`, or `None` when the padding
    /// leaves no output ([`ConvTranspose2dOptions::output_size`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ConvTranspose2d, ConvTranspose2dOptions};
    /// let up = ConvTranspose2d::from_parts(tensor::ones(&[8, 3, 4, 4]), None, ConvTranspose2dOptions::default().stride(2).padding(1))?;
    /// assert_eq!(up.output_size([16, 16]), Some([32, 32])); // 15·2 − 2 + 3 + 1
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.options.output_size(input, self.kernel_size())
    }
}

impl Module for ConvTranspose2d {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let tape = x.tape();
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.conv_transpose2d(tape.param(&self.weight), bias, self.options)
    }

    crate::walk!(weight, bias);

    /// PyTorch's `repr`, with the padding always shown as [`Conv2d`](crate::Conv2d) shows
    /// it: `ConvTranspose2d(64, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1),
    /// output_padding=(1, 1))`, with `dilation`, `output_padding`, `groups` and `bias=False`
    /// (in PyTorch's order) added when they are not the defaults.
    fn describe(&self) -> String {
        let [kh, kw] = self.kernel_size();
        let o = self.options;
        let mut text = format!(
            "ConvTranspose2d({}, {}, kernel_size=({kh}, {kw}), stride=({}, {}), padding=({}, {})",
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
        if o.output_padding != [0, 0] {
            let [h, w] = o.output_padding;
            text += &format!(", output_padding=({h}, {w})");
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
    /// a padding that leaves no output.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let channels = self.in_channels();
        if input.len() != 4 || input[1] != channels {
            let expected = format!("a 4-D input [N, {channels}, H, W]");
            return Err(shape_error("conv_transpose2d", expected, input));
        }
        let Some([oh, ow]) = self.output_size([input[2], input[3]]) else {
            let [ph, pw] = self.options.padding;
            let expected = format!("an image whose output the padding ({ph}, {pw}) leaves");
            return Err(shape_error("conv_transpose2d", expected, input));
        };
        Ok(vec![input[0], self.out_channels(), oh, ow])
    }

    /// [`Spatial::Flat`]: the outputs sit `1/s` input pixels apart, which the
    /// receptive-field recurrence of whole jumps does not describe, so the report ends here.
    fn spatial(&self) -> Spatial {
        Spatial::Flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{ChaCha8Rng, SeedableRng, Tape, gradcheck, tensor};

    #[test]
    fn gradcheck_the_layer_and_its_parameter_gradients() {
        let options = ConvTranspose2dOptions::default()
            .stride(2)
            .padding(1)
            .output_padding(1)
            .groups(2);
        let (w, b) = (random(&[4, 1, 3, 3], 1), random(&[2], 2));
        let layer = ConvTranspose2d::from_parts(w.clone(), Some(b.clone()), options).unwrap();
        for batch in [2, 1] {
            let x = random(&[batch, 4, 3, 2], 3);
            gradcheck(
                |v| layer.forward(v[0], Mode::Train),
                std::slice::from_ref(&x),
            )
            .unwrap();
            // the layer's parameter gradients are the op's gradients of W and b
            let inputs = [x.clone(), w.clone(), b.clone()];
            let tape = Tape::new();
            let c = tape.constant(random(&[batch, 2, 6, 4], 4));
            let leaves: Vec<Var<'_>> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
            let by_op = (leaves[0].conv_transpose2d(leaves[1], Some(leaves[2]), options) * c)
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
        // nn.ConvTranspose2d(64, 16, 5): weight [64, 16, 5, 5], fan_in = 16·25 (the second
        // axis, as torch's _calculate_fan_in_and_fan_out reads it), bound 1/√400
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = ConvTranspose2dOptions::default();
        let layer = ConvTranspose2d::new(64, 16, [5, 5], d, Init::default(), &mut rng).unwrap();
        let bound = 1.0 / 20.0;
        let w = layer.weight().value();
        assert_eq!(w.shape(), [64, 16, 5, 5]);
        assert!(w.iter().all(|x| x.abs() <= bound));
        let var = w.var(0.0);
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.03, "{var}");
        let b = layer.bias().unwrap().value();
        assert_eq!(b.shape(), [16]);
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
        // with groups, fan_in is still the second axis times the kernel: (8/4)·3·3
        let grouped = d.groups(4);
        let layer = ConvTranspose2d::new(4, 8, [3, 3], grouped, Init::default(), &mut rng).unwrap();
        assert_eq!(layer.weight().value().shape(), [4, 2, 3, 3]);
        let bound = 1.0 / 18f32.sqrt();
        assert!(layer.weight().value().iter().all(|x| x.abs() <= bound));
    }

    #[test]
    fn describe_follows_pytorchs_repr() {
        let d = ConvTranspose2dOptions::default();
        let options = ConvTranspose2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            output_padding: [1, 1],
            dilation: [2, 2],
            groups: 2,
        };
        let layer = ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 3, 2]), None, options);
        // torch prints ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(2, 2),
        // padding=(1, 1), dilation=(2, 2), output_padding=(1, 1), groups=2, bias=False)
        assert_eq!(
            layer.unwrap().describe(),
            "ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), \
             dilation=(2, 2), output_padding=(1, 1), groups=2, bias=False)"
        );
        let plain = ConvTranspose2d::from_parts(tensor::ones(&[1, 2, 3, 3]), None, d).unwrap();
        assert!(plain.describe().ends_with("padding=(0, 0), bias=False)"));
    }

    #[test]
    fn output_shape_is_the_forwards_and_errors_name_the_input() {
        let d = ConvTranspose2dOptions::default();
        let layer =
            ConvTranspose2d::from_parts(tensor::ones(&[3, 2, 3, 3]), None, d.stride(2).padding(1))
                .unwrap();
        assert_eq!(layer.output_shape(&[5, 3, 4, 7]).unwrap(), [5, 2, 7, 13]);
        let err = layer.output_shape(&[5, 2, 4, 7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conv_transpose2d: expected a 4-D input [N, 3, H, W], found [5, 2, 4, 7]"
        );
        let shrinking =
            ConvTranspose2d::from_parts(tensor::ones(&[3, 2, 1, 1]), None, d.padding(1)).unwrap();
        let err = shrinking
            .output_shape(&[5, 3, 2, 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("padding (1, 1)") && err.ends_with("[5, 3, 2, 2]"),
            "{err}"
        );
        assert_eq!(layer.spatial(), Spatial::Flat);
    }

    #[test]
    fn bad_settings_are_errors_naming_the_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let d = ConvTranspose2dOptions::default();
        let mut new = |i, o, k, options| {
            ConvTranspose2d::new(i, o, k, options, Init::default(), &mut rng).map(|_| ())
        };
        assert_eq!(
            new(4, 6, [3, 3], d.groups(4)).unwrap_err().to_string(),
            "conv_transpose2d: groups 4 must divide in_channels 4 and out_channels 6, each \
             positive"
        );
        assert_eq!(
            new(4, 6, [3, 3], d.stride(2).output_padding(2))
                .unwrap_err()
                .to_string(),
            "conv_transpose2d: output_padding must be smaller than stride or dilation, got \
             output_padding [2, 2], stride [2, 2], dilation [1, 1]"
        );
        // one axis is enough to refuse; a dilation makes room as a stride does (PyTorch)
        let rows_only = ConvTranspose2dOptions {
            output_padding: [0, 1],
            ..d
        };
        assert!(new(4, 6, [3, 3], rows_only).is_err());
        assert!(new(4, 6, [3, 3], rows_only.dilation(2)).is_ok());
        let err = new(4, 6, [3, 3], d.stride(0)).unwrap_err().to_string();
        assert!(err.contains("stride [0, 0]"), "{err}");
        assert!(new(0, 6, [3, 3], d).is_err());
        assert!(new(2, 6, [0, 3], d).is_err());
        assert!(ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 3]), None, d).is_err());
        assert!(
            ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 3, 3]), None, d.groups(3)).is_err()
        );
        assert!(
            ConvTranspose2d::from_parts(tensor::ones(&[4, 3, 3, 3]), None, d.dilation(0)).is_err()
        );
    }

    #[test]
    fn a_pytorch_state_dict_loads_by_name_and_layout() {
        // torch.nn.ConvTranspose2d(2, 3, 2, stride=2) has state_dict keys "weight" [2, 3,
        // 2, 2] and "bias" [3]; safetensors bytes hold them under the same names and shapes
        let layer = ConvTranspose2d::from_parts(
            tensor::ones(&[2, 3, 2, 2]),
            Some(tensor::zeros(&[3])),
            ConvTranspose2dOptions::default().stride(2),
        )
        .unwrap();
        let bytes = crate::checkpoint::safetensors_bytes(&layer).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert!(
            header.contains(r#""weight":{"dtype":"F32","shape":[2,3,2,2]"#),
            "{header}"
        );
        assert!(
            header.contains(r#""bias":{"dtype":"F32","shape":[3]"#),
            "{header}"
        );
    }
}
