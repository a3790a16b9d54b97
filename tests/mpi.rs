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
//! The test relaunches its own binary under `mpirun -n 2` (the children find themselves
//! under MPI and train), then compares what the ranks wrote with the one-process run. It
//! is skipped, with a message, when built without the feature or when `mpirun` is absent:
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
mod run {
    use super::skip;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use tapegrad::checkpoint::Checkpoint;
    use tapegrad::data::fashion_mnist;
    use tapegrad::{
        BatchNorm1d, ChaCha8Rng, Dataset, Decay, DecayUnit, Distributed, Dropout, FitConfig,
        Flatten, Init, Linear, Module, Monitor, OnDivergence, Plateau, Relu, Scaler, Schedule,
        SeedableRng, Sequential, Sgd, fit, set_num_threads,
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
        let version = match Command::new("mpirun").arg("--version").output() {
            Ok(output) if output.status.success() => output,
            _ => {
                return skip("`mpirun` was not found (apt-get install openmpi-bin libopenmpi-dev)");
            }
        };
        let open_mpi = String::from_utf8_lossy(&version.stdout).contains("Open MPI");
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

        let out = std::env::temp_dir().join(format!("tapegrad-mpi-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let mut mpirun = Command::new("mpirun");
        mpirun.args(["-n", "2"]);
        if open_mpi {
            // 2 ranks on a machine with fewer free cores; root in CI containers
            mpirun.args(["--oversubscribe", "--bind-to", "none"]);
            mpirun.env("OMPI_ALLOW_RUN_AS_ROOT", "1");
            mpirun.env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        mpirun.arg(std::env::current_exe().unwrap());
        mpirun.args([
            "--exact",
            "two_ranks_train_as_one_process_with_two_shards",
            "--test-threads=1",
            "--nocapture",
        ]);
        mpirun.env(OUT, &out);
        let status = mpirun.status().unwrap();
        assert!(status.success(), "mpirun -n 2 failed: {status}");

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
