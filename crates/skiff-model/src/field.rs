//! Field paths and field errors rendered exactly like apimachinery's `field.Error`
//! (staging/src/k8s.io/apimachinery/pkg/util/validation/field/errors.go), SEMANTICS V0.

use std::fmt;

/// A path to a field: `spec.containers[0].resources.limits[cpu]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    /// A root path, e.g. `Path::new("spec")`.
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }

    /// `parent.name`
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{}", self.0, name))
        }
    }

    /// `parent[index]`
    pub fn index(&self, index: usize) -> Self {
        Path(format!("{}[{}]", self.0, index))
    }

    /// `parent[key]` (map keys are not quoted)
    pub fn key(&self, key: &str) -> Self {
        Path(format!("{}[{}]", self.0, key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of field error, with apimachinery's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        }
    }

    /// The `reason` of a StatusCause (`FieldValueInvalid`, …) for API responses.
    pub fn cause_type(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// The offending value, printed the way Go's `%v`/`%q` would print it.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// Not printed (Go's `omitValue`).
    Omit,
    /// Go-quoted: `"x"`.
    Str(String),
    /// Bare: `42`.
    Int(i64),
    /// Bare: `true`.
    Bool(bool),
    /// Printed as given (a Go `%#v` rendering of a struct or list, or `null`).
    Raw(String),
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}
impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}
impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(i64::from(v))
    }
}
impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        BadValue::Bool(v)
    }
}

/// One field error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: ErrorType,
    pub field: String,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    fn make(kind: ErrorType, path: &Path, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: path.to_string(),
            value,
            detail: detail.into(),
        }
    }

    pub fn required(path: &Path, detail: impl Into<String>) -> Self {
        Self::make(ErrorType::Required, path, BadValue::Omit, detail)
    }
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> Self {
        Self::make(ErrorType::Forbidden, path, BadValue::Omit, detail)
    }
    pub fn invalid(path: &Path, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::make(ErrorType::Invalid, path, value.into(), detail)
    }
    pub fn not_found(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::make(ErrorType::NotFound, path, value.into(), "")
    }
    pub fn duplicate(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::make(ErrorType::Duplicate, path, value.into(), "")
    }
    pub fn too_long(path: &Path, max_len: usize) -> Self {
        let detail = format!("may not be more than {max_len} bytes");
        Self::make(ErrorType::TooLong, path, BadValue::Omit, detail)
    }
    pub fn too_many(path: &Path, actual: usize, max: usize) -> Self {
        let detail = format!("must have at most {max} items");
        Self::make(
            ErrorType::TooMany,
            path,
            BadValue::Int(actual as i64),
            detail,
        )
    }
    pub fn internal(path: &Path, detail: impl Into<String>) -> Self {
        Self::make(ErrorType::Internal, path, BadValue::Omit, detail)
    }

    /// `Unsupported value` with apimachinery's `supported values: "a", "b"` detail.
    pub fn not_supported(path: &Path, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::make(ErrorType::NotSupported, path, value.into(), detail)
    }

    /// The message without the field path (a StatusCause's `message`).
    pub fn body(&self) -> String {
        let mut s = String::from(self.kind.as_str());
        let omit = matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        );
        if !omit {
            match &self.value {
                BadValue::Omit => {}
                BadValue::Str(v) => {
                    s.push_str(": ");
                    s.push_str(&go_quote(v));
                }
                BadValue::Int(v) => s.push_str(&format!(": {v}")),
                BadValue::Bool(v) => s.push_str(&format!(": {v}")),
                BadValue::Raw(v) => {
                    s.push_str(": ");
                    s.push_str(v);
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// An ordered list of field errors.
pub type ErrorList = Vec<FieldError>;

/// The aggregate text: one message, or `[m1, m2]`, identical messages once (`ToAggregate`).
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut seen = std::collections::HashSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match msgs.len() {
        0 => String::new(),
        1 => msgs.into_iter().next().unwrap_or_default(),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// `Pod "web" is invalid: <aggregate>` (`apierrors.NewInvalid`).
pub fn invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    if errors.is_empty() {
        format!("{kind} {} is invalid", go_quote(name))
    } else {
        format!(
            "{kind} {} is invalid: {}",
            go_quote(name),
            aggregate(errors)
        )
    }
}

/// Quotes like Go's `strconv.Quote` (`%q`): escapes quotes, backslashes and non-printable
/// characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_paths_render_like_apimachinery() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("limits")
            .key("cpu");
        assert_eq!(p.as_str(), "spec.containers[0].resources.limits[cpu]");
    }

    #[test]
    fn v0_error_bodies() {
        let p = Path::new("spec").child("containers");
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.containers: Required value"
        );
        assert_eq!(
            FieldError::forbidden(&p, "may not be set").to_string(),
            "spec.containers: Forbidden: may not be set"
        );
        assert_eq!(
            FieldError::invalid(&p, "x", "bad").to_string(),
            "spec.containers: Invalid value: \"x\": bad"
        );
        assert_eq!(
            FieldError::invalid(&p, -1i64, "bad").to_string(),
            "spec.containers: Invalid value: -1: bad"
        );
        assert_eq!(
            FieldError::not_supported(&p, "Sometimes", &["Always", "Never"]).to_string(),
            "spec.containers: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
        assert_eq!(
            FieldError::duplicate(&p, "a").to_string(),
            "spec.containers: Duplicate value: \"a\""
        );
        assert_eq!(
            FieldError::not_found(&p, "v").to_string(),
            "spec.containers: Not found: \"v\""
        );
    }

    #[test]
    fn v0_aggregate_dedups_and_brackets() {
        let p = Path::new("spec");
        let a = FieldError::required(&p, "");
        let b = FieldError::forbidden(&p, "no");
        assert_eq!(
            invalid_message("Pod", "web", std::slice::from_ref(&a)),
            "Pod \"web\" is invalid: spec: Required value"
        );
        assert_eq!(
            invalid_message("Pod", "web", &[a.clone(), b, a]),
            "Pod \"web\" is invalid: [spec: Required value, spec: Forbidden: no]"
        );
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }
}
