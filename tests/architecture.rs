//! Checked, not hoped: the layering of hotmod's own sources (`hotmod/src`), read as text.
//!
//! - No import cycle among hotmod's top-level modules (`hotmod/src/x.rs` or `hotmod/src/x/`).
//! - Nothing but `lib.rs` imports the public façade ([`FACADE`]): imports point one way only,
//!   from the façade down to the layers it is built on.
//!
//! How the sources are read (no dependency beyond std, so no `syn`):
//!
//! - Every file is lexed into identifiers, `::`, punctuation and literals. Comments (`//`, `///`,
//!   `//!`, nested `/* */`) are dropped; string, raw string, byte string and char literals become
//!   one opaque token each, so a path written in a doc comment or a string is never an import.
//! - The module tree is walked from `lib.rs` along `mod x;` declarations, honouring
//!   `#[path = "…"]`: `reloading.rs` and `disabled.rs` are both the module `imp`, `fuzz.rs` is
//!   `__fuzz`, and `os/elf.rs` is read both as `os::elf` and as `__fuzz::elf`. Any `.rs` file the
//!   walk does not reach is still read, as the module its location names.
//! - Inline `mod name { … }` blocks are tracked, so `super::` inside a file's `mod tests` means
//!   the file's own module. `#[cfg(test)] mod tests` blocks are included: test code is code of
//!   the module and may not import upward either (today none does).
//! - A reference is any path that starts with `crate::`, `$crate::`, `self::` or `super::`, in a
//!   `use` (groups parsed as trees, nested braces, `self` in a group, `as` renames, globs) or
//!   anywhere in code (`crate::snapshot::publish(…)`). It is resolved to an absolute path; its
//!   first segment is the top-level module it points into. A path through a name `lib.rs`
//!   re-exports (`crate::Incompatibility`, `crate::__private::Module`) is followed to where that
//!   name comes from. A path that cannot be resolved fails the test rather than being skipped.
//! - Bare paths (`use std::…`, `use notify::…`) name other crates, or items already imported
//!   by a `crate::`/`super::` path, so they add nothing.
//! - `os` is one node: its files are per-platform alternatives (`linux.rs` / `portable.rs`,
//!   `linux_acl.rs` / `acl_none.rs`, …) that the rest of the crate reaches only through
//!   `os/mod.rs`; their references among themselves (`super::elf`) stay inside the node.
//! - Edges from `lib.rs` do not count: it declares and re-exports everything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The public façade: the types users name, each written once for both builds (`Module`,
/// `load_all` and `Rebuild`, `Pinned`, `restart`). Nothing below it may import it; façade modules
/// may use each other (the cycle check still applies).
const FACADE: &[&str] = &["module", "pinned", "restart"];

/// Entry points that sit above the façade, like `lib.rs`: `__private` (`private.rs`) is what the
/// generated code calls, handing the public `Module` to the call paths.
const ENTRY: &[&str] = &["__private"];

// ---------------------------------------------------------------------------------------------
// The checks on hotmod's sources.

#[test]
fn no_import_cycles_among_hotmod_modules() {
    let crate_ = Analysis::of(&read_sources());
    let mut report = String::new();
    if !crate_.unresolved.is_empty() {
        writeln!(report, "in hotmod/src, paths this test cannot resolve:").unwrap();
        for u in &crate_.unresolved {
            writeln!(report, "  {u}").unwrap();
        }
    }
    let cycles = crate_.cycles();
    if !cycles.is_empty() {
        writeln!(report, "import cycles among hotmod/src modules:").unwrap();
        for cycle in &cycles {
            writeln!(report, "  {}", cycle.join(" → ")).unwrap();
        }
        writeln!(
            report,
            "the edges on those cycles, each with its first occurrence:"
        )
        .unwrap();
        for ((from, to), at) in &crate_.edges {
            if crate_.on_a_cycle(from, to) {
                writeln!(report, "  {from} → {to}  (hotmod/src/{at})").unwrap();
            }
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

#[test]
fn nothing_below_the_facade_imports_it() {
    let crate_ = Analysis::of(&read_sources());
    for name in FACADE {
        assert!(
            crate_.modules.contains(*name),
            "FACADE names `{name}`, which is no module of hotmod (modules: {:?})",
            crate_.modules
        );
    }
    let imports = crate_.facade_imports(FACADE, ENTRY);
    assert!(
        imports.is_empty(),
        "\nmodules below the public façade {FACADE:?} that import it (only lib.rs, {ENTRY:?} and \
         the façade itself may):\n{}",
        imports
            .iter()
            .map(|((from, to), at)| format!("  {from} → {to}  (hotmod/src/{at})\n"))
            .collect::<String>()
    );
}

/// `hotmod/src`, every `.rs` file under it, keyed by its path relative to that directory.
fn read_sources() -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("reading {}: {e}", root.join(dir).display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let relative = dir.join(path.file_name().expect("file name"));
            if path.is_dir() {
                walk(root, &relative, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.insert(relative, text);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("hotmod/src");
    let mut sources = BTreeMap::new();
    walk(&root, Path::new(""), &mut sources);
    assert!(
        sources.contains_key(Path::new("lib.rs")),
        "no lib.rs in {}",
        root.display()
    );
    sources
}

// ---------------------------------------------------------------------------------------------
// Lexing.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// An identifier or keyword; `$crate` is one; a raw identifier without its `r#`.
    Ident(String),
    /// A string literal of any kind, its text between the quotes (escapes left as written).
    Str(String),
    /// `::`.
    PathSep,
    Punct(char),
    /// A number, char literal or lifetime.
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lex(source: &str) -> Vec<Token> {
    let s: Vec<char> = source.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips a quoted literal whose opening quote is at `i`; returns its text and the index past
    // its closing quote.
    let quoted = |mut i: usize, quote: char, line: &mut usize| -> (String, usize) {
        let start = i + 1;
        i += 1;
        while i < s.len() && s[i] != quote {
            if s[i] == '\\' {
                i += 1;
            }
            if s.get(i) == Some(&'\n') {
                *line += 1;
            }
            i += 1;
        }
        (s[start..i.min(s.len())].iter().collect(), i + 1)
    };
    while i < s.len() {
        let c = s[i];
        let token_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            let (text, next) = quoted(i, '"', &mut line);
            out.push(Token {
                tok: Tok::Str(text),
                line: token_line,
            });
            i = next;
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // An escaped char literal: '\n', '\'', '\u{1F600}'.
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
                while i < s.len() && is_ident_continue(s[i]) {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Other,
                line: token_line,
            });
        } else if is_ident_start(c) {
            // Literal prefixes first: r"…", r#"…"#, b"…", br"…", c"…", cr"…", b'…', r#ident.
            let raw_from = match (c, at(i + 1)) {
                ('b' | 'c', 'r') => Some(i + 2),
                ('r', _) => Some(i + 1),
                _ => None,
            };
            let hashes = raw_from.map_or(0, |j| (j..s.len()).take_while(|&k| s[k] == '#').count());
            if let Some(j) = raw_from.filter(|&j| at(j + hashes) == '"') {
                let start = j + hashes + 1;
                let mut k = start;
                while k < s.len() && !(s[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#')) {
                    if s[k] == '\n' {
                        line += 1;
                    }
                    k += 1;
                }
                out.push(Token {
                    tok: Tok::Str(s[start..k.min(s.len())].iter().collect()),
                    line: token_line,
                });
                i = k + 1 + hashes;
            } else if matches!(c, 'b' | 'c') && at(i + 1) == '"' {
                let (text, next) = quoted(i + 1, '"', &mut line);
                out.push(Token {
                    tok: Tok::Str(text),
                    line: token_line,
                });
                i = next;
            } else if c == 'b' && at(i + 1) == '\'' {
                let (_, next) = quoted(i + 1, '\'', &mut line);
                out.push(Token {
                    tok: Tok::Other,
                    line: token_line,
                });
                i = next;
            } else {
                let start = if c == 'r' && hashes == 1 && is_ident_start(at(i + 2)) {
                    i + 2
                } else {
                    i
                };
                let mut k = start;
                while k < s.len() && is_ident_continue(s[k]) {
                    k += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(s[start..k].iter().collect()),
                    line: token_line,
                });
                i = k;
            }
        } else if c.is_ascii_digit() {
            while i < s.len() && is_ident_continue(s[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Other,
                line: token_line,
            });
        } else if c == '$' && s[i + 1..].starts_with(&['c', 'r', 'a', 't', 'e']) {
            out.push(Token {
                tok: Tok::Ident("$crate".into()),
                line: token_line,
            });
            i += 6;
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line: token_line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line: token_line,
            });
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scanning one file: its `mod x;` declarations, its `use` items, its paths.

/// `mod name;` (a module in a file of its own).
#[derive(Debug)]
struct ModDecl {
    name: String,
    /// Its `#[path = "…"]`, if any.
    path: Option<String>,
    /// The inline modules (`mod a { … }`) it is declared in, outermost first.
    inline: Vec<String>,
}

/// A path as written, in the module it was written in.
#[derive(Clone, Debug)]
struct PathRef {
    /// The module it was written in: the file's module, then any inline modules.
    module: Vec<String>,
    /// Its segments as written (`crate`, `super`, `*` included; a group's `self` dropped).
    path: Vec<String>,
    /// For a `use`: the name it brings in (its `as` rename, else its last segment).
    imported_as: Option<String>,
    is_use: bool,
    line: usize,
}

#[derive(Debug, Default)]
struct Scan {
    mods: Vec<ModDecl>,
    paths: Vec<PathRef>,
}

fn is_path_start(tok: &Tok) -> bool {
    matches!(tok, Tok::Ident(s) if matches!(s.as_str(), "crate" | "$crate" | "self" | "super"))
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn tok(tokens: &[Token], i: usize) -> Option<&Tok> {
    tokens.get(i).map(|t| &t.tok)
}

/// Parses the use tree at `*i` (after `use`), under `prefix`: one `(path, imported name)` per
/// leaf. Leaves `*i` past the tree.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: &[String]) -> Vec<(Vec<String>, String)> {
    let mut path = prefix.to_vec();
    if tok(tokens, *i) == Some(&Tok::PathSep) {
        *i += 1;
    }
    loop {
        match tok(tokens, *i) {
            Some(Tok::Ident(segment)) => {
                path.push(segment.clone());
                *i += 1;
                if tok(tokens, *i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                let mut name = segment.clone();
                if ident(tokens, *i) == Some("as") {
                    name = ident(tokens, *i + 1).unwrap_or("_").to_owned();
                    *i += 2;
                }
                // `a::{self, …}` imports `a` itself.
                if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
                    path.pop();
                    if name == "self" {
                        name = path.last().cloned().unwrap_or_default();
                    }
                }
                return vec![(path, name)];
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                path.push("*".into());
                return vec![(path, "*".into())];
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                let mut leaves = Vec::new();
                loop {
                    match tok(tokens, *i) {
                        None => return leaves,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return leaves;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        Some(_) => {
                            let before = *i;
                            leaves.extend(use_tree(tokens, i, &path));
                            if *i == before {
                                *i += 1; // malformed: never loop forever
                            }
                        }
                    }
                }
            }
            _ => return Vec::new(),
        }
    }
}

/// Scans a file that is the module `module`.
fn scan(source: &str, module: &[String]) -> Scan {
    let tokens = lex(source);
    let mut out = Scan::default();
    // Inline modules open at this point, each with the brace depth its `{` opened.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut path_attr: Option<String> = None;
    let here = |inline: &[(String, usize)]| -> Vec<String> {
        module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect()
    };
    let mut i = 0;
    while i < tokens.len() {
        let line = tokens[i].line;
        match &tokens[i].tok {
            Tok::Punct('#')
                if tok(&tokens, i + 1) == Some(&Tok::Punct('['))
                    && ident(&tokens, i + 2) == Some("path")
                    && tok(&tokens, i + 3) == Some(&Tok::Punct('=')) =>
            {
                if let Some(Tok::Str(p)) = tok(&tokens, i + 4) {
                    path_attr = Some(p.clone());
                }
                i += 5;
            }
            Tok::Ident(kw) if kw == "use" => {
                i += 1;
                for (path, name) in use_tree(&tokens, &mut i, &[]) {
                    out.paths.push(PathRef {
                        module: here(&inline),
                        path,
                        imported_as: Some(name),
                        is_use: true,
                        line,
                    });
                }
            }
            Tok::Ident(kw) if kw == "mod" => match (ident(&tokens, i + 1), tok(&tokens, i + 2)) {
                (Some(name), Some(Tok::Punct(';'))) => {
                    out.mods.push(ModDecl {
                        name: name.to_owned(),
                        path: path_attr.take(),
                        inline: inline.iter().map(|(name, _)| name.clone()).collect(),
                    });
                    i += 3;
                }
                (Some(name), Some(Tok::Punct('{'))) => {
                    depth += 1;
                    inline.push((name.to_owned(), depth));
                    path_attr = None;
                    i += 3;
                }
                _ => i += 1,
            },
            t if is_path_start(t)
                && tok(&tokens, i + 1) == Some(&Tok::PathSep)
                && (i == 0 || tokens[i - 1].tok != Tok::PathSep) =>
            {
                let mut path = Vec::new();
                while let Some(segment) = ident(&tokens, i) {
                    path.push(segment.to_owned());
                    i += 1;
                    if tok(&tokens, i) != Some(&Tok::PathSep) {
                        break;
                    }
                    i += 1;
                }
                out.paths.push(PathRef {
                    module: here(&inline),
                    path,
                    imported_as: None,
                    is_use: false,
                    line,
                });
            }
            Tok::Punct('{') => {
                depth += 1;
                path_attr = None;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                path_attr = None;
                i += 1;
            }
            Tok::Punct(';') => {
                path_attr = None;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The crate: module tree, resolution, graph.

/// Where a path leads.
#[derive(Debug, PartialEq)]
enum Target {
    /// Into this top-level module.
    Module(String),
    /// Into another crate.
    External,
    /// Nowhere this test knows; the reason.
    Unresolved(String),
}

struct Analysis {
    /// The top-level modules (`mod x;` in lib.rs).
    modules: BTreeSet<String>,
    /// Names `lib.rs` brings in with `use`, by absolute path (`["Module"]`,
    /// `["__private", "call"]`): what they refer to, absolute (`None`: another crate's). One
    /// name may have several, under different `cfg`s (`Pinned`: `pinned` or the static `module`).
    reexports: BTreeMap<Vec<String>, Vec<Option<Vec<String>>>>,
    /// `from → to` between top-level modules, with the first place it occurs (`file:line`).
    edges: BTreeMap<(String, String), String>,
    /// Paths that resolved to nothing, with their places.
    unresolved: Vec<String>,
}

impl Analysis {
    /// Analyses a crate given as its source files, keyed by path relative to the directory of
    /// `lib.rs`.
    fn of(files: &BTreeMap<PathBuf, String>) -> Analysis {
        // Walk the module tree from lib.rs: (file, its module path, where its children's files are).
        let mut scans: Vec<(PathBuf, Vec<String>, Scan)> = Vec::new();
        let mut seen: BTreeSet<(PathBuf, Vec<String>)> = BTreeSet::new();
        let mut queue = VecDeque::from([(PathBuf::from("lib.rs"), Vec::new(), PathBuf::new())]);
        let mut unresolved = Vec::new();
        while let Some((file, module, dir)) = queue.pop_front() {
            if !seen.insert((file.clone(), module.clone())) {
                continue;
            }
            let Some(source) = files.get(&file) else {
                unresolved.push(format!(
                    "module {} is declared but {} does not exist",
                    module.join("::"),
                    file.display()
                ));
                continue;
            };
            let found = scan(source, &module);
            for decl in &found.mods {
                let mut child = module.clone();
                child.extend(decl.inline.iter().cloned());
                child.push(decl.name.clone());
                let base: PathBuf = decl.inline.iter().fold(dir.clone(), |d, m| d.join(m));
                let (child_file, child_dir) = match &decl.path {
                    Some(p) => {
                        let from = if decl.inline.is_empty() {
                            file.parent().unwrap_or(Path::new("")).to_path_buf()
                        } else {
                            base.clone()
                        };
                        let f = from.join(p);
                        let d = f.parent().unwrap_or(Path::new("")).to_path_buf();
                        (f, d)
                    }
                    None => {
                        let flat = base.join(format!("{}.rs", decl.name));
                        if files.contains_key(&flat) {
                            (flat, base.join(&decl.name))
                        } else {
                            (base.join(&decl.name).join("mod.rs"), base.join(&decl.name))
                        }
                    }
                };
                queue.push_back((child_file, child, child_dir));
            }
            scans.push((file, module, found));
        }
        // Files the walk did not reach: read as the module their location names.
        let reached: BTreeSet<PathBuf> = seen.iter().map(|(f, _)| f.clone()).collect();
        for (file, source) in files {
            if reached.contains(file) {
                continue;
            }
            let mut module: Vec<String> = file
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            scans.push((file.clone(), module.clone(), scan(source, &module)));
        }

        let lib = scans
            .iter()
            .find(|(_, module, _)| module.is_empty())
            .map(|(_, _, scan)| scan);
        let modules: BTreeSet<String> = lib
            .map(|scan| {
                scan.mods
                    .iter()
                    .filter(|m| m.inline.is_empty())
                    .map(|m| m.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut analysis = Analysis {
            modules,
            reexports: BTreeMap::new(),
            edges: BTreeMap::new(),
            unresolved,
        };
        for r in lib.map(|scan| scan.paths.as_slice()).unwrap_or_default() {
            let Some(name) = r.imported_as.as_ref().filter(|_| r.is_use) else {
                continue;
            };
            let mut key = r.module.clone();
            key.push(name.clone());
            let target = match absolute(&r.module, &r.path) {
                Ok(Some(path)) => Some(path),
                // A bare path in lib.rs itself names a module of the crate or another crate.
                Ok(None) if r.module.is_empty() && analysis.modules.contains(&r.path[0]) => {
                    Some(r.path.clone())
                }
                Ok(None) => None,
                Err(_) => continue,
            };
            analysis.reexports.entry(key).or_default().push(target);
        }
        for (file, module, scan) in &scans {
            let Some(from) = module.first() else {
                continue; // lib.rs: the façade root
            };
            for r in &scan.paths {
                let place = format!("{}:{}", file.display(), r.line);
                let targets = match absolute(&r.module, &r.path) {
                    Ok(Some(path)) => analysis.resolve(&path, 0),
                    Ok(None) => vec![Target::External],
                    Err(why) => vec![Target::Unresolved(why)],
                };
                for target in targets {
                    match target {
                        Target::Module(to) if &to != from => {
                            analysis
                                .edges
                                .entry((from.clone(), to))
                                .or_insert_with(|| place.clone());
                        }
                        Target::Unresolved(why) => {
                            analysis.unresolved.push(format!("{place}: {why}"))
                        }
                        _ => {}
                    }
                }
            }
        }
        analysis
    }

    /// The top-level module(s) an absolute path (`["module", "Module"]`) points into: more
    /// than one when lib.rs re-exports a name from different modules under different `cfg`s.
    fn resolve(&self, path: &[String], hops: usize) -> Vec<Target> {
        let shown = || format!("crate::{}", path.join("::"));
        let Some(first) = path.first() else {
            return vec![Target::Unresolved("a path to the crate root itself".into())];
        };
        if first == "*" {
            return vec![Target::Unresolved(format!(
                "{}: a glob of the crate root",
                shown()
            ))];
        }
        // A module is in the type namespace: it wins over a same-named function lib.rs
        // re-exports (`snapshot::snapshot`).
        if self.modules.contains(first) {
            return vec![Target::Module(first.clone())];
        }
        if hops > 8 {
            return vec![Target::Unresolved(format!(
                "{}: re-exports that go round",
                shown()
            ))];
        }
        for len in (1..=path.len()).rev() {
            if let Some(targets) = self.reexports.get(&path[..len]) {
                return targets
                    .iter()
                    .flat_map(|target| match target {
                        None => vec![Target::External],
                        Some(to) => {
                            let mut next = to.clone();
                            next.extend(path[len..].iter().cloned());
                            self.resolve(&next, hops + 1)
                        }
                    })
                    .collect();
            }
        }
        vec![Target::Unresolved(format!(
            "{}: no such module or lib.rs re-export",
            shown()
        ))]
    }

    /// Every cycle through the edges of each strongly connected component: for each such edge
    /// `u → v`, `u → v → … → u` with a shortest way back; each rotated to start at its least
    /// module, without repeats.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles = BTreeSet::new();
        for (u, v) in self.edges.keys() {
            if let Some(back) = self.shortest_path(v, u) {
                let mut cycle = vec![u.clone()];
                cycle.extend(back);
                cycle.pop(); // `u` again
                let least = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
                cycle.rotate_left(least);
                cycle.push(cycle[0].clone());
                cycles.insert(cycle);
            }
        }
        cycles.into_iter().collect()
    }

    fn on_a_cycle(&self, from: &str, to: &str) -> bool {
        self.shortest_path(to, from).is_some()
    }

    /// The modules on a shortest path `from → … → to` (both included), by breadth-first search.
    fn shortest_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = BTreeSet::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = vec![to.to_owned()];
                let mut at = to;
                while at != from {
                    at = previous[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return Some(path);
            }
            for (a, b) in self.edges.keys() {
                if a == node && seen.insert(b.as_str()) {
                    previous.insert(b.as_str(), node);
                    queue.push_back(b.as_str());
                }
            }
        }
        None
    }

    /// The edges into a façade module, from any module (lib.rs's edges are not recorded).
    fn facade_imports(&self, facade: &[&str], entry: &[&str]) -> Vec<(&(String, String), &String)> {
        let above = |m: &str| facade.contains(&m) || entry.contains(&m);
        self.edges
            .iter()
            .filter(|((from, to), _)| facade.contains(&to.as_str()) && !above(from))
            .collect()
    }
}

/// Resolves the leading `crate`/`$crate`/`self`/`super`s of a path written in `module`: the
/// absolute path, `None` for a bare path (another crate's, or a name already in scope), or why
/// it cannot be resolved.
fn absolute(module: &[String], path: &[String]) -> Result<Option<Vec<String>>, String> {
    let mut base = match path.first().map(String::as_str) {
        Some("crate" | "$crate") => Vec::new(),
        Some("self" | "super") => module.to_vec(),
        _ => return Ok(None),
    };
    let mut rest = &path[usize::from(matches!(path[0].as_str(), "crate" | "$crate" | "self"))..];
    while let Some(("super", tail)) = rest.split_first().map(|(s, t)| (s.as_str(), t)) {
        if base.pop().is_none() {
            return Err(format!("{}: `super` above the crate root", path.join("::")));
        }
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Ok(Some(base))
}

// ---------------------------------------------------------------------------------------------
// Self-tests: the parser on small sources, so the checks above can be seen to bite.

fn paths_of(source: &str) -> Vec<String> {
    scan(source, &["m".to_owned()])
        .paths
        .iter()
        .map(|r| r.path.join("::"))
        .collect()
}

fn crate_of(files: &[(&str, &str)]) -> Analysis {
    Analysis::of(
        &files
            .iter()
            .map(|(path, source)| (PathBuf::from(path), source.to_string()))
            .collect(),
    )
}

fn edges_of(analysis: &Analysis) -> Vec<String> {
    analysis
        .edges
        .keys()
        .map(|(a, b)| format!("{a} → {b}"))
        .collect()
}

#[test]
fn self_test_comments_and_literals_are_not_code() {
    let source = r####"
        // use crate::line_comment;
        /// crate::doc_comment::x
        //! crate::inner_doc
        /* crate::block /* crate::nested */ crate::still_in_block */
        const A: &str = "crate::string \" crate::escaped";
        const B: &str = r#"crate::raw " crate::raw_quote"#;
        const C: &[u8] = b"crate::bytes";
        const D: &str = r"crate::raw_no_hash";
        const E: char = '"';
        const F: char = '\'';
        const G: u8 = b'"';
        fn f<'a>(x: &'a str) -> &'a str { crate::real::one(x) }
        const H: &str = "multi
            line crate::in_string";
        fn g() { let r#type = 1; crate::real::two(r#type) }
    "####;
    assert_eq!(paths_of(source), ["crate::real::one", "crate::real::two"]);
}

#[test]
fn self_test_use_groups_nested_renames_and_globs() {
    let source = "
        use crate::{a, b::{c, d as e, self}, f::*};
        use crate::{g::{h::{i, j}}};
        pub(crate) use super::k;
        use std::collections::HashMap;
        use ::core::mem;
        fn x() -> usize { crate::l::m::<crate::n::O>() + self::p() + super::super::q::r() }
    ";
    assert_eq!(
        paths_of(source),
        [
            "crate::a",
            "crate::b::c",
            "crate::b::d",
            "crate::b",
            "crate::f::*",
            "crate::g::h::i",
            "crate::g::h::j",
            "super::k",
            "std::collections::HashMap",
            "core::mem",
            "crate::l::m",
            "crate::n::O",
            "self::p",
            "super::super::q::r",
        ]
    );
    let renamed: Vec<_> = scan(source, &[])
        .paths
        .iter()
        .filter_map(|r| r.imported_as.clone())
        .collect();
    assert_eq!(
        renamed[..5],
        ["a", "c", "e", "b", "*"].map(String::from),
        "`as` renames and `self` in a group"
    );
}

#[test]
fn self_test_super_resolves_through_inline_and_file_modules() {
    let analysis = crate_of(&[
        (
            "lib.rs",
            "mod a; mod b; #[cfg(unix)] #[path = \"c_impl.rs\"] pub(crate) mod c;
             pub use b::Thing;
             pub mod api { pub use crate::a::Api; }
             use crate::a::Api as _;",
        ),
        (
            "a.rs",
            "use crate::b::X;
             pub struct Api;
             mod inner { fn f() { super::super::c::y(); } }
             #[cfg(test)] mod tests { use super::*; fn t() { self::super::Api; } }",
        ),
        ("b/mod.rs", "mod sub; pub struct Thing; pub struct X;"),
        (
            "b/sub.rs",
            "use super::super::a; fn f() { let _ = super::Thing; let _ = crate::Thing; }",
        ),
        ("c_impl.rs", "fn g() { let _ = crate::api::Api; }"),
    ]);
    assert_eq!(analysis.unresolved, Vec::<String>::new());
    assert_eq!(
        analysis.modules,
        ["a", "b", "c"].map(String::from).into_iter().collect()
    );
    assert_eq!(edges_of(&analysis), ["a → b", "a → c", "b → a", "c → a"]);
    assert_eq!(
        analysis.edges[&("a".into(), "c".into())],
        "a.rs:3",
        "the place of an edge"
    );
    let cycles: Vec<String> = analysis.cycles().iter().map(|c| c.join(" → ")).collect();
    assert_eq!(cycles, ["a → b → a", "a → c → a"]);
    let facade = |facade: &[&str], entry: &[&str]| -> Vec<String> {
        analysis
            .facade_imports(facade, entry)
            .iter()
            .map(|((from, to), _)| format!("{from} → {to}"))
            .collect()
    };
    assert_eq!(facade(&["a"], &[]), ["b → a", "c → a"]);
    // An entry point above the façade, or another façade module, may import it.
    assert_eq!(facade(&["a"], &["b"]), ["c → a"]);
    assert_eq!(facade(&["a", "c"], &[]), ["b → a"]);
}

#[test]
fn self_test_a_longer_cycle_prints_in_order() {
    let analysis = crate_of(&[
        ("lib.rs", "mod x; mod y; mod z; mod w; pub use x::*;"),
        ("x.rs", "use crate::y::Y; use crate::w;"),
        ("y.rs", "pub struct Y; fn f() { crate::z::g() }"),
        ("z.rs", "pub fn g() { let _ = crate::x::X; }"),
        ("w.rs", "// crate::x is only a comment"),
    ]);
    assert_eq!(analysis.unresolved, Vec::<String>::new());
    let cycles: Vec<String> = analysis.cycles().iter().map(|c| c.join(" → ")).collect();
    assert_eq!(cycles, ["x → y → z → x"]);
    assert!(analysis.on_a_cycle("x", "y") && !analysis.on_a_cycle("x", "w"));
    let acyclic = crate_of(&[
        ("lib.rs", "mod x; mod y;"),
        ("x.rs", "use crate::y::Y;"),
        ("y.rs", "pub struct Y;"),
    ]);
    assert!(acyclic.cycles().is_empty());
}

#[test]
fn self_test_unresolvable_paths_are_reported_not_skipped() {
    let analysis = crate_of(&[
        ("lib.rs", "mod a; pub use a::A;"),
        (
            "a.rs",
            "pub struct A; fn f() { crate::nowhere::g(); crate::A; } use super::*;",
        ),
    ]);
    assert_eq!(
        analysis.unresolved,
        [
            "a.rs:1: crate::nowhere::g: no such module or lib.rs re-export",
            "a.rs:1: crate::*: a glob of the crate root",
        ]
    );
    let missing = crate_of(&[("lib.rs", "mod gone;")]);
    assert_eq!(
        missing.unresolved,
        ["module gone is declared but gone/mod.rs does not exist"]
    );
}
