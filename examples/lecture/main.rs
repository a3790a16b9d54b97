//! The deep learning basics lecture, reproduced: one command per claim, each printing a
//! Markdown table and writing it (`NAME.md`) with an SVG plot (`NAME.svg`) under the
//! results folder. Real data (Fashion-MNIST subsets) where the claim is about models, a
//! generated problem where it is about optimization itself. Seeded: the same command
//! gives the same numbers (timings aside).
//!
//! ```text
//! cargo run --release --example lecture -- --list
//! cargo run --release --example lecture -- learning-rate [--out results] [--tiny]
//! cargo run --release --example lecture -- all --out docs/results --readme README.md
//! ```
//!
//! `--readme FILE` replaces the part of FILE between the lines `<!-- lecture-results:start -->`
//! and `<!-- lecture-results:end -->` with the tables (`DIR/NAME.md`) and plots of every
//! experiment in the results folder; it refuses (before running anything) when the folder
//! would lack an experiment's table, which would drop that experiment's results.
//!
//! The images come from `$FASHION_MNIST_DIR` when it is set (and not empty), else from
//! `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`). Another folder of
//! the four IDX files with 28×28 images works too; with fewer images than an experiment
//! asks for, it uses all there are, and its table says the sizes used.
//!
//! Each experiment takes a few minutes or less on 2 cores in release mode (`--tiny`:
//! seconds, the budget of the integration test `tests/lecture.rs`).

// The outcomes' fields are read by the integration test (tests/lecture.rs), not by `main`.
#![allow(dead_code)]

pub mod activations;
pub mod batch_size;
#[allow(clippy::duplicate_mod)] // xor_claim's copy of the xor example has its own
#[path = "../support/cli.rs"]
mod cli;
pub mod cnn_vs_mlp;
pub mod common;
#[path = "../support/datasets.rs"]
pub mod datasets;
pub mod dropout;
pub mod dying_relu;
pub mod gd_vs_sgd;
pub mod init_table;
pub mod learning_rate;
pub mod lr_finder;
pub mod overfitting;
pub mod preprocessing;
pub mod rbm_pretrain;
pub mod receptive_field;
pub mod vanishing_gradients;
#[path = "../support/w2.rs"]
pub mod w2;
pub mod xor_claim;
pub mod zero_init;

use common::{Budget, Res, Table};
use std::path::{Path, PathBuf};

/// One experiment: its command name, the claim it checks, and how to run it.
pub struct Experiment {
    /// The command-line name.
    pub name: &'static str,
    /// The lecture's claim.
    pub claim: &'static str,
    /// Runs it, writing `name.md` and plots under the folder, and returns the table.
    pub run: fn(Budget, &Path) -> Res<Table>,
}

/// Every experiment, in the lecture's order.
pub const EXPERIMENTS: [Experiment; 17] = [
    Experiment {
        name: "xor",
        claim: "the perceptron cannot learn XOR; an MLP with backpropagation can",
        run: |b, o| Ok(xor_claim::run(b, o)?.table),
    },
    Experiment {
        name: "learning-rate",
        claim: "too large an lr oscillates or diverges, too small crawls; decay rescues a large one",
        run: |b, o| Ok(learning_rate::run(b, o)?.table),
    },
    Experiment {
        name: "lr-finder",
        claim: "the lr must be found by experiment: the range test finds one in one short run",
        run: |b, o| Ok(lr_finder::run(b, o)?.table),
    },
    Experiment {
        name: "gd-vs-sgd",
        claim: "mini-batch SGD converges in far fewer epochs than full-batch GD",
        run: |b, o| Ok(gd_vs_sgd::run(b, o)?.table),
    },
    Experiment {
        name: "batch-size",
        claim: "batch 1 learns most in the first epoch, batch 100 most per second",
        run: |b, o| Ok(batch_size::run(b, o)?.table),
    },
    Experiment {
        name: "preprocessing",
        claim: "features of very different scales train badly; standardized ones train well",
        run: |b, o| Ok(preprocessing::run(b, o)?.table),
    },
    Experiment {
        name: "zero-init",
        claim: "all-zero weights stay symmetric and learn nothing useful; random init learns",
        run: |b, o| Ok(zero_init::run(b, o)?.table),
    },
    Experiment {
        name: "vanishing-gradients",
        claim: "in a deep sigmoid net the gradient shrinks toward the input; with ReLU it does not",
        run: |b, o| Ok(vanishing_gradients::run(b, o)?.table),
    },
    Experiment {
        name: "activations",
        claim: "on the same deep MLP, step and sigmoid train worst; tanh, the rectifiers and maxout all train",
        run: |b, o| Ok(activations::run(b, o)?.table),
    },
    Experiment {
        name: "dying-relu",
        claim: "a large lr kills ReLU units for good; leaky ReLU units stay alive (ELU saturates)",
        run: |b, o| Ok(dying_relu::run(b, o)?.table),
    },
    Experiment {
        name: "init-table",
        claim: "the LSUV paper's init x activation table, on Fashion-MNIST with a deep thin MLP",
        run: |b, o| Ok(init_table::run(b, o)?.table),
    },
    Experiment {
        name: "init-table-cnn",
        claim: "the same init x activation table with a thin deep convnet, plus BatchNorm",
        run: |b, o| Ok(init_table::run_cnn(b, o)?.table),
    },
    Experiment {
        name: "overfitting",
        claim: "a small training set overfits; L2, fewer features and more data shrink the gap, dropout once there is more data",
        run: |b, o| Ok(overfitting::run(b, o)?.table),
    },
    Experiment {
        name: "dropout",
        claim: "dropout acts at training time only; evaluation is deterministic and uses every unit",
        run: |b, o| Ok(dropout::run(b, o)?.table),
    },
    Experiment {
        name: "receptive-field",
        claim: "a CNN unit sees a patch of the layer below; the patches grow with depth",
        run: |b, o| Ok(receptive_field::run(b, o)?.table),
    },
    Experiment {
        name: "cnn-vs-mlp",
        claim: "weight sharing and pooling keep a CNN's accuracy better than an MLP's under shifts",
        run: |b, o| Ok(cnn_vs_mlp::run(b, o)?.table),
    },
    Experiment {
        name: "rbm-pretrain",
        claim: "deep nets were first trained by RBM pre-training; simple inits (Xavier, LSUV) replace it",
        run: |b, o| Ok(rbm_pretrain::run(b, o)?.table),
    },
];

fn usage() -> String {
    let mut s = String::from(
        "usage: cargo run --release --example lecture -- <name>|all|--list [--out DIR] [--tiny] [--readme FILE]\n\nexperiments:\n",
    );
    for e in EXPERIMENTS.iter() {
        s += &format!("  {:<20} {}\n", e.name, e.claim);
    }
    s + "\nflags:\n  --list, --help, -h   this text\n  --out DIR            the results folder (default: results)\n  \
         --tiny               seconds per experiment instead of minutes (smaller subsets)\n  \
         --readme FILE        rewrite FILE's results section from the folder's tables\n\n\
         data: the images come from $FASHION_MNIST_DIR when it is set (not empty), else from\n\
         /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist); a folder of the\n\
         same four IDX files with fewer images gives smaller subsets (the tables say the sizes\n\
         used), images must be 28×28\n"
}

fn main() -> std::process::ExitCode {
    cli::run(run)
}

/// Runs the experiments named on the command line.
fn run() -> Res<()> {
    let mut names = Vec::new();
    let mut out = PathBuf::from("results");
    let mut budget = Budget::Full;
    let mut readme = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" | "--help" | "-h" => {
                cli::print_quietly(&usage());
                return Ok(());
            }
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a folder")?),
            "--tiny" => budget = Budget::Tiny,
            "--readme" => readme = Some(PathBuf::from(args.next().ok_or("--readme needs a file")?)),
            name => names.push(name.to_string()),
        }
    }
    if names.is_empty() {
        // the usage as text (an `Err` would print it in Debug form, newlines escaped)
        eprint!("{}", usage());
        std::process::exit(2);
    }
    let chosen: Vec<&Experiment> = if names.iter().any(|n| n == "all") {
        EXPERIMENTS.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in &names {
            let e = EXPERIMENTS.iter().find(|e| e.name == name).ok_or_else(|| {
                eprint!("{}", usage());
                format!("unknown experiment {name:?} (the list is above)")
            })?;
            chosen.push(e);
        }
        chosen
    };
    if let Some(readme) = &readme {
        // the section is rebuilt from the folder's tables: one missing would drop its results
        let missing: Vec<&str> = (EXPERIMENTS.iter())
            .filter(|e| !chosen.iter().any(|c| c.name == e.name))
            .filter(|e| !out.join(format!("{}.md", e.name)).is_file())
            .map(|e| e.name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "--readme {}: expected every experiment's table in {} (the section is rebuilt \
                 from them), found none for {}; run those (or `all`) with --out {} first",
                readme.display(),
                out.display(),
                missing.join(", "),
                out.display()
            )
            .into());
        }
    }
    for e in chosen {
        println!("== {}: {}", e.name, e.claim);
        let start = std::time::Instant::now();
        let table = (e.run)(budget, &out)?;
        println!("{}", table.to_markdown());
        println!(
            "(wrote {}/{}.md and the plot; {:.1}s)\n",
            out.display(),
            e.name,
            start.elapsed().as_secs_f64()
        );
    }
    if let Some(readme) = readme {
        // every experiment whose table is in the folder, in the lecture's order, so that
        // rerunning one experiment keeps the others
        let mut section = String::new();
        for e in &EXPERIMENTS {
            if let Ok(table) = std::fs::read_to_string(out.join(format!("{}.md", e.name))) {
                section += &results_section(e, &table, &out)?;
            }
        }
        splice_readme(&readme, &section)?;
        println!("(updated the results section of {})", readme.display());
    }
    Ok(())
}

/// The README markers between which `--readme` writes the results.
pub const MARKERS: [&str; 2] = [
    "<!-- lecture-results:start -->",
    "<!-- lecture-results:end -->",
];

/// Whether `file` is a plot of the experiment named `name`: `name.svg` or `name-*.svg`.
fn plot_of(file: &str, name: &str) -> bool {
    file == format!("{name}.svg")
        || (file.starts_with(&format!("{name}-")) && file.ends_with(".svg"))
}

/// One experiment's part of the README: command, claim, its table (Markdown as saved) and
/// its plots (not those of an experiment whose name extends its own, as `init-table-cnn`
/// extends `init-table`).
pub fn results_section(e: &Experiment, table: &str, out: &Path) -> Res<String> {
    let longer = |f: &str| {
        EXPERIMENTS
            .iter()
            .any(|o| o.name.len() > e.name.len() && plot_of(f, o.name))
    };
    let mut plots: Vec<String> = std::fs::read_dir(out)?
        .filter_map(|f| f.ok()?.file_name().into_string().ok())
        .filter(|f| plot_of(f, e.name) && !longer(f))
        .collect();
    plots.sort();
    let mut s = format!(
        "#### `{}` — {}\n\n{}\n",
        e.name,
        e.claim,
        table
            .replacen("### ", "**", 1)
            .replacen("\n\n", "**\n\n", 1)
    );
    for plot in plots {
        s += &format!("![{}]({}/{plot})\n", e.name, out.display());
    }
    Ok(s + "\n")
}

/// Replaces the text between [`MARKERS`] in `readme` with `section`.
pub fn splice_readme(readme: &Path, section: &str) -> Res<()> {
    let text = std::fs::read_to_string(readme)?;
    let (start, end) = match (text.find(MARKERS[0]), text.find(MARKERS[1])) {
        (Some(s), Some(e)) if s < e => (s + MARKERS[0].len(), e),
        _ => {
            return Err(format!(
                "{} needs the lines {} and {}",
                readme.display(),
                MARKERS[0],
                MARKERS[1]
            )
            .into());
        }
    };
    let updated = format!("{}\n\n{section}{}", &text[..start], &text[end..]);
    std::fs::write(readme, updated)?;
    Ok(())
}
