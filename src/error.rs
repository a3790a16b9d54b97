//! The crate's one error type, for everything that comes from outside the program.
//!
//! Shapes, lengths and hyperparameters given by a caller, files and checkpoints return
//! [`Error`]; misuse of the graph inside a program (adding a `[4, 3]` to a `[2, 5]`) panics at
//! once instead, with the op's name and both shapes (see `ARCHITECTURE.md`).

use std::fmt;
use std::path::PathBuf;

/// The result type of every fallible function in this crate.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Tensor};
/// fn column(values: Vec<f32>) -> tapegrad::Result<Tensor> {
///     let n = values.len();
///     tensor::from_vec(values, &[n, 1])
/// }
/// assert_eq!(column(vec![1.0, 2.0])?.shape(), &[2, 1]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong with input from outside the program.
///
/// Each variant carries the context a user needs to fix the input: what was expected and
/// what was found.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Error};
/// let err = tensor::from_vec(vec![1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
/// assert!(matches!(err, Error::Shape { op: "tensor::from_vec", .. }));
/// assert!(err.to_string().starts_with("tensor::from_vec: "));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A length or shape given from outside does not fit.
    Shape {
        /// The function that checked, e.g. `"tensor::from_vec"`.
        op: &'static str,
        /// What the function needed.
        expected: String,
        /// What it got.
        found: String,
    },
    /// A hyperparameter or argument outside its allowed range.
    InvalidArgument {
        /// The function that checked, e.g. `"tensor::uniform"`.
        op: &'static str,
        /// The problem, naming the allowed range and the value given.
        message: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file's bytes are not what its format requires: a wrong magic number, a truncated
    /// payload, dimensions that disagree with another file.
    Decode {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A checkpoint was written by a newer (or unknown) version of the format.
    FormatVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        expected: u32,
    },
    /// A checkpoint's parameters do not fit the model: a name in one but not the other, or
    /// different shapes. Shapes are `None` on the side that lacks the parameter.
    ParamMismatch {
        /// The file (or `<memory>` for bytes).
        path: PathBuf,
        /// The parameter's dotted name, e.g. `"0.weight"`.
        name: String,
        /// Its shape in the file.
        file: Option<Vec<usize>>,
        /// Its shape in the model.
        model: Option<Vec<usize>>,
    },
    /// A data set is not where it was looked for; the message says how to install it.
    DatasetMissing {
        /// The folder or file looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// A training step was refused because its loss, its gradients or its update are NaN or
    /// infinite; the step changed nothing (parameters and optimizer state are those of the
    /// last accepted step).
    Diverged {
        /// The optimizer or loop that refused it.
        op: &'static str,
        /// The step (counted from 0) that was refused.
        step: u64,
        /// What was not finite.
        what: String,
    },
    /// An analytic gradient disagrees with its central finite-difference estimate
    /// (returned by [`gradcheck()`](crate::gradcheck())).
    GradientMismatch {
        /// The op that produced the checked output.
        op: &'static str,
        /// Index of the input in the slice passed to the checker.
        input: usize,
        /// Index of the element within that input, in logical (row-major) order.
        element: usize,
        /// The gradient the tape computed.
        analytic: f32,
        /// The central-difference estimate.
        numeric: f32,
    },
    /// An iterative procedure stopped at its iteration limit without reaching its target
    /// (e.g. [`lsuv`](crate::lsuv) on a layer whose variance stays off 1).
    NoConvergence {
        /// What did not converge, with its last value and the target.
        what: String,
        /// The iterations spent.
        iters: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape {
                op,
                expected,
                found,
            } => write!(f, "{op}: expected {expected}, found {found}"),
            Error::InvalidArgument { op, message } => write!(f, "{op}: {message}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Decode { path, message } => write!(f, "{}: {message}", path.display()),
            Error::FormatVersion {
                path,
                found,
                expected,
            } => write!(
                f,
                "checkpoint load: format version {found} is newer than this build reads, expected at most {expected} (path: {})",
                path.display()
            ),
            Error::ParamMismatch {
                path,
                name,
                file,
                model,
            } => {
                let path = path.display();
                match (file, model) {
                    (Some(file), Some(model)) => write!(
                        f,
                        "checkpoint load: parameter \"{name}\" has shape {file:?} in file, {model:?} in model (path: {path})"
                    ),
                    (Some(file), None) => write!(
                        f,
                        "checkpoint load: parameter \"{name}\" (shape {file:?}) is in the file but not in the model (path: {path})"
                    ),
                    (None, Some(model)) => write!(
                        f,
                        "checkpoint load: parameter \"{name}\" (shape {model:?}) is in the model but missing from the file (path: {path})"
                    ),
                    (None, None) => write!(
                        f,
                        "checkpoint load: parameter \"{name}\" is in neither file nor model (path: {path})"
                    ),
                }
            }
            Error::DatasetMissing { path, hint } => {
                write!(f, "data set not found at {}; {hint}", path.display())
            }
            Error::Diverged { op, step, what } => write!(
                f,
                "{op}: step {step} refused: {what}; the step changed nothing (the parameters \
                 and the optimizer state are those of the last accepted step)"
            ),
            Error::GradientMismatch {
                op,
                input,
                element,
                analytic,
                numeric,
            } => write!(
                f,
                "gradcheck: {op}: input {input}, element {element}: analytic gradient {analytic}, numeric {numeric}"
            ),
            Error::NoConvergence { what, iters } => {
                write!(f, "{what}; no convergence after {iters} iterations")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error with `path` named at its end, for a check of what a file holds that does
    /// not know the file: `(path: run.ckpt)` after an [`Error::InvalidArgument`]'s message or
    /// an [`Error::Shape`]'s found part; other errors name their file already.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        let named = |text: String| format!("{text} (path: {})", path.display());
        match self {
            Error::InvalidArgument { op, message } => Error::InvalidArgument {
                op,
                message: named(message),
            },
            Error::Shape {
                op,
                expected,
                found,
            } => Error::Shape {
                op,
                expected,
                found: named(found),
            },
            other => other,
        }
    }

    /// An [`Error::Decode`] for `path`.
    pub(crate) fn decode(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Decode {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_op_and_both_values() {
        let e = Error::Shape {
            op: "tensor::from_vec",
            expected: "6 elements for shape [2, 3]".into(),
            found: "5".into(),
        };
        assert_eq!(
            e.to_string(),
            "tensor::from_vec: expected 6 elements for shape [2, 3], found 5"
        );
        let e = Error::GradientMismatch {
            op: "relu",
            input: 1,
            element: 4,
            analytic: 0.5,
            numeric: 0.25,
        };
        assert_eq!(
            e.to_string(),
            "gradcheck: relu: input 1, element 4: analytic gradient 0.5, numeric 0.25"
        );
        let e = Error::NoConvergence {
            what: "lsuv: layer 2 (Maxout(..)) output variance 1.5, target 1 ± 0.1".into(),
            iters: 10,
        };
        assert_eq!(
            e.to_string(),
            "lsuv: layer 2 (Maxout(..)) output variance 1.5, target 1 ± 0.1; no convergence after 10 iterations"
        );
        let e = Error::ParamMismatch {
            path: "run.bin".into(),
            name: "0.weight".into(),
            file: Some(vec![2, 8]),
            model: Some(vec![2, 4]),
        };
        assert_eq!(
            e.to_string(),
            "checkpoint load: parameter \"0.weight\" has shape [2, 8] in file, [2, 4] in model (path: run.bin)"
        );
        let e = Error::FormatVersion {
            path: "run.bin".into(),
            found: 7,
            expected: 1,
        };
        assert_eq!(
            e.to_string(),
            "checkpoint load: format version 7 is newer than this build reads, expected at most 1 (path: run.bin)"
        );
    }
}
