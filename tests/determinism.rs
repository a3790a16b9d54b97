//! The same seed and thread count give bit-identical parameters after an epoch of the W1
//! workload's model (784-256-256-10) on generated data, on two threads: with dropout (one
//! shard per batch, matrix products split across the threads) and without (batches split
//! into one shard per thread, see `TrainStep`).

use tapegrad::{
    ChaCha8Rng, Dataset, Dropout, FitConfig, Init, Linear, Module, Relu, Scaler, SeedableRng,
    Sequential, Sgd, Tensor, fit, ndarray::Array2,
};

fn train_one_epoch(dropout: bool) -> Vec<Tensor> {
    tapegrad::set_num_threads(2).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let pixels = Array2::from_shape_fn((2048, 784), |(i, j)| ((i * 131 + j * 17) % 256) as u8);
    let labels = (0..2048).map(|i| (i * 7) % 10).collect();
    let mut data = Dataset::from_bytes(pixels, labels).unwrap();
    data.set_scaler(Scaler::standardize(&data).unwrap())
        .unwrap();
    let mut layers: Vec<Box<dyn Module>> = vec![
        Box::new(Linear::new(784, 256, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
    ];
    if dropout {
        layers.push(Box::new(Dropout::new(0.2, &mut rng).unwrap()));
    }
    layers.push(Box::new(
        Linear::new(256, 256, Init::default(), &mut rng).unwrap(),
    ));
    layers.push(Box::new(Relu));
    layers.push(Box::new(
        Linear::new(256, 10, Init::default(), &mut rng).unwrap(),
    ));
    let mut model = Sequential::new(layers).unwrap();
    let mut sgd = Sgd::new(0.05).unwrap().momentum(0.9).unwrap();
    let config = FitConfig {
        epochs: 1,
        batch_size: 128,
        seed: 3,
        ..FitConfig::default()
    };
    fit(&mut model, &mut sgd, &data, None, &config, &mut |_| {}).unwrap();
    let mut params = Vec::new();
    model.visit_params(&mut |_, p| params.push(p.value().to_owned()));
    params
}

fn assert_bit_identical(dropout: bool) {
    let (a, b) = (train_one_epoch(dropout), train_one_epoch(dropout));
    let bits = |ps: &[Tensor]| -> Vec<u32> {
        ps.iter()
            .flat_map(|p| p.iter().map(|x| x.to_bits()))
            .collect()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.len(), 6);
}

#[test]
fn same_seed_and_threads_give_bit_identical_parameters_with_dropout() {
    assert_bit_identical(true);
}

#[test]
fn same_seed_and_threads_give_bit_identical_parameters_in_shards() {
    assert_bit_identical(false);
}
