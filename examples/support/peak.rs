//! The machine's measured f32 FMA peak, so that a benchmark can report its useful FLOP/s as a
//! fraction of what the cores can do at most, shared by the speed benchmarks (`bench_mlp`,
//! `bench_cnn`) and the criterion benches.
//!
//! The probe runs independent chains of fused multiply-adds `x ← x·a + b` on the widest vector
//! unit the CPU has, detected at run time: AVX-512F (`_mm512_fmadd_ps`, 16 lanes), else AVX2
//! with FMA (`_mm256_fmadd_ps`, 8 lanes), else scalar `f32::mul_add`. Each thread keeps
//! [`CHAINS`] accumulators, enough to cover the FMA latency times the FMA ports of current x86
//! cores, so the loop is bound by FMA throughput, not latency. An FMA counts as 2 FLOPs, as in
//! every vendor's peak figure. The loop runs a fixed number of iterations (calibrated once to
//! last about [`RUN`]), the best of [`REPEATS`] runs counts, first on one thread, then on the
//! run's `threads` threads at once (each its own chains, started together behind a barrier).
//!
//! The N-thread figure is the peak a run on N threads can reach. The probe also says whether
//! the threads really add FMA throughput: two SMT siblings of one core share its FMA units, so
//! two threads on them are barely faster than one.
//!
//! Each thread's rate counts only the time it ran on a CPU: the wall time minus the time it
//! waited for one while other work had it (Linux's `/proc/thread-self/schedstat`; wall time
//! alone elsewhere). So a busy machine lowers the peak little, while it does slow the workload:
//! the fraction of peak of such a run is low, and [`Peak::waited`] says so.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use tapegrad::Error;

/// Independent accumulator chains per thread. FMA latency is 4 cycles and there are 2 FMA
/// ports on Zen 2–5 and on Intel cores since Skylake, so 8 FMAs must be in flight at once; 12
/// leave headroom and, with the two operands, still fit AVX2's 16 vector registers.
pub const CHAINS: usize = 12;
/// How long one timed run of the probe lasts, about (the iteration count is calibrated once).
pub const RUN: Duration = Duration::from_millis(60);
/// Timed runs per measurement; the fastest counts.
pub const REPEATS: usize = 3;
/// The N threads add FMA throughput when their peak reaches this share of N times the
/// 1-thread peak (at N = 2: 1.5 times the 1-thread peak).
pub const SCALING_RULE: f64 = 0.75;
/// A run whose threads waited for a CPU more than this share of the time ran on a busy
/// machine.
pub const BUSY: f64 = 0.1;

/// The instruction set the probe used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit vectors: 16 f32 lanes per FMA.
    Avx512F,
    /// 256-bit vectors with fused multiply-add: 8 f32 lanes per FMA.
    Avx2Fma,
    /// One f32 per `mul_add` (CPUs without AVX2+FMA, and other architectures). The compiler
    /// may vectorize the independent chains, and without a hardware FMA `mul_add` is a slow
    /// library call, so on such machines this peak is only a rough figure.
    Scalar,
}

impl Isa {
    /// The widest FMA unit of this CPU, detected at run time.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512F;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Scalar
    }

    /// f32 lanes per FMA instruction.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512F => 16,
            Isa::Avx2Fma => 8,
            Isa::Scalar => 1,
        }
    }

    /// The name used in the JSON lines: `"avx512f"`, `"avx2+fma"` or `"scalar"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512F => "avx512f",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Scalar => "scalar",
        }
    }
}

/// The FMA peak measured for a run on `threads` threads.
#[derive(Clone, Debug)]
pub struct Peak {
    /// The instruction set the probe used.
    pub isa: Isa,
    /// The run's thread count.
    pub threads: usize,
    /// GFLOP/s of all `threads` threads running at once (the sum of each thread's FLOP per
    /// second it ran): the peak of the run.
    pub gflops: f64,
    /// GFLOP/s of one thread alone (per second it ran).
    pub one_thread_gflops: f64,
    /// Whether the threads add FMA throughput: `true` for one thread, else whether
    /// `gflops ≥ SCALING_RULE · threads · one_thread_gflops`.
    pub threads_add_throughput: bool,
    /// The share of the fastest timed runs the probe's threads spent waiting for a CPU
    /// (Linux's schedstat; `None` elsewhere), the larger of the 1-thread and N-thread runs'.
    /// Above [`BUSY`] other work shared the CPUs: a workload timed beside the probe runs slow
    /// and noisy (the peak, which counts running time only, much less so).
    pub waited: Option<f64>,
}

impl Peak {
    /// Measures the peak for `threads` threads, each timed run lasting about [`RUN`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `threads` is 0.
    pub fn measure(threads: usize) -> Result<Peak, Error> {
        Peak::measure_for(threads, RUN)
    }

    /// Measures the peak for `threads` threads, each timed run lasting about `run` (tests
    /// use a short one; below about 20 ms the figure gets noisy).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `threads` is 0 or `run` is shorter than 1 ms.
    pub fn measure_for(threads: usize, run: Duration) -> Result<Peak, Error> {
        if threads == 0 {
            return Err(Error::InvalidArgument {
                op: "fma peak",
                message: "needs at least 1 thread, got 0".into(),
            });
        }
        if run < Duration::from_millis(1) {
            return Err(Error::InvalidArgument {
                op: "fma peak",
                message: format!("a timed run must last at least 1 ms, got {run:?}"),
            });
        }
        let isa = Isa::detect();
        // Calibrate on one thread (this also warms the core up to its vector clock):
        // quadruple the iterations until a run lasts an eighth of `run`, then scale.
        let mut iterations: u64 = 1 << 10;
        let mut secs = timed(isa, 1, iterations).min_running_secs;
        while secs < run.as_secs_f64() / 8.0 {
            iterations *= 4;
            secs = timed(isa, 1, iterations).min_running_secs;
        }
        let iterations = ((iterations as f64 * run.as_secs_f64() / secs).ceil() as u64).max(1);
        let flop_per_thread = iterations as f64 * (CHAINS * isa.lanes() * 2) as f64;
        let best = |threads: usize| {
            (0..REPEATS)
                .map(|_| timed(isa, threads, iterations))
                .map(|t| (flop_per_thread * t.per_running_sec / 1e9, t.waited))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .expect("REPEATS > 0")
        };
        let (one_thread_gflops, one_waited) = best(1);
        let (gflops, all_waited) = match threads {
            1 => (one_thread_gflops, one_waited),
            n => best(n),
        };
        Ok(Peak {
            isa,
            threads,
            gflops,
            one_thread_gflops,
            threads_add_throughput: threads == 1
                || gflops >= SCALING_RULE * threads as f64 * one_thread_gflops,
            waited: one_waited.zip(all_waited).map(|(a, b)| a.max(b)),
        })
    }

    /// `useful_gflops` as a fraction of the peak (between 0 and 1 when the probe is right).
    pub fn fraction(&self, useful_gflops: f64) -> f64 {
        useful_gflops / self.gflops
    }

    /// One line for people, e.g. `FMA peak (avx2+fma, f32): 2 threads 140.3 GFLOP/s,
    /// 1 thread 70.2 GFLOP/s; the 2 threads add FMA throughput (2.00×)`, with a warning when
    /// the threads do not add throughput or the machine was busy.
    pub fn describe(&self) -> String {
        let (n, isa, one) = (self.threads, self.isa.name(), self.one_thread_gflops);
        let mut line = match n {
            1 => format!("FMA peak ({isa}, f32): 1 thread {one:.1} GFLOP/s"),
            _ => format!(
                "FMA peak ({isa}, f32): {n} threads {:.1} GFLOP/s, 1 thread {one:.1} GFLOP/s",
                self.gflops
            ),
        };
        let scaling = self.gflops / one;
        let busy = self.waited.filter(|&w| w > BUSY);
        if n > 1 && self.threads_add_throughput {
            line += &format!("; the {n} threads add FMA throughput ({scaling:.2}×)");
        } else if n > 1 {
            let cause = match busy {
                Some(_) => {
                    "they share a core's FMA units (SMT siblings, or vCPUs on one host core), or other work on this busy machine does"
                }
                None => "they share a core's FMA units (SMT siblings, or vCPUs on one host core)",
            };
            line += &format!(
                "; WARNING: the {n} threads do not add FMA throughput ({scaling:.2}×, expected at \
                 least {:.2}×): {cause}",
                SCALING_RULE * n as f64
            );
        }
        if let Some(waited) = busy {
            line += &format!(
                "; WARNING: busy machine, the probe's threads waited {:.0}% of their time for a \
                 CPU, so timings taken now are low and noisy",
                100.0 * waited
            );
        }
        line
    }

    /// The probe's fields for a JSON line, without braces: `"peak_isa": "avx2+fma",
    /// "peak_gflops": 140.3, "peak_gflops_1thread": 70.2, "threads_add_throughput": true,
    /// "peak_wait_share": 0.002` (`null` when unknown).
    pub fn json_fields(&self) -> String {
        format!(
            "\"peak_isa\": \"{}\", \"peak_gflops\": {:.1}, \"peak_gflops_1thread\": {:.1}, \"threads_add_throughput\": {}, \"peak_wait_share\": {}",
            self.isa.name(),
            self.gflops,
            self.one_thread_gflops,
            self.threads_add_throughput,
            self.waited
                .map_or("null".to_string(), |w| format!("{w:.3}"))
        )
    }
}

/// One timed run of some threads.
struct Timing {
    /// `Σ 1 / running seconds` over the threads: times the FLOP of one thread, their
    /// throughput together.
    per_running_sec: f64,
    /// The shortest thread's running seconds.
    min_running_secs: f64,
    /// The share of the threads' wall time they spent waiting for a CPU, if the system says.
    waited: Option<f64>,
}

/// Times `threads` threads each running `iterations` rounds of the chains.
fn timed(isa: Isa, threads: usize, iterations: u64) -> Timing {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant, Option<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let wait_before = run_delay_ns();
                    let start = Instant::now();
                    chains(isa, black_box(iterations));
                    let end = Instant::now();
                    let waited = wait_before.zip(run_delay_ns()).map(|(a, b)| b - a);
                    (start, end, waited)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    let (mut per_running_sec, mut min_running_secs) = (0.0, f64::INFINITY);
    let (mut wall, mut waited) = (0.0, Some(0.0));
    for (start, end, wait_ns) in spans {
        let secs = (end - start).as_secs_f64();
        let wait = wait_ns.map(|ns| (ns as f64 / 1e9).min(secs));
        // a thread that only waited (clock granularity) counts its wall time
        let running = match secs - wait.unwrap_or(0.0) {
            r if r > 0.0 => r,
            _ => secs,
        };
        per_running_sec += 1.0 / running;
        min_running_secs = min_running_secs.min(running);
        wall += secs;
        waited = waited.zip(wait).map(|(a, b)| a + b);
    }
    Timing {
        per_running_sec,
        min_running_secs,
        waited: waited.map(|w| w / wall),
    }
}

/// Nanoseconds the calling thread has spent runnable but waiting for a CPU (the second field
/// of Linux's `/proc/thread-self/schedstat`, exact for the waits that have ended), if known.
fn run_delay_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `iterations` rounds of [`CHAINS`] independent FMAs with `isa`.
fn chains(isa: Isa, iterations: u64) {
    match isa {
        // SAFETY: `Isa::detect` returns `Avx512F` only when the CPU has AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512F => unsafe { x86::avx512(iterations) },
        // SAFETY: `Isa::detect` returns `Avx2Fma` only when the CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { x86::avx2_fma(iterations) },
        _ => scalar(iterations),
    }
}

/// The chains start at distinct values unknown to the compiler, and end in `black_box`, so
/// that they can neither be merged nor folded away. With `a` just below 1 and `b` small, `x`
/// converges to `b / (1 − a)`: no overflow, no subnormals.
const A: f32 = 0.999_9;
const B: f32 = 1e-4;

fn scalar(iterations: u64) {
    let (a, b) = (black_box(A), black_box(B));
    let mut acc: [f32; CHAINS] = black_box(std::array::from_fn(|i| i as f32));
    for _ in 0..iterations {
        for x in &mut acc {
            *x = x.mul_add(a, b);
        }
    }
    black_box(acc);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{A, B, CHAINS};
    use std::arch::x86_64::{
        __m256, __m512, _mm256_fmadd_ps, _mm256_set1_ps, _mm512_fmadd_ps, _mm512_set1_ps,
    };
    use std::hint::black_box;

    #[target_feature(enable = "avx512f")]
    pub fn avx512(iterations: u64) {
        let (a, b) = (_mm512_set1_ps(black_box(A)), _mm512_set1_ps(black_box(B)));
        let mut acc: [__m512; CHAINS] = [_mm512_set1_ps(0.0); CHAINS];
        for (i, x) in acc.iter_mut().enumerate() {
            *x = _mm512_set1_ps(black_box(i as f32));
        }
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn avx2_fma(iterations: u64) {
        let (a, b) = (_mm256_set1_ps(black_box(A)), _mm256_set1_ps(black_box(B)));
        let mut acc: [__m256; CHAINS] = [_mm256_set1_ps(0.0); CHAINS];
        for (i, x) in acc.iter_mut().enumerate() {
            *x = _mm256_set1_ps(black_box(i as f32));
        }
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        black_box(acc);
    }
}
