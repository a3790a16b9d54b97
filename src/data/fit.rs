//! Fitting a [`Scaler`] on a training [`Dataset`]: per-feature, global and per-channel
//! standardization and min-max scaling. Kept apart from `preprocess.rs` (the scaler itself,
//! which `dataset.rs` applies to batches) so that neither of the two imports the other.

use crate::data::dataset::Dataset;
use crate::data::preprocess::{Scaler, ScalerKind};
use crate::error::{Error, Result};
use crate::tensor::Elem;

impl Scaler {
    /// Fits per-feature standardization on `train`: per feature, the mean `μ_j` and the
    /// population standard deviation `σ_j` (as scikit-learn's `StandardScaler`), with `σ_j`
    /// floored at a fraction of the feature's own training range:
    /// `s_j = max(σ_j, (max_j − min_j) / 20)`, then `scale = 1/s_j`, `shift = −μ_j/s_j`;
    /// a constant feature (`σ_j = 0`) gets `scale = 1`, `shift = −μ_j`.
    ///
    /// Why the floor: a feature that is almost constant on the training data, such as a
    /// border pixel that is 0 in all but a few images, has a tiny `σ_j`, and dividing by it
    /// blows up any other value it takes on new data. The floor keeps every training value
    /// within 20 units of the mean after scaling (without it, a single deviating value among
    /// `n` maps to up to `√(n−1)`, about 234 for 55,000 samples). A normally distributed
    /// feature has a range of about `8.5·σ` over 55,000 samples, so the floor leaves it
    /// alone. The rule compares each feature only with itself, so it does not depend on the
    /// units of the other features.
    ///
    /// Use this for tabular features in different units. For images, prefer
    /// [`Scaler::standardize_global`] (see [`Scaler`] for measured figures).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on an empty data set, or a NaN or infinite feature (naming
    /// the sample and the feature).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array, ndarray::Array2};
    /// // feature 0 is 0 in 999 samples and 100 in one: σ ≈ 3.16 is floored at 100 / 20 = 5;
    /// // feature 1 alternates 1 and 3: σ = 1 is above its floor (3 − 1) / 20 and is kept
    /// let x = Array2::from_shape_fn((1000, 2), |(i, j)| match j {
    ///     0 => if i == 0 { 100.0 } else { 0.0 },
    ///     _ => if i % 2 == 0 { 1.0 } else { 3.0 },
    /// });
    /// let scaler = Scaler::standardize(&Dataset::from_floats(x, vec![0; 1000])?)?;
    /// assert_eq!(scaler.scale(), &[0.2, 1.0]);
    /// // a new 255 maps to (255 − 0.1) / 5 ≈ 51, not (255 − 0.1) / 3.16 ≈ 81
    /// let mut new = array![[255.0, 3.0]].into_dyn();
    /// scaler.transform(&mut new)?;
    /// assert!((new[[0, 0]] - 50.98).abs() < 1e-3 && new[[0, 1]] == 1.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn standardize(train: &Dataset) -> Result<Scaler> {
        check_fittable(train, "scaler::standardize")?;
        let d = train.num_features();
        let (mut sum, mut sum_sq) = (vec![0f64; d], vec![0f64; d]);
        let (mut low, mut high) = (vec![f64::INFINITY; d], vec![f64::NEG_INFINITY; d]);
        for_each_row(train, |row| {
            for (j, &x) in row.iter().enumerate() {
                let x = f64::from(x);
                sum[j] += x;
                sum_sq[j] += x * x;
                low[j] = low[j].min(x);
                high[j] = high[j].max(x);
            }
        });
        let n = train.len() as f64;
        let (scale, shift) = (0..d)
            .map(|j| {
                let mean = sum[j] / n;
                let std = (sum_sq[j] / n - mean * mean).max(0.0).sqrt();
                let floored = std.max((high[j] - low[j]) / STD_FLOOR_RANGE_DIVISOR);
                standardizing_map(mean, std, floored)
            })
            .unzip();
        Ok(Scaler {
            kind: ScalerKind::Standardize,
            scale,
            shift,
        })
    }

    /// Fits one mean `μ` and one population standard deviation `σ` over all values of all
    /// features of `train` (computed in `f64`), and maps every feature by
    /// `y = (x − μ) / σ`, as `torchvision.transforms.Normalize(mean, std)` with scalars does
    /// (the usual MNIST recipe). A data set whose values are all equal gets `scale = 1`,
    /// `shift = −μ`.
    ///
    /// This suits features in the same units, such as the pixels of an image: it keeps their
    /// relative sizes, so a rarely lit border pixel is not blown up as per-feature
    /// standardization would (see [`Scaler`] for measured figures).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on an empty data set, or a NaN or infinite feature (naming
    /// the sample and the feature).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ScalerKind, ndarray::array};
    /// // values 0, 4, 2, 6: mean 3, population std √5
    /// let train = Dataset::from_floats(array![[0.0, 4.0], [2.0, 6.0]], vec![0, 1])?;
    /// let scaler = Scaler::standardize_global(&train)?;
    /// assert_eq!(scaler.kind(), ScalerKind::StandardizeGlobal);
    /// let mut x = array![[3.0, 3.0 + 5f32.sqrt()]].into_dyn();
    /// scaler.transform(&mut x)?;
    /// assert!(x[[0, 0]].abs() < 1e-6 && (x[[0, 1]] - 1.0).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn standardize_global(train: &Dataset) -> Result<Scaler> {
        check_fittable(train, "scaler::standardize_global")?;
        Ok(standardize_channels(
            train,
            1,
            ScalerKind::StandardizeGlobal,
        ))
    }

    /// Fits one mean `μ_c` and population standard deviation `σ_c` per channel `c` of
    /// image samples `[C, H, W]` (or any `[C, ...]`) over all values of that channel in
    /// `train`, and maps them by `y = (x − μ_c) / σ_c`, as
    /// `torchvision.transforms.Normalize(mean=[...], std=[...])` with the per-channel
    /// statistics of the training set (CIFAR-10's usual recipe). A channel whose values are
    /// all equal gets `scale = 1`, `shift = −μ_c`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on an empty data set or a NaN or infinite feature;
    /// [`Error::Shape`] when the samples have fewer than 2 axes (no channel axis: see [`Dataset::with_sample_shape`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ScalerKind, Targets, ndarray::array};
    /// // two samples of 2 channels × 2 values: channel 0 holds 0, 2, 4, 6, channel 1 all 5
    /// let x = array![[[0.0f32, 2.0], [5.0, 5.0]], [[4.0, 6.0], [5.0, 5.0]]];
    /// let train = Dataset::new(x, Targets::classes(vec![0, 1]))?;
    /// let scaler = Scaler::standardize_per_channel(&train)?;
    /// assert_eq!(scaler.kind(), ScalerKind::StandardizePerChannel);
    /// // channel 0: mean 3, population std √5; channel 1 is constant and maps to 0
    /// let s = 1.0 / 5f32.sqrt();
    /// assert_eq!(scaler.scale(), &[s, s, 1.0, 1.0]);
    /// assert!((scaler.shift()[0] + 3.0 * s).abs() < 1e-6 && scaler.shift()[2] == -5.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn standardize_per_channel(train: &Dataset) -> Result<Scaler> {
        let op = "scaler::standardize_per_channel";
        check_fittable(train, op)?;
        let shape = train.sample_shape();
        if shape.len() < 2 {
            return Err(Error::Shape {
                op,
                expected: "samples with a channel axis, [C, ...] (such as [3, 32, 32])".into(),
                found: format!("samples of shape {shape:?}"),
            });
        }
        Ok(standardize_channels(
            train,
            shape[0],
            ScalerKind::StandardizePerChannel,
        ))
    }

    /// Fits min-max scaling on `train`: `scale = 1/(max − min)`, `shift = −min/(max − min)`,
    /// or `scale = 1`, `shift = −min` when `max = min`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on an empty data set, or a NaN or infinite feature (naming
    /// the sample and the feature).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{Dataset, Scaler, ndarray::array};
    /// let train = Dataset::from_floats(array![[-1.0, 10.0], [3.0, 20.0]], vec![0, 1])?;
    /// let scaler = Scaler::min_max(&train)?;
    /// let mut x = array![[-1.0, 15.0], [3.0, 20.0]].into_dyn();
    /// scaler.transform(&mut x)?;
    /// assert_eq!(x, array![[0.0, 0.5], [1.0, 1.0]].into_dyn());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn min_max(train: &Dataset) -> Result<Scaler> {
        check_fittable(train, "scaler::min_max")?;
        let d = train.num_features();
        let (mut low, mut high) = (vec![Elem::INFINITY; d], vec![Elem::NEG_INFINITY; d]);
        for_each_row(train, |row| {
            for ((l, h), &x) in low.iter_mut().zip(&mut high).zip(row) {
                *l = l.min(x);
                *h = h.max(x);
            }
        });
        let (scale, shift) = low
            .iter()
            .zip(&high)
            .map(|(&l, &h)| {
                if h > l {
                    let (scale, shift) = (1.0 / (h - l), -l / (h - l));
                    if scale.is_finite() && scale != 0.0 && shift.is_finite() {
                        return (scale, shift);
                    }
                    // a range beyond f32 (overflowing to infinity) is computed in f64; one
                    // whose reciprocal overflows f32 (below about 3e-39) is a constant feature
                    let range = f64::from(h) - f64::from(l);
                    let (scale, shift) = ((1.0 / range) as Elem, (-f64::from(l) / range) as Elem);
                    if scale.is_finite() && scale != 0.0 && shift.is_finite() {
                        return (scale, shift);
                    }
                }
                (1.0, -l)
            })
            .unzip();
        Ok(Scaler {
            kind: ScalerKind::MinMax,
            scale,
            shift,
        })
    }
}

/// `Scaler::standardize` floors a feature's `σ` at its training range divided by this, so
/// that no training value maps further than this from 0.
const STD_FLOOR_RANGE_DIVISOR: f64 = 20.0;

/// `(scale, shift)` mapping `mean` to 0 and dividing by `divisor`, the spread `std`
/// possibly floored; a constant feature (by `std`) gets scale 1 and maps to 0.
fn standardizing_map(mean: f64, std: f64, divisor: f64) -> (Elem, Elem) {
    // a spread below f32 resolution of the mean is a constant feature, and so is one whose
    // reciprocal overflows f32 (a spread below about 3e-39)
    if std <= mean.abs() * 1e-7 || std == 0.0 || !((1.0 / divisor) as Elem).is_finite() {
        (1.0, -mean as Elem)
    } else {
        ((1.0 / divisor) as Elem, (-mean / divisor) as Elem)
    }
}

/// One mean and σ per block of `num_features / channels` consecutive features (a channel of
/// `[C, ...]` samples), computed in `f64` over all of `train`, which [`check_fittable`] has
/// passed.
fn standardize_channels(train: &Dataset, channels: usize, kind: ScalerKind) -> Scaler {
    let d = train.num_features();
    let per_channel = d / channels.max(1);
    let (mut sum, mut sum_sq) = (vec![0f64; channels], vec![0f64; channels]);
    for_each_row(train, |row| {
        for (c, block) in row.chunks(per_channel.max(1)).enumerate() {
            for &x in block {
                sum[c] += f64::from(x);
                sum_sq[c] += f64::from(x) * f64::from(x);
            }
        }
    });
    let n = train.len() as f64 * per_channel as f64;
    let (mut scale, mut shift) = (Vec::with_capacity(d), Vec::with_capacity(d));
    for c in 0..channels {
        let mean = sum[c] / n;
        let std = (sum_sq[c] / n - mean * mean).max(0.0).sqrt();
        let (a, b) = standardizing_map(mean, std, std);
        scale.extend(std::iter::repeat_n(a, per_channel));
        shift.extend(std::iter::repeat_n(b, per_channel));
    }
    Scaler { kind, scale, shift }
}

/// Checks that `data` has samples to fit on, all finite (a NaN or infinity would give a
/// scaler of NaN shifts, or, through `f64::min`, which skips NaN, a silently wrong range).
/// The fit functions call it first, before allocating anything per feature: an empty data
/// set may declare more features than memory holds (an IDX header of 0 images of
/// 65536 × 65536 pixels).
fn check_fittable(data: &Dataset, op: &'static str) -> Result<()> {
    if data.is_empty() {
        return Err(Error::InvalidArgument {
            op,
            message: "cannot fit on an empty data set".into(),
        });
    }
    if let Some(found) = data.first_non_finite() {
        return Err(Error::InvalidArgument {
            op,
            message: format!("{found}, expected finite features to fit on"),
        });
    }
    Ok(())
}

/// Calls `f` with each sample's raw features as `f32`.
fn for_each_row(data: &Dataset, mut f: impl FnMut(&[Elem])) {
    let mut row = vec![0.0; data.num_features()];
    for i in 0..data.len() {
        data.raw_row(i, &mut row);
        f(&row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;
    use crate::tensor::Tensor;
    use ndarray::{Array2, Array3, array};

    #[test]
    fn standardized_training_data_has_zero_mean_and_unit_variance() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| {
            (i as Elem) * (j as Elem + 1.0) * 10.0 + 7.0
        });
        let mut data = Dataset::from_floats(x, vec![0; 50]).unwrap();
        data.set_scaler(Scaler::standardize(&data).unwrap())
            .unwrap();
        let (y, _) = data.full_batch();
        for column in y.axis_iter(ndarray::Axis(1)) {
            assert!(column.mean().unwrap().abs() < 1e-5);
            assert!((column.std(0.0) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn an_empty_data_set_is_refused_before_anything_is_allocated_per_feature() {
        // 0 samples of 2^46 features: per-feature statistics would need 2^49 bytes each,
        // beyond any address space (the allocation failure aborts the process)
        let empty = Array2::<u8>::from_shape_vec((0, 1 << 46), vec![]).unwrap();
        let data = Dataset::from_bytes(empty, vec![]).unwrap();
        type Fit = fn(&Dataset) -> Result<Scaler>;
        let fits: [(&str, Fit); 3] = [
            ("scaler::standardize", Scaler::standardize),
            ("scaler::standardize_global", Scaler::standardize_global),
            ("scaler::min_max", Scaler::min_max),
        ];
        for (op, fit) in fits {
            let err = fit(&data).unwrap_err().to_string();
            assert_eq!(err, format!("{op}: cannot fit on an empty data set"));
        }
        let images = Array3::<u8>::from_shape_vec((0, 1 << 23, 1 << 23), vec![]).unwrap();
        let data = Dataset::new(images, Targets::classes(vec![])).unwrap();
        let err = Scaler::standardize_per_channel(&data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "scaler::standardize_per_channel: cannot fit on an empty data set"
        );
    }

    #[test]
    fn constant_features_map_to_zero_not_nan() {
        let data = Dataset::from_bytes(array![[7u8, 1], [7, 3]], vec![0, 1]).unwrap();
        for scaler in [Scaler::standardize(&data), Scaler::min_max(&data)] {
            let mut d = data.clone();
            d.set_scaler(scaler.unwrap()).unwrap();
            let (y, _) = d.full_batch();
            assert!(y.iter().all(|v| v.is_finite()));
            let first: Vec<Elem> = y.index_axis(ndarray::Axis(1), 0).iter().copied().collect();
            assert_eq!(first, vec![0.0, 0.0]);
        }
    }

    #[test]
    fn fitted_on_train_applied_unchanged_to_test() {
        let train = Dataset::from_floats(array![[0.0], [10.0]], vec![0, 1]).unwrap();
        let scaler = Scaler::min_max(&train).unwrap();
        let mut test = Dataset::from_floats(array![[5.0], [20.0]], vec![0, 1]).unwrap();
        test.set_scaler(scaler.clone()).unwrap();
        let (y, _) = test.full_batch();
        // test data outside the training range stays outside [0, 1]
        assert_eq!(y.into_raw_vec_and_offset().0, vec![0.5, 2.0]);
        assert_eq!(scaler.kind(), ScalerKind::MinMax);
    }

    #[test]
    fn validate_refuses_non_finite_values_zero_scales_and_length_mismatches() {
        let bad = |scale: Vec<Elem>, shift: Vec<Elem>| {
            (Scaler {
                kind: ScalerKind::Standardize,
                scale,
                shift,
            })
            .validate()
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(vec![1.0, Elem::NAN], vec![0.0, 0.0]),
            "scaler::validate: feature 1: expected a finite, nonzero scale, found NaN"
        );
        assert_eq!(
            bad(vec![1.0, 0.0], vec![0.0, 0.0]),
            "scaler::validate: feature 1: expected a finite, nonzero scale, found 0"
        );
        assert_eq!(
            bad(vec![2.0], vec![Elem::NEG_INFINITY]),
            "scaler::validate: feature 0: expected a finite shift, found -inf"
        );
        assert_eq!(
            bad(vec![2.0, 1.0], vec![0.0]),
            "scaler::validate: expected as many shifts as scales (2), found 1"
        );
        let err = Scaler::affine(3, 0.0, 1.0).unwrap_err().to_string();
        assert!(err.contains("got scale 0, shift 1"), "{err}");
    }

    #[test]
    fn fitting_extreme_ranges_gives_valid_scalers() {
        // a spread of 1e-44 has a reciprocal beyond f32: a constant feature, not an infinite
        // scale; a range of 6e38 overflows f32 but its reciprocal does not
        let tiny = Dataset::from_floats(array![[0.0, -3e38], [1e-44, 3e38]], vec![0, 1]).unwrap();
        for scaler in [Scaler::standardize(&tiny), Scaler::min_max(&tiny)] {
            let scaler = scaler.unwrap();
            scaler.validate().unwrap();
            assert_eq!(scaler.scale()[0], 1.0);
        }
        let wide = Scaler::min_max(&tiny).unwrap();
        assert!(wide.scale()[1] > 0.0 && wide.scale()[1] < 1e-38);
        assert_eq!(wide.shift()[1], 0.5);
    }

    /// A feature that is 0 in all training samples but one, where it is 10: `σ ≈ 0.224`.
    fn rare_spike(n: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, 2), |(i, j)| match (i, j) {
            (0, 0) => 10.0,
            (_, 0) => 0.0,
            _ => (i % 7) as Elem,
        });
        Dataset::from_floats(x, vec![0; n]).unwrap()
    }

    #[test]
    fn a_near_constant_feature_does_not_blow_up_new_values() {
        let scaler = Scaler::standardize(&rare_spike(2000)).unwrap();
        let mean = 10.0 / 2000.0;
        let std = (10.0f64 * 10.0 / 2000.0 - mean * mean).sqrt();
        // unfloored, a new 255 would map to (255 − μ)/σ ≈ 1140
        assert!((255.0 - mean) / std > 1000.0);
        // floored at the range over 20: 10 / 20 = 0.5
        let mut x = array![[255.0, 3.0]].into_dyn();
        scaler.transform(&mut x).unwrap();
        assert!((f64::from(x[[0, 0]]) - (255.0 - mean) / 0.5).abs() < 1e-3);
        // the ordinary feature beside it (range/σ ≈ 3) is standardized as before
        let mut data = rare_spike(2000);
        data.set_scaler(scaler).unwrap();
        let (y, _) = data.full_batch();
        let other = y.index_axis(ndarray::Axis(1), 1);
        assert!(other.mean().unwrap().abs() < 1e-5 && (other.std(0.0) - 1.0).abs() < 1e-5);
        // every training value stays within 20 of 0, the spike included
        let spike = y.index_axis(ndarray::Axis(1), 0);
        assert!(spike.iter().all(|v| v.abs() <= 20.0));
        assert!((spike[0] - 19.99).abs() < 1e-4, "{}", spike[0]);
    }

    #[test]
    fn the_floor_leaves_normally_distributed_features_alone() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let normal = Normal::new(3.0f32, 1e-3).unwrap();
        let x = Array2::from_shape_fn((20_000, 2), |(_, j)| {
            normal.sample(&mut rng) * if j == 0 { 1.0 } else { 1e6 }
        });
        let mut data = Dataset::from_floats(x, vec![0; 20_000]).unwrap();
        data.set_scaler(Scaler::standardize(&data).unwrap())
            .unwrap();
        let (y, _) = data.full_batch();
        // a spread of 1e-3 and a spread of 1e3 both come out with unit variance: the floor
        // compares a feature with itself only
        for column in y.axis_iter(ndarray::Axis(1)) {
            assert!(column.mean().unwrap().abs() < 1e-3);
            assert!((column.std(0.0) - 1.0).abs() < 1e-3, "{}", column.std(0.0));
        }
    }

    #[test]
    fn global_standardization_has_zero_mean_unit_variance_over_all_values() {
        let x = Array2::from_shape_fn((40, 3), |(i, j)| (i * i) as Elem * 0.5 + (j * 100) as Elem);
        let mut data = Dataset::from_floats(x.clone(), vec![0; 40]).unwrap();
        let scaler = Scaler::standardize_global(&data).unwrap();
        assert_eq!(scaler.kind(), ScalerKind::StandardizeGlobal);
        scaler.validate().unwrap();
        // one scale and one shift for every feature
        assert!(scaler.scale().iter().all(|&a| a == scaler.scale()[0]));
        assert!(scaler.shift().iter().all(|&b| b == scaler.shift()[0]));
        data.set_scaler(scaler).unwrap();
        let (y, _) = data.full_batch();
        let all: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / all.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        // unlike per-feature standardization, columns keep their relative offsets
        let per_column: Vec<f64> = y
            .axis_iter(ndarray::Axis(1))
            .map(|c| f64::from(c.mean().unwrap()))
            .collect();
        assert!(per_column[0] < per_column[1] && per_column[1] < per_column[2]);
        // and its statistics are those of every value: mean and std of the raw data
        let raw: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let raw_mean = raw.iter().sum::<f64>() / raw.len() as f64;
        let raw_std =
            (raw.iter().map(|v| (v - raw_mean).powi(2)).sum::<f64>() / raw.len() as f64).sqrt();
        let fitted = Scaler::standardize_global(&data).unwrap();
        assert!((f64::from(fitted.scale()[0]) - 1.0 / raw_std).abs() < 1e-7);
        assert!((f64::from(fitted.shift()[0]) + raw_mean / raw_std).abs() < 1e-5);
    }

    #[test]
    fn global_standardization_of_constant_data_maps_to_zero() {
        let data = Dataset::from_bytes(array![[7u8, 7], [7, 7]], vec![0, 1]).unwrap();
        let scaler = Scaler::standardize_global(&data).unwrap();
        assert_eq!(
            (scaler.scale(), scaler.shift()),
            (&[1.0, 1.0][..], &[-7.0, -7.0][..])
        );
    }

    #[test]
    fn the_new_kind_is_added_last_so_stored_kinds_keep_their_numbers() {
        let config = bincode::config::standard();
        let kinds = [
            ScalerKind::Standardize,
            ScalerKind::MinMax,
            ScalerKind::Affine,
            ScalerKind::StandardizeGlobal,
            ScalerKind::StandardizePerChannel,
        ];
        for (index, kind) in kinds.into_iter().enumerate() {
            let bytes = bincode::serde::encode_to_vec(kind, config).unwrap();
            let expected = bincode::serde::encode_to_vec(index as u32, config).unwrap();
            assert_eq!(bytes, expected, "{kind:?}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let empty = Dataset::from_floats(Array2::zeros((0, 2)), vec![]).unwrap();
        let err = Scaler::standardize(&empty).unwrap_err().to_string();
        assert_eq!(err, "scaler::standardize: cannot fit on an empty data set");
        let data = Dataset::from_floats(array![[1.0, 2.0]], vec![0]).unwrap();
        let scaler = Scaler::min_max(&data).unwrap();
        let mut wrong = Tensor::zeros(ndarray::IxDyn(&[2, 3]));
        let err = scaler.transform(&mut wrong).unwrap_err().to_string();
        assert_eq!(
            err,
            "scaler::transform: expected shape [samples, 2], found shape [2, 3]"
        );
        let mut other = Dataset::from_floats(array![[1.0]], vec![0]).unwrap();
        assert!(other.set_scaler(scaler).is_err());
        // a NaN or an infinity is named by every fit (min-max would have skipped a NaN)
        for (bad, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            let x = array![[1.0, 2.0], [3.0, bad], [5.0, 6.0]];
            let data = Dataset::from_floats(x, vec![0; 3]).unwrap();
            let fitted = [
                ("standardize", Scaler::standardize(&data)),
                ("min_max", Scaler::min_max(&data)),
                ("standardize_global", Scaler::standardize_global(&data)),
            ];
            for (name, fit) in fitted {
                let err = fit.unwrap_err().to_string();
                assert!(
                    err.ends_with(&format!(
                        "sample 1 feature 1 is {shown}, expected finite features to fit on"
                    )),
                    "{name}: {err}"
                );
            }
        }
    }
}
