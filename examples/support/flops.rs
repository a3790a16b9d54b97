//! Useful FLOP per sample of a [`Sequential`] model, counted from its layers and the sample
//! shape, so that a benchmark's samples/s can be read as FLOP/s and compared with the FMA peak.
//!
//! Only matrix work counts: the products of layers that hold one matrix or kernel named
//! `"weight"` (`Linear` `[out, in]`, `Conv2d` `[out, in/groups, kh, kw]`), 2 FLOPs per
//! multiply-add (MAC). For one sample such a layer does
//! `MACs = weight elements × output elements / output channels`: `out·in` for a `Linear` on
//! one row, `out_h·out_w·Cout·Cin·kh·kw` for a `Conv2d`. Bias additions, activations,
//! pooling, normalization, the loss and the optimizer's update are not counted.
//!
//! A training step does the forward product (2·MACs), the weight gradient (2·MACs) and the
//! input gradient (2·MACs) of each layer, except the input gradient of the first layer with
//! weights: its input is the data, which needs no gradient, and neither tapegrad (data enters
//! the tape as a constant) nor PyTorch (autograd skips gradients of inputs that do not
//! require one) computes it. Inference is the forward products only.

use tapegrad::{Error, Sequential};

/// FLOP per sample of a model's matrix work, by pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flops {
    /// The forward products: 2·MACs of every layer.
    pub forward: u64,
    /// The weight gradients: 2·MACs of every layer.
    pub weight_grad: u64,
    /// The input gradients: 2·MACs of every layer after the first one with weights.
    pub input_grad: u64,
}

impl Flops {
    /// FLOP per training sample: forward + backward.
    pub fn training(&self) -> u64 {
        self.forward + self.weight_grad + self.input_grad
    }

    /// FLOP per inference sample: forward only.
    pub fn inference(&self) -> u64 {
        self.forward
    }

    /// One line for people, e.g. `1,211,392 FLOP per training sample (forward 537,600,
    /// weight gradients 537,600, input gradients 136,192)`.
    pub fn describe(&self) -> String {
        format!(
            "{} FLOP per training sample (forward {}, weight gradients {}, input gradients {})",
            thousands(self.training()),
            thousands(self.forward),
            thousands(self.weight_grad),
            thousands(self.input_grad)
        )
    }
}

/// Counts the matrix work of `model` for one sample of shape `sample_shape` (without the
/// batch axis, e.g. `[784]` or `[1, 28, 28]`).
///
/// # Errors
/// - the error of `Sequential::summary` when a layer does not accept its input's shape;
/// - [`Error::InvalidArgument`] for a layer with parameters of rank 2 or more that are not
///   one `"weight"` whose first axis is the output's channels (a `Maxout`, which keeps the
///   maximum of several rows, or a layer of your own): its work is not counted silently wrong.
pub fn count(model: &Sequential, sample_shape: &[usize]) -> Result<Flops, Error> {
    let mut shape = [&[1], sample_shape].concat();
    model.summary(&shape)?; // names the layer that does not fit
    let mut flops = Flops {
        forward: 0,
        weight_grad: 0,
        input_grad: 0,
    };
    let mut input_needs_grad = false;
    for (index, layer) in model.layers().iter().enumerate() {
        let output = layer.output_shape(&shape)?;
        let mut matrices = Vec::new();
        layer.visit_params(&mut |name, param| {
            let value = param.value();
            if value.ndim() >= 2 {
                matrices.push((name.to_string(), value.shape().to_vec()));
            }
        });
        match matrices.as_slice() {
            [] => {}
            [(name, weight)]
                if name == "weight" && channels(&output, weight) == Some(weight[0]) =>
            {
                let macs =
                    weight.iter().product::<usize>() * output.iter().product::<usize>() / weight[0];
                let flop = 2 * macs as u64;
                flops.forward += flop;
                flops.weight_grad += flop;
                if input_needs_grad {
                    flops.input_grad += flop;
                }
                input_needs_grad = true;
            }
            _ => {
                return Err(Error::InvalidArgument {
                    op: "flops",
                    message: format!(
                        "expected at layer {index} ({}) one \"weight\" whose first axis is the \
                         output's channels (as in Linear or Conv2d), found parameters {matrices:?} \
                         and output shape {output:?}",
                        layer.describe()
                    ),
                });
            }
        }
        shape = output;
    }
    Ok(flops)
}

/// The output's channel count for a layer with this weight: the last axis after a matrix
/// (`Linear`), axis 1 after a kernel (`Conv2d`).
fn channels(output: &[usize], weight: &[usize]) -> Option<usize> {
    match weight.len() {
        2 => output.last().copied(),
        _ => output.get(1).copied(),
    }
}

/// `1211392` as `1,211,392`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
