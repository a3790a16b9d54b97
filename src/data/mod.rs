//! Data: in-memory data sets of any sample shape and target, their batches, the IDX
//! (MNIST / Fashion-MNIST) and CIFAR-10 loaders, preprocessing fitted on training data, and
//! augmentation of image batches.

// The types are reached at the crate root (`tapegrad::Dataset`), the functions and
// constants here (`data::fashion_mnist`): one path for each.
pub(crate) mod augment;
mod cifar;
pub(crate) mod dataset;
mod fit;
mod idx;
pub(crate) mod preprocess;
pub(crate) mod read;
pub(crate) mod targets;

pub(crate) use augment::Augment;
pub use cifar::{CIFAR10_CLASSES, CIFAR10_PIXELS, read_cifar10};
pub(crate) use dataset::{Batch, Dataset};
pub use idx::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_DIR, FASHION_MNIST_ENV, fashion_mnist,
    fashion_mnist_dir, read_idx_dataset, read_idx_image_size, read_idx_images, read_idx_labels,
};
pub(crate) use preprocess::Scaler;
pub(crate) use targets::{BatchTargets, Targets};
