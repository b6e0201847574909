//! `docs/conformance.md` names, for every rule of the versioning spec, the tests that prove it.
//! This reads the table and fails when a test it names no longer exists in the workspace (a
//! `fn NAME(` in a Rust source outside `target/`), when a row names no test without saying why
//! (`pending (issue 11)`), or when a section of the spec from 2 to 14 has no row. No root, no
//! network: it only reads files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The workspace root: the tests crate lives one level below it.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate has a parent: the workspace root")
        .to_path_buf()
}

/// One row of the table: its rule number and the names in backticks of its last column.
#[derive(Debug)]
struct Row {
    rule: String,
    tests: Vec<String>,
    pending: bool,
}

/// The rows of the table in `text`: lines that start with `|`, less the header and its rule.
fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let proved_by = cells.last().copied().unwrap_or_default();
            Row {
                rule: cells[0].to_owned(),
                tests: backticked(proved_by),
                pending: proved_by.contains("pending (issue 11)"),
            }
        })
        .collect()
}

/// The names written in backticks in `cell` that look like function names.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// Every `fn NAME` defined in the Rust sources below `dir`, skipping build output.
fn functions_below(dir: &Path, found: &mut BTreeSet<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                functions_below(&path, found);
            }
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            for rest in text.split("fn ").skip(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with(['(', '<']) {
                    found.insert(name);
                }
            }
        }
    }
}

#[test]
fn conformance_table() {
    let path = workspace().join("docs/conformance.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rows = rows(&text);
    let mut functions = BTreeSet::new();
    functions_below(&workspace(), &mut functions);

    let mut missing = Vec::new();
    for row in &rows {
        assert!(
            !row.tests.is_empty() || row.pending,
            "rule {} in {} names no test and is not pending (issue 11)",
            row.rule,
            path.display()
        );
        for test in &row.tests {
            if !functions.contains(test) {
                missing.push(format!("rule {}: {test}", row.rule));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} names tests that no longer exist (renamed or removed? update the table):\n{}",
        path.display(),
        missing.join("\n")
    );
    for section in 2..=14 {
        assert!(
            rows.iter()
                .any(|row| row.rule.split('.').next() == Some(&section.to_string())),
            "section {section} of the spec has no row in {}",
            path.display()
        );
    }
}

#[test]
fn the_checker_finds_names_and_misses() {
    let table = "| Rule | Spec | Enforced by | Proved by |\n|---|---|---|---|\n\
                 | 2.1 | a | `session::Session` | `section2_x`, `other` |\n\
                 | 7.1 | b | | pending (issue 11) |\n";
    let rows = rows(table);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].tests, ["section2_x", "other"]);
    assert!(!rows[0].pending);
    assert!(rows[1].tests.is_empty() && rows[1].pending);
    // Paths in backticks are not test names.
    assert_eq!(
        backticked("`jvpn-ebpf/src/rules.rs` and `a_test`"),
        ["a_test"]
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("a.rs"),
        "fn present() {}\nasync fn generic<T>() {}\n// fn commented_out_name without parens\n",
    )
    .expect("writing a source");
    let mut found = BTreeSet::new();
    functions_below(dir.path(), &mut found);
    assert!(found.contains("present") && found.contains("generic"));
    assert!(!found.contains("commented_out_name"));
}
