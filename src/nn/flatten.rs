//! [`Flatten`]: the samples of a batch as flat rows, between image layers and `Linear` ones.

use crate::autograd::tape::Var;
use crate::nn::module::{Mode, Module};

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
}
