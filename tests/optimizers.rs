//! The optimizers against PyTorch, and the public optimizer seam used from outside the crate.
//!
//! Reference values come from PyTorch 2.15 (`~/.cache/torch-venv`), with this problem: a
//! `torch.nn.Linear(3, 2)` whose weight and bias are set to `W0`, `B0` below, trained for
//! five steps on the mean squared error of `X` against `Y`:
//!
//! ```text
//! import torch
//! X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-2.0, 0.3, 0.7], [1.2, 1.1, -0.4]])
//! Y = torch.tensor([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [1.0, -0.5]])
//! W0 = torch.tensor([[0.5, -0.3, 0.8], [-0.2, 0.7, 0.1]]); B0 = torch.tensor([0.1, -0.4])
//! def run(make_opt, steps=5, clip=None, groups=None):
//!     lin = torch.nn.Linear(3, 2)
//!     with torch.no_grad(): lin.weight.copy_(W0); lin.bias.copy_(B0)
//!     opt = make_opt([{"params": [lin.weight]}, groups(lin)] if groups else lin.parameters())
//!     for _ in range(steps):
//!         opt.zero_grad()
//!         torch.nn.functional.mse_loss(lin(X), Y).backward()
//!         if clip == "norm": torch.nn.utils.clip_grad_norm_(lin.parameters(), 0.5)
//!         if clip == "value": torch.nn.utils.clip_grad_value_(lin.parameters(), 0.3)
//!         opt.step()
//!     return lin.weight.flatten().tolist() + lin.bias.tolist()
//! ```
//!
//! Each test quotes its `run(...)` call. PyTorch decays every parameter, biases included,
//! as `weight_decay` does here by default; the runs with weight decay also say so with
//! `decay_biases(true)`.

use tapegrad::checkpoint::Checkpoint;
use tapegrad::ndarray::{ArrayViewMutD, Zip, array};
use tapegrad::{
    Adam, ChaCha8Rng, Dataset, Decay, DecayUnit, Elem, Error, FitConfig, Init, Linear, Mode,
    Module, Optim, Optimizer, ParamGrad, ParamGroup, ParamStep, Plateau, Relu, RmsProp, Schedule,
    SeedableRng, Sequential, Sgd, Tape, Tensor, UpdateRule, fit,
};

/// The layer at `W0`, `B0`.
fn layer() -> Linear {
    Linear::from_parts(
        array![[0.5, -0.3, 0.8], [-0.2, 0.7, 0.1]].into_dyn(),
        Some(array![0.1, -0.4].into_dyn()),
    )
    .unwrap()
}

/// The gradients of the mean squared error of `X` against `Y` at the layer's values.
fn gradients(layer: &Linear) -> tapegrad::Gradients {
    let x = array![
        [1.0, 2.0, -1.0],
        [0.5, -1.5, 2.0],
        [-2.0, 0.3, 0.7],
        [1.2, 1.1, -0.4]
    ];
    let y = array![[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [1.0, -0.5]];
    let tape = Tape::new();
    let out = layer.forward(tape.constant(x.into_dyn()), Mode::Train);
    out.mse(tape.constant(y.into_dyn())).backward()
}

/// Five steps of `opt` on `layer`; the weight (row-major) then the bias.
fn run_on(mut layer: Linear, opt: &mut dyn Optimizer, steps: usize) -> Vec<Elem> {
    for _ in 0..steps {
        let grads = gradients(&layer);
        opt.step(&mut layer, &grads).unwrap();
    }
    let mut values: Vec<Elem> = layer.weight().value().iter().copied().collect();
    values.extend(layer.bias().unwrap().value().iter());
    values
}

fn run(mut opt: impl Optimizer) -> Vec<Elem> {
    run_on(layer(), &mut opt, 5)
}

#[track_caller]
fn assert_close(found: &[Elem], expected: &[f64]) {
    assert_eq!(found.len(), expected.len());
    for (i, (&f, &e)) in found.iter().zip(expected).enumerate() {
        assert!(
            (f64::from(f) - e).abs() <= 2e-6 * e.abs().max(1.0),
            "element {i}: found {f}, torch {e}\nfound {found:?}"
        );
    }
}

/// `run(lambda p: torch.optim.RMSprop(p, lr=0.01))` and variants, as named.
#[test]
fn rmsprop_matches_pytorch() {
    assert_close(
        &run(RmsProp::new(0.01).unwrap()),
        &[
            0.62548929,
            -0.0553917,
            0.55697548,
            -0.41451883,
            0.4312405,
            0.3700777,
            0.3360734,
            -0.38387302,
        ],
    );
    // RMSprop(p, lr=0.01, centered=True)
    assert_close(
        &run(RmsProp::new(0.01).unwrap().centered(true)),
        &[
            0.62484622,
            -0.05360302,
            0.55522346,
            -0.4153108,
            0.42872959,
            0.37260762,
            0.33761358,
            -0.38344362,
        ],
    );
    // RMSprop(p, lr=0.01, momentum=0.9)
    assert_close(
        &run(RmsProp::new(0.01).unwrap().momentum(0.9).unwrap()),
        &[
            0.70643234,
            0.26383844,
            0.24449126,
            -0.64639777,
            0.02634586,
            0.79367048,
            0.62696427,
            -0.19808643,
        ],
    );
    // RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
    //         weight_decay=0.1), setters in another order than torch's
    let all = RmsProp::new(0.01)
        .unwrap()
        .centered(true)
        .weight_decay(0.1)
        .unwrap()
        .decay_biases(true)
        .momentum(0.5)
        .unwrap()
        .eps(1e-6)
        .unwrap()
        .alpha(0.9)
        .unwrap();
    assert_close(
        &run(all),
        &[
            0.63596058,
            -0.11874525,
            0.61775875,
            -0.37263286,
            0.5111469,
            0.28761843,
            0.27568918,
            -0.35735208,
        ],
    );
}

/// `run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.3))`
#[test]
fn sgd_dampening_matches_pytorch() {
    let sgd = Sgd::new(0.1)
        .unwrap()
        .dampening(0.3)
        .unwrap()
        .momentum(0.9)
        .unwrap();
    assert_close(
        &run(sgd),
        &[
            0.68008047,
            0.41701397,
            0.36179078,
            -0.51547199,
            -0.14773878,
            0.85730255,
            0.36273488,
            -0.38925523,
        ],
    );
}

/// `run(lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1))` and
/// `run(lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1))`: biases decayed, as
/// torch does.
#[test]
fn adam_and_adamw_reproduce_pytorch_with_decayed_biases() {
    let adamw = Adam::adamw(0.05, 0.1).unwrap().decay_biases(true);
    assert_close(
        &run(adamw),
        &[
            0.69584692,
            -0.05497362,
            0.54330492,
            -0.42841318,
            0.44108459,
            0.3400566,
            0.33465171,
            -0.40526491,
        ],
    );
    let adam = Adam::new(0.05)
        .unwrap()
        .decay_biases(true)
        .weight_decay(0.1)
        .unwrap();
    assert_close(
        &run(adam),
        &[
            0.69196856,
            -0.05940839,
            0.55878568,
            -0.43443486,
            0.45501059,
            0.34435886,
            0.33657745,
            -0.32299268,
        ],
    );
    // by default weight decay reaches the biases, as PyTorch's: the same numbers; with
    // `decay_biases(false)` a bias after one step (same gradients) is as without decay,
    // the weight is not
    let default = run(Adam::adamw(0.05, 0.1).unwrap());
    assert_eq!(
        default,
        run(Adam::adamw(0.05, 0.1).unwrap().decay_biases(true))
    );
    let adamw = Adam::adamw(0.05, 0.1).unwrap();
    let skipped = run_on(layer(), &mut adamw.decay_biases(false), 1);
    let undecayed = run_on(layer(), &mut Adam::new(0.05).unwrap(), 1);
    assert_eq!(skipped[6..], undecayed[6..]);
    assert_ne!(skipped[..6], undecayed[..6]);
}

/// With a zero gradient and `lr·wd = 1e-7`, AdamW shrinks every weight by `1e-7` of itself:
/// `θ·(1 − lr·wd)` would round the factor to `1 − 1.19e-7` (19% too much).
#[test]
fn adamw_keeps_a_small_decay_exact() {
    let weights: Vec<Elem> = (0..4096).map(|i| 0.25 + i as Elem / 4096.0).collect();
    let w = Tensor::from_shape_vec(vec![64, 64], weights.clone()).unwrap();
    let mut layer = Linear::from_parts(w, None).unwrap();
    let mut adamw = Adam::adamw(1e-3, 1e-4).unwrap();
    let tape = Tape::new();
    let x = tape.constant(Tensor::zeros(vec![1, 64]));
    let grads = (layer.forward(x, Mode::Train).sum() * 0.0).backward();
    drop(tape);
    adamw.step(&mut layer, &grads).unwrap();
    let shrunk: f64 = (weights.iter().zip(layer.weight().value().iter()))
        .map(|(a, b)| f64::from(a - b))
        .sum();
    let expected: f64 = weights.iter().map(|&a| f64::from(a) * 1e-7).sum();
    assert!(
        (shrunk / expected - 1.0).abs() < 0.05,
        "{}",
        shrunk / expected
    );
}

/// `run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), clip="norm")` after
/// `lin.weight.requires_grad_(False)`: the frozen weight gets no gradient, so it neither
/// moves nor counts in the clipped norm.
#[test]
fn a_frozen_parameter_is_left_out_as_in_pytorch() {
    let mut frozen = layer();
    frozen.weight_mut().set_requires_grad(false);
    let mut sgd = (Sgd::new(0.1).unwrap().momentum(0.9).unwrap())
        .clip_grad_norm(0.5)
        .unwrap();
    assert_close(
        &run_on(frozen, &mut sgd, 5),
        &[0.5, -0.3, 0.8, -0.2, 0.7, 0.1, 0.48078918, -0.45660377],
    );
}

/// `run(lambda p: torch.optim.SGD(p, lr=0.1), clip="norm")` (max_norm 0.5) and
/// `clip="value"` (0.3).
#[test]
fn gradient_clipping_matches_pytorch() {
    assert_close(
        &run(Sgd::new(0.1).unwrap().clip_grad_norm(0.5).unwrap()),
        &[
            0.53833085,
            -0.18283854,
            0.72242004,
            -0.26029941,
            0.55638725,
            0.22534244,
            0.13595335,
            -0.40389186,
        ],
    );
    assert_close(
        &run(Sgd::new(0.1).unwrap().clip_grad_value(0.3).unwrap()),
        &[
            0.61711419,
            -0.15000001,
            0.64999986,
            -0.35000002,
            0.54999983,
            0.25000003,
            0.23621789,
            -0.41370025,
        ],
    );
    // a norm below the limit leaves the step as it was
    assert_eq!(
        run(Sgd::new(0.1).unwrap().clip_grad_norm(1e6).unwrap()),
        run(Sgd::new(0.1).unwrap())
    );
    let err = Sgd::new(0.1).unwrap().clip_grad_value(0.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sgd: clip value must be finite and > 0, got 0"
    );
}

/// `run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9),
///      groups=lambda lin: {"params": [lin.bias], "lr": 0.02, "weight_decay": 0.5})`
#[test]
fn param_groups_match_pytorch() {
    let layer = layer();
    let bias = ParamGroup::select(&layer, |name, _| name == "bias")
        .weight_decay(0.5)
        .unwrap()
        .decay_biases(true)
        .lr(0.02)
        .unwrap();
    let mut sgd = Sgd::new(0.1).unwrap().group(bias).momentum(0.9).unwrap();
    assert_close(
        &run_on(layer, &mut sgd, 5),
        &[
            0.66698587,
            0.47208071,
            0.39606467,
            -0.49818629,
            -0.16299467,
            0.86814141,
            0.15921281,
            -0.34582007,
        ],
    );
    // a group's rate follows the base rate when fit halves it
    sgd.set_base_lr(0.05).unwrap();
    assert_eq!(sgd.lr(), 0.05);

    // a parameter in two groups is refused at the first step, changing nothing
    let mut model = self::layer();
    let all = || ParamGroup::select(&model, |_, _| true);
    let mut twice = Sgd::new(0.1).unwrap().group(all()).group(all());
    let grads = gradients(&model);
    let err = twice.step(&mut model, &grads).unwrap_err();
    assert!(
        err.to_string().contains("is in two parameter groups"),
        "{err}"
    );
    assert_eq!(twice.steps(), 0);
}

/// Learning rates of 12 steps, as PyTorch's schedulers give them (`opt.param_groups[0]["lr"]`
/// before each `opt.step(); sched.step()`, base rate 1):
///
/// ```text
/// S = torch.optim.lr_scheduler
/// S.MultiStepLR(o, milestones=[3, 7], gamma=0.5)
/// S.ChainedScheduler([S.LinearLR(o, start_factor=0.25, total_iters=4),
///                     S.MultiStepLR(o, milestones=[3, 7], gamma=0.5)])
/// S.CosineAnnealingLR(o, T_max=4, eta_min=0.1)
/// ```
#[test]
fn schedules_match_pytorch() {
    let lrs = |s: &Schedule| -> Vec<Elem> { (0..12).map(|t| s.lr(1.0, t, 0)).collect() };
    let multi = Decay::MultiStep {
        milestones: vec![3, 7],
        gamma: 0.5,
    };
    let multi = Schedule::new(multi, DecayUnit::Step).unwrap();
    let expected = [
        1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25,
    ];
    assert_close(&lrs(&multi), &expected);
    let warm = multi.clone().warmup(4, 0.25).unwrap();
    let expected = [
        0.25, 0.4375, 0.625, 0.40625, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25,
    ];
    assert_close(&lrs(&warm), &expected);
    let cosine = Decay::Cosine {
        period: 4,
        min_factor: 0.1,
    };
    let cosine = Schedule::new(cosine, DecayUnit::Step).unwrap();
    let expected = [
        1.0,
        0.868198052,
        0.55,
        0.231801948,
        0.1,
        0.231801948,
        0.55,
        0.868198052,
        1.0,
        0.868198052,
        0.55,
        0.231801948,
    ];
    assert_close(&lrs(&cosine), &expected);
    let err = Schedule::new(
        Decay::MultiStep {
            milestones: vec![5, 5],
            gamma: 0.5,
        },
        DecayUnit::Epoch,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule: multi-step decay needs increasing milestones, got [5, 5]"
    );
    assert!(cosine.warmup(0, 0.5).is_err());
}

/// Nesterov before momentum is fine; Nesterov without momentum is refused by the first
/// step, which changes nothing.
#[test]
fn builder_setters_do_not_depend_on_their_order() {
    let a = Sgd::new(0.1).unwrap().nesterov().momentum(0.9).unwrap();
    let b = Sgd::new(0.1).unwrap().momentum(0.9).unwrap().nesterov();
    assert_eq!(run(a), run(b));
    let mut model = layer();
    let grads = gradients(&model);
    let mut no_momentum = Sgd::new(0.1).unwrap().nesterov();
    let err = no_momentum.step(&mut model, &grads).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }));
    assert_eq!(
        err.to_string(),
        "sgd: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"
    );
    assert_eq!(model.weight().value(), layer().weight().value());
}

/// Heavy-ball momentum written outside the crate: `b ← μ·b + g`, `θ ← θ − lr·b`. It only
/// adds multiples of the gradient, so a weight's gradient kept as factors is never formed.
#[derive(Debug, Default)]
struct HeavyBall {
    mu: Elem,
    /// How many gradients came kept in parts.
    factored: usize,
}

impl UpdateRule for HeavyBall {
    fn kind(&self) -> &'static str {
        "heavy ball"
    }
    fn buffers(&self) -> usize {
        1
    }
    fn update(
        &mut self,
        theta: ArrayViewMutD<'_, Elem>,
        grad: &ParamGrad<'_>,
        buffers: &mut [Tensor],
        at: &ParamStep<'_>,
    ) {
        self.factored += usize::from(grad.is_factored());
        let b = &mut buffers[0];
        grad.mix_into(b.view_mut(), self.mu, 1.0);
        Zip::from(theta).and(&*b).for_each(|t, &b| *t -= at.lr * b);
    }
}

/// An MLP's weights at batch size 1: their gradients are kept as factors.
fn mlp() -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    Sequential::new(vec![
        Box::new(Linear::new(4, 8, Init::default(), &mut rng).unwrap()),
        Box::new(Relu),
        Box::new(Linear::new(8, 3, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap()
}

fn mlp_gradients(model: &Sequential, x: f32) -> tapegrad::Gradients {
    let tape = Tape::new();
    let input = tape.constant(Tensor::from_elem(vec![1, 4], x));
    model.forward(input, Mode::Train).sum().backward()
}

#[test]
fn a_rule_written_outside_the_crate_gets_the_factored_fast_path() {
    let mut model = mlp();
    let mut reference = mlp();
    let mut heavy = Optim::with_rule(
        HeavyBall {
            mu: 0.9,
            factored: 0,
        },
        0.01,
    )
    .unwrap();
    let mut sgd = Sgd::new(0.01).unwrap().momentum(0.9).unwrap();
    for step in 0..3 {
        let grads = mlp_gradients(&model, 1.0 + step as f32);
        heavy.step(&mut model, &grads).unwrap();
        // the guard (the default check on copies) and the update formed nothing
        assert_eq!(grads.dense_formed(), 0);
        let grads = mlp_gradients(&reference, 1.0 + step as f32);
        sgd.step(&mut reference, &grads).unwrap();
    }
    // both weights' gradients came as factors, every step (seen by the default check's
    // trial run and by the update); the biases' dense
    assert_eq!(heavy.rule().factored, 2 * 2 * 3);
    // the same arithmetic as SGD with momentum, bit for bit
    let values = |m: &Sequential| {
        let mut v = Vec::new();
        m.visit_params(&mut |_, p| v.extend(p.value().iter().map(|x| x.to_bits())));
        v
    };
    assert_eq!(values(&model), values(&reference));
    // its state goes by parameter name at the boundary, as the built-ins'
    let state = heavy.state().unwrap();
    assert_eq!(state.kind, "heavy ball");
    let names: Vec<&str> = state.buffers.keys().map(String::as_str).collect();
    assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);

    // a step that would overflow is refused by the shared guard, changing nothing
    let before = values(&model);
    let mut huge = Optim::with_rule(HeavyBall::default(), 3e38).unwrap();
    let grads = mlp_gradients(&model, 1e3);
    let err = huge.step(&mut model, &grads).unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }), "{err}");
    assert!(
        err.to_string().contains("would make a value not finite"),
        "{err}"
    );
    assert_eq!(values(&model), before);
    assert_eq!(huge.steps(), 0);
}

/// RMSprop with momentum, centered, in two parameter groups and with clipping: two epochs,
/// then a checkpoint's state put into a fresh optimizer and a fresh model, and two more,
/// equal four epochs in one go bit for bit.
#[test]
fn rmsprop_with_groups_resumes_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = tapegrad::tensor::normal(&[64, 4], 0.0, 1.0, &mut rng).unwrap();
    let labels = (0..64).map(|i| i % 3).collect();
    let data = Dataset::from_floats(
        x.into_dimensionality::<tapegrad::ndarray::Ix2>().unwrap(),
        labels,
    )
    .unwrap();
    let optimizer = |model: &Sequential| {
        let first = ParamGroup::select(model, |name, _| name.starts_with("0."))
            .lr(0.002)
            .unwrap();
        RmsProp::new(0.01)
            .unwrap()
            .momentum(0.5)
            .unwrap()
            .centered(true)
            .weight_decay(1e-3)
            .unwrap()
            .clip_grad_norm(1.0)
            .unwrap()
            .group(first)
    };
    let config = |epochs, start_epoch| FitConfig {
        epochs,
        start_epoch,
        batch_size: 16,
        seed: 9,
        ..FitConfig::default()
    };
    let mut straight = mlp();
    let mut opt = optimizer(&straight);
    fit(
        &mut straight,
        &mut opt,
        &data,
        None,
        &config(4, 0),
        &mut |_| {},
    )
    .unwrap();

    let mut first = mlp();
    let mut opt = optimizer(&first);
    fit(
        &mut first,
        &mut opt,
        &data,
        None,
        &config(2, 0),
        &mut |_| {},
    )
    .unwrap();
    let bytes = Checkpoint::new(&first)
        .with_training(&opt, 2)
        .unwrap()
        .to_bytes()
        .unwrap();
    let mut resumed = mlp();
    let mut opt = optimizer(&resumed);
    let done = Checkpoint::from_bytes(&bytes)
        .unwrap()
        .resume(&mut resumed, &mut opt)
        .unwrap();
    fit(
        &mut resumed,
        &mut opt,
        &data,
        None,
        &config(4, done),
        &mut |_| {},
    )
    .unwrap();
    let bits = |m: &Sequential| {
        let mut v = Vec::new();
        m.visit_params(&mut |_, p| v.extend(p.value().iter().map(|x| x.to_bits())));
        v
    };
    assert_eq!(bits(&straight), bits(&resumed));
    assert_ne!(bits(&straight), bits(&mlp()));
}

/// Blobs of three classes, for `fit` with validation.
fn three_classes(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = tapegrad::tensor::normal(&[60, 4], 0.0, 1.0, &mut rng).unwrap();
    let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
    let x = tapegrad::ndarray::Array2::from_shape_fn((60, 4), |(i, j)| {
        x[[i, j]] + if j == labels[i] { 1.5 } else { 0.0 }
    });
    Dataset::from_floats(x, labels).unwrap()
}

/// The rate is lowered on a plateau of the validation loss, and the plateau's counters
/// travel in the checkpoint: 3 + 3 epochs across a checkpoint equal 6 in one go.
#[test]
fn a_plateau_lowers_the_rate_and_resumes_bit_for_bit() {
    let (train, valid) = (three_classes(1), three_classes(2));
    let config = |epochs, start_epoch| FitConfig {
        epochs,
        start_epoch,
        batch_size: 10,
        plateau: Some(Plateau {
            patience: 0,
            factor: 0.5,
            threshold: 0.05,
            ..Plateau::default()
        }),
        ..FitConfig::default()
    };
    let sgd = || Sgd::new(0.5).unwrap().momentum(0.9).unwrap();
    let (mut straight, mut opt) = (mlp(), sgd());
    let history = fit(
        &mut straight,
        &mut opt,
        &train,
        Some(&valid),
        &config(6, 0),
        &mut |_| {},
    )
    .unwrap();
    let reductions = (history.events.iter())
        .filter(|e| e.contains("base learning rate reduced to"))
        .count();
    assert!(reductions >= 1, "{:?}", history.events);
    assert_eq!(opt.base_lr(), 0.5 * 0.5f32.powi(reductions as i32));

    let (mut first, mut first_opt) = (mlp(), sgd());
    fit(
        &mut first,
        &mut first_opt,
        &train,
        Some(&valid),
        &config(3, 0),
        &mut |_| {},
    )
    .unwrap();
    let bytes = (Checkpoint::new(&first).with_training(&first_opt, 3))
        .unwrap()
        .to_bytes()
        .unwrap();
    let (mut resumed, mut resumed_opt) = (mlp(), sgd());
    let checkpoint = Checkpoint::from_bytes(&bytes).unwrap();
    assert!(checkpoint.optimizer_state().unwrap().plateau.is_some());
    let done = checkpoint.resume(&mut resumed, &mut resumed_opt).unwrap();
    fit(
        &mut resumed,
        &mut resumed_opt,
        &train,
        Some(&valid),
        &config(6, done),
        &mut |_| {},
    )
    .unwrap();
    let bits = |m: &Sequential| {
        let mut v = Vec::new();
        m.visit_params(&mut |_, p| v.extend(p.value().iter().map(|x| x.to_bits())));
        v
    };
    assert_eq!(bits(&straight), bits(&resumed));
    assert_eq!(opt.state().unwrap(), resumed_opt.state().unwrap());

    // plateau settings are checked before training
    let mut bad = config(2, 0);
    bad.plateau.as_mut().unwrap().factor = 2.0;
    let err = fit(
        &mut mlp(),
        &mut sgd(),
        &train,
        Some(&valid),
        &bad,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "plateau: factor must be in (0, 1), got 2");
    let err = fit(
        &mut mlp(),
        &mut sgd(),
        &train,
        None,
        &config(2, 0),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs validation data"), "{err}");
}

/// The layer at `W0`, `B0` with its weight held column-major (the same values, transposed
/// in memory), as a weight made from a transposed array is.
fn column_major_layer() -> Linear {
    let transposed = array![[0.5, -0.2], [-0.3, 0.7], [0.8, 0.1]].into_dyn();
    let weight = transposed.reversed_axes();
    assert!(!weight.is_standard_layout());
    Linear::from_parts(weight, Some(array![0.1, -0.4].into_dyn())).unwrap()
}

#[test]
fn a_column_major_weight_is_updated_as_its_row_major_twin() {
    // the loss Σ(x·Wᵀ + b) of one row: ∂/∂W = x in every row, exactly, whatever W's layout
    let steps = |mut layer: Linear, opt: &mut dyn Optimizer| {
        for _ in 0..5 {
            let tape = Tape::new();
            let x = tape.constant(array![[1.0, 2.0, -1.0]].into_dyn());
            let grads = layer.forward(x, Mode::Train).sum().backward();
            opt.step(&mut layer, &grads).unwrap();
        }
        let weight = layer
            .weight()
            .value()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>();
        (weight, layer.weight().value()[[1, 2]])
    };
    type Make = fn() -> Box<dyn Optimizer>;
    let optimizers: [(&str, Make); 6] = [
        ("sgd, momentum, decay", || {
            let opt = Sgd::new(0.01).unwrap().momentum(0.9).unwrap();
            Box::new(opt.weight_decay(0.1).unwrap())
        }),
        ("sgd, nesterov", || {
            let opt = Sgd::new(0.01).unwrap().momentum(0.9).unwrap();
            Box::new(opt.nesterov())
        }),
        ("adam", || Box::new(Adam::new(0.01).unwrap())),
        ("adamw", || Box::new(Adam::adamw(0.01, 0.1).unwrap())),
        ("rmsprop", || Box::new(RmsProp::new(0.01).unwrap())),
        ("rmsprop, momentum, centered", || {
            let opt = RmsProp::new(0.01).unwrap().momentum(0.9).unwrap();
            Box::new(opt.centered(true))
        }),
    ];
    for (name, make) in optimizers {
        let (row_major, moved) = steps(layer(), make().as_mut());
        let (column_major, _) = steps(column_major_layer(), make().as_mut());
        assert_eq!(column_major, row_major, "{name}");
        assert_ne!(moved, 0.1, "{name}: the weights moved");
    }
}

/// RMSprop's own dry run refuses a step whose square average would overflow (`g²` of a
/// gradient of 1e21), names the buffer, and leaves the parameter and the optimizer as
/// they were; a gradient a little smaller passes.
#[test]
fn rmsprop_refuses_a_square_average_that_would_overflow() {
    let gradients_of = |x: Elem| {
        let model = Linear::from_parts(array![[1.0]].into_dyn(), None).unwrap();
        let tape = Tape::new();
        // ∂(w·x)/∂w = x
        let out = model.forward(tape.constant(array![[x]].into_dyn()), Mode::Train);
        (model, out.sum().backward())
    };
    for centered in [false, true] {
        let mut opt = RmsProp::new(0.01).unwrap().centered(centered);
        let (mut model, grads) = gradients_of(1e21);
        let err = opt.step(&mut model, &grads).unwrap_err();
        assert!(matches!(err, Error::Diverged { .. }), "{err}");
        assert!(
            err.to_string().contains("would make buffer 0 not finite"),
            "{err}"
        );
        assert_eq!(model.weight().value()[[0, 0]], 1.0);
        assert_eq!(opt.steps(), 0);
        // (1 − α)·g² = 0.01·(1e18)² = 1e34 fits in f32
        let (mut model, grads) = gradients_of(1e18);
        opt.step(&mut model, &grads).unwrap();
        assert!(model.weight().value()[[0, 0]] < 1.0);
    }
}
