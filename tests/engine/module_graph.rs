//! The library's modules import each other without a cycle, so that the engine stays layered
//! (`docs/design.md`, "The module graph"): a change that makes a lower module import a higher
//! one fails here, naming the modules of the cycle.
//!
//! A module is a file `src/NAME.rs` together with `src/NAME/*.rs`; its imports are the
//! `crate::NAME` paths outside its `#[cfg(test)] mod tests`. (The CLI is a crate of its own,
//! `crates/eventfile-cli`, so everything under `src/` is the library.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules it imports.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    // Each file's code without its tests: cut per file, since a module's files are read in
    // directory order and a cut of their concatenation would drop the files after the first
    // one with tests (it hid `event.rs` behind `event/json_text.rs`).
    let code = |path: &Path| -> String {
        let text = std::fs::read_to_string(path).unwrap();
        text.split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .to_owned()
    };
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" {
            continue;
        }
        let text = texts.entry(stem.to_owned()).or_default();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).unwrap() {
                let sub = sub.unwrap().path();
                if sub.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&code(&sub));
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&code(&path));
        }
    }
    let names: BTreeSet<String> = texts.keys().cloned().collect();
    texts
        .iter()
        .map(|(name, code)| {
            let deps = imports(code)
                .into_iter()
                .filter(|d| d != name && names.contains(d))
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// The first segment of every `crate::` path in `code`, including each name of a grouped
/// `use crate::{a, b::c};`.
fn imports(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                    }
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in &self.g[v] {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut walk = Walk {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn the_library_modules_import_each_other_without_a_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.len() > 20, "found only {} modules: {g:?}", g.len());
    assert!(g["writer"].contains("state") && g["state"].contains("segments"));
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "modules that import each other: {found:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        imports("use crate::{a::{X, Y}, b, c::d};\nlet _ = crate::e::f();"),
        ["a", "b", "c", "e"].map(str::to_owned).into()
    );
}

/// Each module's layer: 0 for one that imports none of the others, else one above the highest
/// of its imports (the graph has no cycle: the test above).
fn layers(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, usize> {
    fn layer(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        done: &mut BTreeMap<String, usize>,
    ) -> usize {
        if let Some(&l) = done.get(m) {
            return l;
        }
        let l = g[m]
            .iter()
            .map(|d| layer(g, d, done) + 1)
            .max()
            .unwrap_or(0);
        done.insert(m.to_owned(), l);
        l
    }
    let mut done = BTreeMap::new();
    for m in g.keys() {
        layer(g, m, &mut done);
    }
    done
}

/// The two blocks of `docs/design.md`'s "The module graph": the layers, highest first, and the
/// imports, module by module (wrapped at 100 columns).
fn rendered(g: &BTreeMap<String, BTreeSet<String>>) -> (String, String) {
    let layers = layers(g);
    let top = layers.values().copied().max().unwrap_or(0);
    let mut by_layer = String::new();
    for l in (0..=top).rev() {
        let names: Vec<&str> = layers
            .iter()
            .filter(|&(_, &k)| k == l)
            .map(|(m, _)| m.as_str())
            .collect();
        by_layer.push_str(&format!("{l:>2}  {}\n", names.join("  ")));
    }
    let mut imports = String::new();
    for (m, deps) in g {
        let mut line = format!("{m:<10} ->");
        for d in deps {
            if line.len() + 1 + d.len() > 100 {
                imports.push_str(&line);
                imports.push('\n');
                line = " ".repeat(12);
            }
            line.push(' ');
            line.push_str(d);
        }
        imports.push_str(&line);
        imports.push('\n');
    }
    (by_layer, imports)
}

/// The text of the first fenced block after `heading` in `doc`.
fn block_after<'a>(doc: &'a str, heading: &str) -> &'a str {
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/design.md has no {heading:?}"));
    let rest = &doc[at..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let len = rest[start..].find("```").expect("the block's end");
    &rest[start..start + len]
}

/// `docs/design.md` shows the module graph as `src/` has it: its layers and every module's
/// imports. On a change of the graph, this prints the blocks to put there.
#[test]
fn design_md_shows_the_module_graph_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let g = graph(&root.join("src"));
    let (by_layer, imports) = rendered(&g);
    let doc = std::fs::read_to_string(root.join("docs/design.md")).unwrap();
    assert!(
        block_after(&doc, "Each line is a layer") == by_layer
            && block_after(&doc, "The imports, module by module") == imports,
        "docs/design.md's module graph differs from src/: its two blocks should read\n\
         ```text\n{by_layer}```\n\n```text\n{imports}```"
    );
}
