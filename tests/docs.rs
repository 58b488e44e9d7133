//! The documentation stays in step with the code: the method-selection guide lists exactly the
//! methods of the registry, and every page of `docs/` is part of the `attrib` crate's
//! documentation, so that `cargo test --doc -p attrib` compiles its code blocks.

use attrib::methods::Registry;
use attrib_tests::repo_root;
use std::collections::BTreeSet;

/// The first column of the method table in docs/choosing-a-method.md (the table whose header
/// has a `needs gradients` column): one method name in backticks per row.
fn guide_methods() -> Vec<String> {
    let path = repo_root().join("docs/choosing-a-method.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let mut lines = text.lines().skip_while(|l| !(l.starts_with('|') && l.contains("needs gradients")));
    lines.next().expect("docs/choosing-a-method.md has a method table with a `needs gradients` column");
    let separator = lines.next().unwrap_or_default();
    assert!(separator.starts_with("|---"), "the table header is followed by its separator row: {separator}");
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default().trim();
            let name = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`'));
            name.unwrap_or_else(|| panic!("first cell should be one method name in backticks: {row}")).to_string()
        })
        .collect()
}

#[test]
fn method_guide_lists_exactly_the_registered_methods() {
    let listed = guide_methods();
    let set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(set.len(), listed.len(), "a method is listed twice in the guide: {listed:?}");
    let registered: BTreeSet<&str> = Registry::builtin().names().into_iter().collect();
    assert_eq!(set, registered, "docs/choosing-a-method.md's method table must list exactly the registered methods");
}

#[test]
fn every_docs_page_is_compiled_as_doctests() {
    let modules = std::fs::read_to_string(repo_root().join("crates/attrib/src/docs.rs")).unwrap();
    let mut pages: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty());
    for page in pages {
        let include = format!("include_str!(\"../../../docs/{page}\")");
        assert!(modules.contains(&include), "docs/{page} is not included in crates/attrib/src/docs.rs (add `#[doc = {include}] pub mod NAME {{}}`)");
    }
}
