//! `check`'s outputs pinned byte for byte: patch-summary.csv, summary.txt, every modified file
//! and modified.zip of every sample (with and without `sample.toml`'s filtering source) and of
//! synthetic districts, against `tests/data/check-golden.tsv` (the SHA-256 of each output).
//! Speed work on the engine must leave every byte as it was; a deliberate change of output
//! rewrites the manifest, and the diff shows what changed:
//!
//! ```text
//! ROSTERDROP_GOLDEN=write cargo test --test suite check_golden
//! ```
//! (`ROSTERDROP_GOLDEN_BIN=path` runs another binary, such as an older release, to make or
//! check the manifest with it.)

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::{repo, sample, BIN};

const MANIFEST: &str = "tests/data/check-golden.tsv";

fn binary() -> String {
    std::env::var("ROSTERDROP_GOLDEN_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// Every output file under `out`, by its path relative to `out`, as a SHA-256 in hex.
fn hashes(out: &Path, case: &str, into: &mut BTreeMap<(String, String), String>) {
    fn walk(dir: &Path, base: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, files);
            } else {
                files.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(out, out, &mut files);
    for f in files {
        let bytes = fs::read(out.join(&f)).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        into.insert((case.to_string(), f.to_string_lossy().into_owned()), hex);
    }
}

/// Runs `check` on `bundle` (with `--config`/`--source` when given), hashing what it wrote;
/// the exit code is kept as a pseudo-file.
fn run(
    case: &str,
    bundle: &Path,
    source: Option<&str>,
    tmp: &Path,
    into: &mut BTreeMap<(String, String), String>,
) {
    let out = tmp.join(case);
    let mut c = Command::new(binary());
    c.arg("check").arg("-q").arg(bundle).arg("--out").arg(&out);
    if let Some(s) = source {
        c.arg("--config")
            .arg(sample("sample.toml"))
            .arg("--source")
            .arg(s);
    }
    let st = c.output().unwrap();
    into.insert(
        (case.to_string(), "exit".into()),
        st.status.code().unwrap_or(-1).to_string(),
    );
    hashes(&out, case, into);
}

#[test]
fn check_outputs_are_byte_identical_to_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut got = BTreeMap::new();
    let mut samples: Vec<_> = fs::read_dir(repo().join("sample-csv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    samples.sort();
    for s in &samples {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        run(&name, s, None, tmp.path(), &mut got);
        run(
            &format!("{name}+maple-valley"),
            s,
            Some("maple-valley"),
            tmp.path(),
            &mut got,
        );
    }
    for format in ["apple", "oneroster"] {
        for every in ["3", "200"] {
            let dir = tmp.path().join(format!("synth-{format}-{every}"));
            let st = Command::new(binary())
                .args(["synth", "--format", format, "--students", "1000"])
                .args(["--error-every", every])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(st.success());
            let case = format!("synth-{format}-1000-every-{every}");
            run(&case, &dir, None, tmp.path(), &mut got);
        }
    }
    let text: String = got
        .iter()
        .map(|((case, file), h)| format!("{case}\t{file}\t{h}\n"))
        .collect();
    let manifest = repo().join(MANIFEST);
    if std::env::var("ROSTERDROP_GOLDEN").as_deref() == Ok("write") {
        fs::write(&manifest, &text).unwrap();
        return;
    }
    let want = fs::read_to_string(&manifest).unwrap();
    let differ: Vec<String> = want
        .lines()
        .zip(text.lines())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  want {w}\n  got  {g}"))
        .take(10)
        .collect();
    assert!(
        want == text,
        "check's outputs differ from {MANIFEST} ({} lines there, {} now):\n{}",
        want.lines().count(),
        text.lines().count(),
        differ.join("\n")
    );
}
