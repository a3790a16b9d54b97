//! [`Sequential`]: a chain of modules, each fed the previous one's output, with its widths
//! checked at construction, its shapes checked for a given input, and a torchinfo-like
//! [`Sequential::summary`].

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::module::{Fusable, Mode, Module};
use crate::nn::shape::{Spatial, Window};
use std::fmt;

/// Modules applied one after another, `y = f_{n−1}(… f_1(f_0(x)))` (`nn.Sequential`).
///
/// Parameters are named by path: layer `i`'s `"weight"` is `"i.weight"` (a nested
/// `Sequential` gives `"i.j.weight"`), as in PyTorch's `state_dict`.
///
/// `Display` prints a summary in the spirit of PyTorch's `print(model)` and Keras'
/// `summary()`: each layer, its output width where the layers' widths tell it (`[N, 3]`,
/// `N` standing for the leading axes; `?` after layers that change the shape in other
/// ways, such as convolutions), and its parameter count, then the total. For the shapes of
/// an actual input, image models included, use [`Sequential::summary`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Relu, Sequential, Tape};
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::zeros(&[3])))?),
///     Box::new(Relu),
///     Box::new(Linear::from_parts(tensor::ones(&[1, 3]), None)?),
/// ])?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
/// assert_eq!(model.forward(x, Mode::Eval).item(), 9.0); // 3 units of relu(1 + 2)
/// let mut names = Vec::new();
/// model.visit_params(&mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight"]);
/// assert_eq!(model.num_params(), 12);
/// assert_eq!(
///     model.to_string(),
///     "\
/// Sequential(
///   (0): Linear(in_features=2, out_features=3, bias=True)  -> [N, 3]  params: 9
///   (1): ReLU()                                            -> [N, 3]  params: 0
///   (2): Linear(in_features=3, out_features=1, bias=False) -> [N, 1]  params: 3
/// )
/// Total params: 12"
/// );
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// Chains `layers` in order, checking that each layer's input width
    /// ([`Module::in_features`]) equals the output width of the last layer before it that
    /// has one ([`Module::out_features`]). Pointwise layers without widths (activations,
    /// dropout: [`Spatial::Pointwise`]) pass the width through; other layers without one
    /// (convolutions, pooling, [`Flatten`](crate::Flatten)) end it, so a `Linear` after a
    /// `Flatten` is checked against the input shape by [`Sequential::summary`] and
    /// [`Sequential::output_shape`](Module::output_shape) instead.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the layer and both widths:
    /// `sequential: expected layer 2 input width 8 (output of layer 0), found 4`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, SeedableRng, Sequential, Tanh};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let result = Sequential::new(vec![
    ///     Box::new(Linear::new(2, 8, Init::default(), &mut rng)?),
    ///     Box::new(Tanh),
    ///     Box::new(Linear::new(4, 1, Init::default(), &mut rng)?),
    /// ]);
    /// let message = result.unwrap_err().to_string();
    /// assert_eq!(message, "sequential: expected layer 2 input width 8 (output of layer 0), found 4");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(layers: Vec<Box<dyn Module>>) -> Result<Self> {
        let mut previous: Option<(usize, usize)> = None;
        for (index, layer) in layers.iter().enumerate() {
            if let (Some((from, width)), Some(input)) = (previous, layer.in_features())
                && width != input
            {
                return Err(Error::Shape {
                    op: "sequential",
                    expected: format!("layer {index} input width {width} (output of layer {from})"),
                    found: input.to_string(),
                });
            }
            previous = carried_width(previous, index, layer.as_ref());
        }
        Ok(Sequential { layers })
    }

    /// A table in the style of torchinfo's `summary(model, input_size=...)`: for an input
    /// of shape `input_shape`, each layer's description, its output shape and its
    /// parameter count, then the total and trainable parameter counts and the parameters'
    /// size in MB (4-byte floats). Shapes come from [`Module::output_shape`], so nothing
    /// is computed on real data.
    ///
    /// # Errors
    /// [`Error::Shape`] at the first layer whose input does not fit, naming the layer, what
    /// it expects and the shape it would get:
    /// `sequential: expected at layer 0 (Conv2d(1, 32, ...)) a 4-D input [N, 1, H, W], found
    /// [1, 3, 28, 28]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Conv2d, Conv2dOptions, Flatten, Linear, MaxPool2d, Relu, Sequential};
    /// let model = Sequential::new(vec![
    ///     Box::new(Conv2d::from_parts(tensor::ones(&[2, 1, 3, 3]), None, Conv2dOptions::default())?),
    ///     Box::new(Relu),
    ///     Box::new(MaxPool2d::new(2)?),
    ///     Box::new(Flatten),
    ///     Box::new(Linear::from_parts(tensor::ones(&[3, 8]), Some(tensor::zeros(&[3])))?),
    /// ])?;
    /// let summary = model.summary(&[1, 1, 6, 6])?;
    /// let rows: Vec<&str> = summary.lines().filter(|l| l.starts_with('(')).collect();
    /// assert!(rows[0].contains("[1, 2, 4, 4]") && rows[0].ends_with(" 18"));
    /// assert!(rows[2].contains("[1, 2, 2, 2]")); // ⌊4/2⌋
    /// assert!(rows[3].contains("[1, 8]"));
    /// assert!(rows[4].contains("[1, 3]") && rows[4].ends_with(" 27"));
    /// assert!(summary.contains("Total params: 45\nTrainable params: 45"));
    /// let err = model.summary(&[1, 1, 8, 8]).unwrap_err(); // 2·3·3 = 18 features, not 8
    /// assert!(err.to_string().starts_with("sequential: expected at layer 4 (Linear("));
    /// assert!(err.to_string().ends_with("an input [.., 8], found [1, 18]"));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn summary(&self, input_shape: &[usize]) -> Result<String> {
        let mut rows = Vec::with_capacity(self.layers.len());
        let mut shape = input_shape.to_vec();
        for (index, layer) in self.layers.iter().enumerate() {
            shape = layer_output_shape(index, layer.as_ref(), &shape)?;
            rows.push([
                format!("({index}): {}", layer.describe()),
                format!("{shape:?}"),
                thousands(layer.num_params()),
            ]);
        }
        let header = ["Layer".to_string(), "Output Shape".into(), "Param #".into()];
        let width = |c: usize| {
            (rows.iter().chain([&header]))
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        };
        let [w0, w1, w2] = [width(0), width(1), width(2)];
        let rule = "=".repeat(w0 + w1 + w2 + 4);
        let line = |r: &[String; 3]| format!("{:<w0$}  {:<w1$}  {:>w2$}\n", r[0], r[1], r[2]);
        let total = self.num_params();
        let mut text = format!(
            "Input shape: {input_shape:?}\n{rule}\n{}{rule}\n",
            line(&header)
        );
        for row in &rows {
            text += &line(row);
        }
        text += &format!(
            "{rule}\nTotal params: {}\nTrainable params: {}\nParams size (MB): {:.2}\n{rule}",
            thousands(total),
            thousands(self.num_trainable_params()),
            total as f64 * 4.0 / 1e6
        );
        Ok(text)
    }

    /// The layers, in order.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Flatten, Relu, Sequential};
    /// let model = Sequential::new(vec![Box::new(Flatten), Box::new(Relu)])?;
    /// assert_eq!(model.layers()[1].describe(), "ReLU()");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }

    /// Layer `index`, mutably, or `None` past the last: PyTorch's `model[index]`, to freeze
    /// one layer or reach its parameters. The layer cannot be swapped for another through it,
    /// so the widths checked by [`Sequential::new`] still fit.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module, Relu, Sequential};
    /// let first = Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::zeros(&[3])))?;
    /// let mut model = Sequential::new(vec![Box::new(first), Box::new(Relu)])?;
    /// // model[0].requires_grad_(False)
    /// model.layer_mut(0).unwrap().set_requires_grad(false);
    /// assert_eq!((model.num_params(), model.num_trainable_params()), (9, 0));
    /// assert!(model.layer_mut(2).is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn layer_mut(&mut self, index: usize) -> Option<&mut dyn Module> {
        Some(self.layers.get_mut(index)?.as_mut())
    }

    /// The layers, mutably (for initializers such as [`lsuv`](crate::lsuv)); crate-private so
    /// a layer can't be swapped for one of another width after the check.
    pub(crate) fn layers_mut(&mut self) -> &mut [Box<dyn Module>] {
        &mut self.layers
    }

    /// The number of layers.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Relu, Sequential, Tanh};
    /// assert_eq!(Sequential::new(vec![Box::new(Relu), Box::new(Tanh)])?.len(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers (then the model is the identity).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Mode, Module, Sequential, Tape};
    /// let identity = Sequential::new(vec![])?;
    /// assert!(identity.is_empty());
    /// let tape = Tape::new();
    /// assert_eq!(identity.forward(tape.constant(tensor::ones(&[2])), Mode::Eval).value(), tensor::ones(&[2]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    #[track_caller]
    /// The layers in order, with the same values and gradients as one by one, but: a layer
    /// followed by a [`Relu`](crate::Relu) and a 2×2 stride-2
    /// [`MaxPool2d`](crate::MaxPool2d) runs the three as one op when it can (a
    /// [`Conv2d`](crate::Conv2d), see [`Module::forward_relu_max_pool_2x2`]), and otherwise
    /// such a ReLU and pooling run as one op (see [`Module::fusable`]).
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        let mut x = x;
        let mut at = 0;
        let fusable = |i: usize| self.layers.get(i).and_then(|layer| layer.fusable());
        while let Some(layer) = self.layers.get(at) {
            let relu_pool_at = |i| {
                fusable(i) == Some(Fusable::Relu) && fusable(i + 1) == Some(Fusable::MaxPool2x2)
            };
            if relu_pool_at(at + 1)
                && let Some(y) = layer.forward_relu_max_pool_2x2(x, mode)
            {
                (x, at) = (y, at + 3);
            } else if relu_pool_at(at) && x.fits_relu_max_pool_2x2() {
                (x, at) = (x.relu_max_pool_2x2(), at + 2);
            } else {
                (x, at) = (layer.forward(x, mode), at + 1);
            }
        }
        x
    }

    crate::walk!(layers as "");

    fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential({})", inner.join(", "))
    }

    /// The first layer's input width, looking past leading pointwise layers without one
    /// (dropout on the inputs); `None` when the first layer that shapes the input has no
    /// width, as a convolution.
    fn in_features(&self) -> Option<usize> {
        self.layers
            .iter()
            .find(|l| l.in_features().is_some() || l.spatial() != Spatial::Pointwise)
            .and_then(|l| l.in_features())
    }

    /// The last layer's output width, looking past trailing pointwise layers without one;
    /// `None` when the last layer that shapes the output has no width.
    fn out_features(&self) -> Option<usize> {
        self.layers
            .iter()
            .rev()
            .find(|l| l.out_features().is_some() || l.spatial() != Spatial::Pointwise)
            .and_then(|l| l.out_features())
    }

    /// Each layer's output shape in turn; an error names the first layer that does not
    /// accept its input.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for (index, layer) in self.layers.iter().enumerate() {
            shape = layer_output_shape(index, layer.as_ref(), &shape)?;
        }
        Ok(shape)
    }

    /// The layers' windows composed into one: receptive field `r` as the kernel, jump `j`
    /// as the stride and the padding in input pixels, `Σ p_l·j_(l−1)` (the standard
    /// recurrence, see [`diagnostics::receptive_field`](crate::diagnostics::receptive_field));
    /// [`Spatial::Pointwise`] when every layer is, [`Spatial::Global`] for global pooling
    /// among pointwise layers, and [`Spatial::Flat`] otherwise.
    fn spatial(&self) -> Spatial {
        let (mut window, mut global) = (None::<Window>, false);
        for layer in &self.layers {
            match layer.spatial() {
                Spatial::Pointwise => {}
                Spatial::Flat => return Spatial::Flat,
                Spatial::Global => global = true,
                Spatial::Window(w) => {
                    let mut c = window.unwrap_or(Window::square(1, 1, 0));
                    for (a, span) in w.span().into_iter().enumerate() {
                        c.kernel[a] += (span - 1) * c.stride[a];
                        c.padding[a] += w.padding[a] * c.stride[a];
                        c.stride[a] *= w.stride[a];
                    }
                    window = Some(c);
                }
            }
        }
        match (window, global) {
            (None, false) => Spatial::Pointwise,
            (None, true) => Spatial::Global,
            (Some(w), false) => Spatial::Window(w),
            (Some(_), true) => Spatial::Flat,
        }
    }
}

/// The width `[layer, width]` that reaches the layer after `layer` (number `index`), given
/// the one that reached it: a layer with an output width sets it, a pointwise layer passes
/// it on, any other layer (convolution, pooling, flatten) ends it.
fn carried_width(
    previous: Option<(usize, usize)>,
    index: usize,
    layer: &dyn Module,
) -> Option<(usize, usize)> {
    match layer.out_features() {
        Some(out) => Some((index, out)),
        None if layer.spatial() == Spatial::Pointwise => previous,
        None => None,
    }
}

/// Layer `index`'s output shape for `input`, its error rewritten to name the layer.
fn layer_output_shape(index: usize, layer: &dyn Module, input: &[usize]) -> Result<Vec<usize>> {
    layer.output_shape(input).map_err(|err| match err {
        Error::Shape {
            op: _,
            expected,
            found,
        } => Error::Shape {
            op: "sequential",
            expected: format!("at layer {index} ({}) {expected}", layer.describe()),
            found,
        },
        other => Error::Shape {
            op: "sequential",
            expected: format!(
                "at layer {index} ({}) an input it accepts",
                layer.describe()
            ),
            found: format!("{input:?} ({other})"),
        },
    })
}

/// `421642` as `421,642`, as torchinfo prints counts.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut width: Option<(usize, usize)> = None;
        let rows: Vec<(String, String, usize)> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                width = carried_width(width, i, layer.as_ref());
                let shape = width.map_or_else(|| "?".into(), |(_, w)| format!("[N, {w}]"));
                (
                    format!("({i}): {}", layer.describe()),
                    shape,
                    layer.num_params(),
                )
            })
            .collect();
        let name_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let shape_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        writeln!(f, "Sequential(")?;
        for (name, shape, params) in &rows {
            writeln!(
                f,
                "  {name:<name_width$} -> {shape:<shape_width$}  params: {params}"
            )?;
        }
        writeln!(f, ")")?;
        write!(f, "Total params: {}", self.num_params())
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `model[i]`: layer `i`, as in PyTorch.
///
/// # Panics
/// If `i` is past the last layer, naming both (`Sequential::layer_mut` returns `None`
/// instead).
///
/// # Examples
/// ```
/// use tapegrad::{Flatten, Relu, Sequential};
/// let model = Sequential::new(vec![Box::new(Flatten), Box::new(Relu)])?;
/// assert_eq!(model[1].describe(), "ReLU()");
/// # Ok::<(), tapegrad::Error>(())
/// ```
impl std::ops::Index<usize> for Sequential {
    type Output = dyn Module;

    #[track_caller]
    fn index(&self, i: usize) -> &(dyn Module + 'static) {
        match self.layers.get(i) {
            Some(layer) => layer.as_ref(),
            None => panic!(
                "Sequential: no layer {i}, the model has {}",
                self.layers.len()
            ),
        }
    }
}

/// `model[i]`, mutably: PyTorch's `model[i].requires_grad_(False)` is
/// `model[i].set_requires_grad(false)`. As with [`Sequential::layer_mut`], the layer can be
/// changed in place but not swapped for another, so the widths checked by
/// [`Sequential::new`] still fit.
///
/// # Panics
/// If `i` is past the last layer, naming both.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Module, Relu, Sequential};
/// let first = Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::zeros(&[3])))?;
/// let mut model = Sequential::new(vec![Box::new(first), Box::new(Relu)])?;
/// model[0].set_requires_grad(false);
/// assert_eq!(model.num_trainable_params(), 0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
impl std::ops::IndexMut<usize> for Sequential {
    #[track_caller]
    fn index_mut(&mut self, i: usize) -> &mut (dyn Module + 'static) {
        let count = self.layers.len();
        match self.layers.get_mut(i) {
            Some(layer) => layer.as_mut(),
            None => panic!("Sequential: no layer {i}, the model has {count}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{
        AdaptiveAvgPool2d, ChaCha8Rng, Conv2d, Conv2dOptions, Dropout, Flatten, Init, Linear,
        MaxPool2d, Maxout, Relu, SeedableRng, Tanh, Tape, Unflatten, gradcheck,
    };

    fn mlp(rng: &mut ChaCha8Rng) -> Sequential {
        Sequential::new(vec![
            Box::new(Linear::new(3, 5, Init::default(), rng).unwrap()),
            Box::new(Tanh),
            Box::new(Dropout::new(0.5, rng).unwrap()),
            Box::new(Maxout::new(5, 4, 2, Init::default(), rng).unwrap()),
            Box::new(Linear::new(4, 2, Init::default(), rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    #[should_panic(expected = "Sequential: no layer 5, the model has 5")]
    fn indexing_past_the_last_layer_names_both() {
        let mut model = mlp(&mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(model[1].describe(), "Tanh()");
        model[4].set_requires_grad(false);
        assert_eq!(model.num_trainable_params(), model.num_params() - 10);
        let _ = &model[5];
    }

    #[test]
    fn names_are_dotted_paths_and_nest() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let inner = mlp(&mut rng);
        let mut outer = Sequential::new(vec![Box::new(inner), Box::new(Tanh)]).unwrap();
        let mut names = Vec::new();
        outer.visit_params(&mut |n, _| names.push(n.to_string()));
        assert_eq!(
            names,
            [
                "0.0.weight",
                "0.0.bias",
                "0.3.weight",
                "0.3.bias",
                "0.4.weight",
                "0.4.bias"
            ]
        );
        let mut mut_names = Vec::new();
        outer.visit_params_mut(&mut |n, _| mut_names.push(n.to_string()));
        assert_eq!(names, mut_names);
        assert_eq!(outer.num_params(), (15 + 5) + (40 + 8) + (8 + 2));
        assert_eq!(
            (outer.in_features(), outer.out_features()),
            (Some(3), Some(2))
        );
    }

    #[test]
    fn width_mismatch_names_the_layer_and_both_widths() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = Sequential::new(vec![
            Box::new(Linear::new(2, 8, Init::default(), &mut rng).unwrap()),
            Box::new(Tanh),
            Box::new(Linear::new(4, 1, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sequential: expected layer 2 input width 8 (output of layer 0), found 4"
        );
    }

    #[test]
    fn eval_is_deterministic_and_train_drops() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let model = mlp(&mut rng);
        let x = random(&[16, 3], 2);
        let tape = Tape::new();
        let v = tape.constant(x);
        let e1 = model.forward(v, Mode::Eval).value();
        assert_eq!(e1, model.forward(v, Mode::Eval).value());
        assert_ne!(e1, model.forward(v, Mode::Train).value());
    }

    #[test]
    fn gradcheck_through_the_chain() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let model = mlp(&mut rng);
        for batch in [4, 1] {
            let x = random(&[batch, 3], 5);
            gradcheck(|v| model.forward(v[0], Mode::Eval), &[x]).unwrap();
        }
    }

    #[test]
    fn a_relu_before_2x2_max_pooling_runs_fused_with_the_same_numbers() {
        use crate::Identity;
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let pad = Conv2dOptions::default().padding(1);
        let pool = || Box::new(MaxPool2d::new(2).unwrap()) as Box<dyn Module>;
        // convolutions with and without bias, grouped, strided, and one whose rows of 64
        // take the vectors along its 32 output channels with AVX-512 (50 taps): the
        // convolution, ReLU and pooling run as one op; after an Identity, the ReLU and the
        // pooling do; apart, none
        let wide = Conv2dOptions::default().padding(2);
        let convs = [
            Conv2d::new(2, 3, [3, 3], pad, Init::default(), &mut rng).unwrap(),
            Conv2d::new(2, 32, [5, 5], wide, Init::default(), &mut rng).unwrap(),
            Conv2d::new(2, 4, [3, 3], pad.groups(2), Init::default(), &mut rng).unwrap(),
            Conv2d::new_no_bias(2, 3, [3, 3], pad.stride(2), Init::default(), &mut rng).unwrap(),
        ];
        for conv in convs {
            let all_fused = Sequential::new(vec![Box::new(conv.clone()), Box::new(Relu), pool()]);
            let relu_pool_fused = Sequential::new(vec![
                Box::new(conv.clone()),
                Box::new(Identity),
                Box::new(Relu),
                pool(),
            ]);
            let apart = Sequential::new(vec![
                Box::new(conv.clone()),
                Box::new(Relu),
                Box::new(Identity),
                pool(),
            ]);
            let models = [all_fused.unwrap(), relu_pool_fused.unwrap(), apart.unwrap()];
            // rounded inputs: ties, zeros, -0.0, all-negative windows, a NaN; even and odd
            // output sizes (odd ones are not fused, and must still agree); a batch large
            // enough to be split across threads
            let shapes = [
                ([2, 2, 6, 10], 1),
                ([1, 2, 4, 4], 2),
                ([1, 2, 5, 7], 3),
                ([4, 2, 64, 64], 4),
            ];
            for (shape, seed) in shapes {
                let mut x = random(&shape, seed).mapv(|v| v.round());
                x[[0, 0, 0, 0]] = -0.0;
                x[[0, 1, 2, 3]] = f32::NAN;
                let run = |model: &Sequential| {
                    let tape = Tape::new();
                    let input = tape.leaf(x.clone());
                    let y = model.forward(input, Mode::Train);
                    // weights of both signs, so that zero slopes leave -0.0 where g·0 does
                    let w = random(&y.shape(), seed + 10).mapv(|v| v.round());
                    let loss = (y * tape.constant(w)).sum();
                    let grads = loss.backward();
                    let mut values = y.value().iter().copied().collect::<Vec<_>>();
                    values.extend(grads.get(input).unwrap().iter().copied());
                    model.visit_params(&mut |_, p| {
                        values.extend(grads.param_grad(p).unwrap().dense().iter().copied())
                    });
                    values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let expected = run(&models[2]);
                assert_eq!(run(&models[0]), expected, "all fused, {shape:?}, {conv:?}");
                assert_eq!(
                    run(&models[1]),
                    expected,
                    "relu + pool fused, {shape:?}, {conv:?}"
                );
            }
        }
        // the fused ops' gradients against finite differences (inputs away from ties and 0)
        let x = crate::autograd::gradcheck::testing::away_from_zero(&[2, 3, 4, 6], 7);
        let model = Sequential::new(vec![Box::new(Relu), pool()]).unwrap();
        gradcheck(
            |v| model.forward(v[0], Mode::Eval),
            std::slice::from_ref(&x),
        )
        .unwrap();
        let conv = Conv2d::new(3, 2, [3, 3], pad, Init::default(), &mut rng).unwrap();
        let model = Sequential::new(vec![Box::new(conv), Box::new(Relu), pool()]).unwrap();
        gradcheck(|v| model.forward(v[0], Mode::Eval), &[x]).unwrap();
    }

    /// W2's CNN: Conv(1→32, 3, pad 1) ReLU MaxPool2 Conv(32→64, 3, pad 1) ReLU MaxPool2
    /// Flatten Linear(3136→128) ReLU Linear(128→10).
    fn w2(rng: &mut ChaCha8Rng) -> Sequential {
        let pad = Conv2dOptions::default().padding(1);
        let init = Init::default();
        Sequential::new(vec![
            Box::new(Conv2d::new(1, 32, [3, 3], pad, init, rng).unwrap()),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            Box::new(Conv2d::new(32, 64, [3, 3], pad, init, rng).unwrap()),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            Box::new(Flatten),
            Box::new(Linear::new(3136, 128, init, rng).unwrap()),
            Box::new(Relu),
            Box::new(Linear::new(128, 10, init, rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn summary_of_w2_gives_torchinfos_shapes_and_counts() {
        let model = w2(&mut ChaCha8Rng::seed_from_u64(0));
        let text = model.summary(&[1, 1, 28, 28]).unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('(')).collect();
        // torchinfo's summary(model, input_size=(1, 1, 28, 28)) for the same nn.Sequential
        let expected = [
            ("[1, 32, 28, 28]", "320"), // 32·(1·9) + 32
            ("[1, 32, 28, 28]", "0"),
            ("[1, 32, 14, 14]", "0"),
            ("[1, 64, 14, 14]", "18,496"), // 64·(32·9) + 64
            ("[1, 64, 14, 14]", "0"),
            ("[1, 64, 7, 7]", "0"),
            ("[1, 3136]", "0"),
            ("[1, 128]", "401,536"), // 128·3136 + 128
            ("[1, 128]", "0"),
            ("[1, 10]", "1,290"),
        ];
        assert_eq!(rows.len(), expected.len());
        for (row, (shape, params)) in rows.iter().zip(expected) {
            let cells: Vec<&str> = row.split("  ").filter(|c| !c.trim().is_empty()).collect();
            assert_eq!(cells[cells.len() - 2].trim(), shape, "{row}");
            assert_eq!(cells[cells.len() - 1].trim(), params, "{row}");
        }
        assert!(
            rows[0].starts_with(
                "(0): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
            )
        );
        assert!(text.starts_with("Input shape: [1, 1, 28, 28]\n"));
        assert!(text.contains("Total params: 421,642\nTrainable params: 421,642\n"));
        assert!(text.contains("Params size (MB): 1.69"));
        assert_eq!(model.num_params(), 421_642);
        // the whole model's shape, and a batch of 5
        assert_eq!(model.output_shape(&[5, 1, 28, 28]).unwrap(), [5, 10]);
        // a real forward pass agrees
        let tape = Tape::new();
        let y = model.forward(tape.constant(random(&[2, 1, 28, 28], 1)), Mode::Eval);
        assert_eq!(y.shape(), [2, 10]);
    }

    #[test]
    fn summary_fails_at_the_first_layer_that_does_not_fit() {
        let model = w2(&mut ChaCha8Rng::seed_from_u64(0));
        let err = model.summary(&[1, 3, 28, 28]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sequential: expected at layer 0 (Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), \
             padding=(1, 1))) a 4-D input [N, 1, H, W], found [1, 3, 28, 28]"
        );
        // 32×32 images give 64·8·8 = 4096 features, not 3136: the Linear layer says so
        let err = model.output_shape(&[1, 1, 32, 32]).unwrap_err().to_string();
        assert!(err.starts_with("sequential: expected at layer 7 (Linear(in_features=3136"));
        assert!(
            err.ends_with("an input [.., 3136], found [1, 4096]"),
            "{err}"
        );
        // rows are not images
        let err = model.summary(&[1, 784]).unwrap_err().to_string();
        assert!(
            err.ends_with("a 4-D input [N, 1, H, W], found [1, 784]"),
            "{err}"
        );
        // a nested Sequential's error names both layers
        let outer = Sequential::new(vec![Box::new(Tanh), Box::new(model)]).unwrap();
        let err = outer.output_shape(&[1, 2, 28, 28]).unwrap_err().to_string();
        assert!(
            err.starts_with("sequential: expected at layer 1 (Sequential(Conv2d("),
            "{err}"
        );
        assert!(err.contains("at layer 0 (Conv2d(1, 32"), "{err}");
    }

    #[test]
    fn widths_of_a_conv_model_are_not_guessed() {
        let model = w2(&mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(
            (model.in_features(), model.out_features()),
            (None, Some(10))
        );
        let text = model.to_string();
        let lines: Vec<&str> = text.lines().collect();
        for conv_row in &lines[1..8] {
            assert!(conv_row.contains("-> ?"), "{conv_row}");
        }
        assert!(lines[8].contains("-> [N, 128]") && lines[9].contains("-> [N, 128]"));
        assert!(lines[10].contains("-> [N, 10]"));
        // dropout on the inputs does not hide the first Linear's width
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mlp = Sequential::new(vec![
            Box::new(Dropout::new(0.2, &mut rng).unwrap()),
            Box::new(Linear::new(784, 10, Init::default(), &mut rng).unwrap()),
            Box::new(Unflatten::new(&[10, 1]).unwrap()),
        ])
        .unwrap();
        assert_eq!((mlp.in_features(), mlp.out_features()), (Some(784), None));
        // a Linear after a Flatten is not checked against a width before the Flatten
        let decoder = Sequential::new(vec![
            Box::new(Linear::new(4, 18, Init::default(), &mut rng).unwrap()),
            Box::new(Unflatten::new(&[2, 3, 3]).unwrap()),
            Box::new(MaxPool2d::new(3).unwrap()),
            Box::new(Flatten),
            Box::new(Linear::new(2, 1, Init::default(), &mut rng).unwrap()),
        ]);
        assert!(decoder.is_ok());
        assert_eq!(decoder.unwrap().output_shape(&[7, 4]).unwrap(), [7, 1]);
    }

    #[test]
    fn windows_compose_by_the_receptive_field_recurrence() {
        let model = w2(&mut ChaCha8Rng::seed_from_u64(0));
        let features = Sequential::new(model.layers.into_iter().take(6).collect()).unwrap();
        // r = 1 + 2·1 + 1·1 + 2·2 + 1·2 = 10, j = 4, padding 1·1 + 1·2 = 3
        let expected = Window {
            kernel: [10, 10],
            stride: [4, 4],
            padding: [3, 3],
            dilation: [1, 1],
        };
        assert_eq!(features.spatial(), Spatial::Window(expected));
        assert_eq!(expected.output_size([28, 28]), Some([7, 7]));
        assert_eq!(
            mlp(&mut ChaCha8Rng::seed_from_u64(0)).spatial(),
            Spatial::Flat
        );
        let global = Sequential::new(vec![Box::new(Relu), Box::new(AdaptiveAvgPool2d)]).unwrap();
        assert_eq!(global.spatial(), Spatial::Global);
        assert_eq!(
            Sequential::new(vec![]).unwrap().spatial(),
            Spatial::Pointwise
        );
    }

    #[test]
    fn summary_lists_layers_shapes_and_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let text = mlp(&mut rng).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8);
        assert!(lines[1].starts_with("  (0): Linear(in_features=3, out_features=5, bias=True)"));
        assert!(lines[2].contains("-> [N, 5]") && lines[2].ends_with("params: 0"));
        assert!(lines[4].contains("Maxout(in_features=5, out_features=4, pieces=2, bias=True)"));
        assert!(lines[4].ends_with("params: 48"));
        assert_eq!(lines[7], "Total params: 78");
        assert_eq!(
            Sequential::new(vec![]).unwrap().to_string(),
            "Sequential(\n)\nTotal params: 0"
        );
    }
}
