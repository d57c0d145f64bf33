//! The architecture, checked: no module of the proxy uses a module that uses it back (directly
//! or around a loop), and the README's Layout section shows the folder-level graph as it is.
//! Reads `src/` as text: every `crate::…` path names an edge from the file that writes it to
//! the module file it reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Module path (`deepchat::ws`) of every file under `src/`, and its text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(SRC).ok()?.with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["main"] || parts == ["lib"] {
                return None; // the roots: they declare every module and use what they like
            }
            let text = std::fs::read_to_string(&path).expect("read module");
            Some((parts.join("::"), text))
        })
        .collect()
}

/// Every `crate::a::b…` path in `text`, with `use crate::{a, b::c}` groups expanded.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `deepchat_proxy_crate::` and the like
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            expand_group("", &group[..end], &mut paths);
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':');
        if let Some(group_start) = rest[path.len()..].strip_prefix("::{") {
            let end = matching_brace(group_start);
            expand_group(path, &group_start[..end], &mut paths);
        } else {
            paths.push(path.to_owned());
        }
    }
    paths
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn expand_group(prefix: &str, group: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() || item == "self" {
            if item == "self" && !prefix.is_empty() {
                out.push(prefix.to_owned());
            }
            continue;
        }
        let joined = if prefix.is_empty() {
            item.to_owned()
        } else {
            format!("{prefix}::{item}")
        };
        match joined.find("::{") {
            Some(at) => {
                let inner = &joined[at + 3..];
                let end = matching_brace(inner);
                expand_group(&joined[..at], &inner[..end], out);
            }
            None => out.push(joined.split(" as ").next().unwrap_or("").trim().to_owned()),
        }
    }
}

/// Items the crate root re-exports (`pub use app::App;`), by name → the module defining them.
fn root_reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub use ")?.strip_suffix(';'))
        .filter_map(|path| {
            let (module, item) = path.rsplit_once("::")?;
            Some((item.to_owned(), module.to_owned()))
        })
        .collect()
}

/// The file-level graph: module → the modules it reaches.
fn file_graph(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let reexports = root_reexports();
    let mut graph = BTreeMap::new();
    for (name, text) in modules {
        let mut targets = BTreeSet::new();
        for path in crate_paths(text) {
            let first = path.split("::").next().unwrap_or_default();
            let path = match reexports.get(first) {
                Some(module) => path.replacen(first, module, 1),
                None => path,
            };
            let mut target = None;
            let segments: Vec<&str> = path.split("::").collect();
            for len in (1..=segments.len()).rev() {
                let candidate = segments[..len].join("::");
                if modules.contains_key(&candidate) {
                    target = Some(candidate);
                    break;
                }
            }
            if let Some(target) = target {
                if &target != name {
                    targets.insert(target);
                }
            }
        }
        graph.insert(name.clone(), targets);
    }
    graph
}

/// One cycle in `graph`, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, graph, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}

/// The top-level module (`reply` for `reply::relay`).
fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The graph between top-level modules (folders), edges within one left out.
fn folder_graph(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph {
        let entry = folders.entry(top(from).to_owned()).or_default();
        entry.extend(
            targets
                .iter()
                .map(|t| top(t).to_owned())
                .filter(|t| t != top(from)),
        );
    }
    folders
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let graph = file_graph(&modules());
    assert!(graph.len() > 10, "src/ was read: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
    // The folders too: a folder may not reach a folder that reaches it back.
    let folders = folder_graph(&graph);
    if let Some(cycle) = find_cycle(&folders) {
        panic!("folder cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_readme_shows_the_folder_graph_as_it_is() {
    let folders = folder_graph(&file_graph(&modules()));
    let expected: Vec<String> = folders
        .iter()
        .map(|(from, to)| {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            if to.is_empty() {
                format!("{from} → (nothing)")
            } else {
                format!("{from} → {}", to.join(", "))
            }
        })
        .collect();
    let readme = std::fs::read_to_string(README).expect("README");
    let start = readme
        .find("<!-- module-graph -->")
        .expect("README has a <!-- module-graph --> block in its Layout section");
    let block = &readme[start..];
    let end = block.find("<!-- /module-graph -->").expect("block end");
    let shown: Vec<String> = block[..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" → "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        shown,
        expected,
        "README's module graph is out of date; it should read:\n{}",
        expected.join("\n")
    );
}

#[test]
fn crate_paths_are_read_from_use_groups_and_inline_paths() {
    let text = "use crate::{a::b, c::{d, e as f}, self};\nlet x = crate::g::h(); // crate::ignored\nuse crate::i::{self, j};";
    assert_eq!(
        crate_paths(text),
        vec!["a::b", "c::d", "c::e", "g::h", "i", "i::j"]
    );
}
