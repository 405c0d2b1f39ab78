//! The layering rules of docs/ARCHITECTURE.md §2, checked on the source: no two top-level
//! modules import each other, directly or round a loop; nothing but the wiring imports the
//! routes or the wiring; the use cases know nothing of HTTP; the domain runs no SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name as `crate::…`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
            if module == "main" || module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let named = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    named.insert(name);
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for named in graph.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    graph
}

/// Whether `to` can be reached from `from` along imports.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_top_level_module_imports_itself_round_a_loop() {
    let graph = imports();
    assert!(graph.contains_key("services") && graph.contains_key("db"));
    let loops: Vec<String> = graph
        .keys()
        .filter(|m| reaches(&graph, m, m))
        .cloned()
        .collect();
    assert!(loops.is_empty(), "modules on an import loop: {loops:?}");
}

#[test]
fn only_the_wiring_imports_the_routes_and_the_wiring() {
    let graph = imports();
    for (module, named) in &graph {
        if module != "startup" && module != "routes" {
            assert!(!named.contains("routes"), "{module} imports routes");
        }
        if module != "startup" {
            assert!(!named.contains("startup"), "{module} imports startup");
        }
    }
}

#[test]
fn the_use_cases_know_nothing_of_http_and_the_domain_runs_no_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.join("services"), root.join("domain")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for forbidden in ["actix_web", "ApiError", "HttpResponse"] {
                assert!(
                    !code.contains(forbidden),
                    "{} uses {forbidden}",
                    path.display()
                );
            }
            if path.starts_with(root.join("domain")) {
                for forbidden in ["crate::db", "sql_query", "RunQueryDsl"] {
                    assert!(
                        !code.contains(forbidden),
                        "{} uses {forbidden}",
                        path.display()
                    );
                }
            }
        }
    }
}
