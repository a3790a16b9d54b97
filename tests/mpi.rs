//! Data parallelism across processes (feature `mpi`): `mpirun -n 2` training for one epoch
//! on 2,000 Fashion-MNIST images (the subset shipped in `data/fashion-mnist-subset/`) ends
//! with the parameters of one process that splits the same global batches of 127 images
//! into 2 shards (while each rank runs its rows on 2 threads, so 63 rows as 1 shard, 64 as 2),
//! within 1e-6, for an MLP with dropout and for one with batch normalization; both ranks
//! hold the same parameters bit for bit; and a second epoch resumed from rank 0's
//! checkpoint equals the uninterrupted run bit for bit. A third run trains on data with one
//! sample whose loss overflows, so its batch's step is refused although the sample sits in
//! one rank's rows only: with the learning rate halved on each refusal, a per-step decay, a
//! plateau schedule and early stopping, both ranks refuse the same steps, keep the same
//! rates, stop after the same epoch and restore the same best epoch as the one process.
//!
//! When ranks disagree or fail, every rank must stop with the same error instead of waiting
//! for the others forever: a rank whose training set holds a NaN, whose validation set does
//! not fit the model, whose data set has other samples, values, targets or length, or whose
//! settings differ (so `fit` refuses before the first step, on every rank, naming the rank
//! and what differs); an epoch whose last batch has fewer rows than there are ranks
//! (refused up front; with `drop_last` it trains); a batch that fails its checks on one
//! rank in a `TrainStep` loop (at the first step, a later one, and under batch norm, whose
//! sums come first; the loop then goes on, both ranks with the same parameters); a panic on
//! one rank and [`Distributed::abort`](tapegrad::Distributed::abort) end every rank.
//!
//! Each test relaunches its own binary under `mpirun -n 2` (the children find themselves
//! under MPI and run the ranks' side), with a time limit, so that a rank left waiting fails
//! the test instead of hanging it; then compares what the ranks wrote. The tests are
//! skipped, with a message, when built without the feature or when `mpirun` is absent:
//!
//! ```text
//! cargo test --release --features mpi --test mpi -- --nocapture
//! ```

use std::io::Write;

/// Says on stderr, past the harness's capture, that the test was skipped and why.
fn skip(why: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "mpi::two_ranks_train_as_one_process_with_two_shards: skipped, {why}"
    );
}

#[cfg(not(feature = "mpi"))]
#[test]
fn two_ranks_train_as_one_process_with_two_shards() {
    skip(
        "built without the `mpi` feature \
         (cargo test --release --features mpi --test mpi, with Open MPI installed)",
    );
}

#[cfg(feature = "mpi")]
#[test]
fn two_ranks_train_as_one_process_with_two_shards() {
    run::main();
}

#[cfg(feature = "mpi")]
#[test]
fn a_rank_that_fails_fits_checks_or_holds_other_data_stops_every_rank_with_one_error() {
    run::disagreements();
}

#[cfg(feature = "mpi")]
#[test]
fn a_rank_whose_batch_fails_its_checks_stops_every_rank_at_that_step() {
    run::step_failures();
}

#[cfg(feature = "mpi")]
#[test]
fn a_panic_on_one_rank_ends_every_rank() {
    run::panic_on_one_rank();
}

#[cfg(feature = "mpi")]
#[test]
fn abort_on_one_rank_ends_every_rank() {
    run::abort_on_one_rank();
}

#[cfg(feature = "mpi")]
mod run {
    use super::skip;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitStatus, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    use tapegrad::checkpoint::Checkpoint;
    use tapegrad::data::fashion_mnist;
    use tapegrad::ndarray::Array2;
    use tapegrad::{
        BatchNorm1d, ChaCha8Rng, Dataset, Decay, DecayUnit, Distributed, Dropout, FitConfig,
        Flatten, Init, Linear, Loss, Module, Monitor, OnDivergence, Optimizer, Plateau, Progress,
        Relu, Scaler, Schedule, SeedableRng, Sequential, Sgd, TrainStep, fit, set_num_threads,
    };

    /// Where the parent asks the ranks to write their parameters.
    const OUT: &str = "TAPEGRAD_MPI_TEST_OUT";
    /// Odd, so that under 2 threads per rank one rank's 63 rows run as 1 shard and the
    /// other's 64 as 2: the ranks must still make the same sums over the ranks.
    const BATCH: usize = 127;
    const MODELS: [&str; 2] = ["dropout", "batchnorm"];

    pub fn main() {
        match std::env::var_os(OUT) {
            Some(dir) if under_mpi() => rank(Path::new(&dir)),
            _ => parent(),
        }
    }

    /// What `mpirun -n 2` did: its exit status (`None` when it outlived its time limit and
    /// was stopped), the seconds it took, and what the ranks printed.
    struct Launched {
        status: Option<ExitStatus>,
        seconds: f64,
        output: String,
    }

    /// One `mpirun` at a time: the tests of this file run on threads of one process.
    static MPIRUN: Mutex<()> = Mutex::new(());

    /// The folder the ranks of `test` write to (emptied).
    fn out_dir(test: &str) -> PathBuf {
        let name = format!("tapegrad-mpi-{test}-{}", std::process::id());
        let out = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        out
    }

    /// Runs this test binary's test `test` on 2 ranks under `mpirun`, with `out` as the
    /// ranks' folder, stopping it after `limit` (SIGTERM, which mpirun passes on to the
    /// ranks, then SIGKILL). `None` (after saying so) when `mpirun` is absent.
    fn launch(test: &str, out: &Path, limit: Duration) -> Option<Launched> {
        let version = match Command::new("mpirun").arg("--version").output() {
            Ok(output) if output.status.success() => output,
            _ => {
                skip("`mpirun` was not found (apt-get install openmpi-bin libopenmpi-dev)");
                return None;
            }
        };
        let open_mpi = String::from_utf8_lossy(&version.stdout).contains("Open MPI");
        let _one_at_a_time = MPIRUN.lock().unwrap_or_else(|e| e.into_inner());
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["-n", "2"]);
        if open_mpi {
            // 2 ranks on a machine with fewer free cores; root in CI containers
            mpirun.args(["--oversubscribe", "--bind-to", "none"]);
            mpirun.env("OMPI_ALLOW_RUN_AS_ROOT", "1");
            mpirun.env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        mpirun.arg(std::env::current_exe().unwrap());
        mpirun.args(["--exact", test, "--test-threads=1", "--nocapture"]);
        mpirun.env(OUT, out);
        let log = out.join("mpirun.log");
        let file = std::fs::File::create(&log).unwrap();
        mpirun.stdout(Stdio::from(file.try_clone().unwrap()));
        mpirun.stderr(Stdio::from(file));
        let start = Instant::now();
        let mut child = mpirun.spawn().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if start.elapsed() > limit {
                let pid = child.id().to_string();
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                std::thread::sleep(Duration::from_secs(5));
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Some(Launched {
            status,
            seconds: start.elapsed().as_secs_f64(),
            output,
        })
    }

    /// Under `mpirun`: MPI initialized, this rank's side of the test, `true`. Otherwise
    /// (the parent) `false`.
    fn as_rank(side: impl FnOnce(&Distributed, &Path)) -> bool {
        let Some(dir) = std::env::var_os(OUT).filter(|_| under_mpi()) else {
            return false;
        };
        let world = Distributed::init().unwrap();
        assert_eq!(world.size(), 2, "run under mpirun -n 2");
        set_num_threads(1).unwrap();
        side(&world, Path::new(&dir));
        true
    }

    /// Runs test `test` on 2 ranks, each with `side`, and returns what each rank recorded
    /// ([`record`]), after checking that `mpirun` ended well within `limit`; `None` when
    /// skipped.
    fn on_two_ranks(
        test: &str,
        limit: Duration,
        side: impl FnOnce(&Distributed, &Path),
    ) -> Option<[String; 2]> {
        if as_rank(side) {
            return None;
        }
        let out = out_dir(test);
        let launched = launch(test, &out, limit)?;
        let Launched {
            status,
            seconds,
            output,
        } = launched;
        assert!(
            status.is_some(),
            "{test}: a rank still waited after {seconds:.0} s (stopped); output:\n{output}"
        );
        assert!(
            status.unwrap().success(),
            "{test}: mpirun -n 2 failed: {status:?}; output:\n{output}"
        );
        let recorded = [0, 1].map(|r| {
            let path = out.join(format!("rank{r}.txt"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        });
        let _ = std::fs::remove_dir_all(&out);
        Some(recorded)
    }

    /// Appends `line` to what this rank records (`rank{r}.txt` in `out`).
    fn record(world: &Distributed, out: &Path, line: &str) {
        let path = out.join(format!("rank{}.txt", world.rank()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }

    /// `rows` samples of 8 features and 3 classes, the same on every rank.
    fn small(rows: usize) -> Dataset {
        let x = Array2::from_shape_fn((rows, 8), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0);
        let labels = (0..rows).map(|i| (i * 5) % 3).collect();
        Dataset::from_floats(x, labels)
            .unwrap()
            .with_num_classes(3)
            .unwrap()
    }

    /// `small(rows)` with sample `row`'s feature `col` set to `value`, or its label to
    /// `label`.
    fn small_with(
        rows: usize,
        row: usize,
        col: usize,
        value: f32,
        label: Option<usize>,
    ) -> Dataset {
        let data = small(rows);
        let mut x = data.floats().unwrap().to_owned();
        x[[row, col]] = value;
        let x = x.into_dimensionality().unwrap();
        let mut labels = data.labels().unwrap().to_vec();
        if let Some(label) = label {
            labels[row] = label;
        }
        let classes = labels.iter().max().unwrap() + 1;
        Dataset::from_floats(x, labels)
            .unwrap()
            .with_num_classes(classes.max(3))
            .unwrap()
    }

    /// 8 → 16 → 3, with a batch norm after the first layer when asked.
    fn small_model(batch_norm: bool) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut layers: Vec<Box<dyn Module>> = vec![Box::new(
            Linear::new(8, 16, Init::default(), &mut rng).unwrap(),
        )];
        if batch_norm {
            layers.push(Box::new(BatchNorm1d::new(16).unwrap()));
        }
        layers.push(Box::new(Relu));
        layers.push(Box::new(
            Linear::new(16, 3, Init::default(), &mut rng).unwrap(),
        ));
        Sequential::new(layers).unwrap()
    }

    /// Ranks that disagree before `fit`'s first step: each case is a `fit` whose training
    /// or validation set or settings differ on one rank; every rank must return the same
    /// error, name the rank and what differs, and go on to the next case.
    pub fn disagreements() {
        let test =
            "a_rank_that_fails_fits_checks_or_holds_other_data_stops_every_rank_with_one_error";
        let recorded = on_two_ranks(test, Duration::from_secs(120), |world, out| {
            let r = world.rank();
            let on = |rank: usize, other: Dataset, same: Dataset| match r == rank {
                true => other,
                false => same,
            };
            let config = |epochs| FitConfig {
                epochs,
                batch_size: 64,
                seed: 5,
                distributed: Some(world.clone()),
                ..FitConfig::default()
            };
            let cases: Vec<(&str, Dataset, Option<Dataset>, FitConfig)> = vec![
                (
                    "nan",
                    on(1, small_with(640, 3, 3, f32::NAN, None), small(640)),
                    None,
                    config(2),
                ),
                (
                    "validation",
                    small(640),
                    Some(on(1, small_with(50, 2, 0, 1.0, Some(4)), small(50))),
                    config(2),
                ),
                ("fewer", on(1, small(639), small(640)), None, config(2)),
                // one more sample on rank 1 would leave it a last batch of 1 row
                ("one more", on(1, small(641), small(640)), None, config(2)),
                ("more", on(0, small(645), small(640)), None, config(2)),
                (
                    "values",
                    on(1, small_with(640, 600, 5, 9.0, None), small(640)),
                    None,
                    config(2),
                ),
                (
                    "targets",
                    on(
                        1,
                        small_with(640, 600, 5, small(640).floats().unwrap()[[600, 5]], Some(1)),
                        small(640),
                    ),
                    None,
                    config(2),
                ),
                ("settings", small(640), None, config(2 + r)),
                ("optimizer", small(640), None, config(2)),
                ("last batch", small(641), None, config(2)),
                (
                    "batches of one",
                    small(640),
                    None,
                    FitConfig {
                        batch_size: 1,
                        ..config(2)
                    },
                ),
                (
                    "last batch dropped",
                    small(641),
                    None,
                    FitConfig {
                        drop_last: true,
                        ..config(2)
                    },
                ),
                ("same", small(640), None, config(2)),
            ];
            for (case, train, valid, config) in cases {
                let mut model = small_model(false);
                let mut steps = 0;
                // in the "optimizer" case, rank 1 has twice the rate
                let lr = match case {
                    "optimizer" => 0.05 * (1 + r) as f32,
                    _ => 0.05,
                };
                let outcome = fit(
                    &mut model,
                    &mut Sgd::new(lr).unwrap(),
                    &train,
                    valid.as_ref(),
                    &config,
                    &mut |p| steps += usize::from(matches!(p, Progress::Step { .. })),
                );
                let outcome = match outcome {
                    Ok(history) => format!("Ok, {} epochs", history.epochs.len()),
                    Err(e) => format!("Err: {e}"),
                };
                // the parameters agree whatever happened (a collective: both ranks are here)
                let same = world.check_same_parameters(&model).is_ok();
                let steps = if r == 0 {
                    steps.to_string()
                } else {
                    "-".into()
                };
                record(
                    world,
                    out,
                    &format!(
                        "{case}: {outcome} (same parameters: {same}, steps seen on rank 0: {steps})"
                    ),
                );
            }
        });
        let Some([zero, one]) = recorded else { return };
        let zero = zero.replace("steps seen on rank 0: ", "steps: ");
        let one_lines: Vec<&str> = one.lines().collect();
        let expected = [
            (
                "nan",
                "Err: fit: rank(s) [1] of 2 failed, so every rank stops: fit: training set: sample 3 feature 3 is NaN, expected finite values",
            ),
            (
                "validation",
                "Err: fit: rank(s) [1] of 2 failed, so every rank stops: fit: validation set sample 2 has label 4, expected a label below 3",
            ),
            (
                "fewer",
                "Err: fit: rank 1's training set has 639 samples, rank 0's 640; expected the same data and settings on every rank",
            ),
            (
                "one more",
                "Err: fit: rank 1's training set has 641 samples, rank 0's 640",
            ),
            (
                "more",
                "Err: fit: rank 1's training set has 640 samples, rank 0's 645",
            ),
            (
                "values",
                "Err: fit: rank 1's training set differs from rank 0's in its sample values;",
            ),
            (
                "targets",
                "Err: fit: rank 1's training set differs from rank 0's in its targets;",
            ),
            (
                "settings",
                "Err: fit: rank 1's settings differ from rank 0's in epochs; expected the same data",
            ),
            (
                "optimizer",
                "Err: fit: rank 1's settings differ from rank 0's in the optimizer; expected the same data",
            ),
            (
                "last batch",
                "Err: fit: the last batch of each epoch would hold 1 sample(s) (641 samples in batches of 64), fewer than the 2 ranks that split every batch, expected at least one per rank; set drop_last: true",
            ),
            (
                "batches of one",
                "Err: fit: batches of 1 samples cannot be split over 2 ranks, expected a batch_size of at least 2",
            ),
            ("last batch dropped", "Ok, 2 epochs"),
            ("same", "Ok, 2 epochs"),
        ];
        let zero_lines: Vec<&str> = zero.lines().collect();
        assert_eq!(zero_lines.len(), expected.len(), "rank 0 recorded:\n{zero}");
        for ((line, other), (case, start)) in zero_lines.iter().zip(&one_lines).zip(expected) {
            let prefix = format!("{case}: {start}");
            assert!(
                line.starts_with(&prefix),
                "rank 0, {case}: {line}\nexpected it to start with {prefix}"
            );
            // the same outcome on rank 1, and the same parameters on both
            let outcome = |l: &str| l.split(" (same parameters").next().unwrap().to_string();
            assert_eq!(
                outcome(line),
                outcome(other),
                "{case}: the ranks' outcomes differ"
            );
            assert!(line.contains("same parameters: true"), "{line}");
            // refused before the first step; trained when both agree
            let trained = start.starts_with("Ok");
            let steps_seen = line.rsplit("steps: ").next().unwrap().trim_end_matches(')');
            assert_eq!(steps_seen != "0", trained, "{line}");
        }
    }

    /// A `TrainStep` loop whose batch fails its checks on one rank only: at a later step
    /// (an MLP: the step's first sum is its loss), at a later step under batch norm (whose
    /// moments are summed first), at the first step (which compares hashes) and with fewer
    /// rows than ranks. Every rank must return the same error at that step, change nothing,
    /// and train on with the next batches.
    pub fn step_failures() {
        let test = "a_rank_whose_batch_fails_its_checks_stops_every_rank_at_that_step";
        // (case, batch norm, failing rank, failing step from 0)
        let cases = [
            ("label at step 4", false, 1, 3),
            ("width at step 3 under batch norm", true, 0, 2),
            ("label at step 1", false, 1, 0),
            ("one row at step 2", true, 1, 1),
        ];
        let recorded = on_two_ranks(test, Duration::from_secs(120), |world, out| {
            let data = small(640);
            let bad = [
                small_with(64, 6, 0, 1.0, Some(5)),
                Dataset::from_floats(Array2::zeros((64, 7)), vec![0; 64]).unwrap(),
                small_with(64, 6, 0, 1.0, Some(5)),
                small(1),
            ];
            for ((case, batch_norm, rank, at), bad) in cases.into_iter().zip(&bad) {
                let mut model = small_model(batch_norm);
                let mut sgd = Sgd::new(0.05).unwrap();
                let mut step = TrainStep::new().distributed(world.clone());
                let mut outcomes = Vec::new();
                for i in 0..6 {
                    let rows: Vec<usize> = (i * 64..(i + 1) * 64).collect();
                    let part = match i == at && world.rank() == rank {
                        true => bad.clone(),
                        false => data.subset(&rows).unwrap(),
                    };
                    let mut batches = part.batches(64).unwrap();
                    let batch = batches.next().unwrap();
                    outcomes.push(
                        match step.run(&mut model, &mut sgd, batch, &Loss::CrossEntropy) {
                            Ok(_) => "ok".to_string(),
                            Err(e) => format!("Err: {e}"),
                        },
                    );
                }
                let same = world.check_same_parameters(&model).is_ok();
                let steps = sgd.steps();
                let outcomes = outcomes.join(" | ");
                record(
                    world,
                    out,
                    &format!("{case}: {outcomes} (updates {steps}, same parameters: {same})"),
                );
            }
        });
        let Some([zero, one]) = recorded else { return };
        assert_eq!(zero, one, "the ranks' steps went otherwise");
        let expected = [
            "train step: row 6 of the batch has label 5, expected a label below 3 (the model's last layer has 3 outputs)",
            "train step: expected samples of width 8 (the input width of the model's first layer), found a batch of shape [64, 7]",
            "train step: row 6 of the batch has label 5, expected a label below 3 (the model's last layer has 3 outputs)",
            "distributed train step: a batch of 1 samples cannot be split over 2 ranks, expected at least one sample per rank",
        ];
        let lines: Vec<&str> = zero.lines().collect();
        assert_eq!(lines.len(), cases.len(), "{zero}");
        for ((line, (case, _, rank, at)), why) in lines.iter().zip(cases).zip(expected) {
            let mut steps: Vec<String> = vec!["ok".into(); 6];
            steps[at] = format!(
                "Err: distributed train step: rank(s) [{rank}] of 2 failed, so every rank stops: {why}"
            );
            let want = format!(
                "{case}: {} (updates 5, same parameters: true)",
                steps.join(" | ")
            );
            assert_eq!(*line, want);
        }
    }

    /// Rank 0's progress callback panics at `fit`'s third step while rank 1 waits in the
    /// step's collectives: dropping the handles while panicking ends both ranks.
    pub fn panic_on_one_rank() {
        let test = "a_panic_on_one_rank_ends_every_rank";
        if as_rank(|world, _| {
            let config = FitConfig {
                epochs: 2,
                distributed: Some(world.clone()),
                ..FitConfig::default()
            };
            let mut steps = 0;
            let _ = fit(
                &mut small_model(false),
                &mut Sgd::new(0.05).unwrap(),
                &small(640),
                None,
                &config,
                &mut |p| {
                    steps += usize::from(matches!(p, Progress::Step { .. }));
                    assert!(steps < 3, "the callback fails at step 3");
                },
            );
        }) {
            return;
        }
        ends_every_rank(
            test,
            101,
            "tapegrad: rank 0 of 2 panicked; ending every rank with MPI_Abort",
        );
    }

    /// Rank 1 fails on its own before `fit` and calls `abort` while rank 0 waits in `fit`'s
    /// first collective: both end.
    pub fn abort_on_one_rank() {
        let test = "abort_on_one_rank_ends_every_rank";
        if as_rank(|world, _| {
            if world.rank() == 1 {
                eprintln!("rank 1: a file of its own is missing; aborting");
                world.abort(3);
            }
            let config = FitConfig {
                distributed: Some(world.clone()),
                ..FitConfig::default()
            };
            let outcome = fit(
                &mut small_model(false),
                &mut Sgd::new(0.05).unwrap(),
                &small(640),
                None,
                &config,
                &mut |_| {},
            );
            unreachable!("rank 0's fit returned without rank 1: {outcome:?}");
        }) {
            return;
        }
        ends_every_rank(test, 3, "rank 1: a file of its own is missing; aborting");
    }

    /// Launches `test`, whose ranks do not both end well, and checks that `mpirun` ended
    /// (no rank left waiting) with exit status `code` (that of `MPI_Abort`) and `said` in
    /// its output.
    fn ends_every_rank(test: &str, code: i32, said: &str) {
        let out = out_dir(test);
        let Some(launched) = launch(test, &out, Duration::from_secs(60)) else {
            return;
        };
        let Launched {
            status,
            seconds,
            output,
        } = launched;
        let _ = std::fs::remove_dir_all(&out);
        let status = status.unwrap_or_else(|| {
            panic!("{test}: a rank still waited after {seconds:.0} s (stopped); output:\n{output}")
        });
        assert_eq!(status.code(), Some(code), "{test}: output:\n{output}");
        assert!(
            output.contains(said),
            "{test}: expected {said:?} in the output:\n{output}"
        );
    }

    fn under_mpi() -> bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    }

    /// The 2,000 training images of the shipped subset, standardized.
    fn data() -> Dataset {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
        let (mut train, _) = fashion_mnist(Some(&dir)).unwrap();
        let scaler = Scaler::standardize(&train).unwrap();
        train.set_scaler(scaler).unwrap();
        assert_eq!(train.len(), 2000);
        train
    }

    /// The shipped subset's training images in [0, 1] with every pixel of sample 7 at 3e38,
    /// and its first 200 test images for validation.
    fn spiky_data() -> (Dataset, Dataset) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
        let (train, test) = fashion_mnist(Some(&dir)).unwrap();
        let floats = |d: &Dataset| {
            let bytes = d.bytes().unwrap();
            let x = bytes.mapv(|b| f32::from(b) / 255.0);
            x.into_shape_with_order((d.len(), 784)).unwrap()
        };
        let mut x = floats(&train);
        x.row_mut(7).fill(3e38);
        let spiky = Dataset::from_floats(x, train.labels().unwrap().to_vec()).unwrap();
        let valid = Dataset::from_floats(floats(&test), test.labels().unwrap().to_vec()).unwrap();
        let valid = valid.subset(&(0..200).collect::<Vec<_>>()).unwrap();
        (spiky, valid)
    }

    /// Trains the dropout MLP on [`spiky_data`] with every guard on: the learning rate
    /// halved on a refused step, a per-step decay, a plateau schedule and early stopping.
    /// Returns the parameters and what the history says, in a form that must be the same
    /// for one process and every rank (the loss values aside, which differ in the last
    /// bits).
    fn guarded(world: Option<&Distributed>) -> (Vec<f32>, String) {
        let (train, valid) = spiky_data();
        let mut model = model("dropout");
        let decay = Schedule::new(Decay::InverseTime { k: 0.01 }, DecayUnit::Step).unwrap();
        let mut sgd = sgd().schedule(decay);
        let config = FitConfig {
            on_divergence: OnDivergence::HalveLearningRate,
            patience: Some(1),
            monitor: Monitor::ValidAccuracy,
            plateau: Some(Plateau {
                patience: 0,
                factor: 0.5,
                ..Plateau::default()
            }),
            ..config(6, 0, world)
        };
        let history = fit(
            &mut model,
            &mut sgd,
            &train,
            Some(&valid),
            &config,
            &mut |_| {},
        );
        let history = history.unwrap();
        let refused: Vec<&str> = (history.events.iter())
            .map(|e| e.split(':').next().unwrap())
            .collect();
        let rates: Vec<String> = (history.epochs.iter())
            .map(|r| format!("{}: {:e}", r.epoch, r.lr))
            .collect();
        let summary = format!(
            "events {refused:?}; epochs {rates:?}; best epoch {:?}",
            history.best_epoch
        );
        (values(&model), summary)
    }

    /// 784 → 64 → 10 with ReLU then dropout, or with a batch norm before the ReLU.
    fn model(kind: &str) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut layers: Vec<Box<dyn Module>> = vec![
            Box::new(Flatten),
            Box::new(Linear::new(784, 64, Init::default(), &mut rng).unwrap()),
        ];
        if kind == "dropout" {
            layers.push(Box::new(Relu));
            layers.push(Box::new(Dropout::new(0.2, &mut rng).unwrap()));
        } else {
            layers.push(Box::new(BatchNorm1d::new(64).unwrap()));
            layers.push(Box::new(Relu));
        }
        layers.push(Box::new(
            Linear::new(64, 10, Init::default(), &mut rng).unwrap(),
        ));
        Sequential::new(layers).unwrap()
    }

    /// 2 threads when there are 2 CPUs (the parent's 2 shards; a rank's 64 rows in 2 shards).
    fn threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
    }

    fn sgd() -> Sgd {
        Sgd::new(0.05).unwrap().momentum(0.9).unwrap()
    }

    fn config(epochs: usize, start_epoch: usize, world: Option<&Distributed>) -> FitConfig {
        FitConfig {
            epochs,
            start_epoch,
            batch_size: BATCH,
            seed: 3,
            distributed: world.cloned(),
            ..FitConfig::default()
        }
    }

    /// Parameters and buffers, in walk order.
    fn values(model: &dyn Module) -> Vec<f32> {
        let mut out = Vec::new();
        model.visit_params(&mut |_, p| out.extend(p.value().iter()));
        model.visit_buffers(&mut |_, b| out.extend(b.iter()));
        out
    }

    fn write(path: PathBuf, values: &[f32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).unwrap();
    }

    fn read(path: PathBuf) -> Vec<f32> {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let chunks = bytes.chunks_exact(4);
        chunks
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// What both ranks wrote under `name` (`{name}-rank{r}.bin`), after checking that it is
    /// the same bit for bit.
    fn same_on_both_ranks(out: &Path, name: &str) -> Vec<f32> {
        let ranks: Vec<Vec<f32>> = (0..2)
            .map(|r| read(out.join(format!("{name}-rank{r}.bin"))))
            .collect();
        assert!(ranks[0] == ranks[1], "{name}: the ranks' values differ");
        ranks.into_iter().next().unwrap()
    }

    /// One rank: for each model, one epoch across the ranks, a checkpoint from rank 0, a
    /// second epoch, and the second epoch again from the checkpoint.
    fn rank(out: &Path) {
        let world = Distributed::init().unwrap();
        assert_eq!(world.size(), 2, "run under mpirun -n 2");
        set_num_threads(threads()).unwrap();
        let (r, train) = (world.rank(), data());
        for kind in MODELS {
            let mut model = model(kind);
            let mut sgd = sgd();
            let history = fit(
                &mut model,
                &mut sgd,
                &train,
                None,
                &config(1, 0, Some(&world)),
                &mut |_| {},
            )
            .unwrap();
            world.check_same_parameters(&model).unwrap();
            write(
                out.join(format!("{kind}-epoch1-rank{r}.bin")),
                &values(&model),
            );
            let loss = history.epochs[0].train_loss;
            write(out.join(format!("{kind}-loss-rank{r}.bin")), &[loss as f32]);
            let checkpoint = out.join(format!("{kind}.ckpt"));
            if world.is_root() {
                Checkpoint::new(&model)
                    .with_training(&sgd, 1)
                    .unwrap()
                    .save(&checkpoint)
                    .unwrap();
            }
            fit(
                &mut model,
                &mut sgd,
                &train,
                None,
                &config(2, 1, Some(&world)),
                &mut |_| {},
            )
            .unwrap();
            let straight = values(&model);
            // the check is a collective: rank 0 wrote the checkpoint before it
            world.check_same_parameters(&model).unwrap();
            let (mut resumed, mut sgd) = (self::model(kind), self::sgd());
            let done = Checkpoint::load(&checkpoint)
                .unwrap()
                .resume(&mut resumed, &mut sgd)
                .unwrap();
            assert_eq!(done, 1);
            let config = config(2, done, Some(&world));
            fit(&mut resumed, &mut sgd, &train, None, &config, &mut |_| {}).unwrap();
            assert!(
                values(&resumed) == straight,
                "rank {r}, {kind}: the resumed second epoch differs from the uninterrupted one"
            );
            write(out.join(format!("{kind}-epoch2-rank{r}.bin")), &straight);
        }
        let (values, summary) = guarded(Some(&world));
        write(out.join(format!("guarded-rank{r}.bin")), &values);
        std::fs::write(out.join(format!("guarded-rank{r}.txt")), summary).unwrap();
    }

    /// The one-process reference, then the two ranks under mpirun, then the comparison.
    fn parent() {
        // one process, the global batches split into 2 shards (one per thread)
        set_num_threads(threads()).unwrap();
        let train = data();
        let mut reference = Vec::new();
        for kind in MODELS {
            let (mut model, mut sgd) = (model(kind), sgd());
            let history = fit(
                &mut model,
                &mut sgd,
                &train,
                None,
                &config(1, 0, None),
                &mut |_| {},
            )
            .unwrap();
            reference.push((values(&model), history.epochs[0].train_loss));
        }
        let (guarded_values, guarded_summary) = guarded(None);
        assert!(
            guarded_summary.contains("batch") && guarded_summary.contains("best epoch Some"),
            "the spiky sample refused no step, or early stopping did not run: {guarded_summary}"
        );

        let test = "two_ranks_train_as_one_process_with_two_shards";
        let out = out_dir(test);
        let Some(launched) = launch(test, &out, Duration::from_secs(900)) else {
            return;
        };
        let (status, output) = (launched.status, launched.output);
        let status = status.unwrap_or_else(|| {
            panic!(
                "a rank still waited after {:.0} s; output:\n{output}",
                launched.seconds
            )
        });
        assert!(
            status.success(),
            "mpirun -n 2 failed: {status}; output:\n{output}"
        );

        for (kind, (expected, expected_loss)) in MODELS.iter().zip(&reference) {
            let epoch1 = same_on_both_ranks(&out, &format!("{kind}-epoch1"));
            assert_eq!(epoch1.len(), expected.len());
            // parameters within 1e-6; running statistics (a variance near 10, say) within
            // 1e-6 of their size
            let params = model(kind).num_params();
            let (largest, relative) = (epoch1.iter().zip(expected).enumerate())
                .map(|(i, (a, b))| match i < params {
                    true => ((a - b).abs(), 0.0),
                    false => (0.0, (a - b).abs() / b.abs().max(1.0)),
                })
                .fold((0.0, 0.0), |(m, r), (d, e)| {
                    (f32::max(m, d), f32::max(r, e))
                });
            assert!(
                largest <= 1e-6 && relative <= 1e-6,
                "{kind}: 2 ranks and 2 shards differ by up to {largest} (parameters), \
                 {relative} (relative, running statistics)"
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "mpi: {kind}: 2 ranks against 1 process with 2 shards: largest difference \
                 {largest:e} in {params} parameters, {relative:e} relative in the buffers"
            );
            // and they did train: the epoch moved the parameters
            let before = values(&model(kind));
            assert!(
                before
                    .iter()
                    .zip(expected)
                    .any(|(a, b)| (a - b).abs() > 1e-3)
            );
            for r in 0..2 {
                let loss = read(out.join(format!("{kind}-loss-rank{r}.bin")))[0];
                assert!(
                    (f64::from(loss) - expected_loss).abs() < 1e-5,
                    "{kind}: rank {r} loss {loss}, one process {expected_loss}"
                );
            }
            same_on_both_ranks(&out, &format!("{kind}-epoch2"));
        }
        let values = same_on_both_ranks(&out, "guarded");
        for r in 0..2 {
            let summary = std::fs::read_to_string(out.join(format!("guarded-rank{r}.txt")));
            assert_eq!(
                summary.unwrap(),
                guarded_summary,
                "rank {r}: refusals, rates or early stopping differ from one process"
            );
        }
        let largest = (values.iter().zip(&guarded_values))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            largest <= 1e-6,
            "with refused steps, the ranks' parameters differ from one process's by {largest}"
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "mpi: refused steps, schedules and early stopping agree: {guarded_summary}"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}
