//! Restricted Boltzmann machines through the public API: CD-k against the exact
//! log-likelihood gradient of an RBM small enough to enumerate, training on generated data,
//! determinism, checkpoints and safetensors, and greedy pre-training of a sigmoid network.

use tapegrad::ndarray::{Array2, Axis, concatenate};
use tapegrad::{
    ChaCha8Rng, Error, Init, Linear, Mode, Module, Rbm, RbmConfig, RbmGradient, RbmMethod,
    RbmTrainer, SeedableRng, Sequential, Sigmoid, Tanh, Tape, Tensor, checkpoint, pretrain, tensor,
};

/// Every binary vector of length `n`, as rows `[2^n, n]`.
fn all_states(n: usize) -> Tensor {
    Array2::from_shape_fn((1 << n, n), |(s, i)| ((s >> i) & 1) as f32).into_dyn()
}

/// `rows` random binary rows of width `n`, each unit on with probability `p`.
fn binary_rows(rows: usize, n: usize, p: f32, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    tensor::uniform(&[rows, n], 0.0, 1.0, &mut rng)
        .unwrap()
        .mapv(|u| if u < p { 1.0 } else { 0.0 })
}

/// The gradient's three parts as one vector, in f64.
fn flat(g: &RbmGradient) -> Vec<f64> {
    (g.weight.iter().chain(&g.hidden_bias).chain(&g.visible_bias))
        .map(|&x| f64::from(x))
        .collect()
}

/// `‖a − b‖ / ‖b‖`.
fn relative_distance(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

/// The exact gradient of the mean log-likelihood of `data`:
/// `−mean ∂F(data)/∂θ + Σ_v p(v)·∂F(v)/∂θ`, with `p(v) = e^(−F(v)) / Z` over all `2^V` states.
fn exact_gradient(rbm: &Rbm, data: &Tensor) -> Vec<f64> {
    let states = all_states(rbm.num_visible());
    let f = rbm.free_energy(&states).unwrap();
    let lowest = f.iter().fold(f32::INFINITY, |m, &x| m.min(x));
    let weights: Vec<f64> = f.iter().map(|&x| f64::from(lowest - x).exp()).collect();
    let z: f64 = weights.iter().sum();
    let data_term = flat(&rbm.free_energy_gradient(data).unwrap());
    let mut model_term = vec![0.0; data_term.len()];
    for (s, w) in weights.iter().enumerate() {
        let state = states
            .index_axis(Axis(0), s)
            .insert_axis(Axis(0))
            .to_owned();
        let g = flat(&rbm.free_energy_gradient(&state).unwrap());
        for (m, x) in model_term.iter_mut().zip(g) {
            *m += w / z * x;
        }
    }
    data_term
        .iter()
        .zip(&model_term)
        .map(|(d, m)| -d + m)
        .collect()
}

#[test]
fn cd_k_approaches_the_exact_log_likelihood_gradient_as_k_grows() {
    // 6 visible × 4 hidden: 64 visible states, so Z and the model's expectation are exact
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let rbm = Rbm::from_parts(
        tensor::normal(&[4, 6], 0.0, 2.0, &mut rng).unwrap(),
        tensor::normal(&[4], 0.0, 1.0, &mut rng).unwrap(),
        tensor::normal(&[6], 0.0, 1.0, &mut rng).unwrap(),
    )
    .unwrap();
    let data = binary_rows(8, 6, 0.5, 1);
    let exact = exact_gradient(&rbm, &data);
    // many chains per data row, so the estimate's noise is small next to CD's bias
    let copies: Vec<_> = (0..2000).map(|_| data.view()).collect();
    let replicated = concatenate(Axis(0), &copies).unwrap();
    let distance = |k: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(10 + k as u64);
        let g = rbm
            .contrastive_divergence(&replicated, k, &mut rng)
            .unwrap();
        relative_distance(&flat(&g), &exact)
    };
    let (cd1, cd200) = (distance(1), distance(200));
    eprintln!("relative distance to the exact gradient: CD-1 {cd1:.4}, CD-200 {cd200:.4}");
    assert!(cd200 < 0.03, "CD-200 is {cd200} away");
    assert!(cd1 > 3.0 * cd200, "CD-1 {cd1}, CD-200 {cd200}");
    assert!(cd1 < 1.0, "CD-1 is biased, but not that much: {cd1}");
}

/// Bars: each row is 4 × 4 pixels with one full row or one full column on.
fn bars(rows: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pick = tensor::uniform(&[rows], 0.0, 8.0, &mut rng).unwrap();
    Array2::from_shape_fn((rows, 16), |(r, p)| {
        let which = pick[r] as usize;
        let (y, x) = (p / 4, p % 4);
        let on = if which < 4 {
            y == which
        } else {
            x == which - 4
        };
        if on { 1.0 } else { 0.0 }
    })
    .into_dyn()
}

#[test]
fn training_raises_the_pseudo_likelihood_and_lowers_the_reconstruction_error() {
    let data = bars(400, 0);
    for method in [
        RbmMethod::ContrastiveDivergence { k: 1 },
        RbmMethod::PersistentCd { k: 1 },
        RbmMethod::ContrastiveDivergence { k: 3 },
    ] {
        let mut rbm = Rbm::new(16, 12, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let score = |rbm: &Rbm| {
            let pll = rbm
                .pseudo_log_likelihood(&data, &mut ChaCha8Rng::seed_from_u64(2))
                .unwrap();
            pll.mean().unwrap()
        };
        let (pll0, recon0) = (score(&rbm), rbm.reconstruction_error(&data).unwrap());
        let config = RbmConfig {
            method,
            lr: 0.1,
            batch_size: 20,
            epochs: 30,
            initial_momentum: 0.5,
            final_momentum: 0.9,
            momentum_switch_epochs: 5,
            ..RbmConfig::default()
        };
        let mut trainer = RbmTrainer::new(&rbm, config).unwrap();
        let history = trainer.train(&mut rbm, &data, &mut |_| {}).unwrap();
        assert_eq!(history.len(), 30);
        assert_eq!(history[0].updates, 20);
        assert_eq!((history[0].momentum, history[29].momentum), (0.5, 0.9));
        let (pll1, recon1) = (score(&rbm), rbm.reconstruction_error(&data).unwrap());
        assert!(
            pll1 > pll0 + 3.0,
            "{method:?}: pseudo-log-likelihood {pll0} -> {pll1}"
        );
        assert!(
            recon1 < 0.6 * recon0,
            "{method:?}: reconstruction error {recon0} -> {recon1}"
        );
    }
}

/// Trains an RBM for 3 epochs with `seed` and returns it.
fn trained(seed: u64, method: RbmMethod) -> Rbm {
    let data = bars(100, 3);
    let mut rbm = Rbm::new(16, 8, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
    let config = RbmConfig {
        method,
        batch_size: 16,
        epochs: 3,
        seed,
        ..RbmConfig::practical_guide()
    };
    let mut trainer = RbmTrainer::new(&rbm, config).unwrap();
    trainer.train(&mut rbm, &data, &mut |_| {}).unwrap();
    rbm
}

/// The parameters as (name, values).
fn params(model: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    model.visit_params(&mut |name, p| out.push((name.to_string(), p.value().to_owned())));
    out
}

#[test]
fn the_same_seed_gives_the_same_bits_and_another_seed_other_numbers() {
    for method in [
        RbmMethod::ContrastiveDivergence { k: 2 },
        RbmMethod::PersistentCd { k: 1 },
    ] {
        let (a, b, c) = (trained(5, method), trained(5, method), trained(6, method));
        assert_eq!(params(&a), params(&b), "{method:?}");
        assert_ne!(params(&a), params(&c), "{method:?}");
    }
}

#[test]
fn an_rbm_round_trips_through_checkpoints_and_safetensors() {
    let rbm = trained(1, RbmMethod::PersistentCd { k: 1 });
    let dir = std::env::temp_dir().join(format!("tapegrad-rbm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = bars(10, 9);

    let path = dir.join("rbm.ckpt");
    checkpoint::save(&rbm, &path).unwrap();
    let mut loaded = Rbm::new(16, 8, &mut ChaCha8Rng::seed_from_u64(99)).unwrap();
    checkpoint::load(&mut loaded, &path).unwrap();
    assert_eq!(params(&loaded), params(&rbm));
    assert_eq!(
        loaded.hidden_probs(&data).unwrap(),
        rbm.hidden_probs(&data).unwrap()
    );
    let names: Vec<String> = params(&rbm).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "hidden_bias", "visible_bias"]);

    let st = dir.join("rbm.safetensors");
    checkpoint::export_safetensors(&rbm, &st).unwrap();
    let mut imported = Rbm::new(16, 8, &mut ChaCha8Rng::seed_from_u64(98)).unwrap();
    checkpoint::import_safetensors(&mut imported, &st).unwrap();
    assert_eq!(params(&imported), params(&rbm));

    // a checkpoint of another shape is refused, naming the parameter and both shapes
    let mut other = Rbm::new(16, 4, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let err = checkpoint::load(&mut other, &path).unwrap_err();
    assert!(
        matches!(&err, Error::ParamMismatch { name, file: Some(f), model: Some(m), .. }
            if name == "weight" && f == &[8, 16] && m == &[4, 16]),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `16 → 12 → 8 → 4` sigmoid network.
fn sigmoid_mlp(seed: u64) -> Sequential {
    mlp_with(seed, [Box::new(Sigmoid), Box::new(Sigmoid)])
}

/// 16-12-8-4 with the two given hidden activations, weights N(0, 0.01²).
fn mlp_with(seed: u64, [first, second]: [Box<dyn Module>; 2]) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let init = Init::Normal {
        mean: 0.0,
        std: 0.01,
    };
    Sequential::new(vec![
        Box::new(Linear::new(16, 12, init, &mut rng).unwrap()),
        first,
        Box::new(Linear::new(12, 8, init, &mut rng).unwrap()),
        second,
        Box::new(Linear::new(8, 4, init, &mut rng).unwrap()),
    ])
    .unwrap()
}

/// The output of each layer of `model` on `x`, in order.
fn layer_outputs(model: &Sequential, x: &Tensor) -> Vec<Tensor> {
    let mut outputs = Vec::new();
    let mut value = x.clone();
    for layer in model.layers() {
        let tape = Tape::new();
        value = layer.forward(tape.constant(value), Mode::Eval).value();
        outputs.push(value.clone());
    }
    outputs
}

#[test]
fn pretraining_a_tanh_net_gives_twice_the_sigmoid_nets_hidden_units_minus_one() {
    let data = bars(200, 6);
    let config = RbmConfig {
        lr: 0.1,
        batch_size: 20,
        epochs: 5,
        ..RbmConfig::practical_guide()
    };
    let mut sigmoid_net = sigmoid_mlp(0);
    let rbms = pretrain(&mut sigmoid_net, &data, &config, &mut |_| {}).unwrap();
    // tanh–tanh and the two mixed stacks
    let stacks: [[Box<dyn Module>; 2]; 3] = [
        [Box::new(Tanh), Box::new(Tanh)],
        [Box::new(Sigmoid), Box::new(Tanh)],
        [Box::new(Tanh), Box::new(Sigmoid)],
    ];
    let reference = layer_outputs(&sigmoid_net, &data);
    for stack in stacks {
        let mut net = mlp_with(0, stack);
        let converted = pretrain(&mut net, &data, &config, &mut |_| {}).unwrap();
        // the same RBMs: the conversion changes the Linears only
        for (a, b) in converted.iter().zip(&rbms) {
            assert_eq!(a.weight().value(), b.weight().value());
            assert_eq!(a.hidden_bias().value(), b.hidden_bias().value());
        }
        let outputs = layer_outputs(&net, &data);
        // hidden layers after their activations: indices 1 and 3
        for index in [1, 3] {
            let tanh = net.layers()[index].describe() == "Tanh()";
            let (got, sigmoid) = (&outputs[index], &reference[index]);
            let worst = got
                .iter()
                .zip(sigmoid)
                .map(|(&y, &h)| {
                    let expected = if tanh { 2.0 * h - 1.0 } else { h };
                    (y - expected).abs()
                })
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-5,
                "{} layer {index}: off by {worst}",
                net.describe()
            );
        }
    }
    // and the check means something: the hidden values are not all σ(0) = 1/2
    for index in [1, 3] {
        let spread = reference[index]
            .iter()
            .fold(0.0f32, |m, &h| m.max((h - 0.5).abs()));
        assert!(spread > 0.05, "layer {index}: {spread}");
    }
}

#[test]
fn pretraining_copies_each_rbm_into_its_linear_and_lowers_reconstruction_error() {
    let data = bars(300, 4);
    let mut model = sigmoid_mlp(0);
    let output_before = params(&model)
        .into_iter()
        .filter(|(n, _)| n.starts_with("4."))
        .collect::<Vec<_>>();
    let config = RbmConfig {
        lr: 0.1,
        batch_size: 20,
        epochs: 15,
        ..RbmConfig::practical_guide()
    };
    let mut seen = Vec::new();
    let rbms = pretrain(&mut model, &data, &config, &mut |p| {
        seen.push((p.layer, p.layers, p.epoch.epoch, p.reconstruction_error))
    })
    .unwrap();
    assert_eq!(rbms.len(), 2);
    assert_eq!(seen.len(), 30);
    for layer in [1, 2] {
        let errors: Vec<f64> = (seen.iter())
            .filter(|s| s.0 == layer)
            .map(|s| s.3)
            .collect();
        assert_eq!(errors.len(), 15);
        assert!(
            errors[14] < 0.7 * errors[0],
            "layer {layer}: reconstruction error {} -> {}",
            errors[0],
            errors[14]
        );
    }
    assert!(seen.iter().all(|s| s.1 == 2));
    // the Linears hold the RBMs' weights and hidden biases; the output layer is untouched
    let after = params(&model);
    let get = |name: &str| after.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for (index, rbm) in [0, 2].iter().zip(&rbms) {
        assert_eq!(
            get(&format!("{index}.weight")),
            rbm.weight().value().to_owned()
        );
        assert_eq!(
            get(&format!("{index}.bias")),
            rbm.hidden_bias().value().to_owned()
        );
    }
    assert_eq!((rbms[1].num_visible(), rbms[1].num_hidden()), (12, 8));
    for (name, value) in output_before {
        assert_eq!(get(&name), value);
    }
    // the second RBM learned from the first one's hidden probabilities: its input is the
    // first layer's forward pass, so the network's first layer computes exactly its data
    let h1 = rbms[0].hidden_probs(&data).unwrap();
    assert!(rbms[1].reconstruction_error(&h1).unwrap() < seen[15].3 + 1e-9);
}

#[test]
fn pretraining_refuses_other_models_and_data_outside_zero_one() {
    let config = RbmConfig {
        epochs: 1,
        ..RbmConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut relu_net = Sequential::new(vec![
        Box::new(Linear::new(16, 4, Init::default(), &mut rng).unwrap()),
        Box::new(tapegrad::Relu),
        Box::new(Linear::new(4, 2, Init::default(), &mut rng).unwrap()),
    ])
    .unwrap();
    let err = pretrain(&mut relu_net, &bars(10, 0), &config, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pretrain: expected a Sequential of the form Linear, Sigmoid or Tanh, …, Linear, found ReLU() at layer 1"
    );
    let mut model = sigmoid_mlp(0);
    let mut pixels = bars(10, 0);
    pixels[[3, 5]] = 255.0;
    let err = pretrain(&mut model, &pixels, &config, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pretrain: visible values must be probabilities in [0, 1], found 255 at row 3, column 5"
    );
    let err = pretrain(&mut model, &tensor::ones(&[4, 15]), &config, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pretrain: expected visible values [n, 16] with n >= 1, found [4, 15]"
    );
    let bad = RbmConfig {
        lr: f32::INFINITY,
        ..config
    };
    let err = pretrain(&mut model, &bars(10, 0), &bad, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rbm: learning rate must be finite and > 0, got inf"
    );
}
