//! Real data: a small MLP trained for 10 epochs on 2,000 Fashion-MNIST images reaches at
//! least 80% on 1,000 test images it never saw (it measured 83.0% with seed 0, and 83.0% to
//! 84.1% with seeds 0 to 7).
//!
//! The images come from the subset shipped in `data/fashion-mnist-subset/` (the first 2,000
//! training and first 1,000 test images of the full set), so this test needs nothing
//! installed. When the full set is present (Debian's `dataset-fashion-mnist`, or
//! `$FASHION_MNIST_DIR`), two more tests check the subset against it and train on 10,000
//! of its images; without it they print that they were skipped and pass.

use std::io::Write;
use std::path::{Path, PathBuf};
use tapegrad::Dataset;
use tapegrad::data::{fashion_mnist, fashion_mnist_dir, read_idx_images};
use tapegrad::{
    ChaCha8Rng, Error, FitConfig, Init, Linear, Relu, Scaler, SeedableRng, Sequential, Sgd,
    evaluate, fit,
};

/// The Fashion-MNIST subset shipped with the crate.
fn subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset")
}

/// The full set, or `None` (after saying so on stderr, past the test harness's capture) when
/// its files are not installed. Any other error, such as a damaged file, fails the test.
fn full_set_or_skip(test: &str) -> Option<(Dataset, Dataset)> {
    match fashion_mnist(None) {
        Ok(sets) => Some(sets),
        Err(Error::DatasetMissing { path, .. }) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "fashion_mnist::{test}: skipped, the full Fashion-MNIST set is not installed \
                 ({} missing; `apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR)",
                path.display()
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Standardizes both sets with a scaler fitted on `train`, trains a 784-128-10 ReLU MLP with
/// SGD and momentum, and returns the test accuracy.
fn train_and_test(
    mut train: Dataset,
    mut test: Dataset,
    epochs: usize,
    rng: &mut ChaCha8Rng,
) -> f64 {
    let scaler = Scaler::standardize(&train).unwrap();
    train.set_scaler(scaler.clone()).unwrap();
    test.set_scaler(scaler).unwrap();

    let mut model = Sequential::new(vec![
        Box::new(Linear::new(784, 128, Init::default(), rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(128, 10, Init::default(), rng).unwrap()),
    ])
    .unwrap();
    let mut sgd = Sgd::new(0.01).unwrap().momentum(0.9).unwrap();
    let config = FitConfig {
        epochs,
        batch_size: 32,
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut sgd, &train, None, &config, &mut |_| {}).unwrap();
    assert!(history.epochs[epochs - 1].train_loss < history.epochs[0].train_loss);

    let result = evaluate(&model, &test, 500).unwrap();
    assert_eq!(result.confusion.unwrap().total(), test.len() as u64);
    result.accuracy.unwrap()
}

#[test]
fn small_mlp_reaches_80_percent_on_unseen_subset_test_images() {
    let (train, test) = fashion_mnist(Some(&subset_dir())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (train.len(), test.len(), train.num_features()),
        (2_000, 1_000, 784)
    );
    assert!(train.stores_bytes());
    // every class is well represented in both parts
    for (name, set, least) in [("train", &train, 150), ("test", &test, 75)] {
        let mut counts = [0usize; 10];
        for &label in set.labels().unwrap() {
            counts[label] += 1;
        }
        assert!(counts.iter().all(|&c| c >= least), "{name}: {counts:?}");
    }

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let accuracy = train_and_test(train, test, 10, &mut rng);
    assert!(accuracy >= 0.80, "test accuracy {accuracy}");
}

#[test]
fn shipped_subset_is_the_start_of_the_full_set() {
    let test = "shipped_subset_is_the_start_of_the_full_set";
    let Some((full_train, full_test)) = full_set_or_skip(test) else {
        return;
    };
    let (train, test) = fashion_mnist(Some(&subset_dir())).unwrap();
    assert_eq!(
        train.labels(),
        full_train.labels().map(|l| &l[..train.len()])
    );
    assert_eq!(test.labels(), full_test.labels().map(|l| &l[..test.len()]));
    let (subset, full) = (subset_dir(), fashion_mnist_dir(None));
    for (stem, n) in [("train", train.len()), ("t10k", test.len())] {
        let images = |dir: &Path| {
            let gz = dir.join(format!("{stem}-images-idx3-ubyte.gz"));
            let path = if gz.is_file() {
                gz
            } else {
                dir.join(format!("{stem}-images-idx3-ubyte"))
            };
            read_idx_images(path).unwrap()
        };
        let (part, whole) = (images(&subset), images(&full));
        assert_eq!(
            part,
            whole.slice(tapegrad::ndarray::s![..n, ..]),
            "{stem} images"
        );
    }
}

#[test]
fn small_mlp_reaches_80_percent_on_unseen_full_set_test_images() {
    let Some((train, test)) =
        full_set_or_skip("small_mlp_reaches_80_percent_on_unseen_full_set_test_images")
    else {
        return;
    };
    assert_eq!(
        (train.len(), test.len(), train.num_features()),
        (60_000, 10_000, 784)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (_, train) = train.split(10_000, &mut rng).unwrap();
    let (_, test) = test.split(2_000, &mut rng).unwrap();
    let accuracy = train_and_test(train, test, 6, &mut rng);
    assert!(accuracy >= 0.80, "test accuracy {accuracy}");
}
