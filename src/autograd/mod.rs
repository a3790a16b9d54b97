//! Reverse-mode automatic differentiation: the [`Tape`], its [`Var`] handles, the ops
//! (methods on `Var`, each with its backward rule beside its forward), and the public
//! finite-difference checker [`gradcheck()`].

pub(crate) mod grad;
pub(crate) mod gradcheck;
pub(crate) mod gradients;
pub(crate) mod ops;
pub(crate) mod shard_group;
pub(crate) mod tape;

pub use grad::ParamGrad;
pub use gradcheck::{GradcheckConfig, gradcheck, gradcheck_with};
pub use gradients::Gradients;
pub use tape::{StepRows, Tape, TapeInput, Var};
