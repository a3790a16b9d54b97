//! The [`Module`] trait every layer implements, the [`Mode`] a forward pass runs in, and
//! trainable parameters: [`Param`] and its process-unique [`ParamId`].

use crate::autograd::Var;
use crate::tensor::{SharedTensor, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A layer or a model: a forward pass recorded on the tape, and a walk over its parameters
/// with stable names.
///
/// Names are paths: `"weight"` and `"bias"` inside a layer, `"0.weight"`, `"2.bias"` under a
/// [`Sequential`](crate::Sequential). Checkpoints and optimizers key on them, so a layer's
/// names never change. The trait is object safe, so a `Sequential` holds
/// `Box<dyn Module>`s.
///
/// # Examples
/// A model with one parameter, `y = x·s` (a learned scale):
/// ```
/// use tapegrad::{tensor, Mode, Module, Param, Tape, Var};
///
/// struct Scale(Param);
///
/// impl Module for Scale {
///     fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
///         x * x.tape().param(&self.0)
///     }
///     fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
///         f("scale", &self.0)
///     }
///     fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
///         f("scale", &mut self.0)
///     }
/// }
///
/// let model = Scale(Param::new("scale", tensor::full(&[1], 3.0)));
/// let tape = Tape::new();
/// let y = model.forward(tape.constant(tensor::full(&[2, 1], 2.0)), Mode::Train);
/// assert_eq!(y.value(), tensor::full(&[2, 1], 6.0));
/// assert_eq!(model.num_params(), 1);
/// assert_eq!(model.describe(), "Scale()");
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub trait Module: Send + Sync {
    /// Records the forward pass of `x` on `x`'s tape and returns the output.
    ///
    /// Shape mismatches are programming errors and panic with the op's name and both
    /// shapes, like every op.
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t>;

    /// Calls `f(name, param)` for every parameter, in a fixed order.
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param));

    /// Calls `f(name, param)` for every parameter, mutably (optimizers, initializers,
    /// checkpoint loading), in the same order and with the same names as
    /// [`Module::visit_params`].
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param));

    /// A one-line description in PyTorch's `repr` style, e.g.
    /// `Linear(in_features=2, out_features=8, bias=true)`, used in model summaries. The
    /// default is the type's name followed by `()`, e.g. `Scale()`.
    fn describe(&self) -> String {
        let path = std::any::type_name::<Self>();
        let name = path.split('<').next().unwrap_or(path);
        format!("{}()", name.rsplit("::").next().unwrap_or(name))
    }

    /// The width of the last axis the layer expects, where it has one (`None` for layers
    /// that take any width, such as activations and dropout).
    fn in_features(&self) -> Option<usize> {
        None
    }

    /// The width of the last axis the layer produces, where it has one (`None` for layers
    /// that keep their input's width).
    fn out_features(&self) -> Option<usize> {
        None
    }

    /// Calls `f(name, rng)` for every random generator the module keeps for itself (such as
    /// [`Dropout`](crate::Dropout)'s mask generator, named `"rng"`; `"2.rng"` under a
    /// [`Sequential`](crate::Sequential)), so that a checkpoint can save where each one
    /// stands and a resumed run draws the same numbers. The default visits none.
    fn visit_rngs(&self, _f: &mut dyn FnMut(&str, &ChaCha8Rng)) {}

    /// Calls `f(name, rng)` mutably for the generators of [`Module::visit_rngs`], in the same
    /// order and with the same names (checkpoint loading). The default visits none.
    fn visit_rngs_mut(&mut self, _f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {}

    /// The total number of scalar parameters (`sum(p.numel() for p in model.parameters())`).
    fn num_params(&self) -> usize {
        let mut count = 0;
        self.visit_params(&mut |_, p| count += p.value().len());
        count
    }
}

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(0);

/// Identifies one [`Param`] for the life of the process; [`Gradients`](crate::Gradients)
/// are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    fn fresh() -> Self {
        ParamId(NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// A trainable tensor owned by a module: its id, its name inside the module (`"weight"`,
/// `"bias"`) and its value.
///
/// Put it on a tape with [`Tape::param`](crate::Tape::param) and read its gradient with
/// [`Gradients::param`](crate::Gradients::param). The value is a [`SharedTensor`]: the tape
/// shares it rather than copying it, and a write to a value the tape still shares copies it
/// first (copy-on-write), so the tape always sees the value of its forward pass. Reset the
/// tape before the optimizer step (as [`fit`](crate::fit) does) and the update writes in
/// place.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Param, Tape};
/// let mut w = Param::new("weight", tensor::from_vec(vec![2.0], &[1])?);
/// let tape = Tape::new();
/// let loss = (tape.param(&w) * tape.param(&w)).sum(); // w², used twice
/// let grads = loss.backward();
/// let g = grads.param(&w).unwrap(); // 2w = 4
/// w.value_mut().scaled_add(-0.25, g); // one step of gradient descent
/// assert_eq!(w.value()[[0]], 1.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct Param {
    id: ParamId,
    name: String,
    value: SharedTensor,
}

impl Param {
    /// A new parameter with a fresh id.
    pub fn new(name: impl Into<String>, value: Tensor) -> Self {
        Param {
            id: ParamId::fresh(),
            name: name.into(),
            value: value.into_shared(),
        }
    }

    /// The id gradients are keyed by.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The name inside its module (`"weight"`, `"bias"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current value.
    pub fn value(&self) -> &SharedTensor {
        &self.value
    }

    /// The value, for in-place updates by optimizers and initializers (copied first if a
    /// tape or a snapshot still shares it).
    pub fn value_mut(&mut self) -> &mut SharedTensor {
        &mut self.value
    }
}

/// A clone is a distinct parameter: it gets a fresh id, so gradients of the two are never
/// confused.
impl Clone for Param {
    fn clone(&self) -> Self {
        Param::new(self.name.clone(), self.value.to_owned())
    }
}
