//! Neural-network building blocks: the [`Module`] trait and [`Param`]s, the layers
//! ([`Linear`], [`Dropout`], [`Maxout`], the activations), [`Sequential`], and the
//! initializers ([`Init`], [`gain`], [`lsuv()`]).

mod activation;
mod dropout;
mod flatten;
mod init;
mod linear;
mod loss;
mod lsuv;
mod maxout;
mod module;
mod sample_rng;
mod sequential;

pub use crate::param::{Param, ParamId, Role};
pub use activation::{Activation, Elu, Identity, LeakyRelu, Relu, Sigmoid, Step, Tanh};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use init::{FanMode, Init, fans, gain};
pub use linear::Linear;
pub use loss::{Loss, LossFn};
pub use lsuv::{LSUV_MAX_ITER, LSUV_TOLERANCE, LsuvLayer, LsuvReport, lsuv};
pub use maxout::Maxout;
pub use module::{Mode, Module, Walk};
pub use sample_rng::{BatchRng, SampleRng};
pub use sequential::Sequential;
