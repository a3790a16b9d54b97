//! Real data: a small MLP trained on a 10,000-image subset of Fashion-MNIST for a short
//! budget reaches at least 80% on 2,000 test images it never saw.
//!
//! Needs Debian's `dataset-fashion-mnist` (`.ci/run` installs it) or `$FASHION_MNIST_DIR`.

use tapegrad::data::fashion_mnist;
use tapegrad::{
    ChaCha8Rng, FitConfig, Init, Linear, Relu, Scaler, SeedableRng, Sequential, Sgd, evaluate, fit,
};

#[test]
fn small_mlp_reaches_80_percent_on_unseen_test_images() {
    let (train, test) = fashion_mnist(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (train.len(), test.len(), train.num_features()),
        (60_000, 10_000, 784)
    );
    assert!(train.stores_bytes());

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (_, mut train) = train.split(10_000, &mut rng).unwrap();
    let (_, mut test) = test.split(2_000, &mut rng).unwrap();
    let scaler = Scaler::standardize(&train).unwrap();
    train.set_scaler(scaler.clone()).unwrap();
    test.set_scaler(scaler).unwrap();

    let mut model = Sequential::new(vec![
        Box::new(Linear::new(784, 128, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(128, 10, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    let mut sgd = Sgd::new(0.01).unwrap().momentum(0.9).unwrap();
    let config = FitConfig {
        epochs: 6,
        batch_size: 32,
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut sgd, &train, None, &config, &mut |_| {}).unwrap();
    assert!(history.epochs[5].train_loss < history.epochs[0].train_loss);

    let result = evaluate(&model, &test, 500).unwrap();
    assert_eq!(result.confusion.total(), 2_000);
    assert!(result.accuracy >= 0.80, "test accuracy {}", result.accuracy);
}
