//! Printing: objects as YAML or JSON, and the print macros every command uses.
//!
//! # Output never kills skiff (issue 7 item 6)
//! `skiff run … 2>&1 | head` closes skiff's stdout and stderr while the pod still runs. The
//! standard `print!`/`println!`/`eprint!`/`eprintln!` panic on such a write error (EPIPE,
//! and Rust ignores SIGPIPE), which would end skiff before it tore the pod down. The macros
//! below shadow them for the whole crate (declared before the other modules in `main.rs`):
//! same syntax, but a failed write is ignored, so the pod runs to its normal end and skiff
//! exits with the code it would have had. The tracing subscriber gets the same treatment
//! ([`StderrWriter`]).

use std::io::Write;

use serde::Serialize;

/// `print!` that ignores write errors (see the module docs).
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// `println!` that ignores write errors (see the module docs).
macro_rules! println {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that ignores write errors (see the module docs).
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` that ignores write errors (see the module docs).
macro_rules! eprintln {
    () => {
        $crate::output::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout; a closed or full-disk stdout is not skiff's failure.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes to stderr, ignoring errors.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// The tracing subscriber's writer: stderr, whose errors are swallowed (tracing-subscriber
/// would otherwise report them with `eprintln!`, which panics on a closed pipe).
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Serialises `value` in the requested format, ending with a newline.
pub fn render<T: Serialize>(value: &T, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(value)?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_yaml_ng::to_string(value)?,
    })
}
