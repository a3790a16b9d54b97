//! [`infer`]: a model's output for a batch in evaluation mode without gradients, with the
//! batch's rows split across threads once per call rather than each layer's work split
//! once per layer.

use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::nn::{Mode, Module};
use crate::tensor::Tensor;
use ndarray::{Axis, Slice};
use std::cell::RefCell;

/// Rows a shard gets at least: fewer, and the fork costs more than the second core saves.
const MIN_SHARD_ROWS: usize = 64;

/// Rows one forward pass on one thread takes at most: a thread's block of more rows runs
/// through the model in chunks, so that each layer's output is still in cache when the next
/// layer reads it. Measured on a 2-core Xeon (2 MB of L2 per core), workload W2's CNN on one
/// thread: about 12,500 images/s at 64 or 128 rows per pass, 10,400–11,900 at 256; with
/// chunks of 128 rows, batches of 128 and 256 still ran 2–3% below a batch of 64. On a
/// Zen 4 EPYC (1 MB of L2 per core), with chunks of 64, batches of 64 to 256 ran at
/// 10.5–10.7k images/s against 11.1–11.2k for batches of 16 and 32; with chunks of 32, at
/// 11.4–11.5k (batch sizes interleaved in one process). The MLP of workload W1 runs as fast
/// per sample in either.
const CHUNK_ROWS: usize = 32;

/// [`CHUNK_ROWS`] for a pass whose products are split across threads (a batch too small for
/// one block per thread): smaller chunks would split each product's rows further (W1 at
/// batch 64 on 2 threads: 319k samples/s in one pass, 236k in two chunks of 32).
const SPLIT_CHUNK_ROWS: usize = 64;

thread_local! {
    /// Each thread's inference tape, reused from call to call so that a serving loop
    /// allocates nothing new.
    static TAPE: RefCell<Option<Tape>> = const { RefCell::new(None) };
}

/// The output of `model` for the batch `x` (samples along the first axis) in
/// [`Mode::Eval`], on an inference tape that records no gradients: PyTorch's
/// `model.eval()` then `with torch.no_grad(): model(x)`.
///
/// A batch of at least 128 rows is cut into one block of rows per thread
/// ([`set_num_threads`](crate::set_num_threads)), each block run through the whole model on
/// a tape of that thread, so the threads meet once per call instead of once per layer
/// (each layer's own product would otherwise be split and joined). Every sample's output
/// is computed from that sample alone in evaluation mode, so the blocks change nothing but
/// the rounding of the matrix kernels, which depends on how many rows a product has; the
/// same batch and thread count always give the same numbers. A block of more than 32 rows
/// on one thread runs in chunks of at most 32 (of 64 when its products use several
/// threads), so that per-sample speed does not drop once a layer's output for the whole
/// block no longer fits in cache. Each thread keeps its tape
/// between calls, so a steady serving loop allocates only the output.
///
/// One sample without its batch axis (`[in]` for a model whose input width is `in`) gives
/// its output without one (`[out]`), as `nn.Linear` takes unbatched input.
///
/// # Errors
/// [`Error::Shape`] when `x` has no axis or no samples, samples of another width than the
/// model's input width (where it declares one, [`Module::in_features`]), or samples the
/// model's forward pass panics on (an image model given another channel count or image
/// size: the error holds the layer's message, which is not printed).
///
/// # Examples
/// ```
/// use tapegrad::{infer, tensor, ChaCha8Rng, Init, Linear, Mode, Module, SeedableRng, Tape};
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let model = Linear::new(3, 2, Init::default(), &mut rng)?;
/// let x = tensor::uniform(&[300, 3], -1.0, 1.0, &mut rng)?;
/// let y = infer(&model, &x)?;
/// assert_eq!(y.shape(), [300, 2]);
/// // the same as one forward pass on an inference tape, up to the kernels' rounding
/// let tape = Tape::inference();
/// let one_pass = model.forward(tape.constant(&x), Mode::Eval).value();
/// assert!(y.iter().zip(&one_pass).all(|(a, b)| (a - b).abs() < 1e-5));
/// // one sample, unbatched
/// let one = infer(&model, &tensor::from_vec(vec![0.5, -1.0, 2.0], &[3])?)?;
/// assert_eq!(one.shape(), [2]);
/// assert!(infer(&model, &tensor::zeros(&[4])).is_err()); // not 3 features
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn infer<M: Module + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    if x.ndim() == 1 && model.in_features() == Some(x.len()) {
        let batch = x.view().insert_axis(Axis(0)).to_owned();
        return Ok(infer(model, &batch)?.index_axis_move(Axis(0), 0));
    }
    let rows = match x.shape().first() {
        Some(&rows) if rows > 0 => rows,
        _ => {
            return Err(Error::Shape {
                op: "infer",
                expected: "a batch [samples, ...] with at least one sample".into(),
                found: format!("{:?}", x.shape()),
            });
        }
    };
    crate::train::check_batch("infer", model, x.shape(), None)?;
    crate::nn::quietly(|| in_shards(model, x, rows)).map_err(|panic| Error::Shape {
        op: "infer",
        expected: "samples the model can take".into(),
        found: format!(
            "a batch of shape {:?}, on which the model panics: {panic}",
            x.shape()
        ),
    })
}

/// [`infer`] of `x`'s `rows` (checked), in one block of rows per thread.
fn in_shards<M: Module + ?Sized>(model: &M, x: &Tensor, rows: usize) -> Tensor {
    // inside `in_pool`, the other threads spin for this call's parallel pieces
    crate::threads::keep_helpers_awake();
    let shards = crate::threads::shards(rows, MIN_SHARD_ROWS);
    if shards < 2 {
        return forward_here(model, x.view());
    }
    let per_shard = rows.div_ceil(shards);
    let mut blocks: Vec<_> = (0..shards)
        .map(|shard| {
            let start = shard * per_shard;
            x.slice_axis(Axis(0), Slice::from(start..(start + per_shard).min(rows)))
        })
        .collect();
    let outputs = crate::threads::map_items(&mut blocks, &|_, block| {
        crate::threads::as_shard(|| forward_here(model, block.view()))
    });
    if outputs
        .iter()
        .zip(&blocks)
        .any(|(o, b)| !per_row(o, b.len_of(Axis(0))))
    {
        return TAPE.with_borrow_mut(|tape| one_pass(model, x.view(), tape));
    }
    let views: Vec<_> = outputs.iter().map(|o| o.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("internal error: shard outputs differ")
}

/// `model`'s evaluation-mode output for `x` on this thread's reused inference tape, in
/// chunks of at most [`CHUNK_ROWS`] rows ([`SPLIT_CHUNK_ROWS`] when the products may use
/// several threads; as even as they can be) written into one output.
fn forward_here<M: Module + ?Sized>(model: &M, x: ndarray::ArrayViewD<'_, f32>) -> Tensor {
    let rows = x.len_of(Axis(0));
    let most = match crate::threads::threads_for_ops() {
        1 => CHUNK_ROWS,
        _ => SPLIT_CHUNK_ROWS,
    };
    let chunks = rows.div_ceil(most).max(1);
    let per_chunk = rows.div_ceil(chunks);
    TAPE.with_borrow_mut(|tape| {
        if chunks == 1 {
            return one_pass(model, x, tape);
        }
        let mut output: Option<Tensor> = None;
        for start in (0..rows).step_by(per_chunk) {
            let end = (start + per_chunk).min(rows);
            let chunk = Slice::from(start..end);
            let value = one_pass(model, x.slice_axis(Axis(0), chunk), tape);
            if !per_row(&value, end - start) {
                // not one output row per input row: the model needs the block in one pass
                return one_pass(model, x, tape);
            }
            let output = output.get_or_insert_with(|| {
                let mut shape = value.shape().to_vec();
                shape[0] = rows;
                Tensor::zeros(ndarray::IxDyn(&shape))
            });
            output.slice_axis_mut(Axis(0), chunk).assign(&value);
        }
        output.expect("internal error: a batch has at least one chunk")
    })
}

/// `model`'s evaluation-mode output for `x` in one forward pass on `tape` (this thread's
/// inference tape, made on first use).
fn one_pass<M: Module + ?Sized>(
    model: &M,
    x: ndarray::ArrayViewD<'_, f32>,
    tape: &mut Option<Tape>,
) -> Tensor {
    let tape = tape.get_or_insert_with(Tape::inference);
    tape.reset();
    model.forward(tape.constant(x), Mode::Eval).value()
}

/// Whether `output` has one row per input row of a block of `rows`, as a model whose samples
/// are computed alone gives; a model that reduces the batch must see all of it.
fn per_row(output: &Tensor, rows: usize) -> bool {
    output.shape().first() == Some(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Linear, Relu, Sequential};
    use crate::tensor::uniform;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn blocks_of_rows_give_each_samples_output_and_the_same_numbers_every_call() {
        let _ = crate::set_num_threads(2);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let model = Sequential::new(vec![
            Box::new(Linear::new(20, 30, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Linear::new(30, 4, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap();
        for rows in [1, 63, 128, 301] {
            let x = uniform(&[rows, 20], -1.0, 1.0, &mut rng).unwrap();
            let y = infer(&model, &x).unwrap();
            assert_eq!(y.shape(), [rows, 4]);
            // each row alone, on a tape of its own
            for row in [0, rows / 2, rows - 1] {
                let one = x.slice_axis(Axis(0), Slice::from(row..row + 1)).to_owned();
                let tape = Tape::inference();
                let alone = model.forward(tape.constant(&one), Mode::Eval).value();
                for (a, b) in y.index_axis(Axis(0), row).iter().zip(&alone) {
                    assert!((a - b).abs() < 1e-5, "rows {rows}, row {row}: {a} vs {b}");
                }
            }
            assert_eq!(infer(&model, &x).unwrap(), y, "rows {rows}: a second call");
        }
    }

    #[test]
    fn samples_of_another_width_than_the_models_are_an_error() {
        let model = Linear::new(4, 1, Init::default(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let err = infer(&model, &Tensor::zeros(&[2, 3][..])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "infer: expected samples of width 4 (the input width of the model's first layer), \
             found a batch of shape [2, 3]"
        );
    }

    #[test]
    fn images_an_image_model_cannot_take_are_an_error_in_one_block_or_several() {
        let _ = crate::set_num_threads(2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let conv = crate::Conv2d::new(1, 2, [3, 3], Default::default(), Init::default(), &mut rng);
        let model = Sequential::new(vec![Box::new(conv.unwrap())]).unwrap();
        // channels last by mistake: [N, H, W, C]
        for rows in [1, 200] {
            let err = infer(&model, &Tensor::zeros(&[rows, 8, 8, 1][..])).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "infer: expected samples the model can take, found a batch of shape \
                     [{rows}, 8, 8, 1], on which the model panics: conv2d: "
                )),
                "{text}"
            );
        }
        // and the next call on good images runs
        assert_eq!(
            infer(&model, &Tensor::zeros(&[2, 1, 8, 8][..]))
                .unwrap()
                .shape(),
            [2, 2, 6, 6]
        );
    }

    /// A model that reduces the batch: one output row, the batch's column sums.
    struct BatchSums;

    impl Module for BatchSums {
        fn forward<'t>(&self, x: crate::Var<'t>, _mode: Mode) -> crate::Var<'t> {
            x.sum_axis(0).reshape(&[1, x.shape()[1]])
        }
        fn visit_params(&self, _: &mut dyn FnMut(&str, &crate::Param)) {}
        fn visit_params_mut(&mut self, _: &mut dyn FnMut(&str, &mut crate::Param)) {}
    }

    #[test]
    fn a_model_that_reduces_the_batch_sees_all_of_it_at_once() {
        let _ = crate::set_num_threads(2);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for rows in [100, 300] {
            let x = uniform(&[rows, 3], -1.0, 1.0, &mut rng).unwrap();
            let sums = x.sum_axis(Axis(0));
            let y = infer(&BatchSums, &x).unwrap();
            assert_eq!(y.shape(), [1, 3], "rows {rows}");
            for (a, b) in y.iter().zip(&sums) {
                assert!((a - b).abs() < 1e-4, "rows {rows}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn an_empty_batch_is_an_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let model = Linear::new(2, 2, Init::default(), &mut rng).unwrap();
        let err = infer(&model, &Tensor::zeros(ndarray::IxDyn(&[0, 2]))).unwrap_err();
        assert!(err.to_string().contains("at least one sample"), "{err}");
        assert!(infer(&model, &Tensor::zeros(ndarray::IxDyn(&[]))).is_err());
    }
}
