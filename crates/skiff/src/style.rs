//! One colour policy for everything skiff prints: container lines, events, notices, tracing
//! warnings and the run summary alike (issue 8 item 8).
//!
//! A stream gets ANSI colour when, in this order:
//! 1. `NO_COLOR` is set and not empty → never (<https://no-color.org>);
//! 2. `CLICOLOR_FORCE` is set, not empty and not `0` → always, pipes included
//!    (<https://bixense.com/clicolors/>);
//! 3. `CLICOLOR=0` → never;
//! 4. otherwise only if the stream is a terminal and `TERM` is set and not `dumb`.
//!
//! Decided once per stream at start-up. Written here rather than taken from `anstream`/
//! `anstyle-query` because the rule is four variables and those crates count
//! `CLICOLOR_FORCE=0` as forcing colour, which the CLICOLOR convention does not.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// The environment variables the decision reads.
#[derive(Debug, Default, Clone)]
pub struct ColorEnv {
    pub no_color: Option<OsString>,
    pub clicolor_force: Option<OsString>,
    pub clicolor: Option<OsString>,
    pub term: Option<OsString>,
}

impl ColorEnv {
    fn from_process() -> Self {
        ColorEnv {
            no_color: std::env::var_os("NO_COLOR"),
            clicolor_force: std::env::var_os("CLICOLOR_FORCE"),
            clicolor: std::env::var_os("CLICOLOR"),
            term: std::env::var_os("TERM"),
        }
    }
}

/// Whether a stream that `is_terminal` (or not) gets colour under `env` (rules in the module
/// docs).
pub fn decide(env: &ColorEnv, is_terminal: bool) -> bool {
    let set = |v: &Option<OsString>| v.as_ref().is_some_and(|v| !v.is_empty());
    if set(&env.no_color) {
        return false;
    }
    if set(&env.clicolor_force) && env.clicolor_force.as_deref() != Some("0".as_ref()) {
        return true;
    }
    if env.clicolor.as_deref() == Some("0".as_ref()) {
        return false;
    }
    is_terminal && set(&env.term) && env.term.as_deref() != Some("dumb".as_ref())
}

/// How text for one stream is styled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

/// ANSI SGR codes used by skiff.
pub mod sgr {
    pub const RED: &str = "31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    pub const BLUE: &str = "34";
    pub const MAGENTA: &str = "35";
    pub const CYAN: &str = "36";
    pub const BRIGHT_CYAN: &str = "96";
    pub const DIM: &str = "2";
}

/// Colours of container name tags, assigned in order of first appearance.
const PALETTE: [&str; 6] = [
    sgr::CYAN,
    sgr::YELLOW,
    sgr::MAGENTA,
    sgr::GREEN,
    sgr::BLUE,
    sgr::BRIGHT_CYAN,
];

impl Style {
    /// A style that colours (or not) regardless of the environment.
    pub const fn with_color(color: bool) -> Self {
        Style { color }
    }

    /// The style of stdout under this process's environment.
    pub fn stdout() -> Self {
        static S: OnceLock<bool> = OnceLock::new();
        Style {
            color: *S
                .get_or_init(|| decide(&ColorEnv::from_process(), std::io::stdout().is_terminal())),
        }
    }

    /// The style of stderr under this process's environment.
    pub fn stderr() -> Self {
        static S: OnceLock<bool> = OnceLock::new();
        Style {
            color: *S
                .get_or_init(|| decide(&ColorEnv::from_process(), std::io::stderr().is_terminal())),
        }
    }

    pub fn color(self) -> bool {
        self.color
    }

    /// `text` in SGR `code` when colouring, else `text` unchanged.
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// The palette colour for the `n`th container name seen.
    pub fn palette(n: usize) -> &'static str {
        PALETTE[n % PALETTE.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ColorEnv {
        let mut e = ColorEnv::default();
        for (k, v) in pairs {
            let v = Some(OsString::from(v));
            match *k {
                "NO_COLOR" => e.no_color = v,
                "CLICOLOR_FORCE" => e.clicolor_force = v,
                "CLICOLOR" => e.clicolor = v,
                "TERM" => e.term = v,
                _ => unreachable!(),
            }
        }
        e
    }

    #[test]
    fn terminal_with_a_real_term_is_coloured_pipes_are_not() {
        assert!(decide(&env(&[("TERM", "xterm")]), true));
        assert!(!decide(&env(&[("TERM", "xterm")]), false));
        assert!(!decide(&env(&[("TERM", "dumb")]), true));
        assert!(!decide(&env(&[]), true), "no TERM");
        assert!(!decide(&env(&[("TERM", "")]), true));
    }

    #[test]
    fn no_color_wins_over_everything() {
        assert!(!decide(&env(&[("TERM", "xterm"), ("NO_COLOR", "1")]), true));
        assert!(!decide(
            &env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]),
            false
        ));
        // Empty means unset (no-color.org).
        assert!(decide(&env(&[("TERM", "xterm"), ("NO_COLOR", "")]), true));
    }

    #[test]
    fn clicolor_force_colours_pipes_clicolor_0_disables() {
        assert!(decide(&env(&[("CLICOLOR_FORCE", "1")]), false));
        assert!(!decide(&env(&[("CLICOLOR_FORCE", "0")]), false));
        assert!(!decide(&env(&[("CLICOLOR_FORCE", "")]), false));
        assert!(!decide(&env(&[("TERM", "xterm"), ("CLICOLOR", "0")]), true));
        assert!(decide(&env(&[("TERM", "xterm"), ("CLICOLOR", "1")]), true));
        assert!(decide(
            &env(&[("CLICOLOR", "0"), ("CLICOLOR_FORCE", "1")]),
            false
        ));
    }

    #[test]
    fn paint_only_when_colouring() {
        assert_eq!(Style::with_color(false).paint(sgr::RED, "x"), "x");
        assert_eq!(
            Style::with_color(true).paint(sgr::RED, "x"),
            "\x1b[31mx\x1b[0m"
        );
    }
}
