//! The examples' command lines: `--flag value` pairs read one by one, a value that does not
//! parse named with its flag, `--help` printing the example's header, and errors printed as
//! text (not in `Debug` form) with exit status 1.

use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

/// The arguments after the program's name, read flag by flag.
pub struct CommandLine {
    args: std::iter::Skip<std::env::Args>,
    /// The example's source, whose `//!` header `--help` prints.
    source: &'static str,
}

impl CommandLine {
    /// This process's arguments; `source` is the example's own file (`include_str!`), whose
    /// `//!` header is its usage.
    pub fn new(source: &'static str) -> CommandLine {
        CommandLine {
            args: std::env::args().skip(1),
            source,
        }
    }

    /// The next flag; `--help` or `-h` print the usage and end the process.
    pub fn next_flag(&mut self) -> Option<String> {
        let flag = self.args.next()?;
        if flag == "--help" || flag == "-h" {
            let lines = self.source.lines().map_while(|l| l.strip_prefix("//!"));
            let lines = lines.map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line)));
            print_quietly(&lines.collect::<String>());
            std::process::exit(0);
        }
        Some(flag)
    }

    /// The value after `flag`, parsed; an error names the flag and the value.
    pub fn value<T: FromStr>(&mut self, flag: &str) -> Result<T, String>
    where
        T::Err: Display,
    {
        let value = (self.args.next()).ok_or_else(|| format!("{flag} needs a value"))?;
        value.parse().map_err(|e| format!("{flag} {value}: {e}"))
    }

    /// The comma-separated values after `flag`, parsed.
    #[allow(dead_code)] // not every example has a list flag
    pub fn list<T: FromStr>(&mut self, flag: &str) -> Result<Vec<T>, String>
    where
        T::Err: Display,
    {
        let value: String = self.value(flag)?;
        (value.split(','))
            .map(|v| v.parse().map_err(|e| format!("{flag} {value}: {v}: {e}")))
            .collect()
    }
}

/// Prints `text` on stdout, stopping quietly when the reader has gone (`--help | head -1`
/// closes the pipe early; `print!` would panic).
pub fn print_quietly(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The error for a flag the example does not know.
pub fn unknown(flag: &str) -> String {
    format!("unknown flag {flag}; --help lists the flags")
}

/// Runs an example's body and prints its error, if any, as text on stderr with exit status 1.
pub fn run<E: Display>(body: impl FnOnce() -> Result<(), E>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
