//! The [`Tape`] (a Wengert list of recorded ops), the [`Var`] handle into it, reverse-mode
//! and the ops' shared plumbing (recording, the buffer pool). Reverse-mode [`Var::backward`]
//! and the [`Gradients`](crate::Gradients) it returns are in `gradients.rs`.
//!
//! Every op appends one node holding its output value, its parents and, when some input
//! needs a gradient, its backward rule. Nodes are stored in creation order, so walking the
//! list backwards is already a topological order: no graph sort is needed. The backward rule
//! of each op is written beside its forward in `ops/`.

use crate::autograd::grad::Grad;
use crate::autograd::shard_group::ShardMember;
use crate::kernels::pool::BufferPool;
use crate::param::{Param, ParamId};
use crate::tensor::{Elem, Tensor};
use ndarray::{Array, ArrayView, ArrayViewD, Dimension};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A node's value: shared, so that transpose and reshape of contiguous data are free and a
/// parameter goes on the tape without a copy.
pub(crate) type Value = crate::tensor::SharedTensor;

/// A backward rule: one gradient per parent, in parent order (`None` for a parent that needs
/// none).
type BackwardFn = Box<dyn Fn(&Backward<'_>) -> [Option<Grad>; 2] + Send>;

/// An op's output: a fresh [`Tensor`], or a [`Value`] that shares another node's data.
pub(crate) trait IntoValue {
    fn into_value(self) -> Value;
}

impl IntoValue for Tensor {
    fn into_value(self) -> Value {
        self.into_shared()
    }
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

/// What a backward rule sees.
pub(crate) struct Backward<'a> {
    /// `∂L/∂out`, the gradient flowing into this node.
    pub grad: &'a Tensor,
    /// The node's own forward output.
    pub out: &'a Value,
    /// The parents' values, in parent order (a unary op sees its input twice).
    pub inputs: [&'a Value; 2],
    /// Whether each parent needs a gradient; a rule may skip the work for one that does not.
    pub needs: [bool; 2],
    /// Whether each parent is a leaf (a parameter or an input), whose gradient may be handed
    /// on as [`Grad::Outer`] factors.
    pub leaf: [bool; 2],
    /// The tape, whose reused buffers a rule should allocate its gradients from.
    pub tape: &'a Tape,
    /// What the op saved for its backward beside its output ([`Tape::record_saving`]).
    pub saved: Option<&'a Value>,
}

pub(super) struct Node {
    pub(super) op: &'static str,
    pub(super) value: Value,
    /// The parameter this leaf holds a copy of.
    pub(super) param: Option<ParamId>,
    pub(super) parents: [usize; 2],
    pub(super) arity: usize,
    pub(super) requires_grad: bool,
    pub(super) backward: Option<BackwardFn>,
    /// A value the backward rule needs beside the node's output and inputs
    /// ([`Tape::record_saving`]); its buffer goes back to the pool at the reset.
    pub(super) saved: Option<Value>,
}

/// A value that can be put on a tape with [`Tape::leaf`] or [`Tape::constant`]: an owned
/// array of any dimensionality (moved in, no copy), or a borrowed array or view (copied into
/// a buffer the tape reuses across steps, so a training loop allocates nothing for it).
///
/// # Examples
/// ```
/// use tapegrad::{ndarray, tensor, Tape};
/// let tape = Tape::new();
/// let owned = tensor::ones(&[2, 2]); // moved in, no copy
/// let borrowed = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]); // copied into a reused buffer
/// let x = tape.constant(owned) + tape.leaf(&borrowed);
/// let view = tape.constant(borrowed.row(0)); // a view, copied
/// assert_eq!(x.value().as_slice().unwrap(), &[2.0, 3.0, 4.0, 5.0]);
/// assert_eq!(view.shape(), vec![2]);
/// ```
pub trait TapeInput {
    /// The value as a [`Tensor`] owned by `tape`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape, TapeInput};
    /// let tape = Tape::new();
    /// let owned = tensor::from_vec(vec![1.0, 2.0], &[2])?.into_tensor(&tape); // moved
    /// let copied = (&owned).into_tensor(&tape); // copied into one of the tape's buffers
    /// assert_eq!(owned, copied);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn into_tensor(self, tape: &Tape) -> Tensor;
}

impl<D: Dimension> TapeInput for Array<Elem, D> {
    fn into_tensor(self, _: &Tape) -> Tensor {
        self.into_dyn()
    }
}

impl<D: Dimension> TapeInput for &Array<Elem, D> {
    fn into_tensor(self, tape: &Tape) -> Tensor {
        tape.copy(self.view().into_dyn())
    }
}

impl<D: Dimension> TapeInput for ArrayView<'_, Elem, D> {
    fn into_tensor(self, tape: &Tape) -> Tensor {
        tape.copy(self.into_dyn())
    }
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(0);

/// A record of the ops of one forward pass, in the order they ran.
///
/// Create leaves with [`Tape::leaf`] (inputs that need a gradient) and [`Tape::constant`]
/// (inputs that do not), combine them with the methods of [`Var`], then call
/// [`Var::backward`] on a scalar to get [`Gradients`](crate::Gradients). For the next step call
/// [`Tape::reset`]: it keeps the tape's allocations (its node list and the value buffers,
/// which the next step's ops reuse).
///
/// [`Tape::inference`] makes a tape that computes values without recording backward rules,
/// as `torch.no_grad()` does.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let x = tape.leaf(tensor::from_vec(vec![3.0], &[])?);
/// // y = x² + 5x + 4, dy/dx = 2x + 5 = 11 at x = 3
/// let y = x * x + x * 5.0 + 4.0;
/// assert_eq!(y.item(), 28.0);
/// let grads = y.backward();
/// assert_eq!(grads.get(x).unwrap().sum(), 11.0);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub struct Tape {
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(super) recording: bool,
    pub(super) nodes: RefCell<Vec<Node>>,
    /// The buffers this tape's ops and backward rules reuse from step to step.
    pool: BufferPool,
    step_rows: Cell<Option<StepRows>>,
    /// How many times random layers have drawn their streams on this tape since its step
    /// rows were set ([`Tape::next_random_draw`]).
    random_draws: Cell<u64>,
    /// This tape's shard of a data-parallel step, for ops that sum over the whole batch.
    shard: RefCell<Option<ShardMember>>,
}

/// Where a tape's samples sit in a training step: set by [`TrainStep`](crate::TrainStep) on
/// the tape of each shard, read by random layers through
/// [`SampleRng`](crate::SampleRng) so that a sample draws the same numbers in any shard.
///
/// # Examples
/// ```
/// use std::sync::Mutex;
/// use tapegrad::{ndarray::Array2, ChaCha8Rng, Dataset, Init, Linear, Loss, Mode, Module,
///     SeedableRng, Sgd, StepRows, Tape, TrainStep, Var};
///
/// /// A linear layer that notes where each shard's rows start.
/// struct Spy {
///     linear: Linear,
///     seen: Mutex<Vec<StepRows>>,
/// }
///
/// impl Module for Spy {
///     fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
///         self.seen.lock().unwrap().extend(x.tape().step_rows());
///         self.linear.forward(x, mode)
///     }
///     tapegrad::walk!(linear);
/// }
///
/// let labels = (0..64).map(|i| i % 2).collect();
/// let data = Dataset::from_floats(Array2::<f32>::ones((64, 2)), labels)?;
/// let linear = Linear::new(2, 2, Init::default(), &mut ChaCha8Rng::seed_from_u64(0))?;
/// let mut model = Spy { linear, seen: Mutex::default() };
/// let mut batches = data.batches(64)?;
/// let batch = batches.next().unwrap();
/// TrainStep::with_shards(2)?.run(&mut model, &mut Sgd::new(0.1)?, batch, &Loss::CrossEntropy)?;
/// let mut seen = model.seen.into_inner().unwrap();
/// seen.sort_by_key(|rows| rows.first_row);
/// assert_eq!(seen.iter().map(|rows| rows.first_row).collect::<Vec<_>>(), [0, 32]);
/// assert_eq!(seen[0].step, seen[1].step); // two shards of one step
/// assert_eq!(Tape::new().step_rows(), None); // outside TrainStep
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepRows {
    /// The step, unique within the process.
    pub step: u64,
    /// The row of the whole batch where this tape's rows start.
    pub first_row: usize,
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// An empty tape that records backward rules.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::new();
    /// assert!(tape.is_recording() && tape.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_recording(true)
    }

    /// An empty tape for inference: ops compute their values but record no backward rule and
    /// capture nothing for one, so no [`Var`] on it needs a gradient.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::inference();
    /// let x = tape.leaf(tensor::ones(&[2]));
    /// assert!(!x.relu().requires_grad());
    /// ```
    pub fn inference() -> Self {
        Self::with_recording(false)
    }

    fn with_recording(recording: bool) -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            recording,
            nodes: RefCell::new(Vec::new()),
            pool: BufferPool::new(),
            step_rows: Cell::new(None),
            random_draws: Cell::new(0),
            shard: RefCell::new(None),
        }
    }

    /// The training step this tape's batch belongs to and where its rows start in the whole
    /// batch; `None` (the default) outside [`TrainStep`](crate::TrainStep).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::new();
    /// assert!(tape.step_rows().is_none()); // set only on the tapes TrainStep runs
    /// ```
    pub fn step_rows(&self) -> Option<StepRows> {
        self.step_rows.get()
    }

    /// Sets what [`Tape::step_rows`] returns.
    pub(crate) fn set_step_rows(&self, rows: Option<StepRows>) {
        self.step_rows.set(rows);
        self.random_draws.set(0);
    }

    /// The number of the current draw of a random layer's streams since the step rows were
    /// set (0 for the first): every shard of a step runs the same layers in the same order,
    /// so a layer called twice in a step gets the same pair of numbers on every shard.
    pub(crate) fn next_random_draw(&self) -> u64 {
        let draw = self.random_draws.get();
        self.random_draws.set(draw + 1);
        draw
    }

    /// The shard of a data-parallel step this tape runs (set by
    /// [`TrainStep`](crate::TrainStep)); `None` when its rows are the whole batch.
    pub(crate) fn shard(&self) -> Option<ShardMember> {
        self.shard.borrow().clone()
    }

    /// Sets what [`Tape::shard`] returns.
    pub(crate) fn set_shard(&self, shard: Option<ShardMember>) {
        *self.shard.borrow_mut() = shard;
    }

    /// Whether this tape records backward rules (false for [`Tape::inference`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Tape;
    /// assert!(Tape::new().is_recording());
    /// assert!(!Tape::inference().is_recording());
    /// ```
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Empties the tape for the next step while keeping its allocations: the node list keeps
    /// its capacity, and the buffers of this step's values are reused by the next step's ops
    /// and backward rules.
    ///
    /// Taking `&mut self` means no [`Var`] of the old step can outlive the reset.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let mut tape = Tape::new();
    /// let x = tape.leaf(tensor::ones(&[3]));
    /// assert_eq!(x.relu().shape(), vec![3]);
    /// assert_eq!(tape.len(), 2);
    /// tape.reset();
    /// assert!(tape.is_empty());
    /// ```
    pub fn reset(&mut self) {
        self.generation += 1;
        if self.nodes.get_mut().is_empty() && self.pool.is_untouched() {
            return; // nothing recorded since the last reset
        }
        // each node's rule is dropped before its values are reclaimed, so that nothing else
        // holds them
        let values = self.nodes.get_mut().drain(..).flat_map(|node| {
            let Node { value, saved, .. } = node;
            std::iter::once(value).chain(saved)
        });
        self.pool.reclaim(values);
    }

    /// The buffers this tape reuses from step to step.
    pub(crate) fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Puts a tensor's buffer in the pool for reuse.
    pub(crate) fn reuse(&self, tensor: Tensor) {
        self.pool.reuse(tensor);
    }

    /// Number of nodes recorded so far.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::ones(&[3]));
    /// let y = (x * 2.0).sum(); // a leaf, a scale and a sum: three nodes
    /// assert_eq!(y.item(), 6.0);
    /// assert_eq!(tape.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether nothing has been recorded yet.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// assert!(tape.is_empty());
    /// assert_eq!(tape.constant(tensor::zeros(&[1])).op(), "constant");
    /// assert!(!tape.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts an input that needs a gradient on the tape (`requires_grad=True` in PyTorch).
    /// [`Var::backward`] returns its gradient. On an inference tape it needs none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// assert!(x.requires_grad());
    /// let grads = (x * 3.0).sum().backward();
    /// assert_eq!(grads.get(x).unwrap().as_slice().unwrap(), &[3.0, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn leaf(&self, value: impl TapeInput) -> Var<'_> {
        let value = value.into_tensor(self);
        self.push_leaf("leaf", value, self.recording)
    }

    /// Puts an input that needs no gradient on the tape: data, labels, targets.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let w = tape.leaf(tensor::ones(&[2]));
    /// let data = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// assert!(!data.requires_grad());
    /// let grads = (w * data).sum().backward();
    /// assert!(grads.get(w).is_some());
    /// assert!(grads.get(data).is_none()); // constants get no gradient
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn constant(&self, value: impl TapeInput) -> Var<'_> {
        let value = value.into_tensor(self);
        self.push_leaf("constant", value, false)
    }

    /// Puts a module's parameter on the tape, as a leaf that needs a gradient (read it with
    /// [`Gradients::param`](crate::Gradients::param)). Putting the same parameter on the tape again in the same step
    /// returns the same `Var`, so all its uses add into one gradient.
    ///
    /// The tape shares the parameter's buffer instead of copying it (see [`Param`]).
    ///
    /// # Panics
    /// If the parameter is on the tape already and its value has changed since (an
    /// optimizer step between two forward passes on one tape): the tape would hand back the
    /// old value, and a loop that never resets its tape would train on its first weights.
    /// Call [`Tape::reset`] (or make a new tape) before each step's forward pass.
    ///
    /// ```should_panic
    /// use tapegrad::{tensor, Param, Tape};
    /// let mut w = Param::weight(tensor::from_vec(vec![3.0], &[1])?);
    /// let tape = Tape::new();
    /// let _ = tape.param(&w);
    /// w.value_mut()[[0]] = 2.0; // an optimizer step
    /// let _ = tape.param(&w); // panics: the tape holds w = 3, not 2
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let w = Param::weight(tensor::from_vec(vec![3.0], &[1])?);
    /// let tape = Tape::new();
    /// let (a, b) = (tape.param(&w), tape.param(&w));
    /// assert_eq!(tape.len(), 1); // the same parameter is one node
    /// let grads = (a * b).sum().backward(); // w²: ∂/∂w = 2w = 6
    /// assert_eq!(grads.param(&w).unwrap()[[0]], 6.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn param(&self, param: &Param) -> Var<'_> {
        let existing = self
            .nodes
            .borrow()
            .iter()
            .position(|node| node.param == Some(param.id()));
        if let Some(id) = existing {
            // a change of the value after the tape took it gave the parameter a buffer of its
            // own (copy on write, or `set_value`): the tape's is the old one
            assert!(
                self.nodes.borrow()[id].value.as_ptr() == param.value().as_ptr(),
                "tape.param: parameter `{}` changed after this tape recorded it (an optimizer \
                 step between two forward passes on one tape?), and the tape holds its old \
                 value: call tape.reset() (or make a new Tape) before each step's forward pass",
                param.name()
            );
            return Var { tape: self, id };
        }
        self.push(Node {
            op: "param",
            value: param.value().clone(),
            param: Some(param.id()),
            parents: [0; 2],
            arity: 0,
            requires_grad: self.recording && param.requires_grad(),
            backward: None,
            saved: None,
        })
    }

    fn push_leaf(&self, op: &'static str, value: Tensor, requires_grad: bool) -> Var<'_> {
        self.push(Node {
            op,
            value: value.into_shared(),
            param: None,
            parents: [0; 2],
            arity: 0,
            requires_grad,
            backward: None,
            saved: None,
        })
    }

    fn push(&self, node: Node) -> Var<'_> {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var {
            tape: self,
            id: nodes.len() - 1,
        }
    }

    /// Records the output of op `op` computed from `inputs` (one or two), with the rule that
    /// maps `∂L/∂out` to one gradient per input. The rule is kept only when some input needs a
    /// gradient.
    #[track_caller]
    pub(crate) fn record<'t, G: Into<Grad>>(
        &'t self,
        op: &'static str,
        inputs: &[Var<'t>],
        value: impl IntoValue,
        backward: impl Fn(&Backward<'_>) -> [Option<G>; 2] + Send + 'static,
    ) -> Var<'t> {
        self.record_saving(op, inputs, value, None, backward)
    }

    /// [`Tape::record`] with a value `saved` that the rule needs beside the op's output and
    /// inputs ([`Backward::saved`]), kept until the reset, which puts its buffer back in the
    /// pool with the step's values (also when no input needs a gradient: handing it back at
    /// once would let a smaller value of the same step take it, and the next step refill it).
    #[track_caller]
    pub(crate) fn record_saving<'t, G: Into<Grad>>(
        &'t self,
        op: &'static str,
        inputs: &[Var<'t>],
        value: impl IntoValue,
        saved: Option<Tensor>,
        backward: impl Fn(&Backward<'_>) -> [Option<G>; 2] + Send + 'static,
    ) -> Var<'t> {
        debug_assert!(matches!(inputs.len(), 1 | 2), "internal error: arity");
        for input in inputs {
            assert!(
                std::ptr::eq(input.tape, self),
                "{op}: operands are on different tapes"
            );
        }
        let requires_grad = {
            let nodes = self.nodes.borrow();
            inputs.iter().any(|v| nodes[v.id].requires_grad)
        };
        let parents = [inputs[0].id, inputs[inputs.len() - 1].id];
        self.push(Node {
            op,
            value: value.into_value(),
            parents,
            arity: inputs.len(),
            param: None,
            requires_grad,
            backward: requires_grad.then(|| {
                Box::new(move |b: &Backward<'_>| backward(b).map(|g| g.map(Into::into)))
                    as BackwardFn
            }),
            saved: saved.map(IntoValue::into_value),
        })
    }

    /// A tensor of `shape` whose elements come from `values` (in row-major order), built in a
    /// buffer left over from the previous step when one is large enough.
    pub(crate) fn collect(&self, shape: &[usize], values: impl Iterator<Item = Elem>) -> Tensor {
        self.pool.collect(shape, values)
    }

    /// A copy of `value` in a reused buffer.
    pub(crate) fn copy(&self, value: ArrayViewD<'_, Elem>) -> Tensor {
        self.pool.copy(value)
    }

    /// A zero-filled tensor of `shape`, in a reused buffer when one is large enough.
    pub(crate) fn zeros(&self, shape: &[usize]) -> Tensor {
        self.pool.zeros(shape)
    }

    /// A tensor of `shape`, row-major or column-major, whose elements are **unspecified**
    /// (zeros, or values left from an earlier step): for an output a kernel overwrites
    /// completely, such as a matrix product's, so no time goes into zeroing it first.
    pub(crate) fn scratch(&self, shape: &[usize], column_major: bool) -> Tensor {
        self.pool.scratch(shape, column_major)
    }
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = self.nodes.borrow();
        let mut list = f.debug_list();
        for (id, node) in nodes.iter().enumerate() {
            let parents: Vec<String> = node.parents[..node.arity]
                .iter()
                .map(|p| format!("%{p}"))
                .collect();
            let args = if parents.is_empty() {
                String::new()
            } else {
                format!("({})", parents.join(", "))
            };
            list.entry(&format_args!(
                "%{id} = {}{args} {:?}",
                node.op,
                node.value.shape()
            ));
        }
        list.finish()
    }
}

/// A handle to one value on a [`Tape`]: cheap to copy, valid while the tape lives and until
/// its next [`Tape::reset`].
///
/// Ops are methods (`x.relu()`, `a.matmul(b)`) and operators (`a + b`, `x * 2.0`); each
/// records one node and returns the handle of its output.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let x = tape.leaf(tensor::from_vec(vec![-1.0, 2.0], &[2])?);
/// let y = x.relu() * 3.0 + 1.0; // x is Copy: use it as often as needed
/// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 7.0]);
/// assert_eq!(y.shape(), vec![2]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t> {
    pub(crate) tape: &'t Tape,
    pub(crate) id: usize,
}

impl<'t> Var<'t> {
    /// The tape this value lives on.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::ones(&[2]));
    /// assert!(std::ptr::eq(x.tape(), &tape));
    /// // e.g. to put a constant of the same shape on the same tape
    /// let y = x + x.tape().constant(tensor::ones(&[2]));
    /// assert_eq!(y.value().sum(), 4.0);
    /// ```
    pub fn tape(self) -> &'t Tape {
        self.tape
    }

    /// The shared value (a reference-count increment, no copy).
    pub(crate) fn data(self) -> Value {
        self.tape.nodes.borrow()[self.id].value.clone()
    }

    /// A copy of this value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 4.0], &[2])?);
    /// let y = x.sqrt().value(); // an owned Tensor
    /// assert_eq!(y.as_slice().unwrap(), &[1.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn value(self) -> Tensor {
        self.data().into_owned()
    }

    /// The shape of this value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::ones(&[2, 3]));
    /// assert_eq!(x.shape(), vec![2, 3]);
    /// assert_eq!(x.sum_axis(1).shape(), vec![2]);
    /// ```
    pub fn shape(self) -> Vec<usize> {
        self.tape.nodes.borrow()[self.id].value.shape().to_vec()
    }

    /// The name of the op that produced this value (`"leaf"`, `"constant"`, `"matmul"`, ...).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::ones(&[2, 2]));
    /// assert_eq!(x.op(), "leaf");
    /// assert_eq!(x.matmul(x).op(), "matmul");
    /// ```
    pub fn op(self) -> &'static str {
        self.tape.nodes.borrow()[self.id].op
    }

    /// Whether a gradient flows to this value: it is a leaf made by [`Tape::leaf`], or depends
    /// on one, on a recording tape.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let (x, c) = (tape.leaf(tensor::ones(&[2])), tape.constant(tensor::ones(&[2])));
    /// assert!((x * c).requires_grad()); // depends on a leaf
    /// assert!(!(c * 2.0).requires_grad());
    /// ```
    pub fn requires_grad(self) -> bool {
        self.tape.nodes.borrow()[self.id].requires_grad
    }

    /// The single element of a one-element value (a loss).
    ///
    /// # Panics
    /// If the value does not have exactly one element.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])?);
    /// assert_eq!(x.sum().item(), 6.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn item(self) -> Elem {
        let nodes = self.tape.nodes.borrow();
        let value = &nodes[self.id].value;
        assert!(
            value.len() == 1,
            "item: expected one element, found shape {:?}",
            value.shape()
        );
        *value.iter().next().expect("internal error: length checked")
    }
}

impl fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var(%{} = {} {:?})", self.id, self.op(), self.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor;

    fn scalar(x: f32) -> Tensor {
        tensor::full(&[], x)
    }

    #[test]
    fn gradient_of_a_polynomial_by_hand() {
        let tape = Tape::new();
        let x = tape.leaf(scalar(2.0));
        // y = x² + 5x + 4, dy/dx = 2x + 5 = 9 at x = 2
        let y = x * x + x * 5.0 + 4.0;
        assert_eq!(y.item(), 18.0);
        let grads = y.backward();
        assert_eq!(grads.get(x).unwrap()[[]], 9.0);
    }

    #[test]
    fn gradients_accumulate_over_repeated_use() {
        let tape = Tape::new();
        let w = tape.leaf(tensor::from_vec(vec![1.0, -2.0], &[2]).unwrap());
        // L = Σ (w·w + w + w) = Σ w² + 2w, dL/dw = 2w + 2
        let loss = (w * w + w + w).sum();
        let g = loss.backward();
        assert_eq!(g.get(w).unwrap().as_slice().unwrap(), &[4.0, -2.0]);
    }

    #[test]
    fn constants_and_unreached_leaves_get_no_gradient() {
        let tape = Tape::new();
        let x = tape.leaf(scalar(1.0));
        let unused = tape.leaf(scalar(1.0));
        let c = tape.constant(scalar(3.0));
        let g = (x * c).backward();
        assert_eq!(g.get(x).unwrap()[[]], 3.0);
        assert!(g.get(unused).is_none());
        assert!(g.get(c).is_none());
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn a_param_on_the_tape_twice_is_one_leaf_with_the_summed_gradient() {
        let w = Param::new("weight", tensor::from_vec(vec![3.0], &[1]).unwrap());
        let other = Param::new("bias", tensor::zeros(&[1]));
        let tape = Tape::new();
        let (a, b) = (tape.param(&w), tape.param(&w));
        assert_eq!(a.id, b.id);
        // L = Σ w·w + 2w: ∂L/∂w = 2w + 2 = 8
        let g = (a * b + a + b).sum().backward();
        assert_eq!(g.param(&w).unwrap()[[0]], 8.0);
        assert!(g.param(&other).is_none());
        assert!(
            g.param(&w.clone()).is_none(),
            "a clone is a different parameter"
        );
    }

    #[test]
    fn a_param_is_shared_with_the_tape_and_copied_on_write() {
        let mut w = Param::new("weight", tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let mut tape = Tape::new();
        let v = tape.param(&w);
        assert_eq!(v.data().as_ptr(), w.value().as_ptr(), "shared, not copied");
        // a write while the tape shares the value copies it: the tape keeps its forward value
        w.value_mut()[[0]] = 10.0;
        assert_eq!(v.value(), tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        tape.reset();
        // no longer shared: written in place
        let ptr = w.value().as_ptr();
        w.value_mut()[[1]] = 5.0;
        assert_eq!(w.value().as_ptr(), ptr);
        assert_eq!(w.value().as_slice().unwrap(), &[10.0, 5.0]);
    }

    #[test]
    fn inference_tape_records_no_rules() {
        let tape = Tape::inference();
        let x = tape.leaf(scalar(1.0));
        let y = x.exp();
        assert!(!y.requires_grad());
        assert!(tape.nodes.borrow().iter().all(|n| n.backward.is_none()));
    }

    #[test]
    fn a_parameter_changed_on_the_tape_is_refused_until_the_reset_then_read_anew() {
        let mut w = Param::weight(tensor::from_vec(vec![3.0], &[1]).unwrap());
        let mut tape = Tape::new();
        assert_eq!(tape.param(&w).value()[[0]], 3.0);
        // unchanged: the same node, however often
        assert_eq!(tape.param(&w).id, tape.param(&w).id);
        for change in [
            |w: &mut Param| w.value_mut()[[0]] = 2.0,
            |w: &mut Param| {
                w.set_value(tensor::from_vec(vec![2.0], &[1]).unwrap())
                    .unwrap()
            },
        ] {
            tape.reset();
            let _ = tape.param(&w);
            change(&mut w);
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = tape.param(&w);
            }));
            let message = *again.unwrap_err().downcast::<String>().unwrap();
            assert!(message.contains("call tape.reset()"), "{message}");
            tape.reset();
            assert_eq!(tape.param(&w).value()[[0]], 2.0);
        }
    }

    #[test]
    #[should_panic(expected = "backward: this tape was made by Tape::inference")]
    fn backward_on_inference_tape_panics() {
        let tape = Tape::inference();
        tape.leaf(scalar(1.0)).backward();
    }

    #[test]
    #[should_panic(expected = "backward: expected a scalar loss, found shape [2]")]
    fn backward_of_a_non_scalar_panics() {
        let tape = Tape::new();
        tape.leaf(tensor::ones(&[2])).exp().backward();
    }

    #[test]
    fn reset_keeps_capacity_and_reuses_buffers() {
        let mut tape = Tape::new();
        let step = |tape: &Tape| {
            let x = tape.leaf(tensor::ones(&[64, 64]));
            let y = x.exp().relu();
            let ptr = tape.nodes.borrow()[y.id].value.as_ptr();
            (y.sum().item(), ptr)
        };
        let (first, _) = step(&tape);
        let capacity = tape.nodes.borrow().capacity();
        let old: Vec<*const f32> = tape
            .nodes
            .borrow()
            .iter()
            .map(|n| n.value.as_ptr())
            .collect();
        tape.reset();
        assert!(tape.is_empty());
        assert_eq!(tape.nodes.borrow().capacity(), capacity);
        let (second, ptr) = step(&tape);
        assert_eq!(first, second);
        assert!(
            old.contains(&ptr),
            "the relu output should reuse an old buffer"
        );
    }

    #[test]
    #[should_panic(expected = "gradients: Var(%0 = leaf [])")]
    fn gradients_reject_vars_of_another_step() {
        let mut tape = Tape::new();
        let g = tape.leaf(scalar(1.0)).exp().backward();
        tape.reset();
        let x = tape.leaf(scalar(1.0));
        g.get(x);
    }

    #[test]
    fn debug_lists_ops_parents_and_shapes() {
        let tape = Tape::new();
        let x = tape.leaf(tensor::ones(&[2, 3]));
        let _ = x.relu();
        assert_eq!(
            format!("{tape:?}"),
            "[%0 = leaf [2, 3], %1 = relu(%0) [2, 3]]"
        );
    }
}
