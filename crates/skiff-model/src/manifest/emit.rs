//! YAML that every reader reads back as the same JSON: skiff's `-o yaml`.
//!
//! A string is written plain only when go-yaml v2 (kubectl, YAML 1.1) and YAML 1.2 readers
//! both read it back as that string: never `yes`, `on`, `0644`, `1_000`, `1:20`, `.5`,
//! `2001-12-14`, `<<`, … (those are quoted), never with an indicator, `: ` or ` #` in it.
//! Multi-line strings are literal blocks when that is exact, otherwise double-quoted with
//! YAML escapes. Block style, two spaces, sequences at their key's indentation (as kubectl
//! prints). Written here because the maintained YAML serialisers quote by YAML 1.2's rules
//! only, and `skiff validate -o yaml | kubectl apply -f -` must round-trip.

use serde_json::Value;

use super::resolve::{self, Scalar};

/// `value` as a YAML document (ends with a newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (k, v) in m {
        pad(out, indent);
        let key = quote_key(k);
        if key.len() > 1000 {
            // Implicit keys are limited to 1024 characters: an explicit one.
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            pad(out, indent);
            out.push(':');
        } else {
            out.push_str(&key);
            out.push(':');
        }
        write_value_after_indicator(out, v, indent, true);
    }
}

fn write_seq(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        pad(out, indent);
        out.push('-');
        write_value_after_indicator(out, v, indent, false);
    }
}

/// Writes `v` after `key:` or `-` at `indent`.
fn write_value_after_indicator(out: &mut String, v: &Value, indent: usize, in_map: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if in_map {
                out.push('\n');
                write_map(out, m, indent + 2);
            } else {
                // `- key: value` with the rest of the mapping under the first key.
                let mut inner = String::new();
                write_map(&mut inner, m, indent + 2);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if in_map {
                out.push('\n');
                write_seq(out, a, indent);
            } else {
                let mut inner = String::new();
                write_seq(&mut inner, a, indent + 2);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

/// A scalar (or empty collection); multi-line strings as literal blocks indented at
/// `block_indent`.
fn scalar(v: &Value, block_indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, block_indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn string(s: &str, block_indent: usize) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    if let Some(block) = literal(s, block_indent) {
        return block;
    }
    double_quoted(s)
}

fn quote_key(k: &str) -> String {
    if plain_ok(k) {
        k.to_string()
    } else {
        double_quoted(k)
    }
}

/// Characters that may appear unescaped: YAML's printable set minus the ones YAML 1.1
/// treats as line breaks (NEL, LS, PS) and the byte-order mark.
fn printable(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => false,
        ' '..='~' => true,
        '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}' => true,
        _ => false,
    }
}

/// Whether `s` reads back as itself when written plain, in block context, by go-yaml v2 and
/// by YAML 1.2 parsers.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if resolve::plain(s) != Scalar::Str || looks_like_base60(s) || looks_like_timestamp(s) {
        return false;
    }
    if s == "<<" || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| !printable(c) || c == '\t' || c == '\n') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") {
        return false;
    }
    let second = s.chars().nth(1);
    match first {
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => false,
        '-' | '?' | ':' => second.is_some_and(|c| c != ' '),
        _ => true,
    }
}

/// YAML 1.1's sexagesimal numbers (`1:20`, `-190:20:30.15`): go-yaml v2 reads them as
/// strings but quotes them on output for other YAML 1.1 readers; so does skiff.
fn looks_like_base60(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let mut parts = int.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    let mut n = 0;
    for p in parts {
        n += 1;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    n > 0
        && head.starts_with(|c: char| c.is_ascii_digit())
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

/// `2001-12-14…`: go-yaml v2 resolves these as timestamps and quotes them on output.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A literal block (`|`, `|-`, `|+`) when it is exact: printable text whose first non-empty
/// line does not start with a space and with no trailing blanks on any line.
fn literal(s: &str, indent: usize) -> Option<String> {
    if !s.contains('\n') || s.chars().any(|c| !printable(c)) {
        return None;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    if body.is_empty() {
        return None;
    }
    let first_content = body.lines().find(|l| !l.is_empty())?;
    if first_content.starts_with([' ', '\t']) {
        return None;
    }
    if body.lines().any(|l| l.ends_with([' ', '\t'])) {
        return None;
    }
    let chomp = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let mut out = String::from(chomp);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent);
            out.push_str(line);
        }
    }
    // `|+` keeps the extra line breaks as empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}

/// A double-quoted scalar with YAML escapes for everything not printable.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What skiff's loader reads back from `text` (the same YAML 1.1 reading kubectl does).
    fn read_back(text: &str) -> Value {
        let scan = crate::manifest::bounds::scan(text).unwrap_or(crate::manifest::bounds::Scan {
            nodes: 0,
            aliases: 0,
        });
        let mut budget = crate::manifest::yaml::Budget::for_text(text, &scan);
        let mut out = Vec::new();
        let r = crate::manifest::yaml::documents(text, &mut budget, |d| match d {
            Ok(d) => out.push(crate::manifest::yaml::to_json(&d.root).unwrap_or(Value::Null)),
            Err(e) => panic!("{e:?} in:\n{text}"),
        });
        assert!(r.is_ok(), "{r:?}");
        out.pop().unwrap_or(Value::Null)
    }

    #[test]
    fn yaml_1_1_lookalikes_are_quoted() {
        for s in [
            "yes",
            "Yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "Y",
            "N",
            "true",
            "null",
            "~",
            "",
            "0644",
            "012",
            "1_000",
            "0x1F",
            "0o17",
            "0b11",
            "1e3",
            ".5",
            "+1",
            "-1",
            "1.0",
            "1:20",
            "-190:20:30.15",
            "2001-12-14",
            "<<",
            ".inf",
            "-.inf",
            ".nan",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "end:",
            "- x",
            "-",
            "?",
            ": x",
            "[x",
            "{x",
            "#x",
            "&x",
            "*x",
            "!x",
            "|x",
            ">x",
            "'x",
            "\"x",
            "%x",
            "@x",
            "`x",
            "---",
            "...",
            "tab\there",
            "\u{2028}",
            "nel\u{85}",
            "bom\u{feff}",
            "ctl\u{1}",
            "1.10",
        ] {
            let out = to_yaml(&json!({ "k": s, s: "v" }));
            assert!(
                !out.contains(&format!("k: {s}\n")) || s.is_empty(),
                "{s:?} written plain:\n{out}"
            );
            assert_eq!(read_back(&out), json!({ "k": s, s: "v" }), "{s:?}:\n{out}");
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "web",
            "busybox:1.36",
            "-c",
            "/bin/sh",
            "echo hi",
            "a:b",
            "a#b",
            "app.kubernetes.io/name",
            "http://x:8080/",
            "100m",
            "128Mi",
            "v1",
            "1.10.0",
            "é",
            "10.0.0.1",
        ] {
            let out = to_yaml(&json!({ "k": s }));
            assert_eq!(out, format!("k: {s}\n"), "{s:?}");
            assert_eq!(read_back(&out), json!({ "k": s }));
        }
    }

    #[test]
    fn multi_line_strings_round_trip() {
        for s in [
            "a\nb",
            "a\nb\n",
            "a\nb\n\n",
            "a\n\n  indented\nb",
            "\nleading empty",
            "  leading space\nx",
            "trailing \nx",
            "cr\r\nlf",
            "set -e\necho \"$X\" # comment\nexit 0\n",
        ] {
            let v = json!({ "spec": { "args": [s, {"k": s}] , "k": s} });
            let out = to_yaml(&v);
            assert_eq!(read_back(&out), v, "{s:?}:\n{out}");
        }
        assert_eq!(to_yaml(&json!({ "k": "a\nb\n" })), "k: |\n  a\n  b\n");
    }

    #[test]
    fn structure_is_block_style_like_kubectl() {
        let v = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"yes": "no"}},
            "spec": {
                "containers": [{"name": "c", "command": ["sh", "-c"], "ports": [], "env": [{"name": "A", "value": "0644"}]}],
                "nested": [[1, 2], []],
                "empty": {},
                "n": null, "b": true, "f": 1.5, "i": -3
            }
        });
        let out = to_yaml(&v);
        assert_eq!(
            out,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    \"yes\": \"no\"\n  name: p\nspec:\n  b: true\n  containers:\n  - command:\n    - sh\n    - -c\n    env:\n    - name: A\n      value: \"0644\"\n    name: c\n    ports: []\n  empty: {}\n  f: 1.5\n  i: -3\n  \"n\": null\n  nested:\n  - - 1\n    - 2\n  - []\n"
        );
        assert_eq!(read_back(&out), v);
    }

    #[test]
    fn long_keys_are_explicit() {
        let k = "k".repeat(2000);
        let v = json!({ k.clone(): "v" });
        let out = to_yaml(&v);
        assert!(out.starts_with("? "), "{out}");
        assert_eq!(read_back(&out), v);
    }
}
