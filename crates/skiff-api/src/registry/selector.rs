//! Label and field selectors as kube-apiserver parses and matches them: the label grammar of
//! apimachinery `pkg/labels/selector.go` (`Parse`: `a`, `!a`, `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a>1`, `a<1`; requirements validated by `NewRequirement`), and
//! the field grammar of `pkg/fields/selector.go` (`ParseSelector`: `f=v`, `f==v`, `f!=v`,
//! comma-separated, `\` escapes), with each kind's selectable fields (`ToSelectableFields` /
//! `GetAttrs` of the registries; an unknown field is `field label not supported: x`).

use std::collections::BTreeMap;

use serde_json::Value;
use skiff_model::field::go_quote;
use skiff_model::validation::names;

use super::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Lt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed label selector (requirements ANDed; empty selects everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    Gt,
    Ident,
    In,
    Lt,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::Not,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::Gt,
        "in" => Tok::In,
        "<" => Tok::Lt,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// The lexer of selector.go: identifiers run to a special symbol or a blank; special
/// symbols are read greedily while they still form a token.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            let mut buf = String::new();
            let mut last: Option<(Tok, String)> = None;
            while pos < b.len() && is_special(b[pos]) {
                buf.push(b[pos] as char);
                if let Some(t) = keyword(&buf) {
                    last = Some((t, buf.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some(t) => out.push(t),
                None => {
                    out.push((Tok::Error, format!("error expected: keyword found '{buf}'")));
                }
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let word = String::from_utf8_lossy(&b[start..pos]).into_owned();
            match keyword(&word) {
                Some(t) => out.push((t, word)),
                None => out.push((Tok::Ident, word)),
            }
        }
    }
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    /// In a values context `in`/`notin` are identifiers.
    fn look(&self, values: bool) -> (Tok, String) {
        let (t, l) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        (
            if values && matches!(t, Tok::In | Tok::NotIn) {
                Tok::Ident
            } else {
                t
            },
            l,
        )
    }

    fn take(&mut self, values: bool) -> (Tok, String) {
        let r = self.look(values);
        self.pos += 1;
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.look(true);
            match t {
                Tok::Ident | Tok::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.take(true);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.look(true);
                            if t2 != Tok::Ident && t2 != Tok::Not {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut t, mut key) = self.take(true);
        let mut op = None;
        if t == Tok::Not {
            op = Some(Op::DoesNotExist);
            (t, key) = self.take(true);
        }
        if t != Tok::Ident {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let key_errors = names::is_qualified_name(&key);
        if !key_errors.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&key),
                key_errors.join("; ")
            ));
        }
        let (next, _) = self.look(true);
        if next == Tok::End || next == Tok::Comma {
            let op = op.unwrap_or(Op::Exists);
            return Ok(Requirement {
                key,
                op,
                values: Vec::new(),
            });
        }
        if op.is_some() {
            // `!a=b`: the operator position holds something; selector.go then parses an
            // operator, which is the error below.
        }
        let (t, lit) = self.take(false);
        let op = match t {
            Tok::In => Op::In,
            Tok::Equals | Tok::DoubleEquals => Op::Equals,
            Tok::Gt => Op::Gt,
            Tok::Lt => Op::Lt,
            Tok::NotIn => Op::NotIn,
            Tok::NotEquals => Op::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        validate_requirement(&key, &op, &values)?;
        Ok(Requirement { key, op, values })
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.take(true);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.look(true);
        match t {
            Tok::Ident | Tok::Comma => {
                let mut set: Vec<String> = Vec::new();
                let add = |set: &mut Vec<String>, v: String| {
                    if !set.contains(&v) {
                        set.push(v);
                    }
                };
                loop {
                    let (t, l) = self.take(true);
                    match t {
                        Tok::Ident => {
                            add(&mut set, l);
                            let (t2, l2) = self.look(true);
                            match t2 {
                                Tok::Comma => continue,
                                Tok::ClosedPar => break,
                                _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                            }
                        }
                        Tok::Comma => {
                            if set.is_empty() {
                                add(&mut set, String::new());
                            }
                            let (t2, _) = self.look(true);
                            if t2 == Tok::ClosedPar {
                                add(&mut set, String::new());
                                break;
                            }
                            if t2 == Tok::Comma {
                                add(&mut set, String::new());
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',', or identifier")),
                    }
                }
                let (t, _) = self.take(true);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                set.sort();
                Ok(set)
            }
            Tok::ClosedPar => {
                self.take(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.look(true);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.take(true);
        if t == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// `NewRequirement`'s value checks (the key was checked while parsing).
fn validate_requirement(key: &str, op: &Op, values: &[String]) -> Result<(), String> {
    let mut errs = Vec::new();
    if matches!(op, Op::Gt | Op::Lt) {
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                errs.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(v)
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let e = names::is_valid_label_value(v);
        if !e.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                e.join("; ")
            ));
        }
    }
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

impl LabelSelector {
    /// Parses `s` (kube's 400 BadRequest with the parser's text on error).
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut p = Parser {
            items: lex(s),
            pos: 0,
        };
        let mut reqs = p.parse().map_err(|e| ApiError::new(400, "BadRequest", e))?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// `Requirement.Matches` for every requirement.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r.op {
            Op::Exists => get(&r.key).is_some(),
            Op::DoesNotExist => get(&r.key).is_none(),
            Op::Equals | Op::In => get(&r.key).is_some_and(|v| r.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => {
                get(&r.key).is_none_or(|v| !r.values.iter().any(|x| x == v))
            }
            Op::Gt | Op::Lt => {
                let Some(v) = get(&r.key).and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = r.values.first().and_then(|w| w.parse::<i64>().ok()) else {
                    return false;
                };
                if r.op == Op::Gt {
                    v > want
                } else {
                    v < want
                }
            }
        })
    }
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector, its fields checked against the kind's selectable fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Splits `s` at unescaped `sep`.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if esc {
        cur.push('\\');
    }
    out.push(cur);
    out
}

/// `UnescapeValue`: `\\`, `\,`, `\=` only.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: {s:?}"
                    ))
                }
            }
        } else if c == ',' || c == '=' {
            return Err(format!(
                "invalid field selector: unescaped character found in value: {s:?}"
            ));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses `s` and checks each field against `kind`'s selectable fields.
    pub fn parse(s: &str, kind: &str) -> Result<FieldSelector, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequest", m);
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { terms });
        }
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            // `!=` first, then `==`, then `=` (fields.go's operator order).
            let (field, raw, equal) = if let Some(i) = find_op(&part, "!=") {
                (&part[..i], &part[i + 2..], false)
            } else if let Some(i) = find_op(&part, "==") {
                (&part[..i], &part[i + 2..], true)
            } else if let Some(i) = find_op(&part, "=") {
                (&part[..i], &part[i + 1..], true)
            } else {
                return Err(bad(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape(raw).map_err(bad)?;
            let field = field.trim().to_string();
            if !selectable_fields(kind).contains(&field.as_str()) {
                return Err(bad(format!("field label not supported: {field}")));
            }
            terms.push(FieldTerm {
                field,
                value,
                equal,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `object` (of the kind parsed for) is selected.
    pub fn matches(&self, kind: &str, object: &Value) -> bool {
        if self.terms.is_empty() {
            return true;
        }
        let fields = field_values(kind, object);
        self.terms.iter().all(|t| {
            let v = fields
                .get(t.field.as_str())
                .map(String::as_str)
                .unwrap_or("");
            (v == t.value) == t.equal
        })
    }

    /// The value an equality term requires of `field` (`metadata.name=x` → `x`).
    pub fn requires(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }
}

/// The first unescaped occurrence of `op` in `s`.
fn find_op(s: &str, op: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Each kind's selectable fields (the registries' `GetAttrs`/`ToSelectableFields` and the
/// conversion funcs that accept field labels).
pub fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "Namespace" => &["metadata.name", "status.phase"],
        "Node" => &["metadata.name", "spec.unschedulable"],
        // pkg/registry/batch/job/strategy.go JobToSelectableFields.
        "Job" => &["metadata.name", "metadata.namespace", "status.successful"],
        // pkg/registry/apps/replicaset/strategy.go ReplicaSetToSelectableFields.
        "ReplicaSet" => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

fn s(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        match at.get(p) {
            Some(x) => at = x,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The selectable fields' values of `object`.
pub fn field_values(kind: &str, o: &Value) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("metadata.name", s(o, &["metadata", "name"]));
    m.insert("metadata.namespace", s(o, &["metadata", "namespace"]));
    match kind {
        "Job" => {
            let n = o["status"]["succeeded"].as_i64().unwrap_or(0);
            m.insert("status.successful", n.to_string());
        }
        "ReplicaSet" => {
            let n = o["status"]["replicas"].as_i64().unwrap_or(0);
            m.insert("status.replicas", n.to_string());
        }
        "Pod" => {
            m.insert("spec.nodeName", s(o, &["spec", "nodeName"]));
            m.insert("spec.restartPolicy", s(o, &["spec", "restartPolicy"]));
            m.insert("spec.schedulerName", s(o, &["spec", "schedulerName"]));
            m.insert(
                "spec.serviceAccountName",
                s(o, &["spec", "serviceAccountName"]),
            );
            let host = o["spec"]["hostNetwork"].as_bool().unwrap_or(false);
            m.insert("spec.hostNetwork", host.to_string());
            m.insert("status.phase", s(o, &["status", "phase"]));
            m.insert("status.podIP", s(o, &["status", "podIP"]));
            m.insert(
                "status.nominatedNodeName",
                s(o, &["status", "nominatedNodeName"]),
            );
        }
        "Event" => {
            for f in [
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            ] {
                let key: &'static str = match f {
                    "kind" => "involvedObject.kind",
                    "namespace" => "involvedObject.namespace",
                    "name" => "involvedObject.name",
                    "uid" => "involvedObject.uid",
                    "apiVersion" => "involvedObject.apiVersion",
                    "resourceVersion" => "involvedObject.resourceVersion",
                    _ => "involvedObject.fieldPath",
                };
                m.insert(key, s(o, &["involvedObject", f]));
            }
            m.insert("reason", s(o, &["reason"]));
            m.insert("reportingComponent", s(o, &["reportingComponent"]));
            m.insert("source", s(o, &["source", "component"]));
            m.insert("type", s(o, &["type"]));
        }
        "Secret" => {
            m.insert("type", s(o, &["type"]));
        }
        "Namespace" => {
            m.insert("status.phase", s(o, &["status", "phase"]));
        }
        "Node" => {
            let u = o["spec"]["unschedulable"].as_bool().unwrap_or(false);
            m.insert("spec.unschedulable", u.to_string());
        }
        _ => {}
    }
    m
}

/// Label selector + field selector of one request.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kind: &'static str,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn new(
        kind: &'static str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Filter, ApiError> {
        Ok(Filter {
            kind,
            labels: match labels {
                Some(l) => LabelSelector::parse(l)?,
                None => LabelSelector::default(),
            },
            fields: match fields {
                Some(f) => FieldSelector::parse(f, kind)?,
                None => FieldSelector::default(),
            },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(
            object
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object),
        ) && self.fields.matches(self.kind, object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(_) => panic!("{s} parsed"),
            Err(e) => {
                assert_eq!((e.code, e.reason), (400, "BadRequest"));
                e.message
            }
        }
    }

    /// apimachinery labels/selector.go: the grammar's operators and Matches.
    #[test]
    fn label_selector_grammar_and_matching_as_selector_go() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        assert!(sel("app=web").matches(Some(&l)));
        assert!(sel("app==web,tier").matches(Some(&l)));
        assert!(!sel("app!=web").matches(Some(&l)));
        assert!(sel("app in (web, db)").matches(Some(&l)));
        assert!(!sel("app notin (web)").matches(Some(&l)));
        assert!(sel("!missing").matches(Some(&l)));
        assert!(!sel("!app").matches(Some(&l)));
        assert!(sel("n>3,n<6").matches(Some(&l)));
        assert!(!sel("n>5").matches(Some(&l)));
        assert!(sel("x notin (a)").matches(Some(&l)));
        assert!(sel("").matches(None));
        assert!(sel("x in (in,notin)").matches(Some(&labels(json!({"x": "in"})))));
        assert!(sel("app=").matches(Some(&labels(json!({"app": ""})))));
    }

    /// selector.go's parser errors, as kube-apiserver returns them in a 400.
    #[test]
    fn label_selector_errors_carry_the_parser_text() {
        assert_eq!(
            err("app=web x"),
            "found 'x', expected: ',' or 'end of string'"
        );
        assert_eq!(
            err("app in web"),
            "unable to parse requirement: found 'web' expected: '('"
        );
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert!(
            err("a@b=c").starts_with("unable to parse requirement: <nil>: Invalid value: \"a@b\"")
        );
        assert!(err("n>x").contains("for 'Gt', 'Lt' operators, the value must be an integer"));
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
    }

    /// pkg/registry/core/pod/strategy.go ToSelectableFields; fields.ParseSelector.
    #[test]
    fn field_selectors_per_kind() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1", "restartPolicy": "Never"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, "Pod").unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(f("metadata.name=p,spec.nodeName==n1").matches("Pod", &pod));
        assert!(f("status.phase!=Pending").matches("Pod", &pod));
        assert!(!f("spec.restartPolicy=Always").matches("Pod", &pod));
        assert!(f("spec.hostNetwork=false").matches("Pod", &pod));
        let e = FieldSelector::parse("spec.foo=x", "Pod")
            .err()
            .map(|e| e.message);
        assert_eq!(e.as_deref(), Some("field label not supported: spec.foo"));
        let e = FieldSelector::parse("type=x", "ConfigMap")
            .err()
            .map(|e| e.message);
        assert_eq!(e.as_deref(), Some("field label not supported: type"));
        assert!(FieldSelector::parse("type=Opaque", "Secret").is_ok());
        let e = FieldSelector::parse("metadata.name", "Pod")
            .err()
            .map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("invalid selector: 'metadata.name'; can't understand 'metadata.name'")
        );
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"});
        let f = |s: &str| FieldSelector::parse(s, "Event").unwrap_or_default();
        assert!(
            f("involvedObject.name=p,involvedObject.kind=Pod,source=kubelet,type=Normal")
                .matches("Event", &ev)
        );
        assert!(!f("reason=Killing").matches("Event", &ev));
        // Escapes.
        let esc = FieldSelector::parse(r"metadata.name=a\,b", "Pod").unwrap_or_default();
        assert!(esc.matches("Pod", &json!({"metadata": {"name": "a,b"}})));
    }
}
