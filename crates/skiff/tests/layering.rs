//! The layering check CI runs with every `cargo test --workspace` (ARCHITECTURE: imports point
//! one way; a parent module and its children are the only pairs that may refer to each other).
//!
//! For every workspace crate it reads the module tree from the sources (`mod x;` → `x.rs` or
//! `x/mod.rs`, inline `mod x { … }`), collects every reference to a module of the same crate
//! (`use crate::a::b`, `use crate::{a, b::c}`, `use super::x`, inline `crate::x::f()` paths,
//! paths through names a `use` brought in, `$crate`/`crate::` paths inside macro arguments),
//! drops the references between a module and its ancestors or descendants, and fails naming
//! every strongly connected component left: an import cycle between modules. It also fails
//! for a crate whose Cargo.toml does not take the workspace lints (`[lints] workspace = true`),
//! and for any `unsafe` (block, fn, impl, trait, extern block, unsafe attribute, or the word in
//! a macro's arguments) outside skiff-node's `sys` module tree (issue 9 item 5: every `unsafe`
//! lives in one module of system-call wrappers), in the crates' sources, tests and examples.
//!
//! Why a parser (`syn`, already in the tree through the derive macros) and not a line
//! scanner: module names appear in doc comments (`see crate::gates`) and strings, `use`
//! groups span lines, and paths hide in macro arguments; a parser sees exactly the code.
//! Cargo.toml is read with `toml_edit` (in the tree through `proc-macro-crate`).
#![allow(clippy::expect_used)] // a test: a broken workspace layout may panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Import cycles that exist and are being removed (empty since skiff-node's restructure, issue 9
/// item 5). A cycle found is accepted only if all its modules are in one entry;
/// an entry that no longer matches any cycle fails the test, so that it is deleted as soon as
/// its cycle is gone. Never add to this list: break the new cycle instead (move the shared
/// data or function into a leaf module that both import).
const KNOWN_CYCLES_TO_REMOVE: &[(&str, &[&str])] = &[];

/// Crates that do not take the workspace lints yet (empty since issue 9), same rule as above:
/// an entry whose crate takes the workspace lints fails the test until it is removed.
const LINTS_EXEMPT_TO_REMOVE: &[&str] = &[];

/// The one crate and module tree where `unsafe` may live.
const UNSAFE_HOME: (&str, &str) = ("skiff-node", "sys");

/// `unsafe` that stays outside [`UNSAFE_HOME`]: (crate, module, what, why). An entry that no
/// longer matches fails the test, so it is deleted once its `unsafe` is gone.
const UNSAFE_ELSEWHERE: &[(&str, &str, &str, &str)] = &[(
    "skiff-monitor",
    "",
    "unsafe block in fn inherited",
    "the monitor adopts the descriptors 3–5 its forked parent placed for it; taking ownership \
     of an inherited descriptor number (`OwnedFd::from_raw_fd`, `BorrowedFd::borrow_raw`) is \
     unsafe by design in std's I/O safety model, and the monitor does not depend on skiff-node",
)];

// ---------------------------------------------------------------------------------------
// The module graph of one crate.

/// A module's path inside its crate: `""` for the crate root, `"volumes::downward"`.
type ModPath = String;

fn join(parent: &str, name: &str) -> ModPath {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}::{name}")
    }
}

fn parent_of(m: &str) -> Option<ModPath> {
    if m.is_empty() {
        None
    } else {
        Some(
            m.rsplit_once("::")
                .map_or(String::new(), |(p, _)| p.to_string()),
        )
    }
}

/// `a` is `b` or one of its ancestors (the crate root is everyone's ancestor).
fn is_ancestor_or_self(a: &str, b: &str) -> bool {
    a.is_empty() || a == b || b.strip_prefix(a).is_some_and(|rest| rest.starts_with("::"))
}

fn display_mod(m: &str) -> &str {
    if m.is_empty() {
        "(crate root)"
    } else {
        m
    }
}

/// What one module's code names: raw paths (as written) and the names its `use` items bind.
#[derive(Default)]
struct ModuleCode {
    /// The file the module is in (relative to the crate directory), for messages.
    file: PathBuf,
    /// Every path written in the module, as segments (`["super", "launch", "StartError"]`).
    paths: Vec<Vec<String>>,
    /// Names bound by `use` (`downward` → `["crate", "volumes", "downward"]`).
    aliases: BTreeMap<String, Vec<String>>,
    /// Prefixes of glob imports (`use super::*` → `["super"]`).
    globs: Vec<Vec<String>>,
}

#[derive(Default)]
struct CrateGraph {
    modules: BTreeMap<ModPath, ModuleCode>,
    /// `from` → `to` → one path that makes the reference (for messages).
    edges: BTreeMap<ModPath, BTreeMap<ModPath, String>>,
    /// Every `unsafe` in the crate's modules.
    unsafe_uses: Vec<UnsafeUse>,
}

/// Collects the paths of one module's items (not those of nested `mod` items, which the
/// loader handles as modules of their own).
struct Collector<'a> {
    code: &'a mut ModuleCode,
}

impl Collector<'_> {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(unraw(&p.ident));
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.bind(prefix, &unraw(&n.ident), None),
            syn::UseTree::Rename(r) => self.bind(prefix, &unraw(&r.ident), Some(unraw(&r.rename))),
            syn::UseTree::Glob(_) => {
                self.code.paths.push(prefix.clone());
                self.code.globs.push(prefix.clone());
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// `use prefix::name [as rename]`; `name` may be `self` (the prefix itself).
    fn bind(&mut self, prefix: &[String], name: &str, rename: Option<String>) {
        let mut full = prefix.to_vec();
        if name != "self" {
            full.push(name.to_string());
        }
        let bound = rename.or_else(|| full.last().cloned());
        self.code.paths.push(full.clone());
        if let Some(b) = bound.filter(|b| b != "_") {
            self.code.aliases.insert(b, full);
        }
    }

    /// Paths inside macro arguments (`format!("{}", crate::field::go_quote(x))`): every
    /// `a::b…` chain, and chains starting at `crate`, `$crate`, `super` or `self`.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(g) = &trees[i] {
                self.macro_tokens(g.stream());
                i += 1;
                continue;
            }
            let TokenTree::Ident(first) = &trees[i] else {
                i += 1;
                continue;
            };
            let after_colons = i >= 2 && is_colon(&trees[i - 1]) && is_colon(&trees[i - 2]);
            if after_colons {
                i += 1;
                continue;
            }
            // `$crate` (in a macro_rules! body) is the ident `crate` after a `$`.
            let mut segs = vec![unraw(first)];
            let mut j = i + 1;
            while let (Some(a), Some(b), Some(TokenTree::Ident(next))) =
                (trees.get(j), trees.get(j + 1), trees.get(j + 2))
            {
                if !(is_colon(a) && is_colon(b)) {
                    break;
                }
                segs.push(unraw(next));
                j += 3;
            }
            if segs.len() > 1 || matches!(segs[0].as_str(), "crate" | "super" | "self") {
                self.code.paths.push(segs);
            }
            i = j;
        }
    }
}

fn is_colon(t: &TokenTree) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == ':')
}

fn unraw(i: &proc_macro2::Ident) -> String {
    let s = i.to_string();
    s.strip_prefix("r#").map_or(s.clone(), str::to_string)
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            self.code
                .paths
                .push(p.segments.iter().map(|s| unraw(&s.ident)).collect());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.macro_tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    // Attribute names (`allow`, `cfg`, `derive`) are not module references.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

impl CrateGraph {
    /// Reads the module tree rooted at `root` (`src/lib.rs`, `src/main.rs`, `src/bin/x.rs`).
    fn load(crate_dir: &Path, root: &Path) -> Result<CrateGraph, String> {
        let mut g = CrateGraph::default();
        let file = parse(&crate_dir.join(root))?;
        // A crate root's `mod y;` is beside it (src/y.rs, or src/bin/y.rs for src/bin/x.rs).
        let child_dir = crate_dir.join(root.parent().unwrap_or(Path::new("")));
        g.load_module(crate_dir, String::new(), root, &child_dir, &file.items)?;
        g.resolve();
        Ok(g)
    }

    fn load_module(
        &mut self,
        crate_dir: &Path,
        module: ModPath,
        file: &Path,
        child_dir: &Path,
        items: &[syn::Item],
    ) -> Result<(), String> {
        let mut code = ModuleCode {
            file: file.to_path_buf(),
            ..Default::default()
        };
        let mut children = Vec::new();
        for item in items {
            match item {
                syn::Item::Mod(m) => children.push(m),
                other => {
                    Collector { code: &mut code }.visit_item(other);
                    UnsafeFinder::new(&module, file, &mut self.unsafe_uses).visit_item(other);
                }
            }
        }
        self.modules.insert(module.clone(), code);
        for m in children {
            let name = unraw(&m.ident);
            let child = join(&module, &name);
            let grandchild_dir = child_dir.join(&name);
            if m.attrs.iter().any(|a| a.path().is_ident("path")) {
                return Err(format!(
                    "{}: `#[path]` on mod {name} is not supported by the layering check",
                    file.display()
                ));
            }
            match &m.content {
                Some((_, items)) => {
                    self.load_module(crate_dir, child, file, &grandchild_dir, items)?
                }
                None => {
                    let candidates = [
                        child_dir.join(format!("{name}.rs")),
                        grandchild_dir.join("mod.rs"),
                    ];
                    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                        return Err(format!(
                            "{}: no file for `mod {name};` (looked for {} and {})",
                            file.display(),
                            candidates[0].display(),
                            candidates[1].display()
                        ));
                    };
                    let parsed = parse(path)?;
                    let rel = path.strip_prefix(crate_dir).unwrap_or(path).to_path_buf();
                    self.load_module(crate_dir, child, &rel, &grandchild_dir, &parsed.items)?;
                }
            }
        }
        Ok(())
    }

    /// The module a path written in `from` refers to: the longest prefix of the path that
    /// names a module of this crate. `None` for other crates, std, and local items.
    ///
    /// Names are looked up like rustc does: a child module, then a name a `use` bound, then
    /// the children of glob-imported modules (a glob's own base is resolved without globs,
    /// so `use std::collections::*` cannot recurse).
    fn target(&self, from: &str, segs: &[String], depth: u32, globs: bool) -> Option<ModPath> {
        let first = segs.first()?;
        let (base, rest) = match first.as_str() {
            "crate" => (String::new(), &segs[1..]),
            "self" => (from.to_string(), &segs[1..]),
            "super" => {
                let mut base = from.to_string();
                let mut i = 0;
                while segs.get(i).is_some_and(|s| s == "super") {
                    base = parent_of(&base)?;
                    i += 1;
                }
                (base, &segs[i..])
            }
            name => {
                let code = self.modules.get(from)?;
                if self.modules.contains_key(&join(from, name)) {
                    (from.to_string(), segs)
                } else if let Some(alias) = code.aliases.get(name).filter(|a| {
                    // `use x;` binds `x` to itself: only an alias with a longer path helps.
                    depth < 8 && a.as_slice() != [name.to_string()]
                }) {
                    let mut full = alias.clone();
                    full.extend(segs[1..].iter().cloned());
                    return self.target(from, &full, depth + 1, globs);
                } else if globs {
                    let glob_base = code.globs.iter().find_map(|g| {
                        let base = self.target(from, g, depth + 1, false)?;
                        self.modules
                            .contains_key(&join(&base, name))
                            .then_some(base)
                    })?;
                    (glob_base, segs)
                } else {
                    return None;
                }
            }
        };
        let mut cur = base;
        for s in rest {
            let next = join(&cur, s);
            if self.modules.contains_key(&next) {
                cur = next;
            } else {
                break;
            }
        }
        Some(cur)
    }

    fn resolve(&mut self) {
        let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
        for (from, code) in &self.modules {
            for segs in &code.paths {
                let Some(to) = self.target(from, segs, 0, true) else {
                    continue;
                };
                // A parent and its children (and their children) may refer to each other.
                if is_ancestor_or_self(from, &to) || is_ancestor_or_self(&to, from) {
                    continue;
                }
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| segs.join("::"));
            }
        }
        self.edges = edges;
    }

    /// Strongly connected components of more than one module (Tarjan), each sorted.
    fn cycles(&self) -> Vec<BTreeSet<ModPath>> {
        struct Tarjan<'a> {
            g: &'a CrateGraph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            out: Vec<BTreeSet<ModPath>>,
        }
        impl<'a> Tarjan<'a> {
            fn visit(&mut self, v: &'a str) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.g.edges.get(v).into_iter().flat_map(|e| e.keys()) {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let lw = self.low[w];
                        if let Some(l) = self.low.get_mut(v) {
                            *l = (*l).min(lw);
                        }
                    } else if self.on_stack.contains(w) {
                        let iw = self.index[w];
                        if let Some(l) = self.low.get_mut(v) {
                            *l = (*l).min(iw);
                        }
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut scc = BTreeSet::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        scc.insert(w.to_string());
                        if w == v {
                            break;
                        }
                    }
                    if scc.len() > 1 {
                        self.out.push(scc);
                    }
                }
            }
        }
        let mut t = Tarjan {
            g: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for m in self.modules.keys() {
            if !t.index.contains_key(m.as_str()) {
                t.visit(m);
            }
        }
        t.out.sort();
        t.out
    }

    /// A cycle, with one reference per edge inside it, for the failure message.
    fn describe(&self, label: &str, scc: &BTreeSet<ModPath>) -> String {
        let names: Vec<&str> = scc.iter().map(|m| display_mod(m)).collect();
        let mut out = format!("{label}: import cycle between {}:", names.join(", "));
        for from in scc {
            for (to, example) in self.edges.get(from).into_iter().flatten() {
                if scc.contains(to) {
                    let file = self
                        .modules
                        .get(from)
                        .map(|c| c.file.display().to_string())
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "\n    {} → {} ({file}: {example})",
                        display_mod(from),
                        display_mod(to)
                    ));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// `unsafe` in the sources.

/// One `unsafe` found: its module, file, and what it is (`unsafe block in fn f`, `unsafe fn g`,
/// `unsafe impl Send`, …; named rather than numbered: `syn` has no line numbers here).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UnsafeUse {
    module: ModPath,
    file: PathBuf,
    what: String,
}

/// Finds every `unsafe` in the items it visits (nested functions and inline modules included).
struct UnsafeFinder<'a> {
    module: &'a str,
    file: &'a Path,
    /// The enclosing functions, innermost last (for "unsafe block in fn …").
    fns: Vec<String>,
    out: &'a mut Vec<UnsafeUse>,
}

impl<'a> UnsafeFinder<'a> {
    fn new(module: &'a str, file: &'a Path, out: &'a mut Vec<UnsafeUse>) -> UnsafeFinder<'a> {
        UnsafeFinder {
            module,
            file,
            fns: Vec::new(),
            out,
        }
    }

    fn found(&mut self, what: String) {
        self.out.push(UnsafeUse {
            module: self.module.to_string(),
            file: self.file.to_path_buf(),
            what,
        });
    }

    fn where_(&self) -> String {
        match self.fns.last() {
            Some(f) => format!(" in fn {f}"),
            None => String::new(),
        }
    }

    fn in_fn(&mut self, sig: &syn::Signature, visit: impl FnOnce(&mut Self)) {
        if sig.unsafety.is_some() {
            self.found(format!("unsafe fn {}", unraw(&sig.ident)));
        }
        self.fns.push(unraw(&sig.ident));
        visit(self);
        self.fns.pop();
    }

    /// The ident `unsafe` anywhere in a macro's tokens (`vec![unsafe { … }]`, a
    /// `macro_rules!` body): `syn` does not parse macro arguments.
    fn macro_has_unsafe(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "unsafe",
            TokenTree::Group(g) => Self::macro_has_unsafe(g.stream()),
            _ => false,
        })
    }
}

fn last_ident(p: &syn::Path) -> String {
    p.segments
        .last()
        .map_or_else(String::new, |s| unraw(&s.ident))
}

impl<'ast> Visit<'ast> for UnsafeFinder<'_> {
    fn visit_expr_unsafe(&mut self, e: &'ast syn::ExprUnsafe) {
        let w = self.where_();
        self.found(format!("unsafe block{w}"));
        syn::visit::visit_expr_unsafe(self, e);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.in_fn(&f.sig, |v| syn::visit::visit_item_fn(v, f));
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.in_fn(&f.sig, |v| syn::visit::visit_impl_item_fn(v, f));
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        self.in_fn(&f.sig, |v| syn::visit::visit_trait_item_fn(v, f));
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if i.unsafety.is_some() {
            let name = i
                .trait_
                .as_ref()
                .map_or_else(String::new, |(_, p, _)| last_ident(p));
            self.found(format!("unsafe impl {name}"));
        }
        syn::visit::visit_item_impl(self, i);
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        if t.unsafety.is_some() {
            self.found(format!("unsafe trait {}", unraw(&t.ident)));
        }
        syn::visit::visit_item_trait(self, t);
    }

    fn visit_item_foreign_mod(&mut self, m: &'ast syn::ItemForeignMod) {
        self.found("extern block".to_string());
        syn::visit::visit_item_foreign_mod(self, m);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if Self::macro_has_unsafe(m.tokens.clone()) {
            let w = self.where_();
            self.found(format!("unsafe in {}!{w}", last_ident(&m.path)));
        }
        syn::visit::visit_macro(self, m);
    }

    // `#[unsafe(…)]`, and the attributes the `unsafe_code` lint counts as unsafe.
    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        let name = last_ident(a.path());
        if matches!(
            name.as_str(),
            "unsafe" | "no_mangle" | "export_name" | "link_section"
        ) {
            self.found(format!("#[{name}] attribute"));
        }
    }
}

/// The `unsafe` of one crate root outside `home` (crate label, module tree) that `allowed`
/// (shaped like [`UNSAFE_ELSEWHERE`]) does not list; marks the entries that matched in `used`.
fn check_unsafe(
    label: &str,
    uses: &[UnsafeUse],
    home: Option<(&str, &str)>,
    allowed: &[(&str, &str, &str, &str)],
    used: &mut BTreeSet<usize>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for u in uses {
        if home.is_some_and(|(k, m)| k == label && is_ancestor_or_self(m, &u.module)) {
            continue;
        }
        let entry = allowed
            .iter()
            .position(|(k, m, w, _)| *k == label && *m == u.module && *w == u.what);
        match entry {
            Some(k) => {
                used.insert(k);
            }
            None => failures.push(format!(
                "{label}: {} in module {} ({})",
                u.what,
                display_mod(&u.module),
                u.file.display()
            )),
        }
    }
    failures
}

/// The `.rs` files under `dir` (tests, examples, benches), recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every `unsafe` in one file parsed whole (inline modules included).
fn unsafe_in_file(crate_dir: &Path, path: &Path) -> Vec<UnsafeUse> {
    let file = parse(path).unwrap_or_else(|e| panic!("{e}"));
    let rel = path.strip_prefix(crate_dir).unwrap_or(path);
    let mut out = Vec::new();
    UnsafeFinder::new("", rel, &mut out).visit_file(&file);
    out
}

fn parse(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks the cycles of one crate against the allow-list. Returns the failures and marks
/// the allow-list entries that matched a cycle in `used`.
fn check_cycles(
    label: &str,
    graph: &CrateGraph,
    known: &[(&str, &[&str])],
    used: &mut BTreeSet<usize>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for scc in graph.cycles() {
        let allowed = known.iter().enumerate().find(|(_, (krate, mods))| {
            *krate == label && scc.iter().all(|m| mods.contains(&m.as_str()))
        });
        match allowed {
            Some((k, _)) => {
                used.insert(k);
            }
            None => failures.push(graph.describe(label, &scc)),
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------
// The workspace.

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_toml(path: &Path) -> toml_edit::DocumentMut {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (package name, crate directory) of every workspace member.
fn members() -> Vec<(String, PathBuf)> {
    let root = workspace_root();
    let doc = read_toml(&root.join("Cargo.toml"));
    let members = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .expect("workspace.members");
    members
        .iter()
        .map(|m| {
            let dir = m.as_str().expect("member paths are strings");
            assert!(!dir.contains('*'), "glob members are not supported: {dir}");
            let dir = root.join(dir);
            let manifest = read_toml(&dir.join("Cargo.toml"));
            let name = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .expect("package.name")
                .to_string();
            (name, dir)
        })
        .collect()
}

/// The crate roots of a package: `src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, with labels
/// (the package name for the library, or for the binary when there is no library).
fn roots(name: &str, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let has_lib = dir.join("src/lib.rs").is_file();
    if has_lib {
        out.push((name.to_string(), PathBuf::from("src/lib.rs")));
    }
    if dir.join("src/main.rs").is_file() {
        let label = if has_lib {
            format!("{name} (src/main.rs)")
        } else {
            name.to_string()
        };
        out.push((label, PathBuf::from("src/main.rs")));
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
        let mut bins: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        bins.sort();
        for b in bins {
            let file = b
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            out.push((
                format!("{name} (src/bin/{file})"),
                PathBuf::from("src/bin").join(file),
            ));
        }
    }
    out
}

#[test]
fn no_import_cycles_between_modules() {
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut checked = 0;
    for (name, dir) in members() {
        let roots = roots(&name, &dir);
        assert!(!roots.is_empty(), "{name}: no src/lib.rs or src/main.rs");
        for (label, root) in roots {
            let graph = CrateGraph::load(&dir, &root).unwrap_or_else(|e| panic!("{e}"));
            checked += graph.modules.len();
            failures.extend(check_cycles(
                &label,
                &graph,
                KNOWN_CYCLES_TO_REMOVE,
                &mut used,
            ));
        }
    }
    for (k, (krate, mods)) in KNOWN_CYCLES_TO_REMOVE.iter().enumerate() {
        if !used.contains(&k) {
            failures.push(format!(
                "{krate}: the known cycle {mods:?} is gone: delete it from KNOWN_CYCLES_TO_REMOVE"
            ));
        }
    }
    assert!(
        checked > 50,
        "only {checked} modules found: is the scan broken?"
    );
    assert!(
        failures.is_empty(),
        "imports must point one way (only a parent and its children may refer to each other); \
         move what both sides need into a leaf module:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let mut failures = Vec::new();
    for (name, dir) in members() {
        let manifest = read_toml(&dir.join("Cargo.toml"));
        let takes = manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        let exempt = LINTS_EXEMPT_TO_REMOVE.contains(&name.as_str());
        match (takes, exempt) {
            (false, false) => failures.push(format!(
                "{name}: Cargo.toml lacks `[lints] workspace = true`"
            )),
            (true, true) => failures.push(format!(
                "{name} takes the workspace lints now: delete it from LINTS_EXEMPT_TO_REMOVE"
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unsafe_lives_only_in_skiff_nodes_sys_module() {
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut seen = 0;
    for (name, dir) in members() {
        for (label, root) in roots(&name, &dir) {
            let graph = CrateGraph::load(&dir, &root).unwrap_or_else(|e| panic!("{e}"));
            seen += graph.unsafe_uses.len();
            failures.extend(check_unsafe(
                &label,
                &graph.unsafe_uses,
                Some(UNSAFE_HOME),
                UNSAFE_ELSEWHERE,
                &mut used,
            ));
        }
        // Integration tests, examples, benches and build scripts: no home for `unsafe` there.
        let mut files: Vec<PathBuf> = ["tests", "examples", "benches"]
            .iter()
            .flat_map(|d| rust_files(&dir.join(d)))
            .collect();
        files.extend(Some(dir.join("build.rs")).filter(|p| p.is_file()));
        for f in files {
            let uses = unsafe_in_file(&dir, &f);
            seen += uses.len();
            failures.extend(check_unsafe(&name, &uses, None, &[], &mut BTreeSet::new()));
        }
    }
    for (k, (krate, module, what, _why)) in UNSAFE_ELSEWHERE.iter().enumerate() {
        if !used.contains(&k) {
            failures.push(format!(
                "{krate}: `{what}` in module {} is gone: delete it from UNSAFE_ELSEWHERE",
                display_mod(module)
            ));
        }
    }
    // skiff-node's sys module has some: none at all means the scan is broken.
    assert!(seen > 10, "only {seen} unsafe found: is the scan broken?");
    assert!(
        failures.is_empty(),
        "`unsafe` belongs in skiff-node's `sys` module (a small wrapper with a `// SAFETY:` \
         comment, or an `unsafe fn` with a `# Safety` contract) and a safe call here:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The graph code on small synthetic crates.

/// A crate in a temp dir from `(path under src, text)` pairs.
fn synthetic(files: &[(&str, &str)]) -> (tempfile::TempDir, CrateGraph) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let p = dir.path().join("src").join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    let g = CrateGraph::load(dir.path(), Path::new("src/lib.rs")).expect("load");
    (dir, g)
}

fn sets(cycles: &[&[&str]]) -> Vec<BTreeSet<String>> {
    cycles
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect()
}

#[test]
fn a_new_cycle_between_siblings_is_found_and_fails() {
    let (_dir, g) = synthetic(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        // `a` names `b` only in a doc comment and a string: no reference.
        (
            "a.rs",
            "//! see crate::b\npub fn f() -> &'static str { \"crate::b\" }\n",
        ),
        ("b.rs", "use super::a::f;\npub fn g() { f(); }\n"),
        ("c.rs", "pub fn h() { crate::a::f(); }\n"),
    ]);
    assert!(g.cycles().is_empty(), "{:?}", g.edges);

    // Now `a` imports `b`, which imports `a`: one cycle, named with both references.
    let (_dir, g) = synthetic(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::g;\npub fn f() { g(); }\n"),
        ("b.rs", "use super::a::f;\npub fn g() { f(); }\n"),
    ]);
    assert_eq!(g.cycles(), sets(&[&["a", "b"]]));
    let mut used = BTreeSet::new();
    let failures = check_cycles("demo", &g, &[], &mut used);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("demo: import cycle between a, b:"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("a → b (src/a.rs: crate::b::g)"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("b → a (src/b.rs: super::a::f)"),
        "{}",
        failures[0]
    );

    // Allowed while listed (or while it shrinks inside a listed cycle), not in another crate.
    let known: &[(&str, &[&str])] = &[("demo", &["a", "b", "z"])];
    let mut used = BTreeSet::new();
    assert!(check_cycles("demo", &g, known, &mut used).is_empty());
    assert_eq!(used, BTreeSet::from([0]));
    assert_eq!(
        check_cycles("other", &g, known, &mut BTreeSet::new()).len(),
        1
    );
    let smaller: &[(&str, &[&str])] = &[("demo", &["a"])];
    assert_eq!(
        check_cycles("demo", &g, smaller, &mut BTreeSet::new()).len(),
        1
    );
}

#[test]
fn parents_and_children_may_refer_to_each_other() {
    let (_dir, g) = synthetic(&[
        (
            "lib.rs",
            "pub mod m;\npub use m::Thing;\npub fn root() {}\n",
        ),
        (
            "m/mod.rs",
            "mod child;\npub struct Thing;\npub fn f() { child::g(); crate::root(); }\n",
        ),
        (
            "m/child.rs",
            "use super::Thing;\npub fn g() { let _ = Thing; super::super::root(); }\n\
             #[cfg(test)]\nmod tests { use super::super::f; }\n",
        ),
    ]);
    assert!(g.cycles().is_empty(), "{:?}", g.edges);
    assert!(g.edges.is_empty(), "{:?}", g.edges);
    assert_eq!(
        g.modules.keys().collect::<Vec<_>>(),
        ["", "m", "m::child", "m::child::tests"]
    );
}

#[test]
fn every_way_of_naming_a_module_is_an_edge() {
    let (_dir, g) = synthetic(&[
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\npub mod f;\n\
             pub mod deep { pub mod inner { pub fn x() {} } }\n",
        ),
        // Grouped use with nested paths and `self`.
        ("a.rs", "use crate::{b, c::{self, C}, deep::inner::x};\n"),
        // A path through a name a `use` bound, and `as` renames.
        (
            "b.rs",
            "use crate::deep as dp;\npub fn f() { dp::inner::x(); }\n",
        ),
        // Inline `crate::` paths in expressions and types, and inside macro arguments.
        (
            "c.rs",
            "pub struct C;\npub fn f() -> Option<crate::d::D> { \
             println!(\"{}\", crate::e::name()); None }\n",
        ),
        ("d.rs", "pub struct D;\n"),
        // Globs: `e` reaches `f` through `use crate::*`.
        (
            "e.rs",
            "use crate::*;\npub fn name() -> String { f::x() }\n",
        ),
        ("f.rs", "pub fn x() -> String { String::new() }\n"),
    ]);
    let edges = |from: &str| -> Vec<&str> {
        g.edges
            .get(from)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(edges("a"), ["b", "c", "deep::inner"]);
    assert_eq!(edges("b"), ["deep", "deep::inner"]);
    assert_eq!(edges("c"), ["d", "e"]);
    assert_eq!(edges("e"), ["f"]);
    assert!(g.cycles().is_empty());

    // A cycle through an inline module and a macro argument is found too.
    let (_dir, g) = synthetic(&[
        (
            "lib.rs",
            "pub mod a { pub fn f() { crate::b::g() } }\npub mod b;\n",
        ),
        (
            "b.rs",
            "pub fn g() { let _ = format!(\"{:?}\", crate::a::f()); }\n",
        ),
    ]);
    assert_eq!(g.cycles(), sets(&[&["a", "b"]]));
}

#[test]
fn a_missing_module_file_is_an_error_not_a_silent_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
    std::fs::write(dir.path().join("src/lib.rs"), "mod gone;\n").expect("write");
    let err = CrateGraph::load(dir.path(), Path::new("src/lib.rs"))
        .err()
        .expect("an error");
    assert!(err.contains("no file for `mod gone;`"), "{err}");
}

#[test]
fn every_kind_of_unsafe_outside_the_home_module_is_found() {
    let (_dir, g) = synthetic(&[
        ("lib.rs", "pub mod sys;\npub mod a;\n"),
        (
            "sys.rs",
            "pub fn f() { unsafe { g() } }\nunsafe fn g() {}\nmod inner { unsafe impl Send for X {} }\n",
        ),
        (
            "a.rs",
            "// unsafe in a comment, and \"unsafe\" in a string, are not code\n\
             pub fn f() -> &'static str { let _ = unsafe { 1 }; \"unsafe\" }\n\
             pub unsafe fn g() {}\n\
             pub struct S;\n\
             impl S { unsafe fn m(&self) { fn inner() { let _ = vec![unsafe { 2 }]; } } }\n\
             unsafe impl Sync for S {}\n\
             pub unsafe trait T {}\n\
             extern \"C\" { fn abs(x: i32) -> i32; }\n\
             #[no_mangle] pub extern \"C\" fn exported() {}\n\
             #[cfg(test)]\nmod tests { #[test] fn t() { unsafe { super::g() } } }\n",
        ),
    ]);
    let found = |module: &str| -> Vec<&str> {
        g.unsafe_uses
            .iter()
            .filter(|u| u.module == module)
            .map(|u| u.what.as_str())
            .collect()
    };
    assert_eq!(found("sys"), ["unsafe block in fn f", "unsafe fn g"]);
    assert_eq!(found("sys::inner"), ["unsafe impl Send"]);
    assert_eq!(
        found("a"),
        [
            "unsafe block in fn f",
            "unsafe fn g",
            "unsafe fn m",
            "unsafe in vec! in fn inner",
            "unsafe impl Sync",
            "unsafe trait T",
            "extern block",
            "#[no_mangle] attribute",
        ]
    );
    assert_eq!(found("a::tests"), ["unsafe block in fn t"]);

    // The home module tree is allowed; everything else fails unless listed, and a listed
    // entry is marked used.
    let allowed = [("demo", "a", "unsafe trait T", "why")];
    let mut used = BTreeSet::new();
    let failures = check_unsafe(
        "demo",
        &g.unsafe_uses,
        Some(("demo", "sys")),
        &allowed,
        &mut used,
    );
    assert_eq!(failures.len(), 8, "{failures:#?}");
    assert!(
        failures.iter().all(|f| f.contains("in module a")),
        "{failures:#?}"
    );
    assert!(
        failures.contains(&"demo: unsafe fn g in module a (src/a.rs)".to_string()),
        "{failures:#?}"
    );
    assert_eq!(used, BTreeSet::from([0]));
    // In another crate the same module name is no home.
    let other = check_unsafe(
        "other",
        &g.unsafe_uses,
        Some(("demo", "sys")),
        &[],
        &mut used,
    );
    assert_eq!(other.len(), 12, "{other:#?}");
}

/// Crates that must not depend on others (ARCHITECTURE: imports point down the table): the API
/// server knows objects, not processes — the daemon wires it to the node.
const FORBIDDEN_CRATE_DEPS: &[(&str, &[&str])] = &[
    (
        "skiff-api",
        &["skiff-node", "skiff-engine", "skiff-image", "skiff-monitor"],
    ),
    (
        "skiff-model",
        &["skiff-node", "skiff-engine", "skiff-image", "skiff-api"],
    ),
    ("skiff-engine", &["skiff-node", "skiff-image", "skiff-api"]),
    ("skiff-image", &["skiff-node", "skiff-engine", "skiff-api"]),
    // Controllers decide from objects and time; both `serve` and `run` carry decisions out.
    (
        "skiff-controllers",
        &[
            "skiff-node",
            "skiff-engine",
            "skiff-image",
            "skiff-monitor",
            "skiff-api",
        ],
    ),
    // The timeline is data and drawings: the node feeds it, the CLI and the daemon show it.
    (
        "skiff-timeline",
        &["skiff-node", "skiff-image", "skiff-monitor", "skiff-api"],
    ),
];

#[test]
fn crates_depend_only_downwards() {
    let root = workspace_root();
    let mut bad = Vec::new();
    for (krate, forbidden) in FORBIDDEN_CRATE_DEPS {
        let doc = read_toml(&root.join("crates").join(krate).join("Cargo.toml"));
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = doc.get(table).and_then(|t| t.as_table_like()) else {
                continue;
            };
            for (name, _) in deps.iter() {
                if forbidden.contains(&name) {
                    bad.push(format!("{krate} [{table}] depends on {name}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "crate layering broken: {bad:?}");
}
