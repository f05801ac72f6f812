//! The systemd unit and the production config in `systemd/`: `systemd-analyze verify` accepts the
//! unit (pointed at the binary under test, since verify wants ExecStart= to exist), its security
//! exposure stays below 2.0, and the config example parses.
//!
//! `systemd-analyze` comes with Debian's `systemd` package, which `.ci/install-deps` installs.
//! Both commands work offline, without systemd running as PID 1. A missing tool fails these
//! tests rather than skipping them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{repo, text, BIN};

const UNIT: &str = "systemd/rosterdrop.service";
const INSTALLED_BINARY: &str = "/usr/local/bin/rosterdrop";
/// The exposure the unit must stay below (`systemd/README.md` gives the current figure).
const MAX_EXPOSURE: f64 = 2.0;

/// A copy of the unit, named rosterdrop.service, whose ExecStart= runs the test binary.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(repo().join(UNIT)).expect("reading the unit file");
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BINARY} ")),
        "the unit's ExecStart= no longer runs {INSTALLED_BINARY}"
    );
    let text = text.replace(INSTALLED_BINARY, BIN);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rosterdrop.service");
    std::fs::write(&path, text).expect("writing the unit copy");
    (dir, path)
}

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    match Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install Debian's `systemd` package \
             (.ci/install-deps does); this test does not skip"
        ),
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let (_dir, unit) = unit_copy();
    let out = systemd_analyze(&["verify"], &unit);
    let all = text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{all}"
    );
    // verify exits 0 on unknown keys and unparsable values, only warning about them: any line
    // about our unit is a failure.
    let complaints: Vec<&str> = all.lines().filter(|l| l.contains("rosterdrop")).collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify warns about the unit:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn unit_exposure_is_below_two() {
    let (_dir, unit) = unit_copy();
    let out = systemd_analyze(&["security", "--offline=true", "--no-pager"], &unit);
    let all = text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze security failed:\n{all}"
    );
    let exposure = all
        .lines()
        .find_map(|l| {
            let rest = l
                .split("Overall exposure level for rosterdrop.service:")
                .nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in systemd-analyze's output:\n{all}"));
    assert!(
        exposure < MAX_EXPOSURE,
        "exposure {exposure} is not below {MAX_EXPOSURE}:\n{all}"
    );
}

#[test]
fn production_config_parses() {
    let path = repo().join("systemd/rosterdrop.toml");
    let cfg = rosterdrop::config::Config::load(&path).expect("the roster config parses");
    assert_eq!(cfg.state_dir, Path::new("/var/lib/rosterdrop"));
    assert_eq!(cfg.sftp.listen.to_string(), "0.0.0.0:2222");
    let text = std::fs::read_to_string(&path).expect("reading the config");
    let value: toml::Value = toml::from_str(&text).expect("TOML");
    let mail = value.get("mail").expect("a [mail] section");
    for key in ["transport", "from", "host", "port", "security", "username"] {
        assert!(mail.get(key).is_some(), "[mail] {key}");
    }
    assert_eq!(
        mail.get("password_file").and_then(|v| v.as_str()),
        Some("/etc/rosterdrop/smtp-password")
    );
    let intake = value.get("intake").expect("an [intake] section");
    assert_eq!(
        intake.get("quiet_period_secs").and_then(|v| v.as_integer()),
        Some(30)
    );
}
