//! The buffer pool a [`Tape`](crate::Tape) owns: the `Vec<f32>` buffers of one step's values
//! and gradients, handed back at reset and reused by the next step's ops and backward rules,
//! so that a steady training loop stops allocating after its first step.

use crate::tensor::{Elem, SharedTensor, Tensor};
use ndarray::{ArrayViewD, IxDyn, ShapeBuilder};
use std::cell::{Cell, RefCell};

/// Buffers kept for reuse, with a count of those requested since the last
/// [`BufferPool::reclaim`].
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    buffers: RefCell<Vec<Vec<Elem>>>,
    /// Buffers requested since the last reclaim.
    taken: Cell<usize>,
}

/// How many times larger than asked a pooled buffer may be and still be handed out
/// ([`BufferPool::take_dirty_buffer`]).
const OVERSIZE: usize = 4;

/// Elements a pooled buffer may exceed the request by whatever its size, so that tiny values
/// still share buffers.
const SMALL: usize = 1024;

impl BufferPool {
    /// An empty pool.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether no buffer was requested since the last reclaim.
    pub(crate) fn is_untouched(&self) -> bool {
        self.taken.get() == 0
    }

    /// Takes back the buffers of a finished step's values (those that nothing else holds),
    /// then keeps as many buffers as the step asked for (at least `step_values`), newest
    /// first, so the pool serves a steady loop without growing without bound.
    pub(crate) fn reclaim(&mut self, values: impl Iterator<Item = SharedTensor>) {
        let mut step_values = 0;
        let pool = self.buffers.get_mut();
        for value in values {
            step_values += 1;
            // Only the last of several values sharing one buffer gets it back.
            if let Ok(owned) = value.try_into_owned_nocopy() {
                pool.push(owned.into_raw_vec_and_offset().0);
            }
        }
        let keep = self.taken.replace(0).max(step_values) + 16;
        if pool.len() > keep {
            pool.drain(..pool.len() - keep);
        }
    }

    /// Puts a tensor's buffer in the pool for reuse.
    pub(crate) fn reuse(&self, tensor: Tensor) {
        self.buffers
            .borrow_mut()
            .push(tensor.into_raw_vec_and_offset().0);
    }

    /// Puts a shared value's buffer in the pool when nothing else holds it.
    pub(crate) fn reuse_value(&self, value: SharedTensor) {
        if let Ok(owned) = value.try_into_owned_nocopy() {
            self.reuse(owned);
        }
    }

    /// A tensor of `shape` whose elements come from `values` (in row-major order), built in a
    /// pooled buffer when one is large enough.
    pub(crate) fn collect(&self, shape: &[usize], values: impl Iterator<Item = Elem>) -> Tensor {
        let len = shape.iter().product();
        let mut buffer = self.take_buffer(len);
        buffer.extend(values);
        Tensor::from_shape_vec(IxDyn(shape), buffer).expect("internal error: collect length")
    }

    /// A copy of `value` in a pooled buffer, in row-major order.
    pub(crate) fn copy(&self, value: ArrayViewD<'_, Elem>) -> Tensor {
        let mut buffer = self.take_buffer(value.len());
        match value.as_slice() {
            // one `memcpy`, which uses the CPU's widest moves (an element-wise `extend`
            // compiles to the baseline's 16-byte moves)
            Some(slice) => buffer.extend_from_slice(slice),
            // lane by lane along the last axis: a lane is one slice or a run at a fixed
            // stride, where the n-d iterator steps a dynamic index for every element
            None => {
                for lane in value.rows() {
                    match lane.as_slice() {
                        Some(run) => buffer.extend_from_slice(run),
                        None => buffer.extend(lane.iter().copied()),
                    }
                }
            }
        }
        Tensor::from_shape_vec(value.raw_dim(), buffer).expect("internal error: copy length")
    }

    /// A zero-filled tensor of `shape`, in a pooled buffer when one is large enough.
    pub(crate) fn zeros(&self, shape: &[usize]) -> Tensor {
        let len = shape.iter().product();
        let mut buffer = self.take_buffer(len);
        // one `memset` rather than the baseline's 16-byte stores
        buffer.resize(len, 0.0);
        Tensor::from_shape_vec(IxDyn(shape), buffer).expect("internal error: zeros length")
    }

    /// A tensor of `shape`, row-major or column-major, whose elements are **unspecified**
    /// (zeros, or values left from an earlier step): for an output a kernel overwrites
    /// completely, such as a matrix product's, so no time goes into zeroing it first.
    pub(crate) fn scratch(&self, shape: &[usize], column_major: bool) -> Tensor {
        let len = shape.iter().product();
        let mut buffer = self.take_dirty_buffer(len, true);
        // keeps the old contents where there are some: only a shorter buffer's tail is filled
        buffer.resize(len, 0.0);
        let tensor = if column_major {
            Tensor::from_shape_vec(IxDyn(shape).f(), buffer)
        } else {
            Tensor::from_shape_vec(IxDyn(shape), buffer)
        };
        tensor.expect("internal error: scratch length")
    }

    /// A buffer from the pool with at least `len` of capacity, cleared.
    fn take_buffer(&self, len: usize) -> Vec<Elem> {
        let mut buffer = self.take_dirty_buffer(len, false);
        buffer.clear();
        buffer
    }

    /// A buffer from the pool with at least `len` of capacity, with whatever it held: the
    /// smallest that fits, or with `filled`, the smallest that already holds `len` elements
    /// if there is one (so that a scratch buffer needs no zeros written to its tail; in a
    /// training loop the same sizes come back every step, so there usually is).
    ///
    /// A buffer more than [`OVERSIZE`] times too large is not taken: a small value would
    /// shrink it, and the large value that needs it next would find it short and fill it
    /// again (measured: 7% of a batch-1 CNN pass went into such refills). The new buffer
    /// joins the pool at the next reclaim, so steady loops still allocate nothing new.
    fn take_dirty_buffer(&self, len: usize, filled: bool) -> Vec<Elem> {
        self.taken.set(self.taken.get() + 1);
        let mut pool = self.buffers.borrow_mut();
        let largest = len.saturating_mul(OVERSIZE).max(len + SMALL);
        let best = (0..pool.len())
            .filter(|&i| (len..=largest).contains(&pool[i].capacity()))
            .min_by_key(|&i| (filled && pool[i].len() < len, pool[i].capacity()));
        match best {
            Some(i) => pool.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_a_strided_view_is_row_major_and_equal() {
        let pool = BufferPool::default();
        let a = Tensor::from_shape_fn(IxDyn(&[3, 4, 5]), |i| (i[0] * 20 + i[1] * 5 + i[2]) as Elem);
        let views = [
            a.view(),
            a.view().permuted_axes(IxDyn(&[2, 0, 1])),
            a.view().reversed_axes(),
            a.slice(ndarray::s![.., 1..3, ..;2]).into_dyn(),
            a.slice(ndarray::s![.., 2, ..]).into_dyn(),
            a.slice(ndarray::s![.., .., 4]).into_dyn(),
            a.slice(ndarray::s![.., 0..0, ..]).into_dyn(),
        ];
        for view in views {
            let copy = pool.copy(view.view());
            assert!(copy.is_standard_layout(), "{:?}", view.strides());
            assert_eq!(copy, view, "{:?}", view.strides());
        }
    }

    #[test]
    fn a_returned_buffer_is_reused_and_counted() {
        let pool = BufferPool::new();
        assert!(pool.is_untouched());
        let a = pool.zeros(&[4, 4]);
        let ptr = a.as_ptr();
        assert!(!pool.is_untouched());
        pool.reuse(a);
        let b = pool.scratch(&[2, 8], false);
        assert_eq!(
            b.as_ptr(),
            ptr,
            "the returned buffer serves the next request"
        );
        assert_eq!(b.shape(), &[2, 8]);
    }

    #[test]
    fn a_scratch_takes_a_buffer_that_already_holds_enough_elements() {
        let pool = BufferPool::new();
        // a large buffer that last held 2 elements, and a smaller one that held 64
        let mut short = Vec::with_capacity(100);
        short.extend([1.0, 2.0]);
        pool.reuse(Tensor::from_shape_vec(IxDyn(&[2]), short).unwrap());
        let full = pool.scratch(&[64], false);
        let full_ptr = full.as_ptr();
        pool.reuse(full);
        // 50 elements: the 64-element buffer needs no tail filled, the other would
        assert_eq!(pool.scratch(&[50], false).as_ptr(), full_ptr);
        // a cleared buffer goes by capacity alone
        let pool = BufferPool::new();
        pool.reuse(Tensor::zeros(IxDyn(&[64])));
        let mut short = Vec::with_capacity(56);
        short.push(0.0);
        let short = Tensor::from_shape_vec(IxDyn(&[1]), short).unwrap();
        let short_ptr = short.as_ptr();
        pool.reuse(short);
        assert_eq!(pool.zeros(&[50]).as_ptr(), short_ptr);
    }

    #[test]
    fn reclaim_keeps_a_bounded_number_of_buffers() {
        let mut pool = BufferPool::new();
        for _ in 0..100 {
            pool.reuse(Tensor::zeros(IxDyn(&[1])));
        }
        pool.reclaim(std::iter::empty());
        assert!(pool.is_untouched());
        assert_eq!(pool.buffers.borrow().len(), 16);
    }
}
