//! Replays the fuzz inputs through the same checks as the cargo-fuzz targets, on stable Rust: the
//! hand-written seeds (`fuzz/seeds/<target>/`), the minimized corpus that fuzzing runs found
//! (`fuzz/corpus/<target>/`) and any crash reproducer kept under `fuzz/artifacts/<target>/` are
//! checked on each `cargo test`.
//! The target bodies live in `fuzz/targets.rs`, shared with the fuzz binaries.

#[path = "../../../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// A fuzz target's body: panics when an invariant breaks.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("rtjp_decode", targets::rtjp_decode),
    ("csp_packets", targets::csp_packets),
    ("web_api_form", targets::web_api_form),
    ("webhook_reply", targets::webhook_reply),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of a folder, sorted (none if it does not exist), dot files left out.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable folder").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Runs every seed, corpus file and crash reproducer of `target`; returns how many ran.
fn replay(target: &str) -> usize {
    let run = TARGETS.iter().find(|(name, _)| *name == target).unwrap().1;
    let inputs: Vec<PathBuf> = ["seeds", "corpus", "artifacts"]
        .iter()
        .flat_map(|dir| files(&fuzz_dir().join(dir).join(target)))
        .collect();
    let mut failed = Vec::new();
    for file in &inputs {
        let data = std::fs::read(file).expect("readable corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: failed on {failed:#?}");
    inputs.len()
}

#[test]
fn every_input_folder_is_a_target() {
    for top in ["seeds", "corpus", "artifacts"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(top)) else {
            continue;
        };
        for dir in dirs {
            let name = dir.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{top}/{name} has no target in tests/it/ops/fuzz_corpus.rs"
            );
        }
    }
}

#[test]
fn rtjp_decode() {
    assert!(replay("rtjp_decode") > 0);
}

#[test]
fn csp_packets() {
    assert!(replay("csp_packets") > 0);
}

#[test]
fn web_api_form() {
    assert!(replay("web_api_form") > 0);
}

#[test]
fn webhook_reply() {
    assert!(replay("webhook_reply") > 0);
}
