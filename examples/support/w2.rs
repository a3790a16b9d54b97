//! Workload W2, the speed benchmark's CNN, built once for every program that runs it (the
//! benchmark, the receptive-field lecture experiment, the PyTorch interop test).

use tapegrad::{
    BatchNorm2d, ChaCha8Rng, Conv2d, Conv2dOptions, Flatten, Init, Linear, MaxPool2d, Module, Relu,
    Sequential,
};

/// Conv(1→32, 3×3, pad 1) ReLU MaxPool2 → Conv(32→64, 3×3, pad 1) ReLU MaxPool2 → Flatten →
/// Linear(3136→128) ReLU → Linear(128→10) on `[N, 1, 28, 28]` images, PyTorch's default
/// initializations; with `batchnorm`, a `BatchNorm2d` after each convolution.
pub fn w2(batchnorm: bool, rng: &mut ChaCha8Rng) -> tapegrad::Result<Sequential> {
    let pad = Conv2dOptions::default().padding(1);
    let mut layers: Vec<Box<dyn Module>> = Vec::new();
    for (cin, cout) in [(1, 32), (32, 64)] {
        layers.push(Box::new(Conv2d::new(
            cin,
            cout,
            [3, 3],
            pad,
            Init::default(),
            rng,
        )?));
        if batchnorm {
            layers.push(Box::new(BatchNorm2d::new(cout)?));
        }
        layers.push(Box::new(Relu));
        layers.push(Box::new(MaxPool2d::new(2)?));
    }
    layers.push(Box::new(Flatten));
    layers.push(Box::new(Linear::new(3136, 128, Init::default(), rng)?));
    layers.push(Box::new(Relu));
    layers.push(Box::new(Linear::new(128, 10, Init::default(), rng)?));
    Sequential::new(layers)
}
