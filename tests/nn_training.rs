//! Training with the public `nn` API: XOR with `Sequential` + `Linear` + an activation, and
//! a small MLP on a generated two-moons dataset.

use tapegrad::{
    Activation, ChaCha8Rng, Gradients, Init, Linear, Mode, Module, SeedableRng, Sequential, Tape,
    Tensor, tensor,
};

/// One step of plain gradient descent, `w ← w − lr·∂L/∂w`, on every parameter.
fn gradient_step(model: &mut Sequential, grads: &Gradients, lr: f32) {
    model.visit_params_mut(&mut |_, p| {
        if let Some(g) = grads.param(p) {
            let g = g.clone();
            p.value_mut().scaled_add(-lr, &g);
        }
    });
}

/// Full-batch training with softmax cross-entropy; returns the final loss.
fn train(model: &mut Sequential, x: &Tensor, labels: &[usize], steps: usize, lr: f32) -> f32 {
    let mut tape = Tape::new();
    let mut loss_value = f32::NAN;
    for _ in 0..steps {
        tape.reset();
        let logits = model.forward(tape.constant(x.clone()), Mode::Train);
        let loss = logits.cross_entropy(labels);
        loss_value = loss.item();
        let grads = loss.backward();
        gradient_step(model, &grads, lr);
    }
    loss_value
}

/// How many rows of `x` the model classifies as their label (arg-max of the logits).
fn correct(model: &Sequential, x: &Tensor, labels: &[usize]) -> usize {
    let tape = Tape::inference();
    let logits = model.forward(tape.constant(x.clone()), Mode::Eval).value();
    logits
        .outer_iter()
        .zip(labels)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            best == Some(**label)
        })
        .count()
}

fn mlp(widths: &[usize], activation: Activation, seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers: Vec<Box<dyn Module>> = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        layers.push(Box::new(
            Linear::new(pair[0], pair[1], Init::default(), &mut rng).unwrap(),
        ));
        if i + 2 < widths.len() {
            layers.push(activation.layer().unwrap());
        }
    }
    Sequential::new(layers).unwrap()
}

#[test]
fn xor_with_sequential_reaches_four_of_four() {
    let x = tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).unwrap();
    let labels = [0, 1, 1, 0];
    for activation in [Activation::Tanh, Activation::Relu, Activation::Sigmoid] {
        let mut model = mlp(&[2, 8, 2], activation, 0);
        assert!(correct(&model, &x, &labels) < 4, "untrained {activation}");
        let loss = train(&mut model, &x, &labels, 2000, 0.5);
        eprintln!("{activation}: loss {loss}");
        assert_eq!(correct(&model, &x, &labels), 4, "{activation}: loss {loss}");
        assert!(loss < 0.1, "{activation}: loss {loss}");
    }
}

/// The two interleaving half circles of scikit-learn's `make_moons`, with Gaussian noise:
/// class 0 on `(cos t, sin t)`, class 1 on `(1 − cos t, 0.5 − sin t)`, `t ∈ [0, π]`.
fn two_moons(per_class: usize, noise: f32, rng: &mut ChaCha8Rng) -> (Tensor, Vec<usize>) {
    let t = tensor::uniform(&[2 * per_class], 0.0, std::f32::consts::PI, rng).unwrap();
    let jitter = tensor::normal(&[2 * per_class, 2], 0.0, noise, rng).unwrap();
    let mut x = tensor::zeros(&[2 * per_class, 2]);
    let mut labels = Vec::with_capacity(2 * per_class);
    for i in 0..2 * per_class {
        let (c, s) = (t[[i]].cos(), t[[i]].sin());
        let class = i % 2;
        let (a, b) = if class == 0 {
            (c, s)
        } else {
            (1.0 - c, 0.5 - s)
        };
        x[[i, 0]] = a + jitter[[i, 0]];
        x[[i, 1]] = b + jitter[[i, 1]];
        labels.push(class);
    }
    (x, labels)
}

#[test]
fn mlp_learns_two_moons_to_95_percent_on_held_out_points() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (train_x, train_y) = two_moons(200, 0.1, &mut rng);
    let (test_x, test_y) = two_moons(200, 0.1, &mut rng);
    let mut model = mlp(&[2, 32, 32, 2], Activation::Tanh, 1);
    let before = correct(&model, &test_x, &test_y) as f32 / test_y.len() as f32;
    train(&mut model, &train_x, &train_y, 1500, 0.3);
    let train_acc = correct(&model, &train_x, &train_y) as f32 / train_y.len() as f32;
    let test_acc = correct(&model, &test_x, &test_y) as f32 / test_y.len() as f32;
    eprintln!("moons: before {before}, train {train_acc}, test {test_acc}");
    assert!(
        test_acc >= 0.95,
        "test accuracy {test_acc} (train {train_acc}, before {before})"
    );
    assert!(
        before < 0.95,
        "the untrained model should not already solve it: {before}"
    );
    // a linear classifier trained the same way cannot: the moons need the hidden layers
    let mut linear = mlp(&[2, 2], Activation::Tanh, 1);
    train(&mut linear, &train_x, &train_y, 1500, 0.3);
    let linear_acc = correct(&linear, &test_x, &test_y) as f32 / test_y.len() as f32;
    eprintln!("moons: linear classifier {linear_acc}");
    assert!(linear_acc < 0.95, "linear classifier {linear_acc}");
}
