//! YAML documents read the way kubectl reads them, into JSON.
//!
//! kubectl (`k8s.io/apimachinery/pkg/util/yaml`, `YAMLOrJSONDecoder`) splits a YAML stream at
//! lines that start with `---` and converts each piece to JSON with sigs.k8s.io/yaml, which
//! decodes with go-yaml v2 (YAML 1.1). Here the pieces are split by the same rule and parsed
//! with `saphyr-parser` (a maintained, pure-Rust YAML parser; events only, so every decision
//! about a scalar's meaning is ours); scalars are resolved by go-yaml v2's rules
//! ([`super::resolve`]) and the tree is converted to JSON as sigs.k8s.io/yaml's
//! `convertToJSONableObject` does (non-string keys become strings, last duplicate key wins,
//! `<<` merges with go-yaml v2's order). The tree keeps each node's position, so a decoding
//! error on a field can say where the value was written and what it was.
//!
//! Bounds (with [`super::bounds`]): nesting deeper than [`MAX_DEPTH`] is refused, and aliases
//! are counted as they are met against a budget of expanded nodes and scalar bytes, without
//! ever expanding them before the budget allows it.

use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::Value;

use super::bounds;
use super::resolve::{self, Scalar};

/// Deepest nesting (collections within collections) a document may have. kubectl has no
/// such limit, but no object of the API comes near it (a Pod is about 12 deep).
pub const MAX_DEPTH: usize = 128;

/// One YAML node with where it was written.
#[derive(Debug)]
pub struct Node {
    pub value: NodeValue,
    /// 1-based line and column in the file.
    pub line: usize,
    pub column: usize,
    /// A plain scalar that resolved to something other than a string: its text (`yes`,
    /// `0644`), for messages that say what to write instead.
    pub plain: Option<Box<str>>,
    /// Nodes and scalar bytes this node stands for, aliases expanded.
    weight: (u64, u64),
    /// A plain `<<` (or `!!merge <<`): go-yaml's merge key (`isMerge`).
    merge_key: bool,
}

#[derive(Debug)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Rc<Node>>),
    /// Keys as JSON will have them; in order of first appearance, values last-wins.
    Map(Vec<(String, Rc<Node>)>),
}

/// A document, or where it went wrong.
pub struct Document {
    /// 1-based, counting the pieces between `---` lines that hold a document.
    pub index: usize,
    /// The file line where the piece starts (for messages about the whole document).
    pub line: usize,
    pub root: Rc<Node>,
}

/// Why a piece could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad YAML (or a construct kubectl refuses) at this 1-based position.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Aliases expand past the budget in this document (1-based): nodes, or scalar bytes.
    Aliasing { document: usize, bytes: bool },
}

/// Budgets shared by all documents of a manifest (see [`bounds`]).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub nodes: u64,
    pub bytes: u64,
}

impl Budget {
    /// The budget of a manifest `text` whose scan found `scan`.
    pub fn for_text(text: &str, scan: &bounds::Scan) -> Self {
        let text_bytes = u64::try_from(text.len()).unwrap_or(u64::MAX);
        Budget {
            nodes: bounds::walk_budget(scan),
            bytes: text_bytes
                .saturating_mul(bounds::SCALAR_BYTES_RATIO)
                .saturating_add(bounds::SCALAR_BYTES_SLACK),
        }
    }
}

/// The pieces of a YAML stream as kubectl's `YAMLReader` cuts them: a line starting with
/// `---` ends a piece; after the `---` only blanks or a comment may follow ("invalid Yaml
/// document separator" otherwise). Returns (1-based first line, text) per piece.
pub fn split(text: &str) -> Result<Vec<(usize, &str)>, Error> {
    let mut pieces = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(rest) = line.strip_prefix("---") {
            let trimmed = rest.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                return Err(Error::Syntax {
                    line: n + 1,
                    column: 4,
                    message: format!("invalid Yaml document separator: {trimmed}"),
                });
            }
            pieces.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = n + 2;
        }
        offset += line.len();
    }
    pieces.push((start_line, &text[start..]));
    Ok(pieces)
}

/// Reads every document of `text` (a YAML stream), calling `each` with the document or the
/// error of its piece; a piece that holds no document (comments, blank) is skipped. Stops at
/// the first alias budget overrun.
pub fn documents(
    text: &str,
    budget: &mut Budget,
    mut each: impl FnMut(Result<Document, Error>),
) -> Result<(), Error> {
    let pieces = split(text)?;
    // Documents are numbered as a reader counts them: pieces with nothing in them (before a
    // leading `---`, comments only) are not documents.
    let mut index = 0;
    for (line, piece) in pieces {
        match read_piece(piece, line, budget) {
            Ok(Some(root)) => {
                index += 1;
                each(Ok(Document { index, line, root }))
            }
            Ok(None) => {}
            Err(Overrun(bytes)) => {
                return Err(Error::Aliasing {
                    document: index + 1,
                    bytes,
                })
            }
            Err(Failed(e) | Scan { error: e, .. }) => {
                index += 1;
                each(Err(e))
            }
        }
    }
    Ok(())
}

enum PieceError {
    Failed(Error),
    /// The parser's own error, at this character index of the piece.
    Scan {
        index: usize,
        error: Error,
    },
    /// The alias budget ran out (bytes, else nodes).
    Overrun(bool),
}
use PieceError::{Failed, Overrun, Scan};

/// Most rewrites of one piece for libyaml's leniencies (see [`read_piece`]).
const MAX_COMPAT_PATCHES: usize = 64;

/// Parses the first document of one piece, as go-yaml (a libyaml port, YAML 1.1) would.
/// saphyr-parser follows YAML 1.2, which differs from libyaml where manifests meet it:
/// libyaml takes a tab after `:` as a separator (saphyr refuses `key:\tvalue`), a tab in a
/// quoted scalar's continuation indentation, a `#` comment right after a quoted scalar or a
/// flow collection, and the escape `\'`, and refuses the escape `\/`. The first ones are
/// rewritten (a tab becomes a space, a space goes before the `#`, `\'` becomes `\x27`: the
/// same content to the parser) and the piece parsed again, at most [`MAX_COMPAT_PATCHES`]
/// times; a `\/` is refused as go-yaml refuses it. (Tabs libyaml refuses are refused by
/// `bounds::scan` before any of this.) Found by running both on the same texts.
fn read_piece(
    text: &str,
    first_line: usize,
    budget: &mut Budget,
) -> Result<Option<Rc<Node>>, PieceError> {
    let mut patched: Option<String> = None;
    let check_slash = text.contains("\\/");
    for _ in 0..=MAX_COMPAT_PATCHES {
        let src = patched.as_deref().unwrap_or(text);
        let before = *budget;
        let mut starts = Vec::new();
        let result = parse_piece(src, first_line, budget, check_slash.then_some(&mut starts));
        match result {
            Err(Scan { index, error }) => {
                let Error::Syntax { message, .. } = &error else {
                    return Err(Failed(error));
                };
                let offset = byte_offset(src, index);
                let fixed = if message.ends_with("must be followed by a valid YAML whitespace") {
                    tab_to_space(src, offset)
                } else if message == "comments must be separated from other tokens by whitespace" {
                    space_before_comment(src, offset)
                } else if message == "tab cannot be used as indentation" {
                    // The scan refused the tabs libyaml refuses (block indentation); these
                    // are in quoted scalars or flow collections, where libyaml folds them.
                    leading_tabs_to_spaces(src, offset)
                } else if message.contains("unknown escape character") {
                    match quoted_escapes(src, offset) {
                        Escape::SingleQuote(at) => {
                            Some(format!("{}\\x27{}", &src[..at], &src[at + 2..]))
                        }
                        Escape::Unknown(at) => {
                            return Err(Failed(unknown_escape(src, at, first_line)))
                        }
                        Escape::None => None,
                    }
                } else {
                    None
                };
                match fixed {
                    Some(f) => {
                        *budget = before;
                        patched = Some(f);
                    }
                    None => return Err(Failed(error)),
                }
            }
            Ok(root) => {
                for start in starts {
                    if let Escape::Unknown(at) | Escape::SingleQuote(at) =
                        quoted_escapes(src, byte_offset(src, start))
                    {
                        // Only `\/` gets here: saphyr refused the rest.
                        return Err(Failed(unknown_escape(src, at, first_line)));
                    }
                }
                return Ok(root);
            }
            Err(other) => return Err(other),
        }
    }
    Err(Failed(Error::Syntax {
        line: first_line,
        column: 1,
        message: format!(
            "more than {MAX_COMPAT_PATCHES} places where YAML 1.1 and 1.2 differ in one document"
        ),
    }))
}

/// The byte offset of character `index` of `s`.
fn byte_offset(s: &str, index: usize) -> usize {
    if s.is_ascii() {
        return index.min(s.len());
    }
    s.char_indices().nth(index).map_or(s.len(), |(b, _)| b)
}

/// The blanks before `offset` made spaces, when they follow a `:` or `-` indicator.
fn tab_to_space(src: &str, offset: usize) -> Option<String> {
    let b = src.as_bytes();
    let mut start = offset.min(b.len());
    while start > 0 && matches!(b[start - 1], b' ' | b'\t') {
        start -= 1;
    }
    if start == 0 || !matches!(b[start - 1], b':' | b'-') || !b[start..offset].contains(&b'\t') {
        return None;
    }
    let mut out = String::with_capacity(src.len());
    out.push_str(&src[..start]);
    out.push_str(&src[start..offset].replace('\t', " "));
    out.push_str(&src[offset..]);
    Some(out)
}

/// A space before the `#` at or after `offset` on its line (libyaml starts a comment right
/// after a quoted scalar or a flow collection; YAML 1.2 wants a blank first).
fn space_before_comment(src: &str, offset: usize) -> Option<String> {
    let rest = src.get(offset..)?;
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let hash = offset + rest[..line_end].find('#')?;
    Some(format!("{} {}", &src[..hash], &src[hash..]))
}

/// The tabs in the indentation of the line holding `offset` made spaces.
fn leading_tabs_to_spaces(src: &str, offset: usize) -> Option<String> {
    let start = src[..offset.min(src.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let indent_len = src[start..]
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count();
    let indent = &src[start..start + indent_len];
    if !indent.contains('\t') {
        return None;
    }
    Some(format!(
        "{}{}{}",
        &src[..start],
        indent.replace('\t', " "),
        &src[start + indent_len..]
    ))
}

/// What the escapes of the double-quoted scalar starting at byte `start` hold, by libyaml's
/// table (go-yaml scannerc.go): the first `\'` (libyaml only) or unknown escape.
enum Escape {
    None,
    SingleQuote(usize),
    Unknown(usize),
}

fn quoted_escapes(src: &str, start: usize) -> Escape {
    let b = src.as_bytes();
    if b.get(start) != Some(&b'"') {
        return Escape::None;
    }
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Escape::None,
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'\'') => return Escape::SingleQuote(i),
                    Some(
                        b'0' | b'a' | b'b' | b't' | b'\t' | b'n' | b'v' | b'f' | b'r' | b'e' | b' '
                        | b'"' | b'\\' | b'N' | b'_' | b'L' | b'P' | b'x' | b'u' | b'U' | b'\n'
                        | b'\r',
                    ) => {}
                    _ => return Escape::Unknown(i),
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Escape::None
}

/// go-yaml's error for an escape it does not know, at byte `at` of the piece.
fn unknown_escape(src: &str, at: usize, first_line: usize) -> Error {
    let before = &src[..at];
    let line = first_line + before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Error::Syntax {
        line,
        column,
        message: "found unknown escape char while parsing a quoted scalar".into(),
    }
}

/// A collection being built.
enum Open {
    Seq {
        items: Vec<Rc<Node>>,
        anchor: usize,
        span: Span,
        weight: (u64, u64),
    },
    Map {
        entries: Vec<(String, Rc<Node>)>,
        key: Option<Rc<Node>>,
        anchor: usize,
        span: Span,
        weight: (u64, u64),
    },
}

/// Parses the first document of one piece (go-yaml's `Unmarshal` reads only the first).
fn parse_piece(
    text: &str,
    first_line: usize,
    budget: &mut Budget,
    mut double_quoted: Option<&mut Vec<usize>>,
) -> Result<Option<Rc<Node>>, PieceError> {
    let at = |line: usize, col: usize| (first_line + line.saturating_sub(1), col + 1);
    let syntax = |line: usize, col: usize, message: String| {
        let (line, column) = at(line, col);
        Failed(Error::Syntax {
            line,
            column,
            message,
        })
    };
    let mut parser = Parser::new_from_str(text);
    // Anchors by id: saphyr numbers them from 1; a node is registered once complete, so an
    // alias inside its own anchor's node finds nothing (go-yaml: "contains itself").
    let mut anchors: Vec<Option<Rc<Node>>> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut in_document = false;
    loop {
        let (event, span) = match parser.next_event() {
            None => return Ok(None),
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let (line, column) = at(e.marker().line(), e.marker().col());
                return Err(Scan {
                    index: e.marker().index(),
                    error: Error::Syntax {
                        line,
                        column,
                        message: e.info().to_string(),
                    },
                });
            }
        };
        let node = match event {
            Event::StreamStart | Event::Nothing => continue,
            Event::StreamEnd | Event::DocumentEnd => return Ok(None),
            Event::DocumentStart(_) => {
                in_document = true;
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                // go-yaml ignores tags on collections.
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        format!("recursion limit exceeded: nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                spend(budget, 1, 0)?;
                let weight = (1, 0);
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq {
                        items: Vec::new(),
                        anchor,
                        span,
                        weight,
                    }
                } else {
                    Open::Map {
                        entries: Vec::new(),
                        key: None,
                        anchor,
                        span,
                        weight,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        "unbalanced collection end".into(),
                    ));
                };
                let (value, anchor, start, weight) = match open {
                    Open::Seq {
                        items,
                        anchor,
                        span,
                        weight,
                    } => (NodeValue::Seq(items), anchor, span.start, weight),
                    Open::Map {
                        entries,
                        anchor,
                        span,
                        weight,
                        ..
                    } => (NodeValue::Map(entries), anchor, span.start, weight),
                };
                let (line, column) = at(start.line(), start.col());
                let node = Rc::new(Node {
                    value,
                    line,
                    column,
                    plain: None,
                    weight,
                    merge_key: false,
                });
                register(&mut anchors, anchor, &node);
                node
            }
            Event::Alias(id) => {
                let Some(Some(target)) = anchors.get(id) else {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        "anchor value contains itself".into(),
                    ));
                };
                let target = Rc::clone(target);
                spend(budget, target.weight.0, target.weight.1)?;
                target
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(starts) = double_quoted.as_deref_mut() {
                    if style == ScalarStyle::DoubleQuoted {
                        starts.push(span.start.index());
                    }
                }
                let (line, column) = at(span.start.line(), span.start.col());
                let resolved = match &tag {
                    Some(tag) => {
                        let full = format!("{}{}", tag.handle, tag.suffix);
                        resolve::tagged(&full, &text)
                            .map_err(|m| syntax(span.start.line(), span.start.col(), m))?
                    }
                    None if style == ScalarStyle::Plain => (resolve::plain(&text), None),
                    None => (Scalar::Str, None),
                };
                let (scalar, replaced) = resolved;
                let plain = (style == ScalarStyle::Plain && scalar != Scalar::Str)
                    .then(|| Box::<str>::from(text.as_ref()));
                let merge_key = text == "<<"
                    && match &tag {
                        None => style == ScalarStyle::Plain,
                        Some(t) => t.handle == resolve::CORE_TAG_PREFIX && t.suffix == "merge",
                    };
                let value = match scalar {
                    Scalar::Null => NodeValue::Null,
                    Scalar::Bool(b) => NodeValue::Bool(b),
                    Scalar::Int(i) => NodeValue::Int(i),
                    Scalar::Uint(u) => NodeValue::Uint(u),
                    Scalar::Float(f) => NodeValue::Float(f),
                    Scalar::Str => NodeValue::Str(replaced.unwrap_or_else(|| text.into_owned())),
                };
                let bytes = match &value {
                    NodeValue::Str(s) => u64::try_from(s.len()).unwrap_or(u64::MAX),
                    _ => 0,
                };
                spend(budget, 1, bytes)?;
                let node = Rc::new(Node {
                    value,
                    line,
                    column,
                    plain,
                    weight: (1, bytes),
                    merge_key,
                });
                register(&mut anchors, anchor, &node);
                node
            }
        };
        // A complete node: the document's root, or a child of the open collection.
        match stack.last_mut() {
            None => {
                if !in_document {
                    return Err(syntax(
                        span.start.line(),
                        span.start.col(),
                        "node outside a document".into(),
                    ));
                }
                return Ok(Some(node));
            }
            Some(Open::Seq { items, weight, .. }) => {
                add_weight(weight, &node);
                items.push(node);
            }
            Some(Open::Map {
                entries,
                key,
                weight,
                ..
            }) => {
                add_weight(weight, &node);
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => insert(entries, &k, node).map_err(|m| {
                        let (line, column) = (k.line, k.column);
                        Failed(Error::Syntax {
                            line,
                            column,
                            message: m,
                        })
                    })?,
                }
            }
        }
    }
}

fn register(anchors: &mut Vec<Option<Rc<Node>>>, anchor: usize, node: &Rc<Node>) {
    if anchor == 0 {
        return;
    }
    if anchors.len() <= anchor {
        anchors.resize(anchor + 1, None);
    }
    anchors[anchor] = Some(Rc::clone(node));
}

fn add_weight(weight: &mut (u64, u64), node: &Node) {
    weight.0 = weight.0.saturating_add(node.weight.0);
    weight.1 = weight.1.saturating_add(node.weight.1);
}

fn spend(budget: &mut Budget, nodes: u64, bytes: u64) -> Result<(), PieceError> {
    match budget.nodes.checked_sub(nodes) {
        Some(rest) => budget.nodes = rest,
        None => return Err(Overrun(false)),
    }
    match budget.bytes.checked_sub(bytes) {
        Some(rest) => budget.bytes = rest,
        None => return Err(Overrun(true)),
    }
    Ok(())
}

/// Adds `key: value` to a mapping as go-yaml v2 + sigs.k8s.io/yaml do: `<<` merges (go-yaml
/// v2's order: whatever comes later wins, merged or not), other keys become JSON strings,
/// a repeated key replaces the earlier value.
fn insert(
    entries: &mut Vec<(String, Rc<Node>)>,
    key: &Node,
    value: Rc<Node>,
) -> Result<(), String> {
    if key.merge_key {
        return merge(entries, &value);
    }
    let name = key_string(key)?;
    set(entries, name, value);
    Ok(())
}

fn set(entries: &mut Vec<(String, Rc<Node>)>, name: String, value: Rc<Node>) {
    match entries.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => entries.push((name, value)),
    }
}

fn merge(entries: &mut Vec<(String, Rc<Node>)>, value: &Node) -> Result<(), String> {
    const WANT: &str = "map merge requires map or sequence of maps as the value";
    match &value.value {
        NodeValue::Map(from) => {
            for (k, v) in from {
                set(entries, k.clone(), Rc::clone(v));
            }
            Ok(())
        }
        NodeValue::Seq(items) => {
            // Earlier maps take precedence: applied last.
            for item in items.iter().rev() {
                let NodeValue::Map(from) = &item.value else {
                    return Err(WANT.into());
                };
                for (k, v) in from {
                    set(entries, k.clone(), Rc::clone(v));
                }
            }
            Ok(())
        }
        _ => Err(WANT.into()),
    }
}

/// A key as JSON has it (sigs.k8s.io/yaml `convertToJSONableObject`).
fn key_string(key: &Node) -> Result<String, String> {
    Ok(match &key.value {
        NodeValue::Str(s) => s.clone(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Float(f) => go_format_float32_g(*f),
        NodeValue::Uint(u) => {
            return Err(format!("unsupported map key of type: uint64, key: 0x{u:x}"))
        }
        NodeValue::Null => return Err("unsupported map key of type: null".into()),
        NodeValue::Seq(_) | NodeValue::Map(_) => {
            return Err("invalid map key: a key must be a scalar".into())
        }
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)` with go-yaml's names for the specials.
fn go_format_float32_g(f: f64) -> String {
    // As a float32: 1e39 is +Inf there.
    let f32v = f as f32;
    if f32v.is_nan() {
        return ".nan".into();
    }
    if f32v.is_infinite() {
        return if f32v > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f32v == 0.0 {
        return if f32v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest digits of the float32 and its decimal exponent, from Rust's `{:e}`.
    let e = format!("{f32v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // %e when the exponent is < -4 or >= 6 (shortest precision uses 6 for this).
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{es}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let body = if exp >= 0 {
        if n > exp + 1 {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        } else {
            format!("{digits}{}", "0".repeat((exp + 1 - n) as usize))
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    format!("{sign}{body}")
}

/// The JSON of a document, as sigs.k8s.io/yaml's `YAMLToJSON` gives it to kubectl. Floats
/// are JSON numbers as Go's encoder writes them: an integral float below 1e21 is written
/// without a fraction (`1e3` → `1000`), so it is an integer to the API server, and is one
/// here. Infinity and NaN have no JSON form (an error, as in Go).
pub fn to_json(node: &Node) -> Result<Value, String> {
    Ok(match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i) => Value::from(*i),
        NodeValue::Uint(u) => Value::from(*u),
        NodeValue::Float(f) => float_json(*f)?,
        NodeValue::Str(s) => Value::String(s.clone()),
        NodeValue::Seq(items) => {
            Value::Array(items.iter().map(|n| to_json(n)).collect::<Result<_, _>>()?)
        }
        NodeValue::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                m.insert(k.clone(), to_json(v)?);
            }
            Value::Object(m)
        }
    })
}

fn float_json(f: f64) -> Result<Value, String> {
    if !f.is_finite() {
        let name = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(format!("json: unsupported value: {name}"));
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Ok(Value::from(f as i64));
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Ok(Value::from(f as u64));
        }
    }
    Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
}

/// The node at a decoding error's path (`spec`, `containers`, `0`, …), if the path leads
/// through the tree.
pub fn lookup<'a>(root: &'a Node, path: &[PathSegment<'_>]) -> Option<&'a Node> {
    let mut node = root;
    for seg in path {
        node = match (seg, &node.value) {
            (PathSegment::Key(k), NodeValue::Map(entries)) => {
                &entries.iter().find(|(name, _)| name == k)?.1
            }
            (PathSegment::Index(i), NodeValue::Seq(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy)]
pub enum PathSegment<'a> {
    Key(&'a str),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn big_budget() -> Budget {
        Budget {
            nodes: u64::MAX,
            bytes: u64::MAX,
        }
    }

    /// Every document's JSON, or the first error.
    fn read(text: &str) -> Result<Vec<Value>, Error> {
        read_with(text, &mut big_budget())
    }

    fn read_with(text: &str, budget: &mut Budget) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        let mut first_err = None;
        documents(text, budget, |d| match d {
            Ok(d) => out.push(to_json(&d.root).unwrap_or_else(|e| json!(e))),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        })?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn one(text: &str) -> Value {
        read(text)
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| panic!("no document in {text:?}"))
    }

    #[test]
    fn documents_split_like_kubectls_yaml_reader() {
        // k8s.io/apimachinery/pkg/util/yaml YAMLReader: a line starting with `---`, then
        // only blanks or a comment.
        assert_eq!(
            read("a: 1\n---\nb: 2\n--- # c\n\n---   \nc: 3").ok(),
            Some(vec![json!({"a": 1}), json!({"b": 2}), json!({"c": 3})])
        );
        assert!(matches!(
            read("a: 1\n--- b: 2\n"),
            Err(Error::Syntax { line: 2, ref message, .. }) if message == "invalid Yaml document separator: b: 2"
        ));
        // An indented `---` is content, not a separator.
        assert_eq!(one("a: |\n  x\n  ---\n  y\n"), json!({"a": "x\n---\ny\n"}));
        // Positions count from the file's first line.
        assert!(matches!(
            read("a: 1\n---\nb: [\n"),
            Err(Error::Syntax { line: 4, .. })
        ));
        // Each piece's first document only (go-yaml's Unmarshal).
        assert_eq!(read("a: 1\n...\nb: 2\n").ok(), Some(vec![json!({"a": 1})]));
    }

    #[test]
    fn keys_become_strings_as_sigs_k8s_io_yaml_converts_them() {
        assert_eq!(
            one("{yes: 1, 1: 2, 1.5: 3, 0x10: 4, 1e3: 5, -0b11: 6, 1e6: 7, 0.00001: 8, n: 9}"),
            json!({"true": 1, "1": 2, "1.5": 3, "16": 4, "1000": 5, "-3": 6, "1e+06": 7, "1e-05": 8, "false": 9})
        );
        for bad in ["~: 1\n", "? [a]\n: 1\n", "18446744073709551615: 1\n"] {
            assert!(matches!(read(bad), Err(Error::Syntax { .. })), "{bad}");
        }
    }

    #[test]
    fn values_are_json_as_go_writes_them() {
        // Integral floats are integers in Go's JSON (`1e3` → 1000); the rest stay floats.
        assert_eq!(
            one("[1e3, 80.0, 0.5, 1e21, -0.0, 18446744073709551615, 2001-12-14, '0644', 0644]"),
            json!([
                1000,
                80,
                0.5,
                1e21,
                0,
                18446744073709551615u64,
                "2001-12-14",
                "0644",
                420
            ])
        );
        assert_eq!(to_json(&read_node("a: .inf\n")).ok(), None);
    }

    fn read_node(text: &str) -> Rc<Node> {
        let mut root = None;
        let _ = documents(text, &mut big_budget(), |d| {
            if let Ok(d) = d {
                root = Some(d.root);
            }
        });
        let Some(NodeValue::Map(entries)) = root.as_ref().map(|r| &r.value) else {
            panic!("not a map: {text}")
        };
        Rc::clone(&entries[0].1)
    }

    #[test]
    fn merge_keys_in_go_yaml_v2_order() {
        // Later wins, merged or not (go-yaml v2's decoder applies pairs in order).
        assert_eq!(
            one("a: 1\n<<: {a: 2, b: 3}\nb: 4\n"),
            json!({"a": 2, "b": 4})
        );
        // In a list of maps, earlier maps win.
        assert_eq!(
            one("x: &x {a: 1}\nz:\n  <<: [*x, {a: 5, c: 6}]\n"),
            json!({"x": {"a": 1}, "z": {"a": 1, "c": 6}})
        );
        // Quoted `<<` is an ordinary key.
        assert_eq!(one("\"<<\": {a: 1}\n"), json!({"<<": {"a": 1}}));
        assert!(
            matches!(read("<<: 1\n"), Err(Error::Syntax { ref message, .. }) if message.contains("map merge requires"))
        );
    }

    #[test]
    fn anchors_aliases_and_tags() {
        assert_eq!(
            one("a: &x [1, 2]\nb: *x\nc: !!str 3\nd: !custom 4\ne: !!binary aGVsbG8=\nf: !!float 3\n"),
            json!({"a": [1, 2], "b": [1, 2], "c": "3", "d": "4", "e": "hello", "f": 3})
        );
        assert!(matches!(read("a: &x [1, *x]\n"), Err(Error::Syntax { .. })));
        assert!(matches!(read("a: *nowhere\n"), Err(Error::Syntax { .. })));
        assert!(matches!(
            read("a: !!int abc\n"),
            Err(Error::Syntax { ref message, .. }) if message == "cannot decode !!str `abc` as a !!int"
        ));
    }

    #[test]
    fn positions_and_source_text_for_messages() {
        let node = read_node("a:\n  - x\n  - yes\n");
        let NodeValue::Seq(items) = &node.value else {
            panic!()
        };
        assert_eq!((items[1].line, items[1].column), (3, 5));
        assert_eq!(items[1].plain.as_deref(), Some("yes"));
        assert_eq!(items[0].plain, None);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep: String = (0..MAX_DEPTH + 1)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        assert!(
            matches!(read(&deep), Err(Error::Syntax { ref message, .. }) if message.contains("recursion limit exceeded"))
        );
        let ok: String = (0..MAX_DEPTH - 1)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        assert!(read(&ok).is_ok());
    }

    #[test]
    fn issue7_item4_aliases_are_charged_against_the_budget() {
        let nodes = |n| Budget {
            nodes: n,
            bytes: u64::MAX,
        };
        // map, a, [1, 2] (3), b, *x (3 more) = 9 nodes.
        assert!(read_with("a: &x [1, 2]\nb: *x\n", &mut nodes(9)).is_ok());
        assert_eq!(
            read_with("a: &x [1, 2]\nb: *x\n", &mut nodes(8)),
            Err(Error::Aliasing {
                document: 1,
                bytes: false
            })
        );
        // The budget is the manifest's: a later document runs out.
        assert_eq!(
            read_with("a: 1\n---\nb: !t [1, 2]\n", &mut nodes(5)),
            Err(Error::Aliasing {
                document: 2,
                bytes: false
            })
        );
        // One 1 KiB anchor aliased 100 times: few nodes, 100 KiB of copies.
        let big = "x".repeat(1024);
        let aliases = vec!["*s"; 100].join(", ");
        let text = format!("a: &s \"{big}\"\nb: [{aliases}]\n");
        let bytes = |b| Budget {
            nodes: 1_000,
            bytes: b,
        };
        assert!(read_with(&text, &mut bytes(200 * 1024)).is_ok());
        assert_eq!(
            read_with(&text, &mut bytes(50 * 1024)),
            Err(Error::Aliasing {
                document: 1,
                bytes: true
            })
        );
    }

    #[test]
    fn float_keys_format_like_go() {
        for (f, s) in [
            (1.5, "1.5"),
            (1000.0, "1000"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e39, ".inf"),
            (-1e39, "-.inf"),
        ] {
            assert_eq!(go_format_float32_g(f), s, "{f}");
        }
    }
}
