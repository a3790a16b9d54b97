//! The fully connected layer [`Linear`]: `y = x·Wᵀ + b`, with `W` stored `[out, in]` as in
//! PyTorch.
//!
//! # Shapes
//! `x: [..., in]`, `W: [out, in]`, `b: [out]`, `y: [..., out]` (any leading axes, as
//! `nn.Linear`).

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::init::{Init, default_bias};
use crate::nn::module::{Mode, Module, python_bool};
use crate::nn::shape::{Spatial, shape_error};
use crate::param::Param;
use crate::tensor::Tensor;
use rand::Rng;

/// A fully connected layer, `y = x·Wᵀ + b` (`nn.Linear`).
///
/// The weight is stored `[out, in]`, as PyTorch and candle store it, so fans, initializers
/// and exported weights mean the same as there; the forward pass reads `Wᵀ` through strides
/// without a copy. Backward: `∂L/∂x = G·W`, `∂L/∂W = Gᵀ·x`, `∂L/∂b = Σ_batch G`.
///
/// Parameters are named `"weight"` ([`Role::Weight`](crate::Role::Weight)) and `"bias"`
/// ([`Role::Bias`](crate::Role::Bias)).
///
/// # Shapes
/// `[batch, in] -> [batch, out]`; any leading axes, as `nn.Linear`: `[a, b, in] -> [a, b,
/// out]`, and `[in] -> [out]`.
///
/// # Panics
/// `forward` panics when the input's last axis is not `in` wide (`linear: inner dimensions
/// differ; lhs shape [1, 3], rhs shape [2, 4]`, the weight being `[out, in]`), and on a
/// 0-dimensional input.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Tape};
/// // W = [[1, 2], [0, -1], [1, 1]] (3 outputs, 2 inputs), b = [0, 1, -1]
/// let w = tensor::from_vec(vec![1.0, 2.0, 0.0, -1.0, 1.0, 1.0], &[3, 2])?;
/// let b = tensor::from_vec(vec![0.0, 1.0, -1.0], &[3])?;
/// let layer = Linear::from_parts(w, Some(b))?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 1.0], &[1, 2])?);
/// let y = layer.forward(x, Mode::Train);
/// assert_eq!(y.value().as_slice().unwrap(), &[3.0, 0.0, 1.0]);
/// assert_eq!(layer.num_params(), 9);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Param,
    bias: Option<Param>,
}

impl Linear {
    /// A layer with `in_dim` inputs and `out_dim` outputs, with a bias; the weight is drawn
    /// by `init` with `fan_in = in_dim`, `fan_out = out_dim`.
    ///
    /// The bias is drawn as PyTorch's `nn.Linear` draws it, whatever `init` is:
    /// `b ~ U(−1/√in, 1/√in)`. With [`Init::default`] the weight is drawn the same way,
    /// `W ~ U(−1/√in, 1/√in)`, so `Linear::new(i, o, Init::default(), rng)` is PyTorch's
    /// default `nn.Linear(i, o)`. To zero the bias instead, as many papers do, overwrite it
    /// through [`Linear::bias_mut`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `in_dim` or `out_dim` is 0, or `init` rejects its
    /// parameters (see [`Init::sample`]).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let layer = Linear::new(16, 4, Init::default(), &mut rng)?;
    /// assert_eq!(layer.weight().value().shape(), &[4, 16]);
    /// assert!(layer.weight().value().iter().all(|w| w.abs() <= 0.25)); // 1/√16
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_dim: usize,
        out_dim: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let mut layer = Self::new_no_bias(in_dim, out_dim, init, rng)?;
        layer.bias = Some(default_bias(out_dim, in_dim, out_dim, rng)?);
        Ok(layer)
    }

    /// Like [`Linear::new`], without a bias: `y = x·Wᵀ` (`nn.Linear(.., bias=False)`).
    ///
    /// # Errors
    /// As [`Linear::new`].
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, Module, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let layer = Linear::new_no_bias(3, 2, Init::XavierUniform { gain: 1.0 }, &mut rng)?;
    /// assert!(layer.bias().is_none());
    /// assert_eq!(layer.num_params(), 6);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new_no_bias<R: Rng + ?Sized>(
        in_dim: usize,
        out_dim: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if in_dim == 0 || out_dim == 0 {
            return Err(Error::InvalidArgument {
                op: "linear",
                message: format!("widths must be positive, got in {in_dim}, out {out_dim}"),
            });
        }
        let weight = init.sample(&[out_dim, in_dim], in_dim, out_dim, rng)?;
        Ok(Linear {
            weight: Param::weight(weight),
            bias: None,
        })
    }

    /// A layer with known weights: `weight` is `[out, in]`, `bias` (if any) is `[out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `weight` is not 2-D with both sides positive, or `bias` is not
    /// `[out]`: `linear: expected bias shape [3], found [2]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Module};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), None)?;
    /// assert_eq!((layer.in_features(), layer.out_features()), (Some(2), Some(3)));
    /// assert!(Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::ones(&[2]))).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let shape = weight.shape();
        if shape.len() != 2 || shape.contains(&0) {
            return Err(Error::Shape {
                op: "linear",
                expected: "a 2-D weight [out, in] with positive sides".into(),
                found: format!("{shape:?}"),
            });
        }
        let out = shape[0];
        if let Some(b) = &bias
            && b.shape() != [out]
        {
            return Err(Error::Shape {
                op: "linear",
                expected: format!("bias shape [{out}]"),
                found: format!("{:?}", b.shape()),
            });
        }
        Ok(Linear {
            weight: Param::weight(weight),
            bias: bias.map(Param::bias),
        })
    }

    /// The weight, `[out, in]`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), None)?;
    /// assert_eq!(layer.weight().value().shape(), &[3, 2]); // [out, in]
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The weight, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear, Mode, Module, Tape};
    /// let mut layer = Linear::from_parts(tensor::ones(&[1, 2]), None)?;
    /// layer.weight_mut().value_mut()[[0, 1]] = 3.0;
    /// let tape = Tape::new();
    /// let y = layer.forward(tape.constant(tensor::ones(&[1, 2])), Mode::Eval);
    /// assert_eq!(y.item(), 4.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    /// The bias, `[out]`, if the layer has one.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{tensor, Linear};
    /// let layer = Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::zeros(&[3])))?;
    /// assert_eq!(layer.bias().unwrap().value().shape(), &[3]);
    /// assert!(Linear::from_parts(tensor::ones(&[3, 2]), None)?.bias().is_none());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The bias, for in-place changes of its values (its shape must not change).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, SeedableRng};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let mut layer = Linear::new(4, 2, Init::default(), &mut rng)?;
    /// if let Some(b) = layer.bias_mut() {
    ///     b.value_mut().fill(0.0); // torch.nn.init.zeros_(layer.bias)
    /// }
    /// assert_eq!(layer.bias().unwrap().value().sum(), 0.0);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn bias_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
    }
}

impl Module for Linear {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
        let tape = x.tape();
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.linear(tape.param(&self.weight), bias)
    }

    crate::walk!(weight, bias);

    fn describe(&self) -> String {
        let s = self.weight.value().shape();
        format!(
            "Linear(in_features={}, out_features={}, bias={})",
            s[1],
            s[0],
            python_bool(self.bias.is_some())
        )
    }

    fn in_features(&self) -> Option<usize> {
        Some(self.weight.value().shape()[1])
    }

    fn out_features(&self) -> Option<usize> {
        Some(self.weight.value().shape()[0])
    }

    /// `[.., in] -> [.., out]`; an error for a 0-D input or another last axis.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let [out, inner] = [0, 1].map(|a| self.weight.value().shape()[a]);
        match input.split_last() {
            Some((&last, leading)) if last == inner => Ok([leading, &[out]].concat()),
            _ => Err(shape_error(
                "linear",
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

    #[test]
    fn forward_by_hand_and_gradients_by_hand() {
        // W = [[1, 2], [3, 4]], b = [1, -1], x = [[1, -1]]: y = x·Wᵀ + b = [-1 + 1, -1 - 1]
        let w = tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]).unwrap();
        let b = tensor::from_vec(vec![1., -1.], &[2]).unwrap();
        let layer = Linear::from_parts(w, Some(b)).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(tensor::from_vec(vec![1., -1.], &[1, 2]).unwrap());
        let y = layer.forward(x, Mode::Train);
        assert_eq!(y.value().as_slice().unwrap(), &[0., -2.]);
        // L = Σ y: ∂L/∂W = Gᵀ·x = [[1, -1], [1, -1]], ∂L/∂b = [1, 1], ∂L/∂x = G·W = [4, 6]
        let g = y.sum().backward();
        let gw = g.param(layer.weight()).unwrap();
        // (read through the transpose, so compare logically, not by memory order)
        assert_eq!(
            gw,
            tensor::from_vec(vec![1., -1., 1., -1.], &[2, 2]).unwrap()
        );
        let gb = g.param(layer.bias().unwrap()).unwrap();
        assert_eq!(gb.as_slice().unwrap(), &[1., 1.]);
        assert_eq!(g.get(x).unwrap().as_slice().unwrap(), &[4., 6.]);
    }

    /// The forward's formula `x·Wᵀ + b` with all three as inputs.
    fn formula<'t>(v: &[Var<'t>]) -> Var<'t> {
        v[0].matmul(v[1].transpose()) + v[2]
    }

    #[test]
    fn gradcheck_input_weight_and_bias() {
        for batch in [4, 1] {
            let inputs = [random(&[batch, 3], 1), random(&[2, 3], 2), random(&[2], 3)];
            // the module's forward as a function of its input
            let layer = Linear::from_parts(inputs[1].clone(), Some(inputs[2].clone())).unwrap();
            gradcheck(|v| layer.forward(v[0], Mode::Train), &inputs[..1]).unwrap();
            // the forward's formula as a function of x, W and b ...
            gradcheck(formula, &inputs).unwrap();
            // ... and the module's parameter gradients are that formula's gradients
            let weights = random(&[batch, 2], 4);
            let tape = Tape::new();
            let c = tape.constant(weights.clone());
            let leaves: Vec<Var<'_>> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
            let by_formula = (formula(&leaves) * c).sum().backward();
            let x = tape.constant(inputs[0].clone());
            let by_module = (layer.forward(x, Mode::Train) * c).sum().backward();
            assert_eq!(by_module.param(layer.weight()), by_formula.get(leaves[1]));
            assert_eq!(
                by_module.param(layer.bias().unwrap()),
                by_formula.get(leaves[2])
            );
        }
    }

    #[test]
    fn leading_axes_are_rows_and_a_vector_is_one_row() {
        let (w, b) = (random(&[2, 3], 2), random(&[2], 3));
        let layer = Linear::from_parts(w, Some(b)).unwrap();
        let x = random(&[2, 4, 3], 1);
        // [2, 4, 3] -> [2, 4, 2]: row (i, j) is the layer applied to x[i, j, :]
        let tape = Tape::new();
        let y = layer.forward(tape.constant(x.clone()), Mode::Eval).value();
        assert_eq!(y.shape(), &[2, 4, 2]);
        let rows = layer.forward(
            tape.constant(x.clone().into_shape_with_order(vec![8, 3]).unwrap()),
            Mode::Eval,
        );
        assert_eq!(y.into_shape_with_order(vec![8, 2]).unwrap(), rows.value());
        let v = tape.constant(x.slice(ndarray::s![1, 2, ..]).to_owned());
        assert_eq!(
            layer.forward(v, Mode::Eval).value(),
            rows.value().index_axis(ndarray::Axis(0), 6).to_owned()
        );
        for shape in [&[2, 4, 3][..], &[3]] {
            gradcheck(|v| layer.forward(v[0], Mode::Train), &[random(shape, 5)]).unwrap();
        }
    }

    #[test]
    fn params_have_stable_names_and_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut layer = Linear::new(5, 3, Init::default(), &mut rng).unwrap();
        let mut names = Vec::new();
        layer.visit_params(&mut |n, p| names.push((n.to_string(), p.value().shape().to_vec())));
        assert_eq!(
            names,
            [("weight".into(), vec![3, 5]), ("bias".into(), vec![3])]
        );
        assert_eq!(layer.num_params(), 18);
        layer.visit_params_mut(&mut |_, p| p.value_mut().fill(1.0));
        assert_eq!(layer.weight().value(), &tensor::ones(&[3, 5]));
        assert_eq!(
            layer.describe(),
            "Linear(in_features=5, out_features=3, bias=True)"
        );
        let no_bias = Linear::new_no_bias(5, 3, Init::default(), &mut rng).unwrap();
        assert_eq!(no_bias.num_params(), 15);
    }

    #[test]
    fn default_init_is_pytorchs_uniform_one_over_sqrt_fan_in() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let layer = Linear::new(400, 300, Init::default(), &mut rng).unwrap();
        let bound = 1.0 / 20.0;
        let w = layer.weight().value();
        assert!(w.iter().all(|x| x.abs() <= bound));
        // Var(U(-a, a)) = a²/3
        let var = w.var(0.0);
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.02, "{var}");
        let b = layer.bias().unwrap().value();
        assert!(b.iter().all(|x| x.abs() <= bound));
        assert!(b.iter().any(|x| x.abs() > 0.8 * bound));
    }

    #[test]
    fn bad_widths_and_parts_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = Linear::new(0, 3, Init::default(), &mut rng).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linear: widths must be positive, got in 0, out 3"
        );
        let err = Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::ones(&[2]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linear: expected bias shape [3], found [2]"
        );
        assert!(Linear::from_parts(tensor::ones(&[3]), None).is_err());
    }

    #[test]
    #[should_panic(
        expected = "linear: inner dimensions differ; lhs shape [1, 3], rhs shape [2, 4]"
    )]
    fn wrong_input_width_panics() {
        let layer = Linear::from_parts(tensor::ones(&[2, 4]), None).unwrap();
        let tape = Tape::new();
        let _ = layer.forward(tape.constant(tensor::ones(&[1, 3])), Mode::Eval);
    }
}
