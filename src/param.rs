//! [`Param`]: a trainable tensor with an id, a name and a [`Role`]. It sits below autograd
//! (the tape puts parameters on itself and keys gradients by [`ParamId`]) and below `nn`
//! (modules own parameters), so neither layer imports the other for it.

use crate::error::{Error, Result};
use crate::tensor::{Elem, SharedTensor, Tensor};
use ndarray::ArrayViewMutD;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(0);

/// Identifies one [`Param`] for the life of the process; [`Gradients`](crate::Gradients)
/// are keyed by it.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Param};
/// let (a, b) = (Param::weight(tensor::ones(&[1])), Param::weight(tensor::ones(&[1])));
/// assert_ne!(a.id(), b.id()); // the same name and value, two parameters
/// assert_eq!(a.id(), a.id());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    fn fresh() -> Self {
        ParamId(NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a [`Param`] is for. Rules that treat parameters differently read the role, never
/// the name (names exist for checkpoints and summaries):
///
/// | role | L2 (`Optim::l2`, `l2_penalty`), and weight decay with `decay_biases(false)` | [`lsuv`](crate::lsuv) |
/// |---|---|---|
/// | [`Role::Weight`] | yes | rescales it when it has 2 axes or more |
/// | [`Role::Bias`] | no | leaves it |
/// | [`Role::NormScale`], [`Role::NormShift`] | no | leaves it |
/// | [`Role::Custom`] | yes | leaves it |
///
/// Weight decay ([`Optim::weight_decay`](crate::Optim::weight_decay)) reaches every
/// parameter by default, as PyTorch's does. The L2 term `λ·Σ W²` sums the weights, and
/// [`Optim::decay_biases`](crate::Optim::decay_biases)`(false)` leaves biases and
/// normalization parameters out of weight decay as in common practice (Caffe's
/// `decay_mult: 0` on biases; timm's `param_groups_weight_decay` and nanoGPT's
/// `configure_optimizers`, which decay only matrices): they shift or scale a unit's input
/// rather than mix inputs, so shrinking them does not make the function smoother.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Param, Role};
/// assert_eq!(Param::bias(tensor::zeros(&[3])).role(), Role::Bias);
/// let t = Param::with_role("temperature", Role::Custom("temperature"), tensor::ones(&[1]));
/// assert_eq!(t.role(), Role::Custom("temperature"));
/// assert_eq!(Param::new("w", tensor::ones(&[2])).role(), Role::Weight);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A weight that mixes inputs: a [`Linear`](crate::Linear) or
    /// [`Maxout`](crate::Maxout) weight `[out, in]`.
    Weight,
    /// An additive bias, `b` in `x·Wᵀ + b`.
    Bias,
    /// A normalization layer's learned scale `γ` (`weight` of PyTorch's `BatchNorm1d`).
    NormScale,
    /// A normalization layer's learned shift `β` (`bias` of PyTorch's `BatchNorm1d`).
    NormShift,
    /// A kind of parameter of the user's own, named (e.g. `Custom("temperature")`). It
    /// decays like a weight, as every parameter does under PyTorch's `weight_decay`, and no
    /// initializer touches it.
    Custom(&'static str),
}

/// A trainable tensor owned by a module: its id, its name inside the module (`"weight"`,
/// `"bias"`), its [`Role`] and its value.
///
/// The name is what messages call the parameter (a refused step, a shape error). Checkpoints,
/// safetensors files, [`ParamGroup::select`](crate::ParamGroup::select) and
/// [`Module::visit_params`](crate::Module::visit_params) name it by its path in the model
/// instead (`"0.weight"`), which [`walk!`](crate::walk) builds from the modules' field
/// names, as PyTorch's `state_dict` keys come from attribute names.
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
    role: Role,
    value: SharedTensor,
    requires_grad: bool,
}

impl Param {
    /// A new parameter with a fresh id and the role [`Role::Weight`], whatever its name: the
    /// role is never guessed from the name. Give other roles with [`Param::with_role`],
    /// [`Param::bias`] or [`Param::weight`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Role};
    /// let scale = Param::new("scale", tensor::ones(&[3]));
    /// assert_eq!((scale.name(), scale.role()), ("scale", Role::Weight));
    /// // the role is not guessed from the name
    /// assert_eq!(Param::new("bias", tensor::zeros(&[3])).role(), Role::Weight);
    /// ```
    pub fn new(name: impl Into<String>, value: Tensor) -> Self {
        Param::with_role(name, Role::Weight, value)
    }

    /// A new parameter with a fresh id and the given role.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Role};
    /// let gamma = Param::with_role("gamma", Role::NormScale, tensor::ones(&[4]));
    /// assert_eq!((gamma.name(), gamma.role()), ("gamma", Role::NormScale));
    /// ```
    pub fn with_role(name: impl Into<String>, role: Role, value: Tensor) -> Self {
        Param {
            id: ParamId::fresh(),
            name: name.into(),
            role,
            value: value.into_shared(),
            requires_grad: true,
        }
    }

    /// A weight named `"weight"` ([`Role::Weight`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Role};
    /// let w = Param::weight(tensor::ones(&[3, 2]));
    /// assert_eq!((w.name(), w.role()), ("weight", Role::Weight));
    /// ```
    pub fn weight(value: Tensor) -> Self {
        Param::with_role("weight", Role::Weight, value)
    }

    /// A bias named `"bias"` ([`Role::Bias`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Role};
    /// let b = Param::bias(tensor::zeros(&[3]));
    /// assert_eq!((b.name(), b.role()), ("bias", Role::Bias));
    /// ```
    pub fn bias(value: Tensor) -> Self {
        Param::with_role("bias", Role::Bias, value)
    }

    /// Whether the parameter is trained: `true` for a new one. A frozen parameter (`false`)
    /// enters a tape as a constant, so a backward pass computes no gradient for it (and
    /// none of the work that only it needed), optimizers leave it as it is, and gradient
    /// clipping does not count it: PyTorch's `requires_grad`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let mut w = Param::new("w", tensor::from_vec(vec![2.0], &[1])?);
    /// let b = Param::new("b", tensor::from_vec(vec![1.0], &[1])?);
    /// w.set_requires_grad(false);
    /// assert!(!w.requires_grad() && b.requires_grad());
    /// let tape = Tape::new();
    /// let loss = (tape.param(&w) * tape.param(&b)).sum();
    /// let grads = loss.backward();
    /// assert!(grads.param(&w).is_none()); // frozen: no gradient
    /// assert_eq!(grads.param(&b).unwrap()[[0]], 2.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter: PyTorch's
    /// `param.requires_grad_(requires)`; [`Module::set_requires_grad`](crate::Module::set_requires_grad)
    /// does it for a whole module. A tape that already holds the parameter keeps what it
    /// recorded: change it between steps.
    pub fn set_requires_grad(&mut self, requires: bool) {
        self.requires_grad = requires;
    }

    /// The id gradients are keyed by.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// let layer = Linear::from_parts(tensor::ones(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// assert_ne!(layer.weight().id(), layer.bias().unwrap().id());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The name given at construction (`"weight"`, `"bias"`). Checkpoints use the path the
    /// owning module's walk gives ([`Module::visit_params`](crate::Module::visit_params)), such as `"0.weight"`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// let layer = Linear::from_parts(tensor::ones(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// assert_eq!(layer.weight().name(), "weight");
    /// assert_eq!(layer.bias().unwrap().name(), "bias");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the parameter is for, which decides weight decay and initialization rules.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Role};
    /// let layer = Linear::from_parts(tensor::ones(&[2, 2]), Some(tensor::zeros(&[2])))?;
    /// assert_eq!(layer.weight().role(), Role::Weight);
    /// assert_eq!(layer.bias().unwrap().role(), Role::Bias);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current value.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param};
    /// let w = Param::weight(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// assert_eq!(w.value().as_slice().unwrap(), &[1.0, 2.0]);
    /// assert_eq!(w.value().shape(), &[2]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn value(&self) -> &SharedTensor {
        &self.value
    }

    /// The value as a mutable view, for in-place updates by optimizers and initializers
    /// (copied first if a tape or a snapshot still shares it, so they keep the old value).
    /// A view keeps the shape: replace the value with one of another shape only through
    /// [`Param::set_value`], which checks it.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param};
    /// let mut w = Param::weight(tensor::ones(&[2, 2]));
    /// w.value_mut()[[0, 1]] = 3.0;
    /// w.value_mut().mapv_inplace(|x| x * 2.0);
    /// assert_eq!(w.value().as_slice().unwrap(), &[2.0, 6.0, 2.0, 2.0]);
    /// ```
    pub fn value_mut(&mut self) -> ArrayViewMutD<'_, Elem> {
        self.value.view_mut()
    }

    /// Replaces the value with `value`, which must have the parameter's shape (PyTorch's
    /// `param.data = value` does not check; a weight of another shape would only fail later,
    /// inside a forward pass). A tape or snapshot that shares the old value keeps it.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the parameter when `value`'s shape differs; the parameter is
    /// left unchanged.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param};
    /// let mut w = Param::weight(tensor::zeros(&[2, 3]));
    /// w.set_value(tensor::ones(&[2, 3]))?;
    /// assert_eq!(w.value().sum(), 6.0);
    /// let err = w.set_value(tensor::ones(&[3, 2])).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "param::set_value: expected shape [2, 3] (parameter `weight`), found shape [3, 2]"
    /// );
    /// assert_eq!(w.value().shape(), &[2, 3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn set_value(&mut self, value: Tensor) -> Result<()> {
        if value.shape() != self.value.shape() {
            return Err(Error::Shape {
                op: "param::set_value",
                expected: format!("shape {:?} (parameter `{}`)", self.value.shape(), self.name),
                found: format!("shape {:?}", value.shape()),
            });
        }
        self.value = value.into_shared();
        Ok(())
    }
}

/// A clone is a distinct parameter with the same name, role and value: it gets a fresh id,
/// so gradients of the two are never confused.
impl Clone for Param {
    fn clone(&self) -> Self {
        let mut clone = Param::with_role(self.name.clone(), self.role, self.value.to_owned());
        clone.requires_grad = self.requires_grad;
        clone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor;

    #[test]
    fn a_clone_keeps_name_role_and_value_under_a_fresh_id() {
        let p = Param::with_role("gamma", Role::NormScale, tensor::ones(&[3]));
        let q = p.clone();
        assert_eq!((q.name(), q.role()), ("gamma", Role::NormScale));
        assert_eq!(q.value(), p.value());
        assert_ne!(q.id(), p.id());
    }

    #[test]
    fn set_value_leaves_a_shared_copy_alone_and_refuses_another_shape() {
        let mut w = Param::weight(tensor::zeros(&[2]));
        let shared = w.value().clone();
        w.set_value(tensor::ones(&[2])).unwrap();
        assert_eq!(shared.sum(), 0.0, "a tape's copy keeps its forward value");
        assert_eq!(w.value().sum(), 2.0);
        let err = w.set_value(tensor::ones(&[1, 2])).unwrap_err();
        assert!(err.to_string().contains("parameter `weight`"), "{err}");
        assert_eq!(w.value().sum(), 2.0, "a refused value changes nothing");
        w.value_mut().fill(3.0);
        assert_eq!((shared.sum(), w.value().sum()), (0.0, 6.0));
    }
}
