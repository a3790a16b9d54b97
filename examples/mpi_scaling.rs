//! How data-parallel training across hosts would scale (the README's MPI section): measures
//! one training step of the speed workloads W1 (MLP 784-256-256-10, 269,322 parameters,
//! 1.08 MB of gradients) and W2 (the CNN, 421,642 parameters, 1.69 MB) on this machine at
//! several batch sizes per rank, and models `N` hosts that each run one rank like this
//! machine and sum their gradients with a ring all-reduce over a 10 or 100 Gb/s link:
//!
//! ```text
//! t_step(N) = t_compute(b) + t_allreduce(N),  t_allreduce(N) = 2·(N−1)/N · V / bandwidth + 2·(N−1)·α
//! samples/s(N) = N·b / t_step(N)
//! ```
//!
//! with `b` the batch per rank, `V` the gradient bytes and `α` = 20 µs per message (a TCP
//! round on a data-centre Ethernet; RDMA is several times lower). The all-reduce runs after
//! the backward pass, as tapegrad's `TrainStep` does, so nothing overlaps; the tables also
//! say from which `b` an implementation that overlaps the all-reduce with the backward
//! pass (PyTorch DDP's buckets) would hide it, taking the backward pass as 2/3 of a step.
//! Prints Markdown tables and writes `mpi-scaling.svg` to `--out` (default `docs/results`).
//! Takes under a minute; measure on a quiet machine (a loaded machine's slow steps make the
//! communication look cheap). `--rates R1,R2` skips the measurement and models a host that
//! trains W1 at `R1` and W2 at `R2` samples/s whatever the batch (`t_compute = b / R`), for
//! rates measured elsewhere. Expected on a 2-vCPU AMD EPYC with `--threads 2` (the README's
//! table): W1, with little work per sample, hides an overlapped all-reduce on 16 hosts only
//! from about 512 rows per rank at 10 Gb/s and 128 at 100 Gb/s, while W2 hides it from 8 to
//! 16 rows.
//!
//! ```text
//! cargo run --release --example mpi_scaling [-- --threads T --out DIR --rates R1,R2]
//! mpirun -n 2 cargo run --release --features mpi --example mpi_scaling -- --collectives
//! ```
//!
//! `--collectives` (feature `mpi`, under `mpirun`) instead times the two ways of summing
//! W1's gradients over the ranks: one all-reduce of the dense gradients, or an all-gather
//! of each weight's factors (`rows·(in + out)` numbers per rank), at several batches per
//! rank.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/w1.rs"]
mod w1;
#[path = "support/w2.rs"]
mod w2;

use cli::CommandLine;
use plotters::prelude::*;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::prelude::*;

/// Batches per rank measured.
const BATCHES: [usize; 8] = [8, 16, 32, 64, 128, 256, 512, 1024];
/// Hosts modelled.
const HOSTS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
/// Link speeds modelled, Gb/s.
const LINKS: [f64; 2] = [10.0, 100.0];
/// Latency per message of the ring, seconds.
const ALPHA: f64 = 20e-6;
/// Share of a step spent in the backward pass, which an overlapping all-reduce hides behind.
const BACKWARD_SHARE: f64 = 2.0 / 3.0;
/// Measuring time per point, seconds.
const SECONDS_PER_POINT: f64 = 1.0;
/// Timings per point.
const TIMINGS: usize = 10;
const SEED: u64 = 0;

struct Args {
    threads: usize,
    /// Samples/s of one host for W1 and W2 (`--rates`), instead of measuring.
    rates: Option<[f64; 2]>,
    out: PathBuf,
    collectives: bool,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        out: PathBuf::from("docs/results"),
        collectives: false,
        rates: None,
    };
    let mut line = CommandLine::new(include_str!("mpi_scaling.rs"));
    while let Some(flag) = line.next_flag() {
        match flag.as_str() {
            "--threads" => args.threads = line.value(&flag)?,
            "--out" => args.out = line.value(&flag)?,
            "--collectives" => args.collectives = true,
            "--rates" => {
                let rates: Vec<f64> = line.list(&flag)?;
                if rates.len() != 2 || rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
                    return Err(format!(
                        "--rates: expected two finite rates > 0 (W1,W2 samples/s), found {rates:?}"
                    )
                    .into());
                }
                args.rates = Some([rates[0], rates[1]]);
            }
            other => return Err(cli::unknown(other).into()),
        }
    }
    Ok(args)
}

/// A workload: its name, model and sample shape.
struct Workload {
    name: &'static str,
    model: Sequential,
    sample: Vec<usize>,
}

fn workloads() -> tapegrad::Result<Vec<Workload>> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let w1 = w1::w1(&mut rng)?;
    Ok(vec![
        Workload {
            name: "W1",
            model: w1,
            sample: vec![784],
        },
        Workload {
            name: "W2",
            model: w2::w2(false, &mut rng)?,
            sample: vec![1, 28, 28],
        },
    ])
}

/// Seconds of one training step at batch `b`, with random images and labels: the fastest of
/// [`TIMINGS`] timings of as many steps as fill [`SECONDS_PER_POINT`] (the fastest, not the
/// median, because on a machine shared with other jobs the slow timings measure them).
fn step_seconds(work: &mut Workload, b: usize) -> tapegrad::Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + b as u64);
    let x = tensor::uniform(&[b, 784], 0.0, 1.0, &mut rng)?;
    let x = x.into_dimensionality::<ndarray::Ix2>().expect("2-d");
    let data = Dataset::from_floats(x, (0..b).map(|i| i % 10).collect())?
        .with_num_classes(10)?
        .with_sample_shape(&work.sample)?;
    let mut sgd = Sgd::new(0.01)?;
    let mut step = TrainStep::new();
    let model = &mut work.model;
    in_pool(|| {
        let mut run = |n: usize| -> tapegrad::Result<f64> {
            let start = Instant::now();
            for _ in 0..n {
                let mut batches = data.batches(b)?;
                step.run(
                    model,
                    &mut sgd,
                    batches.next().expect("one batch"),
                    &Loss::CrossEntropy,
                )?;
            }
            Ok(start.elapsed().as_secs_f64() / n as f64)
        };
        let first = run(3)?;
        let n = ((SECONDS_PER_POINT / TIMINGS as f64 / first) as usize).clamp(2, 2000);
        let mut fastest = f64::INFINITY;
        for _ in 0..TIMINGS {
            fastest = fastest.min(run(n)?);
        }
        Ok(fastest)
    })
}

/// Seconds of a ring all-reduce of `bytes` over `hosts` hosts on a `gbps` link.
fn allreduce_seconds(bytes: f64, hosts: usize, gbps: f64) -> f64 {
    if hosts == 1 {
        return 0.0;
    }
    let n = hosts as f64;
    2.0 * (n - 1.0) / n * bytes * 8.0 / (gbps * 1e9) + 2.0 * (n - 1.0) * ALPHA
}

fn main() -> std::process::ExitCode {
    cli::run(run)
}

/// Measures (or takes) each workload's step times and prints the scaling model's tables.
fn run() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    if args.collectives {
        return collectives::run();
    }
    set_num_threads(args.threads)?;
    let mut works = workloads()?;
    match args.rates {
        Some([w1, w2]) => println!(
            "Step time b / rate with the given rates ({w1} and {w2} samples/s), and the \
             model's efficiency (samples/s of N hosts over N × one host's):\n"
        ),
        None => println!(
            "Step time on this machine ({} thread(s)), and the model's efficiency \
             (samples/s of N hosts over N × one host's):\n",
            args.threads
        ),
    }
    let mut measured = Vec::new();
    for (w, work) in works.iter_mut().enumerate() {
        let bytes = 4.0 * work.model.num_params() as f64;
        let times: Vec<f64> = match args.rates {
            Some(rates) => BATCHES.iter().map(|&b| b as f64 / rates[w]).collect(),
            None => (BATCHES.iter())
                .map(|&b| step_seconds(work, b))
                .collect::<tapegrad::Result<_>>()?,
        };
        println!(
            "**{}** ({} parameters, {:.2} MB of gradients per step)\n",
            work.name,
            work.model.num_params(),
            bytes / 1e6
        );
        println!(
            "| batch per rank | step (ms) | samples/s, 1 host | all-reduce at 16 hosts, 10 / 100 Gb/s (ms) | efficiency at 16 hosts, 10 / 100 Gb/s | at 128 hosts | hidden with overlap at 128 hosts, 10 / 100 Gb/s |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---|");
        for (&b, &t) in BATCHES.iter().zip(&times) {
            let ar = |hosts, gbps| allreduce_seconds(bytes, hosts, gbps);
            let eff = |hosts, gbps| t / (t + ar(hosts, gbps));
            let hidden = |gbps| match ar(128, gbps) <= BACKWARD_SHARE * t {
                true => "yes",
                false => "no",
            };
            println!(
                "| {b} | {:.3} | {:.0} | {:.2} / {:.2} | {:.0}% / {:.0}% | {:.0}% / {:.0}% | {} / {} |",
                t * 1e3,
                b as f64 / t,
                ar(16, 10.0) * 1e3,
                ar(16, 100.0) * 1e3,
                100.0 * eff(16, 10.0),
                100.0 * eff(16, 100.0),
                100.0 * eff(128, 10.0),
                100.0 * eff(128, 100.0),
                hidden(10.0),
                hidden(100.0),
            );
        }
        // the rate of the largest batch, for thresholds beyond the batches measured
        let last = BATCHES.len() - 1;
        let rate = BATCHES[last] as f64 / times[last];
        for hosts in [16, 128] {
            for gbps in LINKS {
                let ar = allreduce_seconds(bytes, hosts, gbps);
                let hides = (BATCHES.iter().zip(&times)).find(|&(_, &t)| ar <= BACKWARD_SHARE * t);
                let from = match hides {
                    Some((b, _)) => format!("{b} rows per rank"),
                    None => format!(
                        "about {:.0} rows per rank (extrapolated at {rate:.0} samples/s)",
                        (ar / BACKWARD_SHARE * rate).ceil()
                    ),
                };
                println!(
                    "\n{} on {hosts} hosts at {gbps} Gb/s: an overlapped all-reduce ({:.2} ms) hides behind the backward pass from {from}",
                    work.name,
                    ar * 1e3
                );
            }
        }
        println!();
        measured.push((work.name, bytes, times));
    }
    plot(&measured, &args.out)?;
    println!("wrote {}", args.out.join("mpi-scaling.svg").display());
    Ok(())
}

/// Speed-up over one host against hosts, for a few batches per rank and both links.
fn plot(measured: &[(&str, f64, Vec<f64>)], out: &std::path::Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(out)?;
    let path = out.join("mpi-scaling.svg");
    let root = SVGBackend::new(&path, (760, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = *HOSTS.last().expect("hosts") as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Modelled speed-up over one host (no overlap, ring all-reduce)",
            ("sans-serif", 19),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..top.log2(), 0f64..top.log2())?;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_desc("hosts")
        .y_desc("speed-up")
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .y_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .draw()?;
    let ideal: Vec<(f64, f64)> = HOSTS
        .iter()
        .map(|&n| ((n as f64).log2(), (n as f64).log2()))
        .collect();
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.4).stroke_width(1)))?
        .label("ideal")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let mut color = colors.iter().cycle();
    for (name, bytes, times) in measured {
        for (b, gbps) in [(32, 10.0), (128, 10.0), (128, 100.0)] {
            let t = times[BATCHES
                .iter()
                .position(|&x| x == b)
                .expect("measured batch")];
            let points: Vec<(f64, f64)> = (HOSTS.iter())
                .map(|&n| {
                    let speedup = n as f64 * t / (t + allreduce_seconds(*bytes, n, gbps));
                    ((n as f64).log2(), speedup.log2())
                })
                .collect();
            let c = *color.next().expect("cycle");
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(format!("{name}, {b} rows/rank, {gbps} Gb/s"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `--collectives`: the dense all-reduce against the factored all-gather, timed.
#[cfg(feature = "mpi")]
mod collectives {
    use mpi::collective::SystemOperation;
    use mpi::traits::CommunicatorCollectives;
    use std::error::Error;
    use std::time::Instant;

    /// W1's weights, `[out, in]`; its biases add 522 numbers.
    const LAYERS: [(usize, usize); 3] = [(256, 784), (256, 256), (10, 256)];
    const BIASES: usize = 522;

    pub fn run() -> Result<(), Box<dyn Error>> {
        let world = tapegrad::Distributed::init()?;
        let comm = mpi::topology::SimpleCommunicator::world();
        let ranks = world.size();
        let dense: usize = LAYERS.iter().map(|(o, i)| o * i).sum::<usize>() + BIASES;
        let time = |f: &mut dyn FnMut()| {
            let mut times = Vec::new();
            for _ in 0..7 {
                comm.barrier();
                let start = Instant::now();
                for _ in 0..20 {
                    f();
                }
                times.push(start.elapsed().as_secs_f64() / 20.0);
            }
            times.sort_by(f64::total_cmp);
            times[3]
        };
        let (send, mut received) = (vec![1f32; dense], vec![0f32; dense]);
        let allreduce = time(&mut || {
            comm.all_reduce_into(&send[..], &mut received[..], SystemOperation::sum())
        });
        if world.is_root() {
            println!("W1 over {ranks} ranks, medians of 7 × 20 calls:\n");
            println!(
                "| rows per rank | dense all-reduce ({dense} numbers) | factored all-gather (numbers per rank) |"
            );
            println!("|---:|---:|---:|");
        }
        for rows in [16, 64, 128, 256, 512] {
            let factors: usize = LAYERS.iter().map(|(o, i)| rows * (o + i)).sum::<usize>() + BIASES;
            let send = vec![1f32; factors];
            let mut gathered = vec![0f32; factors * ranks];
            let allgather = time(&mut || comm.all_gather_into(&send[..], &mut gathered[..]));
            if world.is_root() {
                println!(
                    "| {rows} | {:.0} µs | {:.0} µs ({factors}) |",
                    allreduce * 1e6,
                    allgather * 1e6
                );
            }
        }
        Ok(())
    }
}

#[cfg(not(feature = "mpi"))]
mod collectives {
    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        Err(
            "--collectives needs the `mpi` feature: mpirun -n 2 cargo run --release \
             --features mpi --example mpi_scaling -- --collectives"
                .into(),
        )
    }
}
