//! [`Gradients`]: what [`Var::backward`] returns, one gradient per leaf, looked up by leaf or
//! by parameter.

use crate::autograd::grad::Grad;
use crate::autograd::tape::{Tape, Var};
use crate::nn::{Param, ParamId};
use crate::tensor::Tensor;
use std::sync::OnceLock;

/// The gradients of a loss with respect to the leaves of its tape, returned by
/// [`Var::backward`].
///
/// Look one up by leaf with [`Gradients::get`], or by parameter with [`Gradients::param`].
#[derive(Debug, Clone)]
pub struct Gradients {
    pub(crate) tape: u64,
    pub(crate) generation: u64,
    /// The leaves that received a gradient, sorted by node id (for one tape's gradients; a
    /// sum of shards, whose ids come from several tapes, is looked up by parameter only).
    pub(crate) leaves: Vec<Leaf>,
}

/// One leaf's gradient.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    id: usize,
    /// The parameter this leaf holds.
    param: Option<ParamId>,
    pub(crate) grad: Grad,
    /// The gradient formed from [`Grad::Outer`] factors or a [`Grad::Sum`], on first request.
    pub(crate) dense: OnceLock<Tensor>,
}

impl Leaf {
    /// The gradient `grad` of node `id`, which holds `param` if any.
    pub(crate) fn new(id: usize, param: Option<ParamId>, grad: Grad) -> Self {
        Leaf {
            id,
            param,
            grad,
            dense: OnceLock::new(),
        }
    }

    fn dense(&self) -> &Tensor {
        match &self.grad {
            Grad::Dense(tensor) => tensor,
            Grad::Outer { .. } | Grad::Sum(_) => self.dense.get_or_init(|| self.grad.to_dense()),
        }
    }
}

impl Gradients {
    /// The gradient of the loss with respect to `leaf`, or `None` when the loss does not
    /// depend on it. A leaf's gradient from a matrix product (a layer's weight) is kept as
    /// its two factors until the first call here forms it (see
    /// [`Var::matmul_transposed`]).
    ///
    /// # Panics
    /// If `leaf` is on another tape, or on this tape before a [`Tape::reset`] the gradients
    /// were not computed after.
    #[track_caller]
    pub fn get(&self, leaf: Var<'_>) -> Option<&Tensor> {
        assert!(
            leaf.tape.id == self.tape && leaf.tape.generation == self.generation,
            "gradients: {leaf:?} is not from the tape step these gradients were computed on"
        );
        self.leaves
            .binary_search_by_key(&leaf.id, |leaf| leaf.id)
            .ok()
            .map(|i| self.leaves[i].dense())
    }

    /// The gradient of the loss with respect to a parameter put on the tape with
    /// [`Tape::param`], or `None` when the loss does not depend on it. Formed on the first
    /// call when it is kept as factors, as [`Gradients::get`] says.
    pub fn param(&self, param: &Param) -> Option<&Tensor> {
        self.param_leaf(param).map(Leaf::dense)
    }

    /// A parameter's gradient as the backward pass left it, for optimizers that can apply
    /// [`Grad::Outer`] factors without forming the product.
    pub(crate) fn param_grad(&self, param: &Param) -> Option<&Grad> {
        self.param_leaf(param).map(|leaf| &leaf.grad)
    }

    fn param_leaf(&self, param: &Param) -> Option<&Leaf> {
        self.leaves
            .iter()
            .find(|leaf| leaf.param == Some(param.id()))
    }

    /// The parameters' gradients of several shards of one batch, each shard's from its own
    /// tape, added up per parameter (in shard order). Leaves that are not parameters are
    /// left out, and the sum answers only [`Gradients::param`].
    pub(crate) fn sum_of_shards(shards: Vec<Gradients>) -> Gradients {
        let mut leaves: Vec<Leaf> = Vec::new();
        for leaf in shards.into_iter().flat_map(|shard| shard.leaves) {
            if leaf.param.is_none() {
                continue;
            }
            match leaves.iter_mut().find(|sum| sum.param == leaf.param) {
                Some(Leaf {
                    grad: Grad::Sum(parts),
                    ..
                }) => parts.push(leaf.grad),
                _ => leaves.push(Leaf {
                    grad: Grad::Sum(vec![leaf.grad]),
                    ..leaf
                }),
            }
        }
        Gradients {
            // no tape's: `get` with any `Var` is refused
            tape: u64::MAX,
            generation: 0,
            leaves,
        }
    }

    /// Gives the gradients' buffers back to the pools of `tapes`: the `i`-th part of a
    /// [`Gradients::sum_of_shards`] to the `i`-th tape (exact when every shard used every
    /// parameter), everything else to the first.
    pub(crate) fn recycle_into(self, tapes: &[Tape]) {
        for leaf in self.leaves {
            match leaf.grad {
                Grad::Sum(parts) => {
                    for (i, part) in parts.into_iter().enumerate() {
                        tapes[i % tapes.len()].recycle_grad(part);
                    }
                }
                grad => tapes[0].recycle_grad(grad),
            }
            if let Some(dense) = leaf.dense.into_inner() {
                tapes[0].reuse(dense);
            }
        }
    }

    /// Number of leaves that received a gradient.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether no leaf received a gradient.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }
}
