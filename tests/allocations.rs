//! Steady state allocates nothing new per step: with a counting global allocator, a training
//! step of the MLP 784-256-256-10 at batch 128 makes the same number of allocations, of the
//! same total size, at step 1,000 as at step 10 (68 allocations of 1.0 MB in all on an
//! AVX-512 Xeon, 52 of 1.1 MB on an AVX2 EPYC, most of it the `gemm` crate's packing
//! buffers), and once the tape's buffer pool has warmed up (by
//! step 100) the memory held stays flat. The same holds for workload W2's CNN (convolutions,
//! pooling, flatten, linear layers), whose activations are reused from the tape's pool (its
//! steps allocate only the `gemm` crate's packing buffers, the same ones every step). And a
//! loss step on a reused tape allocates less than one of its values: none of its buffers is
//! dropped at the reset instead of going back to the pool.
//!
//! The tests share the global counters, so they take turns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tapegrad::{
    Augment, ChaCha8Rng, Conv2d, Conv2dOptions, Dataset, Flatten, Init, Linear, Loss, MaxPool2d,
    RandomCrop, RandomHorizontalFlip, Relu, Scaler, SeedableRng, Sequential, Sgd, TrainStep,
    ndarray::Array2,
};

/// Held by each test while it counts.
static SERIAL: Mutex<()> = Mutex::new(());

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
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn a_cnn_training_step_allocates_the_same_at_step_10_and_step_60() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tapegrad::set_num_threads(1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pixels = Array2::from_shape_fn((320, 784), |(i, j)| ((i * 31 + j * 7) % 256) as u8);
    let labels = (0..320).map(|i| i % 10).collect();
    let mut data = Dataset::from_bytes(pixels, labels)
        .unwrap()
        .with_sample_shape(&[1, 28, 28])
        .unwrap();
    data.set_scaler(Scaler::affine(784, 1.0 / 255.0, 0.0).unwrap())
        .unwrap();
    // workload W2's network
    let pad = Conv2dOptions::default().padding(1);
    let mut model = Sequential::new(vec![
        Box::new(Conv2d::new(1, 32, [3, 3], pad, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(MaxPool2d::new(2).unwrap()),
        Box::new(Conv2d::new(32, 64, [3, 3], pad, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(MaxPool2d::new(2).unwrap()),
        Box::new(Flatten),
        Box::new(Linear::new(3136, 128, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(128, 10, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    let mut sgd = Sgd::new(0.05).unwrap();
    let mut train_step = TrainStep::new();
    let mut batches = data.batches(32).unwrap();
    let mut step = || {
        let batch = match batches.next() {
            Some(batch) => batch,
            None => {
                batches = data.batches(32).unwrap();
                batches.next().unwrap()
            }
        };
        let loss = train_step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy);
        loss.unwrap();
    };
    let mut at = [(10, (0, 0, 0)), (30, (0, 0, 0)), (60, (0, 0, 0))];
    for i in 1..=60 {
        let counts = measure(&mut step);
        if let Some(slot) = at.iter_mut().find(|(s, _)| *s == i) {
            slot.1 = counts;
        }
    }
    let (count_10, bytes_10, _) = at[0].1;
    let (_, _, live_30) = at[1].1;
    let (count_60, bytes_60, live_60) = at[2].1;
    assert_eq!(count_60, count_10, "allocations per step grew: {at:?}");
    assert_eq!(bytes_60, bytes_10, "bytes per step grew: {at:?}");
    assert!(live_60 <= live_30, "memory held grew: {at:?}");
    // The values and gradients of a step (conv outputs, their relus, pooled maps, patch
    // buffers and all their gradients) take about 30 MB at batch 32, and come from the
    // tape's pool. What a step still allocates (289 allocations on an AVX-512 Xeon, about
    // 400 on an AVX2 EPYC, freed within the step) is the `gemm` crate's packing buffers:
    // one per product, and the backward makes a few products per image. Their size follows
    // the crate's cache blocking, and so the CPU: 13 MB per step on the EPYC with 32 MB of
    // L3 cache, 17 MB on the Xeon with 260 MB (whose blocks take whole operands; 26.5 MB
    // before its forward convolutions ran on the direct kernel).
    assert!(bytes_10 < 40_000_000, "{at:?}");
}

#[test]
fn a_loss_step_on_a_reused_tape_takes_its_buffers_from_the_pool() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // forward, loss, backward and recycle of a [128, 10] batch of logits: once warm, every
    // [128, 10] value and gradient comes from the tape's pool, so what a step still
    // allocates (the op records, the labels' copy, the gradients' list) is smaller than one
    // such buffer; a rule that kept a pooled buffer past the reset (as cross-entropy's
    // probabilities once were) would allocate one anew every step
    let logits =
        tapegrad::tensor::from_vec((0..1280).map(|i| (i % 7) as f32).collect(), &[128, 10])
            .unwrap();
    let labels: Vec<usize> = (0..128).map(|i| i % 10).collect();
    let mut tape = tapegrad::Tape::new();
    let mut step = || {
        tape.reset();
        let z = tape.leaf(&logits);
        let grads = (z * 2.0).cross_entropy(&labels).backward();
        tape.recycle(grads);
    };
    for _ in 0..5 {
        step();
    }
    let (_, bytes, _) = measure(&mut step);
    assert!(bytes < 1280 * 4, "a step allocated {bytes} bytes");
}
