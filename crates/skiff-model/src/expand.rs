//! Kubernetes `$(VAR)` expansion, a port of kubernetes
//! `third_party/forked/golang/expansion/expand.go`.
//!
//! * `$(VAR)` is replaced by the value of `VAR` when the mapping knows it;
//!   otherwise it is left as `$(VAR)`.
//! * `$$` is an escaped `$`, so `$$(VAR)` yields the literal `$(VAR)`.
//! * A `$` followed by anything else (or a `$(` without a closing `)`) is kept.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::EnvVar;

enum Read<'a> {
    /// `$(name)`
    Var(&'a str),
    /// Text to copy verbatim (after the `$` was consumed).
    Text(&'a str, bool),
}

/// The most bytes of arguments plus environment one exec can carry: Linux caps them at 3/4
/// of 8 MiB whatever the stack limit (`fs/exec.c`), failing the exec with E2BIG past it.
/// Expansion output is bounded just above this: `$(VAR)` references double a value per
/// variable, so 40 variables of a 2 KB manifest would otherwise ask for terabytes (issue 7
/// item 4); a string cut here could never have been exec'd anyway.
pub const MAX_EXEC_BYTES: usize = 6 * 1024 * 1024;

/// Expand `input` with `mapping` returning `Some(value)` for known variables. The result is
/// cut just past [`MAX_EXEC_BYTES`] (too long to exec either way).
pub fn expand<'a, F>(input: &str, mapping: F) -> String
where
    F: Fn(&str) -> Option<&'a str>,
{
    expand_bounded(input, mapping, MAX_EXEC_BYTES + 1)
}

/// [`expand`], with the output cut once it reaches `limit` bytes (after a whole character,
/// so up to 3 bytes more).
fn expand_bounded<'a, F>(input: &str, mapping: F, limit: usize) -> String
where
    F: Fn(&str) -> Option<&'a str>,
{
    let mut out = Bounded {
        s: String::with_capacity(input.len().min(limit)),
        limit,
    };
    let bytes = input.as_bytes();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() && !out.full() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push(&input[checkpoint..cursor]);
            let (read, advance) = try_read_variable_name(&input[cursor + 1..]);
            match read {
                Read::Var(name) => match mapping(name) {
                    Some(v) => out.push(v),
                    None => {
                        out.push("$(");
                        out.push(name);
                        out.push(")");
                    }
                },
                Read::Text(t, with_dollar) => {
                    if with_dollar {
                        out.push("$");
                    }
                    out.push(t);
                }
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push(&input[checkpoint..]);
    }
    out.s
}

/// A string that stops growing at `limit` bytes.
struct Bounded {
    s: String,
    limit: usize,
}

impl Bounded {
    fn full(&self) -> bool {
        self.s.len() >= self.limit
    }

    fn push(&mut self, t: &str) {
        let room = self.limit.saturating_sub(self.s.len());
        if t.len() <= room {
            self.s.push_str(t);
        } else {
            // Rounded up to a whole character: the result must stay over the limit.
            let mut cut = room;
            while !t.is_char_boundary(cut) {
                cut += 1;
            }
            self.s.push_str(&t[..cut]);
            self.limit = self.s.len();
        }
    }
}

/// Expands a command line: each string as [`expand_with_maps`], all of them together cut just
/// past [`MAX_EXEC_BYTES`] (the strings past the cut are empty: the exec fails with E2BIG all
/// the same).
pub fn expand_all_with_maps<'s>(
    inputs: impl IntoIterator<Item = &'s String>,
    maps: &[&HashMap<String, String>],
) -> Vec<String> {
    let mut left = MAX_EXEC_BYTES + 1;
    inputs
        .into_iter()
        .map(|input| {
            let out = expand_bounded(
                input,
                |name| maps.iter().find_map(|m| m.get(name).map(String::as_str)),
                left,
            );
            left = left.saturating_sub(out.len());
            out
        })
        .collect()
}

/// Reads what follows a `$`; returns what was read and how many bytes it used.
fn try_read_variable_name(input: &str) -> (Read<'_>, usize) {
    let Some(first) = input.chars().next() else {
        return (Read::Text("", true), 0);
    };
    match first {
        // Escaped operator: `$$` → `$`.
        '$' => (Read::Text("$", false), 1),
        '(' => match input[1..].find(')') {
            Some(i) => (Read::Var(&input[1..1 + i]), i + 2),
            // Incomplete reference: keep `$(` and go on after the `(`.
            None => (Read::Text("(", true), 1),
        },
        _ => {
            let size = first.len_utf8();
            (Read::Text(&input[..size], true), size)
        }
    }
}

/// Expansion with the kubelet's `MappingFuncFor(maps...)` semantics: the first
/// map that has the name wins.
pub fn expand_with_maps(input: &str, maps: &[&HashMap<String, String>]) -> String {
    expand(input, |name| {
        maps.iter().find_map(|m| m.get(name).map(String::as_str))
    })
}

/// The kubelet's `ExpandContainerCommandOnlyStatic`, used for exec *probe* commands
/// (prober.go runProbe): `$(VAR)` is expanded from the container's `env` list as written —
/// each name maps to its literal `value` (not itself expanded; `""` for `valueFrom`
/// variables, the last entry of a name winning, as `EnvVarsToMap` builds it) — not from the
/// process environment. Lifecycle hook commands are not expanded at all
/// (lifecycle/handlers.go passes `handler.Exec.Command` as is).
pub fn expand_command_only_static(command: &[String], env: &[EnvVar]) -> Vec<String> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    expand_all_with_maps(command, &[&map])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue7_item4_doubling_references_stop_at_the_exec_limit() {
        // E0 = 1 KiB, E(n) = $(E(n-1))$(E(n-1)): E40 would be a terabyte.
        let mut map = HashMap::new();
        map.insert("E0".to_string(), "é".repeat(512));
        for i in 1..=40 {
            let v = expand_with_maps(&format!("$(E{})$(E{})", i - 1, i - 1), &[&map]);
            assert!(v.len() <= MAX_EXEC_BYTES + 4, "{}", v.len());
            map.insert(format!("E{i}"), v);
        }
        let top = &map["E40"];
        assert!(top.len() > MAX_EXEC_BYTES && top.len() <= MAX_EXEC_BYTES + 4);
        assert!(top.chars().all(|c| c == 'é'));
        // A command line is bounded as a whole.
        let argv: Vec<String> = vec!["$(E40)".to_string(); 1000];
        let out = expand_all_with_maps(&argv, &[&map]);
        assert_eq!(out.len(), 1000);
        let total: usize = out.iter().map(String::len).sum();
        assert!(
            total > MAX_EXEC_BYTES && total <= MAX_EXEC_BYTES + 4,
            "{total}"
        );
        // Ordinary strings are untouched.
        assert_eq!(
            expand_all_with_maps(&["a$(E0)b".to_string()], &[&map]),
            [format!("a{}b", "é".repeat(512))]
        );
    }

    #[test]
    fn probe_commands_expand_static_env_only() {
        let var = |name: &str, value: Option<&str>| EnvVar {
            name: name.into(),
            value: value.map(str::to_string),
            value_from: None,
        };
        let env = [
            var("A", Some("a")),
            var("REF", Some("$(A)")),
            var("FROM", None),
            var("A", Some("last")),
        ];
        let cmd: Vec<String> = ["$(A)", "$(REF)", "x$(FROM)y", "$$(A)", "$(NOPE)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_command_only_static(&cmd, &env),
            ["last", "$(A)", "xy", "$(A)", "$(NOPE)"]
        );
    }

    fn env() -> HashMap<String, String> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
            ("BLU", "blu"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn x(input: &str) -> String {
        let e = env();
        expand_with_maps(input, &[&e])
    }

    // Cases from kubernetes expand_test.go TestMapReference / TestMapping.
    #[test]
    fn expansion_cases() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("$(VAR_A)$(VAR_EMPTY)$(VAR_B)", "AB"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(", "$("),
            ("$", "$"),
            ("$$", "$"),
            ("$$$", "$$"),
            ("$$$$", "$$"),
            ("$$$$$$$$(VAR_A)", "$$$$(VAR_A)"),
            ("$$$$$$$$$(VAR_A)", "$$$$A"),
            ("$()", "$()"),
            ("$()$()", "$()$()"),
            ("$(BLU)$()", "blu$()"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_A)$", "A$"),
            ("--$(VAR_A)--$", "--A--$"),
            ("ünicode$(VAR_A)$ü", "ünicodeA$ü"),
            ("$ü$(VAR_B)", "$üB"),
            ("no refs", "no refs"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(x(input), want, "input {input:?}");
        }
    }

    #[test]
    fn first_map_wins() {
        let a: HashMap<String, String> = [("X".to_string(), "a".to_string())].into();
        let b: HashMap<String, String> = [
            ("X".to_string(), "b".to_string()),
            ("Y".to_string(), "y".to_string()),
        ]
        .into();
        assert_eq!(expand_with_maps("$(X)$(Y)$(Z)", &[&a, &b]), "ay$(Z)");
    }
}
