//! The crate's one error type, for everything that comes from outside the program.
//!
//! Shapes, lengths and hyperparameters given by a caller, files and checkpoints return
//! [`Error`]; misuse of the graph inside a program (adding a `[4, 3]` to a `[2, 5]`) panics at
//! once instead, with the op's name and both shapes (see `ARCHITECTURE.md`).

use std::fmt;

/// The result type of every fallible function in this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong with input from outside the program.
///
/// Each variant carries the context a user needs to fix the input: what was expected and
/// what was found.
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
    /// An analytic gradient disagrees with its central finite-difference estimate
    /// (returned by [`gradcheck`](crate::gradcheck)).
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

impl std::error::Error for Error {}

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
    }
}
