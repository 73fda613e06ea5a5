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

/// Expand `input` with `mapping` returning `Some(value)` for known variables.
pub fn expand<'a, F>(input: &str, mapping: F) -> String
where
    F: Fn(&str) -> Option<&'a str>,
{
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let (read, advance) = try_read_variable_name(&input[cursor + 1..]);
            match read {
                Read::Var(name) => match mapping(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                },
                Read::Text(t, with_dollar) => {
                    if with_dollar {
                        out.push('$');
                    }
                    out.push_str(t);
                }
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
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
    command
        .iter()
        .map(|c| expand_with_maps(c, &[&map]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
