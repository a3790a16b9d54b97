//! Neural-network building blocks: parameters and the modules that own them.

mod module;

pub use module::{Param, ParamId};
