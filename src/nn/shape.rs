//! Shapes and image geometry of layers: the sliding [`Window`] of convolutions and pooling,
//! where a layer's outputs sit on its input's image grid ([`Spatial`], for
//! [`diagnostics::receptive_field`](crate::diagnostics::receptive_field)), and the trial
//! forward pass behind the default [`Module::output_shape`](crate::Module::output_shape).

use crate::autograd::Tape;
use crate::autograd::ops::conv::output_len;
use crate::error::{Error, Result};
use crate::nn::module::{Mode, Module};
use crate::tensor;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

/// The geometry of a sliding window along the two image axes `[rows, columns]`: a kernel of
/// `kernel` taps, `dilation` pixels apart, moved by `stride`, over an image with `padding`
/// added on each side, as in `nn.Conv2d` and `nn.MaxPool2d`.
///
/// A `k`-tap kernel dilated by `d` spans `k_eff = d·(k − 1) + 1` pixels, and an image of
/// `H` rows gives `⌊(H + 2·p − k_eff)/s⌋ + 1` output rows ([`Window::output_size`]).
///
/// # Examples
/// ```
/// use tapegrad::Window;
/// let window = Window::square(3, 2, 1); // a 3×3 kernel, stride 2, padding 1
/// assert_eq!(window.span(), [3, 3]);
/// assert_eq!(window.output_size([28, 28]), Some([14, 14])); // ⌊(28 + 2 − 3)/2⌋ + 1
/// let atrous = Window { dilation: [2, 2], ..Window::square(3, 1, 0) };
/// assert_eq!(atrous.span(), [5, 5]);
/// assert_eq!(atrous.output_size([4, 4]), None); // 5 pixels do not fit in 4
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Taps per axis, `[kh, kw]`, each at least 1.
    pub kernel: [usize; 2],
    /// Step between neighbouring windows, `[sh, sw]`, each at least 1.
    pub stride: [usize; 2],
    /// Pixels added on each side, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Step between the taps of a window, `[dh, dw]`, each at least 1 (1 for pooling).
    pub dilation: [usize; 2],
}

impl Window {
    /// A `kernel × kernel` window with the same stride and padding on both axes and no
    /// dilation.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Window;
    /// let w = Window::square(2, 2, 0);
    /// assert_eq!((w.kernel, w.stride, w.padding, w.dilation), ([2, 2], [2, 2], [0, 0], [1, 1]));
    /// ```
    pub fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Window {
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1; 2],
        }
    }

    /// The pixels one window spans per axis, `k_eff = d·(k − 1) + 1`.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Window;
    /// let dilated = Window { dilation: [3, 1], ..Window::square(3, 1, 0) };
    /// assert_eq!(dilated.span(), [7, 3]); // 3·(3 − 1) + 1 rows, 3 columns
    /// ```
    pub fn span(&self) -> [usize; 2] {
        [0, 1].map(|a| self.dilation[a] * (self.kernel[a].max(1) - 1) + 1)
    }

    /// The output's `[OH, OW]` for an input image of `[H, W]`,
    /// `OH = ⌊(H + 2·ph − k_eff)/sh⌋ + 1`, or `None` when the window does not fit in the
    /// padded image (or a stride is 0).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::Window;
    /// // MaxPool2d(2) halves a 28×28 map; a 5×5 kernel without padding takes 4 pixels off
    /// assert_eq!(Window::square(2, 2, 0).output_size([28, 28]), Some([14, 14]));
    /// assert_eq!(Window::square(5, 1, 0).output_size([28, 28]), Some([24, 24]));
    /// ```
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let axis = |a: usize| {
            let (kernel, stride) = (self.kernel[a], self.stride[a]);
            output_len(input[a], kernel, stride, self.padding[a], self.dilation[a])
        };
        Some([axis(0)?, axis(1)?])
    }
}

/// Where each output unit of a layer looks in the image its input is laid out on, as
/// [`Module::spatial`](crate::Module::spatial) reports it for receptive-field arithmetic.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Conv2d, Conv2dOptions, Flatten, Module, Relu, Spatial, Window};
/// let conv = Conv2d::from_parts(tensor::ones(&[4, 1, 5, 5]), None, Conv2dOptions::default().stride(2))?;
/// assert_eq!(conv.spatial(), Spatial::Window(Window::square(5, 2, 0)));
/// assert_eq!(Relu.spatial(), Spatial::Pointwise);
/// assert_eq!(Flatten.spatial(), Spatial::Flat);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spatial {
    /// Output pixel `(i, j)` depends on input pixel `(i, j)` only (of any channels): the
    /// image size, the receptive field, jump and start stay as they are. Activations and
    /// dropout; the default for a layer that says nothing.
    Pointwise,
    /// Output pixel `(i, j)` sees the window at `(i·s − p, j·s − p)` of the input:
    /// convolution and pooling.
    Window(Window),
    /// Every output pixel sees the whole input image (global pooling to `1 × 1`): a window
    /// as large as the input.
    Global,
    /// The output units are no longer laid out on the image grid (flatten, unflatten,
    /// linear and maxout layers): the chain of image layers ends here, and a unit of a
    /// fully connected layer after it sees whatever all the units before it see. Layers
    /// that put their outputs on a finer grid (transposed convolutions, upsampling) say
    /// this too: their units sit a fraction of an input pixel apart, which the
    /// receptive-field recurrence of whole jumps does not describe.
    Flat,
}

/// The output shape of `layer` for an input of shape `input`, found by a forward pass in
/// [`Mode::Eval`] on zeros on a fresh tape; a panic of that pass (a shape mismatch in one
/// of its ops) becomes an [`Error::Shape`] carrying the panic's message, and is not printed.
pub(crate) fn trial_output_shape<M: Module + ?Sized>(
    layer: &M,
    input: &[usize],
) -> Result<Vec<usize>> {
    let run = || {
        let tape = Tape::new();
        let x = tape.constant(tensor::zeros(input));
        layer.forward(x, Mode::Eval).shape()
    };
    quietly(run).map_err(|message| Error::Shape {
        op: "output_shape",
        expected: format!(
            "an input {} accepts (its forward pass panicked: {message})",
            layer.describe()
        ),
        found: format!("{input:?}"),
    })
}

thread_local! {
    /// Whether this thread runs a trial whose panics are caught and must not be printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once per process) a panic hook that forwards to the one it replaces, except
/// for panics on a thread inside [`quietly`].
static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into its message; the panic is not printed (on this thread:
/// a panic on another thread that `f` waits for is).
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// An [`Error::Shape`] of layer `op` for input shape `input`.
pub(crate) fn shape_error(op: &'static str, expected: String, input: &[usize]) -> Error {
    Error::Shape {
        op,
        expected,
        found: format!("{input:?}"),
    }
}

/// The output shape of a layer that keeps its input's shape and accepts any.
pub(crate) fn same_shape(input: &[usize]) -> Result<Vec<usize>> {
    Ok(input.to_vec())
}

/// `[N, C, OH, OW]` for a 4-D `input` `[N, C, H, W]` slid over by `window`, checking that
/// the input is 4-D, has `channels` channels when given, and fits the window.
pub(crate) fn windowed_shape(
    op: &'static str,
    window: Window,
    channels: Option<usize>,
    input: &[usize],
) -> Result<Vec<usize>> {
    let c = channels.map_or_else(|| "C".to_string(), |c| c.to_string());
    if input.len() != 4 || channels.is_some_and(|c| c != input[1]) {
        return Err(shape_error(
            op,
            format!("a 4-D input [N, {c}, H, W]"),
            input,
        ));
    }
    let Some([oh, ow]) = window.output_size([input[2], input[3]]) else {
        let [sh, sw] = window.span();
        let [ph, pw] = window.padding;
        return Err(shape_error(
            op,
            format!(
                "an image that fits the {sh}×{sw} window after padding ({ph}, {pw}), \
                 [N, {c}, ≥{}, ≥{}]",
                sh.saturating_sub(2 * ph).max(1),
                sw.saturating_sub(2 * pw).max(1)
            ),
            input,
        ));
    };
    Ok(vec![input[0], input[1], oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::Var;

    /// A user's layer that declares nothing: its shape comes from a trial forward pass.
    struct Halve;

    impl Module for Halve {
        fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
            let shape = x.shape();
            x.reshape(&[shape[0], shape[1] / 2, 2])
        }
        crate::walk!();
    }

    #[test]
    fn the_default_shape_runs_the_layer_and_turns_a_panic_into_an_error() {
        assert_eq!(Halve.output_shape(&[3, 8]).unwrap(), [3, 4, 2]);
        let err = Halve.output_shape(&[3, 5]).unwrap_err().to_string();
        assert_eq!(
            err,
            "output_shape: expected an input Halve() accepts (its forward pass panicked: \
             reshape: cannot reshape shape [3, 5] into [3, 2, 2]), found [3, 5]"
        );
        // the thread leaves the trial: its later panics print again
        assert!(!QUIET.with(Cell::get));
    }

    #[test]
    fn every_built_in_layer_computes_the_shape_its_forward_gives() {
        use crate::{
            AdaptiveAvgPool2d, AvgPool2d, ChaCha8Rng, Conv2d, Conv2dOptions, Dropout, Elu, Flatten,
            Init, LeakyRelu, Linear, MaxPool2d, Maxout, Relu, SeedableRng, Sigmoid, Unflatten,
            UpsampleMode,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let d = Conv2dOptions::default();
        let layers: Vec<Box<dyn Module>> = vec![
            Box::new(
                Conv2d::new(
                    4,
                    6,
                    [3, 2],
                    d.stride(2).padding(1),
                    Init::default(),
                    &mut rng,
                )
                .unwrap(),
            ),
            Box::new(
                Conv2d::new(
                    4,
                    4,
                    [3, 3],
                    d.dilation(2).groups(4),
                    Init::default(),
                    &mut rng,
                )
                .unwrap(),
            ),
            Box::new(MaxPool2d::with_options([3, 2], [2, 1], [1, 1]).unwrap()),
            Box::new(AvgPool2d::new(2).unwrap()),
            Box::new(AdaptiveAvgPool2d),
            Box::new(crate::BatchNorm2d::new(4).unwrap()),
            Box::new(crate::BatchNorm1d::new(4).unwrap()),
            Box::new(Flatten),
            Box::new(Relu),
            Box::new(LeakyRelu::default()),
            Box::new(Elu::default()),
            Box::new(Sigmoid),
            Box::new(Dropout::new(0.5, &mut rng).unwrap()),
            Box::new(Linear::new(7, 3, Init::default(), &mut rng).unwrap()),
            Box::new(Maxout::new(7, 3, 2, Init::default(), &mut rng).unwrap()),
            Box::new(Unflatten::new(&[2, 2]).unwrap()),
            Box::new(
                crate::ConvTranspose2d::new(
                    4,
                    6,
                    [3, 2],
                    crate::ConvTranspose2dOptions::default()
                        .stride(2)
                        .padding(1)
                        .output_padding(1)
                        .groups(2),
                    Init::default(),
                    &mut rng,
                )
                .unwrap(),
            ),
            Box::new(
                crate::Upsample::new(crate::Resize::Size([3, 5]), UpsampleMode::Nearest).unwrap(),
            ),
            Box::new(
                crate::Upsample::new(crate::Resize::Scale([2, 1]), UpsampleMode::Bilinear).unwrap(),
            ),
        ];
        let shapes: [&[usize]; 8] = [
            &[2, 4, 9, 7],
            &[1, 4, 5, 5],
            &[3, 4, 2, 2],
            &[1, 4, 1, 1],
            &[5, 7],
            &[2, 3, 7],
            &[7],
            &[3, 4],
        ];
        let tape = Tape::new();
        let mut checked = 0;
        for layer in &layers {
            for &shape in &shapes {
                let x = tape.constant(tensor::zeros(shape));
                // the forward's own shape, or its panic
                let forward = quietly(|| layer.forward(x, Mode::Eval).shape());
                let computed = layer.output_shape(shape);
                match (&forward, &computed) {
                    (Ok(f), Ok(c)) => assert_eq!(f, c, "{} on {shape:?}", layer.describe()),
                    (Err(_), Err(_)) => {}
                    _ => panic!(
                        "{} on {shape:?}: forward {forward:?}, output_shape {computed:?}",
                        layer.describe()
                    ),
                }
                checked += usize::from(forward.is_ok());
            }
        }
        assert!(checked > 40, "{checked}");
    }

    #[test]
    fn windows_give_pytorchs_sizes_and_errors_name_what_fits() {
        let w = Window::square(3, 1, 1);
        assert_eq!(
            windowed_shape("conv2d", w, Some(1), &[2, 1, 28, 28]).unwrap(),
            [2, 1, 28, 28]
        );
        let err = windowed_shape("conv2d", w, Some(1), &[1, 3, 28, 28]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conv2d: expected a 4-D input [N, 1, H, W], found [1, 3, 28, 28]"
        );
        let err = windowed_shape("max_pool2d", Window::square(5, 1, 0), None, &[1, 3, 4, 9]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "max_pool2d: expected an image that fits the 5×5 window after padding (0, 0), \
             [N, C, ≥5, ≥5], found [1, 3, 4, 9]"
        );
        let strided = Window {
            dilation: [2, 1],
            ..Window::square(3, 2, 1)
        };
        // rows: ⌊(9 + 2 − 5)/2⌋ + 1 = 4, columns: ⌊(9 + 2 − 3)/2⌋ + 1 = 5
        assert_eq!(strided.output_size([9, 9]), Some([4, 5]));
    }
}
