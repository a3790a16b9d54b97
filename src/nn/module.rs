//! The [`Module`] trait every layer implements, the [`Mode`] a forward pass runs in, and
//! trainable parameters: [`Param`] and its process-unique [`ParamId`].

use crate::autograd::Var;
use crate::error::Result;
use crate::nn::shape::{Spatial, trial_output_shape};
use crate::param::Param;
use crate::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Whether a forward pass trains or evaluates (`model.train()` / `model.eval()` in PyTorch).
///
/// Only some layers care: [`Dropout`](crate::Dropout) drops units in `Train` and is the
/// identity in `Eval`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Dropout, Mode, Module, ChaCha8Rng, SeedableRng, Tape};
/// let dropout = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(0))?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::ones(&[2, 3]));
/// assert_eq!(dropout.forward(x, Mode::Eval).value(), tensor::ones(&[2, 3]));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Training: stochastic layers such as dropout are active.
    Train,
    /// Evaluation and inference: every layer is deterministic.
    Eval,
}

/// A layer kind that [`Sequential`](crate::Sequential) can fuse with its neighbour (see
/// [`Module::fusable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fusable {
    /// The rectifier `max(x, 0)` ([`Relu`](crate::Relu)).
    Relu,
    /// Max pooling over 2×2 windows with stride 2 and no padding
    /// ([`MaxPool2d::new(2)`](crate::MaxPool2d)).
    MaxPool2x2,
}

/// A layer or a model: a forward pass recorded on the tape, and a walk over its parameters
/// with stable names.
///
/// Names are paths: `"weight"` and `"bias"` inside a layer, `"0.weight"`, `"2.bias"` under a
/// [`Sequential`](crate::Sequential). Checkpoints and optimizers key on them, so a layer's
/// names never change. The trait is object safe, so a `Sequential` holds
/// `Box<dyn Module>`s.
///
/// Write the walk once, with [`walk!`](crate::walk): list the fields that hold parameters,
/// generators, buffers or other modules, and the macro writes [`Module::visit_params`],
/// [`Module::visit_rngs`], [`Module::visit_buffers`] and their `_mut` twins, so the visits
/// cannot disagree. A field's name is its path segment (`hidden.weight`);
/// `field as "name"` renames it and `field as ""` adds no segment.
///
/// # Examples
/// A model with one parameter, `y = x·s` (a learned scale):
/// ```
/// use tapegrad::{tensor, Mode, Module, Param, Tape, Var};
///
/// struct Scale {
///     scale: Param,
/// }
///
/// impl Module for Scale {
///     fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
///         x * x.tape().param(&self.scale)
///     }
///     tapegrad::walk!(scale);
/// }
///
/// let model = Scale { scale: Param::new("scale", tensor::full(&[1], 3.0)) };
/// let tape = Tape::new();
/// let y = model.forward(tape.constant(tensor::full(&[2, 1], 2.0)), Mode::Train);
/// assert_eq!(y.value(), tensor::full(&[2, 1], 6.0));
/// assert_eq!(model.num_params(), 1);
/// assert_eq!(model.describe(), "Scale()");
/// let mut names = Vec::new();
/// model.visit_params(&mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["scale"]);
/// ```
///
/// A model made of layers: the walk lists the layers, and their parameters get the
/// layers' field names as prefixes.
/// ```
/// use tapegrad::{ChaCha8Rng, Dropout, Init, Linear, Mode, Module, SeedableRng, Var};
///
/// struct Mlp {
///     hidden: Linear,
///     dropout: Dropout,
///     out: Linear,
/// }
///
/// impl Module for Mlp {
///     fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
///         let h = self.dropout.forward(self.hidden.forward(x, mode).relu(), mode);
///         self.out.forward(h, mode)
///     }
///     tapegrad::walk!(hidden, dropout, out);
/// }
///
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let model = Mlp {
///     hidden: Linear::new(2, 4, Init::default(), &mut rng)?,
///     dropout: Dropout::new(0.5, &mut rng)?,
///     out: Linear::new(4, 1, Init::default(), &mut rng)?,
/// };
/// let mut names = Vec::new();
/// model.visit_params(&mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]);
/// let mut rngs = Vec::new();
/// model.visit_rngs(&mut |name, _| rngs.push(name.to_string()));
/// assert_eq!(rngs, ["dropout.rng"]);
/// assert_eq!(model.num_params(), 17);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub trait Module: Send + Sync {
    /// Records the forward pass of `x` on `x`'s tape and returns the output.
    ///
    /// Shape mismatches are programming errors and panic with the op's name and both
    /// shapes, like every op.
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t>;

    /// Calls `f(name, param)` for every parameter, in a fixed order. Write it with
    /// [`walk!`](crate::walk).
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param));

    /// Calls `f(name, param)` for every parameter, mutably (optimizers, initializers,
    /// checkpoint loading), in the same order and with the same names as
    /// [`Module::visit_params`]. Write it with [`walk!`](crate::walk).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module};
    /// let mut layer = Linear::from_parts(tensor::ones(&[2, 2]), Some(tensor::ones(&[2])))?;
    /// layer.visit_params_mut(&mut |name, p| {
    ///     if name == "bias" {
    ///         p.value_mut().fill(0.0);
    ///     }
    /// });
    /// assert!(layer.bias().unwrap().value().iter().all(|&b| b == 0.0));
    /// assert!(layer.weight().value().iter().all(|&w| w == 1.0));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param));

    /// A one-line description in PyTorch's `repr` style, e.g.
    /// `Linear(in_features=2, out_features=8, bias=True)`, used in model summaries. The
    /// default is the type's name followed by `()`, e.g. `Scale()`.
    fn describe(&self) -> String {
        let path = std::any::type_name::<Self>();
        let name = path.split('<').next().unwrap_or(path);
        format!("{}()", name.rsplit("::").next().unwrap_or(name))
    }

    /// The width of the last axis the layer expects, where it has one (`None` for layers
    /// that take any width, such as activations and dropout).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module, Relu};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), None)?; // [out, in]
    /// assert_eq!(layer.in_features(), Some(2));
    /// assert_eq!(Relu.in_features(), None); // any width
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn in_features(&self) -> Option<usize> {
        None
    }

    /// The width of the last axis the layer produces, where it has one (`None` for layers
    /// that keep their input's width).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module, Relu};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), None)?;
    /// assert_eq!(layer.out_features(), Some(3));
    /// assert_eq!(Relu.out_features(), None); // keeps its input's width
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn out_features(&self) -> Option<usize> {
        None
    }

    /// The shape of the output for an input of shape `input`, or an error saying why the
    /// layer does not accept that input, without running the layer's arithmetic where the
    /// layer knows its shapes (as PyTorch users learn them from torchinfo's `summary`).
    ///
    /// Every layer of this crate computes it exactly. The default, for your own layers,
    /// runs [`Module::forward`] once in [`Mode::Eval`] on zeros of shape `input` on a fresh
    /// tape, and turns a panic of that pass (an op's shape check) into an error carrying
    /// the panic's message. The panic is caught with `std::panic::catch_unwind` (so a build
    /// with `panic = "abort"` aborts instead) and is not printed: the first trial installs
    /// a panic hook that forwards every other panic to the hook it replaced. Override it
    /// when the trial pass is expensive or the layer knows its shapes.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) naming the layer, the input it expects and
    /// the one it got: `conv2d: expected a 4-D input [N, 1, H, W], found [1, 3, 28, 28]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), None)?;
    /// assert_eq!(layer.output_shape(&[5, 2])?, [5, 3]);
    /// let err = layer.output_shape(&[5, 4]).unwrap_err();
    /// assert_eq!(err.to_string(), "linear: expected an input [.., 2], found [5, 4]");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        trial_output_shape(self, input)
    }

    /// Where each output unit looks on the input's image grid, for receptive fields
    /// ([`diagnostics::receptive_field`](crate::diagnostics::receptive_field)): a sliding
    /// [`Window`](crate::Window) for convolutions and pooling, [`Spatial::Flat`] for
    /// layers whose outputs leave the grid (flatten, linear), [`Spatial::Global`] for global
    /// pooling. The default is [`Spatial::Pointwise`] (activations, dropout,
    /// normalization): override it in a layer of your own that mixes neighbouring pixels
    /// or changes the image size. (The receptive-field report checks a pointwise layer's
    /// output against [`Module::output_shape`] and fails rather than report wrong fields.)
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Conv2d, Conv2dOptions, Flatten, Init, Module, Relu, SeedableRng, Spatial, Window};
    /// let conv = Conv2d::new(1, 4, [3, 3], Conv2dOptions::default().padding(1), Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(conv.spatial(), Spatial::Window(Window::square(3, 1, 1)));
    /// assert_eq!(Relu.spatial(), Spatial::Pointwise);
    /// assert_eq!(Flatten.spatial(), Spatial::Flat);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn spatial(&self) -> Spatial {
        Spatial::Pointwise
    }

    /// Whether this layer is one that [`Sequential`](crate::Sequential) may run together
    /// with its neighbour as one op of the same numbers: a [`Relu`](crate::Relu) followed by
    /// a 2×2, stride-2, unpadded [`MaxPool2d`](crate::MaxPool2d) runs as the pooling of the
    /// rectified inputs, which computes the ReLU on a quarter of the elements (the maximum of
    /// rectified values is the rectified maximum, and the gradient takes the same path). The
    /// default, `None`, never fuses; a layer of another crate should keep it (returning
    /// `Some` claims that its forward is exactly that op, and `Sequential` then skips it).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Fusable, MaxPool2d, Module, Relu, Tanh};
    /// assert_eq!(Relu.fusable(), Some(Fusable::Relu));
    /// assert_eq!(MaxPool2d::new(2)?.fusable(), Some(Fusable::MaxPool2x2));
    /// assert_eq!(MaxPool2d::new(3)?.fusable(), None);
    /// assert_eq!(Tanh.fusable(), None);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn fusable(&self) -> Option<Fusable> {
        None
    }

    /// This layer followed by a ReLU and a 2×2, stride-2, unpadded max pooling, run as one
    /// op with the same values and gradients, when the layer knows how; `None` (the
    /// default) lets [`Sequential`](crate::Sequential) run the three one after the other.
    /// [`Conv2d`](crate::Conv2d) does it when its output's height and width are even: it
    /// pools each image's output while it is still in cache, and its backward forms each
    /// image's output gradient from the pooled one just before that image's products, so
    /// the full-size output and its gradient make one trip through memory instead of four.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Conv2d, Conv2dOptions, Init, MaxPool2d, Mode, Module};
    /// use tapegrad::{Relu, SeedableRng, Tape};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let conv = Conv2d::new(1, 2, [3, 3], Conv2dOptions::default().padding(1), Init::default(), &mut rng)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::uniform(&[1, 1, 6, 6], -1.0, 1.0, &mut rng)?);
    /// let fused = conv.forward_relu_max_pool_2x2(x, Mode::Train).unwrap();
    /// let one_by_one = MaxPool2d::new(2)?.forward(Relu.forward(conv.forward(x, Mode::Train), Mode::Train), Mode::Train);
    /// assert_eq!(fused.value(), one_by_one.value());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn forward_relu_max_pool_2x2<'t>(&self, _x: Var<'t>, _mode: Mode) -> Option<Var<'t>> {
        None
    }

    /// Calls `f(name, rng)` for every random generator the module keeps for itself (such as
    /// [`Dropout`](crate::Dropout)'s mask generator, named `"rng"`; `"2.rng"` under a
    /// [`Sequential`](crate::Sequential)), so that a checkpoint can save where each one
    /// stands and a resumed run draws the same numbers. The default visits none;
    /// [`walk!`](crate::walk) writes it. A generator that a data-parallel
    /// [`TrainStep`](crate::TrainStep) should not make thread-order dependent is a
    /// [`SampleRng`](crate::SampleRng), which draws per sample.
    fn visit_rngs(&self, _f: &mut dyn FnMut(&str, &ChaCha8Rng)) {}

    /// Calls `f(name, rng)` mutably for the generators of [`Module::visit_rngs`], in the same
    /// order and with the same names (checkpoint loading). The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dropout, Module, SeedableRng};
    /// let mut dropout = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// // put back a saved generator, as loading a checkpoint does
    /// dropout.visit_rngs_mut(&mut |_, rng| *rng = ChaCha8Rng::seed_from_u64(42));
    /// let mut seen = Vec::new();
    /// dropout.visit_rngs(&mut |name, rng| seen.push((name.to_string(), rng.clone())));
    /// assert_eq!(seen, [("rng".to_string(), ChaCha8Rng::seed_from_u64(42))]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn visit_rngs_mut(&mut self, _f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {}

    /// Calls `f(name, buffer)` for every buffer: state that is saved with the model but not
    /// trained, such as a [`BatchNorm2d`](crate::BatchNorm2d)'s `"running_mean"` (PyTorch's
    /// `named_buffers()`; buffers are in its `state_dict` beside the parameters, and so in a
    /// checkpoint and in [`export_safetensors`](crate::checkpoint::export_safetensors) here).
    /// The default visits none; [`walk!`](crate::walk) writes it.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm1d, Linear, Module, tensor};
    /// let mut names = Vec::new();
    /// BatchNorm1d::new(2)?.visit_buffers(&mut |name, b| names.push((name.to_string(), b.len())));
    /// assert_eq!(names[0], ("running_mean".to_string(), 2));
    /// let mut none = 0;
    /// Linear::from_parts(tensor::ones(&[1, 2]), None)?.visit_buffers(&mut |_, _| none += 1);
    /// assert_eq!(none, 0); // the default visits nothing
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn visit_buffers(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    /// Calls `f(name, buffer)` mutably for the buffers of [`Module::visit_buffers`], in the
    /// same order and with the same names (checkpoint loading). The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{BatchNorm1d, Module, tensor};
    /// let mut bn = BatchNorm1d::new(2)?;
    /// bn.visit_buffers_mut(&mut |name, b| if name == "running_mean" { b.fill(3.0) });
    /// assert_eq!(bn.running_mean(), Some(tensor::full(&[2], 3.0)));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn visit_buffers_mut(&mut self, _f: &mut dyn FnMut(&str, &mut Tensor)) {}

    /// The total number of scalar parameters (`sum(p.numel() for p in model.parameters())`).
    fn num_params(&self) -> usize {
        let mut count = 0;
        self.visit_params(&mut |_, p| count += p.value().len());
        count
    }

    /// The number of scalar parameters that train ([`Param::requires_grad`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, Module, SeedableRng};
    /// let mut layer = Linear::new(3, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(layer.num_trainable_params(), 8);
    /// layer.weight_mut().set_requires_grad(false);
    /// assert_eq!((layer.num_params(), layer.num_trainable_params()), (8, 2));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn num_trainable_params(&self) -> usize {
        let mut count = 0;
        self.visit_params(&mut |_, p| {
            if p.requires_grad() {
                count += p.value().len();
            }
        });
        count
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter of the module
    /// ([`Param::set_requires_grad`]): PyTorch's `module.requires_grad_(requires)`, the way to
    /// fine-tune a model with a frozen encoder. A frozen parameter gets no gradient, so its
    /// part of the backward pass is not computed, optimizers leave it alone, and clipping by
    /// the global norm does not count it.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, Mode, Module, Optimizer, Relu, SeedableRng, Sequential, Sgd, Tape, tensor};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut encoder = Linear::new(4, 3, Init::default(), &mut rng)?;
    /// encoder.set_requires_grad(false);
    /// let mut model = Sequential::new(vec![
    ///     Box::new(encoder),
    ///     Box::new(Relu),
    ///     Box::new(Linear::new(3, 2, Init::default(), &mut rng)?),
    /// ])?;
    /// let encoder_values = |m: &Sequential| {
    ///     let mut values = Vec::new();
    ///     m.layers()[0].visit_params(&mut |_, p| values.push(p.value().to_owned()));
    ///     values
    /// };
    /// let before = encoder_values(&model);
    /// let mut tape = Tape::new();
    /// let x = tape.constant(tensor::ones(&[5, 4]));
    /// let loss = model.forward(x, Mode::Train).cross_entropy(&[0, 1, 0, 1, 0]);
    /// let grads = loss.backward();
    /// tape.reset();
    /// Sgd::new(0.1)?.step(&mut model, &grads)?;
    /// assert_eq!(encoder_values(&model), before); // the frozen layer did not move
    /// assert_eq!((model.num_params(), model.num_trainable_params()), (23, 8));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn set_requires_grad(&mut self, requires: bool) {
        self.visit_params_mut(&mut |_, p| p.set_requires_grad(requires));
    }
}

/// A part of a module that holds parameters, generators or buffers, as
/// [`walk!`](crate::walk) lists them: a [`Param`], any [`Module`] (a nested layer, also as
/// `Box<dyn Module>`), a generator ([`ChaCha8Rng`], also behind a `Mutex`), a buffer
/// ([`Tensor`], also behind a `Mutex` when the forward pass updates it), or an `Option` or
/// `Vec` of parts.
///
/// `path` is the part's name inside its module: a [`Param`] is visited under `path`
/// itself, a module's parameters under `path.name` (or plain `name` when `path` is empty),
/// a `Vec`'s items under `path.0`, `path.1`, … and an `Option` only when it is `Some`.
/// Implement it for a container of your own to list that container in `walk!`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Param, Walk};
/// let layers = vec![Some(Param::weight(tensor::ones(&[2]))), None];
/// let mut names = Vec::new();
/// layers.walk_params("blocks", &mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["blocks.0"]);
/// ```
pub trait Walk {
    /// Calls `f(path, param)` for every parameter of the part, in a fixed order.
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param));

    /// Calls `f(path, param)` mutably, in the order and with the names of
    /// [`Walk::walk_params`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Walk};
    /// let mut params = vec![Param::weight(tensor::ones(&[2])), Param::bias(tensor::ones(&[2]))];
    /// params.walk_params_mut("", &mut |name, p| {
    ///     if name == "1" {
    ///         p.value_mut().fill(0.0);
    ///     }
    /// });
    /// assert_eq!(params[1].value().sum(), 0.0);
    /// assert_eq!(params[0].value().sum(), 2.0);
    /// ```
    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param));

    /// Calls `f(path, rng)` for every generator of the part. The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, SeedableRng, Walk};
    /// let noise = vec![ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(2)];
    /// let mut names = Vec::new();
    /// noise.walk_rngs("noise", &mut |name, _| names.push(name.to_string()));
    /// assert_eq!(names, ["noise.0", "noise.1"]);
    /// ```
    fn walk_rngs(&self, _path: &str, _f: &mut dyn FnMut(&str, &ChaCha8Rng)) {}

    /// Calls `f(path, rng)` mutably, in the order and with the names of
    /// [`Walk::walk_rngs`]. The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, SeedableRng, Walk};
    /// let mut noise = Some(ChaCha8Rng::seed_from_u64(1));
    /// noise.walk_rngs_mut("noise", &mut |_, rng| *rng = ChaCha8Rng::seed_from_u64(7));
    /// assert_eq!(noise, Some(ChaCha8Rng::seed_from_u64(7)));
    /// ```
    fn walk_rngs_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {}

    /// Calls `f(path, buffer)` for every buffer of the part (see [`Module::visit_buffers`]).
    /// The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Walk};
    /// let stats = vec![tensor::zeros(&[2]), tensor::ones(&[3])];
    /// let mut seen = Vec::new();
    /// stats.walk_buffers("stats", &mut |name, b| seen.push((name.to_string(), b.len())));
    /// assert_eq!(seen, [("stats.0".to_string(), 2), ("stats.1".to_string(), 3)]);
    /// ```
    fn walk_buffers(&self, _path: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}

    /// Calls `f(path, buffer)` mutably, in the order and with the names of
    /// [`Walk::walk_buffers`]. The default visits none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Walk};
    /// let mut scale = tensor::ones(&[2]);
    /// scale.walk_buffers_mut("scale", &mut |_, b| b.fill(0.5));
    /// assert_eq!(scale, tensor::full(&[2], 0.5));
    /// ```
    fn walk_buffers_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Tensor)) {}
}

/// `path.name`, or `name` alone at the top (`path` empty).
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Walk for Param {
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(path, self)
    }

    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(path, self)
    }
}

impl<M: Module + ?Sized> Walk for M {
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param)) {
        if path.is_empty() {
            self.visit_params(f)
        } else {
            self.visit_params(&mut |name, p| f(&join(path, name), p))
        }
    }

    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if path.is_empty() {
            self.visit_params_mut(f)
        } else {
            self.visit_params_mut(&mut |name, p| f(&join(path, name), p))
        }
    }

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        if path.is_empty() {
            self.visit_rngs(f)
        } else {
            self.visit_rngs(&mut |name, r| f(&join(path, name), r))
        }
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        if path.is_empty() {
            self.visit_rngs_mut(f)
        } else {
            self.visit_rngs_mut(&mut |name, r| f(&join(path, name), r))
        }
    }

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if path.is_empty() {
            self.visit_buffers(f)
        } else {
            self.visit_buffers(&mut |name, b| f(&join(path, name), b))
        }
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        if path.is_empty() {
            self.visit_buffers_mut(f)
        } else {
            self.visit_buffers_mut(&mut |name, b| f(&join(path, name), b))
        }
    }
}

impl Walk for Box<dyn Module> {
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param)) {
        (**self).walk_params(path, f)
    }

    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        (**self).walk_params_mut(path, f)
    }

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        (**self).walk_rngs(path, f)
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        (**self).walk_rngs_mut(path, f)
    }

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        (**self).walk_buffers(path, f)
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        (**self).walk_buffers_mut(path, f)
    }
}

/// A buffer the module only reads in its forward pass (PyTorch's `register_buffer`).
impl Walk for Tensor {
    fn walk_params(&self, _path: &str, _f: &mut dyn FnMut(&str, &Param)) {}

    fn walk_params_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(path, self)
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(path, self)
    }
}

/// A buffer the module updates in its `&self` forward pass, such as a batch norm's running
/// statistics; a poisoned lock is still read, as for a generator.
impl Walk for Mutex<Tensor> {
    fn walk_params(&self, _path: &str, _f: &mut dyn FnMut(&str, &Param)) {}

    fn walk_params_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(path, &self.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(path, self.get_mut().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Walk for ChaCha8Rng {
    fn walk_params(&self, _path: &str, _f: &mut dyn FnMut(&str, &Param)) {}

    fn walk_params_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        f(path, self)
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        f(path, self)
    }
}

/// A generator shared by `&self` forward passes; a poisoned lock is still read, since a
/// generator's state is valid whatever panicked while it was held.
impl Walk for Mutex<ChaCha8Rng> {
    fn walk_params(&self, _path: &str, _f: &mut dyn FnMut(&str, &Param)) {}

    fn walk_params_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        f(path, &self.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        f(path, self.get_mut().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<T: Walk> Walk for Option<T> {
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(part) = self {
            part.walk_params(path, f)
        }
    }

    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(part) = self {
            part.walk_params_mut(path, f)
        }
    }

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        if let Some(part) = self {
            part.walk_rngs(path, f)
        }
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        if let Some(part) = self {
            part.walk_rngs_mut(path, f)
        }
    }

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(part) = self {
            part.walk_buffers(path, f)
        }
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        if let Some(part) = self {
            part.walk_buffers_mut(path, f)
        }
    }
}

impl<T: Walk> Walk for Vec<T> {
    fn walk_params(&self, path: &str, f: &mut dyn FnMut(&str, &Param)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter().enumerate() {
            part.walk_params(at.of(index), f)
        }
    }

    fn walk_params_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter_mut().enumerate() {
            part.walk_params_mut(at.of(index), f)
        }
    }

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter().enumerate() {
            part.walk_rngs(at.of(index), f)
        }
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter_mut().enumerate() {
            part.walk_rngs_mut(at.of(index), f)
        }
    }

    fn walk_buffers(&self, path: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter().enumerate() {
            part.walk_buffers(at.of(index), f)
        }
    }

    fn walk_buffers_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        let mut at = IndexPath::new(path);
        for (index, part) in self.iter_mut().enumerate() {
            part.walk_buffers_mut(at.of(index), f)
        }
    }
}

/// The paths `path.0`, `path.1`, … (or `0`, `1`, … at the top) of a `Vec`'s items, written
/// into one reused buffer, so that a walk over a [`Sequential`](crate::Sequential)
/// allocates no more than one name per parameter.
struct IndexPath {
    buffer: String,
    prefix: usize,
}

impl IndexPath {
    fn new(path: &str) -> Self {
        let buffer = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        IndexPath {
            prefix: buffer.len(),
            buffer,
        }
    }

    fn of(&mut self, index: usize) -> &str {
        use std::fmt::Write;
        self.buffer.truncate(self.prefix);
        write!(self.buffer, "{index}").expect("writing to a String cannot fail");
        &self.buffer
    }
}

/// Writes a [`Module`]'s parameter walk from one list of its fields: the six visitors
/// [`Module::visit_params`], [`Module::visit_rngs`] and [`Module::visit_buffers`] and their
/// `_mut` twins, in the order of the list and with the same names, so they cannot
/// disagree. Use it inside `impl Module for …`.
///
/// Each field is a [`Walk`] part: a [`Param`], a nested module, a generator, or an
/// `Option`/`Vec` of them. Its path segment is the field's name; `field as "name"` gives
/// another one and `field as ""` none (a [`Sequential`](crate::Sequential) lists
/// `layers as ""`, so its parameters are `"0.weight"`, not `"layers.0.weight"`). Tuple
/// fields need a name: `0 as "scale"`. A module without parameters writes `walk!()`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Param, Role, Tape, Var};
///
/// /// `y = Linear(x) / t`, with a learned temperature `t`.
/// struct Tempered(Linear, Param);
///
/// impl Module for Tempered {
///     fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
///         self.0.forward(x, mode) / x.tape().param(&self.1)
///     }
///     tapegrad::walk!(0 as "", 1 as "temperature");
/// }
///
/// let layer = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
/// let t = Param::with_role("temperature", Role::Custom("temperature"), tensor::full(&[1], 2.0));
/// let model = Tempered(layer, t);
/// let tape = Tape::new();
/// let y = model.forward(tape.constant(tensor::from_vec(vec![1.0, 3.0], &[1, 2])?), Mode::Eval);
/// assert_eq!(y.item(), 2.0); // (1 + 3) / 2
/// let mut names = Vec::new();
/// model.visit_params(&mut |name, p| names.push((name.to_string(), p.role())));
/// assert_eq!(
///     names,
///     [("weight".to_string(), Role::Weight), ("temperature".to_string(), Role::Custom("temperature"))]
/// );
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[macro_export]
macro_rules! walk {
    (@name $field:tt) => {
        stringify!($field)
    };
    (@name $field:tt $name:literal) => {
        $name
    };
    ($($field:tt $(as $name:literal)?),* $(,)?) => {
        #[allow(unused_variables)]
        fn visit_params(&self, f: &mut dyn FnMut(&str, &$crate::Param)) {
            $($crate::Walk::walk_params(&self.$field, $crate::walk!(@name $field $($name)?), f);)*
        }

        #[allow(unused_variables)]
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut $crate::Param)) {
            $($crate::Walk::walk_params_mut(
                &mut self.$field,
                $crate::walk!(@name $field $($name)?),
                f,
            );)*
        }

        #[allow(unused_variables)]
        fn visit_rngs(&self, f: &mut dyn FnMut(&str, &$crate::ChaCha8Rng)) {
            $($crate::Walk::walk_rngs(&self.$field, $crate::walk!(@name $field $($name)?), f);)*
        }

        #[allow(unused_variables)]
        fn visit_rngs_mut(&mut self, f: &mut dyn FnMut(&str, &mut $crate::ChaCha8Rng)) {
            $($crate::Walk::walk_rngs_mut(
                &mut self.$field,
                $crate::walk!(@name $field $($name)?),
                f,
            );)*
        }

        #[allow(unused_variables)]
        fn visit_buffers(&self, f: &mut dyn FnMut(&str, &$crate::Tensor)) {
            $($crate::Walk::walk_buffers(&self.$field, $crate::walk!(@name $field $($name)?), f);)*
        }

        #[allow(unused_variables)]
        fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut $crate::Tensor)) {
            $($crate::Walk::walk_buffers_mut(
                &mut self.$field,
                $crate::walk!(@name $field $($name)?),
                f,
            );)*
        }
    };
}

/// A flag as Python writes it (`True`, `False`), for [`Module::describe`]'s PyTorch-style
/// `repr`.
pub(crate) fn python_bool(flag: bool) -> &'static str {
    if flag { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Linear, Relu, tensor};
    use rand::SeedableRng;

    /// Every kind of part at once: boxed modules in a `Vec`, an absent `Option`, a
    /// generator behind a `Mutex` and one without, a tuple field renamed.
    struct Parts(
        Vec<Box<dyn Module>>,
        Option<Param>,
        Option<Param>,
        Mutex<ChaCha8Rng>,
        ChaCha8Rng,
    );

    impl Module for Parts {
        fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
            x
        }
        crate::walk!(0 as "layers", 1 as "present", 2 as "absent", 3 as "shared", 4 as "own");
    }

    #[test]
    fn walk_visits_every_kind_of_part_alike_in_all_four_visits() {
        let linear = Linear::from_parts(tensor::ones(&[2, 2]), None).unwrap();
        let mut parts = Parts(
            vec![Box::new(Relu), Box::new(linear)],
            Some(Param::bias(tensor::zeros(&[2]))),
            None,
            Mutex::new(ChaCha8Rng::seed_from_u64(0)),
            ChaCha8Rng::seed_from_u64(1),
        );
        let (mut params, mut params_mut) = (Vec::new(), Vec::new());
        parts.visit_params(&mut |n, _| params.push(n.to_string()));
        parts.visit_params_mut(&mut |n, _| params_mut.push(n.to_string()));
        assert_eq!(params, ["layers.1.weight", "present"]);
        assert_eq!(params_mut, params);
        let (mut rngs, mut rngs_mut) = (Vec::new(), Vec::new());
        parts.visit_rngs(&mut |n, _| rngs.push(n.to_string()));
        parts.visit_rngs_mut(&mut |n, r| {
            rngs_mut.push(n.to_string());
            *r = ChaCha8Rng::seed_from_u64(7);
        });
        assert_eq!(rngs, ["shared", "own"]);
        assert_eq!(rngs_mut, rngs);
        // the mutable visit reaches the generators themselves
        let fresh = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(*parts.3.lock().unwrap(), fresh);
        assert_eq!(parts.4, fresh);
        assert_eq!(parts.num_params(), 6);
    }
}
