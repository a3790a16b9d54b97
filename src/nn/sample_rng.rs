//! Random numbers that do not depend on how a batch is split: [`SampleRng`].

use crate::autograd::{StepRows, Tape};
use crate::nn::{Param, Walk};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, MutexGuard};

/// A layer's random generator that gives every sample of a batch its own stream, so that a
/// random layer (such as [`Dropout`](crate::Dropout)) draws the same numbers for a sample
/// whichever shard of a data-parallel [`TrainStep`](crate::TrainStep) computes it, and however
/// many shards there are.
///
/// It is counter-based, like JAX's keys or PyTorch's Philox generator on CUDA: each step, the
/// layer's own [`ChaCha8Rng`] (seeded once from the caller's generator) gives one 64-bit key;
/// sample `r` of the step (its row in the whole batch, not in the shard) then draws from
/// ChaCha8 keyed by that key on stream `r`. A tape that [`TrainStep`](crate::TrainStep) runs
/// knows its step and its first row ([`Tape::step_rows`]), so all shards of one step share the
/// key; on any other tape each call is a step of its own and takes a fresh key.
///
/// The layer's generator is what a checkpoint saves ([`Module::visit_rngs`](crate::Module)),
/// so a resumed run draws the same numbers as an uninterrupted one. One layer called twice
/// in one [`TrainStep`](crate::TrainStep) step draws other streams the second time (a key
/// derived from the step's key and the call), as a PyTorch `nn.Dropout` used twice in one
/// forward pass draws two independent masks.
///
/// # Examples
/// ```
/// use tapegrad::{ChaCha8Rng, Rng, SampleRng, SeedableRng, Tape};
/// let noise = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0));
/// let tape = Tape::new();
/// let batch = noise.for_batch(&tape);
/// let a = batch.sample(0).next_u64();
/// let b = batch.sample(1).next_u64();
/// assert_ne!(a, b); // each sample has its own stream
/// assert_eq!(a, batch.sample(0).next_u64()); // and it is reproducible
/// // a new call on a tape outside TrainStep is a new step: new numbers
/// assert_ne!(a, noise.for_batch(&tape).sample(0).next_u64());
/// ```
#[derive(Debug)]
pub struct SampleRng {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    /// The [`TrainStep`](crate::TrainStep) step the key was drawn for.
    step: Option<u64>,
    key: u64,
    /// The tape's draw ([`Tape::next_random_draw`]) of the layer's first call in that step,
    /// which uses `key` itself; later calls use a key derived from it.
    first_draw: u64,
}

impl SampleRng {
    /// A generator seeded from `rng` (one draw of it).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Rng, SampleRng, SeedableRng, Tape};
    /// let a = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(7));
    /// let b = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(7));
    /// let tape = Tape::new();
    /// // the same seed gives the same streams
    /// assert_eq!(a.for_batch(&tape).sample(0).next_u64(), b.for_batch(&tape).sample(0).next_u64());
    /// ```
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        SampleRng {
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
                step: None,
                key: 0,
                first_draw: 0,
            }),
        }
    }

    /// The streams of the samples of the batch on `tape`: the key of `tape`'s step (drawn
    /// now if this is the step's first call; for a later call of the same step, a key derived
    /// from it and the call) and the row where the tape's samples start.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Rng, SampleRng, SeedableRng, Tape};
    /// let noise = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0));
    /// let tape = Tape::new();
    /// let (first, second) = (noise.for_batch(&tape), noise.for_batch(&tape));
    /// assert_ne!(first, second); // outside TrainStep each call is a new step
    /// assert_ne!(first.sample(0).next_u64(), second.sample(0).next_u64());
    /// ```
    pub fn for_batch(&self, tape: &Tape) -> BatchRng {
        let mut state = self.lock();
        match tape.step_rows() {
            Some(StepRows { step, first_row }) => {
                let draw = tape.next_random_draw();
                if state.step != Some(step) {
                    state.key = state.rng.next_u64();
                    state.step = Some(step);
                    state.first_draw = draw;
                }
                let key = match draw == state.first_draw {
                    true => state.key,
                    false => later_call_key(state.key, draw),
                };
                BatchRng { key, first_row }
            }
            None => BatchRng {
                key: state.rng.next_u64(),
                first_row: 0,
            },
        }
    }

    /// The layer's generator as it stands (what a checkpoint saves).
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, SampleRng, SeedableRng, Tape};
    /// let noise = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0));
    /// let saved = noise.generator();
    /// assert_eq!(saved, noise.generator()); // unchanged until a batch draws its key
    /// noise.for_batch(&Tape::new());
    /// assert_ne!(saved, noise.generator());
    /// ```
    pub fn generator(&self) -> ChaCha8Rng {
        self.lock().rng.clone()
    }

    /// The layer's generator, to restore it from a checkpoint.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, SampleRng, SeedableRng, Tape};
    /// let mut noise = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0));
    /// let saved = noise.generator();
    /// let tape = Tape::new();
    /// let first = noise.for_batch(&tape);
    /// *noise.generator_mut() = saved; // restore, as a checkpoint does
    /// assert_eq!(noise.for_batch(&tape), first); // the same key again
    /// ```
    pub fn generator_mut(&mut self) -> &mut ChaCha8Rng {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.step = None;
        &mut state.rng
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The key of a layer's call in a step other than its first, the tape's `draw`-th: the
/// step's key and the draw mixed by SplitMix64's finalizer (Steele et al., 2014), so that
/// nearby draws give unrelated keys.
fn later_call_key(key: u64, draw: u64) -> u64 {
    let mut z = key ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A module walks its `SampleRng` as the generator it keeps (what a checkpoint saves).
impl Walk for SampleRng {
    fn walk_params(&self, _path: &str, _f: &mut dyn FnMut(&str, &Param)) {}

    fn walk_params_mut(&mut self, _path: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    fn walk_rngs(&self, path: &str, f: &mut dyn FnMut(&str, &ChaCha8Rng)) {
        f(path, &self.generator())
    }

    fn walk_rngs_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut ChaCha8Rng)) {
        f(path, self.generator_mut())
    }
}

/// The random streams of one batch's samples, from [`SampleRng::for_batch`].
///
/// # Examples
/// ```
/// use tapegrad::{BatchRng, ChaCha8Rng, Rng, SampleRng, SeedableRng, Tape};
/// let noise = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0));
/// let batch: BatchRng = noise.for_batch(&Tape::new());
/// let copy = batch; // Copy: hand it to the threads of a layer
/// assert_eq!(copy.sample(3).next_u64(), batch.sample(3).next_u64());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRng {
    key: u64,
    first_row: usize,
}

impl BatchRng {
    /// The generator of the batch's sample `row` (counted from the tape's first row): ChaCha8
    /// keyed by the step's key, on the stream of the sample's row in the whole batch.
    ///
    /// # Examples
    /// ```
    /// use tapegrad::{ChaCha8Rng, Rng, SampleRng, SeedableRng, Tape};
    /// let batch = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(0)).for_batch(&Tape::new());
    /// let draws: Vec<u64> = (0..3).map(|row| batch.sample(row).next_u64()).collect();
    /// assert_ne!(draws[0], draws[1]); // one stream per row
    /// assert_eq!(draws[2], batch.sample(2).next_u64()); // the same row, the same numbers
    /// ```
    pub fn sample(&self, row: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.key);
        rng.set_stream((self.first_row + row) as u64);
        rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rng: &mut ChaCha8Rng) -> [u32; 4] {
        std::array::from_fn(|_| rng.next_u32())
    }

    #[test]
    fn shards_of_one_step_draw_what_one_tape_draws() {
        let seeded = || SampleRng::new(&mut ChaCha8Rng::seed_from_u64(3));
        let (whole, split) = (seeded(), seeded());
        let one = Tape::new();
        one.set_step_rows(Some(StepRows {
            step: 10,
            first_row: 0,
        }));
        let (a, b) = (Tape::new(), Tape::new());
        a.set_step_rows(Some(StepRows {
            step: 20,
            first_row: 0,
        }));
        b.set_step_rows(Some(StepRows {
            step: 20,
            first_row: 5,
        }));
        let all = whole.for_batch(&one);
        // the second shard asks first: the key does not depend on the order
        let (second, first) = (split.for_batch(&b), split.for_batch(&a));
        for row in 0..5 {
            assert_eq!(draws(&mut all.sample(row)), draws(&mut first.sample(row)));
            assert_eq!(
                draws(&mut all.sample(row + 5)),
                draws(&mut second.sample(row))
            );
        }
        assert_ne!(draws(&mut all.sample(0)), draws(&mut all.sample(1)));
        // the next step draws a new key
        b.set_step_rows(Some(StepRows {
            step: 21,
            first_row: 5,
        }));
        assert_ne!(second, split.for_batch(&b));
    }

    #[test]
    fn a_second_call_in_a_step_draws_other_streams_the_same_on_every_shard() {
        let seeded = || SampleRng::new(&mut ChaCha8Rng::seed_from_u64(4));
        let (whole, split) = (seeded(), seeded());
        let tape = |step, first_row| {
            let tape = Tape::new();
            tape.set_step_rows(Some(StepRows { step, first_row }));
            tape
        };
        let one = tape(30, 0);
        let calls = [whole.for_batch(&one), whole.for_batch(&one)];
        assert_ne!(calls[0], calls[1]);
        assert_ne!(
            draws(&mut calls[0].sample(2)),
            draws(&mut calls[1].sample(2))
        );
        let (a, b) = (tape(40, 0), tape(40, 3));
        // interleaved across the shards: each shard's n-th call matches the whole tape's
        let (a0, b0, b1, a1) = (
            split.for_batch(&a),
            split.for_batch(&b),
            split.for_batch(&b),
            split.for_batch(&a),
        );
        for (call, (first, second)) in [(a0, b0), (a1, b1)].into_iter().enumerate() {
            assert_eq!(
                draws(&mut calls[call].sample(1)),
                draws(&mut first.sample(1))
            );
            assert_eq!(
                draws(&mut calls[call].sample(4)),
                draws(&mut second.sample(1))
            );
        }
    }

    #[test]
    fn the_generator_round_trips_and_a_restore_forgets_the_step() {
        let mut rng = SampleRng::new(&mut ChaCha8Rng::seed_from_u64(1));
        let saved = rng.generator();
        let tape = Tape::new();
        tape.set_step_rows(Some(StepRows {
            step: 7,
            first_row: 0,
        }));
        let first = rng.for_batch(&tape);
        *rng.generator_mut() = saved;
        // restored: the same step draws its key again, from the restored generator
        assert_eq!(rng.for_batch(&tape), first);
    }
}
