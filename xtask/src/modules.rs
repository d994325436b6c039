//! Circles of modules inside a crate: module A names module B (`use crate::b::X`, `super::x`,
//! `child::x` paths, in `use` lines or inline) and B names A, directly or through others. The
//! layering keeps the crates in one direction; this keeps each crate's files in one direction too,
//! so that a file can be read knowing only those it names.
//!
//! The graph is read from the sources as text (no compiler): comments, strings and
//! `#[cfg(test)]` items are left out, a path through a re-export (`pub use`) is followed to the
//! module that defines the item, and the crate root (`lib.rs`, `main.rs`) only counts for what it
//! defines itself. Good enough for this workspace's code, which the tests below pin.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path inside its crate: `[]` for the root, `["commands", "run"]`, ...
type ModPath = Vec<String>;

/// Circles known and being taken apart elsewhere, so that the check guards every other crate
/// meanwhile: (crate, the circle's modules, sorted). A circle not listed fails the check, and so
/// does a listed one that is gone (remove its line then).
pub const KNOWN_CIRCLES: &[(&str, &[&str])] = &[];

/// What is wrong with the module graph of `krate` (sources under `src`): its circles that are
/// not in [`KNOWN_CIRCLES`], and the known ones it no longer has.
pub fn problems(krate: &str, src: &Path) -> Result<Vec<String>, String> {
    let found = circles(src)?;
    let known: Vec<Vec<String>> = KNOWN_CIRCLES
        .iter()
        .filter(|(c, _)| *c == krate)
        .map(|(_, m)| m.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    let mut out: Vec<String> = found
        .iter()
        .filter(|c| !known.contains(c))
        .map(|c| format!("{krate}: modules in a circle: {}", c.join(", ")))
        .collect();
    out.extend(known.iter().filter(|k| !found.contains(k)).map(|k| {
        format!(
            "{krate}: the known circle {} is gone: remove it from KNOWN_CIRCLES",
            k.join(", ")
        )
    }));
    Ok(out)
}

/// The circles (strongly connected groups of more than one module) of the crate whose sources
/// are under `src`, each as sorted `a::b` names (`crate` for the root), sorted.
pub fn circles(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let graph = Graph::read(src)?;
    let mut out: Vec<Vec<String>> = graph
        .components()
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|m| name(m)).collect();
            names.sort();
            names
        })
        .collect();
    out.sort();
    Ok(out)
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

struct Module {
    /// Names re-exported here (`pub use path::{a, b as c}`): name → path.
    reexports: BTreeMap<String, Vec<String>>,
    /// Paths this module names (from `use` lines and inline).
    uses: Vec<Vec<String>>,
}

struct Graph {
    modules: BTreeMap<ModPath, Module>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            rs_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn mod_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    match parts.last().map(String::as_str) {
        Some("lib" | "main") if parts.len() == 1 => parts.clear(),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The source without comments, string and char literals (each kept as `""`), so that what is
/// left is code.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if (c == 'r' || c == 'b')
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| is_ident(*p))
            && raw_string_end(&chars, i).is_some()
        {
            i = raw_string_end(&chars, i).unwrap_or(i + 1);
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is
            // skipped.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where a raw or byte string starting at `i` (`r"`, `r#"`, `br"`, `b"`) ends, just past it.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    if !raw {
        // b"...": an ordinary string with a prefix.
        if j == i + 1 && chars.get(j) == Some(&'"') {
            let mut k = j + 1;
            while k < chars.len() && chars[k] != '"' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            return Some(k + 1);
        }
        return None;
    }
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    let mut k = j + 1;
    while k < chars.len() {
        if chars[k] == '"'
            && chars[k + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(chars.len())
}

/// The text without the items under `#[cfg(test)]` (a test module, function or import).
fn without_tests(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let Some(end) = after.find(['{', ';']) else {
            rest = "";
            break;
        };
        if after.as_bytes()[end] == b';' {
            rest = &after[end + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut close = after.len();
        for (k, c) in after[end..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = end + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[close.min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e as f`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree
        .chars()
        .filter(|c| !c.is_whitespace() || *c == ' ')
        .collect();
    let tree = tree.replace(' ', "\u{1}");
    fn rec(prefix: &str, s: &str, out: &mut Vec<String>) {
        let mut depth = 0;
        let mut cur = String::new();
        let mut parts = Vec::new();
        for c in s.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if c == ',' && depth == 0 {
                parts.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
        }
        parts.push(cur);
        for p in parts {
            let p = p.trim_matches('\u{1}');
            if p.is_empty() {
                continue;
            }
            match p.find('{') {
                Some(open) => {
                    let inner = &p[open + 1..p.rfind('}').unwrap_or(p.len())];
                    rec(&format!("{prefix}{}", &p[..open]), inner, out);
                }
                None => out.push(format!("{prefix}{p}")),
            }
        }
    }
    let mut out = Vec::new();
    rec("", &tree, &mut out);
    out.into_iter().map(|p| p.replace('\u{1}', " ")).collect()
}

/// `(is_pub, tree, start, end)` of each `use` item.
fn use_items(text: &str) -> Vec<(bool, String, usize, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(k) = text[from..].find("use ") {
        let at = from + k;
        from = at + 4;
        if at > 0 && is_ident(char::from(bytes[at - 1])) {
            continue;
        }
        let Some(semi) = text[at..].find(';') else {
            break;
        };
        let before = text[..at].trim_end();
        let is_pub = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let start = if is_pub {
            before.rfind("pub").unwrap_or(at)
        } else {
            at
        };
        out.push((
            is_pub,
            text[at + 4..at + semi].to_owned(),
            start,
            at + semi + 1,
        ));
        from = at + semi + 1;
    }
    out
}

/// Every `x::y::z` path in `text` that starts with `crate`, `super`, `self` or one of `heads`.
fn inline_paths(text: &str, heads: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':');
        if !starts {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segs.push(chars[s..j].iter().collect::<String>());
            if chars.get(j) == Some(&':')
                && chars.get(j + 1) == Some(&':')
                && chars.get(j + 2).is_some_and(|c| is_ident(*c))
            {
                j += 2;
            } else {
                break;
            }
        }
        let first = segs[0].as_str();
        if segs.len() > 1 && (matches!(first, "crate" | "super" | "self") || heads.contains(first))
        {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out
}

impl Graph {
    fn read(src: &Path) -> Result<Graph, String> {
        let mut files = Vec::new();
        rs_files(src, &mut files)?;
        let mut texts = BTreeMap::new();
        for file in files {
            if let Some(m) = mod_path(src, &file) {
                let text = fs::read_to_string(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?;
                texts.insert(m, without_tests(&strip(&text)));
            }
        }
        // A file counts only if its parent declares it outside test code.
        let declared = |m: &ModPath| {
            (1..=m.len()).all(|n| {
                let parent = &m[..n - 1];
                texts.get(parent).is_some_and(|t: &String| {
                    let name = &m[n - 1];
                    t.match_indices(&format!("mod {name}")).any(|(at, _)| {
                        let after = t[at + 4 + name.len()..].trim_start();
                        (after.starts_with(';') || after.starts_with('{'))
                            && !t[..at].ends_with(|c: char| is_ident(c))
                    })
                })
            })
        };
        let kept: BTreeSet<ModPath> = texts.keys().filter(|m| declared(m)).cloned().collect();
        let mut modules = BTreeMap::new();
        for m in &kept {
            let text = texts.get(m).cloned().unwrap_or_default();
            let children: BTreeSet<String> = kept
                .iter()
                .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
                .filter_map(|k| k.last().cloned())
                .collect();
            let mut reexports = BTreeMap::new();
            let mut uses = Vec::new();
            let mut code = text.clone();
            for (is_pub, tree, start, end) in use_items(&text).into_iter().rev() {
                for path in expand_use(&tree) {
                    let (path, alias) = match path.split_once(" as ") {
                        Some((p, a)) => (p.to_owned(), Some(a.trim().to_owned())),
                        None => (path, None),
                    };
                    let segs: Vec<String> = path.split("::").map(str::to_owned).collect();
                    if is_pub {
                        if let Some(last) = segs.last() {
                            let key = alias.unwrap_or_else(|| last.clone());
                            if key != "*" {
                                reexports.insert(key, segs);
                            }
                        }
                    } else {
                        uses.push(segs);
                    }
                }
                code.replace_range(start..end, "");
            }
            uses.extend(inline_paths(&code, &children));
            modules.insert(m.clone(), Module { reexports, uses });
        }
        Ok(Graph { modules })
    }

    /// The module `segs` (named from `from`) leads to; `None` for another crate.
    fn resolve(&self, from: &ModPath, segs: &[String], depth: usize) -> Option<ModPath> {
        if depth > 16 || segs.is_empty() {
            return None;
        }
        let (mut cur, mut rest) = match segs[0].as_str() {
            "crate" => (Vec::new(), &segs[1..]),
            "super" => (from[..from.len().saturating_sub(1)].to_vec(), &segs[1..]),
            "self" => (from.clone(), &segs[1..]),
            first => {
                let mut child = from.clone();
                child.push(first.to_owned());
                if !self.modules.contains_key(&child) {
                    return None;
                }
                (from.clone(), segs)
            }
        };
        while rest.first().is_some_and(|s| s == "super") {
            cur.pop();
            rest = &rest[1..];
        }
        for s in rest {
            let mut child = cur.clone();
            child.push(s.clone());
            if self.modules.contains_key(&child) {
                cur = child;
                continue;
            }
            let target = self.modules.get(&cur)?.reexports.get(s);
            return match target {
                Some(path) => self.resolve(&cur, path, depth + 1).or(Some(cur)),
                None => Some(cur),
            };
        }
        Some(cur)
    }

    fn edges(&self) -> BTreeMap<&ModPath, BTreeSet<ModPath>> {
        self.modules
            .iter()
            .map(|(m, module)| {
                let targets = module
                    .uses
                    .iter()
                    .filter_map(|segs| {
                        let segs: Vec<String> =
                            segs.iter().filter(|s| *s != "*").cloned().collect();
                        self.resolve(m, &segs, 0)
                    })
                    .filter(|t| t != m)
                    .collect();
                (m, targets)
            })
            .collect()
    }

    /// Strongly connected components (Tarjan).
    fn components(&self) -> Vec<Vec<ModPath>> {
        struct State<'g> {
            edges: BTreeMap<&'g ModPath, BTreeSet<ModPath>>,
            index: BTreeMap<ModPath, usize>,
            low: BTreeMap<ModPath, usize>,
            stack: Vec<ModPath>,
            on: BTreeSet<ModPath>,
            out: Vec<Vec<ModPath>>,
        }
        fn visit(s: &mut State<'_>, v: &ModPath) {
            let n = s.index.len();
            s.index.insert(v.clone(), n);
            s.low.insert(v.clone(), n);
            s.stack.push(v.clone());
            s.on.insert(v.clone());
            let next: Vec<ModPath> = s.edges.get(v).into_iter().flatten().cloned().collect();
            for w in next {
                if !s.index.contains_key(&w) {
                    visit(s, &w);
                    let lw = s.low[&w];
                    let lv = s.low[v];
                    s.low.insert(v.clone(), lv.min(lw));
                } else if s.on.contains(&w) {
                    let iw = s.index[&w];
                    let lv = s.low[v];
                    s.low.insert(v.clone(), lv.min(iw));
                }
            }
            if s.low[v] == s.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on.remove(&w);
                    let done = &w == v;
                    comp.push(w);
                    if done {
                        break;
                    }
                }
                s.out.push(comp);
            }
        }
        let mut s = State {
            edges: self.edges(),
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on: BTreeSet::new(),
            out: Vec::new(),
        };
        for m in self.modules.keys() {
            if !s.index.contains_key(m) {
                visit(&mut s, m);
            }
        }
        s.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> tempfile_free::Dir {
        tempfile_free::Dir::with(files)
    }

    /// A scratch directory under `target/`, removed on drop (xtask has no tempfile dependency).
    mod tempfile_free {
        use std::path::{Path, PathBuf};

        pub struct Dir(pub PathBuf);

        impl Dir {
            pub fn with(files: &[(&str, &str)]) -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/xtask-modules-test")
                    .join(format!("{}-{n}", std::process::id()));
                for (path, text) in files {
                    let p = dir.join(path);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, text).unwrap();
                }
                Dir(dir)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn no_crate_of_the_workspace_has_a_circle_of_modules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (name, _) in crate::manifests::LAYERS {
            let found = problems(name, &root.join(name).join("src")).unwrap();
            assert!(found.is_empty(), "{}", found.join("\n"));
        }
    }

    #[test]
    fn a_circle_is_found_through_uses_paths_and_reexports() {
        let dir = crate_of(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Thing;\n"),
            ("src/a.rs", "use crate::b::helper;\n"),
            ("src/b.rs", "pub fn helper() -> crate::Thing { todo!() }\n"),
            ("src/c.rs", "pub struct Thing;\nfn f() { super::a::g(); }\n"),
        ]);
        assert_eq!(
            circles(&dir.0.join("src")).unwrap(),
            vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
        );
    }

    #[test]
    fn comments_strings_tests_and_other_crates_do_not_count() {
        let dir = crate_of(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            (
                "src/a.rs",
                "use crate::b::x;\n// crate::a::y\nconst S: &str = \"crate::a::z\";\n",
            ),
            (
                "src/b.rs",
                "pub fn x() { let _ = r#\"crate::a\"#; let c = '\"'; }\n\
                 #[cfg(test)]\nmod tests { use crate::a; }\nuse other::a::b;\n",
            ),
        ]);
        assert!(circles(&dir.0.join("src")).unwrap().is_empty());
    }

    #[test]
    fn a_parent_and_a_child_that_name_each_other_are_a_circle() {
        let dir = crate_of(&[
            (
                "src/main.rs",
                "mod commands;\nfn main() { commands::run(); }\n",
            ),
            (
                "src/commands/mod.rs",
                "mod run;\npub fn run() { run::go() }\npub fn emit() {}\n",
            ),
            (
                "src/commands/run.rs",
                "use crate::commands::emit;\npub fn go() { emit() }\n",
            ),
        ]);
        assert_eq!(
            circles(&dir.0.join("src")).unwrap(),
            vec![vec!["commands".to_owned(), "commands::run".to_owned()]]
        );
    }
}
