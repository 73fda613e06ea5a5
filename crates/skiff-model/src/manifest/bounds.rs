//! Bounds on what a manifest may cost to decode, checked before the YAML decoder builds
//! anything (issue 7 item 4).
//!
//! Two attacks on a YAML decoder cost far more than the bytes they take:
//!
//! * **Deep flow nesting** (`[[[[…` or the JSON `{"a":{"a":…`). libyaml (under
//!   `serde_yaml_ng`) parses a whole document into events before the decoder's own recursion
//!   limit (128) is consulted, and its scanner re-checks every open flow level on every token:
//!   quadratic, 20 s for a 400 KB chain. [`scan`] walks the text once, as libyaml's scanner
//!   tokenises it (same indicators, quoting, comments, block scalars and indentation), and
//!   refuses a flow depth over [`MAX_FLOW_DEPTH`] before libyaml sees the text. Block nesting
//!   costs libyaml linear time and is left to the decoder's limit.
//! * **Alias expansion** ("billion laughs"): `*a` replays the anchored node, so a few KB can
//!   stand for billions of nodes. go-yaml v3 (under sigs.k8s.io/yaml, so kubectl) refuses a
//!   document whose nodes reached through aliases exceed a ratio of all nodes decoded: 99% up
//!   to 400 000 nodes ("document contains excessive aliasing", `allowedAliasRatio` in
//!   decode.go). Here [`walk_budget`] gives a document the nodes it writes out (estimated from
//!   [`scan`]'s token count, an over-estimate) plus at most 99 times as many through aliases,
//!   never more than [`MAX_ALIAS_NODES`] extra; [`count_nodes`] then walks the expanded
//!   documents without building anything and stops at the budget. Only documents with an
//!   alias (a `*` token) are walked. Nodes are not all alike here: go-yaml's strings share
//!   their bytes, the decoder's do not (each alias of a scalar becomes a new `String`), so the
//!   walk also counts the scalar bytes it reaches against [`SCALAR_BYTES_RATIO`] times the
//!   text plus [`SCALAR_BYTES_SLACK`]: one 2 MiB anchor aliased 300 000 times is refused
//!   instead of asking for 600 GB.
//!
//! The scanner is deliberately on the side of over-counting: where it could not tell how
//! libyaml reads a byte, it counts an opening bracket rather than skip one, so a valid
//! manifest is refused only with hundreds of unclosed brackets in its text.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// Deepest flow-collection nesting accepted (`[` / `{`). The decoder refuses more than 128
/// levels of any nesting anyway; the margin is for brackets the scanner over-counts.
pub const MAX_FLOW_DEPTH: usize = 256;
/// Most nodes that aliases may add to a manifest, whatever its size (go-yaml's threshold
/// below which it allows 99% aliasing).
pub const MAX_ALIAS_NODES: u64 = 400_000;
/// Nodes reachable through aliases per node written out, below [`MAX_ALIAS_NODES`].
pub const ALIAS_RATIO: u64 = 99;
/// Scalar bytes the expanded documents may hold per byte of text (see the module docs).
pub const SCALAR_BYTES_RATIO: u64 = 8;
/// Scalar bytes every manifest may reach through aliases whatever its size.
pub const SCALAR_BYTES_SLACK: u64 = 4 * 1024 * 1024;

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Tokens that make or may make a node (scalars, collection starts, entries, keys,
    /// values): about the number of nodes written out (a flow mapping's implicit null
    /// values, `{a, b}`, are not counted).
    pub nodes: u64,
    /// Alias tokens (`*name`).
    pub aliases: u64,
}

/// Largest document (object) accepted, in bytes: kube-apiserver's request body limit
/// ("Request entity too large: limit is 3145728"). A document is decoded whole, at up to
/// about a hundred times its size in memory, so this bounds the decoder's peak; the manifest
/// may hold several.
pub const MAX_DOCUMENT_BYTES: usize = 3 * 1024 * 1024;

/// Why [`scan`] refused the text; lines and columns are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The flow nesting went past [`MAX_FLOW_DEPTH`] here.
    TooDeep { line: usize, column: usize },
    /// The document starting at this line has more than [`MAX_DOCUMENT_BYTES`].
    DocumentTooLarge { line: usize, size: usize },
}

/// Expanded-node budget for a manifest whose scan found `s`.
pub fn walk_budget(s: &Scan) -> u64 {
    s.nodes + s.nodes.saturating_mul(ALIAS_RATIO).min(MAX_ALIAS_NODES)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// 0-based line and column (in characters) of `i`.
    line: usize,
    col: usize,
    flow: usize,
    /// Block indentation columns (libyaml's `indents` plus `indent` on top).
    indents: Vec<usize>,
    simple_key_allowed: bool,
    /// A possible simple key: (line, column, byte offset).
    simple_key: Option<(usize, usize, usize)>,
    /// Byte offset and 0-based line where the current document starts.
    doc_start: (usize, usize),
    out: Scan,
}

/// Tokenises `text` as libyaml's scanner does, far enough to know the flow depth, and counts
/// node and alias tokens.
pub fn scan(text: &str) -> Result<Scan, Refused> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        line: 0,
        col: 0,
        flow: 0,
        indents: Vec::new(),
        simple_key_allowed: true,
        simple_key: None,
        doc_start: (0, 0),
        out: Scan {
            nodes: 0,
            aliases: 0,
        },
    };
    if text.starts_with('\u{feff}') {
        s.i = 3;
    }
    s.run()?;
    Ok(s.out)
}

impl Scanner<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Length of the line break at `i + k` (LF, CR, CRLF, NEL, LS, PS), 0 if none.
    fn break_len(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\n', _, _) | (b'\r', _, _) => 1,
            (0xc2, 0x85, _) => 2,
            (0xe2, 0x80, 0xa8) | (0xe2, 0x80, 0xa9) => 3,
            _ => 0,
        }
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// Blank, line break or end of input.
    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.break_len(k) > 0 || self.i + k >= self.b.len()
    }

    /// Consumes one character, or one line break.
    fn bump(&mut self) {
        let n = self.break_len(0);
        if n > 0 {
            self.i += n;
            self.line += 1;
            self.col = 0;
            return;
        }
        self.i += 1;
        // Continuation bytes of a UTF-8 character take no column.
        while self.i < self.b.len() && (self.b[self.i] & 0xc0) == 0x80 {
            self.i += 1;
        }
        self.col += 1;
    }

    fn indent(&self) -> isize {
        self.indents.last().map_or(-1, |&c| c as isize)
    }

    fn roll_indent(&mut self, col: usize) {
        if self.flow == 0 && self.indent() < col as isize {
            self.indents.push(col);
        }
    }

    fn document_indicator(&self) -> bool {
        self.col == 0
            && (self.b[self.i..].starts_with(b"---") || self.b[self.i..].starts_with(b"..."))
            && self.is_blankz(3)
    }

    fn save_simple_key(&mut self) {
        if self.simple_key_allowed {
            self.simple_key = Some((self.line, self.col, self.i));
        }
    }

    fn run(&mut self) -> Result<(), Refused> {
        loop {
            self.skip_to_token();
            if self.eof() {
                return self.end_document();
            }
            // libyaml: a simple key must be on one line and at most 1024 characters long.
            if let Some((l, _, at)) = self.simple_key {
                if l != self.line || at + 1024 < self.i {
                    self.simple_key = None;
                }
            }
            if self.flow == 0 {
                while self.indent() > self.col as isize {
                    self.indents.pop();
                }
            }
            let c = self.at(0);
            if self.col == 0 && c == b'%' {
                self.skip_line();
                continue;
            }
            if self.document_indicator() {
                self.end_document()?;
                self.doc_start = (self.i, self.line);
                self.indents.clear();
                self.simple_key = None;
                self.simple_key_allowed = false;
                self.i += 3;
                self.col += 3;
                continue;
            }
            match c {
                b'[' | b'{' => {
                    self.save_simple_key();
                    self.flow += 1;
                    self.out.nodes += 1;
                    if self.flow > MAX_FLOW_DEPTH {
                        return Err(Refused::TooDeep {
                            line: self.line + 1,
                            column: self.col + 1,
                        });
                    }
                    self.simple_key_allowed = true;
                    self.bump();
                }
                b']' | b'}' => {
                    self.simple_key = None;
                    self.flow = self.flow.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.bump();
                }
                b',' => {
                    self.simple_key = None;
                    self.simple_key_allowed = true;
                    self.bump();
                }
                b'-' if self.is_blankz(1) => {
                    self.roll_indent(self.col);
                    self.simple_key = None;
                    self.simple_key_allowed = true;
                    self.out.nodes += 1;
                    self.bump();
                }
                b'?' if self.flow > 0 || self.is_blankz(1) => {
                    self.roll_indent(self.col);
                    self.simple_key = None;
                    self.simple_key_allowed = self.flow == 0;
                    self.out.nodes += 1;
                    self.bump();
                }
                b':' if self.flow > 0 || self.is_blankz(1) => {
                    if let Some((_, col, _)) = self.simple_key.take() {
                        self.roll_indent(col);
                        self.simple_key_allowed = false;
                    } else {
                        self.roll_indent(self.col);
                        self.simple_key_allowed = self.flow == 0;
                    }
                    self.out.nodes += 1;
                    self.bump();
                }
                b'*' | b'&' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    if c == b'*' {
                        self.out.aliases += 1;
                    }
                    self.bump();
                    while !self.is_blankz(0)
                        && !matches!(self.at(0), b',' | b'[' | b']' | b'{' | b'}')
                    {
                        self.bump();
                    }
                }
                b'!' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.bump();
                    if self.at(0) == b'<' {
                        while !self.eof() && self.at(0) != b'>' && self.break_len(0) == 0 {
                            self.bump();
                        }
                    }
                    while !self.is_blankz(0)
                        && !matches!(self.at(0), b',' | b'[' | b']' | b'{' | b'}')
                    {
                        self.bump();
                    }
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.simple_key = None;
                    self.simple_key_allowed = true;
                    self.out.nodes += 1;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.out.nodes += 1;
                    self.quoted(c);
                }
                _ => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.out.nodes += 1;
                    if self.plain() {
                        self.simple_key_allowed = true;
                    }
                }
            }
        }
    }

    fn end_document(&self) -> Result<(), Refused> {
        let size = self.i - self.doc_start.0;
        if size > MAX_DOCUMENT_BYTES {
            return Err(Refused::DocumentTooLarge {
                line: self.doc_start.1 + 1,
                size,
            });
        }
        Ok(())
    }

    /// Blanks, comments and line breaks between tokens.
    fn skip_to_token(&mut self) {
        loop {
            while self.is_blank(0) {
                self.bump();
            }
            if self.at(0) == b'#' {
                while !self.eof() && self.break_len(0) == 0 {
                    self.bump();
                }
            }
            if self.break_len(0) > 0 {
                self.bump();
                if self.flow == 0 {
                    self.simple_key_allowed = true;
                }
                continue;
            }
            return;
        }
    }

    fn skip_line(&mut self) {
        while !self.eof() && self.break_len(0) == 0 {
            self.bump();
        }
    }

    /// A single- or double-quoted scalar, possibly over several lines.
    fn quoted(&mut self, q: u8) {
        self.bump();
        while !self.eof() {
            if self.document_indicator() {
                return; // libyaml stops with an error here
            }
            let c = self.at(0);
            if q == b'\'' && c == b'\'' {
                if self.at(1) == b'\'' {
                    self.bump();
                    self.bump();
                    continue;
                }
                self.bump();
                return;
            }
            if q == b'"' && c == b'\\' {
                self.bump();
                if !self.eof() {
                    self.bump();
                }
                continue;
            }
            if q == b'"' && c == b'"' {
                self.bump();
                return;
            }
            self.bump();
        }
    }

    /// A plain scalar (libyaml's `scan_plain_scalar`); true when it took a line break, which
    /// allows a simple key next.
    fn plain(&mut self) -> bool {
        let indent = self.indent() + 1;
        let mut took_break = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                return took_break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if self.flow > 0
                    && c == b':'
                    && matches!(self.at(1), b',' | b'?' | b'[' | b']' | b'{' | b'}')
                {
                    return took_break; // libyaml stops with an error here
                }
                if (c == b':' && self.is_blankz(1))
                    || (self.flow > 0 && matches!(c, b',' | b'[' | b']' | b'{' | b'}'))
                {
                    return took_break;
                }
                self.bump();
            }
            if !(self.is_blank(0) || self.break_len(0) > 0) {
                return took_break; // end of input
            }
            let mut broke = false;
            while self.is_blank(0) || self.break_len(0) > 0 {
                if self.break_len(0) > 0 {
                    broke = true;
                }
                self.bump();
            }
            took_break |= broke;
            if self.flow == 0 && (self.col as isize) < indent {
                return took_break;
            }
        }
    }

    /// A literal or folded block scalar (libyaml's `scan_block_scalar`).
    fn block_scalar(&mut self) {
        self.bump();
        let mut increment = 0usize;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.bump(),
                d @ b'1'..=b'9' => {
                    increment = usize::from(d - b'0');
                    self.bump();
                }
                _ => {}
            }
        }
        while self.is_blank(0) {
            self.bump();
        }
        if self.at(0) == b'#' {
            self.skip_line();
        }
        if self.break_len(0) > 0 {
            self.bump();
        }
        let parent = self.indent();
        let mut indent: usize = if increment > 0 {
            if parent >= 0 {
                parent as usize + increment
            } else {
                increment
            }
        } else {
            0
        };
        self.block_breaks(&mut indent, parent);
        while self.col == indent && !self.eof() {
            self.skip_line();
            if self.break_len(0) > 0 {
                self.bump();
            }
            self.block_breaks(&mut indent, parent);
        }
    }

    /// Leading spaces and empty lines of a block scalar; fixes the indentation if not yet
    /// known (`indent == 0`).
    fn block_breaks(&mut self, indent: &mut usize, parent: isize) {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || self.col < *indent) && self.at(0) == b' ' {
                self.bump();
            }
            max_indent = max_indent.max(self.col);
            if self.break_len(0) == 0 {
                break;
            }
            self.bump();
        }
        if *indent == 0 {
            let floor = usize::try_from(parent + 1).unwrap_or(0);
            *indent = max_indent.max(floor).max(1);
        }
    }
}

/// Which expansion budget a manifest went past, in which document (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excess {
    pub document: usize,
    /// The scalar bytes (else the node count).
    pub bytes: bool,
}

/// Walks every document of `text` as the decoder would expand it, building nothing, and
/// stops when more than `budget` nodes, or more scalar bytes than allowed, were reached.
/// Decoding errors are left to the real decoding, which reports them.
pub fn count_nodes(text: &str, budget: u64) -> Result<(), Excess> {
    let text_bytes = u64::try_from(text.len()).unwrap_or(u64::MAX);
    let bytes = text_bytes
        .saturating_mul(SCALAR_BYTES_RATIO)
        .saturating_add(SCALAR_BYTES_SLACK);
    count_nodes_with(text, budget, bytes)
}

/// [`count_nodes`] with an explicit scalar-byte budget.
fn count_nodes_with(text: &str, budget: u64, bytes: u64) -> Result<(), Excess> {
    let left = Cell::new(budget);
    let bytes_left = Cell::new(bytes);
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let walk = Walk {
            left: &left,
            bytes_left: &bytes_left,
        };
        if walk.deserialize(document).is_err() {
            if left.get() == 0 || bytes_left.get() == 0 {
                return Err(Excess {
                    document: i + 1,
                    bytes: bytes_left.get() == 0,
                });
            }
            return Ok(());
        }
    }
    Ok(())
}

/// A node visitor that only counts, against shared budgets of nodes and scalar bytes.
#[derive(Clone, Copy)]
struct Walk<'a> {
    left: &'a Cell<u64>,
    bytes_left: &'a Cell<u64>,
}

impl Walk<'_> {
    fn spend<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get() {
            0 => Err(E::custom("document contains excessive aliasing")),
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }

    /// A scalar of `len` bytes: one node, and its bytes (the decoder copies them per alias).
    fn spend_scalar<E: serde::de::Error>(&self, len: usize) -> Result<(), E> {
        self.spend()?;
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        match self.bytes_left.get().checked_sub(len) {
            Some(rest) => {
                self.bytes_left.set(rest);
                Ok(())
            }
            None => {
                self.bytes_left.set(0);
                Err(E::custom("document contains excessive aliasing"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! leaf {
    ($($f:ident: $t:ty),*) => {$(
        fn $f<E: serde::de::Error>(self, _: $t) -> Result<(), E> {
            self.spend()
        }
    )*};
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    leaf!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
          visit_u128: u128, visit_f64: f64);
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.spend_scalar(v.len())
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.spend_scalar(v.len())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.spend()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.spend()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend()?;
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend()?;
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`).
        self.spend()?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(s: &str) -> bool {
        scan(s).is_ok()
    }

    #[test]
    fn counts_flow_depth_as_libyaml_tokenises() {
        let deep = |n: usize| format!("a: {}1{}\n", "[".repeat(n), "]".repeat(n));
        assert!(depth_ok(&deep(MAX_FLOW_DEPTH)));
        assert_eq!(
            scan(&deep(MAX_FLOW_DEPTH + 1)),
            Err(Refused::TooDeep {
                line: 1,
                column: 4 + MAX_FLOW_DEPTH
            })
        );
        let json = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(depth_ok(&json(MAX_FLOW_DEPTH)));
        assert!(!depth_ok(&json(MAX_FLOW_DEPTH + 1)));
        // Brackets in scalars, comments and block scalars are text, not nesting.
        let text = "[".repeat(MAX_FLOW_DEPTH + 1);
        for doc in [
            format!("a: \"{text}\"\n"),
            format!("a: '{text}'\n"),
            format!("a: x{text}\n"),
            format!("a: 1 # {text}\n"),
            format!("a: |\n  {text}\n  more\nb: 1\n"),
            format!("- >-\n   {text}\n- 2\n"),
            format!("a: \"\\\"{text}\"\n"),
            format!("a: 'it''s {text}'\n"),
            format!("a: [\"{text}\", '{text}']\n"),
            format!("a: it's [\nb: \"{text}\"\n"),
        ] {
            assert!(depth_ok(&doc), "{doc}");
        }
    }

    #[test]
    fn nesting_hidden_behind_lookalikes_is_still_found() {
        let bomb = "[".repeat(MAX_FLOW_DEPTH + 1);
        for doc in [
            // The block scalar ends at the less indented key; the bomb is structure.
            format!("- key: |\n    'x\n  other: {bomb}\nc: '\n"),
            format!("a: |\n  \"x\nb: {bomb}\nc: \"\n"),
            // A quote inside a plain scalar does not open a quoted scalar.
            format!("a: it's\nb: {bomb}\nc: '\n"),
            // `#` not after a blank is not a comment.
            format!("a: x#{bomb}\nb: {bomb}\n"),
            // Inside flow collections, ']' in a quoted scalar closes nothing.
            format!("a: [{}]\n", "\"]\", [".repeat(MAX_FLOW_DEPTH + 1)),
        ] {
            assert!(!depth_ok(&doc), "{doc}");
        }
    }

    #[test]
    fn documents_over_3_mib_are_refused() {
        let big = format!("a: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES));
        // Exactly the limit, counting its `---` line.
        let fits = format!("a: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES - 4 - 6));
        assert!(scan(&format!("---\nb: 1\n---\n{fits}---\nc: 2\n")).is_ok());
        assert_eq!(
            scan(&format!("---\nb: 1\n---\n{big}---\nc: 2\n")),
            Err(Refused::DocumentTooLarge {
                line: 3,
                size: big.len() + 4
            })
        );
        assert!(matches!(
            scan(&big),
            Err(Refused::DocumentTooLarge { line: 1, .. })
        ));
    }

    #[test]
    fn the_walk_accepts_whatever_the_decoder_accepts() {
        // Otherwise a construct failing only the walk would end it early, and a bomb in a
        // later document would go unwalked.
        let docs = "a: !t 1\nb: !t {x: [1, 2]}\nc: !!binary aGVsbG8=\nd: ~\ne: .inf\nf: -.nan\n\
            g: 18446744073709551615\nh: -9223372036854775808\n\
            i: 0x1f\nj: !!str 3\n? [k, l]\n: m\n? {n: o}\n: p\n<<: {q: r}\ns: &s [1]\nt: *s\n\
            u: !<tag:yaml.org,2002:int> 4\nv: |\n  text\nw: \"\\u263a\"\n---\n!t [1]\n---\n\n---\nplain\n";
        for doc in serde_yaml_ng::Deserializer::from_str(docs) {
            let left = Cell::new(u64::MAX);
            let bytes_left = Cell::new(u64::MAX);
            let r = Walk {
                left: &left,
                bytes_left: &bytes_left,
            }
            .deserialize(doc);
            assert!(r.is_ok(), "{r:?}");
        }
        for doc in serde_yaml_ng::Deserializer::from_str(docs) {
            let r = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc);
            assert!(r.is_ok(), "{r:?}");
        }
    }

    #[test]
    fn counts_aliases_and_nodes() {
        let s = scan("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n").unwrap_or(Scan {
            nodes: 0,
            aliases: 0,
        });
        assert_eq!(s.aliases, 3);
        assert!(s.nodes >= 9, "{s:?}");
        assert!(count_nodes("a: &x [1, 2]\nb: *x\n", 9).is_ok());
        let nodes = |document| {
            Err(Excess {
                document,
                bytes: false,
            })
        };
        assert_eq!(count_nodes("a: &x [1, 2]\nb: *x\n", 8), nodes(1));
        assert_eq!(count_nodes("---\na: 1\n---\nb: !t [1, 2]\n", 5), nodes(2));
    }

    #[test]
    fn issue7_item4_aliases_of_a_big_scalar_count_its_bytes() {
        // One 1 KiB anchor aliased 100 times: few nodes, 100 KiB of copies.
        let big = "x".repeat(1024);
        let aliases = vec!["*s"; 100].join(", ");
        let text = format!("a: &s \"{big}\"\nb: [{aliases}]\n");
        assert!(count_nodes_with(&text, 1_000, 200 * 1024).is_ok());
        assert_eq!(
            count_nodes_with(&text, 1_000, 50 * 1024),
            Err(Excess {
                document: 1,
                bytes: true
            })
        );
    }
}
