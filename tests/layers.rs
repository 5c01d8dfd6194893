//! The one-way data flow, checked on the source: capture → pipeline → sink → store →
//! report → api / cli. For each crate (`src/`, `core/src/`) the top-level modules'
//! `crate::X` imports (test code left out) must form no cycle, and the pairs the design
//! forbids (a lower layer importing a higher one, `api` and `cli` importing each other)
//! must not occur. Reads files only; no build artefacts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source without its test code: files named `tests.rs`/`*_test.rs` and whatever follows
/// a `#[cfg(test)]` attribute (by convention the tests module closes a file).
fn production_code(root: &Path, p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    let in_tests_dir = p.strip_prefix(root).ok()?.components().any(|c| c.as_os_str() == "tests");
    if name == "tests.rs" || name.ends_with("_test.rs") || in_tests_dir {
        return None;
    }
    let src = std::fs::read_to_string(p).ok()?;
    Some(match src.find("#[cfg(test)]") {
        Some(i) => src[..i].to_string(),
        None => src,
    })
}

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let top = |p: &Path| -> Option<String> {
        let first = p.strip_prefix(root).ok()?.components().next()?.as_os_str().to_str()?.to_string();
        let m = first.trim_end_matches(".rs").to_string();
        (m != "lib" && m != "main").then_some(m)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| top(p)).collect();
    let mut g: Graph = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for p in &files {
        let (Some(m), Some(src)) = (top(p), production_code(root, p)) else { continue };
        for (i, _) in src.match_indices("crate::") {
            let name: String = src[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if name != m && modules.contains(&name) {
                g.entry(m.clone()).or_default().insert(name);
            }
        }
    }
    g
}

/// Modules on a cycle (each reaches itself).
fn on_cycles(g: &Graph) -> Vec<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = g[from].iter().map(String::as_str).collect();
        while let Some(v) = stack.pop() {
            if v == to {
                return true;
            }
            if seen.insert(v) {
                stack.extend(g.get(v).into_iter().flatten().map(String::as_str));
            }
        }
        false
    };
    g.keys().filter(|m| reaches(m, m)).cloned().collect()
}

const FORBIDDEN: &[(&str, &str)] = &[
    ("api", "cli"),
    ("cli", "api"),
    ("store", "sink"),
    ("store", "pipeline"),
    ("store", "report"),
    ("store", "api"),
    ("store", "cli"),
    ("report", "api"),
    ("report", "cli"),
    ("report", "pipeline"),
    ("sink", "pipeline"),
    ("capture", "pipeline"),
    ("capture", "sink"),
    ("capture", "store"),
];

fn check(root: &Path) -> Vec<String> {
    let g = graph(root);
    let mut problems: Vec<String> = on_cycles(&g)
        .into_iter()
        .map(|m| format!("{}: {m} is on an import cycle: {:?}", root.display(), g[&m]))
        .collect();
    for (a, b) in FORBIDDEN {
        if g.get(*a).is_some_and(|s| s.contains(*b)) {
            problems.push(format!("{}: {a} imports {b}", root.display()));
        }
    }
    problems
}

#[test]
fn imports_flow_one_way() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = check(&here.join("src"));
    problems.extend(check(&here.join("core/src")));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_check_sees_a_cycle_and_a_sideways_import() {
    let dir = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w("api/mod.rs", "use crate::cli::x;\n");
    w("cli/mod.rs", "use crate::store::y;\n");
    w("store/mod.rs", "use crate::sink::z;\n#[cfg(test)]\nmod tests { use crate::api; }\n");
    w("sink.rs", "use crate::store::q;\n");
    let p = check(dir.path());
    assert!(p.iter().any(|l| l.ends_with("api imports cli")), "{p:?}");
    assert!(p.iter().any(|l| l.ends_with("store imports sink")), "{p:?}");
    assert!(p.iter().any(|l| l.contains("sink is on an import cycle")), "{p:?}");
    // Test code is not counted: store's tests import api, and that is no cycle.
    assert!(!p.iter().any(|l| l.contains("api is on an import cycle")), "{p:?}");
}
