//! The shards of one data-parallel training step, and the one collective they need: a sum
//! across shards (an all-reduce), so that a layer that takes statistics over the batch
//! (batch normalization) sees the whole batch's and not its shard's (PyTorch's
//! `SyncBatchNorm`, here across threads).
//!
//! Every shard must reach the same collectives in the same order, as with MPI: shards run the
//! same model, so their forward and backward passes record and replay the same ops. A shard
//! that panics releases the others (they panic too, with a message saying why) instead of
//! leaving them waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A sum of `f64` values over the processes of a distributed step (an MPI all-reduce),
/// called once per collective after the shards of this process have been added up. It
/// returns whether the values are now the sums over every process: false once the step is
/// dropped because a process failed its checks (the values then stay this process's).
#[derive(Clone)]
pub(crate) struct CrossSum(pub(crate) Arc<SumFn>);

/// What a [`CrossSum`] calls: values in, their sums over the processes out, and whether they
/// are.
pub(crate) type SumFn = dyn Fn(&mut [f64]) -> bool + Send + Sync;

impl std::fmt::Debug for CrossSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrossSum")
    }
}

/// The shards of one training step, all running at once on threads of their own.
#[derive(Debug)]
pub(crate) struct ShardGroup {
    shards: usize,
    /// Whether this step's shards can wait for each other: true when each runs on a thread
    /// of its own. When false, a collective sums the calling shard alone and marks the step
    /// as one to run again with waiting shards ([`ShardGroup::needed_waiting`]).
    can_wait: bool,
    /// Set by the first collective: the model needs the whole batch at some point.
    used: AtomicBool,
    /// Set when a sum over the processes did not happen (the step is dropped): the sums
    /// are no longer the whole batch's.
    partial: AtomicBool,
    round: Mutex<Round>,
    turn: Condvar,
    /// The sum over the other processes of a distributed step, if any: every collective of
    /// a group that can wait ends with it, so a batch norm sees the global batch.
    across: Option<CrossSum>,
}

/// Where the current collective stands.
#[derive(Debug)]
struct Round {
    /// Collectives completed so far.
    done: u64,
    /// Shards that have brought their values to the current one.
    arrived: usize,
    /// Each shard's values for the current collective.
    slots: Vec<Vec<f64>>,
    /// The sum of the last completed collective, in shard order.
    total: Vec<f64>,
    /// Set when a shard panicked: nobody waits any more.
    aborted: bool,
}

/// One shard's handle on its [`ShardGroup`], kept by its tape.
#[derive(Debug, Clone)]
pub(crate) struct ShardMember {
    group: Arc<ShardGroup>,
    index: usize,
}

impl ShardGroup {
    /// A group of `shards` shards; `can_wait` says whether they run at once on threads of
    /// their own (so that a collective may wait for all of them).
    pub(crate) fn new(shards: usize, can_wait: bool) -> Arc<Self> {
        Self::across(shards, can_wait, None)
    }

    /// A group as [`ShardGroup::new`] makes it whose collectives, when its shards can wait,
    /// also sum over the processes of a distributed step with `across`.
    pub(crate) fn across(shards: usize, can_wait: bool, across: Option<CrossSum>) -> Arc<Self> {
        Arc::new(ShardGroup {
            across,
            shards,
            can_wait,
            used: AtomicBool::new(false),
            partial: AtomicBool::new(false),
            round: Mutex::new(Round {
                done: 0,
                arrived: 0,
                slots: vec![Vec::new(); shards],
                total: Vec::new(),
                aborted: false,
            }),
            turn: Condvar::new(),
        })
    }

    /// The handle of shard `index`.
    pub(crate) fn member(self: &Arc<Self>, index: usize) -> ShardMember {
        debug_assert!(index < self.shards, "internal error: shard index");
        ShardMember {
            group: Arc::clone(self),
            index,
        }
    }

    /// Whether some shard asked for a collective.
    pub(crate) fn used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// Whether a collective was asked for in a group whose shards cannot wait for each
    /// other: the step's results are shard-local and it must run again.
    pub(crate) fn needed_waiting(&self) -> bool {
        !self.can_wait && self.used()
    }

    /// Releases every shard waiting in a collective (they panic): called when a shard
    /// panicked, which would otherwise leave them waiting for it forever.
    pub(crate) fn abort(&self) {
        self.lock().aborted = true;
        self.turn.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        // a panic while the lock was held aborts the group; the state is still readable
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ShardMember {
    /// Whether this shard's values are those of the whole batch after
    /// [`ShardMember::sum`]: false when the shards of the step cannot wait for each other,
    /// or when the step is dropped on every process because one failed its checks.
    pub(crate) fn sums_whole_batch(&self) -> bool {
        self.group.can_wait && !self.group.partial.load(Ordering::Acquire)
    }

    /// Whether this is the step's first shard, the one that updates state kept across steps
    /// (such as running statistics) once for the whole batch.
    pub(crate) fn is_lead(&self) -> bool {
        self.index == 0
    }

    /// Replaces `values` by their sum over every shard of the step, added in shard order
    /// (the same numbers in every shard and on every run), and marks the group as one whose
    /// model needs the whole batch. Waits for the other shards.
    ///
    /// # Panics
    /// When another shard of the step panicked, or when the shards bring different numbers
    /// of values (they do not run the same model).
    pub(crate) fn sum(&self, values: &mut [f64]) {
        self.group.used.store(true, Ordering::Release);
        self.all_reduce(values);
    }

    /// The step's total loss from this shard's `loss`, so that all shards agree on whether to
    /// go backward; unlike [`ShardMember::sum`] it does not mark the model as needing the
    /// whole batch, and it adds nothing when the shards cannot wait.
    pub(crate) fn total_loss(&self, loss: f64) -> f64 {
        let mut total = [loss];
        self.all_reduce(&mut total);
        total[0]
    }

    fn all_reduce(&self, values: &mut [f64]) {
        let group = &*self.group;
        if !group.can_wait {
            return;
        }
        let mut round = group.lock();
        assert!(
            !round.aborted,
            "another shard of this training step panicked"
        );
        let this_round = round.done;
        round.slots[self.index].clear();
        round.slots[self.index].extend_from_slice(values);
        round.arrived += 1;
        if round.arrived == group.shards {
            let Round { slots, total, .. } = &mut *round;
            total.clear();
            total.resize(values.len(), 0.0);
            for slot in slots.iter() {
                assert_eq!(
                    slot.len(),
                    total.len(),
                    "internal error: the shards of a step summed different numbers of values"
                );
                for (t, v) in total.iter_mut().zip(slot) {
                    *t += v;
                }
            }
            // the other shards wait on the lock: one MPI call at a time in this process
            if let Some(across) = &group.across
                && !(across.0)(total)
            {
                group.partial.store(true, Ordering::Release);
            }
            round.arrived = 0;
            round.done += 1;
            group.turn.notify_all();
        } else {
            while round.done == this_round && !round.aborted {
                round = group.turn.wait(round).unwrap_or_else(|e| e.into_inner());
            }
            assert!(
                !round.aborted,
                "another shard of this training step panicked"
            );
        }
        values.copy_from_slice(&round.total);
    }
}

/// Aborts its group when dropped during a panic: held by each shard's thread for the
/// shard's whole run.
pub(crate) struct AbortOnPanic<'a>(pub(crate) &'a ShardGroup);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_gets_the_sum_in_shard_order_round_after_round() {
        let group = ShardGroup::new(3, true);
        let results: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|index| {
                    let member = group.member(index);
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for round in 0..50 {
                            let mut values = [index as f64, (round * index) as f64];
                            member.sum(&mut values);
                            out.extend(values);
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let expected: Vec<f64> = (0..50).flat_map(|r| [3.0, (r * 3) as f64]).collect();
        for result in &results {
            assert_eq!(result, &expected);
        }
        assert!(group.used() && !group.needed_waiting());
    }

    #[test]
    fn a_shard_that_panics_releases_the_others() {
        let group = ShardGroup::new(2, true);
        let waiter = group.member(0);
        let outcome = std::thread::scope(|scope| {
            let waiting = scope.spawn(move || {
                let mut values = [1.0];
                waiter.sum(&mut values);
            });
            let failing = scope.spawn(|| {
                let _abort = AbortOnPanic(&group);
                panic!("shard 1 fails before its collective");
            });
            (waiting.join().is_err(), failing.join().is_err())
        });
        assert_eq!(outcome, (true, true));
    }

    #[test]
    fn shards_that_cannot_wait_sum_alone_and_ask_for_a_rerun() {
        let group = ShardGroup::new(2, false);
        let member = group.member(1);
        let mut values = [2.0, 5.0];
        member.sum(&mut values);
        assert_eq!(values, [2.0, 5.0]);
        assert!(!member.sums_whole_batch() && !member.is_lead());
        assert!(group.needed_waiting());
    }
}
