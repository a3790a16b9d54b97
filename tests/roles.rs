//! Parameter roles and the one-list parameter walk, through the public API only: a model
//! written outside the crate with `tapegrad::walk!` (nested layers, a `Vec` of layers, a
//! dropout generator and a parameter of its own role) gets stable path names, trains with
//! `fit`, and resumes from a checkpoint bit for bit; weight decay follows the roles, not the
//! names.

use std::path::PathBuf;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::ndarray::Array2;
use tapegrad::{
    ChaCha8Rng, Dataset, Dropout, FitConfig, Init, Linear, Mode, Module, Optimizer, Param, Role,
    SeedableRng, Sgd, Tape, Tensor, Var, fit, tensor,
};

/// `4 → 16`, two residual blocks `h + relu(B·h)`, dropout, `16 → 3`, and the logits divided
/// by a learned temperature (a parameter of the user's own role).
struct Net {
    input: Linear,
    blocks: Vec<Linear>,
    dropout: Dropout,
    head: Linear,
    temperature: Param,
}

impl Net {
    /// The construction seed differs between runs on purpose where a checkpoint restores
    /// the model: everything that matters must come from the checkpoint.
    fn new(seed: u64) -> Net {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut linear = |i, o| Linear::new(i, o, Init::default(), &mut rng).unwrap();
        let (input, blocks, head) = (
            linear(4, 16),
            vec![linear(16, 16), linear(16, 16)],
            linear(16, 3),
        );
        Net {
            input,
            blocks,
            head,
            dropout: Dropout::new(0.2, &mut rng).unwrap(),
            temperature: Param::with_role(
                "temperature",
                Role::Custom("temperature"),
                tensor::full(&[1], 1.5),
            ),
        }
    }
}

impl Module for Net {
    fn forward<'t>(&self, x: Var<'t>, mode: Mode) -> Var<'t> {
        let mut h = self.input.forward(x, mode).relu();
        for block in &self.blocks {
            h = h + block.forward(h, mode).relu();
        }
        let logits = self.head.forward(self.dropout.forward(h, mode), mode);
        logits / x.tape().param(&self.temperature)
    }

    tapegrad::walk!(input, blocks, dropout, head, temperature);

    fn in_features(&self) -> Option<usize> {
        self.input.in_features()
    }

    fn out_features(&self) -> Option<usize> {
        self.head.out_features()
    }
}

/// Three classes around three centres.
fn blobs(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = tensor::normal(&[n, 4], 0.0, 1.0, &mut rng).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let x = Array2::from_shape_fn((n, 4), |(i, j)| noise[[i, j]] + labels[i] as f32 * 3.0);
    Dataset::from_floats(x, labels).unwrap()
}

/// SGD with momentum and weight decay, so that both the optimizer state and the roles
/// (which parameters decay) shape the trajectory.
fn sgd() -> Sgd {
    (Sgd::new(0.05).unwrap().momentum(0.9).unwrap())
        .weight_decay(1e-2)
        .unwrap()
}

fn config(epochs: usize, start_epoch: usize) -> FitConfig {
    FitConfig {
        epochs,
        start_epoch,
        batch_size: 30,
        seed: 17,
        ..FitConfig::default()
    }
}

/// Every parameter's name and bits, so that -0.0 vs 0.0 or NaN payloads cannot hide.
fn bits(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    let mut v = Vec::new();
    m.visit_params(&mut |name, p| {
        v.push((
            name.to_string(),
            p.value().iter().map(|x| x.to_bits()).collect(),
        ))
    });
    v
}

#[test]
fn the_walk_gives_path_names_and_the_same_order_in_all_four_visits() {
    let mut net = Net::new(0);
    let mut names = Vec::new();
    net.visit_params(&mut |name, p| names.push((name.to_string(), p.role())));
    let expected = [
        ("input.weight", Role::Weight),
        ("input.bias", Role::Bias),
        ("blocks.0.weight", Role::Weight),
        ("blocks.0.bias", Role::Bias),
        ("blocks.1.weight", Role::Weight),
        ("blocks.1.bias", Role::Bias),
        ("head.weight", Role::Weight),
        ("head.bias", Role::Bias),
        ("temperature", Role::Custom("temperature")),
    ];
    let expected: Vec<(String, Role)> = expected.iter().map(|&(n, r)| (n.to_string(), r)).collect();
    assert_eq!(names, expected);
    let mut mut_names = Vec::new();
    net.visit_params_mut(&mut |name, p| mut_names.push((name.to_string(), p.role())));
    assert_eq!(mut_names, expected);
    let (mut rngs, mut rngs_mut) = (Vec::new(), Vec::new());
    net.visit_rngs(&mut |name, _| rngs.push(name.to_string()));
    net.visit_rngs_mut(&mut |name, _| rngs_mut.push(name.to_string()));
    assert_eq!(rngs, ["dropout.rng"]);
    assert_eq!(rngs_mut, rngs);
    assert_eq!(
        net.num_params(),
        4 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 3 + 3 + 1
    );
}

#[test]
fn a_user_module_trains_with_fit_and_resumes_bit_for_bit() {
    let train = blobs(300, 1);
    let dir = std::env::temp_dir().join(format!("tapegrad-it-roles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("run.ckpt");

    // 4 epochs in one go: the model learns
    let mut straight = Net::new(0);
    let mut straight_sgd = sgd();
    let history = fit(
        &mut straight,
        &mut straight_sgd,
        &train,
        None,
        &config(4, 0),
        &mut |_| {},
    )
    .unwrap();
    let losses: Vec<f64> = history.epochs.iter().map(|e| e.train_loss).collect();
    assert!(losses[3] < 0.5 * losses[0], "losses {losses:?}");
    let temperature = straight.temperature.value()[[0]];
    assert_ne!(temperature, 1.5, "the temperature is trained too");

    // 2 epochs, save, restore into a model built from another seed, 2 more
    let mut first = Net::new(0);
    let mut first_sgd = sgd();
    fit(
        &mut first,
        &mut first_sgd,
        &train,
        None,
        &config(2, 0),
        &mut |_| {},
    )
    .unwrap();
    Checkpoint::new(&first)
        .with_training(&first_sgd, 2)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut resumed = Net::new(99);
    let mut resumed_sgd = sgd();
    let done = Checkpoint::load(&path)
        .unwrap()
        .resume(&mut resumed, &mut resumed_sgd)
        .unwrap();
    assert_eq!(done, 2);
    assert_eq!(bits(&resumed), bits(&first));
    fit(
        &mut resumed,
        &mut resumed_sgd,
        &train,
        None,
        &config(4, done),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(bits(&resumed), bits(&straight));
    assert_eq!(resumed_sgd.state().unwrap(), straight_sgd.state().unwrap());
    // the comparison can fail: a run that was not continued differs
    assert_ne!(bits(&first), bits(&straight));
    // and the dropout generator came from the checkpoint: the next masks agree
    let x = tensor::ones(&[8, 16]);
    let tape = Tape::new();
    let mask = |net: &Net| {
        net.dropout
            .forward(tape.constant(x.clone()), Mode::Train)
            .value()
    };
    assert_eq!(mask(&resumed), mask(&straight));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One SGD step with weight decay on weights only (`decay_biases(false)`) and a zero
/// gradient, `θ ← θ − lr·wd·θ`, on a parameter of each role, every one named `"weight"`, so
/// that only the role can decide; without `decay_biases(false)` every parameter decays.
#[test]
fn weight_decay_follows_the_role_not_the_name() {
    struct EveryRole {
        params: Vec<Param>,
    }
    impl Module for EveryRole {
        fn forward<'t>(&self, x: Var<'t>, _mode: Mode) -> Var<'t> {
            x
        }
        tapegrad::walk!(params as "");
    }
    let roles = [
        Role::Weight,
        Role::Bias,
        Role::NormScale,
        Role::NormShift,
        Role::Custom("gate"),
    ];
    let mut model = EveryRole {
        params: (roles.iter())
            .map(|&r| Param::with_role("weight", r, tensor::full(&[2], 2.0)))
            .collect(),
    };
    // `Param::new` infers nothing from a name: this "bias" is a weight and decays
    model
        .params
        .push(Param::new("bias", tensor::full(&[2], 2.0)));
    let tape = Tape::new();
    let mut loss = tape.constant(tensor::zeros(&[]));
    model.visit_params(&mut |_, p| loss = loss + (tape.param(p) * 0.0).sum());
    let grads = loss.backward();
    let decayed = 2.0 - 0.5 * 0.1 * 2.0;
    let after_step = |sgd: Sgd, model: &mut EveryRole| -> Vec<Tensor> {
        let mut sgd = sgd;
        let before: Vec<Tensor> = model.params.iter().map(|p| p.value().to_owned()).collect();
        sgd.step(model, &grads).unwrap();
        let after = model.params.iter().map(|p| p.value().to_owned()).collect();
        for (p, v) in model.params.iter_mut().zip(before) {
            p.set_value(v).unwrap();
        }
        after
    };
    let all =
        |values: &[f32]| -> Vec<Tensor> { values.iter().map(|&v| tensor::full(&[2], v)).collect() };
    let weights_only = Sgd::new(0.5).unwrap().decay_biases(false);
    assert_eq!(
        after_step(weights_only.weight_decay(0.1).unwrap(), &mut model),
        all(&[decayed, 2.0, 2.0, 2.0, decayed, decayed])
    );
    // PyTorch's weight decay reaches every parameter
    let every = Sgd::new(0.5).unwrap().weight_decay(0.1).unwrap();
    assert_eq!(after_step(every, &mut model), all(&[decayed; 6]));
    // the L2 term λ·Σ W² sums the weights: 2λ = 0.1
    let l2 = Sgd::new(0.5).unwrap().l2(0.05).unwrap();
    assert_eq!(
        after_step(l2, &mut model),
        all(&[decayed, 2.0, 2.0, 2.0, decayed, decayed])
    );
}
