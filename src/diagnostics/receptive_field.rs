//! Receptive fields of an image model's layers: [`receptive_field`] follows the standard
//! size, jump and start recurrence through a [`Sequential`]'s windows.

use crate::error::{Error, Result};
use crate::nn::{Module, Sequential, Spatial, Window};

/// What one unit of a layer's output sees of the input image, per image axis
/// `[rows, columns]`.
///
/// Pixel coordinates put the input pixels' centers at `0, 1, …, H − 1`. Unit `(a, b)` of
/// the layer's output map is centered on input pixel `(start[0] + a·jump[0],
/// start[1] + b·jump[1])` and sees the `size[0] × size[1]` pixels around it
/// ([`Field::pixels`]), some of which may lie in the padding outside the image.
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::Field;
/// // a 3×3 convolution with padding 1: every unit sees 3×3 pixels centred on its own
/// let field = Field { size: [3, 3], jump: [1, 1], start: [0.0, 0.0] };
/// assert_eq!(field.pixels([5, 5]), [[4, 6], [4, 6]]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// The receptive field's size `r` in input pixels.
    pub size: [usize; 2],
    /// The jump `j`: how many input pixels apart neighbouring units' fields are (the
    /// product of the strides so far).
    pub jump: [usize; 2],
    /// The center of unit `(0, 0)`'s field, in input pixels (half-integers after an even
    /// window, negative when padding shifts it off the image).
    pub start: [f64; 2],
}

impl Field {
    /// The first and last input rows and columns (inclusive) unit `unit = [a, b]` sees:
    /// `start + a·j ∓ (r − 1)/2`, whole numbers since the padding is. They may lie outside
    /// `0..H` (the padding); clip them to the image to draw them.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::diagnostics::Field;
    /// // after a 3×3 convolution with padding 1 and a 2×2 max pool (W2's first block)
    /// let field = Field { size: [4, 4], jump: [2, 2], start: [0.5, 0.5] };
    /// assert_eq!(field.pixels([0, 3]), [[-1, 2], [5, 8]]);
    /// ```
    pub fn pixels(&self, unit: [usize; 2]) -> [[isize; 2]; 2] {
        [0, 1].map(|a| {
            let center = self.start[a] + (unit[a] * self.jump[a]) as f64;
            let half = (self.size[a] as f64 - 1.0) / 2.0;
            [
                (center - half).round() as isize,
                (center + half).round() as isize,
            ]
        })
    }
}

/// One layer's row of [`receptive_field`].
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::receptive_field;
/// use tapegrad::{ChaCha8Rng, Conv2d, Conv2dOptions, Flatten, Init, MaxPool2d, SeedableRng, Sequential};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new(vec![
///     Box::new(Conv2d::new(1, 4, [3, 3], Conv2dOptions::default(), Init::default(), &mut rng)?),
///     Box::new(MaxPool2d::new(2)?),
///     Box::new(Flatten),
/// ])?;
/// let rows = receptive_field(&model, &[1, 1, 10, 10])?;
/// assert_eq!(rows[1].output_shape, [1, 4, 4, 4]);
/// assert_eq!(rows[1].field.unwrap().size, [4, 4]); // 3 + (2 − 1)·1
/// assert!(rows[2].field.is_none()); // flattened: off the image grid
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerField {
    /// The layer's index in the [`Sequential`].
    pub index: usize,
    /// The layer's [`Module::describe`] line.
    pub layer: String,
    /// The layer's output shape for the input shape asked about; for an image layer
    /// `[N, C, OH, OW]`, whose `[OH, OW]` is the map of units the field describes.
    pub output_shape: Vec<usize>,
    /// The receptive field of one output unit, or `None` from the first layer whose
    /// outputs leave the image grid on ([`Spatial::Flat`]: flatten, linear): a unit of a
    /// fully connected layer sees whatever all the units before it see.
    pub field: Option<Field>,
}

/// For every layer of an image model, the receptive field of one output unit: its size
/// `r`, its jump `j` (the product of the strides so far) and its start (the center of the
/// first unit's field), per image axis, for an input of shape `input_shape = [N, C, H, W]`.
///
/// The standard recurrence (Dumoulin & Visin 2016, "A guide to convolution arithmetic for
/// deep learning", <https://arxiv.org/abs/1603.07285>; Araujo, Norris & Sim 2019,
/// "Computing receptive fields of convolutional neural networks", Distill,
/// <https://distill.pub/2019/computing-receptive-fields/>), along each axis, for a layer
/// with kernel `k`, stride `s`, padding `p` and dilation `d` ([`Module::spatial`]), with
/// the dilated kernel's span `k_eff = d·(k − 1) + 1`:
///
/// ```text
/// j_out     = j_in · s
/// r_out     = r_in + (k_eff − 1) · j_in
/// start_out = start_in + ((k_eff − 1)/2 − p) · j_in
/// ```
///
/// starting from `r = 1`, `j = 1`, `start = 0` (pixel centers at `0 … H − 1`, as
/// [`Field`] says). Pointwise layers (activations, dropout) keep the field; global pooling
/// is a window as large as its input; from the first [`Spatial::Flat`] layer on (flatten,
/// linear) the units leave the grid and the field is `None`.
///
/// # Errors
/// [`Error::Shape`] if `input_shape` is not 4-D, at the first layer that does not accept
/// its input (as [`Sequential::summary`]), or when a layer declared
/// [`Spatial::Pointwise`] (the default of [`Module::spatial`]) changes the image's size
/// or rank, since its field would then be wrong: override `spatial` in that layer.
///
/// # Examples
/// ```
/// use tapegrad::diagnostics::receptive_field;
/// use tapegrad::{tensor, Conv2d, Conv2dOptions, Flatten, MaxPool2d, Relu, Sequential};
/// let conv = |pad| Conv2d::from_parts(tensor::ones(&[1, 1, 3, 3]), None, Conv2dOptions::default().padding(pad));
/// let model = Sequential::new(vec![
///     Box::new(conv(1)?),
///     Box::new(Relu),
///     Box::new(MaxPool2d::new(2)?),
///     Box::new(conv(0)?),
///     Box::new(Flatten),
/// ])?;
/// let rows = receptive_field(&model, &[1, 1, 8, 8])?;
/// let fields: Vec<_> = rows.iter().map(|l| l.field.map(|f| (f.size[0], f.jump[0], f.start[0]))).collect();
/// // conv 3 pad 1: r = 1 + 2·1 = 3, start = 0 + (1 − 1)·1 = 0
/// // pool 2: j = 2, r = 3 + 1·1 = 4, start = 0 + (0.5 − 0)·1 = 0.5
/// // conv 3 pad 0: r = 4 + 2·2 = 8, start = 0.5 + (1 − 0)·2 = 2.5
/// assert_eq!(
///     fields,
///     [Some((3, 1, 0.0)), Some((3, 1, 0.0)), Some((4, 2, 0.5)), Some((8, 2, 2.5)), None]
/// );
/// assert_eq!(rows[3].output_shape, [1, 1, 2, 2]);
/// assert_eq!(rows[3].field.unwrap().pixels([1, 1]), [[1, 8], [1, 8]]); // 4.5 ± 3.5
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn receptive_field(model: &Sequential, input_shape: &[usize]) -> Result<Vec<LayerField>> {
    if input_shape.len() != 4 {
        return Err(Error::Shape {
            op: "receptive_field",
            expected: "an image input shape [N, C, H, W]".into(),
            found: format!("{input_shape:?}"),
        });
    }
    let mut field = Some(Field {
        size: [1, 1],
        jump: [1, 1],
        start: [0.0, 0.0],
    });
    let mut shape = input_shape.to_vec();
    let mut rows = Vec::with_capacity(model.len());
    for (index, layer) in model.layers().iter().enumerate() {
        let layer: &dyn Module = layer.as_ref();
        let output = layer.output_shape(&shape).map_err(|err| match err {
            Error::Shape {
                expected, found, ..
            } => Error::Shape {
                op: "receptive_field",
                expected: format!("at layer {index} ({}) {expected}", layer.describe()),
                found,
            },
            other => other,
        })?;
        if let Some(before) = field {
            field = match layer.spatial() {
                Spatial::Flat => None,
                Spatial::Pointwise => {
                    if output.len() != 4 || output[2..] != shape[2..] {
                        return Err(Error::Shape {
                            op: "receptive_field",
                            expected: format!(
                                "layer {index} ({}) to keep the image size {:?}, as it declares \
                                 no window (Module::spatial)",
                                layer.describe(),
                                &shape[2..]
                            ),
                            found: format!("output shape {output:?}"),
                        });
                    }
                    Some(before)
                }
                Spatial::Window(window) => Some(step(before, window)),
                Spatial::Global => {
                    let whole = Window {
                        kernel: [shape[2], shape[3]],
                        ..Window::square(1, 1, 0)
                    };
                    Some(step(before, whole))
                }
            };
            if field.is_some() && output.len() != 4 {
                return Err(Error::Shape {
                    op: "receptive_field",
                    expected: format!(
                        "layer {index} ({}) to give an image [N, C, H, W], as it declares a window",
                        layer.describe()
                    ),
                    found: format!("output shape {output:?}"),
                });
            }
        }
        rows.push(LayerField {
            index,
            layer: layer.describe(),
            output_shape: output.clone(),
            field,
        });
        shape = output;
    }
    Ok(rows)
}

/// One step of the recurrence through `window`, per axis.
fn step(before: Field, window: Window) -> Field {
    let span = window.span();
    let mut after = before;
    for (a, &span) in span.iter().enumerate() {
        let j = before.jump[a];
        after.jump[a] = j * window.stride[a];
        after.size[a] = before.size[a] + (span - 1) * j;
        after.start[a] =
            before.start[a] + ((span as f64 - 1.0) / 2.0 - window.padding[a] as f64) * j as f64;
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::Var;
    use crate::{
        AdaptiveAvgPool2d, ChaCha8Rng, Conv2d, Conv2dOptions, Flatten, Init, Linear, MaxPool2d,
        Mode, Relu, SeedableRng,
    };

    fn conv(i: usize, o: usize, k: usize, options: Conv2dOptions) -> Box<dyn Module> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        Box::new(Conv2d::new(i, o, [k, k], options, Init::default(), &mut rng).unwrap())
    }

    fn summary(rows: &[LayerField]) -> Vec<Option<(usize, usize, f64)>> {
        rows.iter()
            .map(|l| {
                l.field.map(|f| {
                    assert_eq!(
                        (f.size[0], f.jump[0], f.start[0]),
                        (f.size[1], f.jump[1], f.start[1])
                    );
                    (f.size[0], f.jump[0], f.start[0])
                })
            })
            .collect()
    }

    #[test]
    fn w2_fields_match_the_hand_computation() {
        let pad = Conv2dOptions::default().padding(1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let model = Sequential::new(vec![
            conv(1, 32, 3, pad),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            conv(32, 64, 3, pad),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            Box::new(Flatten),
            Box::new(Linear::new(3136, 10, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        let rows = receptive_field(&model, &[1, 1, 28, 28]).unwrap();
        // input: r = 1, j = 1, start = 0
        // conv 3, s 1, p 1:  j = 1, r = 1 + 2·1 = 3,  start = 0 + (1 − 1)·1 = 0
        // relu:              unchanged
        // pool 2, s 2, p 0:  j = 2, r = 3 + 1·1 = 4,  start = 0 + (0.5 − 0)·1 = 0.5
        // conv 3, s 1, p 1:  j = 2, r = 4 + 2·2 = 8,  start = 0.5 + (1 − 1)·2 = 0.5
        // relu:              unchanged
        // pool 2, s 2, p 0:  j = 4, r = 8 + 1·2 = 10, start = 0.5 + (0.5 − 0)·2 = 1.5
        // flatten, linear:   off the grid
        assert_eq!(
            summary(&rows),
            [
                Some((3, 1, 0.0)),
                Some((3, 1, 0.0)),
                Some((4, 2, 0.5)),
                Some((8, 2, 0.5)),
                Some((8, 2, 0.5)),
                Some((10, 4, 1.5)),
                None,
                None
            ]
        );
        let sizes: Vec<&[usize]> = rows.iter().map(|r| &r.output_shape[..]).collect();
        assert_eq!(sizes[2], [1, 32, 14, 14]);
        assert_eq!(sizes[5], [1, 64, 7, 7]);
        assert_eq!(sizes[7], [1, 10]);
        // the last pool's unit (3, 3) is centered on 1.5 + 3·4 = 13.5: pixels 9..=18
        assert_eq!(rows[5].field.unwrap().pixels([3, 3]), [[9, 18], [9, 18]]);
        // unit (0, 0) reaches 3 pixels into the padding: 1.5 − 4.5 = −3
        assert_eq!(rows[5].field.unwrap().pixels([0, 0]), [[-3, 6], [-3, 6]]);
        assert_eq!(rows[0].layer, model.layers()[0].describe());
    }

    #[test]
    fn strided_and_dilated_fields_match_the_hand_computation() {
        let d = Conv2dOptions::default();
        let model = Sequential::new(vec![
            conv(3, 8, 3, d.stride(2).padding(1)),
            conv(8, 8, 3, d.dilation(2).padding(2)),
            Box::new(MaxPool2d::with_options([3, 3], [2, 2], [1, 1]).unwrap()),
            conv(8, 4, 1, d),
            Box::new(AdaptiveAvgPool2d),
        ])
        .unwrap();
        let rows = receptive_field(&model, &[2, 3, 32, 32]).unwrap();
        // conv 3, s 2, p 1:        k_eff 3, j = 2, r = 1 + 2·1 = 3,   start = 0 + (1 − 1)·1 = 0;  32 → 16
        // conv 3, d 2, p 2:        k_eff 5, j = 2, r = 3 + 4·2 = 11,  start = 0 + (2 − 2)·2 = 0;  16 → 16
        // pool 3, s 2, p 1:        k_eff 3, j = 4, r = 11 + 2·2 = 15, start = 0 + (1 − 1)·2 = 0;  16 → 8
        // conv 1:                  k_eff 1, j = 4, r = 15,            start = 0;                  8 → 8
        // global pool of 8×8:      k_eff 8, j = 4, r = 15 + 7·4 = 43, start = 0 + 3.5·4 = 14;     8 → 1
        assert_eq!(
            summary(&rows),
            [
                Some((3, 2, 0.0)),
                Some((11, 2, 0.0)),
                Some((15, 4, 0.0)),
                Some((15, 4, 0.0)),
                Some((43, 4, 14.0))
            ]
        );
        let maps: Vec<&[usize]> = rows.iter().map(|r| &r.output_shape[2..]).collect();
        assert_eq!(maps, [[16, 16], [16, 16], [8, 8], [8, 8], [1, 1]]);
        // the global unit sees 14 ± 21 = −7..=35, the whole 32×32 image and padding
        assert_eq!(rows[4].field.unwrap().pixels([0, 0]), [[-7, 35], [-7, 35]]);
        // a nested Sequential composes to the same field
        let nested = Sequential::new(vec![Box::new(model)]).unwrap();
        let rows = receptive_field(&nested, &[2, 3, 32, 32]).unwrap();
        assert_eq!(summary(&rows), [None]); // global pooling inside: not one window
    }

    #[test]
    fn a_nested_chain_of_windows_gives_the_same_field() {
        let pad = Conv2dOptions::default().padding(1);
        let block = || {
            Sequential::new(vec![
                conv(1, 1, 3, pad),
                Box::new(Relu),
                Box::new(MaxPool2d::new(2).unwrap()),
            ])
            .unwrap()
        };
        let flat = Sequential::new(vec![
            conv(1, 1, 3, pad),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
            conv(1, 1, 3, pad),
            Box::new(Relu),
            Box::new(MaxPool2d::new(2).unwrap()),
        ])
        .unwrap();
        let nested = Sequential::new(vec![Box::new(block()), Box::new(block())]).unwrap();
        let (flat, nested) = (
            receptive_field(&flat, &[1, 1, 28, 28]).unwrap(),
            receptive_field(&nested, &[1, 1, 28, 28]).unwrap(),
        );
        assert_eq!(nested[1].field, flat[5].field);
        assert_eq!(nested[1].output_shape, [1, 1, 7, 7]);
    }

    /// A user's layer that halves the image but declares no window.
    struct Shrink;

    impl Module for Shrink {
        fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
            x.max_pool2d([2, 2], [2, 2], [0, 0])
        }
        crate::walk!();
    }

    #[test]
    fn a_layer_without_a_window_that_resizes_is_an_error_not_a_wrong_field() {
        let model = Sequential::new(vec![Box::new(Relu), Box::new(Shrink)]).unwrap();
        let err = receptive_field(&model, &[1, 1, 8, 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "receptive_field: expected layer 1 (Shrink()) to keep the image size [8, 8], as it \
             declares no window (Module::spatial), found output shape [1, 1, 4, 4]"
        );
        let err = receptive_field(&model, &[1, 64]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "receptive_field: expected an image input shape [N, C, H, W], found [1, 64]"
        );
        let convs = Sequential::new(vec![conv(1, 2, 3, Conv2dOptions::default())]).unwrap();
        let err = receptive_field(&convs, &[1, 1, 2, 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("receptive_field: expected at layer 0 (Conv2d(1, 2"),
            "{err}"
        );
    }
}
