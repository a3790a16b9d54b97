//! [`Flatten`] and [`Unflatten`]: the samples of a batch as flat rows, between image layers
//! and `Linear` ones, and back.

use crate::autograd::tape::Var;
use crate::error::{Error, Result};
use crate::nn::module::{Mode, Module};
use crate::nn::shape::{Spatial, shape_error};

/// Flattens every axis after the first (the batch): `[N, C, H, W] → [N, C·H·W]`, as
/// PyTorch's `nn.Flatten()` (`start_dim=1`). A batch of rows `[N, D]` passes unchanged.
/// The gradient is the incoming gradient reshaped back.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Flatten, Mode, Module, Tape};
/// let tape = Tape::new();
/// let images = tape.constant(tensor::zeros(&[8, 1, 28, 28]));
/// assert_eq!(Flatten.forward(images, Mode::Train).shape(), vec![8, 784]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flatten;

impl Module for Flatten {
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let axes = x.shape().len();
        if axes <= 2 { x } else { x.flatten(1, axes - 1) }
    }

    crate::walk!();

    fn describe(&self) -> String {
        "Flatten".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(match input {
            [n, rest @ ..] if rest.len() >= 2 => vec![*n, rest.iter().product()],
            _ => input.to_vec(),
        })
    }

    fn spatial(&self) -> Spatial {
        Spatial::Flat
    }
}

/// Splits the axis after the batch into several, `[N, D] → [N, s₀, s₁, …]` with
/// `s₀·s₁·… = D`, as PyTorch's `nn.Unflatten(1, (C, H, W))`: the inverse of [`Flatten`],
/// e.g. between a `Linear` layer and image layers in a decoder. Axes after the split one
/// are kept: `[N, D, K] → [N, s₀, s₁, …, K]`. Values keep their row-major order, and the
/// gradient is the incoming gradient reshaped back.
///
/// # Shapes
/// `[N, C·H·W] -> [N, C, H, W]` for sizes `[C, H, W]`.
///
/// # Panics
/// `forward` panics if the input has fewer than 2 axes or its axis 1 is not
/// `s₀·s₁·…` long: `unflatten: sizes [2, 3] do not multiply to 5, the size of axis 1; x
/// shape [4, 5]`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Mode, Module, Tape, Unflatten};
/// let unflatten = Unflatten::new(&[2, 1, 3])?;
/// let tape = Tape::new();
/// let rows = tape.constant(tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 6])?);
/// let images = unflatten.forward(rows, Mode::Train);
/// assert_eq!(images.shape(), [2, 2, 1, 3]);
/// assert_eq!(images.value()[[1, 1, 0, 2]], 11.0); // the last value of row 1
/// assert_eq!(unflatten.output_shape(&[8, 6])?, [8, 2, 1, 3]);
/// assert_eq!(unflatten.describe(), "Unflatten(dim=1, unflattened_size=(2, 1, 3))");
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unflatten {
    sizes: Vec<usize>,
}

impl Unflatten {
    /// A layer that splits axis 1 into axes of `sizes` (`nn.Unflatten(1, sizes)`; PyTorch's
    /// `-1` entry is not supported: give every size).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `sizes` is empty or holds a 0:
    /// `unflatten: sizes must be non-empty and positive, got [4, 0]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Unflatten;
    /// assert_eq!(Unflatten::new(&[64, 7, 7])?.sizes(), [64, 7, 7]);
    /// assert!(Unflatten::new(&[]).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(sizes: &[usize]) -> Result<Self> {
        if sizes.is_empty() || sizes.contains(&0) {
            return Err(Error::InvalidArgument {
                op: "unflatten",
                message: format!("sizes must be non-empty and positive, got {sizes:?}"),
            });
        }
        Ok(Unflatten {
            sizes: sizes.to_vec(),
        })
    }

    /// The sizes axis 1 is split into.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Unflatten;
    /// assert_eq!(Unflatten::new(&[64, 7, 7])?.sizes(), &[64, 7, 7]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

impl Module for Unflatten {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        x.unflatten(1, &self.sizes)
    }

    crate::walk!();

    /// PyTorch's `repr`: `Unflatten(dim=1, unflattened_size=(64, 7, 7))`.
    fn describe(&self) -> String {
        let sizes: Vec<String> = self.sizes.iter().map(|s| s.to_string()).collect();
        let comma = if sizes.len() == 1 { "," } else { "" };
        format!(
            "Unflatten(dim=1, unflattened_size=({}{comma}))",
            sizes.join(", ")
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let total: usize = self.sizes.iter().product();
        match input {
            [n, d, rest @ ..] if *d == total => Ok([&[*n], &self.sizes[..], rest].concat()),
            _ => Err(shape_error(
                "unflatten",
                format!(
                    "an input [N, {total}, ..] (axis 1 split into {:?})",
                    self.sizes
                ),
                input,
            )),
        }
    }

    fn spatial(&self) -> Spatial {
        Spatial::Flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::{Tape, gradcheck};
    use crate::tensor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn images_become_rows_in_order_and_gradients_flow_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = tensor::normal(&[2, 3, 2, 2], 0.0, 1.0, &mut rng).unwrap();
        let tape = Tape::new();
        let y = Flatten
            .forward(tape.constant(x.clone()), Mode::Eval)
            .value();
        assert_eq!(y.shape(), &[2, 12]);
        assert_eq!(y.as_slice().unwrap(), x.as_slice().unwrap());
        let rows = tensor::zeros(&[5, 4]);
        assert_eq!(
            Flatten.forward(tape.constant(rows), Mode::Eval).shape(),
            vec![5, 4]
        );
        gradcheck(|v| Flatten.forward(v[0], Mode::Train), &[x]).unwrap();
    }

    #[test]
    fn shapes_are_what_the_forward_gives() {
        let tape = Tape::new();
        for shape in [&[2, 3, 4, 5][..], &[2, 3, 4], &[5, 4], &[7]] {
            let y = Flatten.forward(tape.constant(tensor::zeros(shape)), Mode::Eval);
            assert_eq!(Flatten.output_shape(shape).unwrap(), y.shape(), "{shape:?}");
        }
        let u = Unflatten::new(&[3, 2]).unwrap();
        for shape in [&[4, 6][..], &[1, 6, 5]] {
            let y = u.forward(tape.constant(tensor::zeros(shape)), Mode::Eval);
            assert_eq!(u.output_shape(shape).unwrap(), y.shape(), "{shape:?}");
        }
        for bad in [&[4, 5][..], &[6], &[]] {
            let err = u.output_shape(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "unflatten: expected an input [N, 6, ..] (axis 1 split into [3, 2]), \
                     found {bad:?}"
                )
            );
        }
    }

    #[test]
    fn unflatten_inverts_flatten_and_gradients_flow_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = tensor::normal(&[2, 3, 2, 4], 0.0, 1.0, &mut rng).unwrap();
        let u = Unflatten::new(&[3, 2, 4]).unwrap();
        let tape = Tape::new();
        let rows = Flatten.forward(tape.constant(x.clone()), Mode::Eval);
        assert_eq!(u.forward(rows, Mode::Eval).value(), x);
        for shape in [&[2, 24][..], &[1, 24]] {
            let rows = tensor::normal(shape, 0.0, 1.0, &mut rng).unwrap();
            gradcheck(|v| u.forward(v[0], Mode::Train), &[rows]).unwrap();
        }
        assert_eq!(
            Unflatten::new(&[4, 0]).unwrap_err().to_string(),
            "unflatten: sizes must be non-empty and positive, got [4, 0]"
        );
        assert_eq!(
            Unflatten::new(&[5]).unwrap().describe(),
            "Unflatten(dim=1, unflattened_size=(5,))"
        );
        assert_eq!(u.num_params(), 0);
    }

    #[test]
    #[should_panic(expected = "unflatten:")]
    fn unflatten_of_the_wrong_width_panics() {
        let tape = Tape::new();
        let u = Unflatten::new(&[2, 3]).unwrap();
        let _ = u.forward(tape.constant(tensor::zeros(&[4, 5])), Mode::Eval);
    }
}
