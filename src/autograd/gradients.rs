//! [`Gradients`]: what [`Var::backward`] returns, one gradient per leaf, looked up by leaf or
//! by parameter.

use crate::autograd::grad::{FormCounter, Grad, ParamGrad};
use crate::autograd::tape::{Backward, Tape, Var};
use crate::param::{Param, ParamId};
use crate::tensor::Tensor;
use std::sync::OnceLock;

/// The gradients of a loss with respect to the leaves of its tape, returned by
/// [`Var::backward`].
///
/// Look one up by leaf with [`Gradients::get`], or by parameter with [`Gradients::param`].
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tape};
/// let tape = Tape::new();
/// let (a, b) = (tape.leaf(tensor::ones(&[2])), tape.leaf(tensor::ones(&[2])));
/// let c = tape.constant(tensor::ones(&[2]));
/// let grads = (a * 3.0 + c).sum().backward();
/// assert_eq!(grads.get(a).unwrap().as_slice().unwrap(), &[3.0, 3.0]);
/// assert!(grads.get(b).is_none()); // the loss does not use b
/// assert_eq!(grads.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Gradients {
    pub(crate) tape: u64,
    pub(crate) generation: u64,
    /// The leaves that received a gradient, sorted by node id (for one tape's gradients; a
    /// sum of shards, whose ids come from several tapes, is looked up by parameter only).
    pub(crate) leaves: Vec<Leaf>,
    /// Gradients kept in parts that were formed as one tensor.
    pub(crate) formed: FormCounter,
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
    /// [`Grad::finite_bound`] of `grad`, on first request: an optimizer asks twice per step
    /// (whether the gradient is finite, then whether the update is safe), and each answer
    /// reads every factor.
    pub(crate) bound: OnceLock<Option<f64>>,
}

impl Leaf {
    /// The gradient `grad` of node `id`, which holds `param` if any.
    pub(crate) fn new(id: usize, param: Option<ParamId>, grad: Grad) -> Self {
        Leaf {
            id,
            param,
            grad,
            dense: OnceLock::new(),
            bound: OnceLock::new(),
        }
    }

    fn dense(&self, formed: &FormCounter) -> &Tensor {
        match &self.grad {
            Grad::Dense(tensor) => tensor,
            Grad::Outer { .. } | Grad::Sum(_) => self.dense.get_or_init(|| {
                formed.count();
                self.grad.to_dense()
            }),
        }
    }
}

/// The tape id of a [`Gradients::sum`], which belongs to no tape.
const SUMMED: u64 = u64::MAX;

impl Gradients {
    /// The gradient of the loss with respect to `leaf`, or `None` when the loss does not
    /// depend on it. A leaf's gradient from a matrix product (a layer's weight) is kept as
    /// its two factors until the first call here forms it (see
    /// [`Var::matmul_transposed`]).
    ///
    /// Only leaves keep a gradient ([`Tape::leaf`], [`Tape::param`]): a value an op computed
    /// gives `None`, as PyTorch's `.grad` of a non-leaf without `retain_grad()`. To read the
    /// gradient at such a point, add a leaf of zeros there (`y + tape.leaf(zeros)`) and ask
    /// for the leaf's.
    ///
    /// # Panics
    /// If `leaf` is on another tape, or on this tape before a [`Tape::reset`] the gradients
    /// were not computed after, or these gradients are a [`Gradients::sum`] (which answers
    /// [`Gradients::param`] only).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![1.0, 2.0], &[2])?);
    /// let grads = (x * x).sum().backward(); // ∂Σx²/∂x = 2x
    /// assert_eq!(grads.get(x).unwrap().as_slice().unwrap(), &[2.0, 4.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn get(&self, leaf: Var<'_>) -> Option<&Tensor> {
        assert!(
            self.tape != SUMMED,
            "gradients: a sum of gradients keeps parameters' only; ask with param(), not get({leaf:?})"
        );
        assert!(
            leaf.tape.id == self.tape && leaf.tape.generation == self.generation,
            "gradients: {leaf:?} is not from the tape step these gradients were computed on"
        );
        self.leaves
            .binary_search_by_key(&leaf.id, |leaf| leaf.id)
            .ok()
            .map(|i| self.leaves[i].dense(&self.formed))
    }

    /// The gradient of the loss with respect to a parameter put on the tape with
    /// [`Tape::param`], or `None` when the loss does not depend on it. Formed on the first
    /// call when it is kept as factors, as [`Gradients::get`] says.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Param, Tape};
    /// let (w, unused) = (Param::weight(tensor::ones(&[2])), Param::bias(tensor::ones(&[2])));
    /// let tape = Tape::new();
    /// let grads = (tape.param(&w) * 2.0).sum().backward();
    /// assert_eq!(grads.param(&w).unwrap().as_slice().unwrap(), &[2.0, 2.0]);
    /// assert!(grads.param(&unused).is_none());
    /// ```
    pub fn param(&self, param: &Param) -> Option<&Tensor> {
        self.param_leaf(param).map(|leaf| leaf.dense(&self.formed))
    }

    /// A parameter's gradient as the backward pass left it, as a handle that update rules
    /// read without forming a matrix product's weight gradient (see [`ParamGrad`]); `None`
    /// when the loss does not depend on the parameter.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let layer = Linear::from_parts(tensor::zeros(&[1, 2]), None)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::from_vec(vec![3.0, 4.0], &[1, 2])?);
    /// let grads = layer.forward(x, Mode::Train).sum().backward();
    /// let g = grads.param_grad(layer.weight()).unwrap();
    /// let mut w = tensor::zeros(&[1, 2]);
    /// g.scaled_add_to(w.view_mut(), -0.1); // W ← W − 0.1·g, g = x
    /// assert_eq!(w.as_slice().unwrap(), &[-0.3, -0.4]);
    /// assert_eq!(grads.dense_formed(), 0); // g was never written out
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn param_grad(&self, param: &Param) -> Option<ParamGrad<'_>> {
        (self.param_leaf(param))
            .map(|leaf| ParamGrad::of_leaf(&leaf.grad, &leaf.dense, &leaf.bound, &self.formed))
    }

    /// How many gradients kept in parts (a weight's factors, or the gradients of a batch's
    /// shards) have been formed as one tensor so far, by [`Gradients::get`],
    /// [`Gradients::param`], [`ParamGrad::dense`] or [`ParamGrad::dense_in`]. An optimizer
    /// that takes the fast path forms none.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let layer = Linear::from_parts(tensor::zeros(&[2, 3]), None)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(tensor::ones(&[1, 3]));
    /// let grads = layer.forward(x, Mode::Train).sum().backward();
    /// assert_eq!(grads.dense_formed(), 0);
    /// assert_eq!(grads.param(layer.weight()).unwrap(), tensor::ones(&[2, 3]));
    /// assert_eq!(grads.dense_formed(), 1);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dense_formed(&self) -> usize {
        self.formed.get()
    }

    fn param_leaf(&self, param: &Param) -> Option<&Leaf> {
        self.leaves
            .iter()
            .find(|leaf| leaf.param == Some(param.id()))
    }

    /// The parameters' gradients of several backward passes added up per parameter, for one
    /// optimizer step over all of them: gradient accumulation over micro-batches, as
    /// PyTorch's `.grad` accumulates over several `backward()` calls before
    /// `optimizer.step()` (and how [`TrainStep`](crate::TrainStep) adds up its shards). Scale
    /// each micro-batch's loss by its share of the rows (`loss / k` for `k` equal ones) to
    /// step on the mean over all of them.
    ///
    /// A single part is returned as it is. Of several, the sum keeps the parameters'
    /// gradients only (in the parts' order, each still in its factored form until an
    /// update rule asks for it densely): it answers [`Gradients::param`] and
    /// [`Gradients::param_grad`], not [`Gradients::get`]. The parts may come from one tape
    /// reset between passes, or from several.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Gradients, Linear, Mode, Module, Optimizer, Sgd, Tape};
    /// let mut model = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// let batch = tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    /// // two micro-batches of one row each, each loss halved: the mean over both rows
    /// let mut tape = Tape::new();
    /// let mut parts = Vec::new();
    /// for row in 0..2 {
    ///     tape.reset();
    ///     let x = tape.constant(batch.slice(tapegrad::ndarray::s![row..row + 1, ..]));
    ///     parts.push((model.forward(x, Mode::Train).mean() * 0.5).backward());
    /// }
    /// let accumulated = Gradients::sum(parts);
    /// // ∂/∂w of mean(x·wᵀ) over both rows: the mean row, [2, 3]
    /// assert_eq!(accumulated.param(model.weight()).unwrap().as_slice().unwrap(), &[2.0, 3.0]);
    /// Sgd::new(0.1)?.step(&mut model, &accumulated)?;
    /// let w = model.weight().value();
    /// assert!((w[[0, 0]] - 0.8).abs() < 1e-6 && (w[[0, 1]] - 0.7).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sum(parts: Vec<Gradients>) -> Gradients {
        match <[Gradients; 1]>::try_from(parts) {
            Ok([whole]) => whole,
            Err(parts) => Gradients::sum_of_shards(parts),
        }
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
                // a new leaf: the shard's caches hold its part, not the sum
                _ => leaves.push(Leaf::new(leaf.id, leaf.param, Grad::Sum(vec![leaf.grad]))),
            }
        }
        Gradients {
            // no tape's: `get` with any `Var` is refused
            tape: SUMMED,
            generation: 0,
            leaves,
            formed: FormCounter::default(),
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
                        part.recycle(tapes[i % tapes.len()].pool());
                    }
                }
                grad => grad.recycle(tapes[0].pool()),
            }
            if let Some(dense) = leaf.dense.into_inner() {
                tapes[0].reuse(dense);
            }
        }
    }

    /// Number of leaves that received a gradient.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let (a, b) = (tape.leaf(tensor::ones(&[2])), tape.leaf(tensor::ones(&[2])));
    /// assert_eq!((a * b).sum().backward().len(), 2);
    /// assert_eq!(a.sum().backward().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether no leaf received a gradient.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::ones(&[2]));
    /// assert!(!x.sum().backward().is_empty());
    /// let c = tape.constant(tensor::ones(&[2]));
    /// assert!(c.sum().backward().is_empty()); // nothing on the tape needs a gradient
    /// ```
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }
}

impl Tape {
    /// Gives the buffers of gradients the caller is done with (after the optimizer step) back
    /// to the tape, so the next steps' backward passes reuse them instead of allocating.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let mut tape = Tape::new();
    /// for _ in 0..3 {
    ///     tape.reset();
    ///     let x = tape.leaf(tensor::ones(&[256, 256]));
    ///     let grads = x.square().sum().backward();
    ///     assert_eq!(grads.get(x).unwrap()[[0, 0]], 2.0);
    ///     tape.recycle(grads);
    /// }
    /// ```
    pub fn recycle(&mut self, grads: Gradients) {
        grads.recycle_into(std::slice::from_ref(self));
    }
}

impl<'t> Var<'t> {
    /// Reverse-mode differentiation: the gradient of this scalar with respect to every leaf
    /// that needs one (`loss.backward()` in PyTorch, but returned rather than stored).
    ///
    /// Walks the tape from this node back to the first, applying each op's backward rule
    /// and **adding** the results into each parent's gradient, so a value used several times
    /// (`x * x`, a weight shared by two layers) gets the sum of all its uses. Nodes that no
    /// leaf depends on are skipped. Leaves not reached get no entry.
    ///
    /// # Panics
    /// If this value has more than one element (`backward: expected a scalar loss`), or the
    /// tape was made by [`Tape::inference`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Tape};
    /// let tape = Tape::new();
    /// let x = tape.leaf(tensor::from_vec(vec![3.0], &[])?);
    /// // y = x·x + x uses x three times: dy/dx = 2x + 1 = 7, the sum of all uses
    /// let grads = (x * x + x).backward();
    /// assert_eq!(grads.get(x).unwrap().sum(), 7.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn backward(self) -> Gradients {
        assert!(
            self.tape.recording,
            "backward: this tape was made by Tape::inference and records no backward rules"
        );
        let nodes = self.tape.nodes.borrow();
        let loss = &nodes[self.id];
        assert!(
            loss.value.len() == 1,
            "backward: expected a scalar loss, found shape {:?}",
            loss.value.shape()
        );
        let mut grads: Vec<Option<Grad>> = Vec::new();
        grads.resize_with(self.id + 1, || None);
        grads[self.id] = Some(Tensor::ones(loss.value.raw_dim()).into());
        let mut leaves = Vec::new();
        for id in (0..=self.id).rev() {
            let node = &nodes[id];
            if !node.requires_grad {
                continue;
            }
            let Some(grad) = grads[id].take() else {
                continue;
            };
            let Some(rule) = &node.backward else {
                leaves.push(Leaf::new(id, node.param, grad));
                continue;
            };
            let grad = grad.into_dense(self.tape.pool());
            let [p0, p1] = node.parents;
            let ctx = Backward {
                grad: &grad,
                out: &node.value,
                inputs: [&nodes[p0].value, &nodes[p1].value],
                needs: [nodes[p0].requires_grad, nodes[p1].requires_grad],
                leaf: [nodes[p0].backward.is_none(), nodes[p1].backward.is_none()],
                tape: self.tape,
                saved: node.saved.as_ref(),
            };
            let parent_grads = rule(&ctx);
            let needs = ctx.needs;
            self.tape.reuse(grad);
            for (k, parent_grad) in parent_grads.into_iter().enumerate().take(node.arity) {
                let parent = node.parents[k];
                if let Some(g) = parent_grad.filter(|_| needs[k]) {
                    debug_assert_eq!(
                        g.shape(),
                        nodes[parent].value.shape(),
                        "internal error: {} gradient shape",
                        node.op
                    );
                    match grads[parent].take() {
                        // a value used more than once: the sum of its uses' gradients
                        Some(sum) => {
                            let mut sum = sum.into_dense(self.tape.pool());
                            let g = g.into_dense(self.tape.pool());
                            sum += &g;
                            self.tape.reuse(g);
                            grads[parent] = Some(sum.into());
                        }
                        None => grads[parent] = Some(g),
                    }
                }
            }
        }
        leaves.reverse();
        Gradients {
            tape: self.tape.id,
            generation: self.tape.generation,
            leaves,
            formed: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor;

    #[test]
    fn a_sum_adds_each_parameters_parts_from_any_tapes_and_nests() {
        let w = Param::weight(tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let b = Param::bias(tensor::from_vec(vec![0.5], &[1]).unwrap());
        // L₁ = Σ 3·w (∂w = 3), L₂ = Σ w·w + Σ b (∂w = 2w, ∂b = 1), on two tapes
        let (first, second) = (Tape::new(), Tape::new());
        let one = (first.param(&w) * 3.0).sum().backward();
        let two = ((second.param(&w) * second.param(&w)).sum() + second.param(&b).sum()).backward();
        let (one_w, two_w) = (
            one.param(&w).unwrap().clone(),
            two.param(&w).unwrap().clone(),
        );
        let both = Gradients::sum(vec![one, two]);
        assert_eq!(both.param(&w).unwrap(), &(&one_w + &two_w));
        assert_eq!(both.param(&b).unwrap().as_slice().unwrap(), &[1.0]);
        // a sum of sums, and a single part as it was (it still answers `get`)
        let third = Tape::new();
        let leaf = third.param(&w);
        let lone = Gradients::sum(vec![(leaf * 2.0).sum().backward()]);
        assert_eq!(lone.get(leaf).unwrap().as_slice().unwrap(), &[2.0, 2.0]);
        let nested = Gradients::sum(vec![both, lone]);
        assert_eq!(nested.param(&w).unwrap(), &(&(&one_w + &two_w) + 2.0));
        assert_eq!(nested.param(&b).unwrap().as_slice().unwrap(), &[1.0]);
    }

    #[test]
    #[should_panic(expected = "gradients: a sum of gradients keeps parameters' only")]
    fn get_on_a_sum_says_to_ask_for_parameters() {
        let tape = Tape::new();
        let x = tape.leaf(tensor::ones(&[2]));
        let parts = vec![x.sum().backward(), (x * 2.0).sum().backward()];
        let _ = Gradients::sum(parts).get(x);
    }
}
