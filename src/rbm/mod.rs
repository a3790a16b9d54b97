//! Restricted Boltzmann machines with binary (Bernoulli) visible and hidden units: the
//! model [`Rbm`], its training by contrastive divergence ([`RbmTrainer`], [`RbmConfig`]) and
//! greedy layer-wise pre-training of a sigmoid or tanh network ([`pretrain`], a deep belief
//! net).
//!
//! The energy of a visible vector `v ∈ {0,1}^V` and a hidden vector `h ∈ {0,1}^H` is
//! `E(v, h) = −bᵀv − cᵀh − hᵀ·W·v`, with the weight `W: [H, V]` (the layout of a
//! [`Linear`](crate::Linear)'s weight `[out, in]`, so a trained RBM drops into a `Linear`
//! that maps `V` inputs to `H` outputs), the visible bias `b: [V]` and the hidden bias
//! `c: [H]`. Then `p(v, h) ∝ e^(−E(v, h))`, and the conditionals factorize:
//! `p(h_j = 1 | v) = σ(c_j + W_j·v)` and `p(v_i = 1 | h) = σ(b_i + hᵀ·W_{:,i})`.
//! Summing out `h` gives the free energy `F(v) = −bᵀv − Σ_j softplus(c_j + W_j·v)` with
//! `p(v) ∝ e^(−F(v))`.
//!
//! References: Hinton (2002), "Training products of experts by minimizing contrastive
//! divergence", Neural Computation 14(8) (CD-k); Tieleman (2008), "Training restricted
//! Boltzmann machines using approximations to the likelihood gradient", ICML (persistent
//! CD); Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets",
//! Neural Computation 18(7) (greedy pre-training); Hinton (2010), "A practical guide to
//! training restricted Boltzmann machines", UTML TR 2010-003 (momentum, weight cost,
//! monitoring). scikit-learn's `BernoulliRBM` is the reference implementation most users
//! know; [`RbmMethod::PersistentCd`] with `k = 1` and no momentum or weight cost is its
//! update.

mod dbn;
mod kernel;
mod train;

pub use dbn::{PretrainProgress, pretrain};
pub use train::{RbmConfig, RbmEpoch, RbmMethod, RbmTrainer};

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::gemm::{gemm, view2};
use crate::kernels::simd::with_simd;
use crate::nn::{Mode, Module, Spatial};
use crate::param::{Param, Role};
use crate::tensor::{Elem, Tensor};
use kernel::{affine_sigmoid, sample_bernoulli, softplus};
use ndarray::{Array1, Array2, ArrayView2, Axis, Ix2};
use rand::{Rng, RngExt};

/// A restricted Boltzmann machine with binary visible and hidden units (a Bernoulli–Bernoulli
/// RBM, scikit-learn's `BernoulliRBM`): `p(h_j = 1 | v) = σ(c_j + W_j·v)`,
/// `p(v_i = 1 | h) = σ(b_i + hᵀ·W_{:,i})`, free energy
/// `F(v) = −bᵀv − Σ_j softplus(c_j + W_j·v)`, from the energy
/// `E(v, h) = −bᵀv − cᵀh − hᵀ·W·v` with `p(v, h) ∝ e^(−E(v, h))` and `p(v) ∝ e^(−F(v))`.
///
/// Train it with [`RbmTrainer`] (CD-k, Hinton 2002; persistent CD, Tieleman 2008; momentum
/// and weight cost as in Hinton's practical guide, 2010) and stack RBMs into a deep belief
/// net with [`pretrain`] (Hinton, Osindero & Teh 2006).
///
/// As a [`Module`] its forward pass is the hidden probabilities `σ(x·Wᵀ + c)`, so an RBM is
/// a [`Linear`](crate::Linear) followed by a [`Sigmoid`](crate::Sigmoid). Its parameters are
/// named `"weight"` (`W`, `[hidden, visible]`, [`Role::Weight`]), `"hidden_bias"` (`c`,
/// `[hidden]`, [`Role::Bias`]) and `"visible_bias"` (`b`, `[visible]`, [`Role::Bias`]):
/// these are its keys in checkpoints and safetensors files
/// ([`checkpoint::save`](crate::checkpoint::save),
/// [`checkpoint::export_safetensors`](crate::checkpoint::export_safetensors)).
/// scikit-learn calls them `components_`, `intercept_hidden_` and `intercept_visible_`.
///
/// Data for the visible layer are probabilities: every method that takes visible or hidden
/// values returns an error for a value outside `[0, 1]` or not finite. Binary data are the
/// model's own; values in between are used as probabilities, as Hinton's guide (section 13.2)
/// does for gray levels.
///
/// # Shapes
/// Visible data `[n, visible]`, hidden values `[n, hidden]`; the forward pass maps
/// `[.., visible] -> [.., hidden]`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Rbm};
/// // one hidden unit that looks at two visible units: W = [[2, -2]], c = [0], b = [0, 0]
/// let rbm = Rbm::from_parts(
///     tensor::from_vec(vec![2.0, -2.0], &[1, 2])?,
///     tensor::zeros(&[1]),
///     tensor::zeros(&[2]),
/// )?;
/// let v = tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2])?;
/// let h = rbm.hidden_probs(&v)?;
/// assert!((h[[0, 0]] - 0.880_797).abs() < 1e-6); // σ(2)
/// assert!((h[[1, 0]] - 0.119_203).abs() < 1e-6); // σ(−2)
/// // F(v) = −softplus(2) for v = [1, 0]
/// let f = rbm.free_energy(&v)?;
/// assert!((f[0] + 2.126_928).abs() < 1e-5);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rbm {
    weight: Param,
    hidden_bias: Param,
    visible_bias: Param,
}

/// The gradient of a scalar with respect to an RBM's parameters, in the parameters' shapes:
/// `weight` `[hidden, visible]`, `hidden_bias` `[hidden]`, `visible_bias` `[visible]`.
///
/// Returned by [`Rbm::free_energy_gradient`] (`∂F/∂θ`, averaged over samples) and by
/// [`Rbm::contrastive_divergence`] (an estimate of `∂ log p(v)/∂θ`, averaged over samples).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Rbm};
/// let rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
/// let g = rbm.free_energy_gradient(&tensor::ones(&[1, 3]))?;
/// assert_eq!(g.weight.shape(), &[2, 3]);
/// // ∂F/∂b = −v
/// assert_eq!(g.visible_bias.as_slice().unwrap(), &[-1.0, -1.0, -1.0]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RbmGradient {
    /// With respect to the weight `W`, `[hidden, visible]`.
    pub weight: Tensor,
    /// With respect to the hidden bias `c`, `[hidden]`.
    pub hidden_bias: Tensor,
    /// With respect to the visible bias `b`, `[visible]`.
    pub visible_bias: Tensor,
}

impl Rbm {
    /// An RBM with `visible` visible and `hidden` hidden units, with weights drawn from
    /// `N(0, 0.01²)` and zero biases, as Hinton's guide (section 8) recommends and
    /// scikit-learn's `BernoulliRBM` does.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `visible` or `hidden` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Module, Rbm, SeedableRng};
    /// let rbm = Rbm::new(784, 256, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!((rbm.num_visible(), rbm.num_hidden()), (784, 256));
    /// assert_eq!(rbm.num_params(), 784 * 256 + 256 + 784);
    /// let w = rbm.weight().value();
    /// assert!((w.std(0.0) - 0.01).abs() < 1e-3);
    /// assert!(Rbm::new(0, 3, &mut ChaCha8Rng::seed_from_u64(0)).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(visible: usize, hidden: usize, rng: &mut R) -> Result<Self> {
        if visible == 0 || hidden == 0 {
            return Err(Error::InvalidArgument {
                op: "rbm",
                message: format!(
                    "unit counts must be positive, got visible {visible}, hidden {hidden}"
                ),
            });
        }
        let weight = crate::tensor::normal(&[hidden, visible], 0.0, 0.01, rng)?;
        Self::from_parts(
            weight,
            crate::tensor::zeros(&[hidden]),
            crate::tensor::zeros(&[visible]),
        )
    }

    /// An RBM with known parameters: `weight` `[hidden, visible]`, `hidden_bias` `[hidden]`,
    /// `visible_bias` `[visible]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `weight` is not 2-D with positive sides or a bias has the wrong
    /// length: `rbm: expected hidden_bias shape [2], found [3]`; [`Error::InvalidArgument`]
    /// if a value is not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// assert_eq!(rbm.num_hidden(), 2);
    /// let err = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[3]), tensor::zeros(&[3]))
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "rbm: expected hidden_bias shape [2], found [3]");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_parts(weight: Tensor, hidden_bias: Tensor, visible_bias: Tensor) -> Result<Self> {
        let shape = weight.shape().to_vec();
        if shape.len() != 2 || shape.contains(&0) {
            return Err(Error::Shape {
                op: "rbm",
                expected: "a 2-D weight [hidden, visible] with positive sides".into(),
                found: format!("{shape:?}"),
            });
        }
        for (name, bias, len) in [
            ("hidden_bias", &hidden_bias, shape[0]),
            ("visible_bias", &visible_bias, shape[1]),
        ] {
            if bias.shape() != [len] {
                return Err(Error::Shape {
                    op: "rbm",
                    expected: format!("{name} shape [{len}]"),
                    found: format!("{:?}", bias.shape()),
                });
            }
        }
        for (name, t) in [
            ("weight", &weight),
            ("hidden_bias", &hidden_bias),
            ("visible_bias", &visible_bias),
        ] {
            if let Some(bad) = t.iter().find(|x| !x.is_finite()) {
                return Err(Error::InvalidArgument {
                    op: "rbm",
                    message: format!("{name} must be finite, found {bad}"),
                });
            }
        }
        Ok(Rbm {
            weight: Param::weight(weight),
            hidden_bias: Param::with_role("hidden_bias", Role::Bias, hidden_bias),
            visible_bias: Param::with_role("visible_bias", Role::Bias, visible_bias),
        })
    }

    /// The weight `W`, `[hidden, visible]` (scikit-learn's `components_`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// assert_eq!(rbm.weight().value().shape(), &[2, 3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The hidden bias `c`, `[hidden]` (scikit-learn's `intercept_hidden_`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::full(&[2], 0.5), tensor::zeros(&[3]))?;
    /// assert_eq!(rbm.hidden_bias().value().as_slice().unwrap(), &[0.5, 0.5]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn hidden_bias(&self) -> &Param {
        &self.hidden_bias
    }

    /// The visible bias `b`, `[visible]` (scikit-learn's `intercept_visible_`).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[2]), tensor::ones(&[3]))?;
    /// assert_eq!(rbm.visible_bias().value().sum(), 3.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn visible_bias(&self) -> &Param {
        &self.visible_bias
    }

    /// The number of visible units `V`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// assert_eq!(rbm.num_visible(), 3);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_visible(&self) -> usize {
        self.weight.value().shape()[1]
    }

    /// The number of hidden units `H`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// assert_eq!(rbm.num_hidden(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn num_hidden(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// The weight as a matrix view `[hidden, visible]`.
    fn w(&self) -> ArrayView2<'_, Elem> {
        view2(self.weight.value())
    }

    /// The hidden probabilities `p(h = 1 | v) = σ(v·Wᵀ + c)`, `[n, visible] -> [n, hidden]`
    /// (scikit-learn's `transform`).
    ///
    /// # Errors
    /// [`Error::Shape`] if `v` is not `[n, visible]`; [`Error::InvalidArgument`] naming the
    /// row and column of a value outside `[0, 1]` or not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// let rbm = Rbm::from_parts(tensor::ones(&[1, 2]), tensor::full(&[1], -1.0), tensor::zeros(&[2]))?;
    /// let h = rbm.hidden_probs(&tensor::from_vec(vec![1.0, 1.0], &[1, 2])?)?;
    /// assert!((h[[0, 0]] - 0.731_059).abs() < 1e-6); // σ(1 + 1 − 1)
    /// let err = rbm.hidden_probs(&tensor::from_vec(vec![1.0, 2.0], &[1, 2])?).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "rbm::hidden_probs: visible values must be probabilities in [0, 1], found 2 at row 0, column 1"
    /// );
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn hidden_probs(&self, v: &Tensor) -> Result<Tensor> {
        let v = check_units("rbm::hidden_probs", "visible", v, self.num_visible())?;
        Ok(self.hidden_probs_of(v).into_dyn())
    }

    /// `σ(v·Wᵀ + c)` for checked `v`.
    fn hidden_probs_of(&self, v: ArrayView2<'_, Elem>) -> Array2<Elem> {
        let mut h = Array2::zeros((v.nrows(), self.num_hidden()));
        let c = self.hidden_bias.value();
        let c = c.as_slice().expect("internal error: a bias is contiguous");
        affine_sigmoid(v, self.w().t(), c, h.view_mut());
        h
    }

    /// `σ(h·W + b)` for checked `h`.
    fn visible_probs_of(&self, h: ArrayView2<'_, Elem>) -> Array2<Elem> {
        let mut v = Array2::zeros((h.nrows(), self.num_visible()));
        let b = self.visible_bias.value();
        let b = b.as_slice().expect("internal error: a bias is contiguous");
        affine_sigmoid(h, self.w(), b, v.view_mut());
        v
    }

    /// The visible probabilities `p(v = 1 | h) = σ(h·W + b)`, `[n, hidden] -> [n, visible]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `h` is not `[n, hidden]`; [`Error::InvalidArgument`] for a value
    /// outside `[0, 1]` or not finite.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// // W = [[1, -1]]: the hidden unit on turns visible unit 0 up and unit 1 down
    /// let rbm = Rbm::from_parts(tensor::from_vec(vec![1.0, -1.0], &[1, 2])?, tensor::zeros(&[1]), tensor::zeros(&[2]))?;
    /// let v = rbm.visible_probs(&tensor::ones(&[1, 1]))?;
    /// assert!((v[[0, 0]] - 0.731_059).abs() < 1e-6 && (v[[0, 1]] - 0.268_941).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn visible_probs(&self, h: &Tensor) -> Result<Tensor> {
        let h = check_units("rbm::visible_probs", "hidden", h, self.num_hidden())?;
        Ok(self.visible_probs_of(h).into_dyn())
    }

    /// Binary hidden states drawn from `p(h | v)`: `h_j = 1` when a uniform draw from `rng`
    /// is below `p(h_j = 1 | v)` (scikit-learn's `_sample_hiddens`).
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, SeedableRng};
    /// let rbm = Rbm::from_parts(tensor::zeros(&[3, 2]), tensor::zeros(&[3]), tensor::zeros(&[2]))?;
    /// let h = rbm.sample_hidden(&tensor::ones(&[100, 2]), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert!(h.iter().all(|&x| x == 0.0 || x == 1.0));
    /// let on = h.sum() / 300.0; // p = σ(0) = 0.5
    /// assert!((on - 0.5).abs() < 0.1);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sample_hidden<R: Rng + ?Sized>(&self, v: &Tensor, rng: &mut R) -> Result<Tensor> {
        let mut h = self.hidden_probs(v)?;
        sample_in_place(&mut h, rng);
        Ok(h)
    }

    /// Binary visible states drawn from `p(v | h)` (scikit-learn's `_sample_visibles`).
    ///
    /// # Errors
    /// As [`Rbm::visible_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, SeedableRng};
    /// // a large visible bias: the visible units are almost surely on
    /// let rbm = Rbm::from_parts(tensor::zeros(&[1, 4]), tensor::zeros(&[1]), tensor::full(&[4], 20.0))?;
    /// let v = rbm.sample_visible(&tensor::zeros(&[2, 1]), &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(v, tensor::ones(&[2, 4]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sample_visible<R: Rng + ?Sized>(&self, h: &Tensor, rng: &mut R) -> Result<Tensor> {
        let mut v = self.visible_probs(h)?;
        sample_in_place(&mut v, rng);
        Ok(v)
    }

    /// `steps` rounds of block Gibbs sampling from `v`: `h ~ p(h | v)`, then `v ~ p(v | h)`,
    /// each round; returns the binary visible states of the last round (scikit-learn's
    /// `gibbs` for `steps = 1`). Run long chains from data or noise to see what the model
    /// has learned.
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`]; [`Error::InvalidArgument`] if `steps` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, SeedableRng};
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::full(&[3], -30.0))?;
    /// let v = rbm.gibbs(&tensor::ones(&[4, 3]), 5, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(v, tensor::zeros(&[4, 3])); // visible units are almost surely off
    /// assert!(rbm.gibbs(&tensor::ones(&[4, 3]), 0, &mut ChaCha8Rng::seed_from_u64(0)).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn gibbs<R: Rng + ?Sized>(&self, v: &Tensor, steps: usize, rng: &mut R) -> Result<Tensor> {
        if steps == 0 {
            return Err(Error::InvalidArgument {
                op: "rbm::gibbs",
                message: "steps must be at least 1, got 0".into(),
            });
        }
        let mut v = check_units("rbm::gibbs", "visible", v, self.num_visible())?.to_owned();
        for _ in 0..steps {
            let mut h = self.hidden_probs_of(v.view());
            sample_slice(h.as_slice_mut(), rng);
            v = self.visible_probs_of(h.view());
            sample_slice(v.as_slice_mut(), rng);
        }
        Ok(v.into_dyn())
    }

    /// The free energy of each row, `F(v) = −bᵀv − Σ_j softplus(c_j + W_j·v)`, `[n]`
    /// (scikit-learn's `_free_energy`); `p(v) = e^(−F(v)) / Z`. Sums run in `f64`.
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// // no weights: F(v) = −bᵀv − H·ln 2
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 2]), tensor::zeros(&[2]), tensor::from_vec(vec![1.0, 3.0], &[2])?)?;
    /// let f = rbm.free_energy(&tensor::from_vec(vec![1.0, 1.0], &[1, 2])?)?;
    /// assert!((f[0] - (-4.0 - 2.0 * 2f32.ln())).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn free_energy(&self, v: &Tensor) -> Result<Tensor> {
        let v = check_units("rbm::free_energy", "visible", v, self.num_visible())?;
        let pre = self.hidden_inputs(v);
        let b = self.visible_bias.value();
        let f = v
            .rows()
            .into_iter()
            .zip(pre.rows())
            .map(|(v, a)| {
                let bv: f64 = v
                    .iter()
                    .zip(b.iter())
                    .map(|(&v, &b)| f64::from(v * b))
                    .sum();
                let s: f64 = a.iter().map(|&a| softplus(f64::from(a))).sum();
                (-bv - s) as Elem
            })
            .collect::<Vec<_>>();
        Ok(Array1::from(f).into_dyn())
    }

    /// The hidden units' total inputs `v·Wᵀ + c`, `[n, hidden]`.
    fn hidden_inputs(&self, v: ArrayView2<'_, Elem>) -> Array2<Elem> {
        let (n, h) = (v.nrows(), self.num_hidden());
        let c = self.hidden_bias.value();
        let mut pre = Array2::from_shape_fn((n, h), |(_, j)| c[j]);
        gemm(v, self.w().t(), pre.view_mut(), 1.0, 1.0);
        pre
    }

    /// The gradient of the free energy with respect to the parameters, averaged over the
    /// rows of `v`: `∂F/∂W = −σ(W·v + c)·vᵀ`, `∂F/∂c = −σ(W·v + c)`, `∂F/∂b = −v`.
    ///
    /// The log-likelihood gradient is built from it:
    /// `∂ log p(v)/∂θ = −∂F(v)/∂θ + E_model[∂F/∂θ]`; contrastive divergence
    /// ([`Rbm::contrastive_divergence`]) estimates the model's expectation with samples.
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// // W = 0, c = 0: σ = 1/2, so ∂F/∂W = −v/2 for every hidden unit
    /// let rbm = Rbm::from_parts(tensor::zeros(&[1, 2]), tensor::zeros(&[1]), tensor::zeros(&[2]))?;
    /// let g = rbm.free_energy_gradient(&tensor::from_vec(vec![1.0, 0.0], &[1, 2])?)?;
    /// assert_eq!(g.weight.as_slice().unwrap(), &[-0.5, 0.0]);
    /// assert_eq!(g.hidden_bias.as_slice().unwrap(), &[-0.5]);
    /// assert_eq!(g.visible_bias.as_slice().unwrap(), &[-1.0, 0.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn free_energy_gradient(&self, v: &Tensor) -> Result<RbmGradient> {
        let v = check_units(
            "rbm::free_energy_gradient",
            "visible",
            v,
            self.num_visible(),
        )?;
        let n = v.nrows() as Elem;
        let h = self.hidden_probs_of(v);
        let mut weight = Array2::zeros((self.num_hidden(), self.num_visible()));
        gemm(h.t(), v, weight.view_mut(), 0.0, -1.0 / n);
        Ok(RbmGradient {
            weight: weight.into_dyn(),
            hidden_bias: (h.sum_axis(Axis(0)) * (-1.0 / n)).into_dyn(),
            visible_bias: (v.sum_axis(Axis(0)) * (-1.0 / n)).into_dyn(),
        })
    }

    /// The CD-k estimate of the log-likelihood gradient `∂ log p(v)/∂θ`, averaged over the
    /// rows of `v` (Hinton 2002): the data term with the hidden probabilities,
    /// `⟨v·p(h|v)ᵀ⟩_data`, minus the same term at the end of a `k`-step Gibbs chain started at
    /// each row (`h ~ p(h | v)`, `v' ~ p(v' | h)`, … with binary samples, and the hidden
    /// probabilities `p(h | v_k)` at the end). It is `−∂F(v)/∂θ + ∂F(v_k)/∂θ` (see
    /// [`Rbm::free_energy_gradient`]). As `k` grows, its expectation approaches the exact
    /// gradient; `k = 1` is biased but usually good enough for learning features.
    ///
    /// Training applies this statistic in place, without building it as a tensor
    /// ([`RbmTrainer`]).
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`]; [`Error::InvalidArgument`] if `k` is 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let rbm = Rbm::new(4, 3, &mut rng)?;
    /// let v = tensor::from_vec(vec![1.0, 1.0, 0.0, 0.0], &[1, 4])?;
    /// let g = rbm.contrastive_divergence(&v, 1, &mut rng)?;
    /// assert_eq!(g.weight.shape(), &[3, 4]);
    /// // the visible-bias gradient is v minus the chain's sample: in {−1, 0, 1}
    /// assert!(g.visible_bias.iter().all(|&x| x == -1.0 || x == 0.0 || x == 1.0));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn contrastive_divergence<R: Rng + ?Sized>(
        &self,
        v: &Tensor,
        k: usize,
        rng: &mut R,
    ) -> Result<RbmGradient> {
        if k == 0 {
            return Err(Error::InvalidArgument {
                op: "rbm::contrastive_divergence",
                message: "k (Gibbs steps) must be at least 1, got 0".into(),
            });
        }
        let v = check_units(
            "rbm::contrastive_divergence",
            "visible",
            v,
            self.num_visible(),
        )?;
        let n = v.nrows();
        let mut work = train::Workspace::new(n, n, self.num_visible(), self.num_hidden());
        work.load_rows(v, 0..n);
        let m = work.statistics(self, n, RbmMethod::ContrastiveDivergence { k }, None, rng);
        work.fill_weight_stat(n, m);
        let scale = 1.0 / n as Elem;
        Ok(RbmGradient {
            weight: (&work.weight_stat * scale).into_dyn(),
            hidden_bias: (&work.hidden_stat * scale).into_dyn(),
            visible_bias: (&work.visible_stat * scale).into_dyn(),
        })
    }

    /// The pseudo-log-likelihood of each row, exactly as scikit-learn's
    /// `BernoulliRBM.score_samples` computes it: for each row one visible index `i` is drawn
    /// uniformly from `rng`, `v'` is `v` with `v_i` flipped to `1 − v_i`, and the score is
    /// `V · log σ(F(v') − F(v))`, `[n]`. It is a stochastic estimate of
    /// `Σ_i log p(v_i | v_{−i})` (Besag 1975), cheap where the likelihood needs the partition
    /// function. `F(v') − F(v)` is computed from the change of one input, in `f64`.
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, SeedableRng};
    /// // no weights, b = 0: every flip leaves F unchanged, so the score is V·log σ(0)
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// let v = tensor::from_vec(vec![1.0, 0.0, 1.0], &[1, 3])?;
    /// let pll = rbm.pseudo_log_likelihood(&v, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert!((pll[0] - 3.0 * 0.5f32.ln()).abs() < 1e-6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn pseudo_log_likelihood<R: Rng + ?Sized>(
        &self,
        v: &Tensor,
        rng: &mut R,
    ) -> Result<Tensor> {
        let v = check_units(
            "rbm::pseudo_log_likelihood",
            "visible",
            v,
            self.num_visible(),
        )?;
        let visible = self.num_visible();
        // all indices first, as scikit-learn's `rng.randint(0, V, n)`
        let flips: Vec<usize> = (0..v.nrows())
            .map(|_| rng.random_range(0..visible))
            .collect();
        let pre = self.hidden_inputs(v);
        let w = self.w();
        let b = self.visible_bias.value();
        let scores = (v.rows().into_iter().zip(pre.rows()).zip(&flips))
            .map(|((row, a), &i)| {
                // v_i → 1 − v_i changes v_i by s and each input a_j by s·W_ji
                let s = f64::from(1.0 - 2.0 * row[i]);
                let hidden_change: f64 = (a.iter().zip(w.column(i)))
                    .map(|(&a, &w)| {
                        let a = f64::from(a);
                        softplus(a + s * f64::from(w)) - softplus(a)
                    })
                    .sum();
                let delta = -s * f64::from(b[i]) - hidden_change; // F(v') − F(v)
                (-(visible as f64) * softplus(-delta)) as Elem // V·log σ(delta)
            })
            .collect::<Vec<_>>();
        Ok(Array1::from(scores).into_dyn())
    }

    /// The mean squared error of a one-step mean-field reconstruction,
    /// `mean((σ(σ(v·Wᵀ + c)·W + b) − v)²)` over all rows and units: the quantity Hinton's
    /// guide (section 5) says to watch, with the caution that it is not what CD optimizes.
    ///
    /// # Errors
    /// As [`Rbm::hidden_probs`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm};
    /// // no weights, b = 0: the reconstruction is 1/2 everywhere
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 2]), tensor::zeros(&[2]), tensor::zeros(&[2]))?;
    /// let e = rbm.reconstruction_error(&tensor::from_vec(vec![1.0, 0.0], &[1, 2])?)?;
    /// assert!((e - 0.25).abs() < 1e-7);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn reconstruction_error(&self, v: &Tensor) -> Result<f64> {
        let v = check_units(
            "rbm::reconstruction_error",
            "visible",
            v,
            self.num_visible(),
        )?;
        let recon = self.visible_probs_of(self.hidden_probs_of(v).view());
        let total: f64 = (recon.iter().zip(v.iter()))
            .map(|(&r, &x)| f64::from(r - x).powi(2))
            .sum();
        Ok(total / v.len() as f64)
    }
}

impl Module for Rbm {
    /// The hidden probabilities `σ(x·Wᵀ + c)` on the tape (no check that `x` is in
    /// `[0, 1]`: this is the deterministic up-pass of a deep belief net).
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let tape = x.tape();
        (x.matmul_transposed(tape.param(&self.weight)) + tape.param(&self.hidden_bias)).sigmoid()
    }

    crate::walk!(weight, hidden_bias, visible_bias);

    fn describe(&self) -> String {
        format!(
            "Rbm(visible={}, hidden={})",
            self.num_visible(),
            self.num_hidden()
        )
    }

    fn in_features(&self) -> Option<usize> {
        Some(self.num_visible())
    }

    fn out_features(&self) -> Option<usize> {
        Some(self.num_hidden())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (visible, hidden) = (self.num_visible(), self.num_hidden());
        match input.split_last() {
            Some((&last, leading)) if last == visible && !leading.is_empty() => {
                Ok([leading, &[hidden]].concat())
            }
            _ => Err(Error::Shape {
                op: "rbm",
                expected: format!("an input [.., {visible}]"),
                found: format!("{input:?}"),
            }),
        }
    }

    fn spatial(&self) -> Spatial {
        Spatial::Flat
    }
}

/// `x` as a matrix `[n, width]` of values in `[0, 1]`, or an error naming `op`, the layer
/// (`"visible"` or `"hidden"`) and what was wrong.
pub(crate) fn check_units<'a>(
    op: &'static str,
    layer: &str,
    x: &'a Tensor,
    width: usize,
) -> Result<ArrayView2<'a, Elem>> {
    let shape = x.shape();
    if shape.len() != 2 || shape[1] != width || shape[0] == 0 {
        return Err(Error::Shape {
            op,
            expected: format!("{layer} values [n, {width}] with n >= 1"),
            found: format!("{shape:?}"),
        });
    }
    let x = x
        .view()
        .into_dimensionality::<Ix2>()
        .expect("internal error: checked 2-D above");
    check_range(op, layer, x)?;
    Ok(x)
}

/// An error naming the first value of `x` outside `[0, 1]` or not finite.
pub(crate) fn check_range(op: &'static str, layer: &str, x: ArrayView2<'_, Elem>) -> Result<()> {
    // a fast pass first (NaN fails both comparisons; no early exit, so it vectorizes),
    // the position only on failure
    let in_range = |values: &[Elem]| {
        with_simd(
            #[inline(always)]
            || {
                values
                    .iter()
                    .fold(true, |fine, &a| fine & (0.0..=1.0).contains(&a))
            },
        )
    };
    let fine = match x.as_slice() {
        Some(values) => in_range(values),
        None => x.rows().into_iter().all(|row| match row.as_slice() {
            Some(values) => in_range(values),
            None => row.iter().all(|&a| (0.0..=1.0).contains(&a)),
        }),
    };
    if fine {
        return Ok(());
    }
    let ((row, column), value) = x
        .indexed_iter()
        .find(|(_, a)| !(0.0..=1.0).contains(*a))
        .expect("internal error: a bad value was seen");
    Err(Error::InvalidArgument {
        op,
        message: format!(
            "{layer} values must be probabilities in [0, 1], found {value} at row {row}, column {column}"
        ),
    })
}

/// Replaces the probabilities of `t` by Bernoulli draws.
fn sample_in_place<R: Rng + ?Sized>(t: &mut Tensor, rng: &mut R) {
    let slice = t
        .as_slice_mut()
        .expect("internal error: a fresh tensor is contiguous");
    sample_slice(Some(slice), rng);
}

/// Replaces the probabilities in `slice` by Bernoulli draws.
fn sample_slice<R: Rng + ?Sized>(slice: Option<&mut [Elem]>, rng: &mut R) {
    let slice = slice.expect("internal error: a fresh array is contiguous");
    let mut bytes = vec![0u8; 4 * slice.len()];
    sample_bernoulli(slice, &mut bytes, rng);
}

#[cfg(test)]
mod tests {
    use super::kernel::sample_bernoulli;
    use super::*;
    use crate::{ChaCha8Rng, SeedableRng, Tape, tensor};

    /// An RBM with `visible × hidden` weights drawn from N(0, std²) and biases from N(0, 0.5²).
    fn random_rbm(visible: usize, hidden: usize, std: f32, seed: u64) -> Rbm {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Rbm::from_parts(
            tensor::normal(&[hidden, visible], 0.0, std, &mut rng).unwrap(),
            tensor::normal(&[hidden], 0.0, 0.5, &mut rng).unwrap(),
            tensor::normal(&[visible], 0.0, 0.5, &mut rng).unwrap(),
        )
        .unwrap()
    }

    /// Every binary vector of length `n`, as rows.
    fn all_states(n: usize) -> Array2<Elem> {
        Array2::from_shape_fn((1 << n, n), |(s, i)| ((s >> i) & 1) as Elem)
    }

    #[test]
    fn free_energy_is_minus_log_sum_over_hidden_states_of_e_to_minus_the_energy() {
        let rbm = random_rbm(5, 3, 1.0, 1);
        let (w, b, c) = (
            rbm.weight().value().clone(),
            rbm.visible_bias().value().clone(),
            rbm.hidden_bias().value().clone(),
        );
        let vs = all_states(5);
        let hs = all_states(3);
        let f = rbm.free_energy(&vs.clone().into_dyn()).unwrap();
        for (s, v) in vs.rows().into_iter().enumerate() {
            // F(v) = −log Σ_h e^(−E(v, h)), E = −bᵀv − cᵀh − hᵀWv
            let z: f64 = hs
                .rows()
                .into_iter()
                .map(|h| {
                    let mut minus_e = 0.0f64;
                    for i in 0..5 {
                        minus_e += f64::from(b[i] * v[i]);
                    }
                    for j in 0..3 {
                        minus_e += f64::from(c[j] * h[j]);
                        for i in 0..5 {
                            minus_e += f64::from(h[j] * w[[j, i]] * v[i]);
                        }
                    }
                    minus_e.exp()
                })
                .sum();
            assert!(
                (f64::from(f[s]) + z.ln()).abs() < 1e-5,
                "state {s}: {} vs {}",
                f[s],
                -z.ln()
            );
        }
    }

    #[test]
    fn free_energy_gradient_matches_central_differences() {
        // the CD statistic is −∂F(data)/∂θ + ∂F(sample)/∂θ, so this checks its building block
        for (visible, hidden, rows) in [(4, 3, 5), (3, 2, 1)] {
            let rbm = random_rbm(visible, hidden, 0.8, 7);
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            // probabilities strictly inside (0, 1): the gradient holds for real-valued data too
            let v = tensor::uniform(&[rows, visible], 0.05, 0.95, &mut rng).unwrap();
            let g = rbm.free_energy_gradient(&v).unwrap();
            let mean_f = |r: &Rbm| -> f64 {
                let f = r.free_energy(&v).unwrap();
                f.iter().map(|&x| f64::from(x)).sum::<f64>() / rows as f64
            };
            let eps = 1e-2;
            for (name, analytic) in [
                ("weight", &g.weight),
                ("hidden_bias", &g.hidden_bias),
                ("visible_bias", &g.visible_bias),
            ] {
                for e in 0..analytic.len() {
                    let shifted = |delta: f32| {
                        let mut r = rbm.clone();
                        r.visit_params_mut(&mut |n, p| {
                            if n == name {
                                let mut value = p.value_mut();
                                let slot = value.iter_mut().nth(e).unwrap();
                                *slot += delta;
                            }
                        });
                        mean_f(&r)
                    };
                    let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * f64::from(eps));
                    let a = f64::from(analytic.iter().nth(e).copied().unwrap());
                    assert!(
                        (a - numeric).abs() <= 1e-2 * a.abs().max(numeric.abs()).max(1.0),
                        "{name}[{e}]: analytic {a}, numeric {numeric}"
                    );
                }
            }
        }
    }

    /// scikit-learn's `BernoulliRBM._fit`, written plainly with ndarray's `dot`.
    fn sklearn_fit(
        w: &mut Array2<Elem>,
        c: &mut Array1<Elem>,
        b: &mut Array1<Elem>,
        h_samples: &mut Array2<Elem>,
        v_pos: &Array2<Elem>,
        lr: Elem,
        rng: &mut ChaCha8Rng,
    ) {
        let sig = |x: Elem| 1.0 / (1.0 + (-x).exp());
        let mean_hiddens =
            |v: &Array2<Elem>, w: &Array2<Elem>, c: &Array1<Elem>| (v.dot(&w.t()) + c).mapv(sig);
        let mut bytes = vec![0u8; 4 * 1000];
        let h_pos = mean_hiddens(v_pos, w, c);
        let mut v_neg = (h_samples.dot(&*w) + &*b).mapv(sig);
        sample_bernoulli(v_neg.as_slice_mut().unwrap(), &mut bytes, rng);
        let h_neg = mean_hiddens(&v_neg, w, c);
        let lr = lr / v_pos.nrows() as Elem;
        let update = v_pos.t().dot(&h_pos).reversed_axes() - h_neg.t().dot(&v_neg);
        *w += &(update * lr);
        *c += &((h_pos.sum_axis(Axis(0)) - h_neg.sum_axis(Axis(0))) * lr);
        *b += &((v_pos.sum_axis(Axis(0)) - v_neg.sum_axis(Axis(0))) * lr);
        let mut next = h_neg.clone();
        sample_bernoulli(next.as_slice_mut().unwrap(), &mut bytes, rng);
        *h_samples = next;
    }

    #[test]
    fn persistent_cd_update_is_scikit_learns() {
        let (visible, hidden, batch) = (7, 5, 4);
        let mut rbm = random_rbm(visible, hidden, 0.5, 11);
        let (mut w, mut c, mut b) = (
            view2(rbm.weight().value()).to_owned(),
            rbm.hidden_bias()
                .value()
                .to_owned()
                .into_dimensionality()
                .unwrap(),
            rbm.visible_bias()
                .value()
                .to_owned()
                .into_dimensionality()
                .unwrap(),
        );
        let mut h_samples = Array2::zeros((batch, hidden));
        let config = RbmConfig {
            lr: 0.3,
            batch_size: batch,
            seed: 5,
            ..RbmConfig::default()
        };
        let mut trainer = RbmTrainer::new(&rbm, config).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut data_rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..3 {
            let mut v = tensor::uniform(&[batch, visible], 0.0, 1.0, &mut data_rng).unwrap();
            v.mapv_inplace(|x| if x < 0.5 { 0.0 } else { 1.0 });
            trainer.step(&mut rbm, &v).unwrap();
            let v2 = v.into_dimensionality().unwrap();
            sklearn_fit(&mut w, &mut c, &mut b, &mut h_samples, &v2, 0.3, &mut rng);
        }
        let close = |a: &crate::SharedTensor, b: ArrayView2<'_, Elem>| {
            a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < 1e-5)
        };
        assert!(close(rbm.weight().value(), w.view()));
        assert!(close(
            rbm.hidden_bias().value(),
            c.view().insert_axis(Axis(0))
        ));
        assert!(close(
            rbm.visible_bias().value(),
            b.view().insert_axis(Axis(0))
        ));
        // and training moved them
        assert!(rbm.visible_bias().value().iter().any(|&x| x.abs() > 0.6));
    }

    #[test]
    fn momentum_and_weight_cost_follow_the_guides_rule() {
        // one CD-1 update on a batch gives Δ₁ = ε(g₁ − λW₀); the second Δ₂ = mΔ₁ + ε(g₂ − λW₁).
        // With W = 0 and c, b large negative the samples are all zero, so g = v⁺h⁺ᵀ is known.
        let (visible, hidden) = (3, 2);
        let mut rbm = Rbm::from_parts(
            tensor::full(&[hidden, visible], 0.1),
            tensor::full(&[hidden], -40.0),
            tensor::full(&[visible], -40.0),
        )
        .unwrap();
        let config = RbmConfig {
            method: RbmMethod::ContrastiveDivergence { k: 1 },
            lr: 0.5,
            initial_momentum: 0.5,
            final_momentum: 0.9,
            momentum_switch_epochs: 1,
            weight_cost: 0.1,
            batch_size: 2,
            ..RbmConfig::default()
        };
        let mut trainer = RbmTrainer::new(&rbm, config).unwrap();
        let v = tensor::ones(&[2, visible]);
        // h⁺ = σ(0.3 − 40) ≈ 0, negative samples 0: g_W ≈ 0, so Δ₁ = −ε·λ·W₀ = −0.005
        trainer.step(&mut rbm, &v).unwrap();
        let w1 = rbm.weight().value()[[0, 0]];
        assert!((w1 - 0.095).abs() < 1e-6, "{w1}");
        // Δ₂ = 0.5·(−0.005) − 0.5·0.1·0.095 = −0.00725
        trainer.step(&mut rbm, &v).unwrap();
        let w2 = rbm.weight().value()[[0, 0]];
        assert!((w2 - (0.095 - 0.00725)).abs() < 1e-6, "{w2}");
        // the biases get no weight cost: their gradient (v⁺ − 0 for b) is 1 per row
        let b = rbm.visible_bias().value()[[0]];
        // Δb₁ = 0.5·1 = 0.5, Δb₂ = 0.5·0.5 + 0.5 = 0.75
        assert!((b - (-40.0 + 1.25)).abs() < 1e-4, "{b}");
    }

    #[test]
    fn the_module_forward_is_the_hidden_probabilities_with_stable_names() {
        let rbm = random_rbm(4, 3, 1.0, 2);
        let v = tensor::uniform(&[5, 4], 0.0, 1.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let tape = Tape::new();
        let y = rbm.forward(tape.constant(v.clone()), Mode::Eval).value();
        let h = rbm.hidden_probs(&v).unwrap();
        assert!(y.iter().zip(h.iter()).all(|(a, b)| (a - b).abs() < 1e-6));
        let mut names = Vec::new();
        rbm.visit_params(&mut |n, p| names.push((n.to_string(), p.role())));
        assert_eq!(
            names,
            [
                ("weight".to_string(), Role::Weight),
                ("hidden_bias".to_string(), Role::Bias),
                ("visible_bias".to_string(), Role::Bias)
            ]
        );
        assert_eq!(rbm.describe(), "Rbm(visible=4, hidden=3)");
        assert_eq!(rbm.output_shape(&[2, 4]).unwrap(), [2, 3]);
        assert_eq!(
            rbm.output_shape(&[2, 5]).unwrap_err().to_string(),
            "rbm: expected an input [.., 4], found [2, 5]"
        );
    }

    #[test]
    fn pseudo_log_likelihood_is_scikit_learns_formula_on_explicit_flips() {
        let rbm = random_rbm(6, 4, 1.0, 3);
        let mut data_rng = ChaCha8Rng::seed_from_u64(1);
        let v = tensor::uniform(&[20, 6], 0.0, 1.0, &mut data_rng)
            .unwrap()
            .mapv(|x| if x < 0.4 { 1.0 } else { 0.0 });
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pll = rbm.pseudo_log_likelihood(&v, &mut rng.clone()).unwrap();
        // the same indices, flipped explicitly, then V·log σ(F(v') − F(v)) in f64
        let flips: Vec<usize> = (0..20).map(|_| rng.random_range(0..6)).collect();
        let mut flipped = v.clone();
        for (r, &i) in flips.iter().enumerate() {
            flipped[[r, i]] = 1.0 - flipped[[r, i]];
        }
        let (f, f2) = (
            rbm.free_energy(&v).unwrap(),
            rbm.free_energy(&flipped).unwrap(),
        );
        for r in 0..20 {
            let d = f64::from(f2[r] - f[r]);
            let expected = 6.0 * (1.0 / (1.0 + (-d).exp())).ln();
            assert!(
                (f64::from(pll[r]) - expected).abs() < 1e-4,
                "row {r}: {} vs {expected}",
                pll[r]
            );
        }
    }

    #[test]
    fn bad_inputs_are_errors_that_name_what_was_expected_and_found() {
        let rbm = random_rbm(3, 2, 1.0, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = rbm.hidden_probs(&tensor::ones(&[2, 4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rbm::hidden_probs: expected visible values [n, 3] with n >= 1, found [2, 4]"
        );
        let mut nan = tensor::ones(&[2, 3]);
        nan[[1, 2]] = f32::NAN;
        let err = rbm.free_energy(&nan).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rbm::free_energy: visible values must be probabilities in [0, 1], found NaN at row 1, column 2"
        );
        let err = rbm.visible_probs(&tensor::full(&[1, 2], -0.5)).unwrap_err();
        assert!(
            err.to_string()
                .contains("hidden values must be probabilities")
        );
        assert!(rbm.hidden_probs(&tensor::ones(&[0, 3])).is_err());
        assert!(
            rbm.contrastive_divergence(&tensor::ones(&[1, 3]), 0, &mut rng)
                .unwrap_err()
                .to_string()
                .contains("k (Gibbs steps) must be at least 1, got 0")
        );
        let err = Rbm::from_parts(
            tensor::full(&[2, 3], f32::INFINITY),
            tensor::zeros(&[2]),
            tensor::zeros(&[3]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "rbm: weight must be finite, found inf");
        // each hyperparameter
        let cases: [(RbmConfig, &str); 7] = [
            (
                RbmConfig {
                    lr: f32::NAN,
                    ..RbmConfig::default()
                },
                "rbm: learning rate must be finite and > 0, got NaN",
            ),
            (
                RbmConfig {
                    lr: 0.0,
                    ..RbmConfig::default()
                },
                "rbm: learning rate must be finite and > 0, got 0",
            ),
            (
                RbmConfig {
                    initial_momentum: -0.1,
                    ..RbmConfig::default()
                },
                "rbm: initial_momentum must be in [0, 1), got -0.1",
            ),
            (
                RbmConfig {
                    weight_cost: -1.0,
                    ..RbmConfig::default()
                },
                "rbm: weight_cost must be finite and >= 0, got -1",
            ),
            (
                RbmConfig {
                    method: RbmMethod::PersistentCd { k: 0 },
                    ..RbmConfig::default()
                },
                "rbm: k (Gibbs steps per update) must be at least 1, got 0",
            ),
            (
                RbmConfig {
                    batch_size: 0,
                    ..RbmConfig::default()
                },
                "rbm: batch_size must be at least 1, got 0",
            ),
            (
                RbmConfig {
                    epochs: 0,
                    ..RbmConfig::default()
                },
                "rbm: epochs must be at least 1, got 0",
            ),
        ];
        for (config, message) in cases {
            let err = RbmTrainer::new(&rbm, config).err().unwrap();
            assert_eq!(err.to_string(), message);
        }
        // a trainer for another shape
        let mut other = random_rbm(4, 2, 1.0, 0);
        let mut trainer = RbmTrainer::new(&rbm, RbmConfig::default()).unwrap();
        let err = trainer
            .step(&mut other, &tensor::ones(&[1, 4]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rbm::step: expected an RBM with 3 visible and 2 hidden units (the trainer's), found 4 visible and 2 hidden"
        );
    }

    #[test]
    fn a_diverging_update_is_refused_and_changes_nothing() {
        let mut rbm = random_rbm(3, 2, 1.0, 0);
        // ε·λ overflows f32: the update −ε·λ·W is not finite
        let config = RbmConfig {
            lr: 1e30,
            weight_cost: 1e10,
            ..RbmConfig::default()
        };
        let mut trainer = RbmTrainer::new(&rbm, config).unwrap();
        let before = rbm.clone();
        let err = trainer.step(&mut rbm, &tensor::ones(&[2, 3])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Diverged {
                    op: "rbm",
                    step: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(rbm.weight().value(), before.weight().value());
        assert_eq!(rbm.hidden_bias().value(), before.hidden_bias().value());
        assert_eq!(rbm.visible_bias().value(), before.visible_bias().value());
        assert_eq!(trainer.updates(), 0);
    }
}
