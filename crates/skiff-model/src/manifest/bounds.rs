//! Bounds on what a manifest may cost to decode, checked before the YAML parser builds
//! anything (issue 7 item 4).
//!
//! Two attacks on a YAML decoder cost far more than the bytes they take:
//!
//! * **Deep flow nesting** (`[[[[…` or the JSON `{"a":{"a":…`). A libyaml-style scanner (libyaml,
//!   and saphyr-parser, which skiff uses) re-checks every open flow level's possible simple key
//!   on every token: quadratic, 20 s for a 400 KB chain. [`scan`] walks the text once, as
//!   libyaml's scanner tokenises it (same indicators, quoting, comments, block scalars and
//!   indentation), and refuses a flow depth over [`MAX_FLOW_DEPTH`] before the parser sees the
//!   text. Block nesting costs the parser linear time and is left to the builder's limit
//!   (`yaml::MAX_DEPTH`).
//! * **Alias expansion** ("billion laughs"): `*a` replays the anchored node, so a few KB can
//!   stand for billions of nodes. go-yaml (under sigs.k8s.io/yaml, so kubectl) refuses a
//!   document whose nodes reached through aliases exceed a ratio of all nodes decoded: 99% up
//!   to 400 000 nodes ("document contains excessive aliasing", `allowedAliasRatio` in
//!   decode.go). Here [`walk_budget`] gives a manifest the nodes it writes out (estimated from
//!   [`scan`]'s token count, an over-estimate) plus at most 99 times as many through aliases,
//!   never more than [`MAX_ALIAS_NODES`] extra. The YAML reader (`yaml`) knows each anchored
//!   node's expanded size when it is complete, charges it per alias as it meets one and stops at
//!   the budget, before anything is expanded. Nodes are not all alike: go-yaml's strings share
//!   their bytes, the JSON here does not (each alias of a scalar becomes a new `String`), so
//!   the scalar bytes reached are counted too, against [`SCALAR_BYTES_RATIO`] times the text
//!   plus [`SCALAR_BYTES_SLACK`]: one 2 MiB anchor aliased 300 000 times is refused instead of
//!   asking for 600 GB.
//!
//! The scanner is deliberately on the side of over-counting: where it could not tell how
//! the parser reads a byte, it counts an opening bracket rather than skip one, so a valid
//! manifest is refused only with hundreds of unclosed brackets in its text.

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
    /// A tab where libyaml (go-yaml, so kubectl) refuses one, with its message. saphyr-parser
    /// (YAML 1.2) is more lenient with tabs; skiff refuses what kubectl refuses.
    Tab {
        line: usize,
        column: usize,
        message: &'static str,
    },
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
    /// A tab refused inside a scalar, reported when the scalar is done.
    tab_error: Option<Refused>,
}

/// Tokenises `text` as libyaml's scanner does, far enough to know the flow depth, and counts
/// node and alias tokens.
///
/// The loader cuts the stream into documents at every line that starts with `---` before
/// parsing (as kubectl's YAML reader does, `yaml::split`), whatever a line before it left
/// open: an unclosed `[` or quote does not reach the next document. So each such piece is
/// scanned from a fresh state; otherwise an unclosed quote in one document would hide the
/// next document's nesting from the scan while the parser sees it as structure.
pub fn scan(text: &str) -> Result<Scan, Refused> {
    let mut total = Scan {
        nodes: 0,
        aliases: 0,
    };
    let mut piece_start = 0usize;
    let mut piece_line = 0usize;
    let mut offset = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with("---") && offset > piece_start {
            scan_piece(text, piece_start..offset, piece_line, &mut total)?;
            piece_start = offset;
            piece_line = n;
        }
        offset += line.len();
    }
    scan_piece(text, piece_start..text.len(), piece_line, &mut total)?;
    Ok(total)
}

/// Scans `text[range]`, whose first line is line `first_line` (0-based) of the text, adding
/// its tokens to `total`.
fn scan_piece(
    text: &str,
    range: std::ops::Range<usize>,
    first_line: usize,
    total: &mut Scan,
) -> Result<(), Refused> {
    let piece = &text[range.clone()];
    let mut s = Scanner {
        b: piece.as_bytes(),
        i: 0,
        line: first_line,
        col: 0,
        flow: 0,
        indents: Vec::new(),
        simple_key_allowed: true,
        simple_key: None,
        doc_start: (0, first_line),
        out: Scan {
            nodes: 0,
            aliases: 0,
        },
        tab_error: None,
    };
    if range.start == 0 && piece.starts_with('\u{feff}') {
        s.i = 3;
    }
    s.run()?;
    total.nodes += s.out.nodes;
    total.aliases += s.out.aliases;
    Ok(())
}

impl Scanner<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Length of the line break at `i + k` (LF, CR, CRLF), 0 if none. saphyr-parser follows
    /// YAML 1.2, where NEL, LS and PS are ordinary characters (libyaml took them as breaks).
    fn break_len(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1)) {
            (b'\r', b'\n') => 2,
            (b'\n', _) | (b'\r', _) => 1,
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
            if let Some(e) = self.tab_error.take() {
                return Err(e);
            }
            self.skip_to_token();
            if self.eof() {
                return self.end_document();
            }
            if self.at(0) == b'\t' {
                // Not eaten by skip_to_token: at a line's start, or after `-`, `?` or a
                // complex key's `:` in block context (libyaml's `scan_to_next_token`).
                return Err(self.tab("found character that cannot start any token"));
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
    fn tab(&self, message: &'static str) -> Refused {
        Refused::Tab {
            line: self.line + 1,
            column: self.col + 1,
            message,
        }
    }

    /// libyaml's `scan_to_next_token`: tabs separate tokens in flow context, and in block
    /// context only where a simple key is not allowed (not at a line's start, nor after `-`,
    /// `?` or a complex key's `:`).
    fn skip_to_token(&mut self) {
        loop {
            while self.at(0) == b' '
                || (self.at(0) == b'\t' && (self.flow > 0 || !self.simple_key_allowed))
            {
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
                } else if broke && self.at(0) == b'\t' && (self.col as isize) < indent {
                    self.tab_error =
                        Some(self.tab("found a tab character that violates indentation"));
                    return took_break;
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
            if (*indent == 0 || self.col < *indent) && self.at(0) == b'\t' {
                self.tab_error.get_or_insert(
                    self.tab("found a tab character where an indentation space is expected"),
                );
            }
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
            // The loader cuts documents at `---` lines whatever is open before them: an
            // unclosed flow collection and quote in one document hide nothing in the next
            // (found by the manifest_bounds property test).
            format!("\n\n[---\n---\nb: \\\"\n  [\"\nb: {bomb}"),
            format!("a: \"x\n---\nb: {bomb}\n"),
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
}
