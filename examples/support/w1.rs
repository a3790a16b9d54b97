//! Workload W1, the speed benchmark's MLP, built once for every program that runs it (the
//! benchmark, the MPI scaling model, the FLOP-count test).

use tapegrad::{ChaCha8Rng, Init, Linear, Relu, Sequential};

/// Linear(784→256) ReLU → Linear(256→256) ReLU → Linear(256→10), PyTorch's default
/// initializations.
pub fn w1(rng: &mut ChaCha8Rng) -> tapegrad::Result<Sequential> {
    Sequential::new(vec![
        Box::new(Linear::new(784, 256, Init::default(), rng)?),
        Box::new(Relu),
        Box::new(Linear::new(256, 256, Init::default(), rng)?),
        Box::new(Relu),
        Box::new(Linear::new(256, 10, Init::default(), rng)?),
    ])
}
