//! Kernels below autograd: the matrix product ([`gemm`]), convolution ([`conv`]) and the
//! buffer pool a tape reuses
//! ([`pool`]). Nothing here knows a tape, an op or a layer.

pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod pool;
