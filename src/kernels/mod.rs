//! Kernels below autograd: the matrix product ([`gemm`]), convolution ([`conv`]), 2×2 max
//! pooling ([`max_pool`]), element-wise loops ([`elementwise`]), the dispatch to the CPU's
//! vector unit they share ([`simd`]) and the buffer pool a tape reuses ([`pool`]). Nothing
//! here knows a tape, an op or a layer.

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod max_pool;
pub(crate) mod pool;
pub(crate) mod simd;
