//! kubectl's `-o jsonpath=TEMPLATE`: the template dialect of client-go's `util/jsonpath`
//! (text with `{…}` actions, `range`/`end`, filters, unions, recursive descent), evaluated over
//! the object as JSON with missing keys allowed, as `kubectl get -o jsonpath` does.
//!
//! Written here because no crate implements this dialect: the JSONPath crates follow RFC 9535
//! queries, which have neither the text template nor `range`, and print differently. Behaviour
//! was checked against kubectl 1.33 (`kubectl label --local -f pod.yaml -o jsonpath=…`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Value;

/// A parsed template. Parsing is done once, at flag parsing, so a bad template is a usage
/// error before anything runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    raw: String,
    body: Vec<Elem>,
}

#[derive(Clone, Debug, PartialEq)]
enum Elem {
    Text(String),
    Action(Vec<Node>),
    /// `{range EXPR}BODY{end}`: BODY once per result of EXPR, with `@` bound to it.
    Range(Vec<Node>, Vec<Elem>),
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Field(String),
    Wildcard,
    Recursive,
    Slice(Slice),
    Union(Vec<Vec<Node>>),
    Filter {
        left: Vec<Node>,
        op: String,
        right: Vec<Node>,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Identifier(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Slice {
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    /// `[n]`: one element, `end` is `start + 1` once a negative start is resolved.
    single: bool,
}

/// Bound on nested `range` blocks and filter/union recursion: a template is a flag, but it is
/// still input that must not overflow the stack.
const MAX_NESTING: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// kubectl: `error parsing jsonpath {…}, <reason>`.
    #[error("error parsing jsonpath {template}, {reason}")]
    Parse { template: String, reason: String },
    /// kubectl: `error executing jsonpath "{…}": Error executing template: <reason>. …`.
    #[error("error executing jsonpath {template:?}: Error executing template: {reason}. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{template}\n")]
    Execute { template: String, reason: String },
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, Error> {
        let perr = |reason: String| Error::Parse {
            template: text.to_string(),
            reason,
        };
        let flat = Parser::new(text).parse_template().map_err(perr)?;
        let mut iter = flat.into_iter();
        let body = nest(&mut iter, 0).map_err(perr)?;
        Ok(Template {
            raw: text.to_string(),
            body,
        })
    }

    /// The template's output for `data` (no newline is added, as kubectl adds none).
    pub fn render(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        exec_block(&self.body, data, &mut out).map_err(|reason| Error::Execute {
            template: self.raw.clone(),
            reason,
        })?;
        Ok(out)
    }
}

/// One piece of the flat parse: text, or the nodes of one `{…}` action.
enum Flat {
    Text(String),
    Action(Vec<Node>),
}

/// Turns the flat list into blocks: `{range …}` opens one, `{end}` closes it.
fn nest(iter: &mut std::vec::IntoIter<Flat>, depth: usize) -> Result<Vec<Elem>, String> {
    let mut out = Vec::new();
    while let Some(item) = iter.next() {
        match item {
            Flat::Text(t) => out.push(Elem::Text(t)),
            Flat::Action(nodes) => match nodes.first() {
                Some(Node::Identifier(id)) if id == "range" => {
                    if depth >= MAX_NESTING {
                        return Err(format!("more than {MAX_NESTING} nested ranges"));
                    }
                    let body = nest(iter, depth + 1)?;
                    out.push(Elem::Range(nodes[1..].to_vec(), body));
                }
                Some(Node::Identifier(id)) if id == "end" => {
                    if depth == 0 {
                        // kubectl reports this when executing; at parse time is kinder.
                        return Err("not in range, nothing to end".into());
                    }
                    return Ok(out);
                }
                _ => out.push(Elem::Action(nodes)),
            },
        }
    }
    // An unclosed range runs to the end of the template, as upstream's does.
    Ok(out)
}

fn exec_block(body: &[Elem], cur: &Value, out: &mut String) -> Result<(), String> {
    for elem in body {
        match elem {
            Elem::Text(t) => out.push_str(t),
            Elem::Action(nodes) => {
                let results = eval_list(vec![cur.clone()], nodes, 0)?;
                print_results(&results, out);
            }
            Elem::Range(nodes, inner) => {
                for item in eval_list(vec![cur.clone()], nodes, 0)? {
                    exec_block(inner, &item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Results separated by one space; strings raw, other values as compact JSON (what kubectl
/// prints for maps and lists).
fn print_results(results: &[Value], out: &mut String) {
    for (i, v) in results.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match v {
            Value::String(s) => out.push_str(s),
            Value::Null => {}
            Value::Bool(_) | Value::Number(_) => {
                let _ = write!(out, "{v}");
            }
            Value::Array(_) | Value::Object(_) => out.push_str(&go_json(v)),
        }
    }
}

/// Compact JSON as Go's encoding/json writes it: keys sorted (serde_json's map is ordered by
/// key), and `<`, `>`, `&`, U+2028, U+2029 escaped (they only occur inside strings).
fn go_json(v: &Value) -> String {
    let s = v.to_string();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn eval_list(mut cur: Vec<Value>, nodes: &[Node], depth: usize) -> Result<Vec<Value>, String> {
    if depth > MAX_NESTING {
        return Err(format!("nesting deeper than {MAX_NESTING}"));
    }
    for node in nodes {
        cur = eval(cur, node, depth)?;
    }
    Ok(cur)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn eval(input: Vec<Value>, node: &Node, depth: usize) -> Result<Vec<Value>, String> {
    Ok(match node {
        Node::Text(t) => vec![Value::String(t.clone())],
        Node::Int(i) => input.iter().map(|_| Value::from(*i)).collect(),
        Node::Float(f) => input
            .iter()
            .filter_map(|_| serde_json::Number::from_f64(*f).map(Value::Number))
            .collect(),
        Node::Bool(b) => input.iter().map(|_| Value::Bool(*b)).collect(),
        Node::Identifier(id) => return Err(format!("unrecognized identifier {id}")),
        // Missing keys yield nothing (kubectl sets AllowMissingKeys).
        Node::Field(name) => input
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(mut m) => m.remove(name),
                _ => None,
            })
            .collect(),
        Node::Wildcard => {
            let mut out = Vec::new();
            for v in input {
                match v {
                    Value::Object(m) => out.extend(m.into_iter().map(|(_, v)| v)),
                    Value::Array(a) => out.extend(a),
                    _ => {}
                }
            }
            out
        }
        Node::Recursive => {
            let mut out = Vec::new();
            for v in input {
                descend(v, &mut out, 0);
            }
            out
        }
        Node::Slice(s) => {
            let mut out = Vec::new();
            for v in input {
                match v {
                    Value::Null => {}
                    Value::Array(a) => out.extend(slice(a, *s)?),
                    other => return Err(format!("{} is not array or slice", go_type(&other))),
                }
            }
            out
        }
        Node::Union(parts) => {
            let mut out = Vec::new();
            for part in parts {
                out.extend(eval_list(input.clone(), part, depth + 1)?);
            }
            out
        }
        Node::Filter { left, op, right } => {
            let mut out = Vec::new();
            for v in input {
                let Value::Array(items) = v else {
                    return Err(format!(
                        "{} is not array or slice and cannot be filtered",
                        go_json(&v)
                    ));
                };
                for item in items {
                    if filter_keeps(&item, left, op, right, depth)? {
                        out.push(item);
                    }
                }
            }
            out
        }
    })
}

/// `..`: each value with children, then (depth-first) its descendants.
fn descend(v: Value, out: &mut Vec<Value>, depth: usize) {
    let children: Vec<Value> = match &v {
        Value::Object(m) => m.values().cloned().collect(),
        Value::Array(a) => a.clone(),
        _ => return,
    };
    if children.is_empty() {
        return;
    }
    out.push(v);
    // Objects come from a bounded manifest or skiff's own status, so depth is bounded by
    // what serde_json accepted (128 levels); the check is a second guard.
    if depth < 256 {
        for c in children {
            descend(c, out, depth + 1);
        }
    }
}

fn slice(a: Vec<Value>, s: Slice) -> Result<Vec<Value>, String> {
    let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
    let mut start = s.start.unwrap_or(0);
    if start < 0 {
        start += len;
    }
    let mut end = if s.single {
        start + 1
    } else {
        s.end.unwrap_or(len)
    };
    if end < 0 {
        end += len;
    }
    if end != start {
        if start >= len || start < 0 {
            return Err(format!(
                "array index out of bounds: index {start}, length {len}"
            ));
        }
        if end > len {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                end - 1
            ));
        }
    }
    if end <= start {
        return Ok(Vec::new());
    }
    let step = usize::try_from(s.step.unwrap_or(1).max(1)).unwrap_or(1);
    let (start, end) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(end).unwrap_or(0),
    );
    Ok(a.into_iter()
        .skip(start)
        .take(end - start)
        .step_by(step)
        .collect())
}

fn filter_keeps(
    item: &Value,
    left: &[Node],
    op: &str,
    right: &[Node],
    depth: usize,
) -> Result<bool, String> {
    let lefts = eval_list(vec![item.clone()], left, depth + 1);
    if op == "exists" {
        return Ok(lefts.is_ok_and(|l| !l.is_empty()));
    }
    let lefts = lefts?;
    // An element without the compared field is not a match (kubectl skips it).
    let [l] = lefts.as_slice() else {
        if lefts.is_empty() {
            return Ok(false);
        }
        return Err("can only compare one element at a time".into());
    };
    let rights = eval_list(vec![item.clone()], right, depth + 1)?;
    let [r] = rights.as_slice() else {
        return Err("can only compare one element at a time".into());
    };
    let ord = compare(l, r)?;
    Ok(match op {
        "==" => ord == Some(Ordering::Equal),
        "!=" => ord != Some(Ordering::Equal),
        "<" => ord == Some(Ordering::Less),
        ">" => ord == Some(Ordering::Greater),
        "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        other => return Err(format!("unrecognized filter operator {other}")),
    })
}

/// Go template comparison: same basic kind only (an integer field against `1.0` is
/// "incompatible types for comparison", as in kubectl).
fn compare(l: &Value, r: &Value) -> Result<Option<Ordering>, String> {
    let incompatible = || Err("incompatible types for comparison".to_string());
    match (l, r) {
        (Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        (Value::Bool(a), Value::Bool(b)) => Ok(Some(a.cmp(b))),
        (Value::Number(a), Value::Number(b)) => {
            if a.is_f64() != b.is_f64() {
                return incompatible();
            }
            match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Ok(Some(x.cmp(&y))),
                _ => Ok(a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y))),
            }
        }
        _ => incompatible(),
    }
}

/// The template parser: text, then `{` action `}` pairs. Follows upstream parser.go's
/// grammar and messages.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
    )
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn parse_template(&mut self) -> Result<Vec<Flat>, String> {
        let mut out = Vec::new();
        while !self.rest().is_empty() {
            match self.rest().find('{') {
                Some(0) => {
                    self.pos += 1;
                    let nodes = self.parse_action()?;
                    out.push(Flat::Action(nodes));
                }
                Some(i) => {
                    out.push(Flat::Text(self.rest()[..i].to_string()));
                    self.pos += i;
                }
                None => {
                    out.push(Flat::Text(self.rest().to_string()));
                    self.pos = self.s.len();
                }
            }
        }
        Ok(out)
    }

    /// Nodes up to and including the closing `}`.
    fn parse_action(&mut self) -> Result<Vec<Node>, String> {
        let mut nodes = Vec::new();
        self.parse_nodes(&mut nodes, true)?;
        Ok(nodes)
    }

    /// Parses nodes until `}` (when `delimited`) or the end of input.
    fn parse_nodes(&mut self, nodes: &mut Vec<Node>, delimited: bool) -> Result<(), String> {
        loop {
            let rest = self.rest();
            if rest.starts_with('}') && delimited {
                self.pos += 1;
                return Ok(());
            }
            if rest.starts_with("[?(") {
                self.pos += 3;
                nodes.push(self.parse_filter()?);
                continue;
            }
            if rest.starts_with("..") {
                if nodes.last() == Some(&Node::Recursive) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                nodes.push(Node::Recursive);
                if self
                    .rest()
                    .starts_with(|c: char| c == '_' || c.is_alphanumeric())
                {
                    nodes.push(self.parse_field());
                }
                continue;
            }
            let Some(c) = rest.chars().next() else {
                return if delimited {
                    Err("unclosed action".into())
                } else {
                    Ok(())
                };
            };
            match c {
                '\r' | '\n' => return Err("unclosed action".into()),
                ' ' | '@' | '$' => self.pos += 1,
                '[' => {
                    self.pos += 1;
                    nodes.push(self.parse_array()?);
                }
                '"' | '\'' => {
                    self.pos += 1;
                    nodes.push(Node::Text(self.parse_quote(c)?));
                }
                '.' => {
                    self.pos += 1;
                    nodes.push(self.parse_field());
                }
                '+' | '-' | '0'..='9' => nodes.push(self.parse_number()?),
                c if c == '_' || c.is_alphanumeric() => {
                    let end = rest.find(is_terminator).unwrap_or(rest.len());
                    let word = &rest[..end];
                    self.pos += end;
                    nodes.push(match word {
                        "true" => Node::Bool(true),
                        "false" => Node::Bool(false),
                        w => Node::Identifier(w.to_string()),
                    });
                }
                other => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} {other:?}",
                        u32::from(other)
                    ))
                }
            }
        }
    }

    /// A field name up to the next unescaped terminator; `\` escapes (`{.a\.b}` is key `a.b`).
    fn parse_field(&mut self) -> Node {
        let rest = self.rest();
        let mut name = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                if let Some((_, n)) = chars.next() {
                    name.push(n);
                }
                continue;
            }
            if is_terminator(c) {
                end = i;
                break;
            }
            name.push(c);
        }
        self.pos += end;
        if name == "*" {
            Node::Wildcard
        } else {
            Node::Field(name)
        }
    }

    fn parse_number(&mut self) -> Result<Node, String> {
        let rest = self.rest();
        let mut end = usize::from(rest.starts_with(['+', '-']));
        end += rest[end..]
            .find(|c: char| c != '.' && !c.is_ascii_digit())
            .unwrap_or(rest.len() - end);
        let text = &rest[..end];
        self.pos += end;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Node::Int(i));
        }
        text.parse::<f64>()
            .map(Node::Float)
            .map_err(|_| format!("cannot parse number {text}"))
    }

    fn parse_quote(&mut self, quote: char) -> Result<String, String> {
        let rest = self.rest();
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\n' => break,
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, '0')) => out.push('\0'),
                    Some((_, e)) if e == quote || e == '\\' => out.push(e),
                    Some((_, e)) => return Err(format!("unquote string: invalid escape \\{e}")),
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + c.len_utf8();
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err("unterminated quoted string".into())
    }

    /// After `[`: a slice, an index, `*`, a `'key'`, or a union `a,b`.
    fn parse_array(&mut self) -> Result<Node, String> {
        let rest = self.rest();
        let Some(close) = rest
            .find([']', '\n'])
            .filter(|&i| rest[i..].starts_with(']'))
        else {
            return Err("unterminated array".into());
        };
        let text = &rest[..close];
        self.pos += close + 1;
        array_node(text, 0)
    }

    /// After `[?(`: `LEFT OP RIGHT` or an existence test, up to `)]`.
    fn parse_filter(&mut self) -> Result<Node, String> {
        let rest = self.rest();
        let mut quote: Option<char> = None;
        let mut prev = '\0';
        let mut close = None;
        for (i, c) in rest.char_indices() {
            match c {
                '\n' => break,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c if Some(c) == quote && prev != '\\' => quote = None,
                ')' if quote.is_none() => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
            prev = c;
        }
        let Some(close) = close else {
            return Err("unterminated filter".into());
        };
        if !rest[close + 1..].starts_with(']') {
            return Err("unclosed array expect ]".into());
        }
        let text = &rest[..close];
        self.pos += close + 2;
        let op_start = text.find(['!', '<', '>', '=']);
        let sub = |t: &str| -> Result<Vec<Node>, String> {
            let mut p = Parser::new(t);
            let mut nodes = Vec::new();
            p.parse_nodes(&mut nodes, false)?;
            Ok(nodes)
        };
        match op_start.filter(|&i| i > 0) {
            None => Ok(Node::Filter {
                left: sub(text)?,
                op: "exists".into(),
                right: Vec::new(),
            }),
            Some(i) => {
                let op_len = text[i..]
                    .find(|c: char| !matches!(c, '!' | '<' | '>' | '='))
                    .unwrap_or(text.len() - i);
                Ok(Node::Filter {
                    left: sub(&text[..i])?,
                    op: text[i..i + op_len].to_string(),
                    right: sub(&text[i + op_len..])?,
                })
            }
        }
    }
}

fn array_node(text: &str, depth: usize) -> Result<Node, String> {
    if depth > MAX_NESTING {
        return Err(format!("nesting deeper than {MAX_NESTING}"));
    }
    let text = if text == "*" { ":" } else { text };
    if text.contains(',') {
        let parts = text
            .split(',')
            .map(|part| array_node(part.trim(), depth + 1).map(|n| vec![n]))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Node::Union(parts));
    }
    if let Some(key) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .filter(|k| !k.contains('\''))
    {
        return Ok(Node::Field(key.to_string()));
    }
    let invalid = || format!("invalid array index {text:?}");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(invalid());
    }
    let num = |p: &str| -> Result<Option<i64>, String> {
        if p.is_empty() {
            return Ok(None);
        }
        let digits = p.strip_prefix('-').unwrap_or(p);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        p.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("array index {p} is not a number"))
    };
    let start = num(parts[0])?;
    Ok(Node::Slice(Slice {
        start,
        end: match parts.get(1) {
            Some(p) => num(p)?,
            None => None,
        },
        step: match parts.get(2) {
            Some(p) => num(p)?,
            None => None,
        },
        single: parts.len() == 1 && start.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "1", "x": "y"}},
            "spec": {"containers": [
                {"name": "a", "image": "busybox", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                {"name": "b", "image": "nginx"}
            ]}
        })
    }

    fn run(t: &str) -> Result<String, Error> {
        Template::parse(t)?.render(&pod())
    }

    fn ok(t: &str) -> String {
        match run(t) {
            Ok(s) => s,
            Err(e) => panic!("{t}: {e}"),
        }
    }

    /// Each expectation is what kubectl 1.33 printed for the same template and object.
    #[test]
    fn matches_kubectl_output() {
        let cases = [
            ("{.metadata.labels}", r#"{"app":"web","tier":"1","x":"y"}"#),
            ("{.spec.containers[*].name}", "a b"),
            (
                "{.spec.containers[0]}",
                r#"{"image":"busybox","name":"a","ports":[{"containerPort":80},{"containerPort":443}]}"#,
            ),
            ("{.metadata.nope}", ""),
            (
                "{range .spec.containers[*]}{.name}{\"\\t\"}{.image}{\"\\n\"}{end}",
                "a\tbusybox\nb\tnginx\n",
            ),
            ("{.spec.containers[?(@.name==\"b\")].image}", "nginx"),
            ("{..containerPort}", "80 443"),
            ("{.spec.containers[0].ports[0].containerPort}", "80"),
            ("{.spec.containers[-1:].name}", "b"),
            ("{.spec.containers[-1].name}", "b"),
            ("{$.kind}", "Pod"),
            ("{@.kind}", "Pod"),
            ("{range .spec.nope[*]}x{end}after", "after"),
            (
                "{range .spec.containers[*]}[{.name}]{end}after{.kind}",
                "[a][b]afterPod",
            ),
            ("{.spec.containers[*].ports[*].containerPort}", "80 443"),
            ("{.spec.containers[?(@.ports)].name}", "a"),
            ("{.spec.containers[0,1].name}", "a b"),
            (
                "{.spec.containers[?(@.ports[0].containerPort==80)].name}",
                "a",
            ),
            ("{.spec.containers[1:].name}", "b"),
            ("{.spec.containers[0].name.x}", ""),
            ("{.metadata['labels']['app']}", "web"),
            ("{.kind} {.apiVersion}", "Pod v1"),
            (
                "{range .spec.containers[*]}{range .ports[*]}{.containerPort},{end}{end}|",
                "80,443,|",
            ),
            ("{.spec.containers[?(@.name<\"b\")].name}", "a"),
            ("{.spec.containers[0:2:1].name}", "a b"),
            ("{.foo}{.kind}", "Pod"),
            ("{.metadata.labels.*}", "web 1 y"),
            ("{.kind}}", "Pod}"),
            ("{\"a<b\"}", "a<b"),
            ("{.}", ""),
            ("{range .spec.containers[*]}{.name}", "ab"),
        ];
        for (t, want) in cases {
            assert_eq!(ok(t), want, "template {t}");
        }
    }

    #[test]
    fn errors_match_kubectl() {
        let msg = |t: &str| run(t).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg("{.spec.containers[5]}")
            .contains("Error executing template: array index out of bounds: index 5, length 2."));
        assert!(msg("{.spec.containers[3:1].name}")
            .contains("array index out of bounds: index 3, length 2"));
        assert_eq!(
            msg("{.metadata.name"),
            "error parsing jsonpath {.metadata.name, unclosed action"
        );
        assert!(msg("{.spec.containers[?(@.name==b)].name}").contains("unrecognized identifier b"));
        assert!(
            msg("{.spec.containers[?(@.ports[0].containerPort>=443.0)].name}")
                .contains("incompatible types for comparison")
        );
        assert!(msg("{.metadata[\"labels\"]}").contains("invalid array index \"\\\"labels\\\"\""));
        assert!(msg("{.spec.containers[0].name[0]}").contains("string is not array or slice"));
        assert!(msg("{end}").contains("not in range, nothing to end"));
    }

    #[test]
    fn go_json_escapes_html_characters() {
        let v = json!({"a": "<b>&"});
        let t = Template::parse("{.}").map(|_| ()).is_ok();
        assert!(t);
        assert_eq!(go_json(&v), r#"{"a":"\u003cb\u003e\u0026"}"#);
    }

    #[test]
    fn hostile_templates_are_errors_not_panics() {
        for t in [
            "{",
            "{[",
            "{[?(",
            "{[?(@.a==\"x)]}",
            "{..{..}}",
            "{....a}",
            "{'",
            "{\"\\",
            "{[1:2:3:4]}",
            "{[-]}",
            "{[99999999999999999999]}",
            "{é}",
            "{.a\\",
            "{[?()]}",
            "{range}{range}",
            "{\u{0}}",
            "{[,]}",
            "{[a,b,,]}",
        ] {
            let _ = run(t);
        }
        let deep = "{range .a}".repeat(100);
        assert!(Template::parse(&deep).is_err());
    }
}
