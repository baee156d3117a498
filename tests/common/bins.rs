//! The workspace's binaries for tests of the `recoveryd` package. Cargo
//! hands a test only its own package's binaries (`CARGO_BIN_EXE_recoveryd`);
//! the others are built into the same directory by `cargo test --workspace`
//! (or `cargo build --bins`). When one is missing it is built here, once.

use std::path::PathBuf;
use std::process::Command;

/// Every binary the image ships (deploy/Dockerfile's BINARIES).
#[allow(dead_code)]
pub(crate) const ALL: [&str; 5] = ["recoveryd", "tenancy", "booking", "fleet", "protocols"];

/// The path of binary `name`, built if missing.
pub(crate) fn path(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_recoveryd"))
        .parent()
        .expect("binary directory")
        .to_owned();
    let bin: PathBuf = dir.join(name);
    if !bin.is_file() {
        eprintln!("{} is missing: building it", bin.display());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.file_name().is_some_and(|d| d == "release");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--bin", name])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    bin.to_string_lossy().into_owned()
}

/// A tool on PATH (or in /usr/sbin, where Debian puts nginx).
#[allow(dead_code)]
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
