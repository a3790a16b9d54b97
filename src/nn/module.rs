//! Trainable parameters: [`Param`] and its process-unique [`ParamId`].

use crate::tensor::Tensor;
use std::sync::atomic::{AtomicU64, Ordering};

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
/// Put it on a tape with [`Tape::param`](crate::Tape::param) (a copy into the tape's reused
/// buffers) and read its gradient with [`Gradients::param`](crate::Gradients::param).
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
    value: Tensor,
}

impl Param {
    /// A new parameter with a fresh id.
    pub fn new(name: impl Into<String>, value: Tensor) -> Self {
        Param {
            id: ParamId::fresh(),
            name: name.into(),
            value,
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
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The value, for in-place updates by optimizers and initializers.
    pub fn value_mut(&mut self) -> &mut Tensor {
        &mut self.value
    }
}

/// A clone is a distinct parameter: it gets a fresh id, so gradients of the two are never
/// confused.
impl Clone for Param {
    fn clone(&self) -> Self {
        Param::new(self.name.clone(), self.value.clone())
    }
}
