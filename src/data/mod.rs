//! Data: in-memory data sets of any sample shape and target, their batches, the IDX
//! (MNIST / Fashion-MNIST) and CIFAR-10 loaders, preprocessing fitted on training data, and
//! augmentation of image batches.

mod augment;
mod cifar;
mod dataset;
mod fit;
mod idx;
mod preprocess;
pub(crate) mod read;
mod targets;

pub use augment::{
    Augment, FnTransform, RandomCrop, RandomHorizontalFlip, RandomTranslate, Transform,
};
pub use cifar::{CIFAR10_CLASSES, CIFAR10_PIXELS, read_cifar10};
pub use dataset::{Batch, Batches, Dataset, SampleArray};
pub use idx::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_ENV, fashion_mnist, fashion_mnist_dir, read_idx_dataset,
    read_idx_images, read_idx_labels,
};
pub use preprocess::{Scaler, ScalerKind};
pub use targets::{BatchTargets, Targets};
