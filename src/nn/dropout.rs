//! Inverted dropout (Srivastava et al. 2014): [`Dropout`].

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::SampleRng;
use crate::nn::module::{Mode, Module};
use crate::tensor::Elem;
use rand::Rng;

/// Dropout (Srivastava et al. 2014, <https://jmlr.org/papers/v15/srivastava14a.html>), in
/// PyTorch's inverted form: `p` is the probability of **dropping** a unit.
///
/// - [`Mode::Train`]: `y = x ⊙ m / (1 − p)` with `m_i ~ Bernoulli(1 − p)` drawn fresh on
///   every call, so `E[y] = x` and nothing needs rescaling at test time. Backward:
///   `∂L/∂x = G ⊙ m / (1 − p)`.
/// - [`Mode::Eval`]: the identity, `y = x`.
///
/// The layer keeps its own [`SampleRng`], seeded from the generator passed to
/// [`Dropout::new`], so `forward` takes `&self` and a run with the same seed drops the same
/// units. Each sample (row of axis 0) draws its mask from a stream of its own, so a
/// data-parallel [`TrainStep`](crate::TrainStep) drops the same units whatever the number of
/// shards. [`Module::visit_rngs`] shows the generator as `"rng"`, so checkpoints save where
/// it stands and a resumed run drops the same units as an uninterrupted one.
///
/// # Shapes
/// Any shape; the output has the input's shape.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, ChaCha8Rng, Dropout, Mode, Module, SeedableRng, Tape};
/// let dropout = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(0))?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::ones(&[4, 250]));
/// let y = dropout.forward(x, Mode::Train).value();
/// // every unit is either dropped or scaled by 1/(1 − 0.5) = 2
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert!((y.mean().unwrap() - 1.0).abs() < 0.1);
/// assert_eq!(dropout.forward(x, Mode::Eval).value(), x.value());
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: Elem,
    rng: SampleRng,
}

impl Dropout {
    /// A dropout layer with drop probability `p`, its mask generator seeded from `rng`. As
    /// in PyTorch, `p = 1` drops every unit in training (the output is zero, and so is the
    /// gradient); evaluation passes the input through whatever `p`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 <= p <= 1`:
    /// `dropout: p must be in [0, 1], got 1.5`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dropout, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// assert_eq!(Dropout::new(0.2, &mut rng)?.p(), 0.2);
    /// let err = Dropout::new(1.5, &mut rng).unwrap_err();
    /// assert_eq!(err.to_string(), "dropout: p must be in [0, 1], got 1.5");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(p: Elem, rng: &mut R) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "dropout",
                message: format!("p must be in [0, 1], got {p}"),
            });
        }
        Ok(Dropout {
            p,
            rng: SampleRng::new(rng),
        })
    }

    /// The drop probability.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Dropout, SeedableRng};
    /// let dropout = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(dropout.p(), 0.5);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn p(&self) -> Elem {
        self.p
    }
}

impl Module for Dropout {
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        if mode == Mode::Eval || self.p == 0.0 {
            return x;
        }
        // (infinite at p = 1, where no unit is kept)
        let scale = 1.0 / (1.0 - self.p);
        // keep a unit when a uniform u32 falls below (1 − p)·2³²
        let threshold = ((1.0 - f64::from(self.p)) * 4_294_967_296.0) as u64;
        let tape = x.tape();
        let shape = x.shape();
        let rows = shape.first().copied().unwrap_or(1);
        let per_row = shape.iter().skip(1).product::<usize>();
        let streams = self.rng.for_batch(tape);
        let mask = tape.collect(
            &shape,
            (0..rows).flat_map(|row| {
                let mut rng = streams.sample(row);
                (0..per_row).map(move |_| match u64::from(rng.next_u32()) < threshold {
                    true => scale,
                    false => 0.0,
                })
            }),
        );
        x * tape.constant(mask)
    }

    crate::walk!(rng);

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        crate::nn::shape::same_shape(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{ChaCha8Rng, SeedableRng, Tape, gradcheck, tensor};

    #[test]
    fn train_preserves_the_expected_mean_and_drops_about_p() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = random(&[200, 100], 2).mapv(|v| v + 3.0); // mean about 3
        for p in [0.2, 0.5, 0.8] {
            let dropout = Dropout::new(p, &mut rng).unwrap();
            let tape = Tape::new();
            let y = dropout
                .forward(tape.constant(x.clone()), Mode::Train)
                .value();
            let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / y.len() as f32;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
            let kept_ok = y
                .iter()
                .zip(&x)
                .all(|(&y, &x)| y == 0.0 || (y - x / (1.0 - p)).abs() < 1e-5);
            assert!(kept_ok);
            // E[y] = x: the means agree within a few standard errors
            let (mx, my) = (x.mean().unwrap(), y.mean().unwrap());
            assert!((my - mx).abs() < 0.03 * mx, "p {p}: {my} vs {mx}");
        }
    }

    #[test]
    fn p_one_drops_every_unit_in_training_only() {
        // as torch.nn.Dropout(p=1.0): zeros and a zero gradient in training, the input in eval
        let dropout = Dropout::new(1.0, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(random(&[4, 5], 3));
        let y = dropout.forward(x, Mode::Train);
        assert_eq!(y.value(), tensor::zeros(&[4, 5]));
        let g = y.sum().backward();
        assert_eq!(g.get(x).unwrap(), tensor::zeros(&[4, 5]));
        assert_eq!(dropout.forward(x, Mode::Eval).value(), x.value());
    }

    #[test]
    fn eval_is_the_identity_and_p_zero_too() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = random(&[3, 4], 1);
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let dropout = Dropout::new(0.7, &mut rng).unwrap();
        assert_eq!(dropout.forward(v, Mode::Eval).value(), x);
        let none = Dropout::new(0.0, &mut rng).unwrap();
        assert_eq!(none.forward(v, Mode::Train).value(), x);
    }

    #[test]
    fn same_seed_same_masks_and_fresh_masks_each_call() {
        let make = || Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        let (a, b) = (make(), make());
        let tape = Tape::new();
        let x = tape.constant(tensor::ones(&[8, 8]));
        let a1 = a.forward(x, Mode::Train).value();
        assert_eq!(a1, b.forward(x, Mode::Train).value());
        assert_ne!(a1, a.forward(x, Mode::Train).value());
    }

    #[test]
    fn gradient_is_the_scaled_mask() {
        let dropout = Dropout::new(0.25, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(random(&[5, 6], 4));
        let y = dropout.forward(x, Mode::Train);
        // y = x ⊙ m/(1-p), so ∂Σy/∂x = m/(1-p) = y/x
        let mask = y.value() / x.value();
        let g = y.sum().backward();
        let close = g
            .get(x)
            .unwrap()
            .iter()
            .zip(&mask)
            .all(|(g, m)| (g - m).abs() < 1e-5);
        assert!(close);
    }

    #[test]
    fn gradcheck_dropout() {
        // Each call draws a new mask, so check a function of x through a fixed mask: the
        // layer's forward with a fresh copy of the same-seeded layer on every evaluation.
        for shape in [[3, 4], [1, 5]] {
            let x = random(&shape, 5);
            gradcheck(
                |v| {
                    let dropout = Dropout::new(0.4, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
                    dropout.forward(v[0], Mode::Train)
                },
                &[x],
            )
            .unwrap();
        }
    }

    #[test]
    fn the_generator_is_visible_for_checkpoints() {
        let mut a = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let b = Dropout::new(0.5, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        let tape = Tape::new();
        let x = tape.constant(tensor::ones(&[4, 8]));
        b.forward(x, Mode::Train); // b's generator moves on
        let mut saved = None;
        b.visit_rngs(&mut |name, rng| saved = Some((name.to_string(), rng.clone())));
        let (name, rng) = saved.unwrap();
        assert_eq!(name, "rng");
        a.visit_rngs_mut(&mut |_, r| *r = rng.clone());
        // a now continues exactly where b stands
        assert_eq!(
            a.forward(x, Mode::Train).value(),
            b.forward(x, Mode::Train).value()
        );
    }

    #[test]
    fn p_outside_zero_one_is_an_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for p in [1.0001, 1.5, -0.1, f32::NAN, f32::INFINITY] {
            assert!(Dropout::new(p, &mut rng).is_err(), "{p}");
        }
        assert_eq!(
            Dropout::new(1.5, &mut rng).unwrap_err().to_string(),
            "dropout: p must be in [0, 1], got 1.5"
        );
        assert_eq!(
            Dropout::new(0.3, &mut rng).unwrap().describe(),
            "Dropout(p=0.3)"
        );
    }
}
