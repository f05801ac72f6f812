//! The daemon run inside the test process (`daemon::run_on`): intake, spool, worker, store and
//! mail without spawning the binary, so a test can drive each step and see its result.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rosterdrop::admin::{self, Request};
use rosterdrop::config::Config;
use rosterdrop::daemon::{run_on, Control};
use rosterdrop::sftp::accounts::Accounts;

use crate::support::sample;
use crate::support::sftp::seed_hostkeys;

/// Waits up to `secs` for `cond`, failing with `what`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn copy_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn an_upload_dropped_in_a_folder_is_checked_committed_and_mailed_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir_all(&state).unwrap();
    seed_hostkeys(&state);
    let config = dir.path().join("rosterdrop.toml");
    fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\n\
             [intake]\nquiet_period_secs = 60\n\
             [sources.north]\nadmins = [\"it@north.example\"]\n"
        ),
    )
    .unwrap();
    let cfg = Config::load(&config).unwrap();
    // The account the vendor would log in with; its drop folder is where SFTP puts uploads.
    let accounts_path = cfg.sftp.accounts_path(&state);
    let mut accounts = Accounts::default();
    accounts.add("northsis", "north").unwrap();
    accounts.save(&accounts_path).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (control, rx) = tokio::sync::mpsc::unbounded_channel();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let daemon = rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        run_on(listener, cfg, rx, move |initial| {
            let _ = started_tx.send(initial.len());
        })
        .await
    });
    let initial = started_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon started");
    assert_eq!(initial, 0, "no account is created when one exists");

    // An upload as the SFTP server leaves it, with the marker that says it is complete (so the
    // 60 s quiet period is not waited for).
    let drop = state.join("drop/northsis");
    copy_files(&sample("apple-with-errors"), &drop.join("nightly"));
    fs::write(drop.join("nightly/READY"), "").unwrap();

    let history = || {
        admin::run(
            &state,
            &Request::History {
                source: Some("north".into()),
            },
            Duration::from_secs(5),
            None,
        )
        .map(|reply| reply.stdout)
        .unwrap_or_default()
    };
    wait_for(60, "batch 1 applied", || {
        history()
            .lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains(" applied "))
    });
    let mail = state.join("outbox");
    wait_for(30, "the batch's mail in the outbox", || {
        fs::read_dir(&mail).is_ok_and(|d| d.count() > 0)
    });
    let eml: Vec<_> = fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(eml.len(), 1, "{eml:?}");
    let text = fs::read_to_string(&eml[0]).unwrap();
    assert!(text.contains("To: it@north.example"), "{text}");
    assert!(text.contains("batch 1: APPLIED"), "{text}");
    // The upload left the drop folder and its original is archived; nothing waits in the spool.
    assert!(!drop.join("nightly").exists());
    assert!(state.join("archive/north/1").is_dir());
    assert_eq!(
        fs::read_dir(state.join("spool/north")).map_or(0, |d| d.count()),
        0
    );

    // Reload, then stop: run_on returns once the batch's work is done.
    control.send(Control::Reload).unwrap();
    control.send(Control::Stop).unwrap();
    let ran = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), daemon).await })
        .expect("the daemon stopped within a minute")
        .expect("the daemon task did not panic");
    assert!(ran.is_ok(), "{ran:?}");
    assert!(
        !state.join("admin.sock").exists(),
        "the admin socket is removed on stop"
    );
}
