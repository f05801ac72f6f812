//! The store through the CLI: a temporary state directory and a config, and the commands run
//! against them (`ingest`, `history`, `approve`, `export`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::bin;

/// A state directory and a config whose settings are given by the test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A config holding `state_dir` and then `settings` (`[sources.*]` tables and keys).
    pub fn new(settings: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rosterdrop.toml");
        fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n{settings}\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    /// A config with an empty `[sources.<name>]` table for each of `sources`, then `extra`
    /// (keys of the last source).
    pub fn with_sources(sources: &[&str], extra: &str) -> Env {
        let tables: String = sources.iter().map(|s| format!("[sources.{s}]\n")).collect();
        Env::new(&format!("{tables}{extra}"))
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs `rosterdrop ARGS --config CONFIG`; it must not panic.
    pub fn run(&self, args: &[&str]) -> Output {
        let o = bin()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        o
    }

    /// Like [`Env::run`]: (exit code, stdout followed by stderr).
    pub fn run_text(&self, args: &[&str]) -> (i32, String) {
        let o = self.run(args);
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// Ingests `bundle` into `source`: (exit code, stdout).
    pub fn ingest(&self, bundle: &Path, source: &str) -> (i32, String) {
        let (code, out, _) = self.ingest_report(bundle, source);
        (code, out)
    }

    /// Ingests `bundle` into `source`: (exit code, stdout, the batch's report directory, empty
    /// when stdout names none).
    pub fn ingest_report(&self, bundle: &Path, source: &str) -> (i32, String, PathBuf) {
        let o = self.run(&["ingest", bundle.to_str().unwrap(), "--source", source]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let dir = out
            .lines()
            .find_map(|l| l.strip_prefix("Report written to "))
            .map(PathBuf::from)
            .unwrap_or_default();
        (o.status.code().unwrap_or(-1), out, dir)
    }

    /// Ingests `bundle` into `source`: (exit code, stdout followed by stderr).
    pub fn ingest_text(&self, bundle: &Path, source: &str) -> (i32, String) {
        self.run_text(&["ingest", bundle.to_str().unwrap(), "--source", source])
    }

    /// (id, state, adds, updates, deletes) of each batch of `source`, newest first.
    pub fn history(&self, source: &str) -> Vec<(u64, String, u64, u64, u64)> {
        let o = self.run(&["history", "--source", source]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // id, date, time, source, account, format, state, adds, updates, deletes, ...
                (
                    f[0].parse().unwrap(),
                    f[6].to_string(),
                    f[7].parse().unwrap(),
                    f[8].parse().unwrap(),
                    f[9].parse().unwrap(),
                )
            })
            .collect()
    }

    /// Approves batch `id`; it must succeed.
    pub fn approve(&self, id: u64) {
        let o = self.run(&["approve", &id.to_string()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Exports `source` into `name` (it must succeed) and returns its directory.
    pub fn export(&self, source: &str, name: &str) -> PathBuf {
        let out = self.path(name);
        let o = self.run(&["export", "--source", source, "--out", out.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }
}
