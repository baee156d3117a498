//! docs/OPERATING.md stays honest about flags: every flag each binary's
//! `--help` prints has a row in the guide's flag table, with the same
//! environment variable and default and the binary named (or `all`), and
//! every row names a flag that exactly those binaries have.

#[path = "common/bins.rs"]
mod bins;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// A flag as `--help` describes it.
#[derive(Debug, PartialEq)]
struct Flag {
    env: Option<String>,
    default: Option<String>,
}

/// The flags of `bin --help` (without `--help` and `--version`).
fn help_flags(bin: &str) -> BTreeMap<String, Flag> {
    let output = Command::new(bins::path(bin))
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success(), "{bin} --help failed");
    let text = String::from_utf8(output.stdout).unwrap();
    // Options start a line with `--name` (or `-x, --name`); their text runs
    // to the next option.
    let mut flags = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut finish = |current: Option<(String, String)>| {
        if let Some((name, text)) = current {
            let between = |open: &str| {
                text.find(open).map(|at| {
                    let rest = &text[at + open.len()..];
                    rest[..rest.find(']').expect("closed")].to_owned()
                })
            };
            let env = between("[env: ").map(|e| e.trim_end_matches('=').to_owned());
            let default = between("[default: ");
            if name != "help" && name != "version" {
                flags.insert(name, Flag { env, default });
            }
        }
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        let option = trimmed
            .strip_prefix("--")
            .or_else(|| trimmed.get(4..).and_then(|t| t.strip_prefix("--")))
            .filter(|_| trimmed.starts_with('-'));
        if let Some(option) = option {
            finish(current.take());
            let name = option.split_whitespace().next().unwrap().to_owned();
            current = Some((name, line.to_owned()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push(' ');
            text.push_str(trimmed);
        }
    }
    finish(current);
    flags
}

/// The guide's flag table: flag -> (variable, default, binaries).
fn documented() -> BTreeMap<String, (String, String, BTreeSet<String>)> {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/OPERATING.md"
    ))
    .expect("docs/OPERATING.md");
    let mut rows = BTreeMap::new();
    for line in guide.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let code = |cell: &str| cell.trim_matches('`').to_owned();
        let flag = code(cells[1]).trim_start_matches("--").to_owned();
        let binaries = if cells[4] == "all" {
            bins::ALL.iter().map(|b| (*b).to_owned()).collect()
        } else {
            cells[4].split_whitespace().map(str::to_owned).collect()
        };
        let previous = rows.insert(flag.clone(), (code(cells[2]), code(cells[3]), binaries));
        assert!(previous.is_none(), "--{flag} has two rows");
    }
    rows
}

#[test]
fn operating_guide_documents_every_flag_of_every_binary() {
    let rows = documented();
    assert!(rows.len() >= 10, "the flag table was not found");
    let mut having: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for bin in bins::ALL {
        for (name, flag) in help_flags(bin) {
            having
                .entry(name.clone())
                .or_default()
                .insert(bin.to_owned());
            let (env, default, _) = rows
                .get(&name)
                .unwrap_or_else(|| panic!("`{bin} --{name}` is not in docs/OPERATING.md"));
            assert_eq!(
                Some(env),
                flag.env.as_ref(),
                "--{name}: variable in OPERATING.md"
            );
            if let Some(value) = &flag.default {
                assert_eq!(default, value, "--{name}: default in OPERATING.md");
            } else {
                assert!(
                    ["none", "none (required)", "off"].contains(&default.as_str()),
                    "--{name} has no default, OPERATING.md says {default:?}"
                );
            }
        }
    }
    for (name, (_, _, binaries)) in &rows {
        let actual = having
            .get(name)
            .unwrap_or_else(|| panic!("OPERATING.md documents --{name}, which no binary has"));
        assert_eq!(
            binaries, actual,
            "--{name}: the binaries OPERATING.md names"
        );
    }
}
