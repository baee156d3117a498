//! The map stays true: every repository path `docs/ARCHITECTURE.md` names
//! exists (patterns such as `<area>.rs` and paths outside the repository
//! are left out).

use std::path::Path;

const ROOTS: [&str; 7] = [
    "proto/",
    "crates/",
    "services/",
    "tests/",
    "deploy/",
    "docs/",
    ".ci/",
];

#[test]
fn every_path_the_architecture_map_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("the map");
    let named: Vec<&str> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| ROOTS.iter().any(|r| t.starts_with(r)))
        .filter(|t| !t.contains(['<', '*', '{', ' ']))
        .collect();
    assert!(named.len() >= 10, "the map names its folders: {named:?}");
    let missing: Vec<&&str> = named
        .iter()
        .filter(|t| !root.join(t.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn no_document_keeps_a_merge_conflict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        docs.push(entry.expect("an entry").path());
    }
    let conflicted: Vec<String> = docs
        .iter()
        .filter(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.starts_with("<<<<<<< ")
                        || line.starts_with(">>>>>>> ")
                        || line == "======="
                })
            })
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        conflicted.is_empty(),
        "merge conflict markers left in {conflicted:?}"
    );
}
