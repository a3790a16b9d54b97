//! Steady state allocates nothing new per step: with a counting global allocator, a training
//! step of the MLP 784-256-256-10 at batch 128 makes the same number of allocations, of the
//! same total size, at step 1,000 as at step 10 (52 allocations of 1.1 MB in all, most of it
//! the `gemm` crate's packing buffers), and once the tape's buffer pool has warmed up (by
//! step 100) the memory held stays flat.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tapegrad::{
    Augment, ChaCha8Rng, Dataset, Flatten, Init, Linear, Loss, RandomCrop, RandomHorizontalFlip,
    Relu, Scaler, SeedableRng, Sequential, Sgd, TrainStep, ndarray::Array2,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout as the caller's, who upholds GlobalAlloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes allocated, bytes live after the step) of one call to `step`.
fn measure(step: &mut impl FnMut()) -> (usize, usize, usize) {
    let (a, b) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    step();
    (
        ALLOCATIONS.load(Ordering::Relaxed) - a,
        BYTES.load(Ordering::Relaxed) - b,
        LIVE.load(Ordering::Relaxed),
    )
}

#[test]
fn a_training_step_allocates_the_same_at_step_10_and_step_1000() {
    tapegrad::set_num_threads(1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pixels = Array2::from_shape_fn((1280, 784), |(i, j)| ((i * 31 + j * 7) % 256) as u8);
    let labels = (0..1280).map(|i| i % 10).collect();
    // images [1, 28, 28], flipped and shifted on the fly as the batches are drawn
    let mut data = Dataset::from_bytes(pixels, labels)
        .unwrap()
        .with_sample_shape(&[1, 28, 28])
        .unwrap();
    let augment = Augment::new()
        .then(RandomHorizontalFlip::new(0.5).unwrap())
        .then(RandomCrop::new(2).unwrap());
    data.set_scaler(Scaler::affine(784, 1.0 / 255.0, 0.0).unwrap())
        .unwrap();
    let mut model = Sequential::new(vec![
        Box::new(Flatten),
        Box::new(Linear::new(784, 256, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(256, 256, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(256, 10, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    let mut sgd = Sgd::new(0.05).unwrap();
    let mut train_step = TrainStep::new();
    let mut epoch = 0;
    let mut batches = data
        .batches(128)
        .unwrap()
        .augmented(&augment, epoch)
        .unwrap();
    let mut step = || {
        let batch = match batches.next() {
            Some(batch) => batch,
            None => {
                epoch += 1;
                batches = data
                    .batches(128)
                    .unwrap()
                    .augmented(&augment, epoch)
                    .unwrap();
                batches.next().unwrap()
            }
        };
        let loss = train_step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy);
        loss.unwrap();
    };
    // (step, counts), filled in place so that recording allocates nothing
    let mut at = [(10, (0, 0, 0)), (100, (0, 0, 0)), (1000, (0, 0, 0))];
    for i in 1..=1000 {
        let counts = measure(&mut step);
        if let Some(slot) = at.iter_mut().find(|(s, _)| *s == i) {
            slot.1 = counts;
        }
    }
    let (count_10, bytes_10, _) = at[0].1;
    let (_, _, live_100) = at[1].1;
    let (count_1000, bytes_1000, live_1000) = at[2].1;
    assert_eq!(at[1].1.0, count_10, "{at:?}");
    assert_eq!(count_1000, count_10, "allocations per step grew: {at:?}");
    assert_eq!(bytes_1000, bytes_10, "bytes per step grew: {at:?}");
    assert!(live_1000 <= live_100, "memory held grew: {at:?}");
    // the tape reuses its buffers and the weights' gradients stay factored: a step allocates
    // less than its tensors would need (the weights alone are 1 MB, their gradients 1 MB
    // more, activations and their gradients another 1 MB)
    assert!(bytes_10 < 1_500_000, "{at:?}");
}
