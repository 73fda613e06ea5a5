//! What an untagged plain YAML scalar means, exactly as kubectl reads it: sigs.k8s.io/yaml
//! decodes YAML with go-yaml v2 (YAML 1.1), whose `resolve` (sigs.k8s.io/yaml
//! `goyaml.v2/resolve.go`) turns a plain scalar into a bool, null, int, float or string by its
//! first character and then by Go's `strconv` parsers. Written here rather than taken from a
//! YAML crate because no Rust crate implements go-yaml v2's rules (the YAML 1.1 set of
//! booleans, Go's base-0 integers after removing every `_`, its float forms): a crate with
//! "YAML 1.1 options" still differs in the corners, and here the corners decide whether a
//! manifest is one a cluster accepts.
//!
//! Checked against kubectl 1.32 (`kubectl annotate --local -f FILE -o json`), which decodes
//! with this resolver; the unit tests name each rule.

/// A resolved scalar.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// Above `i64::MAX` (go-yaml's `uint64`).
    Uint(u64),
    Float(f64),
    Str,
}

/// go-yaml v2's `resolveMap`: the scalars looked up whole.
fn lookup(s: &str) -> Option<Scalar> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Scalar::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Scalar::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// The meaning of an untagged plain scalar (`resolve("", in)`).
pub fn plain(s: &str) -> Scalar {
    // The hint: what the first character allows (`resolveTable`); "" is looked up too.
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return Scalar::Str,
    };
    if let Some(v) = lookup(s) {
        return v;
    }
    match hint {
        b'.' => go_parse_float(s).map_or(Scalar::Str, Scalar::Float),
        b'D' | b'S' => {
            // Timestamps (`2001-12-14`) come first upstream, but resolve to strings when
            // decoded into an interface (kubectl's case) and never parse as numbers: skipped.
            let digits: String = s.chars().filter(|&c| c != '_').collect();
            if let Ok(i) = go_parse_int(&digits) {
                return Scalar::Int(i);
            }
            if let Ok(u) = go_parse_uint(&digits) {
                return Scalar::Uint(u);
            }
            if yaml_style_float(&digits) {
                // Go's ParseFloat fails with ErrRange on overflow (the scalar stays a string);
                // Rust's gives infinity.
                if let Ok(f) = digits.parse::<f64>() {
                    if f.is_finite() {
                        return Scalar::Float(f);
                    }
                }
            }
            // The `0b`/`-0b` branches after this upstream are unreachable since Go 1.13's
            // ParseInt reads binary itself; the big-integer branch is newer than kubectl 1.32
            // (`0x10000000000000000` stays a string there).
            Scalar::Str
        }
        _ => Scalar::Str,
    }
}

/// The error kinds of Go's `strconv.ParseInt`/`ParseUint`.
#[derive(Debug, PartialEq, Eq)]
pub enum IntError {
    Syntax,
    Range,
}

/// Digits of `s` in Go's base-0 form (no sign): `0x`/`0o`/`0b` prefixes (either case), a
/// leading `0` for octal, else decimal. No underscores (the caller removed them).
fn go_parse_digits(s: &str) -> Result<u64, IntError> {
    let b = s.as_bytes();
    let (radix, digits) = match b {
        [] => return Err(IntError::Syntax),
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', b'o' | b'O', rest @ ..] => (8, rest),
        [b'0', b'b' | b'B', rest @ ..] => (2, rest),
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, b),
    };
    if digits.is_empty() {
        return Err(IntError::Syntax);
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        let d = match (c as char).to_digit(radix) {
            Some(d) => u64::from(d),
            None => return Err(IntError::Syntax),
        };
        match v
            .checked_mul(u64::from(radix))
            .and_then(|x| x.checked_add(d))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    if overflow {
        Err(IntError::Range)
    } else {
        Ok(v)
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` on text without underscores.
pub fn go_parse_uint(s: &str) -> Result<u64, IntError> {
    go_parse_digits(s)
}

/// Go's `strconv.ParseInt(s, 0, 64)` on text without underscores.
pub fn go_parse_int(s: &str) -> Result<i64, IntError> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_digits(rest)?;
    const LIMIT: u64 = 1 << 63;
    if neg {
        if u > LIMIT {
            return Err(IntError::Range);
        }
        // -(2^63) is i64::MIN; wrapping_neg of its u64 form gives it.
        Ok((u as i64).wrapping_neg())
    } else if u >= LIMIT {
        Err(IntError::Range)
    } else {
        Ok(u as i64)
    }
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for the scalars that reach it unchanged: those starting
/// with `.` (`.5`, `.5e3`, `.5_0`). Underscores must stand between digits (Go's
/// `underscoreOK`); out of range is an error (the scalar stays a string).
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // `.digits[eE[+-]digits]`, underscores allowed among the digits.
    let mut i = 0;
    if b.first() != Some(&b'.') {
        return None;
    }
    i += 1;
    let mut mantissa = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_digit() {
            mantissa += 1;
        } else if c != b'_' {
            break;
        }
        i += 1;
    }
    if mantissa == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut exp = 0;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_digit() {
                exp += 1;
            } else if c != b'_' {
                break;
            }
            i += 1;
        }
        if exp == 0 {
            return None;
        }
    }
    if i != b.len() || !underscore_ok(s) {
        return None;
    }
    let f: f64 = s.replace('_', "").parse().ok()?;
    f.is_finite().then_some(f)
}

/// Go's `underscoreOK` for decimal text: every `_` between two digits.
fn underscore_ok(s: &str) -> bool {
    // 'd' digit, '_' underscore, '!' anything else, '^' start.
    let mut saw = '^';
    for c in s.chars() {
        if c.is_ascii_digit() {
            saw = 'd';
        } else if c == '_' {
            if saw != 'd' {
                return false;
            }
            saw = '_';
        } else {
            if saw == '_' {
                return false;
            }
            saw = '!';
        }
    }
    saw != '_'
}

/// The long form of the core schema's tags (`!!int` is `tag:yaml.org,2002:int`).
pub const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// A tagged scalar (`!!int "3"`, `!!str 3`, `!foo x`): go-yaml v2's `resolve(tag, in)` as
/// the decoder applies it. Unknown and local tags leave the text a string; `!!binary` is
/// decoded from base64 (as go-yaml does); a core tag that does not fit is an error with
/// go-yaml's text.
pub fn tagged(tag: &str, s: &str) -> Result<(Scalar, Option<String>), String> {
    let Some(short) = tag.strip_prefix(CORE_TAG_PREFIX) else {
        return Ok((Scalar::Str, None));
    };
    match short {
        "str" => Ok((Scalar::Str, None)),
        "binary" => {
            use base64::Engine;
            // Go's StdEncoding.DecodeString skips line breaks, nothing else.
            let text: String = s.chars().filter(|&c| c != '\n' && c != '\r').collect();
            match base64::engine::general_purpose::STANDARD.decode(text) {
                // JSON strings are UTF-8: Go's encoder replaces bad bytes with U+FFFD.
                Ok(bytes) => Ok((
                    Scalar::Str,
                    Some(String::from_utf8_lossy(&bytes).into_owned()),
                )),
                Err(_) => Err("!!binary value contains invalid base64 data".into()),
            }
        }
        "bool" | "int" | "float" | "null" | "timestamp" => {
            let resolved = if short == "timestamp" && looks_like_timestamp(s) {
                return Ok((Scalar::Str, None));
            } else {
                plain(s)
            };
            let rtag = match resolved {
                Scalar::Null => "null",
                Scalar::Bool(_) => "bool",
                Scalar::Int(_) | Scalar::Uint(_) => "int",
                Scalar::Float(_) => "float",
                Scalar::Str => "str",
            };
            match (short, &resolved) {
                (a, _) if a == rtag => Ok((resolved, None)),
                ("float", Scalar::Int(i)) => Ok((Scalar::Float(*i as f64), None)),
                ("float", Scalar::Uint(u)) => Ok((Scalar::Float(*u as f64), None)),
                _ => Err(format!("cannot decode !!{rtag} `{s}` as a !!{short}")),
            }
        }
        // !!map, !!seq, !!set, … on a scalar: go-yaml keeps the text.
        _ => Ok((Scalar::Str, None)),
    }
}

/// Timestamps go-yaml v2 accepts start with four digits and a dash (`parseTimestamp`'s quick
/// check); the date must then parse. Only `!!timestamp` needs this.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each rule of sigs.k8s.io/yaml goyaml.v2/resolve.go (`resolveMapList`, `resolveTable`,
    // the 'D'/'S' and '.' branches); expected values checked with kubectl 1.32.

    #[test]
    fn resolve_go_map_booleans_are_yaml_1_1() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(plain(t), Scalar::Bool(true), "{t}");
        }
        for f in [
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(plain(f), Scalar::Bool(false), "{f}");
        }
        for s in ["yEs", "tRUE", "oN", "nO", "Nope", "t", "f", "ok"] {
            assert_eq!(plain(s), Scalar::Str, "{s}");
        }
    }

    #[test]
    fn resolve_go_map_nulls_and_special_floats() {
        for n in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(plain(n), Scalar::Null, "{n:?}");
        }
        assert_eq!(plain("nULL"), Scalar::Str);
        for i in [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"] {
            assert_eq!(plain(i), Scalar::Float(f64::INFINITY), "{i}");
        }
        assert_eq!(plain("-.INF"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(plain(".NaN"), Scalar::Float(f) if f.is_nan()));
        assert_eq!(plain(".iNf"), Scalar::Str);
        assert_eq!(plain("inf"), Scalar::Str);
        assert_eq!(plain("NaN"), Scalar::Str);
    }

    #[test]
    fn resolve_go_parse_int_base_0_after_removing_underscores() {
        let cases: &[(&str, i64)] = &[
            ("0644", 420), // legacy octal: defaultMode: 0644
            ("012", 10),
            ("00", 0),
            ("0", 0),
            ("-0", 0),
            ("0o17", 15),
            ("0O17", 15),
            ("0b11", 3),
            ("0B11", 3),
            ("-0b1", -1),
            ("+0b1", 1),
            ("0x1f", 31),
            ("0X1F", 31),
            ("+0x1F", 31),
            ("0x_1F", 31),
            ("1_000", 1000),
            ("1__2", 12),
            ("+12", 12),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("-0x8000000000000000", i64::MIN),
        ];
        for (s, v) in cases {
            assert_eq!(plain(s), Scalar::Int(*v), "{s}");
        }
        assert_eq!(
            plain("18446744073709551615"),
            Scalar::Uint(18_446_744_073_709_551_615)
        );
        assert_eq!(plain("0xFFFFFFFFFFFFFFFF"), Scalar::Uint(u64::MAX));
    }

    #[test]
    fn resolve_go_out_of_range_and_malformed_numbers() {
        // Out of int64/uint64 range: a float when it has the float form, else a string.
        assert_eq!(
            plain("18446744073709551616"),
            Scalar::Float(18446744073709551616.0)
        );
        assert_eq!(
            plain("-9223372036854775809"),
            Scalar::Float(-9223372036854775809.0)
        );
        assert_eq!(plain("0x10000000000000000"), Scalar::Str);
        // No sexagesimal (base 60) in go-yaml: "Base 60 floats are a bad idea".
        assert_eq!(plain("1:20"), Scalar::Str);
        assert_eq!(plain("190:20:30"), Scalar::Str);
        // Not octal, but the float form: 09 is 9.
        assert_eq!(plain("09"), Scalar::Float(9.0));
        assert_eq!(plain("08.5"), Scalar::Float(8.5));
        for s in [
            "0x",
            "0o",
            "0b",
            "1e400",
            "-1e400",
            "0x1.8p1",
            "2001-12-14",
            "1.2.3",
            "12a",
        ] {
            assert_eq!(plain(s), Scalar::Str, "{s}");
        }
        // Starts with '_' (no hint): a string even though it would parse.
        assert_eq!(plain("_1"), Scalar::Str);
    }

    #[test]
    fn resolve_go_yaml_style_floats() {
        let cases: &[(&str, f64)] = &[
            ("1.0", 1.0),
            ("1.", 1.0),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("1.5e+3", 1500.0),
            ("1e21", 1e21),
            ("0.000001", 0.000001),
            ("1e-7", 1e-7),
            ("+.5", 0.5),
            ("-.5", -0.5),
            ("1_0.5", 10.5),
            ("0.1e-400", 0.0),
        ];
        for (s, v) in cases {
            assert_eq!(plain(s), Scalar::Float(*v), "{s}");
        }
    }

    #[test]
    fn resolve_go_dot_branch_uses_parse_float() {
        assert_eq!(plain(".5"), Scalar::Float(0.5));
        assert_eq!(plain(".5_0"), Scalar::Float(0.5));
        assert_eq!(plain(".5e1_0"), Scalar::Float(5e9));
        for s in ["._5", ".5_", ".e5", ".", ".5e", "..5", ".5.5"] {
            assert_eq!(plain(s), Scalar::Str, "{s}");
        }
    }

    #[test]
    fn resolve_go_everything_else_is_a_string() {
        for s in [
            "web",
            "<<",
            "=",
            "Yes please",
            "1.10.0",
            "v1",
            "-",
            "+",
            "- x",
        ] {
            assert_eq!(plain(s), Scalar::Str, "{s}");
        }
    }

    #[test]
    fn resolve_go_tags() {
        let t = |tag: &str, s: &str| tagged(&format!("{CORE_TAG_PREFIX}{tag}"), s);
        assert_eq!(t("str", "3"), Ok((Scalar::Str, None)));
        assert_eq!(t("int", "12"), Ok((Scalar::Int(12), None)));
        assert_eq!(t("float", "3"), Ok((Scalar::Float(3.0), None)));
        assert_eq!(t("bool", "yes"), Ok((Scalar::Bool(true), None)));
        assert_eq!(
            t("binary", "aGVs\nbG8="),
            Ok((Scalar::Str, Some("hello".into())))
        );
        assert_eq!(
            t("int", "abc"),
            Err("cannot decode !!str `abc` as a !!int".into())
        );
        assert_eq!(
            t("bool", "3"),
            Err("cannot decode !!int `3` as a !!bool".into())
        );
        assert!(t("binary", "!!").is_err());
        assert_eq!(t("timestamp", "2001-12-14"), Ok((Scalar::Str, None)));
        assert_eq!(tagged("!foo", "3"), Ok((Scalar::Str, None)));
    }
}
