//! The value type, [`Tensor`] (an `ndarray::ArrayD<f32>`), and its constructors.
//!
//! A tensor is a plain ndarray array, so users pass their own arrays in and take results out
//! without copies or conversions. The constructors here check what a caller passes from
//! outside (lengths, ranges) and return an [`Error`] rather than panic.

use crate::error::{Error, Result};
use ndarray::{Dimension, IxDyn};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

pub(crate) use types::{Elem, SharedTensor, Tensor};

/// The types, reached at the crate root (`tapegrad::Tensor`); the functions are reached here
/// (`tensor::zeros`).
pub(crate) mod types {
    use ndarray::{ArrayD, IxDyn};

    /// The element type of every tensor: `f32`, named in this one place.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Elem};
    /// let t = tensor::full(&[2], 0.5);
    /// let first: Elem = t[[0]];
    /// assert_eq!(first, 0.5f32);
    /// ```
    pub type Elem = f32;

    /// An n-dimensional array of [`Elem`]: the value of every tape node, parameter and
    /// gradient.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ndarray, tensor, Tensor};
    /// let t: Tensor = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
    /// assert_eq!(t.shape(), &[2, 2]);
    /// assert_eq!(t, tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub type Tensor = ArrayD<Elem>;

    /// A [`Tensor`] whose buffer can be shared: a clone costs a reference-count increment,
    /// and the first write to a shared one copies it (copy-on-write). Parameters and tape
    /// values are stored this way, so putting a parameter on a tape copies nothing.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, SharedTensor};
    /// let a: SharedTensor = tensor::ones(&[2]).into_shared();
    /// let mut b = a.clone(); // shares a's buffer
    /// b[[0]] = 5.0; // the first write copies it
    /// assert_eq!(a.as_slice().unwrap(), &[1.0, 1.0]);
    /// assert_eq!(b.as_slice().unwrap(), &[5.0, 1.0]);
    /// ```
    pub type SharedTensor = ndarray::ArcArray<Elem, IxDyn>;
}

/// A tensor of the given shape filled with `0`.
///
/// # Examples
/// ```
/// let t = tapegrad::tensor::zeros(&[2, 3]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert!(t.iter().all(|&x| x == 0.0));
/// ```
pub fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(IxDyn(shape))
}

/// A tensor of the given shape filled with `1`.
///
/// # Examples
/// ```
/// let t = tapegrad::tensor::ones(&[3]);
/// assert_eq!(t.as_slice(), Some(&[1.0, 1.0, 1.0][..]));
/// ```
pub fn ones(shape: &[usize]) -> Tensor {
    Tensor::ones(IxDyn(shape))
}

/// A tensor of the given shape with every element equal to `value`.
///
/// # Examples
/// ```
/// let t = tapegrad::tensor::full(&[2, 2], 0.5);
/// assert_eq!(t.sum(), 2.0);
/// ```
pub fn full(shape: &[usize], value: Elem) -> Tensor {
    Tensor::from_elem(IxDyn(shape), value)
}

/// A tensor that takes ownership of `data`, laid out row-major in `shape`. No copy is made.
///
/// # Errors
/// [`Error::Shape`] when `data.len()` differs from the product of `shape`; the message names
/// both.
///
/// # Examples
/// ```
/// let t = tapegrad::tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// assert_eq!(t[[1, 0]], 4.0);
/// assert!(tapegrad::tensor::from_vec(vec![1.0; 5], &[2, 3]).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn from_vec(data: Vec<Elem>, shape: &[usize]) -> Result<Tensor> {
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(Error::Shape {
            op: "tensor::from_vec",
            expected: format!("{expected} elements for shape {shape:?}"),
            found: format!("{} elements", data.len()),
        });
    }
    Ok(Tensor::from_shape_vec(IxDyn(shape), data).expect("internal error: length checked above"))
}

/// Turns an ndarray array of any dimensionality into a [`Tensor`] without copying its data.
///
/// # Examples
/// ```
/// use tapegrad::ndarray::array;
/// let t = tapegrad::tensor::from_array(array![[1.0, 2.0], [3.0, 4.0]]);
/// assert_eq!(t.shape(), &[2, 2]);
/// ```
pub fn from_array<D: Dimension>(array: ndarray::Array<Elem, D>) -> Tensor {
    array.into_dyn()
}

/// A tensor with elements drawn independently from the uniform distribution `U(low, high)`,
/// using the caller's seeded generator.
///
/// # Errors
/// [`Error::InvalidArgument`] unless `low < high` and both are finite.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, SeedableRng};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let t = tapegrad::tensor::uniform(&[100], -1.0, 1.0, &mut rng)?;
/// assert!(t.iter().all(|&x| (-1.0..1.0).contains(&x)));
/// assert!(tapegrad::tensor::uniform(&[1], 1.0, 1.0, &mut rng).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn uniform<R: Rng + ?Sized>(
    shape: &[usize],
    low: Elem,
    high: Elem,
    rng: &mut R,
) -> Result<Tensor> {
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(Error::InvalidArgument {
            op: "tensor::uniform",
            message: format!("needs finite low < high, got low {low}, high {high}"),
        });
    }
    let dist = Uniform::new(low, high).expect("internal error: bounds checked above");
    Ok(Tensor::from_shape_simple_fn(IxDyn(shape), || {
        dist.sample(rng)
    }))
}

/// A tensor with elements drawn independently from the normal distribution `N(mean, std²)`,
/// using the caller's seeded generator.
///
/// # Errors
/// [`Error::InvalidArgument`] unless `mean` is finite and `std` is finite and `>= 0`.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, SeedableRng};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let t = tapegrad::tensor::normal(&[10_000], 0.0, 2.0, &mut rng)?;
/// let std = t.std(0.0);
/// assert!((std - 2.0).abs() < 0.1);
/// assert!(tapegrad::tensor::normal(&[1], 0.0, -1.0, &mut rng).is_err());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn normal<R: Rng + ?Sized>(
    shape: &[usize],
    mean: Elem,
    std: Elem,
    rng: &mut R,
) -> Result<Tensor> {
    if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
        return Err(Error::InvalidArgument {
            op: "tensor::normal",
            message: format!("needs finite mean and finite std >= 0, got mean {mean}, std {std}"),
        });
    }
    let dist = Normal::new(mean, std).expect("internal error: parameters checked above");
    Ok(Tensor::from_shape_simple_fn(IxDyn(shape), || {
        dist.sample(rng)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn from_vec_keeps_row_major_order_and_rejects_wrong_length() {
        let t = from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        assert_eq!(t[[2, 1]], 6.0);
        let err = from_vec(vec![0.0; 7], &[3, 2]).unwrap_err().to_string();
        assert_eq!(
            err,
            "tensor::from_vec: expected 6 elements for shape [3, 2], found 7 elements"
        );
    }

    #[test]
    fn from_array_does_not_copy() {
        let a = ndarray::Array2::<f32>::zeros((3, 4));
        let ptr = a.as_ptr();
        let t = from_array(a);
        assert_eq!(t.as_ptr(), ptr);
    }

    #[test]
    fn random_constructors_are_seeded_and_match_their_moments() {
        let draw = |seed| normal(&[20_000], 1.0, 3.0, &mut ChaCha8Rng::seed_from_u64(seed));
        let a = draw(7).unwrap();
        assert_eq!(a, draw(7).unwrap());
        assert_ne!(a, draw(8).unwrap());
        assert!((a.mean().unwrap() - 1.0).abs() < 0.06);
        assert!((a.std(0.0) - 3.0).abs() < 0.06);

        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let u = uniform(&[20_000], 2.0, 4.0, &mut rng).unwrap();
        assert!(u.iter().all(|&x| (2.0..4.0).contains(&x)));
        assert!((u.mean().unwrap() - 3.0).abs() < 0.02);
        // Var(U(a, b)) = (b - a)² / 12
        assert!((u.var(0.0) - 4.0 / 12.0).abs() < 0.01);
    }

    #[test]
    fn random_constructors_reject_bad_parameters() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(uniform(&[1], 2.0, 1.0, &mut rng).is_err());
        assert!(uniform(&[1], f32::NAN, 1.0, &mut rng).is_err());
        assert!(normal(&[1], 0.0, f32::INFINITY, &mut rng).is_err());
        let err = normal(&[1], 0.0, -1.0, &mut rng).unwrap_err().to_string();
        assert!(err.contains("std -1"), "{err}");
    }
}
