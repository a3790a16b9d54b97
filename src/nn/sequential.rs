//! [`Sequential`]: a chain of modules, each fed the previous one's output, with its widths
//! checked at construction and a readable summary.

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::module::{Mode, Module};
use std::fmt;

/// Modules applied one after another, `y = f_{n−1}(… f_1(f_0(x)))` (`nn.Sequential`).
///
/// Parameters are named by path: layer `i`'s `"weight"` is `"i.weight"` (a nested
/// `Sequential` gives `"i.j.weight"`), as in PyTorch's `state_dict`.
///
/// `Display` prints a summary in the spirit of PyTorch's `print(model)` and Keras'
/// `summary()`: each layer, its output shape and its parameter count, then the total.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear, Mode, Module, Relu, Sequential, Tape};
/// let model = Sequential::new(vec![
///     Box::new(Linear::from_parts(tensor::ones(&[3, 2]), Some(tensor::zeros(&[3])))?),
///     Box::new(Relu),
///     Box::new(Linear::from_parts(tensor::ones(&[1, 3]), None)?),
/// ])?;
/// let tape = Tape::new();
/// let x = tape.constant(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?);
/// assert_eq!(model.forward(x, Mode::Eval).item(), 9.0); // 3 units of relu(1 + 2)
/// let mut names = Vec::new();
/// model.visit_params(&mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight"]);
/// assert_eq!(model.num_params(), 12);
/// assert_eq!(
///     model.to_string(),
///     "\
/// Sequential(
///   (0): Linear(in_features=2, out_features=3, bias=true)  -> [N, 3]  params: 9
///   (1): ReLU()                                            -> [N, 3]  params: 0
///   (2): Linear(in_features=3, out_features=1, bias=false) -> [N, 1]  params: 3
/// )
/// Total params: 12"
/// );
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// Chains `layers` in order, checking that each layer's input width
    /// ([`Module::in_features`]) equals the output width of the last layer before it that
    /// has one ([`Module::out_features`]). Layers without widths (activations, dropout) pass
    /// the width through.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the layer and both widths:
    /// `sequential: expected layer 2 input width 8 (output of layer 0), found 4`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Init, Linear, SeedableRng, Sequential, Tanh};
    /// let mut rng = ChaCha8Rng::seed_from_u64(0);
    /// let result = Sequential::new(vec![
    ///     Box::new(Linear::new(2, 8, Init::default(), &mut rng)?),
    ///     Box::new(Tanh),
    ///     Box::new(Linear::new(4, 1, Init::default(), &mut rng)?),
    /// ]);
    /// let message = result.unwrap_err().to_string();
    /// assert_eq!(message, "sequential: expected layer 2 input width 8 (output of layer 0), found 4");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn new(layers: Vec<Box<dyn Module>>) -> Result<Self> {
        let mut previous: Option<(usize, usize)> = None;
        for (index, layer) in layers.iter().enumerate() {
            if let (Some((from, width)), Some(input)) = (previous, layer.in_features())
                && width != input
            {
                return Err(Error::Shape {
                    op: "sequential",
                    expected: format!("layer {index} input width {width} (output of layer {from})"),
                    found: input.to_string(),
                });
            }
            if let Some(out) = layer.out_features() {
                previous = Some((index, out));
            }
        }
        Ok(Sequential { layers })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }

    /// The layers, mutably (for initializers such as [`lsuv`](crate::lsuv)); crate-private so
    /// a layer can't be swapped for one of another width after the check.
    pub(crate) fn layers_mut(&mut self) -> &mut [Box<dyn Module>] {
        &mut self.layers
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers (then the model is the identity).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    #[track_caller]
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        self.layers
            .iter()
            .fold(x, |x, layer| layer.forward(x, mode))
    }

    crate::walk!(layers as "");

    fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential({})", inner.join(", "))
    }

    fn in_features(&self) -> Option<usize> {
        self.layers.iter().find_map(|l| l.in_features())
    }

    fn out_features(&self) -> Option<usize> {
        self.layers.iter().rev().find_map(|l| l.out_features())
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut width: Option<usize> = None;
        let rows: Vec<(String, String, usize)> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                width = layer.out_features().or(width);
                let shape = width.map_or_else(|| "[N, *]".into(), |w| format!("[N, {w}]"));
                (
                    format!("({i}): {}", layer.describe()),
                    shape,
                    layer.num_params(),
                )
            })
            .collect();
        let name_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let shape_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        writeln!(f, "Sequential(")?;
        for (name, shape, params) in &rows {
            writeln!(
                f,
                "  {name:<name_width$} -> {shape:<shape_width$}  params: {params}"
            )?;
        }
        writeln!(f, ")")?;
        write!(f, "Total params: {}", self.num_params())
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck::testing::random;
    use crate::{ChaCha8Rng, Dropout, Init, Linear, Maxout, SeedableRng, Tanh, Tape, gradcheck};

    fn mlp(rng: &mut ChaCha8Rng) -> Sequential {
        Sequential::new(vec![
            Box::new(Linear::new(3, 5, Init::default(), rng).unwrap()),
            Box::new(Tanh),
            Box::new(Dropout::new(0.5, rng).unwrap()),
            Box::new(Maxout::new(5, 4, 2, Init::default(), rng).unwrap()),
            Box::new(Linear::new(4, 2, Init::default(), rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn names_are_dotted_paths_and_nest() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let inner = mlp(&mut rng);
        let mut outer = Sequential::new(vec![Box::new(inner), Box::new(Tanh)]).unwrap();
        let mut names = Vec::new();
        outer.visit_params(&mut |n, _| names.push(n.to_string()));
        assert_eq!(
            names,
            [
                "0.0.weight",
                "0.0.bias",
                "0.3.weight",
                "0.3.bias",
                "0.4.weight",
                "0.4.bias"
            ]
        );
        let mut mut_names = Vec::new();
        outer.visit_params_mut(&mut |n, _| mut_names.push(n.to_string()));
        assert_eq!(names, mut_names);
        assert_eq!(outer.num_params(), (15 + 5) + (40 + 8) + (8 + 2));
        assert_eq!(
            (outer.in_features(), outer.out_features()),
            (Some(3), Some(2))
        );
    }

    #[test]
    fn width_mismatch_names_the_layer_and_both_widths() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = Sequential::new(vec![
            Box::new(Linear::new(2, 8, Init::default(), &mut rng).unwrap()),
            Box::new(Tanh),
            Box::new(Linear::new(4, 1, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sequential: expected layer 2 input width 8 (output of layer 0), found 4"
        );
    }

    #[test]
    fn eval_is_deterministic_and_train_drops() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let model = mlp(&mut rng);
        let x = random(&[16, 3], 2);
        let tape = Tape::new();
        let v = tape.constant(x);
        let e1 = model.forward(v, Mode::Eval).value();
        assert_eq!(e1, model.forward(v, Mode::Eval).value());
        assert_ne!(e1, model.forward(v, Mode::Train).value());
    }

    #[test]
    fn gradcheck_through_the_chain() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let model = mlp(&mut rng);
        for batch in [4, 1] {
            let x = random(&[batch, 3], 5);
            gradcheck(|v| model.forward(v[0], Mode::Eval), &[x]).unwrap();
        }
    }

    #[test]
    fn summary_lists_layers_shapes_and_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let text = mlp(&mut rng).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8);
        assert!(lines[1].starts_with("  (0): Linear(in_features=3, out_features=5, bias=true)"));
        assert!(lines[2].contains("-> [N, 5]") && lines[2].ends_with("params: 0"));
        assert!(lines[4].contains("Maxout(in_features=5, out_features=4, pieces=2, bias=true)"));
        assert!(lines[4].ends_with("params: 48"));
        assert_eq!(lines[7], "Total params: 78");
        assert_eq!(
            Sequential::new(vec![]).unwrap().to_string(),
            "Sequential(\n)\nTotal params: 0"
        );
    }
}
