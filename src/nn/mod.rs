//! Neural-network building blocks: the [`Module`] trait and [`Param`]s, the layers
//! ([`Linear`], [`Dropout`], [`Maxout`], the activations), [`Sequential`], and the
//! initializers ([`Init`], [`gain`], [`lsuv`]).

mod activation;
mod dropout;
mod init;
mod linear;
mod maxout;
mod module;
mod sequential;

pub use activation::{Activation, Elu, Identity, LeakyRelu, Relu, Sigmoid, Step, Tanh};
pub use dropout::Dropout;
pub use init::{
    FanMode, Init, LSUV_MAX_ITER, LSUV_TOLERANCE, LsuvLayer, LsuvReport, fans, gain, lsuv,
};
pub use linear::Linear;
pub use maxout::Maxout;
pub use module::{Mode, Module, Param, ParamId};
pub use sequential::Sequential;
