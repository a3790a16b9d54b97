//! Optimizers: one driver, [`Optim`], under which every update rule runs (the divergence
//! guard, the learning-rate clock, gradient clipping, parameter groups and the
//! per-parameter state), and the rules themselves — SGD with momentum, Adam/AdamW, RMSprop
//! — each written on the public [`UpdateRule`] seam; learning-rate schedules; L2
//! regularization.

mod adam;
mod l2;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamRule};
pub use l2::l2_penalty;
pub use rmsprop::{RmsProp, RmsPropRule};
pub use schedule::{Decay, DecayUnit, PlateauState, Schedule};
pub use sgd::{Sgd, SgdRule};

use crate::autograd::grad::{ParamGrad, max_abs};
use crate::autograd::gradients::Gradients;
use crate::error::{Error, Result};
use crate::nn::{Module, Param, ParamId};
use crate::tensor::{Elem, Tensor};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use schedule::Clock;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// What an optimizer must remember to go on exactly where it stopped: the counters its
/// schedule reads, the base learning rate (which [`fit`](crate::fit) may have halved), and
/// per-parameter buffers keyed by parameter name — the momentum buffer `[b]` of [`Sgd`], the
/// moments `[m, v]` of [`Adam`], `[square_avg, momentum_buffer?, grad_avg?]` of [`RmsProp`].
///
/// Inside a run an optimizer keys its buffers by [`ParamId`]; names are given to them only
/// here, at a checkpoint's boundary, from the model's parameter walk. Hyperparameters
/// (momentum, betas, weight decay, groups, the schedule's rule) are not part of the state:
/// they come from the code that builds the optimizer, as in PyTorch's
/// `optimizer.load_state_dict`. Checkpoints store this state (see
/// [`Checkpoint::with_training`](crate::checkpoint::Checkpoint::with_training)).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
/// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
/// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
/// let tape = Tape::new();
/// let grads = model.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
/// sgd.step(&mut model, &grads)?;
/// let state = sgd.state()?;
/// assert_eq!((state.kind.as_str(), state.steps, state.base_lr), ("sgd", 1, 0.1));
/// assert_eq!(state.buffers["weight"][0][[0, 0]], 1.0); // the momentum buffer b = g
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Which update rule wrote it ([`UpdateRule::kind`]): `"sgd"`, `"adam"`, `"rmsprop"`.
    pub kind: String,
    /// The base learning rate.
    pub base_lr: f32,
    /// Steps taken.
    pub steps: u64,
    /// Epochs ended ([`Optimizer::end_epoch`] calls).
    pub epochs: u64,
    /// Buffers per parameter name, in the order the update rule documents.
    pub buffers: BTreeMap<String, Vec<Tensor>>,
    /// The parameters with buffers that took fewer steps than the optimizer (frozen or
    /// unused in some steps), with the number they took: PyTorch's per-parameter
    /// `state["step"]`, kept only where it differs from `steps`.
    pub param_steps: BTreeMap<String, u64>,
    /// Where [`fit`](crate::fit)'s reduction of the rate on a plateau stands, if it ran.
    pub plateau: Option<PlateauState>,
}

impl OptimizerState {
    /// Checks that the state was written by optimizer `kind` and that every entry holds
    /// `per_param` buffers.
    fn check(&self, kind: &'static str, per_param: usize) -> Result<()> {
        if self.kind != kind {
            return invalid(
                "optimizer state",
                format!("expected the state of \"{kind}\", found \"{}\"", self.kind),
            );
        }
        if let Some((name, b)) = self.buffers.iter().find(|(_, b)| b.len() != per_param) {
            return invalid(
                "optimizer state",
                format!(
                    "{kind}: expected {per_param} buffers for \"{name}\", found {}",
                    b.len()
                ),
            );
        }
        Ok(())
    }
}

/// What [`fit`](crate::fit), [`TrainStep`](crate::TrainStep) and checkpoints need of an
/// optimizer. [`Optim`] implements it for every [`UpdateRule`]; write a rule rather than
/// this trait.
///
/// A step checks everything before it changes anything, and refuses with
/// [`Error::Diverged`], leaving the parameters, the optimizer state and the step count bit
/// for bit unchanged, when a gradient is NaN or infinite or when the update could make a
/// parameter or an optimizer buffer NaN or infinite (for instance a learning rate so large
/// that `lr·g` overflows). A parameter that is already non-finite before the step is not
/// the update's doing: its gradients are then not finite either, and the step is refused
/// for them.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Decay, DecayUnit, Linear, Mode, Module, Optimizer, PlateauState, Schedule, Sgd, Tape};
/// let mut model = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
/// let halving = Schedule::new(Decay::Exponential { gamma: 0.5 }, DecayUnit::Epoch)?;
/// let mut opt: Box<dyn Optimizer> = Box::new(Sgd::new(0.1)?.momentum(0.9)?.schedule(halving));
/// let tape = Tape::new();
/// let grads = model.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
/// opt.step(&mut model, &grads)?; // w ← 1 − 0.1·1
/// assert!((model.weight().value()[[0, 0]] - 0.9).abs() < 1e-6);
/// assert_eq!(opt.steps(), 1);
/// opt.end_epoch(); // one epoch of the schedule: the rate halves
/// assert_eq!(opt.base_lr(), 0.1);
/// assert!((opt.lr() - 0.05).abs() < 1e-9);
/// opt.set_base_lr(0.2)?;
/// assert!((opt.lr() - 0.1).abs() < 1e-9);
/// assert_eq!(opt.plateau(), None);
/// opt.set_plateau(Some(PlateauState { best: 0.5, bad_epochs: 1, cooldown_left: 0 }));
/// assert_eq!(opt.plateau().unwrap().bad_epochs, 1);
/// let saved = opt.state()?;
/// let mut resumed = Sgd::new(0.1)?.momentum(0.9)?;
/// resumed.load_state(saved.clone())?;
/// assert_eq!(resumed.state()?, saved);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub trait Optimizer: Send {
    /// Updates every parameter of `model` that has a gradient in `grads`.
    ///
    /// # Errors
    /// [`Error::Diverged`] when a gradient is not finite or the update would make a value
    /// non-finite; [`Error::InvalidArgument`] when the settings contradict each other (say
    /// Nesterov momentum without momentum) or a parameter is in two groups. Nothing is
    /// changed then.
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()>;

    /// The learning rate the next step will use (the base rate after the schedule).
    fn lr(&self) -> f32;

    /// The base learning rate the schedule starts from.
    fn base_lr(&self) -> f32;

    /// Changes the base learning rate (e.g. halving it after a divergence); parameter
    /// groups with a rate of their own change in proportion.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    fn set_base_lr(&mut self, lr: f32) -> Result<()>;

    /// Advances the epoch counter of per-epoch schedules (call once after each epoch).
    fn end_epoch(&mut self);

    /// Number of steps taken so far.
    fn steps(&self) -> u64;

    /// Where [`fit`](crate::fit)'s reduction of the rate on a plateau stands (see
    /// [`Plateau`](crate::Plateau)), kept here so that [`Optimizer::state`] saves it.
    fn plateau(&self) -> Option<PlateauState>;

    /// Sets what [`Optimizer::plateau`] returns.
    fn set_plateau(&mut self, plateau: Option<PlateauState>);

    /// The state to save in a checkpoint (see [`OptimizerState`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] from optimizers that cannot save their state.
    fn state(&self) -> Result<OptimizerState>;

    /// Puts back a state taken by [`Optimizer::state`] from an optimizer of the same kind.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `state` comes from another kind of optimizer, holds
    /// the wrong number of buffers per parameter, a buffer with a non-finite value, an
    /// invalid learning rate, or a step or epoch count beyond 2⁵³; the optimizer is
    /// unchanged then.
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;

    /// The settings that shape the updates, as text (kind, rate, schedule, weight decay,
    /// groups, clipping and the rule's own), which a distributed [`fit`](crate::fit)
    /// compares across ranks before training: ranks with other settings would end with other
    /// parameters. Empty, and so not compared, unless the optimizer says.
    fn settings(&self) -> String {
        String::new()
    }
}

/// Where a parameter stands in one step, as the driver tells an [`UpdateRule`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Optim, Optimizer, ParamGrad, ParamStep, Tape, Tensor, UpdateRule};
/// use tapegrad::ndarray::{ArrayViewD, ArrayViewMutD};
///
/// /// Records what the driver says of each parameter, and changes nothing.
/// #[derive(Debug, Default)]
/// struct Record(Vec<(String, f32, f32, u64, bool)>);
///
/// impl UpdateRule for Record {
///     fn kind(&self) -> &'static str {
///         "record"
///     }
///     fn buffers(&self) -> usize {
///         1
///     }
///     fn check(&mut self, _: ArrayViewD<'_, f32>, _: &ParamGrad<'_>, _: &[Tensor],
///              _: &ParamStep<'_>) -> Result<(), String> {
///         Ok(())
///     }
///     fn update(&mut self, _: ArrayViewMutD<'_, f32>, _: &ParamGrad<'_>, _: &mut [Tensor],
///               at: &ParamStep<'_>) {
///         self.0.push((at.name.into(), at.lr, at.weight_decay, at.step, at.first));
///     }
/// }
///
/// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::zeros(&[1])))?;
/// let mut opt = Optim::with_rule(Record::default(), 0.5)?.l2(0.05)?; // weight decay 0.1
/// for _ in 0..2 {
///     let tape = Tape::new();
///     let grads = layer.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
///     opt.step(&mut layer, &grads)?;
/// }
/// assert_eq!(opt.rule().0, vec![
///     ("weight".to_string(), 0.5, 0.1, 0, true),
///     ("bias".to_string(), 0.5, 0.0, 0, true), // L2 sums the weights: no decay for biases
///     ("weight".to_string(), 0.5, 0.1, 1, false),
///     ("bias".to_string(), 0.5, 0.0, 1, false),
/// ]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ParamStep<'a> {
    /// The parameter's dotted name (`"0.weight"`), for messages.
    pub name: &'a str,
    /// Its learning rate this step: its group's (or the optimizer's) after the schedule.
    pub lr: Elem,
    /// Its weight decay: its group's (or the optimizer's), or 0 when decay does not apply
    /// to it (a bias under [`Optim::l2`] or `decay_biases(false)`; see
    /// [`Optim::decay_biases`]).
    pub weight_decay: Elem,
    /// The optimizer's steps taken before this one (0 on the first).
    pub step: u64,
    /// The steps this parameter took before this one, as PyTorch's per-parameter
    /// `state["step"]`: fewer than `step` for a parameter that had no gradient in some steps
    /// (frozen, or unused). For a rule that keeps no buffers, `step`.
    pub param_step: u64,
    /// Whether the parameter's buffers were just made (zeros): its first update. A rule
    /// that keeps no buffers ([`UpdateRule::buffers`] is 0) sees `true` at every step.
    pub first: bool,
    /// The parameter's position among those updated this step (0, 1, …), the same in
    /// [`UpdateRule::check`] and [`UpdateRule::update`]: a rule may keep, in a slot of its
    /// own per position, what `check` computed for `update` to reuse.
    pub index: usize,
}

/// A per-tensor update: what an optimizer does to one parameter with its gradient, given
/// the learning rate and weight decay of the step ([`ParamStep`]) and the parameter's
/// buffers. [`Optim`] runs it over the model, after its divergence guard, clipping and
/// group lookup, so a rule only says how one tensor changes.
///
/// Per step the driver calls [`UpdateRule::check`] for every parameter with a gradient (in
/// the model's order), and only if every check passes, [`UpdateRule::update`] for the same
/// parameters in the same order. The gradient comes as a [`ParamGrad`]: a rule that only
/// adds multiples of it ([`ParamGrad::scaled_add_to`], [`ParamGrad::mix_into`]) never
/// forms a layer's weight gradient.
///
/// # Examples
/// Sign descent, `θ ← θ − lr·sign(g)`, which needs the gradient element by element:
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Optim, Optimizer, ParamGrad, ParamStep, Tape,
///     Tensor, UpdateRule};
/// use tapegrad::ndarray::{ArrayViewMutD, Zip};
///
/// #[derive(Debug, Default)]
/// struct SignDescent {
///     scratch: Vec<f32>,
/// }
///
/// impl UpdateRule for SignDescent {
///     fn kind(&self) -> &'static str {
///         "sign"
///     }
///     fn update(&mut self, mut value: ArrayViewMutD<'_, f32>, grad: &ParamGrad<'_>,
///               _buffers: &mut [Tensor], at: &ParamStep<'_>) {
///         let g = grad.dense_in(&mut self.scratch);
///         Zip::from(&mut value).and(&g).for_each(|t, &g| *t -= at.lr * g.signum());
///     }
/// }
///
/// let mut layer = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
/// let mut opt = Optim::with_rule(SignDescent::default(), 0.5)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![3.0, -0.1], &[1, 2])?);
/// let grads = layer.forward(x, Mode::Train).sum().backward(); // ∂L/∂W = x
/// opt.step(&mut layer, &grads)?;
/// assert_eq!(layer.weight().value().as_slice().unwrap(), &[-0.5, 0.5]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub trait UpdateRule: Send {
    /// The rule's name, in errors and in the saved [`OptimizerState`] (`"sgd"`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Adam, Optimizer, Sgd, UpdateRule};
    /// assert_eq!(Sgd::new(0.1)?.rule().kind(), "sgd");
    /// assert_eq!(Adam::new(0.1)?.rule().kind(), "adam");
    /// assert_eq!(Adam::new(0.1)?.state()?.kind, "adam"); // the saved state names it
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn kind(&self) -> &'static str;

    /// How many buffers, each of the parameter's shape, the rule keeps per parameter (the
    /// default: none).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{RmsProp, UpdateRule};
    /// assert_eq!(RmsProp::new(0.01)?.rule().buffers(), 1); // [s]
    /// assert_eq!(RmsProp::new(0.01)?.centered(true).rule().buffers(), 2); // [s, a]
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn buffers(&self) -> usize {
        0
    }

    /// Checks settings that depend on each other (set in any order on the builder), before
    /// the step changes anything. The default accepts all.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the rule and the settings.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Sgd, UpdateRule};
    /// assert!(Sgd::new(0.1)?.nesterov().rule().validate().is_err()); // no momentum
    /// assert!(Sgd::new(0.1)?.nesterov().momentum(0.9)?.rule().validate().is_ok());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Says why updating `value` with `grad` could make a value or a buffer NaN or
    /// infinite, or `Ok` when it cannot. `buffers` is empty on the parameter's first step
    /// (they will be zeros), else [`UpdateRule::buffers`] tensors of `value`'s shape. The
    /// gradient is known to be finite.
    ///
    /// The default runs [`UpdateRule::update`] on copies of `value` and the buffers and
    /// looks at the results: always right, at the cost of a copy. Override it with a bound
    /// (as [`Sgd`] does) or a dry run without writes (as [`Adam`] does) when speed matters.
    ///
    /// # Errors
    /// A sentence saying what would overflow, which the driver puts in
    /// [`Error::Diverged`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Error, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::full(&[1, 1], 1e30)), Mode::Train).sum().backward();
    /// // lr·g = 1e40 overflows f32: SgdRule's check refuses it before anything changes
    /// let err = Sgd::new(1e10)?.step(&mut layer, &grads).unwrap_err();
    /// assert!(matches!(err, Error::Diverged { step: 0, .. }));
    /// assert_eq!(layer.weight().value()[[0, 0]], 1.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn check(
        &mut self,
        value: ArrayViewD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &[Tensor],
        at: &ParamStep<'_>,
    ) -> std::result::Result<(), String> {
        let mut trial = value.to_owned();
        let mut trial_buffers = match buffers {
            [] => (0..self.buffers())
                .map(|_| Tensor::zeros(value.raw_dim()))
                .collect(),
            some => some.to_vec(),
        };
        let at = ParamStep {
            first: buffers.is_empty(),
            ..*at
        };
        self.update(trial.view_mut(), grad, &mut trial_buffers, &at);
        if max_abs(&trial).is_none() {
            return Err(format!(
                "the update of \"{}\" would make a value not finite (learning rate {:.3e})",
                at.name, at.lr
            ));
        }
        match trial_buffers.iter().position(|b| max_abs(b).is_none()) {
            None => Ok(()),
            Some(i) => Err(format!(
                "the update of \"{}\" would make buffer {i} not finite (learning rate {:.3e})",
                at.name, at.lr
            )),
        }
    }

    /// Updates `value` in place with `grad`, and the parameter's `buffers`
    /// ([`UpdateRule::buffers`] tensors of its shape, zeros when `at.first`).
    fn update(
        &mut self,
        value: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    );

    /// The rule's own settings as text (`"momentum 0.9, dampening 0, nesterov false"`), for
    /// [`Optimizer::settings`]: a distributed [`fit`](crate::fit) refuses ranks whose rules
    /// differ. Empty, and so not compared, unless the rule says.
    fn settings(&self) -> String {
        String::new()
    }
}

/// Parameters with settings of their own inside one optimizer, as a parameter group of
/// PyTorch's `torch.optim.Optimizer([{"params": ..., "lr": ...}, ...])`. Each setting left
/// unset is the optimizer's.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Optimizer, ParamGroup, Sgd};
/// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), Some(tensor::zeros(&[2])))?;
/// // the bias at a tenth of the rate, and decayed
/// let bias = ParamGroup::select(&layer, |name, _| name == "bias")
///     .lr(0.01)?
///     .weight_decay(1e-4)?
///     .decay_biases(true);
/// assert_eq!(bias.len(), 1);
/// let sgd = Sgd::new(0.1)?.group(bias);
/// assert_eq!(sgd.base_lr(), 0.1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ParamGroup {
    params: BTreeSet<ParamId>,
    lr: Option<Elem>,
    weight_decay: Option<Elem>,
    decay_biases: Option<bool>,
}

impl ParamGroup {
    /// A group of the parameters with these ids.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, ParamGroup};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// let group = ParamGroup::new([layer.weight().id(), layer.bias().unwrap().id()]);
    /// assert_eq!(group.len(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(params: impl IntoIterator<Item = ParamId>) -> Self {
        ParamGroup {
            params: params.into_iter().collect(),
            ..ParamGroup::default()
        }
    }

    /// A group of the parameters of `model` for which `select(name, param)` is true.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, ParamGroup, Role};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// assert_eq!(ParamGroup::select(&layer, |_, p| p.role() == Role::Bias).len(), 1);
    /// assert!(ParamGroup::select(&layer, |name, _| name == "gamma").is_empty());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn select(model: &dyn Module, mut select: impl FnMut(&str, &Param) -> bool) -> Self {
        let mut params = BTreeSet::new();
        model.visit_params(&mut |name, param| {
            if select(name, param) {
                params.insert(param.id());
            }
        });
        ParamGroup {
            params,
            ..ParamGroup::default()
        }
    }

    /// The group's base learning rate (scaled by the schedule as the optimizer's is); 0
    /// freezes the group's parameters, as a PyTorch parameter group of `lr=0` does (their
    /// gradients are still computed and counted by clipping, and momentum or moment buffers
    /// still follow them; [`Module::set_requires_grad`](crate::Module::set_requires_grad)
    /// freezes without any of that, as `requires_grad_(False)` does; see [`Adam`] for its
    /// step count after unfreezing).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `>= 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, ParamGroup, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::zeros(&[1])))?;
    /// let biases = ParamGroup::select(&layer, |name, _| name == "bias").lr(0.5)?;
    /// let mut sgd = Sgd::new(0.1)?.group(biases);
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?; // ∂L/∂w = 2, ∂L/∂b = 1
    /// assert!((layer.weight().value()[[0, 0]] - 0.8).abs() < 1e-6); // 1 − 0.1·2
    /// assert!((layer.bias().unwrap().value()[[0]] + 0.5).abs() < 1e-6); // 0 − 0.5·1
    /// assert!(ParamGroup::default().lr(-1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn lr(mut self, lr: Elem) -> Result<Self> {
        self.lr = Some(non_negative("param group", "learning rate", lr)?);
        Ok(self)
    }

    /// The group's weight decay, applied as the optimizer's update rule applies it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `wd` is finite and `>= 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, ParamGroup, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let weights = ParamGroup::select(&layer, |name, _| name == "weight").weight_decay(0.5)?;
    /// let mut sgd = Sgd::new(0.1)?.group(weights);
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?; // g ← 2 + 0.5·1
    /// assert!((layer.weight().value()[[0, 0]] - 0.75).abs() < 1e-6);
    /// assert!(ParamGroup::default().weight_decay(-0.1).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight_decay(mut self, wd: Elem) -> Result<Self> {
        self.weight_decay = Some(non_negative("param group", "weight decay", wd)?);
        Ok(self)
    }

    /// Whether the group's weight decay reaches its biases too (see
    /// [`Optim::decay_biases`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, ParamGroup, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::ones(&[1])))?;
    /// let biases = ParamGroup::select(&layer, |name, _| name == "bias")
    ///     .weight_decay(1.0)?
    ///     .decay_biases(true);
    /// let mut sgd = Sgd::new(0.1)?.group(biases);
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?; // the bias: g ← 1 + 1.0·1
    /// assert!((layer.bias().unwrap().value()[[0]] - 0.8).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn decay_biases(mut self, decay: bool) -> Self {
        self.decay_biases = Some(decay);
        self
    }

    /// Number of parameters in the group.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, ParamGroup};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// assert_eq!(ParamGroup::select(&layer, |_, _| true).len(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the group has no parameter.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::ParamGroup;
    /// assert!(ParamGroup::default().is_empty());
    /// assert!(ParamGroup::new([]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// One parameter's buffers inside a run, with the name it had when they were made (the
/// key they get in [`OptimizerState`]) and the steps it took.
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    buffers: Vec<Tensor>,
    steps: u64,
}

/// An optimizer: an [`UpdateRule`] run by the driver every optimizer shares.
///
/// The driver walks the model, and for each step
/// 1. refuses a gradient that is not finite ([`Error::Diverged`], nothing changed);
/// 2. clips gradients, by value ([`Optim::clip_grad_value`]) then by their global norm
///    ([`Optim::clip_grad_norm`]), as `torch.nn.utils.clip_grad_value_` and
///    `clip_grad_norm_` would just before `optimizer.step()`;
/// 3. looks up each parameter's group for its learning rate and weight decay, the
///    learning rate scaled by the [`Schedule`];
/// 4. asks the rule to [check](UpdateRule::check) every update, and refuses the step if
///    one could overflow;
/// 5. [updates](UpdateRule::update) every parameter, with its buffers (keyed by
///    [`ParamId`] inside a run, by name in an [`OptimizerState`]), and counts the step.
///
/// Weight decay ([`Optim::weight_decay`]) decays every parameter, as PyTorch's does; the L2
/// term ([`Optim::l2`]) only weights, as `cost + λ·Σ W²` has it (see
/// [`Optim::decay_biases`]).
///
/// # Examples
/// Clipping the global gradient norm to 1 before a plain SGD step:
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
/// let mut layer = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
/// let mut sgd = Sgd::new(0.1)?.clip_grad_norm(1.0)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![3.0, 4.0], &[1, 2])?);
/// let grads = layer.forward(x, Mode::Train).sum().backward(); // g = [3, 4], ‖g‖ = 5
/// sgd.step(&mut layer, &grads)?;
/// let w = layer.weight().value(); // −0.1 · g / (5 + 1e-6)
/// assert!((w[[0, 0]] + 0.06).abs() < 1e-6 && (w[[0, 1]] + 0.08).abs() < 1e-6);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Optim<R> {
    rule: R,
    clock: Clock,
    /// The base rate the optimizer was built with: groups' rates follow the base rate's
    /// changes in proportion to it.
    initial_lr: Elem,
    weight_decay: Elem,
    /// Whether weight decay reaches biases and normalization parameters, when set
    /// explicitly; else [`Optim::weight_decay`] decays them and [`Optim::l2`] does not.
    decay_biases: Option<bool>,
    /// Whether the decay was set as the L2 term `λ·Σ W²` ([`Optim::l2`]).
    decay_is_l2: bool,
    groups: Vec<ParamGroup>,
    clip_norm: Option<Elem>,
    clip_value: Option<Elem>,
    slots: BTreeMap<ParamId, Slot>,
    plateau: Option<PlateauState>,
    /// Buffers loaded by name that no step has matched to a parameter yet, with the steps
    /// their parameter took.
    pending: BTreeMap<String, (Vec<Tensor>, u64)>,
    /// Gradients clipped by value, one per parameter stepped, reused from step to step.
    clipped: Vec<Tensor>,
    /// Where a gradient kept in parts is formed to take its norm.
    scratch: Vec<Elem>,
}

impl<R: UpdateRule> Optim<R> {
    /// The optimizer that runs `rule` at learning rate `lr`, with no weight decay, no
    /// clipping, one group and a constant schedule.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `lr` is finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Optim, Optimizer, SgdRule};
    /// let sgd = Optim::with_rule(SgdRule::default(), 0.1)?; // the same as Sgd::new(0.1)
    /// assert_eq!((sgd.lr(), sgd.steps()), (0.1, 0));
    /// assert!(Optim::with_rule(SgdRule::default(), f32::NAN).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn with_rule(rule: R, lr: Elem) -> Result<Self> {
        let clock = Clock::new(rule.kind(), lr)?;
        Ok(Optim {
            rule,
            clock,
            initial_lr: lr,
            weight_decay: 0.0,
            decay_biases: None,
            decay_is_l2: false,
            groups: Vec::new(),
            clip_norm: None,
            clip_value: None,
            slots: BTreeMap::new(),
            plateau: None,
            pending: BTreeMap::new(),
            clipped: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The update rule.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Sgd, UpdateRule};
    /// let sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// assert_eq!(sgd.rule().kind(), "sgd");
    /// assert_eq!(sgd.rule().buffers(), 1); // the momentum buffer
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The update rule, to change its settings.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Sgd, SgdRule, UpdateRule};
    /// let mut sgd = Sgd::new(0.1)?.momentum(0.9)?;
    /// *sgd.rule_mut() = SgdRule::default(); // momentum off
    /// assert_eq!(sgd.rule().buffers(), 0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn rule_mut(&mut self) -> &mut R {
        &mut self.rule
    }

    /// Sets PyTorch's weight decay `wd >= 0`, applied as the rule does (`g ← g + wd·θ`
    /// for SGD, Adam and RMSprop; `θ ← θ − lr·wd·θ` for AdamW), to every parameter as in
    /// PyTorch (biases and normalization parameters too, unless
    /// [`decay_biases(false)`](Optim::decay_biases)).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `wd` is finite and `>= 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::ones(&[1])))?;
    /// let mut sgd = Sgd::new(0.1)?.weight_decay(0.5)?;
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?;
    /// assert!((layer.weight().value()[[0, 0]] - 0.75).abs() < 1e-6); // 1 − 0.1·(2 + 0.5·1)
    /// assert!((layer.bias().unwrap().value()[[0]] - 0.85).abs() < 1e-6); // 1 − 0.1·(1 + 0.5·1)
    /// assert!(Sgd::new(0.1)?.weight_decay(-1.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight_decay(mut self, wd: Elem) -> Result<Self> {
        self.weight_decay = non_negative(self.rule.kind(), "weight decay", wd)?;
        self.decay_is_l2 = false;
        Ok(self)
    }

    /// Sets the L2 strength `λ >= 0` of `cost + λ·Σ W²`, i.e. weight decay `2λ` on the
    /// weights `W` (the same step as adding [`l2_penalty`] to the loss, for the rules that
    /// add `wd·θ` to the gradient). Biases and normalization parameters are left out, as
    /// the sum over `W` has it, unless [`decay_biases(true)`](Optim::decay_biases).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `λ` is finite and `>= 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.l2(0.25)?; // λ = 0.25: weight decay 0.5
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::full(&[1, 1], 2.0)), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?; // g ← 2 + 2·0.25·1
    /// assert!((layer.weight().value()[[0, 0]] - 0.75).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn l2(self, lambda: Elem) -> Result<Self> {
        let lambda = non_negative(self.rule.kind(), "lambda", lambda)?;
        let mut decayed = self.weight_decay(2.0 * lambda)?;
        decayed.decay_is_l2 = true;
        Ok(decayed)
    }

    /// Whether weight decay reaches biases and normalization parameters (their [`Role`](crate::Role)):
    /// by default it does under [`Optim::weight_decay`], as PyTorch's, and does not under
    /// [`Optim::l2`], whose `Σ W²` sums weights. `decay_biases(false)` decays weights only,
    /// as common recipes do (Caffe's `decay_mult: 0` on biases; timm's
    /// `param_groups_weight_decay`), whichever setter came first.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::ones(&[1])))?;
    /// let mut sgd = Sgd::new(0.1)?.decay_biases(false).weight_decay(1.0)?;
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?; // the weight: g ← 1 + 1.0·1; the bias: g ← 1
    /// assert!((layer.weight().value()[[0, 0]] - 0.8).abs() < 1e-6);
    /// assert!((layer.bias().unwrap().value()[[0]] - 0.9).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn decay_biases(mut self, decay: bool) -> Self {
        self.decay_biases = Some(decay);
        self
    }

    /// Whether weight decay reaches biases and normalization parameters now (see
    /// [`Optim::decay_biases`]).
    fn decays_biases(&self) -> bool {
        self.decay_biases.unwrap_or(!self.decay_is_l2)
    }

    /// Sets the learning-rate schedule (constant by default).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Decay, DecayUnit, Optimizer, Schedule, Sgd};
    /// let per_epoch = Schedule::new(Decay::Step { every: 2, gamma: 0.1 }, DecayUnit::Epoch)?;
    /// let mut sgd = Sgd::new(1.0)?.schedule(per_epoch);
    /// sgd.end_epoch();
    /// assert_eq!(sgd.lr(), 1.0);
    /// sgd.end_epoch();
    /// assert!((sgd.lr() - 0.1).abs() < 1e-7);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.clock.schedule = schedule;
        self
    }

    /// Adds a parameter group; parameters in no group use the optimizer's settings. A
    /// parameter in two groups, and a group with parameters the stepped model does not have
    /// (selected from another model, or from the original of a clone), are refused at the
    /// step: PyTorch's groups hold the tensors themselves, so neither can happen there.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, ParamGroup, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 1]), Some(tensor::zeros(&[1])))?;
    /// // freeze the bias: a rate of 0
    /// let bias = ParamGroup::select(&layer, |name, _| name == "bias").lr(0.0)?;
    /// let mut sgd = Sgd::new(0.5)?.momentum(0.9)?.weight_decay(0.1)?.group(bias);
    /// let tape = Tape::new();
    /// let grads = layer.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
    /// sgd.step(&mut layer, &grads)?;
    /// assert!((layer.weight().value()[[0, 0]] - 0.45).abs() < 1e-6); // 1 − 0.5·(1 + 0.1·1)
    /// assert_eq!(layer.bias().unwrap().value()[[0]], 0.0);
    /// // the group names the original's parameters, not the clone's
    /// let mut clone = layer.clone();
    /// let grads = clone.forward(tape.constant(tensor::ones(&[1, 1])), Mode::Train).sum().backward();
    /// assert!(sgd.step(&mut clone, &grads).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn group(mut self, group: ParamGroup) -> Self {
        self.groups.push(group);
        self
    }

    /// Scales the gradients, when their global norm `‖g‖ = √(Σ over all parameters of
    /// Σ g²)` is above `max_norm`, by `max_norm / (‖g‖ + 1e-6)`, as
    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)` before each step.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `max_norm` is finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.clip_grad_norm(1.0)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![3.0, 4.0], &[1, 2])?);
    /// let grads = layer.forward(x, Mode::Train).sum().backward(); // g = [3, 4], ‖g‖ = 5
    /// sgd.step(&mut layer, &grads)?; // g becomes [0.6, 0.8]
    /// let w = layer.weight().value();
    /// assert!((w[[0, 0]] - 0.94).abs() < 1e-6 && (w[[0, 1]] - 0.92).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn clip_grad_norm(mut self, max_norm: Elem) -> Result<Self> {
        self.clip_norm = Some(positive(self.rule.kind(), "max_norm", max_norm)?);
        Ok(self)
    }

    /// Clamps every gradient element to `[−clip, clip]`, as
    /// `torch.nn.utils.clip_grad_value_(params, clip)` before each step (and before
    /// [`Optim::clip_grad_norm`] when both are set). Clamping is element by element, so a
    /// weight's gradient kept as factors is formed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `clip` is finite and `> 0`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let mut sgd = Sgd::new(0.1)?.clip_grad_value(0.5)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![0.2, -3.0], &[1, 2])?);
    /// let grads = layer.forward(x, Mode::Train).sum().backward(); // g = [0.2, −3]
    /// sgd.step(&mut layer, &grads)?; // g becomes [0.2, −0.5]
    /// let w = layer.weight().value();
    /// assert!((w[[0, 0]] - 0.98).abs() < 1e-6 && (w[[0, 1]] - 1.05).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn clip_grad_value(mut self, clip: Elem) -> Result<Self> {
        self.clip_value = Some(positive(self.rule.kind(), "clip value", clip)?);
        Ok(self)
    }

    /// Refuses a group with parameters `model` does not have, and a parameter in two groups.
    fn check_groups(&self, model: &dyn Module) -> Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let mut in_model = BTreeSet::new();
        model.visit_params(&mut |_, p| {
            in_model.insert(p.id());
        });
        for (i, group) in self.groups.iter().enumerate() {
            let foreign = group.params.difference(&in_model).count();
            if foreign > 0 {
                return invalid(
                    self.rule.kind(),
                    format!(
                        "parameter group {i} holds {foreign} of its {} parameters that the \
                         model does not have, expected the model's own (a clone of a model \
                         has parameters of its own: select the group from the model stepped)",
                        group.params.len()
                    ),
                );
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            for later in &self.groups[i + 1..] {
                if let Some(id) = group.params.intersection(&later.params).next() {
                    return invalid(
                        self.rule.kind(),
                        format!("parameter {id:?} is in two parameter groups, expected one"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A gradient as the rule gets it: clipped by value (`clipped`, when set) and scaled by
/// the norm clipping's `factor`.
fn adjusted<'g>(grad: ParamGrad<'g>, clipped: Option<&'g Tensor>, factor: Elem) -> ParamGrad<'g> {
    let grad = match clipped {
        Some(tensor) => grad.replaced_by(tensor),
        None => grad,
    };
    if factor == 1.0 {
        grad
    } else {
        grad.scaled(factor)
    }
}

/// What a step reads of the optimizer's settings to tell a parameter its [`ParamStep`].
struct Settings<'s> {
    groups: &'s [ParamGroup],
    initial_lr: Elem,
    weight_decay: Elem,
    decay_biases: bool,
    clock: &'s Clock,
    /// Whether the rule keeps buffers, and so counts each parameter's steps.
    keeps_buffers: bool,
}

impl Settings<'_> {
    /// Where parameter `param` (named `name`, at position `index`) stands: `param_step` is
    /// the steps its buffers' slot counted, `None` before its first update (and always for
    /// a rule without buffers).
    fn at<'n>(
        &self,
        name: &'n str,
        param: &Param,
        index: usize,
        param_step: Option<u64>,
    ) -> ParamStep<'n> {
        let base = self.clock.base_lr;
        let (lr, wd, all) = match self.groups.iter().find(|g| g.params.contains(&param.id())) {
            None => (base, self.weight_decay, self.decay_biases),
            Some(group) => (
                // the group's rate follows the base rate's changes in proportion; exact, as
                // x·y/y is x for f32 x, y multiplied in f64
                group.lr.map_or(base, |lr| {
                    (f64::from(lr) * f64::from(base) / f64::from(self.initial_lr)) as Elem
                }),
                group.weight_decay.unwrap_or(self.weight_decay),
                group.decay_biases.unwrap_or(self.decay_biases),
            ),
        };
        ParamStep {
            name,
            lr: self.clock.lr_from(lr),
            weight_decay: if all || l2::decays(param) { wd } else { 0.0 },
            step: self.clock.steps,
            param_step: match (self.keeps_buffers, param_step) {
                (false, _) => self.clock.steps,
                (true, own) => own.unwrap_or(0),
            },
            first: param_step.is_none(),
            index,
        }
    }
}

impl<R: UpdateRule> Optimizer for Optim<R> {
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()> {
        self.rule.validate()?;
        self.check_groups(&*model)?;
        let kind = self.rule.kind();
        let step = self.clock.steps;
        let decay_biases = self.decays_biases();
        let Optim {
            rule,
            clock,
            initial_lr,
            weight_decay,
            groups,
            clip_norm,
            clip_value,
            slots,
            pending,
            clipped,
            scratch,
            ..
        } = self;

        // pass 1: finite gradients, state loaded by name matched to the parameters, the
        // gradients clipped by value, and their global norm
        let mut refused = None;
        let mut count = 0;
        let mut sum_squares = 0.0;
        model.visit_params(&mut |name, param| {
            let Some(grad) = grads.param_grad(param).filter(|_| refused.is_none()) else {
                return;
            };
            if !grad.is_finite() {
                refused = Some(format!("the gradient of \"{name}\" is not finite"));
                return;
            }
            if let Some((buffers, steps)) = pending.remove(name) {
                let name = name.to_string();
                slots.insert(
                    param.id(),
                    Slot {
                        name,
                        buffers,
                        steps,
                    },
                );
            }
            if let Some(clip) = *clip_value {
                if clipped.len() <= count {
                    clipped.push(Tensor::zeros(ndarray::IxDyn(&[0])));
                }
                let dense = grad.dense_in(scratch);
                let target = &mut clipped[count];
                if target.shape() != dense.shape() {
                    *target = Tensor::zeros(dense.raw_dim());
                }
                Zip::from(target)
                    .and(&dense)
                    .for_each(|c, &g| *c = g.clamp(-clip, clip));
            }
            if clip_norm.is_some() {
                sum_squares += match clip_value {
                    Some(_) => (clipped[count].iter())
                        .map(|&g| f64::from(g) * f64::from(g))
                        .sum(),
                    None => grad.sum_squares(scratch),
                };
            }
            count += 1;
        });
        if let Some(what) = refused {
            return Err(Error::Diverged {
                op: kind,
                step,
                what,
            });
        }
        // torch: clip_coef = max_norm / (total_norm + 1e-6), applied when below 1
        let factor = match *clip_norm {
            Some(max_norm) => {
                let coef = f64::from(max_norm) / (sum_squares.sqrt() + 1e-6);
                if coef < 1.0 { coef as Elem } else { 1.0 }
            }
            None => 1.0,
        };
        let clipped = match clip_value {
            Some(_) => &clipped[..count],
            None => &[][..],
        };
        let settings = Settings {
            groups,
            initial_lr: *initial_lr,
            weight_decay: *weight_decay,
            decay_biases,
            clock,
            keeps_buffers: rule.buffers() > 0,
        };

        // pass 2: every update checked, nothing written
        let mut index = 0;
        model.visit_params(&mut |name, param| {
            let Some(grad) = grads.param_grad(param).filter(|_| refused.is_none()) else {
                return;
            };
            let grad = adjusted(grad, clipped.get(index), factor);
            let slot = slots.get(&param.id());
            let buffers = slot.map_or(&[][..], |s| &s.buffers[..]);
            let shape = param.value().shape();
            if buffers.iter().any(|b| b.shape() != shape) {
                let shapes: Vec<&[usize]> = buffers.iter().map(|b| b.shape()).collect();
                refused = Some(format!(
                    "the buffers of \"{name}\" have shapes {shapes:?}, the parameter {shape:?} \
                     (an optimizer state loaded for another model)"
                ));
                return;
            }
            let param_step = slot.map(|s| s.steps);
            let at = settings.at(name, param, index, param_step);
            refused = rule.check(param.value().view(), &grad, buffers, &at).err();
            index += 1;
        });
        if let Some(what) = refused {
            return Err(Error::Diverged {
                op: kind,
                step,
                what,
            });
        }

        // pass 3: every update written
        let per_param = rule.buffers();
        let mut index = 0;
        model.visit_params_mut(&mut |name, param| {
            let Some(grad) = grads.param_grad(param) else {
                return;
            };
            let grad = adjusted(grad, clipped.get(index), factor);
            let (buffers, param_step) = match per_param {
                0 => (&mut [][..], None),
                _ => {
                    let (slot, param_step) = match slots.entry(param.id()) {
                        Entry::Occupied(slot) => {
                            let slot = slot.into_mut();
                            let steps = slot.steps;
                            (slot, Some(steps))
                        }
                        Entry::Vacant(slot) => {
                            let zeros = || Tensor::zeros(param.value().raw_dim());
                            let buffers = (0..per_param).map(|_| zeros()).collect();
                            let name = name.to_string();
                            (
                                slot.insert(Slot {
                                    name,
                                    buffers,
                                    steps: 0,
                                }),
                                None,
                            )
                        }
                    };
                    slot.steps += 1;
                    (&mut slot.buffers[..], param_step)
                }
            };
            let at = settings.at(name, param, index, param_step);
            rule.update(param.value_mut().view_mut(), &grad, buffers, &at);
            index += 1;
        });
        self.clock.steps += 1;
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.clock.lr()
    }

    fn base_lr(&self) -> f32 {
        self.clock.base_lr
    }

    fn set_base_lr(&mut self, lr: f32) -> Result<()> {
        self.clock.set_base_lr(lr)
    }

    fn end_epoch(&mut self) {
        self.clock.epochs += 1;
    }

    fn steps(&self) -> u64 {
        self.clock.steps
    }

    fn plateau(&self) -> Option<PlateauState> {
        self.plateau
    }

    fn set_plateau(&mut self, plateau: Option<PlateauState>) {
        self.plateau = plateau;
    }

    /// The counters, the base rate and the rule's buffers per parameter name.
    fn state(&self) -> Result<OptimizerState> {
        let (mut buffers, mut param_steps) = (BTreeMap::new(), BTreeMap::new());
        let pending = (self.pending.iter()).map(|(name, (b, steps))| (name, b, *steps));
        let slots = (self.slots.values()).map(|s| (&s.name, &s.buffers, s.steps));
        for (name, b, steps) in pending.chain(slots) {
            buffers.insert(name.clone(), b.clone());
            if steps != self.clock.steps {
                param_steps.insert(name.clone(), steps);
            }
        }
        Ok(OptimizerState {
            kind: self.rule.kind().into(),
            base_lr: self.clock.base_lr,
            steps: self.clock.steps,
            epochs: self.clock.epochs,
            buffers,
            param_steps,
            plateau: self.plateau,
        })
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        if let Some(p) = state.plateau.filter(|p| p.best.is_nan()) {
            return invalid(
                self.rule.kind(),
                format!(
                    "optimizer state: expected a plateau's best value that is a number, found {}",
                    p.best
                ),
            );
        }
        let (plateau, steps) = (state.plateau, state.steps);
        let mut param_steps = state.param_steps.clone();
        let buffers = self.clock.load(state, self.rule.buffers())?;
        let pending = (buffers.into_iter())
            .map(|(name, b)| {
                let own = param_steps.remove(&name).unwrap_or(steps);
                (name, (b, own))
            })
            .collect();
        if let Some((name, own)) = param_steps.into_iter().next() {
            return invalid(
                self.rule.kind(),
                format!(
                    "optimizer state: expected the steps of a parameter with buffers, found \
                     {own} steps of \"{name}\", which has none"
                ),
            );
        }
        self.slots.clear();
        self.pending = pending;
        self.plateau = plateau;
        Ok(())
    }

    fn settings(&self) -> String {
        let groups: Vec<String> = (self.groups.iter())
            .map(|g| {
                format!(
                    "{} parameters: lr {:?}, weight decay {:?}, decay biases {:?}",
                    g.params.len(),
                    g.lr,
                    g.weight_decay,
                    g.decay_biases
                )
            })
            .collect();
        format!(
            "{}: lr {}, schedule {:?}, weight decay {}, decay biases {}, groups [{}], clip \
             norm {:?}, clip value {:?}, {}",
            self.rule.kind(),
            self.clock.base_lr,
            self.clock.schedule,
            self.weight_decay,
            self.decays_biases(),
            groups.join("; "),
            self.clip_norm,
            self.clip_value,
            self.rule.settings()
        )
    }
}

/// `value` when it is finite and `>= 0`, else an [`Error::InvalidArgument`] of optimizer `op`
/// naming the hyperparameter `name` and the value.
fn non_negative(op: &'static str, name: &str, value: f32) -> Result<f32> {
    if value >= 0.0 && value.is_finite() {
        Ok(value)
    } else {
        invalid(op, format!("{name} must be finite and >= 0, got {value}"))
    }
}

/// `value` when it is finite and `> 0`, else an [`Error::InvalidArgument`] as
/// [`non_negative`].
fn positive(op: &'static str, name: &str, value: f32) -> Result<f32> {
    if value > 0.0 && value.is_finite() {
        Ok(value)
    } else {
        invalid(op, format!("{name} must be finite and > 0, got {value}"))
    }
}

/// `Err(Error::InvalidArgument)` for optimizer `op`.
fn invalid<T>(op: &'static str, message: String) -> Result<T> {
    Err(Error::InvalidArgument { op, message })
}

/// `view`'s elements in row-major order, for the built-in rules' loops over slices (which
/// [`with_simd`](crate::kernels::simd::with_simd) compiles for the vector unit): the view's
/// own when it is row-major, else a copy.
fn row_major(view: ArrayViewD<'_, Elem>) -> Cow<'_, [Elem]> {
    match view.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(view.iter().copied().collect()),
    }
}

/// Runs `update` on `theta`'s elements in row-major order: on the view's own when it is
/// row-major, else on a copy written back afterwards (a parameter given a transposed
/// tensor).
fn on_row_major(mut theta: ArrayViewMutD<'_, Elem>, update: impl FnOnce(&mut [Elem])) {
    if let Some(slice) = theta.as_slice_mut() {
        update(slice);
        return;
    }
    let mut copy: Vec<Elem> = theta.iter().copied().collect();
    update(&mut copy);
    theta.iter_mut().zip(copy).for_each(|(t, c)| *t = c);
}

/// An optimizer buffer's elements in row-major order, its memory put in that order first
/// when it is not (which changes the order, not the values), checked to be as long as its
/// parameter.
fn buffer_slice(buffer: &mut Tensor, len: usize) -> &mut [Elem] {
    if !buffer.is_standard_layout() {
        *buffer = buffer.as_standard_layout().into_owned();
    }
    let slice = buffer
        .as_slice_mut()
        .expect("internal error: a row-major buffer is one slice");
    assert_eq!(slice.len(), len, "internal error: a buffer's length");
    slice
}

/// Adding a change smaller than this (2¹⁰² ≈ 5.1e30) to a finite `f32` always gives a finite
/// `f32`: a sum rounds to infinity only from `f32::MAX` plus half its spacing, `2¹²⁸ − 2¹⁰³`.
const SAFE_CHANGE: f64 = (1u128 << 102) as f64;

/// Half of `f32::MAX`: a bound on a new value under it leaves room for the rounding of the
/// arithmetic that computes it.
const SAFE_VALUE: f64 = f32::MAX as f64 / 2.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Linear, Mode};
    use crate::{Tape, tensor};

    /// A weight of `w` and a bias of 0 under the loss `L = Σ x·w + b`: `∂L/∂w = x`.
    fn layer(w: f32) -> Linear {
        let weight = tensor::from_vec(vec![w; 4], &[2, 2]).unwrap();
        Linear::from_parts(weight, Some(tensor::zeros(&[2]))).unwrap()
    }

    /// One step of `opt` on `model` with input `x`.
    fn step(opt: &mut dyn Optimizer, model: &mut Linear, x: f32) -> Result<()> {
        let tape = Tape::new();
        let input = tape.constant(tensor::from_vec(vec![x; 2], &[1, 2]).unwrap());
        let grads = model.forward(input, Mode::Train).sum().backward();
        drop(tape);
        opt.step(model, &grads)
    }

    fn values(model: &Linear) -> Vec<u32> {
        let mut bits = Vec::new();
        model.visit_params(&mut |_, p| bits.extend(p.value().iter().map(|v| v.to_bits())));
        bits
    }

    #[test]
    fn a_group_of_rate_zero_stays_as_it_was_under_every_rule() {
        for rule in 0..3 {
            let mut model = layer(1.0);
            let frozen = ParamGroup::select(&model, |name, _| name == "bias")
                .lr(0.0)
                .unwrap();
            let mut opt: Box<dyn Optimizer> = match rule {
                0 => Box::new(
                    crate::Sgd::new(0.1)
                        .unwrap()
                        .momentum(0.9)
                        .unwrap()
                        .group(frozen),
                ),
                1 => Box::new(crate::Adam::adamw(0.1, 0.1).unwrap().group(frozen)),
                _ => Box::new(
                    crate::RmsProp::new(0.1)
                        .unwrap()
                        .momentum(0.5)
                        .unwrap()
                        .group(frozen),
                ),
            };
            for _ in 0..3 {
                step(&mut *opt, &mut model, 2.0).unwrap();
            }
            let bias = model.bias().unwrap().value()[[0]];
            assert_eq!(bias.to_bits(), 0.0f32.to_bits(), "rule {rule}");
            assert!(
                model.weight().value()[[0, 0]] < 0.9,
                "rule {rule}: the weight moved"
            );
        }
        assert!(ParamGroup::default().lr(-1e-3).is_err());
    }

    /// Steps `opt` with input `x` and checks that the step is refused with `words` in its
    /// message, leaving parameters and optimizer state bit for bit as they were.
    fn assert_refused(opt: &mut dyn Optimizer, model: &mut Linear, x: f32, words: &str) {
        let (before, state) = (values(model), opt.state().unwrap());
        let err = step(opt, model, x).unwrap_err().to_string();
        assert!(err.contains(words), "{err}");
        assert!(err.contains("the step changed nothing"), "{err}");
        assert_eq!(values(model), before);
        assert_eq!(opt.state().unwrap(), state);
    }

    #[test]
    fn sgd_refuses_updates_that_overflow_and_takes_large_finite_ones() {
        // lr·g = 1e30·100 = 1e32: beyond 2¹⁰², what a finite f32 can take without overflow
        let mut sgd = Sgd::new(1e30).unwrap();
        let mut model = layer(1.0);
        assert_refused(
            &mut sgd,
            &mut model,
            100.0,
            "the update of \"weight\" could reach 1.000e32",
        );
        // lr·g = 5e29 keeps every value finite, so it is taken (however unwise)
        step(&mut sgd, &mut model, 0.5).unwrap();
        assert!(
            values(&model)
                .iter()
                .all(|b| f32::from_bits(*b).is_finite())
        );

        // momentum: the buffer grows past f32::MAX / 2 (0.9·3e38 + 3e38)
        let mut momentum = Sgd::new(1.0).unwrap().momentum(0.9).unwrap();
        let mut model = layer(1.0);
        step(&mut momentum, &mut model, 3e38).unwrap_err(); // lr·g alone overflows
        let mut model = layer(0.0);
        let mut tiny = Sgd::new(1e-30).unwrap().momentum(0.9).unwrap();
        step(&mut tiny, &mut model, 1e38).unwrap();
        assert_refused(
            &mut tiny,
            &mut model,
            1e38,
            "momentum buffer up to 1.900e38",
        );
    }

    #[test]
    fn sgd_reads_the_weights_when_decay_could_grow_them() {
        // lr·wd = 10 > 1: θ − 10·θ grows |θ| ninefold, fine for 1, not for 3e37
        let sgd = || {
            (Sgd::new(10.0)
                .unwrap()
                .weight_decay(1.0)
                .unwrap()
                .momentum(0.5))
            .unwrap()
            .nesterov()
        };
        step(&mut sgd(), &mut layer(1.0), 0.1).unwrap();
        assert_refused(
            &mut sgd(),
            &mut layer(3e37),
            0.1,
            "the update of \"weight\"",
        );
    }

    #[test]
    fn adam_refuses_updates_that_overflow() {
        // the first step moves each weight by about lr: −1e38 − f32::MAX overflows
        let mut adam = Adam::new(f32::MAX).unwrap();
        assert_refused(
            &mut adam,
            &mut layer(-1e38),
            1.0,
            "would make a value not finite",
        );
        // a second moment g² that overflows, with a modest learning rate
        let mut model = layer(1.0);
        let mut adam = Adam::new(0.1).unwrap();
        step(&mut adam, &mut model, 1.0).unwrap();
        assert_refused(
            &mut adam,
            &mut model,
            1e22,
            "would make a second moment not finite",
        );
    }

    #[test]
    fn loaded_counters_and_buffers_are_checked_and_huge_step_counts_stay_finite() {
        let mut adam = Adam::new(0.1).unwrap();
        let mut model = layer(1.0);
        step(&mut adam, &mut model, 1.0).unwrap();
        let state = adam.state().unwrap();

        // u32::MAX steps done: β^t underflows to 0 and the correction to 1, no overflow
        let mut resumed = Adam::new(0.1).unwrap();
        resumed
            .load_state(OptimizerState {
                steps: u64::from(u32::MAX),
                ..state.clone()
            })
            .unwrap();
        let before = model.weight().value()[[0, 0]];
        step(&mut resumed, &mut model, 1.0).unwrap();
        let after = model.weight().value()[[0, 0]];
        // bias corrections of 1: m/√v = 0.19/√0.001999 ≈ 4.25, so a step of about 0.425
        assert!((before - after - 0.425).abs() < 1e-3, "{before} → {after}");

        let err = (Adam::new(0.1).unwrap())
            .load_state(OptimizerState {
                steps: 1 << 60,
                ..state.clone()
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected at most 9007199254740992 steps, found 1152921504606846976"),
            "{err}"
        );
        // a state of another model's shapes is refused at the step, not a panic
        let mut other = state.clone();
        for b in other.buffers.get_mut("weight").unwrap() {
            *b = tensor::zeros(&[3, 2]);
        }
        let mut wrong = Adam::new(0.1).unwrap();
        wrong.load_state(other).unwrap();
        assert_refused(
            &mut wrong,
            &mut model,
            1.0,
            "the buffers of \"weight\" have shapes [[3, 2], [3, 2]]",
        );
        let mut sgd = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        step(&mut sgd, &mut model, 1.0).unwrap();
        let mut other = sgd.state().unwrap();
        other.buffers.get_mut("bias").unwrap()[0] = tensor::zeros(&[5]);
        let mut wrong = Sgd::new(0.1).unwrap().momentum(0.9).unwrap();
        wrong.load_state(other).unwrap();
        assert_refused(
            &mut wrong,
            &mut model,
            1.0,
            "the buffers of \"bias\" have shapes [[5]]",
        );

        let mut nan = state.clone();
        nan.buffers.get_mut("weight").unwrap()[1][[0, 1]] = f32::NAN;
        let err = Adam::new(0.1)
            .unwrap()
            .load_state(nan)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buffer of \"weight\" element 1: expected a finite value, found NaN"),
            "{err}"
        );
    }
}
