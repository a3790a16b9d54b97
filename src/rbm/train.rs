//! Training an [`Rbm`] by contrastive divergence: the settings ([`RbmConfig`],
//! [`RbmMethod`]), the trainer that keeps the momentum buffers, the persistent chains and
//! the generator ([`RbmTrainer`]), and the per-epoch record ([`RbmEpoch`]).

use super::kernel::{affine_sigmoid, sample_bernoulli};
use super::{Rbm, check_units};
use crate::error::{Error, Result};
use crate::kernels::gemm::{gemm, view2};
use crate::kernels::simd::with_simd;
use crate::optim::Schedule;
use crate::tensor::{Elem, Tensor};
use ndarray::{Array1, Array2, ArrayView2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// How the negative (model) term of the gradient is sampled.
///
/// # Examples
/// ```
/// use tapegrad::{RbmConfig, RbmMethod};
/// let config = RbmConfig { method: RbmMethod::ContrastiveDivergence { k: 1 }, ..RbmConfig::default() };
/// assert_eq!(config.method.steps(), 1);
/// assert_eq!(RbmConfig::default().method, RbmMethod::PersistentCd { k: 1 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbmMethod {
    /// CD-k (Hinton 2002): a Gibbs chain of `k` steps started at each training row, fresh
    /// for every mini-batch.
    ContrastiveDivergence {
        /// Gibbs steps per update, at least 1.
        k: usize,
    },
    /// Persistent CD (Tieleman 2008; scikit-learn's "stochastic maximum likelihood"):
    /// `batch_size` chains that live across updates, each advanced `k` Gibbs steps per
    /// update from where the previous update left it. With `k = 1` this is scikit-learn's
    /// `BernoulliRBM._fit`: the chains keep binary hidden states (zeros at the start),
    /// `v⁻ ~ p(v | h_chain)`, `h⁻ = p(h | v⁻)`, and the chains move on to `h ~ p(h | v⁻)`.
    PersistentCd {
        /// Gibbs steps per update, at least 1.
        k: usize,
    },
}

impl RbmMethod {
    /// The Gibbs steps per update, `k`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::RbmMethod;
    /// assert_eq!(RbmMethod::PersistentCd { k: 3 }.steps(), 3);
    /// ```
    pub fn steps(&self) -> usize {
        match *self {
            RbmMethod::ContrastiveDivergence { k } | RbmMethod::PersistentCd { k } => k,
        }
    }
}

/// The settings of RBM training. The update of each parameter `θ` after a mini-batch of
/// `n` rows is Hinton's (2010, sections 9 and 10):
///
/// ```text
/// Δθ ← m·Δθ + ε·(⟨g⟩ − λ·θ)        (λ·θ for the weight only, not the biases)
/// θ  ← θ + Δθ
/// ```
///
/// where `⟨g⟩` is the CD statistic averaged over the batch (`⟨v·hᵀ⟩_data − ⟨v·hᵀ⟩_model`,
/// see [`Rbm::contrastive_divergence`]; for the persistent chains the model term is averaged
/// over the chains), `ε` the learning rate after `schedule` ([`Schedule::lr`] with the
/// update and epoch counters), `m` the momentum (`initial_momentum` for the first
/// `momentum_switch_epochs` epochs, then `final_momentum`) and `λ` the weight cost (an L2
/// penalty `λ/2·‖W‖²`).
///
/// With `momentum = 0`, `weight_cost = 0` and [`RbmMethod::PersistentCd`] `{ k: 1 }` this
/// is scikit-learn's `BernoulliRBM` update (`W += ε/n · (v⁺ᵀh⁺ − v⁻ᵀh⁻)`), and
/// [`RbmConfig::default`] is `BernoulliRBM()`'s defaults. (The one difference: for a batch
/// shorter than the chains, as the last batch of an epoch can be, scikit-learn divides the
/// chains' sum by the batch's length; here the model term is the chains' mean.)
///
/// # Examples
/// ```
/// use tapegrad::{RbmConfig, RbmMethod};
/// let sklearn = RbmConfig::default();
/// assert_eq!((sklearn.lr, sklearn.batch_size, sklearn.epochs), (0.1, 10, 10));
/// assert_eq!(sklearn.method, RbmMethod::PersistentCd { k: 1 });
/// let hinton = RbmConfig::practical_guide();
/// assert_eq!(hinton.momentum(0), 0.5);
/// assert_eq!(hinton.momentum(5), 0.9);
/// assert!(RbmConfig { lr: -1.0, ..RbmConfig::default() }.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RbmConfig {
    /// How the model term is sampled.
    pub method: RbmMethod,
    /// The base learning rate `ε`, finite and > 0.
    pub lr: Elem,
    /// The learning-rate schedule applied to `lr` (counted in updates or epochs).
    pub schedule: Schedule,
    /// Momentum for the first `momentum_switch_epochs` epochs, in `[0, 1)`.
    pub initial_momentum: Elem,
    /// Momentum afterwards, in `[0, 1)`.
    pub final_momentum: Elem,
    /// Epochs trained with `initial_momentum`.
    pub momentum_switch_epochs: usize,
    /// The weight cost `λ` (L2 on the weight, not on the biases), finite and >= 0.
    pub weight_cost: Elem,
    /// Rows per mini-batch (and the number of persistent chains), at least 1.
    pub batch_size: usize,
    /// Passes over the data for [`RbmTrainer::train`], at least 1.
    pub epochs: usize,
    /// Seeds the trainer's generator (shuffling and sampling).
    pub seed: u64,
}

impl Default for RbmConfig {
    /// scikit-learn's `BernoulliRBM()` defaults: persistent CD with one Gibbs step, learning
    /// rate 0.1, batches of 10, 10 epochs, no momentum, no weight cost.
    fn default() -> Self {
        RbmConfig {
            method: RbmMethod::PersistentCd { k: 1 },
            lr: 0.1,
            schedule: Schedule::default(),
            initial_momentum: 0.0,
            final_momentum: 0.0,
            momentum_switch_epochs: 0,
            weight_cost: 0.0,
            batch_size: 10,
            epochs: 10,
            seed: 0,
        }
    }
}

impl RbmConfig {
    /// The settings of Hinton & Salakhutdinov's (2006) `rbm.m`, the ones Hinton's guide
    /// (2010) discusses: CD-1, learning rate 0.1, momentum 0.5 for 5 epochs then 0.9, weight
    /// cost 2e-4, batches of 100, 10 epochs.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{RbmConfig, RbmMethod};
    /// let c = RbmConfig::practical_guide();
    /// assert_eq!(c.method, RbmMethod::ContrastiveDivergence { k: 1 });
    /// assert_eq!((c.weight_cost, c.batch_size), (2e-4, 100));
    /// ```
    pub fn practical_guide() -> Self {
        RbmConfig {
            method: RbmMethod::ContrastiveDivergence { k: 1 },
            lr: 0.1,
            schedule: Schedule::default(),
            initial_momentum: 0.5,
            final_momentum: 0.9,
            momentum_switch_epochs: 5,
            weight_cost: 2e-4,
            batch_size: 100,
            epochs: 10,
            seed: 0,
        }
    }

    /// The momentum during epoch `epoch` (counted from 0).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::RbmConfig;
    /// let c = RbmConfig { initial_momentum: 0.5, final_momentum: 0.9, momentum_switch_epochs: 2, ..RbmConfig::default() };
    /// assert_eq!([0, 1, 2, 3].map(|e| c.momentum(e)), [0.5, 0.5, 0.9, 0.9]);
    /// ```
    pub fn momentum(&self, epoch: usize) -> Elem {
        if epoch < self.momentum_switch_epochs {
            self.initial_momentum
        } else {
            self.final_momentum
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the setting, its allowed range and the value: a
    /// learning rate not finite or not > 0, a momentum outside `[0, 1)`, a weight cost not
    /// finite or negative, `k`, `batch_size` or `epochs` of 0.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{RbmConfig, RbmMethod};
    /// let bad = RbmConfig { method: RbmMethod::ContrastiveDivergence { k: 0 }, ..RbmConfig::default() };
    /// assert_eq!(
    ///     bad.validate().unwrap_err().to_string(),
    ///     "rbm: k (Gibbs steps per update) must be at least 1, got 0"
    /// );
    /// let bad = RbmConfig { final_momentum: 1.0, ..RbmConfig::default() };
    /// assert_eq!(
    ///     bad.validate().unwrap_err().to_string(),
    ///     "rbm: final_momentum must be in [0, 1), got 1"
    /// );
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidArgument { op: "rbm", message });
        if self.method.steps() == 0 {
            return bad("k (Gibbs steps per update) must be at least 1, got 0".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be finite and > 0, got {}",
                self.lr
            ));
        }
        for (name, m) in [
            ("initial_momentum", self.initial_momentum),
            ("final_momentum", self.final_momentum),
        ] {
            if !(0.0..1.0).contains(&m) {
                return bad(format!("{name} must be in [0, 1), got {m}"));
            }
        }
        if !(self.weight_cost.is_finite() && self.weight_cost >= 0.0) {
            return bad(format!(
                "weight_cost must be finite and >= 0, got {}",
                self.weight_cost
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1, got 0".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1, got 0".into());
        }
        Ok(())
    }
}

/// What one epoch of [`RbmTrainer::epoch`] did.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, ChaCha8Rng, Rbm, RbmConfig, RbmTrainer, SeedableRng};
/// let mut rbm = Rbm::new(4, 2, &mut ChaCha8Rng::seed_from_u64(0))?;
/// let mut trainer = RbmTrainer::new(&rbm, RbmConfig { batch_size: 3, ..RbmConfig::default() })?;
/// let record = trainer.epoch(&mut rbm, &tensor::ones(&[7, 4]))?;
/// assert_eq!((record.epoch, record.updates), (1, 3)); // batches of 3, 3 and 1
/// assert_eq!(record.lr, 0.1);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RbmEpoch {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Updates (mini-batches) in the epoch.
    pub updates: usize,
    /// The learning rate of the epoch's last update.
    pub lr: Elem,
    /// The momentum of the epoch.
    pub momentum: Elem,
    /// Wall time of the epoch, in seconds.
    pub seconds: f64,
}

/// The buffers of one update, sized once for the largest batch so that an update allocates
/// nothing: rows `0..n` of `visible`/`hidden` hold the batch and its hidden probabilities,
/// rows `n..n + m` the `m` chains' visible samples and (scaled) hidden probabilities, so
/// that one product `hiddenᵀ·visible` gives the whole weight statistic.
pub(crate) struct Workspace {
    visible: Array2<Elem>,
    hidden: Array2<Elem>,
    /// Hidden samples that start the Gibbs steps (CD) or the persistent chains' states (PCD).
    chain: Array2<Elem>,
    bytes: Vec<u8>,
    /// `Σ v⁺h⁺ᵀ − (n/m)·Σ v⁻h⁻ᵀ`, `[hidden, visible]`; then reused for the new velocity.
    pub(crate) weight_stat: Array2<Elem>,
    pub(crate) hidden_stat: Array1<Elem>,
    pub(crate) visible_stat: Array1<Elem>,
}

impl Workspace {
    /// Buffers for batches of up to `rows` rows and `chains` persistent chains.
    pub(crate) fn new(rows: usize, chains: usize, visible: usize, hidden: usize) -> Self {
        let all = rows + chains;
        Workspace {
            visible: Array2::zeros((all, visible)),
            hidden: Array2::zeros((all, hidden)),
            chain: Array2::zeros((chains.max(rows), hidden)),
            bytes: vec![0; 4 * chains.max(rows) * visible.max(hidden)],
            weight_stat: Array2::zeros((hidden, visible)),
            hidden_stat: Array1::zeros(hidden),
            visible_stat: Array1::zeros(visible),
        }
    }

    /// Copies rows `rows` of `data` (checked) into the batch's place, in order.
    pub(crate) fn load_rows(
        &mut self,
        data: ArrayView2<'_, Elem>,
        rows: impl IntoIterator<Item = usize>,
    ) {
        for (dst, src) in self.visible.rows_mut().into_iter().zip(rows) {
            let dst = dst
                .into_slice()
                .expect("internal error: rows are contiguous");
            match data.row(src).as_slice() {
                Some(row) => dst.copy_from_slice(row),
                None => dst.iter_mut().zip(data.row(src)).for_each(|(d, &s)| *d = s),
            }
        }
    }

    /// Fills the statistics for the `n` rows loaded with [`Workspace::load_rows`]: the
    /// positive phase, `k` Gibbs steps of `method` (on `chains` for PCD, which it advances),
    /// and the sums. Afterwards `hidden_stat` and `visible_stat` hold the CD statistic
    /// summed over the batch (the model term scaled to `n` rows), and the weight statistic
    /// is one product away ([`Workspace::weight_statistic`]); returns the number of model
    /// rows `m` that product needs.
    pub(crate) fn statistics<R: Rng + ?Sized>(
        &mut self,
        rbm: &Rbm,
        n: usize,
        method: RbmMethod,
        persistent: Option<usize>,
        rng: &mut R,
    ) -> usize {
        let w = view2(rbm.weight.value());
        let c = rbm.hidden_bias.value();
        let c = c.as_slice().expect("internal error: a bias is contiguous");
        let b = rbm.visible_bias.value();
        let b = b.as_slice().expect("internal error: a bias is contiguous");
        let k = method.steps();
        let m = match (method, persistent) {
            (RbmMethod::PersistentCd { .. }, Some(m)) => {
                // the chains first: the data's hidden probabilities do not feed them, so
                // the positive and the negative phase then share one product
                for step in 0..k {
                    let h_chain = self.chain.slice(s![..m, ..]);
                    let mut v_neg = self.visible.slice_mut(s![n..n + m, ..]);
                    affine_sigmoid(h_chain, w, b, v_neg.view_mut());
                    sample(v_neg, &mut self.bytes, rng);
                    if step + 1 < k {
                        let v_neg = self.visible.slice(s![n..n + m, ..]);
                        let mut h_chain = self.chain.slice_mut(s![..m, ..]);
                        affine_sigmoid(v_neg, w.t(), c, h_chain.view_mut());
                        sample(h_chain, &mut self.bytes, rng);
                    }
                }
                // h⁺ = p(h | v⁺) and h⁻ = p(h | v⁻) in one product
                let (v, h) = (
                    self.visible.slice(s![..n + m, ..]),
                    self.hidden.slice_mut(s![..n + m, ..]),
                );
                affine_sigmoid(v, w.t(), c, h);
                // the chains persist: they move on to h ~ p(h | v⁻)
                self.chain
                    .slice_mut(s![..m, ..])
                    .assign(&self.hidden.slice(s![n..n + m, ..]));
                sample(self.chain.slice_mut(s![..m, ..]), &mut self.bytes, rng);
                m
            }
            _ => {
                // positive phase: h⁺ = p(h | v⁺); the chains start at h ~ p(h | v⁺)
                let (v, h) = (
                    self.visible.slice(s![..n, ..]),
                    self.hidden.slice_mut(s![..n, ..]),
                );
                affine_sigmoid(v, w.t(), c, h);
                self.chain
                    .slice_mut(s![..n, ..])
                    .assign(&self.hidden.slice(s![..n, ..]));
                sample(self.chain.slice_mut(s![..n, ..]), &mut self.bytes, rng);
                for step in 0..k {
                    let h_chain = self.chain.slice(s![..n, ..]);
                    let mut v_neg = self.visible.slice_mut(s![n..2 * n, ..]);
                    affine_sigmoid(h_chain, w, b, v_neg.view_mut());
                    sample(v_neg, &mut self.bytes, rng);
                    let v_neg = self.visible.slice(s![n..2 * n, ..]);
                    let h_neg = self.hidden.slice_mut(s![n..2 * n, ..]);
                    affine_sigmoid(v_neg, w.t(), c, h_neg);
                    if step + 1 < k {
                        self.chain
                            .slice_mut(s![..n, ..])
                            .assign(&self.hidden.slice(s![n..2 * n, ..]));
                        sample(self.chain.slice_mut(s![..n, ..]), &mut self.bytes, rng);
                    }
                }
                n
            }
        };
        // sums: Σ⁺ − (n/m)·Σ⁻; the model rows of `hidden` are scaled by −n/m, so that one
        // product gives the weight statistic
        let ratio = n as Elem / m as Elem;
        self.visible_stat.fill(0.0);
        add_rows(self.visible.slice(s![..n, ..]), 1.0, &mut self.visible_stat);
        add_rows(
            self.visible.slice(s![n..n + m, ..]),
            -ratio,
            &mut self.visible_stat,
        );
        self.hidden
            .slice_mut(s![n..n + m, ..])
            .mapv_inplace(|x| -ratio * x);
        self.hidden_stat.fill(0.0);
        add_rows(
            self.hidden.slice(s![..n + m, ..]),
            1.0,
            &mut self.hidden_stat,
        );
        m
    }

    /// `dst = alpha·dst + beta·S` for the weight statistic `S` of the last
    /// [`Workspace::statistics`] (which returned `m`) over `n` data rows: one product of
    /// the hidden and visible rows, the model rows of `hidden` already scaled by `−n/m`.
    pub(crate) fn weight_statistic(
        &self,
        n: usize,
        m: usize,
        dst: ndarray::ArrayViewMut2<'_, Elem>,
        alpha: Elem,
        beta: Elem,
    ) {
        // the rows after n + m may hold an earlier, longer batch: leave them out
        let (h, v) = (
            self.hidden.slice(s![..n + m, ..]),
            self.visible.slice(s![..n + m, ..]),
        );
        gemm(h.t(), v, dst, alpha, beta);
    }

    /// [`Workspace::weight_statistic`] into `weight_stat`.
    pub(crate) fn fill_weight_stat(&mut self, n: usize, m: usize) {
        let mut stat = std::mem::take(&mut self.weight_stat);
        self.weight_statistic(n, m, stat.view_mut(), 0.0, 1.0);
        self.weight_stat = stat;
    }
}

/// `out += weight · Σ_rows x` (rows contiguous).
fn add_rows(x: ArrayView2<'_, Elem>, weight: Elem, out: &mut Array1<Elem>) {
    let out = out
        .as_slice_mut()
        .expect("internal error: statistics are contiguous");
    for row in x.rows() {
        let row = row.as_slice().expect("internal error: rows are contiguous");
        out.iter_mut().zip(row).for_each(|(o, &r)| *o += weight * r);
    }
}

/// Replaces the probabilities of `x` (contiguous rows) by Bernoulli draws.
fn sample<R: Rng + ?Sized>(mut x: ndarray::ArrayViewMut2<'_, Elem>, bytes: &mut [u8], rng: &mut R) {
    let slice = x
        .as_slice_mut()
        .expect("internal error: a leading block of rows is contiguous");
    sample_bernoulli(slice, bytes, rng);
}

/// Trains an [`Rbm`] by CD-k or persistent CD ([`RbmConfig`]): it keeps the momentum
/// buffers, the persistent chains, the update and epoch counters and a seeded
/// [`ChaCha8Rng`] for shuffling and sampling, and reuses its buffers (sized once for
/// `batch_size`), so an update allocates nothing of its own (the gemm kernel's packing
/// buffers aside). The same seed and the same thread count give the same numbers.
///
/// The gradient is the closed-form CD statistic (no tape): per mini-batch, four matrix
/// products for `k = 1` (`p(h | v⁺)`, `p(v | h)`, `p(h | v⁻)` and the statistic), each
/// followed by a fused bias-and-sigmoid pass or a Bernoulli sampling pass.
///
/// # Examples
/// Learn two patterns; the reconstruction error falls.
/// ```
/// use tapegrad::{tensor, ChaCha8Rng, Rbm, RbmConfig, RbmTrainer, SeedableRng};
/// let rows = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]];
/// let data: Vec<f32> = (0..40).flat_map(|i| rows[i % 2]).collect();
/// let data = tensor::from_vec(data, &[40, 6])?;
/// let mut rbm = Rbm::new(6, 4, &mut ChaCha8Rng::seed_from_u64(0))?;
/// let before = rbm.reconstruction_error(&data)?;
/// let config = RbmConfig { lr: 0.5, epochs: 50, ..RbmConfig::practical_guide() };
/// let mut trainer = RbmTrainer::new(&rbm, RbmConfig { batch_size: 10, ..config })?;
/// let history = trainer.train(&mut rbm, &data, &mut |_| {})?;
/// assert_eq!(history.len(), 50);
/// assert!(rbm.reconstruction_error(&data)? < 0.2 * before);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub struct RbmTrainer {
    config: RbmConfig,
    visible: usize,
    hidden: usize,
    rng: ChaCha8Rng,
    work: Workspace,
    /// Momentum buffers `Δθ`.
    weight_velocity: Array2<Elem>,
    hidden_velocity: Array1<Elem>,
    visible_velocity: Array1<Elem>,
    updates: u64,
    epochs: u64,
    order: Vec<usize>,
}

impl RbmTrainer {
    /// A trainer for `rbm`'s shape with settings `config`, at update 0 with zero momentum
    /// buffers, persistent chains at zero hidden states (as scikit-learn starts them) and a
    /// generator seeded from `config.seed`.
    ///
    /// # Errors
    /// As [`RbmConfig::validate`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm, RbmConfig, RbmTrainer};
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// assert!(RbmTrainer::new(&rbm, RbmConfig::default()).is_ok());
    /// let err = RbmTrainer::new(&rbm, RbmConfig { batch_size: 0, ..RbmConfig::default() }).err().unwrap();
    /// assert_eq!(err.to_string(), "rbm: batch_size must be at least 1, got 0");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(rbm: &Rbm, config: RbmConfig) -> Result<Self> {
        config.validate()?;
        let (visible, hidden) = (rbm.num_visible(), rbm.num_hidden());
        let batch = config.batch_size;
        Ok(RbmTrainer {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            work: Workspace::new(batch, batch, visible, hidden),
            weight_velocity: Array2::zeros((hidden, visible)),
            hidden_velocity: Array1::zeros(hidden),
            visible_velocity: Array1::zeros(visible),
            updates: 0,
            epochs: 0,
            order: Vec::new(),
            config,
            visible,
            hidden,
        })
    }

    /// The settings.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm, RbmConfig, RbmTrainer};
    /// let rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// let trainer = RbmTrainer::new(&rbm, RbmConfig::default())?;
    /// assert_eq!(trainer.config().batch_size, 10);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn config(&self) -> &RbmConfig {
        &self.config
    }

    /// Updates done so far.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm, RbmConfig, RbmTrainer};
    /// let mut rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// let mut trainer = RbmTrainer::new(&rbm, RbmConfig::default())?;
    /// trainer.step(&mut rbm, &tensor::ones(&[4, 3]))?;
    /// assert_eq!(trainer.updates(), 1);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Epochs completed so far by [`RbmTrainer::epoch`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm, RbmConfig, RbmTrainer};
    /// let mut rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// let mut trainer = RbmTrainer::new(&rbm, RbmConfig::default())?;
    /// trainer.epoch(&mut rbm, &tensor::ones(&[4, 3]))?;
    /// assert_eq!(trainer.epochs(), 1);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// One update on the mini-batch `batch` (`[n, visible]`, `1 <= n <= batch_size`, values
    /// in `[0, 1]`), in the given row order.
    ///
    /// # Errors
    /// [`Error::Shape`] when `rbm` is not the shape the trainer was made for, or `batch` is
    /// not `[n, visible]` with `1 <= n <= batch_size`; [`Error::InvalidArgument`] for a value
    /// outside `[0, 1]` or not finite; [`Error::Diverged`] when the update would make a
    /// parameter infinite or NaN (then nothing changed).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Rbm, RbmConfig, RbmTrainer};
    /// let mut rbm = Rbm::from_parts(tensor::zeros(&[2, 3]), tensor::zeros(&[2]), tensor::zeros(&[3]))?;
    /// let mut trainer = RbmTrainer::new(&rbm, RbmConfig::default())?;
    /// trainer.step(&mut rbm, &tensor::ones(&[4, 3]))?;
    /// // the visible bias moves towards the data: ε·(1 − mean of the chains' samples) >= 0
    /// assert!(rbm.visible_bias().value().iter().all(|&b| b >= 0.0));
    /// assert!(trainer.step(&mut rbm, &tensor::ones(&[11, 3])).is_err()); // > batch_size
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn step(&mut self, rbm: &mut Rbm, batch: &Tensor) -> Result<()> {
        self.check_model(rbm)?;
        let shape = batch.shape();
        if shape.len() != 2 || shape[0] > self.config.batch_size {
            return Err(Error::Shape {
                op: "rbm::step",
                expected: format!(
                    "a batch [n, {}] with 1 <= n <= batch_size {}",
                    self.visible, self.config.batch_size
                ),
                found: format!("{shape:?}"),
            });
        }
        let batch = check_units("rbm::step", "visible", batch, self.visible)?;
        let n = batch.nrows();
        self.work.load_rows(batch, 0..n);
        self.update(rbm, n)
    }

    /// One epoch: the rows of `data` (`[rows, visible]`, values in `[0, 1]`) in a shuffled
    /// order drawn from the trainer's generator, in mini-batches of `batch_size` (the last one
    /// shorter when `batch_size` does not divide the rows).
    ///
    /// # Errors
    /// As [`RbmTrainer::step`] (data checked once, before the first update).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, RbmConfig, RbmTrainer, SeedableRng};
    /// let data = tensor::from_vec((0..24).map(|i| (i % 2) as f32).collect(), &[4, 6])?;
    /// let mut rbm = Rbm::new(6, 3, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let config = RbmConfig { batch_size: 3, ..RbmConfig::default() };
    /// let mut trainer = RbmTrainer::new(&rbm, config)?;
    /// let record = trainer.epoch(&mut rbm, &data)?;
    /// assert_eq!((record.epoch, record.updates), (1, 2)); // 4 rows: batches of 3 and 1
    /// assert!(trainer.epoch(&mut rbm, &tensor::full(&[4, 6], 2.0)).is_err()); // not in [0, 1]
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn epoch(&mut self, rbm: &mut Rbm, data: &Tensor) -> Result<RbmEpoch> {
        self.check_model(rbm)?;
        let data = check_units("rbm::epoch", "visible", data, self.visible)?;
        crate::in_pool(|| self.epoch_here(rbm, data))
    }

    /// [`RbmTrainer::epoch`] on checked data, on the calling thread.
    fn epoch_here(&mut self, rbm: &mut Rbm, data: ArrayView2<'_, Elem>) -> Result<RbmEpoch> {
        let start = Instant::now();
        let rows = data.nrows();
        self.order.clear();
        self.order.extend(0..rows);
        shuffle(&mut self.order, &mut self.rng);
        let batch = self.config.batch_size;
        let order = std::mem::take(&mut self.order);
        let mut updates = 0;
        let mut result = Ok(());
        for chunk in order.chunks(batch) {
            self.work.load_rows(data, chunk.iter().copied());
            result = self.update(rbm, chunk.len());
            if result.is_err() {
                break;
            }
            updates += 1;
        }
        self.order = order;
        result?;
        let momentum = self.config.momentum(self.epochs as usize);
        let lr =
            (self.config.schedule).lr(self.config.lr, self.updates.saturating_sub(1), self.epochs);
        self.epochs += 1;
        Ok(RbmEpoch {
            epoch: self.epochs as usize,
            updates,
            lr,
            momentum,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// [`RbmConfig::epochs`] epochs of [`RbmTrainer::epoch`], calling `on_epoch` after each;
    /// returns the records.
    ///
    /// # Errors
    /// As [`RbmTrainer::epoch`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, ChaCha8Rng, Rbm, RbmConfig, RbmTrainer, SeedableRng};
    /// let data = tensor::from_vec((0..24).map(|i| (i % 2) as f32).collect(), &[4, 6])?;
    /// let mut rbm = Rbm::new(6, 3, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// let config = RbmConfig { batch_size: 2, epochs: 3, ..RbmConfig::default() };
    /// let mut trainer = RbmTrainer::new(&rbm, config)?;
    /// let mut seen = Vec::new();
    /// let history = trainer.train(&mut rbm, &data, &mut |e| seen.push(e.epoch))?;
    /// assert_eq!(seen, [1, 2, 3]);
    /// assert_eq!(history.iter().map(|e| e.updates).sum::<usize>(), 6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn train(
        &mut self,
        rbm: &mut Rbm,
        data: &Tensor,
        on_epoch: &mut dyn FnMut(&RbmEpoch),
    ) -> Result<Vec<RbmEpoch>> {
        let mut history = Vec::with_capacity(self.config.epochs);
        for _ in 0..self.config.epochs {
            let record = self.epoch(rbm, data)?;
            on_epoch(&record);
            history.push(record);
        }
        Ok(history)
    }

    /// An error unless `rbm` has the shape the trainer was made for.
    fn check_model(&self, rbm: &Rbm) -> Result<()> {
        if (rbm.num_visible(), rbm.num_hidden()) != (self.visible, self.hidden) {
            return Err(Error::Shape {
                op: "rbm::step",
                expected: format!(
                    "an RBM with {} visible and {} hidden units (the trainer's)",
                    self.visible, self.hidden
                ),
                found: format!(
                    "{} visible and {} hidden",
                    rbm.num_visible(),
                    rbm.num_hidden()
                ),
            });
        }
        Ok(())
    }

    /// The update for the `n` rows loaded into the workspace.
    ///
    /// Without momentum and weight cost (scikit-learn's update), the velocity is the
    /// scaled statistic itself, so the weights take it straight from its product
    /// (`W ← W + ε/n·S`, one pass over `W` instead of three). That cannot make a finite `W`
    /// infinite: every element of `S` is at most `2n` in size (hidden and visible values
    /// lie in `[0, 1]`, the model rows are scaled by `n/m`), so the step is at most `2|ε|`,
    /// less than half a unit in the last place of the largest float while `2|ε| < 2¹⁰³`
    /// (larger rates take the checked path).
    fn update(&mut self, rbm: &mut Rbm, n: usize) -> Result<()> {
        let persistent = match self.config.method {
            RbmMethod::PersistentCd { .. } => Some(self.config.batch_size),
            RbmMethod::ContrastiveDivergence { .. } => None,
        };
        let m = self
            .work
            .statistics(rbm, n, self.config.method, persistent, &mut self.rng);
        let lr = self
            .config
            .schedule
            .lr(self.config.lr, self.updates, self.epochs);
        let momentum = self.config.momentum(self.epochs as usize);
        let scale = lr / n as Elem;
        let decay = lr * self.config.weight_cost;
        let config = &self.config;
        let plain = config.initial_momentum == 0.0
            && config.final_momentum == 0.0
            && config.weight_cost == 0.0
            && 2.0 * lr.abs() < (2.0 as Elem).powi(103);
        if !plain {
            self.work.fill_weight_stat(n, m);
        }
        // new velocities go into the statistics' buffers; the parameters change only when
        // all of them stay finite
        let mut finite = true;
        {
            let w = view2(rbm.weight.value());
            if !plain {
                finite &= new_velocity(
                    self.work.weight_stat.as_slice_mut(),
                    self.weight_velocity.as_slice(),
                    w.as_slice(),
                    momentum,
                    scale,
                    decay,
                );
            }
            let c = rbm.hidden_bias.value();
            finite &= new_velocity(
                self.work.hidden_stat.as_slice_mut(),
                self.hidden_velocity.as_slice(),
                c.as_slice(),
                momentum,
                scale,
                0.0,
            );
            let b = rbm.visible_bias.value();
            finite &= new_velocity(
                self.work.visible_stat.as_slice_mut(),
                self.visible_velocity.as_slice(),
                b.as_slice(),
                momentum,
                scale,
                0.0,
            );
        }
        if !finite {
            return Err(Error::Diverged {
                op: "rbm",
                step: self.updates,
                what: format!(
                    "the update makes a parameter infinite or NaN (learning rate {lr}, \
                     weight cost {}); lower them",
                    self.config.weight_cost
                ),
            });
        }
        std::mem::swap(&mut self.work.hidden_stat, &mut self.hidden_velocity);
        std::mem::swap(&mut self.work.visible_stat, &mut self.visible_velocity);
        if plain {
            let weight = rbm.weight.value_mut();
            let weight = weight
                .into_dimensionality::<ndarray::Ix2>()
                .expect("internal error: the weight is 2-D");
            self.work.weight_statistic(n, m, weight, 1.0, scale);
        } else {
            std::mem::swap(&mut self.work.weight_stat, &mut self.weight_velocity);
            add(rbm.weight.value_mut(), self.weight_velocity.as_slice());
        }
        add(rbm.hidden_bias.value_mut(), self.hidden_velocity.as_slice());
        add(
            rbm.visible_bias.value_mut(),
            self.visible_velocity.as_slice(),
        );
        self.updates += 1;
        Ok(())
    }
}

/// `stat ← m·velocity + scale·stat − decay·θ` (the new velocity, in place of the
/// statistic); whether `θ + new velocity` is finite everywhere.
fn new_velocity(
    stat: Option<&mut [Elem]>,
    velocity: Option<&[Elem]>,
    theta: Option<&[Elem]>,
    momentum: Elem,
    scale: Elem,
    decay: Elem,
) -> bool {
    let (stat, velocity, theta) = (
        stat.expect("internal error: statistics are contiguous"),
        velocity.expect("internal error: velocities are contiguous"),
        theta.expect("internal error: parameters are contiguous"),
    );
    with_simd(
        #[inline(always)]
        || {
            let mut finite = true;
            for ((s, &v), &t) in stat.iter_mut().zip(velocity).zip(theta) {
                *s = momentum * v + scale * *s - decay * t;
                finite &= (t + *s).is_finite();
            }
            finite
        },
    )
}

/// `θ += Δθ`.
fn add(mut theta: ndarray::ArrayViewMutD<'_, Elem>, delta: Option<&[Elem]>) {
    let delta = delta.expect("internal error: velocities are contiguous");
    let theta = theta
        .as_slice_mut()
        .expect("internal error: parameters are contiguous");
    with_simd(
        #[inline(always)]
        || theta.iter_mut().zip(delta).for_each(|(t, &d)| *t += d),
    );
}

/// Fisher–Yates with draws from `rng`.
fn shuffle<R: Rng + ?Sized>(order: &mut [usize], rng: &mut R) {
    use rand::RngExt;
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
}
