//! # tapegrad
//!
//! A small deep learning library: `f32` tensors that are plain [`ndarray`] arrays, and a
//! reverse-mode autograd [`Tape`] that records each op as it runs and walks back over the
//! record to compute gradients.
//!
//! ## Quick tour
//!
//! Put inputs on a tape, compute with [`Var`] methods and operators, call
//! [`Var::backward`] on a scalar loss, and read the [`Gradients`]. Here is one step of
//! gradient descent, `W := W − lr · ∂L/∂W`, for a linear model with a softmax
//! cross-entropy loss:
//!
//! ```
//! use tapegrad::{tensor, ChaCha8Rng, SeedableRng, Tape};
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//! let x = tensor::normal(&[8, 4], 0.0, 1.0, &mut rng)?; // a batch of 8 samples
//! let labels = [0, 1, 2, 0, 1, 2, 0, 1];
//! let mut w = tensor::normal(&[4, 3], 0.0, 0.1, &mut rng)?;
//! let mut b = tensor::zeros(&[3]);
//!
//! let mut losses = Vec::new();
//! let mut tape = Tape::new();
//! for _ in 0..50 {
//!     tape.reset(); // reuse the tape's memory for the next step
//!     let (wv, bv) = (tape.leaf(w.clone()), tape.leaf(b.clone()));
//!     let logits = tape.constant(x.clone()).matmul(wv) + bv; // bias broadcast over rows
//!     let loss = logits.cross_entropy(&labels);
//!     losses.push(loss.item());
//!     let grads = loss.backward();
//!     w.scaled_add(-0.5, grads.get(wv).unwrap());
//!     b.scaled_add(-0.5, grads.get(bv).unwrap());
//! }
//! assert!(losses[49] < 0.5 * losses[0]);
//! # Ok::<(), tapegrad::Error>(())
//! ```
//!
//! ## Conventions
//! - Ops panic on misuse inside a program (shape mismatches), naming the op and both shapes,
//!   as ndarray does; input from outside (lengths, hyperparameters, files) returns
//!   [`Error`].
//! - Randomness always comes from a generator the caller passes, e.g. [`ChaCha8Rng`]:
//!   the same seed gives the same numbers on every platform and `rand` version.
//! - Every op's gradient is checked against central finite differences with [`gradcheck()`],
//!   which users can run on their own compositions.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod autograd;
pub mod checkpoint;
pub mod data;
pub mod diagnostics;
mod error;
mod kernels;
pub mod metrics;
mod nn;
mod optim;
mod param;
mod rbm;
pub mod tensor;
mod threads;
mod train;

/// Everything a training script uses, for `use tapegrad::prelude::*;`: the crate root's
/// items without [`Result`], so a glob import shadows nothing of Rust's own prelude
/// (`collect::<Result<_, _>>()` keeps meaning `std::result::Result`).
///
/// Each public item has one path. Five modules are public: [`tensor`] (`tensor::zeros`),
/// [`data`] (`data::fashion_mnist`), [`checkpoint`] (`checkpoint::save`,
/// `checkpoint::Checkpoint`), [`diagnostics`] (`diagnostics::probe`) and [`metrics`]
/// (`metrics::accuracy`); what they hold is reached through them, except the tensor and
/// data-set types, which every script names and so live at the root (`tapegrad::Tensor`,
/// `tapegrad::Dataset`) and not in their module. Everything else (layers, tape, optimizers,
/// training) is reached at the root and here, with what a script needs of `ndarray` and
/// `rand` (`ChaCha8Rng`, and `RngExt` for `rng.random_range(..)` and `rng.random()`).
///
/// # Examples
/// ```
/// use tapegrad::prelude::*;
/// let parsed: Result<Vec<u32>, _> = ["1", "2"].iter().map(|s| s.parse::<u32>()).collect();
/// assert_eq!(parsed, Ok(vec![1, 2]));
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let model = Linear::new(2, 1, Init::default(), &mut rng)?;
/// assert_eq!(model.num_params(), 3);
/// assert!((0.0..1.0).contains(&rng.random_range(0.0f32..1.0)));
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub mod prelude {
    // the modules whose functions scripts call by path (`tensor::zeros`,
    // `checkpoint::save`, `diagnostics::probe`)
    pub use crate::autograd::ops::conv::Conv2dOptions;
    pub use crate::autograd::ops::conv_transpose::ConvTranspose2dOptions;
    pub use crate::autograd::ops::upsample::Resize;
    pub use crate::autograd::{
        GradcheckConfig, Gradients, ParamGrad, StepRows, Tape, TapeInput, Var, gradcheck,
        gradcheck_with,
    };
    pub use crate::data::augment::{
        Augment, FnTransform, RandomCrop, RandomHorizontalFlip, RandomTranslate, Transform,
    };
    pub use crate::data::dataset::{Batch, Batches, Dataset, SampleArray};
    pub use crate::data::preprocess::{Scaler, ScalerKind};
    pub use crate::data::targets::{BatchTargets, Targets};
    pub use crate::error::Error;
    pub use crate::nn::{
        Activation, AdaptiveAvgPool2d, Avg, AvgPool2d, BatchNorm, BatchNorm1d, BatchNorm2d,
        BatchNormOptions, BatchRng, Conv2d, ConvTranspose2d, Dropout, Elu, FanMode, Flatten,
        Fusable, Identity, Init, LSUV_MAX_ITER, LSUV_TOLERANCE, LeakyRelu, Linear, Loss, LossFn,
        LsuvLayer, LsuvReport, Max, MaxPool2d, Maxout, Mode, Module, Param, ParamId, Pool2d,
        PoolKind, Relu, Role, SampleRng, Sequential, Sigmoid, Spatial, Step, Tanh, Unflatten,
        Upsample, UpsampleMode, Walk, Window, fans, fans_grouped, gain, lsuv,
    };
    pub use crate::optim::{
        Adam, AdamRule, Decay, DecayUnit, Optim, Optimizer, OptimizerState, ParamGroup, ParamStep,
        PlateauState, RmsProp, RmsPropRule, Schedule, Sgd, SgdRule, UpdateRule, l2_penalty,
    };
    pub use crate::rbm::{
        PretrainProgress, Rbm, RbmConfig, RbmEpoch, RbmGradient, RbmMethod, RbmTrainer, pretrain,
    };
    pub use crate::tensor::types::{Elem, SharedTensor, Tensor};
    pub use crate::threads::{in_pool, num_threads, set_num_threads};
    #[cfg(feature = "mpi")]
    pub use crate::train::{Distributed, SYNC_CHECK_EVERY};
    pub use crate::train::{
        EpochRecord, Evaluation, FitConfig, Goal, History, Metric, Monitor, OnDivergence, Plateau,
        Predictions, Predictor, Progress, Samples, TrainStep, evaluate, evaluate_with, fit, infer,
    };
    pub use crate::{checkpoint, data, diagnostics, metrics, tensor};
    pub use ndarray;
    pub use rand::{Rng, RngExt, SeedableRng};
    pub use rand_chacha::ChaCha8Rng;
}

pub use error::Result;
pub use prelude::*;

/// The README's examples, run as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
