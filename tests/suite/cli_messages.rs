//! What the CLI says when it cannot do what it was asked (issue 13, items 4 and 5): it finds its
//! configuration the same way from any directory, never creates a state directory by accident,
//! and refuses plainly, saying each cause once.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{sample, BIN};

/// Runs the binary in `cwd` with no `ROSTERDROP_CONFIG` unless `env` sets it.
fn run_in(cwd: &Path, args: &[&str], env: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .args(args)
        .env_remove("ROSTERDROP_CONFIG");
    if let Some(p) = env {
        c.env("ROSTERDROP_CONFIG", p);
    }
    c.output().expect("run rosterdrop")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry of `dir`, recursively, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A configuration in `dir/etc/` with a relative state directory and one source.
fn config(dir: &Path) -> std::path::PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let p = etc.join("rosterdrop.toml");
    std::fs::write(
        &p,
        "state_dir = \"../state\"\n[sources.north]\n[sources.south]\n",
    )
    .unwrap();
    p
}

#[test]
fn without_a_configuration_commands_say_where_they_looked() {
    let t = tempfile::tempdir().unwrap();
    for args in [
        &["history"][..],
        &["hostkey"],
        &["account", "list"],
        &["status"],
    ] {
        let o = run_in(t.path(), args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("ROSTERDROP_CONFIG")
                && e.contains("config/rosterdrop.toml")
                && e.contains("/etc/rosterdrop/rosterdrop.toml"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(
        tree(t.path()),
        Vec::<String>::new(),
        "nothing may be created"
    );
    // A named file that does not exist is named, and its error said once.
    let o = run_in(t.path(), &["--config", "nope.toml", "history"], None);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("nope.toml") && e.contains("does not exist"),
        "{e}"
    );
    assert_eq!(e.matches("nope.toml").count(), 1, "{e}");
}

#[test]
fn the_state_directory_is_found_from_any_directory_and_never_made_by_a_reader() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path());
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Through the environment, from another directory: the state is beside the config.
    let o = run_in(&elsewhere, &["history"], Some(&cfg));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    let state = t.path().join("state");
    assert!(
        e.contains(&format!("no store in {}", state.join("db").display())),
        "{e}"
    );
    let o = run_in(&elsewhere, &["status"], Some(&cfg));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not running"));
    let o = run_in(&elsewhere, &["hostkey"], Some(&cfg));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the daemon has not started"),
        "{}",
        stderr(&o)
    );
    assert!(
        !state.exists(),
        "a reading command created the state directory"
    );
    assert_eq!(tree(&elsewhere), Vec::<String>::new());

    // `account add` for a configured source makes the state directory the config names.
    let o = run_in(
        &elsewhere,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "account",
            "add",
            "vendor",
            "--source",
            "north",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(state.join("accounts.toml").exists());
    assert_eq!(tree(&elsewhere), Vec::<String>::new());
}

#[test]
fn refusals_are_plain() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path());
    let c = cfg.to_str().unwrap();
    // An account for a source that is not configured would upload into nothing.
    let o = run_in(
        t.path(),
        &["--config", c, "account", "add", "v", "--source", "nosuch"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("no source `nosuch`") && e.contains("configured: north, south"),
        "{e}"
    );
    assert!(!t.path().join("state").exists());

    let o = run_in(
        t.path(),
        &["--config", c, "account", "add", "v", "--source", "north"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A private key given where a public one belongs.
    let key = t.path().join("id_ed25519");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let o = run_in(
        t.path(),
        &[
            "--config",
            c,
            "account",
            "key",
            "add",
            "v",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("is a private key") && e.contains(".pub"), "{e}");
    assert!(!e.contains("Base64"), "{e}");

    // history of a source that does not exist is an error, not an empty table.
    let bundle = sample("apple");
    let o = run_in(
        t.path(),
        &[
            "--config",
            c,
            "ingest",
            bundle.to_str().unwrap(),
            "--source",
            "north",
            "-q",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(
        t.path(),
        &["--config", c, "history", "--source", "bogus"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no source `bogus`"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

/// Issue 13, item 7: `history` gives a rejection's reason, `show` lists only the reports that
/// exist.
#[test]
fn history_and_show_tell_what_happened() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path());
    let c = cfg.to_str().unwrap();
    let bundle = t.path().join("nightly");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("students.csv"), "person_id\nS1\n").unwrap();
    let o = run_in(
        t.path(),
        &[
            "--config",
            c,
            "ingest",
            bundle.to_str().unwrap(),
            "--source",
            "north",
            "-q",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run_in(t.path(), &["--config", c, "history"], None);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let row = text.lines().nth(1).unwrap_or_default();
    assert!(text.lines().next().unwrap().ends_with("reason"), "{text}");
    assert!(
        row.contains("rejected") && row.contains("structural error"),
        "{text}"
    );
    let o = run_in(t.path(), &["--config", c, "show", "1"], None);
    let show = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        show.contains("summary.txt") && show.contains("patch-summary.csv"),
        "{show}"
    );
    assert!(
        !show.contains("modified"),
        "a rejected batch has no modified files:\n{show}"
    );
    assert!(!show.contains("content sha256 \n"), "{show}");
}

/// A misspelt section or key is refused by every command, naming it with its line and a
/// suggestion; mail no longer falls back to the outbox in silence (issue 14, item 3).
#[test]
fn a_misspelt_setting_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rosterdrop.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[mial]\ntransport = \"smtp\"\n[sources.north]\n",
    )
    .unwrap();
    for args in [
        &["history"][..],
        &["status"],
        &["check", ".", "--source", "north"],
    ] {
        let o = run_in(dir.path(), args, Some(&cfg));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("line 2") && e.contains("unknown field `mial`"),
            "{args:?}: {e}"
        );
        assert!(e.contains("did you mean `mail`?"), "{args:?}: {e}");
    }
    assert!(
        !dir.path().join("state").exists(),
        "a refused config made state"
    );
}

/// A command whose reader goes away (`rosterdrop history | head -1`, once a store holds a few
/// hundred batches) ends with its own status and says nothing: `println!` panicked, with
/// "failed printing to stdout: Broken pipe", status 101 and a backtrace.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path());
    let out = t.path().join("report");
    let sample_dir = sample("apple");
    for (args, code) in [
        (
            vec![
                "check",
                sample_dir.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            0,
        ),
        (vec!["status"], 3),
    ] {
        let mut c = Command::new(BIN);
        c.args(&args)
            .env("ROSTERDROP_CONFIG", &cfg)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // The reader goes away before the command writes.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}
