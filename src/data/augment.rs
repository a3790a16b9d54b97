//! Data augmentation for image batches, as torchvision's transforms: random crops with
//! zero padding, random translations and random horizontal flips, plus transforms of your
//! own, applied in place to a batch buffer of `[C, H, W]` samples, seeded per sample.
//!
//! Each sample gets its own generator, seeded from the pipeline's seed and the sample's
//! position in the epoch, so an augmented batch does not depend on the thread count or on
//! how an epoch is cut into batches.

use crate::error::{Error, Result};
use crate::tensor::Elem;
use ndarray::{ArrayView1, ArrayViewMut3, Axis, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

/// One random change of a sample, such as a crop or a flip, applied in place.
///
/// A sample is one `[C, H, W]` image (channels, height, width). `rng` is the sample's own
/// generator (see [`Augment::apply_batch`]); the transforms of a pipeline draw from it in
/// turn. `scratch` is a buffer kept by the calling thread from sample to sample: a transform
/// that needs a copy of the sample (a shift does) can fill it instead of allocating. Its
/// contents on entry are unspecified.
///
/// Write your own transform as a struct that implements this trait, or wrap a closure in
/// [`FnTransform`]. A transform keeps the sample's shape: the batch buffer is changed in
/// place.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, Elem, Transform};
/// use tapegrad::ndarray::ArrayViewMut3;
///
/// /// Inverts a sample scaled to [0, 1].
/// #[derive(Debug)]
/// struct Invert;
///
/// impl Transform for Invert {
///     fn apply(&self, mut sample: ArrayViewMut3<'_, Elem>, _: &mut ChaCha8Rng, _: &mut Vec<Elem>) {
///         sample.mapv_inplace(|v| 1.0 - v);
///     }
/// }
///
/// let augment = tapegrad::Augment::new().then(Invert);
/// let mut batch = [0.0, 0.25, 1.0, 0.5];
/// augment.apply_batch(&mut batch, &[1, 1, 2], 0, 0)?; // two samples of shape [1, 1, 2]
/// assert_eq!(batch, [1.0, 0.75, 0.0, 0.5]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub trait Transform: Send + Sync + fmt::Debug {
    /// Changes `sample` (shape `[C, H, W]`) in place, drawing from `rng`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, RandomHorizontalFlip, SeedableRng, Transform, ndarray::array};
    /// let mut image = array![[[1.0, 2.0, 3.0]]]; // [C, H, W] = [1, 1, 3]
    /// let (mut rng, mut scratch) = (ChaCha8Rng::seed_from_u64(0), Vec::new());
    /// RandomHorizontalFlip::new(1.0)?.apply(image.view_mut(), &mut rng, &mut scratch);
    /// assert_eq!(image, array![[[3.0, 2.0, 1.0]]]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    fn apply(&self, sample: ArrayViewMut3<'_, Elem>, rng: &mut ChaCha8Rng, scratch: &mut Vec<Elem>);
}

/// A closure used as a [`Transform`], with a name for `Debug` output.
///
/// The closure gets the sample (`[C, H, W]`, changed in place) and the sample's generator.
///
/// # Examples
/// ```
/// use tapegrad::{Augment, FnTransform, Rng};
/// // brightness: add 0.5 to every pixel of every other sample, chosen by the generator
/// let brighten = FnTransform::new("brighten", |mut sample, rng| {
///     if rng.next_u32() % 2 == 0 {
///         sample += 0.5;
///     }
/// });
/// assert_eq!(format!("{brighten:?}"), "FnTransform(\"brighten\")");
/// let augment = Augment::new().then(brighten);
/// let mut batch = vec![1.0; 8 * 4];
/// augment.apply_batch(&mut batch, &[1, 2, 2], 7, 0)?;
/// // each sample is either unchanged or brightened as a whole
/// for sample in batch.chunks(4) {
///     assert!(sample == [1.0; 4] || sample == [1.5; 4]);
/// }
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub struct FnTransform<F> {
    name: String,
    f: F,
}

impl<F> FnTransform<F>
where
    F: Fn(ArrayViewMut3<'_, Elem>, &mut ChaCha8Rng) + Send + Sync,
{
    /// The transform that calls `f` on each sample; `name` is what `Debug` shows.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, FnTransform};
    /// let negate = FnTransform::new("negate", |mut sample, _| sample.mapv_inplace(|v| -v));
    /// assert_eq!(format!("{negate:?}"), "FnTransform(\"negate\")");
    /// let mut batch = [1.0, -2.0];
    /// Augment::new().then(negate).apply_batch(&mut batch, &[1, 1, 2], 0, 0)?;
    /// assert_eq!(batch, [-1.0, 2.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> fmt::Debug for FnTransform<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FnTransform").field(&self.name).finish()
    }
}

impl<F> Transform for FnTransform<F>
where
    F: Fn(ArrayViewMut3<'_, Elem>, &mut ChaCha8Rng) + Send + Sync,
{
    fn apply(&self, sample: ArrayViewMut3<'_, Elem>, rng: &mut ChaCha8Rng, _: &mut Vec<Elem>) {
        (self.f)(sample, rng);
    }
}

/// The largest padding or shift accepted, in pixels: far past any image side, and small
/// enough that offset arithmetic cannot overflow.
const MAX_SHIFT: usize = u32::MAX as usize;

/// Checks a padding or shift bound given by a caller.
fn check_shift(op: &'static str, name: &str, pixels: usize) -> Result<()> {
    if pixels > MAX_SHIFT {
        return Err(Error::InvalidArgument {
            op,
            message: format!("{name} must be at most {MAX_SHIFT} pixels, got {pixels}"),
        });
    }
    Ok(())
}

/// Random crop of a zero-padded sample back to the sample's size, as torchvision's
/// `RandomCrop(size=(H, W), padding=p)` with its default `fill=0`, `padding_mode="constant"`.
///
/// The sample is padded with `p` zeros on every side of each image plane, to
/// `[C, H + 2p, W + 2p]`, and an `H × W` window is cut out at top `i` and left `j`, drawn
/// uniformly in this order from `{0, …, 2p}` (as `RandomCrop.get_params` draws them):
///
/// `out[c, y, x] = in[c, y + i − p, x + j − p]`, or `0` where that lies outside the sample.
///
/// This is a random translation by `(p − i, p − j)` pixels (down, right), each uniform in
/// `[−p, p]`: the distribution of [`RandomTranslate`] with `max_pixels = p`. Padding 0 keeps
/// the sample unchanged. The output keeps the sample's shape, so cropping to a smaller size
/// (torchvision's `RandomCrop(24)` on 32-pixel images) is not offered: it would change the
/// model's input shape.
///
/// # Examples
/// ```
/// use tapegrad::{Augment, RandomCrop};
/// let augment = Augment::new().then(RandomCrop::new(1)?);
/// let image = [1.0, 2.0, 3.0, 4.0]; // one 2 × 2 plane
/// let mut batch = image;
/// augment.apply_batch(&mut batch, &[1, 2, 2], 0, 0)?;
/// // shifted by at most one pixel on each axis: any pixel is 0 or one of the image's
/// assert!(batch.iter().all(|v| *v == 0.0 || image.contains(v)));
/// // the same seed and sample position give the same crop
/// let mut again = image;
/// augment.apply_batch(&mut again, &[1, 2, 2], 0, 0)?;
/// assert_eq!(batch, again);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrop {
    padding: usize,
}

impl RandomCrop {
    /// A random crop of the sample padded by `padding` zeros on every side.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `padding` is larger than 2³² − 1 pixels.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomCrop};
    /// let mut batch = [1.0, 2.0, 3.0, 4.0];
    /// Augment::new().then(RandomCrop::new(0)?).apply_batch(&mut batch, &[1, 2, 2], 9, 0)?;
    /// assert_eq!(batch, [1.0, 2.0, 3.0, 4.0]); // padding 0 crops the sample itself
    /// assert!(RandomCrop::new(usize::MAX).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(padding: usize) -> Result<Self> {
        check_shift("random_crop", "padding", padding)?;
        Ok(Self { padding })
    }

    /// The padding on each side, in pixels.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::RandomCrop;
    /// assert_eq!(RandomCrop::new(4)?.padding(), 4);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn padding(&self) -> usize {
        self.padding
    }
}

impl Transform for RandomCrop {
    fn apply(
        &self,
        sample: ArrayViewMut3<'_, Elem>,
        rng: &mut ChaCha8Rng,
        scratch: &mut Vec<Elem>,
    ) {
        let p = self.padding as i64;
        let top = rng.random_range(0..=2 * p);
        let left = rng.random_range(0..=2 * p);
        shift(sample, p - top, p - left, scratch);
    }
}

/// Random translation by a whole number of pixels, with zero fill: like torchvision's
/// `RandomAffine(degrees=0, translate=…)`, with the bound in pixels rather than as a fraction
/// of the image.
///
/// A shift `dx` (right) and then `dy` (down) are drawn uniformly from `{−k, …, k}`, where
/// `k = max_pixels`, and
///
/// `out[c, y, x] = in[c, y − dy, x − dx]`, or `0` where that lies outside the sample.
///
/// `max_pixels = 0` keeps the sample unchanged.
///
/// # Examples
/// ```
/// use tapegrad::{Augment, RandomTranslate};
/// let augment = Augment::new().then(RandomTranslate::new(2)?);
/// let mut batch = vec![1.0; 4 * 9]; // four 3 × 3 planes of ones
/// augment.apply_batch(&mut batch, &[1, 3, 3], 5, 0)?;
/// // each sample keeps a (3 − |dy|) × (3 − |dx|) block of ones; the rest is zero fill
/// for sample in batch.chunks(9) {
///     let ones = sample.iter().filter(|&&v| v == 1.0).count();
///     assert!([0, 1, 2, 3, 4, 6, 9].contains(&ones));
///     assert!(sample.iter().all(|&v| v == 0.0 || v == 1.0));
/// }
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomTranslate {
    max_pixels: usize,
}

impl RandomTranslate {
    /// A random shift of up to `max_pixels` pixels along each axis.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `max_pixels` is larger than 2³² − 1.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomTranslate};
    /// let mut batch = [1.0, 2.0, 3.0, 4.0];
    /// Augment::new().then(RandomTranslate::new(0)?).apply_batch(&mut batch, &[1, 2, 2], 9, 0)?;
    /// assert_eq!(batch, [1.0, 2.0, 3.0, 4.0]); // no shift
    /// assert!(RandomTranslate::new(usize::MAX).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(max_pixels: usize) -> Result<Self> {
        check_shift("random_translate", "max_pixels", max_pixels)?;
        Ok(Self { max_pixels })
    }

    /// The largest shift along each axis, in pixels.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::RandomTranslate;
    /// assert_eq!(RandomTranslate::new(3)?.max_pixels(), 3);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn max_pixels(&self) -> usize {
        self.max_pixels
    }
}

impl Transform for RandomTranslate {
    fn apply(
        &self,
        sample: ArrayViewMut3<'_, Elem>,
        rng: &mut ChaCha8Rng,
        scratch: &mut Vec<Elem>,
    ) {
        let k = self.max_pixels as i64;
        let dx = rng.random_range(-k..=k);
        let dy = rng.random_range(-k..=k);
        shift(sample, dy, dx, scratch);
    }
}

/// Moves every image plane of `sample` by `dy` pixels down and `dx` pixels right, filling
/// with zeros: `out[c, y, x] = in[c, y − dy, x − dx]`, or `0` outside the sample.
fn shift(mut sample: ArrayViewMut3<'_, Elem>, dy: i64, dx: i64, scratch: &mut Vec<Elem>) {
    if dy == 0 && dx == 0 {
        return;
    }
    let (channels, height, width) = sample.dim();
    let (h, w) = (height as i64, width as i64);
    if dy.abs() >= h || dx.abs() >= w {
        sample.fill(0.0);
        return;
    }
    // the source, in row-major order
    scratch.clear();
    match sample.as_slice() {
        Some(slice) => scratch.extend_from_slice(slice),
        None => scratch.extend(sample.iter()),
    }
    // columns x in [x0, x1) read source columns x − dx, which lie inside the row
    let (x0, x1) = (dx.max(0) as usize, (w + dx.min(0)) as usize);
    let (from0, from1) = ((x0 as i64 - dx) as usize, (x1 as i64 - dx) as usize);
    for c in 0..channels {
        for y in 0..height {
            let mut row = sample.slice_mut(s![c, y, ..]);
            let source_y = y as i64 - dy;
            if !(0..h).contains(&source_y) {
                row.fill(0.0);
                continue;
            }
            let start = (c * height + source_y as usize) * width;
            let source = &scratch[start..start + width];
            row.slice_mut(s![..x0]).fill(0.0);
            row.slice_mut(s![x1..]).fill(0.0);
            row.slice_mut(s![x0..x1])
                .assign(&ArrayView1::from(&source[from0..from1]));
        }
    }
}

/// Random horizontal flip (mirror left to right) with probability `p`, as torchvision's
/// `RandomHorizontalFlip(p=0.5)`.
///
/// One uniform `u ∈ [0, 1)` is drawn per sample and the sample is flipped when `u < p`
/// (as torchvision's `torch.rand(1) < p`):
///
/// `out[c, y, x] = in[c, y, W − 1 − x]`.
///
/// `p = 1` always flips, `p = 0` never does; [`Default`] is `p = 0.5`.
///
/// # Examples
/// ```
/// use tapegrad::{Augment, RandomHorizontalFlip};
/// let augment = Augment::new().then(RandomHorizontalFlip::new(1.0)?);
/// let mut batch = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // one [1, 2, 3] sample
/// augment.apply_batch(&mut batch, &[1, 2, 3], 0, 0)?;
/// assert_eq!(batch, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
/// assert_eq!(RandomHorizontalFlip::default().p(), 0.5);
/// assert!(RandomHorizontalFlip::new(1.5).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f32,
}

impl RandomHorizontalFlip {
    /// A horizontal flip with probability `p`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `p` is not in `[0, 1]` (NaN included).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomHorizontalFlip};
    /// let mut batch = [1.0, 2.0];
    /// Augment::new().then(RandomHorizontalFlip::new(0.0)?).apply_batch(&mut batch, &[1, 1, 2], 0, 0)?;
    /// assert_eq!(batch, [1.0, 2.0]); // p = 0 never flips
    /// assert!(RandomHorizontalFlip::new(-0.1).is_err());
    /// assert!(RandomHorizontalFlip::new(f32::NAN).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(p: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "random_horizontal_flip",
                message: format!("p must be in [0, 1], got {p}"),
            });
        }
        Ok(Self { p })
    }

    /// The probability of a flip.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::RandomHorizontalFlip;
    /// assert_eq!(RandomHorizontalFlip::new(0.25)?.p(), 0.25);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Default for RandomHorizontalFlip {
    /// `p = 0.5`, torchvision's default.
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, mut sample: ArrayViewMut3<'_, Elem>, rng: &mut ChaCha8Rng, _: &mut Vec<Elem>) {
        if rng.random::<f32>() < self.p {
            for mut row in sample.lanes_mut(Axis(2)) {
                let width = row.len();
                for x in 0..width / 2 {
                    row.swap(x, width - 1 - x);
                }
            }
        }
    }
}

/// A pipeline of [`Transform`]s applied in order to every sample of a batch, as
/// torchvision's `transforms.Compose`, with a seeded generator per sample.
///
/// Clones share the transforms (they sit behind [`Arc`]s), so a data set that holds an
/// `Augment` stays cheap to clone.
///
/// # Examples
/// ```
/// use tapegrad::{Augment, RandomCrop, RandomHorizontalFlip};
/// // the usual CIFAR-10 training augmentation
/// let augment = Augment::new()
///     .then(RandomCrop::new(4)?)
///     .then(RandomHorizontalFlip::default());
/// assert_eq!(augment.len(), 2);
/// let mut batch = vec![0.5; 16 * 3 * 32 * 32]; // 16 samples [3, 32, 32]
/// let epoch_seed = 42;
/// augment.apply_batch(&mut batch, &[3, 32, 32], epoch_seed, 0)?;
/// assert!(batch.iter().all(|&v| v == 0.0 || v == 0.5));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Augment {
    transforms: Vec<Arc<dyn Transform>>,
}

impl Augment {
    /// The empty pipeline, which leaves samples unchanged.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Augment;
    /// let augment = Augment::new();
    /// assert!(augment.is_empty());
    /// let mut batch = [1.0, 2.0, 3.0];
    /// augment.apply_batch(&mut batch, &[3, 1, 1], 0, 0)?;
    /// assert_eq!(batch, [1.0, 2.0, 3.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// This pipeline followed by `transform`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomCrop, RandomHorizontalFlip};
    /// let augment = Augment::new().then(RandomHorizontalFlip::new(1.0)?).then(RandomCrop::new(0)?);
    /// assert_eq!(augment.len(), 2);
    /// let mut batch = [1.0, 2.0, 3.0];
    /// augment.apply_batch(&mut batch, &[1, 1, 3], 0, 0)?;
    /// assert_eq!(batch, [3.0, 2.0, 1.0]); // flipped, then cropped with no padding
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn then(mut self, transform: impl Transform + 'static) -> Self {
        self.transforms.push(Arc::new(transform));
        self
    }

    /// The number of transforms.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomHorizontalFlip};
    /// assert_eq!(Augment::new().len(), 0);
    /// assert_eq!(Augment::new().then(RandomHorizontalFlip::default()).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.transforms.len()
    }

    /// Whether the pipeline has no transforms (and so changes nothing).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomHorizontalFlip};
    /// assert!(Augment::new().is_empty());
    /// assert!(!Augment::new().then(RandomHorizontalFlip::default()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.transforms.is_empty()
    }

    /// Applies the pipeline in place to every sample of `buffer`: `n` samples of shape
    /// `sample_shape = [C, H, W]`, one after another in row-major order (a `[n, C, H, W]`
    /// array's elements). The samples are those at positions `first_index`, …,
    /// `first_index + n − 1` of the epoch.
    ///
    /// Sample `i` (its position in the epoch) is augmented with its own generator,
    /// `ChaCha8Rng::seed_from_u64(seed)` switched to stream `i`
    /// ([`ChaCha8Rng::set_stream`]), which the transforms draw from in order. So the result
    /// depends only on `seed`, the sample's position and its values: not on the thread
    /// count, nor on how the epoch is cut into batches. Pass a different `seed` each epoch
    /// (for instance one drawn from the training generator), or every epoch sees the same
    /// augmentations.
    ///
    /// Large batches are split across threads by samples; each thread keeps its scratch
    /// buffer from call to call, so steady training does not allocate here.
    ///
    /// # Errors
    /// [`Error::Shape`] when `sample_shape` is not 3-D or has a zero dimension, or when the
    /// length of `buffer` is not a multiple of the sample size. The buffer is then left
    /// unchanged.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Augment, RandomTranslate};
    /// let augment = Augment::new().then(RandomTranslate::new(1)?);
    /// let epoch: Vec<f32> = (0..6 * 4).map(|v| v as f32).collect(); // 6 samples [1, 2, 2]
    /// // one batch of 6, or batches of 4 and 2: the same augmentation per sample
    /// let mut whole = epoch.clone();
    /// augment.apply_batch(&mut whole, &[1, 2, 2], 3, 0)?;
    /// let mut parts = epoch.clone();
    /// let (first, second) = parts.split_at_mut(4 * 4);
    /// augment.apply_batch(first, &[1, 2, 2], 3, 0)?;
    /// augment.apply_batch(second, &[1, 2, 2], 3, 4)?;
    /// assert_eq!(whole, parts);
    /// assert!(augment.apply_batch(&mut whole, &[2, 2], 3, 0).is_err()); // not [C, H, W]
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn apply_batch(
        &self,
        buffer: &mut [Elem],
        sample_shape: &[usize],
        seed: u64,
        first_index: u64,
    ) -> Result<()> {
        self.apply_batch_with(
            buffer,
            sample_shape,
            seed,
            first_index,
            crate::threads::parallel(buffer.len()),
        )
    }

    /// [`Augment::apply_batch`], across threads when `parallel`.
    fn apply_batch_with(
        &self,
        buffer: &mut [Elem],
        sample_shape: &[usize],
        seed: u64,
        first_index: u64,
        parallel: bool,
    ) -> Result<()> {
        let shape = check_batch(buffer.len(), sample_shape)?;
        if self.is_empty() || buffer.is_empty() {
            return Ok(());
        }
        let sample_len = shape.iter().product::<usize>();
        let augment_one = |(i, sample): (usize, &mut [Elem])| {
            with_scratch(|scratch| {
                self.apply_sample(
                    sample,
                    shape,
                    seed,
                    first_index.wrapping_add(i as u64),
                    scratch,
                )
            });
        };
        if parallel {
            // at least a few thousand elements per task, so that fork-join stays cheap
            let min_samples = (4096 / sample_len).max(1);
            buffer
                .par_chunks_mut(sample_len)
                .with_min_len(min_samples)
                .enumerate()
                .for_each(augment_one);
        } else {
            buffer
                .chunks_mut(sample_len)
                .enumerate()
                .for_each(augment_one);
        }
        Ok(())
    }

    /// Applies the pipeline to one sample at position `index` of the epoch.
    fn apply_sample(
        &self,
        sample: &mut [Elem],
        shape: [usize; 3],
        seed: u64,
        index: u64,
        scratch: &mut Vec<Elem>,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        let mut view = ArrayViewMut3::from_shape(shape, sample)
            .expect("internal error: sample chunk length matches its shape");
        for transform in &self.transforms {
            transform.apply(view.view_mut(), &mut rng, scratch);
        }
    }
}

/// Checks a batch buffer's length against a sample shape, which must be `[C, H, W]` with no
/// zero dimension; returns that shape.
fn check_batch(len: usize, sample_shape: &[usize]) -> Result<[usize; 3]> {
    let shape: [usize; 3] = match sample_shape.try_into() {
        Ok(shape) if !sample_shape.contains(&0) => shape,
        _ => {
            return Err(Error::Shape {
                op: "augment",
                expected: "a sample shape [channels, height, width] with no zero dimension".into(),
                found: format!("{sample_shape:?}"),
            });
        }
    };
    let Some(sample_len) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return Err(Error::Shape {
            op: "augment",
            expected: "a sample shape whose size fits in memory".into(),
            found: format!("{sample_shape:?}"),
        });
    };
    if !len.is_multiple_of(sample_len) {
        return Err(Error::Shape {
            op: "augment",
            expected: format!(
                "a buffer length that is a multiple of the sample size {sample_len} (shape {sample_shape:?})"
            ),
            found: format!("{len} elements"),
        });
    }
    Ok(shape)
}

thread_local! {
    /// Each thread's scratch buffer for [`Transform::apply`], kept between batches.
    static SCRATCH: Cell<Vec<Elem>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (taken out while `f` runs, so a transform
/// that augments another batch inside gets a fresh one instead of a double borrow).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<Elem>) -> R) -> R {
    let mut scratch = SCRATCH.take();
    let result = f(&mut scratch);
    SCRATCH.set(scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};
    use rand::Rng;

    /// A `[2, 3, 4]` image with distinct nonzero values `1, 2, …, 24`.
    fn image() -> Array3<Elem> {
        Array3::from_shape_fn((2, 3, 4), |(c, y, x)| (c * 12 + y * 4 + x + 1) as Elem)
    }

    /// Reference for a shift, pixel by pixel: `out[c, y, x] = in[c, y − dy, x − dx]` or 0.
    fn shifted(input: &Array3<Elem>, dy: i64, dx: i64) -> Array3<Elem> {
        let (_, h, w) = input.dim();
        Array3::from_shape_fn(input.dim(), |(c, y, x)| {
            let (sy, sx) = (y as i64 - dy, x as i64 - dx);
            if (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx) {
                input[[c, sy as usize, sx as usize]]
            } else {
                0.0
            }
        })
    }

    /// Reference for torchvision's RandomCrop(size=(H, W), padding=p): pad by p zeros, then
    /// cut the window at (top, left).
    fn padded_crop(input: &Array3<Elem>, p: usize, top: usize, left: usize) -> Array3<Elem> {
        let (c, h, w) = input.dim();
        let mut padded = Array3::zeros((c, h + 2 * p, w + 2 * p));
        padded.slice_mut(s![.., p..p + h, p..p + w]).assign(input);
        padded
            .slice(s![.., top..top + h, left..left + w])
            .to_owned()
    }

    fn apply(t: &dyn Transform, input: &Array3<Elem>, rng: &mut ChaCha8Rng) -> Array3<Elem> {
        let mut out = input.clone();
        t.apply(out.view_mut(), rng, &mut Vec::new());
        out
    }

    #[test]
    fn shift_moves_planes_with_zero_fill() {
        let input = array![[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]];
        let mut out = input.clone();
        shift(out.view_mut(), 1, -1, &mut Vec::new());
        // down one row, left one column
        assert_eq!(out, array![[[0.0, 0.0, 0.0], [2.0, 3.0, 0.0]]]);
        let mut out = input.clone();
        shift(out.view_mut(), 0, 2, &mut Vec::new());
        assert_eq!(out, array![[[0.0, 0.0, 1.0], [0.0, 0.0, 4.0]]]);
        let mut out = input.clone();
        shift(out.view_mut(), -2, 0, &mut Vec::new());
        assert_eq!(out, Array3::<Elem>::zeros((1, 2, 3)));
        // every shift within and past the image, on two channels, and on a transposed
        // (non-contiguous) view
        let input = image();
        for dy in -4..=4 {
            for dx in -5..=5 {
                let mut out = input.clone();
                shift(out.view_mut(), dy, dx, &mut vec![7.0; 3]);
                assert_eq!(out, shifted(&input, dy, dx), "dy {dy}, dx {dx}");
                let mut t = input.clone().reversed_axes(); // [4, 3, 2] in memory order
                let mut view = t.view_mut().reversed_axes();
                assert_eq!(view, input);
                shift(view.view_mut(), dy, dx, &mut Vec::new());
                assert_eq!(view, shifted(&input, dy, dx), "strided, dy {dy}, dx {dx}");
            }
        }
    }

    #[test]
    fn random_crop_is_torchvision_pad_then_crop_at_the_drawn_offset() {
        let input = image();
        for p in [1usize, 2, 5] {
            let crop = RandomCrop::new(p).unwrap();
            let mut seen = std::collections::HashSet::new();
            for seed in 0..300 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                // the offsets the crop will draw: top, then left, each uniform in 0..=2p
                let mut draws = rng.clone();
                let top = draws.random_range(0..=2 * p as i64) as usize;
                let left = draws.random_range(0..=2 * p as i64) as usize;
                let out = apply(&crop, &input, &mut rng);
                assert_eq!(out, padded_crop(&input, p, top, left), "p {p}, seed {seed}");
                // it used exactly those two draws
                assert_eq!(rng.next_u64(), draws.next_u64());
                seen.insert((top, left));
            }
            if p <= 2 {
                assert_eq!(seen.len(), (2 * p + 1).pow(2), "every offset occurs, p {p}");
            }
        }
    }

    #[test]
    fn random_translate_shifts_by_the_drawn_offsets() {
        let input = image();
        let k = 2;
        let translate = RandomTranslate::new(k).unwrap();
        let mut seen = std::collections::HashSet::new();
        for seed in 0..300 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut draws = rng.clone();
            let dx = draws.random_range(-(k as i64)..=k as i64);
            let dy = draws.random_range(-(k as i64)..=k as i64);
            assert_eq!(apply(&translate, &input, &mut rng), shifted(&input, dy, dx));
            seen.insert((dy, dx));
        }
        assert_eq!(seen.len(), (2 * k + 1).pow(2));
    }

    #[test]
    fn zero_padding_and_zero_shift_are_the_identity() {
        let input = image();
        let crop = RandomCrop::new(0).unwrap();
        let translate = RandomTranslate::new(0).unwrap();
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(apply(&crop, &input, &mut rng), input);
            assert_eq!(apply(&translate, &input, &mut rng), input);
        }
    }

    #[test]
    fn horizontal_flip_mirrors_rows_and_twice_is_the_identity() {
        let input = array![
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
            [[7.0, 8.0, 9.0], [0.5, 0.25, 0.0]]
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let always = RandomHorizontalFlip::new(1.0).unwrap();
        let once = apply(&always, &input, &mut rng);
        assert_eq!(
            once,
            array![
                [[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]],
                [[9.0, 8.0, 7.0], [0.0, 0.25, 0.5]]
            ]
        );
        assert_eq!(apply(&always, &once, &mut rng), input);
        // even width
        let even = image();
        let twice = apply(&always, &apply(&always, &even, &mut rng), &mut rng);
        assert_eq!(twice, even);
        assert_eq!(apply(&always, &even, &mut rng)[[1, 2, 0]], even[[1, 2, 3]]);
        let never = RandomHorizontalFlip::new(0.0).unwrap();
        for _ in 0..20 {
            assert_eq!(apply(&never, &input, &mut rng), input);
        }
    }

    #[test]
    fn horizontal_flip_follows_the_uniform_draw() {
        let input = image();
        let flip = RandomHorizontalFlip::default();
        let mut flips = 0;
        for seed in 0..400 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let u: f32 = rng.clone().random();
            let out = apply(&flip, &input, &mut rng);
            if u < 0.5 {
                flips += 1;
                assert_ne!(out, input);
                assert_eq!(
                    apply(&RandomHorizontalFlip::new(1.0).unwrap(), &out, &mut rng),
                    input
                );
            } else {
                assert_eq!(out, input);
            }
        }
        // 400 fair coins: 200 ± 5 standard deviations
        assert!((150..=250).contains(&flips), "{flips} flips of 400");
    }

    #[test]
    fn bad_parameters_are_errors_that_name_them() {
        let message = |e: Error| e.to_string();
        assert_eq!(
            message(RandomHorizontalFlip::new(1.5).unwrap_err()),
            "random_horizontal_flip: p must be in [0, 1], got 1.5"
        );
        assert_eq!(
            message(RandomHorizontalFlip::new(-0.1).unwrap_err()),
            "random_horizontal_flip: p must be in [0, 1], got -0.1"
        );
        assert!(RandomHorizontalFlip::new(f32::NAN).is_err());
        let huge = MAX_SHIFT + 1;
        assert_eq!(
            message(RandomCrop::new(huge).unwrap_err()),
            format!("random_crop: padding must be at most {MAX_SHIFT} pixels, got {huge}")
        );
        assert_eq!(
            message(RandomTranslate::new(huge).unwrap_err()),
            format!("random_translate: max_pixels must be at most {MAX_SHIFT} pixels, got {huge}")
        );
        assert_eq!(RandomCrop::new(MAX_SHIFT).unwrap().padding(), MAX_SHIFT);
    }

    #[test]
    fn bad_batch_shapes_are_errors_and_leave_the_buffer_alone() {
        let augment = Augment::new().then(RandomHorizontalFlip::new(1.0).unwrap());
        let mut buffer: Vec<Elem> = (0..12).map(|v| v as Elem).collect();
        let original = buffer.clone();
        let err = augment
            .apply_batch(&mut buffer, &[1, 5, 2], 0, 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "augment: expected a buffer length that is a multiple of the sample size 10 \
             (shape [1, 5, 2]), found 12 elements"
        );
        for shape in [&[12][..], &[3, 4], &[1, 1, 3, 4], &[0, 3, 4], &[]] {
            let err = augment.apply_batch(&mut buffer, shape, 0, 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "augment: expected a sample shape [channels, height, width] with no zero \
                     dimension, found {shape:?}"
                )
            );
        }
        // a sample size past usize::MAX is refused, not wrapped
        let err = augment.apply_batch(&mut buffer, &[1 << 32, 1 << 32, 2], 0, 0);
        assert!(err.is_err());
        assert_eq!(buffer, original);
        // an empty buffer is zero samples
        augment.apply_batch(&mut [], &[1, 2, 2], 0, 0).unwrap();
    }

    /// A pipeline that uses every built-in transform and a closure that draws.
    fn pipeline() -> Augment {
        Augment::new()
            .then(RandomCrop::new(2).unwrap())
            .then(RandomTranslate::new(1).unwrap())
            .then(RandomHorizontalFlip::default())
            .then(FnTransform::new("noise", |mut sample, rng| {
                sample.mapv_inplace(|v| v + rng.random::<Elem>())
            }))
    }

    fn batch(samples: usize, shape: [usize; 3]) -> Vec<Elem> {
        let len = samples * shape.iter().product::<usize>();
        (0..len).map(|v| (v % 251) as Elem).collect()
    }

    #[test]
    fn parallel_and_sequential_paths_give_the_same_bits() {
        let augment = pipeline();
        let shape = [3, 8, 8];
        let mut sequential = batch(300, shape);
        let mut parallel = sequential.clone();
        augment
            .apply_batch_with(&mut sequential, &shape, 11, 5, false)
            .unwrap();
        // on a pool of at least two threads, so that the samples really are split
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            augment
                .apply_batch_with(&mut parallel, &shape, 11, 5, true)
                .unwrap()
        });
        assert_eq!(sequential, parallel);
        // and the pipeline did change the batch
        assert_ne!(sequential, batch(300, shape));
        // the public entry point, whichever path it takes here
        let mut public = batch(300, shape);
        augment.apply_batch(&mut public, &shape, 11, 5).unwrap();
        assert_eq!(public, sequential);
    }

    #[test]
    fn samples_depend_on_seed_and_position_not_on_batching() {
        let augment = pipeline();
        let shape = [1, 4, 4];
        let epoch = batch(10, shape);
        let mut whole = epoch.clone();
        augment.apply_batch(&mut whole, &shape, 3, 0).unwrap();
        let mut pieces = epoch.clone();
        let mut start = 0;
        for size in [3, 1, 6] {
            let range = start * 16..(start + size) * 16;
            augment
                .apply_batch(&mut pieces[range], &shape, 3, start as u64)
                .unwrap();
            start += size;
        }
        assert_eq!(whole, pieces);
        // another seed, or another position, gives other augmentations
        let mut other_seed = epoch.clone();
        augment.apply_batch(&mut other_seed, &shape, 4, 0).unwrap();
        assert_ne!(whole, other_seed);
        let mut shifted_positions = epoch.clone();
        augment
            .apply_batch(&mut shifted_positions, &shape, 3, 1)
            .unwrap();
        assert_ne!(whole, shifted_positions);
        // sample i uses ChaCha8Rng::seed_from_u64(seed) on stream i, as documented
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        rng.set_stream(7);
        let mut seventh = Array3::from_shape_vec(shape, epoch[7 * 16..8 * 16].to_vec()).unwrap();
        for t in &augment.transforms {
            t.apply(seventh.view_mut(), &mut rng, &mut Vec::new());
        }
        assert_eq!(seventh.as_slice().unwrap(), &whole[7 * 16..8 * 16]);
    }

    #[test]
    fn a_closure_transform_sees_each_sample_and_its_generator() {
        // writes the sample's first draw into every pixel
        let augment = Augment::new().then(FnTransform::new("fill", |mut sample, rng| {
            sample.fill(rng.random::<Elem>())
        }));
        let mut buffer = vec![0.0; 3 * 2];
        augment.apply_batch(&mut buffer, &[2, 1, 1], 9, 4).unwrap();
        for (i, sample) in buffer.chunks(2).enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            rng.set_stream(4 + i as u64);
            let expected: Elem = rng.random();
            assert_eq!(sample, [expected, expected]);
        }
        assert_ne!(buffer[0], buffer[2]);
        assert_eq!(
            format!("{augment:?}"),
            "Augment { transforms: [FnTransform(\"fill\")] }"
        );
    }

    #[test]
    fn the_empty_pipeline_changes_nothing() {
        let augment = Augment::new();
        assert!(augment.is_empty());
        let mut buffer = batch(4, [1, 2, 2]);
        augment.apply_batch(&mut buffer, &[1, 2, 2], 0, 0).unwrap();
        assert_eq!(buffer, batch(4, [1, 2, 2]));
    }

    #[test]
    fn the_scratch_buffer_is_kept_between_batches() {
        let augment = Augment::new().then(RandomTranslate::new(3).unwrap());
        let shape = [2, 16, 16];
        let mut buffer = batch(8, shape);
        augment
            .apply_batch_with(&mut buffer, &shape, 0, 0, false)
            .unwrap();
        let (capacity, address) = with_scratch(|s| (s.capacity(), s.as_ptr()));
        assert!(capacity >= 2 * 16 * 16);
        for step in 1..5 {
            augment
                .apply_batch_with(&mut buffer, &shape, step, 0, false)
                .unwrap();
            assert_eq!(
                with_scratch(|s| (s.capacity(), s.as_ptr())),
                (capacity, address)
            );
        }
    }

    #[test]
    fn a_transform_may_augment_another_batch_inside() {
        // the inner call gets its own scratch buffer instead of a double borrow
        let inner = Augment::new().then(RandomTranslate::new(1).unwrap());
        let outer = Augment::new()
            .then(RandomTranslate::new(1).unwrap())
            .then(FnTransform::new("nested", move |mut sample, _| {
                let mut copy: Vec<Elem> = sample.iter().copied().collect();
                inner.apply_batch(&mut copy, &[1, 3, 3], 0, 0).unwrap();
                sample.assign(
                    &ArrayView1::from(&copy)
                        .into_shape_with_order((1, 3, 3))
                        .unwrap(),
                );
            }));
        let mut buffer = vec![1.0; 9 * 2];
        outer.apply_batch(&mut buffer, &[1, 3, 3], 1, 0).unwrap();
        assert!(buffer.iter().all(|&v| v == 0.0 || v == 1.0));
    }
}
