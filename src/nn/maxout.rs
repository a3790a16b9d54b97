//! The Maxout layer (Goodfellow et al. 2013): [`Maxout`], a linear map to `out·k` units and
//! a max over each group of `k`.

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::init::Init;
use crate::nn::linear::Linear;
use crate::nn::module::{Mode, Module, python_bool};
use crate::nn::shape::{Spatial, shape_error};
use crate::param::Param;
use crate::tensor::Tensor;
use rand::Rng;

/// Maxout (Goodfellow, Warde-Farley, Mirza, Courville & Bengio 2013,
/// <https://arxiv.org/abs/1302.4389>): `h_i(x) = max_{j<k} z_{i·k+j}` with `z = x·Wᵀ + b`,
/// a [`Linear`] from `in` to `out·k` units.
///
/// **Grouping:** output unit `i` takes the max over the rows `i·k .. i·k + k` of the weight
/// `[out·k, in]` (consecutive rows), computed with [`Var::max_groups`]. Backward:
/// `∂L/∂z_{i·k+j} = ∂L/∂h_i` for the arg-max `j` (the first one on a tie), 0 for the others.
/// The layer is built from ops and has no backward rule of its own.
///
/// ReLU is the special case `k = 2` with the pieces `x_i` and `0`; leaky ReLU with slope
/// `s < 1` is the pieces `x_i` and `s·x_i`. A maxout unit learns its convex, piecewise
/// linear activation.
///
/// Parameters are named `"weight"` (`[out·k, in]`) and `"bias"` (`[out·k]`).
///
/// # Shapes
/// `[batch, in] -> [batch, out]`.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Maxout, Mode, Module, Tape};
/// // one unit, k = 2 pieces: h = max(x₀ − x₁, x₁)
/// let w = tensor::from_vec(vec![1.0, -1.0, 0.0, 1.0], &[2, 2])?;
/// let layer = Maxout::from_parts(w, None, 2)?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![3.0, 1.0, 1.0, 2.0], &[2, 2])?);
/// let h = layer.forward(x, Mode::Train).value();
/// assert_eq!(h.as_slice().unwrap(), &[2.0, 2.0]); // max(2, 1), max(-1, 2)
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maxout {
    linear: Linear,
    pieces: usize,
}

impl Maxout {
    /// A maxout layer with `in_dim` inputs, `out_dim` units and `pieces` (`k`) linear pieces
    /// per unit; the weight `[out·k, in]` is drawn by `init` (fans `in` and `out·k`) and the
    /// bias as [`Linear::new`] draws it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `pieces < 2` (`maxout: pieces must be >= 2, got 1`), a
    /// width is 0, or `init` rejects its parameters.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Maxout, Module, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let layer = Maxout::new(10, 4, 3, Init::default(), &mut rng)?;
    /// assert_eq!(layer.weight().value().shape(), &[12, 10]);
    /// assert_eq!(layer.out_features(), Some(4));
    /// assert!(Maxout::new(10, 4, 1, Init::default(), &mut rng).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_dim: usize,
        out_dim: usize,
        pieces: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        check_pieces(pieces)?;
        let linear = Linear::new(in_dim, out_dim * pieces, init, rng)?;
        Ok(Maxout { linear, pieces })
    }

    /// A maxout layer with known weights: `weight` is `[out·k, in]` (unit `i` uses rows
    /// `i·k .. i·k + k`), `bias` (if any) is `[out·k]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `pieces < 2`; [`Error::Shape`] if the shapes do not fit
    /// or `pieces` does not divide the weight's rows.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Maxout, Module};
    /// let layer = Maxout::from_parts(tensor::ones(&[6, 4]), Some(tensor::zeros(&[6])), 3)?;
    /// assert_eq!((layer.in_features(), layer.out_features()), (Some(4), Some(2)));
    /// assert!(Maxout::from_parts(tensor::ones(&[5, 4]), None, 3).is_err()); // 3 ∤ 5
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, pieces: usize) -> Result<Self> {
        check_pieces(pieces)?;
        let rows = weight.shape().first().copied().unwrap_or(0);
        if rows % pieces != 0 {
            return Err(Error::Shape {
                op: "maxout",
                expected: format!("weight rows a multiple of pieces {pieces}"),
                found: format!("{:?}", weight.shape()),
            });
        }
        let linear = Linear::from_parts(weight, bias)?;
        Ok(Maxout { linear, pieces })
    }

    /// The number of linear pieces per unit, `k`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Maxout};
    /// let layer = Maxout::from_parts(tensor::ones(&[6, 4]), None, 3)?;
    /// assert_eq!(layer.pieces(), 3);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn pieces(&self) -> usize {
        self.pieces
    }

    /// The weight, `[out·k, in]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Maxout};
    /// // 2 units of 3 pieces each: 6 rows
    /// let layer = Maxout::from_parts(tensor::ones(&[6, 4]), None, 3)?;
    /// assert_eq!(layer.weight().value().shape(), &[6, 4]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Param {
        self.linear.weight()
    }

    /// The bias, `[out·k]`, if the layer has one.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Maxout};
    /// let layer = Maxout::from_parts(tensor::ones(&[6, 4]), Some(tensor::zeros(&[6])), 3)?;
    /// assert_eq!(layer.bias().unwrap().value().shape(), &[6]);
    /// assert!(Maxout::from_parts(tensor::ones(&[6, 4]), None, 2)?.bias().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias(&self) -> Option<&Param> {
        self.linear.bias()
    }
}

fn check_pieces(pieces: usize) -> Result<()> {
    if pieces < 2 {
        return Err(Error::InvalidArgument {
            op: "maxout",
            message: format!("pieces must be >= 2, got {pieces}"),
        });
    }
    Ok(())
}

impl Module for Maxout {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        self.linear.forward(x, mode).max_groups(self.pieces)
    }

    crate::walk!(linear as "");

    fn describe(&self) -> String {
        format!(
            "Maxout(in_features={}, out_features={}, pieces={}, bias={})",
            self.linear.weight().value().shape()[1],
            self.linear.weight().value().shape()[0] / self.pieces,
            self.pieces,
            python_bool(self.linear.bias().is_some())
        )
    }

    fn in_features(&self) -> Option<usize> {
        self.linear.in_features()
    }

    fn out_features(&self) -> Option<usize> {
        Some(self.linear.weight().value().shape()[0] / self.pieces)
    }

    /// `[.., in] -> [.., out]`, as [`Linear`].
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let inner = self.linear.weight().value().shape()[1];
        match input.split_last() {
            Some((&last, leading)) if last == inner => Ok([
                leading,
                &[self.linear.weight().value().shape()[0] / self.pieces],
            ]
            .concat()),
            _ => Err(shape_error(
                "maxout",
                format!("an input [.., {inner}]"),
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
    use crate::autograd::gradcheck::testing::random;
    use crate::{ChaCha8Rng, SeedableRng, Tape, gradcheck, tensor};

    /// Weights `[2n, n]` whose unit `i` has the pieces `x_i` and `s·x_i`.
    fn pieces_x_and_scaled_x(n: usize, s: f32) -> Tensor {
        let mut w = tensor::zeros(&[2 * n, n]);
        for i in 0..n {
            w[[2 * i, i]] = 1.0;
            w[[2 * i + 1, i]] = s;
        }
        w
    }

    #[test]
    fn reproduces_relu_and_leaky_relu_with_fixed_weights() {
        let x = random(&[6, 5], 1);
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let relu = Maxout::from_parts(pieces_x_and_scaled_x(5, 0.0), None, 2).unwrap();
        assert_eq!(relu.forward(v, Mode::Train).value(), v.relu().value());
        let leaky = Maxout::from_parts(pieces_x_and_scaled_x(5, 0.2), None, 2).unwrap();
        assert_eq!(
            leaky.forward(v, Mode::Train).value(),
            v.leaky_relu(0.2).value()
        );
    }

    #[test]
    fn grouping_uses_consecutive_rows_and_gradient_goes_to_the_argmax() {
        // 2 units, k = 3, in = 1, weights [1, 2, 3, -1, -2, -3], x = [[1]]:
        // z = [1, 2, 3, -1, -2, -3], h = [max(1,2,3), max(-1,-2,-3)] = [3, -1]
        let w = tensor::from_vec(vec![1., 2., 3., -1., -2., -3.], &[6, 1]).unwrap();
        let layer = Maxout::from_parts(w, Some(tensor::zeros(&[6])), 3).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(tensor::ones(&[1, 1]));
        let h = layer.forward(x, Mode::Train);
        assert_eq!(h.value().as_slice().unwrap(), &[3., -1.]);
        // L = Σ h: ∂L/∂W is x = 1 at rows 2 and 3 (the arg-maxes), 0 elsewhere
        let g = h.sum().backward();
        let gw = g.param(layer.weight()).unwrap();
        assert_eq!(
            gw,
            tensor::from_vec(vec![0., 0., 1., 1., 0., 0.], &[6, 1]).unwrap()
        );
        assert_eq!(g.get(x).unwrap()[[0, 0]], 3. - 1.);
    }

    #[test]
    fn gradcheck_maxout() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layer = Maxout::new(4, 3, 2, Init::default(), &mut rng).unwrap();
        for batch in [5, 1] {
            let x = random(&[batch, 4], 7);
            gradcheck(
                |v| layer.forward(v[0], Mode::Train),
                std::slice::from_ref(&x),
            )
            .unwrap();
            // and as a function of x, W and b: max_groups(x·Wᵀ + b)
            let w = layer.weight().value().to_owned();
            let b = layer.bias().unwrap().value().to_owned();
            gradcheck(
                |v| (v[0].matmul(v[1].transpose()) + v[2]).max_groups(2),
                &[x, w, b],
            )
            .unwrap();
        }
    }

    #[test]
    fn parameters_keep_the_names_and_roles_of_a_linear_layer() {
        // the checkpoint keys of every earlier version: "weight" and "bias", no prefix
        let mut layer =
            Maxout::from_parts(tensor::ones(&[4, 2]), Some(tensor::zeros(&[4])), 2).unwrap();
        let mut seen = Vec::new();
        layer.visit_params(&mut |n, p| seen.push((n.to_string(), p.role())));
        let mut seen_mut = Vec::new();
        layer.visit_params_mut(&mut |n, p| seen_mut.push((n.to_string(), p.role())));
        let expected = [
            ("weight".to_string(), crate::Role::Weight),
            ("bias".to_string(), crate::Role::Bias),
        ];
        assert_eq!(seen, expected);
        assert_eq!(seen_mut, expected);
    }

    #[test]
    fn pieces_below_two_and_bad_parts_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            Maxout::new(3, 2, 1, Init::default(), &mut rng)
                .unwrap_err()
                .to_string(),
            "maxout: pieces must be >= 2, got 1"
        );
        assert!(Maxout::new(3, 2, 0, Init::default(), &mut rng).is_err());
        assert!(Maxout::from_parts(tensor::ones(&[5, 2]), None, 2).is_err());
        let m = Maxout::new(3, 2, 2, Init::default(), &mut rng).unwrap();
        assert_eq!(m.num_params(), 4 * 3 + 4);
        assert_eq!(
            m.describe(),
            "Maxout(in_features=3, out_features=2, pieces=2, bias=True)"
        );
    }
}
