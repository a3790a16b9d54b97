//! Neural-network building blocks: the [`Module`] trait and [`Param`]s, the layers
//! ([`Linear`], [`Conv2d`], [`ConvTranspose2d`], the pooling layers, [`Upsample`],
//! [`BatchNorm1d`] and [`BatchNorm2d`], [`Flatten`] and [`Unflatten`], [`Dropout`], [`Maxout`],
//! the activations), [`Sequential`], and the initializers ([`Init`], [`gain`], [`lsuv()`]).

mod activation;
mod conv;
mod conv_transpose;
mod dropout;
mod flatten;
mod init;
mod linear;
mod loss;
mod lsuv;
mod maxout;
mod module;
mod norm;
mod pool;
mod sample_rng;
mod sequential;
mod shape;
mod upsample;

pub use crate::param::{Param, ParamId, Role};
pub use activation::{Activation, Elu, Identity, LeakyRelu, Relu, Sigmoid, Step, Tanh};
pub use conv::Conv2d;
pub use conv_transpose::ConvTranspose2d;
pub use dropout::Dropout;
pub use flatten::{Flatten, Unflatten};
pub use init::{FanMode, Init, fans, fans_grouped, gain};
pub use linear::Linear;
pub use loss::{Loss, LossFn};
pub use lsuv::{LSUV_MAX_ITER, LSUV_TOLERANCE, LsuvLayer, LsuvReport, lsuv};
pub use maxout::Maxout;
pub use module::{Fusable, Mode, Module, Walk};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormOptions};
pub use pool::{AdaptiveAvgPool2d, Avg, AvgPool2d, Max, MaxPool2d, Pool2d, PoolKind};
pub use sample_rng::{BatchRng, SampleRng};
pub use sequential::Sequential;
pub(crate) use shape::quietly;
pub use shape::{Spatial, Window};
pub use upsample::{Upsample, UpsampleMode};
