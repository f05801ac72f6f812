//! End to end: the real daemon (`rosterdrop serve`) with a temporary state directory, bundles
//! uploaded with OpenSSH `sftp`, admin commands through `admin.sock`, reports fetched back over
//! SFTP, restarts, signals.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};

use crate::support::bundles::zip_dir;
use crate::support::daemon::Daemon;
use crate::support::smtp;
use crate::support::*;

/// The records of a CSV file as sorted `column=value` lists (column order, row order, line
/// endings and empty fields aside, the same content).
fn sorted_rows(p: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let mut rows: Vec<String> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let mut cells: Vec<String> = header
                .iter()
                .zip(rec.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| format!("{h}={v}"))
                .collect();
            cells.sort();
            cells.join(",")
        })
        .collect();
    rows.sort();
    rows
}

const MAPLE: &str =
    "[sources.maple]\nadmins = [\"it@maple.example\"]\nfilter.locations = [\"L1\", \"L2\"]\n";

#[test]
fn zip_upload_is_applied_reported_and_exported() {
    let d = Daemon::new(MAPLE, 30);
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    let zip = d.dir.path().join("roster.zip");
    zip_dir(&sample("apple-with-errors"), &zip, None);
    d.upload("maplesis", &key, &zip, "nightly.zip");
    // A zip is taken as soon as it is whole: no quiet period.
    let done = d.wait_batches("maple", 1, 30);
    assert_eq!(done[0].1, "applied", "{}", srv.log_text());
    let id = done[0].0;
    // The admins' email (file transport: the outbox), with the counts and the patch summary.
    let eml = d.state.join(format!("outbox/batch-{id}.eml"));
    srv.wait_until(10, 50, "the email", || eml.exists());
    let raw = fs::read(&eml).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    let subject = m.subject().unwrap_or_default().to_string();
    let show = d.cli_ok(&["show", &id.to_string()]);
    let adds: u64 = show
        .lines()
        .find_map(|l| l.split_once(" added").map(|(a, _)| a))
        .and_then(|a| a.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no adds in {show}"));
    assert!(subject.contains("maple"), "{subject}");
    assert!(subject.contains("APPLIED"), "{subject}");
    assert!(
        subject.contains(&format!(": APPLIED, {adds} added")),
        "{subject} / {show}"
    );
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("it@maple.example")
    );
    let body = m.body_text(0).unwrap_or_default().to_string();
    assert!(body.contains("unknown-student"), "{body}");
    let att = m.attachment(0).expect("patch summary attached");
    assert_eq!(att.attachment_name(), Some("patch-summary.csv"));
    assert_eq!(
        att.contents(),
        fs::read(
            d.state
                .join(format!("reports/maple/{id}/patch-summary.csv"))
        )
        .unwrap()
    );
    // The drop folder is empty again; the original is archived.
    assert!(listing(&d.state.join("drop/maplesis")).is_empty());
    assert!(d
        .state
        .join(format!("archive/maple/{id}/nightly.zip"))
        .is_file());
    // The vendor fetches the patch summary over SFTP from reports/.
    let got = d.dir.path().join("got-summary.csv");
    let out = d.sftp(
        "maplesis",
        &key,
        &format!(
            "get reports/{id}/patch-summary.csv {}\nls reports/{id}\n",
            got.display()
        ),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary = fs::read_to_string(&got).unwrap();
    assert!(summary.starts_with("file,line,id,rule,action,field,value,detail"));
    assert!(summary.contains("unknown-student"), "{summary}");
    assert!(summary.contains("filtered"), "{summary}");
    assert_eq!(
        summary,
        fs::read_to_string(
            d.state
                .join(format!("reports/maple/{id}/patch-summary.csv"))
        )
        .unwrap()
    );
    // `show`, `status` and `export` work while the daemon holds the store.
    let show = d.cli_ok(&["show", &id.to_string()]);
    assert!(show.contains("state applied"), "{show}");
    let status = d.cli_ok(&["status"]);
    assert!(status.contains("daemon: running"), "{status}");
    // `compact` needs the daemon stopped, and says so (it used to give `ingest`'s advice).
    let compact = d.cli(&["compact"]);
    let said = String::from_utf8_lossy(&compact.stderr);
    assert_eq!(compact.status.code(), Some(2), "{said}");
    assert!(said.contains("stop it first"), "{said}");
    assert!(!said.contains("put the bundle"), "{said}");
    let out_dir = d.dir.path().join("export");
    d.cli_ok(&[
        "export",
        "--source",
        "maple",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let modified = d.state.join(format!("reports/maple/{id}/modified"));
    for f in ["students.csv", "staff.csv", "classes.csv", "rosters.csv"] {
        assert_eq!(
            sorted_rows(&out_dir.join(f)),
            sorted_rows(&modified.join(f)),
            "{f}"
        );
    }
    // The same bytes again change nothing.
    d.upload("maplesis", &key, &zip, "again.zip");
    let done = d.wait_batches("maple", 2, 30);
    assert_eq!(done[1].1, "unchanged");
    assert!(srv.stop().success());
    assert!(!d.state.join("admin.sock").exists());
    // With the daemon stopped, the CLI opens the store itself.
    let status = d.cli(&["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&status.stdout).contains("not running"));
    assert_eq!(d.history().len(), 2);
}

#[test]
fn loose_files_wait_for_the_quiet_period_or_a_marker() {
    let d = Daemon::new(MAPLE, 3);
    let key = d.account("maplesis", "maple");
    let _srv = d.start();
    // A folder of the six Apple files: complete, taken after the quiet period.
    let src = sample("apple");
    let out = d.sftp(
        "maplesis",
        &key,
        &format!("put -r {} nightly\n", src.display()),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = Instant::now();
    let done = d.wait_batches("maple", 1, 30);
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "taken before the quiet period"
    );
    assert_eq!(done[0].1, "applied");
    // Loose files of an incomplete set are not taken, however long they sit...
    let mut cmds = String::new();
    for f in ["students", "staff", "locations"] {
        cmds.push_str(&format!("put {}/{f}.csv\n", src.display()));
    }
    let out = d.sftp("maplesis", &key, &cmds, &[]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(d.history().len(), 1);
    assert_eq!(listing(&d.state.join("drop/maplesis")).len(), 3);
    // ... until the vendor says it is done: the batch is rejected (files missing) and the
    // admins get to know why.
    let marker = d.dir.path().join("READY");
    fs::write(&marker, "").unwrap();
    d.upload("maplesis", &key, &marker, "READY");
    let done = d.wait_batches("maple", 2, 30);
    assert_eq!(done[1].1, "rejected");
    assert!(listing(&d.state.join("drop/maplesis")).is_empty());
}

#[test]
fn a_half_uploaded_file_is_never_taken() {
    let d = Daemon::new("[sources.maple]\n", 2);
    let key = d.account("maplesis", "maple");
    let _srv = d.start();
    // A zip big enough that a throttled upload takes seconds.
    let big = d.dir.path().join("big");
    let out = d.cli(&[
        "synth",
        "--format",
        "apple",
        "--students",
        "20000",
        big.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let zip = d.dir.path().join("big.zip");
    // Stored, not deflated: the size (and so the upload time) is predictable.
    {
        let f = fs::File::create(&zip).unwrap();
        let mut w = zip::ZipWriter::new(f);
        for e in fs::read_dir(&big).unwrap().flatten() {
            w.start_file(
                e.file_name().to_string_lossy(),
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
            w.write_all(&fs::read(e.path()).unwrap()).unwrap();
        }
        w.finish().unwrap();
    }
    let size = fs::metadata(&zip).unwrap().len();
    // An upload killed half way leaves nothing to take.
    // Not under `timeout`: killing the client must kill `sftp` itself.
    let mut cmd = Command::new("sftp");
    // -l: Kbit/s, about 1 MB/s.
    cmd.args(d.sftp_args("maplesis", &key, &["-l", "8000"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("put {} roster.zip\n", zip.display()).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.history().is_empty(), "a partial upload was taken");
    assert!(
        !listing(&d.state.join("drop/maplesis")).contains(&"roster.zip".to_string()),
        "partial upload visible under its real name"
    );
    // A throttled upload that completes is taken once, whole.
    let t = Instant::now();
    let out = d.sftp(
        "maplesis",
        &key,
        &format!("put {} roster.zip\n", zip.display()),
        &["-l", "16000"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        t.elapsed() > Duration::from_millis(500),
        "upload too fast to mean anything ({size} bytes)"
    );
    let done = d.wait_batches("maple", 1, 120);
    assert_eq!(
        done[0].1,
        "applied",
        "{:?}\n{}",
        d.history(),
        _srv.log_text()
    );
    // The original moves to the archive just after the batch's state is final.
    let archived = d
        .state
        .join(format!("archive/maple/{}/roster.zip", done[0].0));
    _srv.wait_until(10, 50, "the upload archived", || archived.exists());
    assert_eq!(fs::metadata(&archived).unwrap().len(), size);
}

#[test]
fn a_restart_mid_batch_resumes_it() {
    let d = Daemon::new("[sources.big]\n", 2);
    let key = d.account("bigsis", "big");
    let srv = d.start();
    let (big, zip) = d.synth_zip("oneroster", 20000);
    d.upload("bigsis", &key, &zip, "or.zip");
    // Kill -9 as soon as the bundle is claimed: the batch is in the spool, not committed.
    srv.wait_log(30, "bundle received");
    srv.signal("-KILL");
    let first_log = srv.log_text();
    drop(srv);
    let finished_before = first_log.contains("batch done");
    eprintln!("batch finished before the kill: {finished_before}");
    let srv = d.start();
    let done = d.wait_batches("big", 1, 120);
    assert_eq!(done[0].1, "applied", "{}", srv.log_text());
    if !finished_before {
        assert!(srv
            .log_text()
            .contains("resuming a batch left in the spool"));
    }
    assert_eq!(d.history().len(), 1, "the batch ran twice");
    // The claim is archived just after the commit is recorded: give it a moment.
    let spool = d.state.join("spool/big");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !listing(&spool).is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(listing(&spool).is_empty(), "{}", srv.log_text());
    let out_dir = d.dir.path().join("export");
    d.cli_ok(&[
        "export",
        "--source",
        "big",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        sorted_rows(&out_dir.join("users.csv")).len(),
        sorted_rows(&big.join("users.csv")).len()
    );
}

#[test]
fn two_sources_uploading_at_once_both_complete() {
    let d = Daemon::new(&format!("{MAPLE}\n[sources.birch]\n"), 2);
    let k1 = d.account("maplesis", "maple");
    let k2 = d.account("birchsis", "birch");
    let _srv = d.start();
    let a = d.dir.path().join("a.zip");
    let b = d.dir.path().join("b.zip");
    zip_dir(&sample("apple"), &a, None);
    zip_dir(&sample("oneroster"), &b, None);
    std::thread::scope(|s| {
        s.spawn(|| d.upload("maplesis", &k1, &a, "a.zip"));
        s.spawn(|| d.upload("birchsis", &k2, &b, "b.zip"));
    });
    assert_eq!(d.wait_batches("maple", 1, 60)[0].1, "applied");
    assert_eq!(d.wait_batches("birch", 1, 60)[0].1, "applied");
    // Each account sees only its own source's reports.
    let out = d.sftp("birchsis", &k2, "ls reports\n", &[]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let maple_id = d.wait_batches("maple", 1, 1)[0].0.to_string();
    assert!(
        !listing.split_whitespace().any(|w| w.ends_with(&maple_id)),
        "{listing}"
    );
}

#[test]
fn sighup_adds_an_account_without_dropping_the_daemon() {
    let d = Daemon::new(MAPLE, 2);
    let first_key = d.account("maplesis", "maple");
    let srv = d.start();
    // An account written to the file behind the daemon's back (as config management would).
    let key = d.dir.path().join("late-key");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let path = d.state.join("accounts.toml");
    let mut accounts = rosterdrop::sftp::accounts::Accounts::load(&path).unwrap();
    accounts.add("latecomer", "maple").unwrap();
    accounts
        .add_key(
            "latecomer",
            fs::read_to_string(format!("{}.pub", key.display()))
                .unwrap()
                .trim(),
        )
        .unwrap();
    accounts.save(&path).unwrap();
    let ls = |d: &Daemon| d.sftp("latecomer", &key, "ls\n", &[]);
    assert!(!ls(&d).status.success(), "logged in before the reload");
    // A session open across the reload is not dropped.
    let mut open = d
        .sftp_cmd("maplesis", &first_key, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = open.stdin.take().unwrap();
    stdin.write_all(b"pwd\n").unwrap();
    srv.wait_log(20, "SFTP login account=maplesis");
    srv.signal("-HUP");
    srv.wait_log(10, "configuration reloaded");
    let out = ls(&d);
    assert!(out.status.success(), "{}", text(&out));
    stdin.write_all(b"ls reports\nbye\n").unwrap();
    drop(stdin);
    let out = open.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the open session was dropped by the reload"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ls reports"));
    assert!(srv.stop().success());
}

#[test]
fn systemd_hears_ready_status_and_stopping_and_sigterm_finishes_the_running_batch() {
    let d = Daemon::new("[sources.big]\n", 2);
    let key = d.account("bigsis", "big");
    let sock_path = d.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let srv = d.start_with(&[("NOTIFY_SOCKET", &sock_path)]);
    let mut heard = Vec::new();
    let recv_until = |want: &str, heard: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        while !heard.iter().any(|m| m.contains(want)) {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no `{want}` from the daemon ({e}); heard {heard:?}"));
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    recv_until("READY=1", &mut heard);
    // A batch big enough to be running when SIGTERM comes.
    let (_, zip) = d.synth_zip("apple", 20000);
    d.upload("bigsis", &key, &zip, "big.zip");
    srv.wait_log(30, "bundle received");
    let log_before = srv.log_text();
    let st = srv.stop();
    assert!(st.success(), "exit {st}");
    recv_until("STOPPING=1", &mut heard);
    // What the daemon said after STOPPING (the running batch's status) is queued already.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // The running batch was finished, not cut: it is applied, the spool is empty.
    if !log_before.contains("batch done") {
        assert_eq!(d.history()[0].2, "applied", "{heard:?}");
        assert!(
            heard.iter().any(|m| m.contains("STATUS=last batch")),
            "{heard:?}"
        );
    }
    assert!(listing(&d.state.join("spool/big")).is_empty());
    assert_eq!(d.history()[0].2, "applied");
}

/// Mail over a real SMTP server (aiosmtpd) with STARTTLS and authentication; an outage is
/// retried without holding up batches, and queued mail survives a restart.
#[test]
fn smtp_mail_survives_an_outage_and_a_restart() {
    let certs = smtp::TestCerts::new();
    let smtp_port = free_port();
    let d = Daemon::new(
        &format!(
            "[mail]\ntransport = \"smtp\"\nfrom = \"rosterdrop@district.example\"\n\
             host = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"starttls\"\n\
             username = \"roster\"\npassword = \"s3cret\"\nca_file = {:?}\n\
             retry_initial_secs = 0.5\nretry_max_secs = 1\ntimeout_secs = 5\n\n{MAPLE}",
            certs.ca
        ),
        2,
    );
    let key = d.account("maplesis", "maple");
    let sink_opts = || smtp::SinkOptions {
        port: smtp_port,
        starttls: Some(certs.server()),
        auth: Some(("roster".into(), "s3cret".into())),
        ..Default::default()
    };
    // The relay is up: the message arrives, authenticated, over TLS.
    let sink = smtp::SmtpSink::start(sink_opts());
    let srv = d.start();
    let zip = d.dir.path().join("a.zip");
    zip_dir(&sample("apple-with-errors"), &zip, None);
    d.upload("maplesis", &key, &zip, "a.zip");
    let got = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(got[0].rcpt_tos, vec!["it@maple.example".to_string()]);
    assert!(got[0].auth.is_some(), "not authenticated");
    let m = MessageParser::default().parse(&got[0].data).unwrap();
    assert!(m.subject().unwrap_or_default().contains("APPLIED"));
    assert_eq!(
        m.attachment(0).and_then(|a| a.attachment_name()),
        Some("patch-summary.csv")
    );
    // The relay goes down: the next batch is committed anyway, its mail waits in the queue.
    drop(sink);
    let zip2 = d.dir.path().join("b.zip");
    zip_dir(&sample("apple"), &zip2, None);
    d.upload("maplesis", &key, &zip2, "b.zip");
    let done = d.wait_batches("maple", 2, 30);
    assert_eq!(done[1].1, "applied");
    std::thread::sleep(Duration::from_secs(2));
    let status = d.cli_ok(&["status"]);
    assert!(status.contains("mail waiting for delivery: 1"), "{status}");
    // Stopped while the relay is down, restarted after it is back: the mail is delivered.
    assert!(srv.stop().success());
    let sink = smtp::SmtpSink::start(sink_opts());
    let _srv = d.start();
    let got = sink.wait_for(1, Duration::from_secs(30));
    let m = MessageParser::default().parse(&got[0].data).unwrap();
    assert!(
        m.subject()
            .unwrap_or_default()
            .contains(&format!("batch {}", done[1].0)),
        "{:?}",
        m.subject()
    );
}

/// A bundle that would delete most of the roster is held; the admins are told, approve it
/// through the running daemon, and are told again.
#[test]
fn a_held_batch_is_mailed_and_approved_through_the_daemon() {
    let d = Daemon::new(
        "[sources.maple]\nadmins = [\"it@maple.example\"]\nguard.min_rows = 1\nguard.max_delete_percent = 10.0\n",
        2,
    );
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    let full = d.dir.path().join("full.zip");
    zip_dir(&sample("apple"), &full, None);
    d.upload("maplesis", &key, &full, "full.zip");
    assert_eq!(d.wait_batches("maple", 1, 30)[0].1, "applied");
    // The same bundle with students.csv cut to its header and first row.
    let cut = d.dir.path().join("cut");
    fs::create_dir_all(&cut).unwrap();
    for e in fs::read_dir(sample("apple")).unwrap().flatten() {
        let text = fs::read_to_string(e.path()).unwrap();
        let text = if e.file_name() == "students.csv" {
            text.lines().take(2).map(|l| format!("{l}\n")).collect()
        } else {
            text
        };
        fs::write(cut.join(e.file_name()), text).unwrap();
    }
    let cut_zip = d.dir.path().join("cut.zip");
    zip_dir(&cut, &cut_zip, None);
    d.upload("maplesis", &key, &cut_zip, "cut.zip");
    let done = d.wait_batches("maple", 2, 30);
    assert_eq!(done[1].1, "held");
    let id = done[1].0;
    let read_subject = |name: &str| {
        let p = d.state.join("outbox").join(name);
        srv.wait_until(10, 50, name, || p.exists());
        let raw = fs::read(&p).unwrap();
        let m = MessageParser::default().parse(&raw).unwrap();
        (
            m.subject().unwrap_or_default().to_string(),
            m.body_text(0).unwrap_or_default().to_string(),
        )
    };
    let (subject, body) = read_subject(&format!("batch-{id}.eml"));
    assert!(subject.contains("HELD"), "{subject}");
    assert!(body.contains(&format!("rosterdrop approve {id}")), "{body}");
    // Approved through the daemon's socket (the daemon holds the store).
    let out = d.cli_ok(&["approve", &id.to_string()]);
    assert!(out.contains("APPLIED"), "{out}");
    // Once approved, nothing tells the admin to approve it again.
    assert!(
        !out.contains("rosterdrop approve") && !out.contains("discard"),
        "{out}"
    );
    assert_eq!(d.wait_batches("maple", 2, 5)[1].1, "applied");
    let (subject, _) = read_subject(&format!("batch-{id}-approved.eml"));
    assert!(subject.contains("APPLIED"), "{subject}");
    // Approving twice is refused with a clear message, not a crash.
    let again = d.cli(&["approve", &id.to_string()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not held"));
}

#[test]
fn archived_uploads_are_removed_after_retention_days() {
    // retention_days = 0: removed at the first sweep after the batch (sweeps run with the full
    // rescan, every second here).
    let d = Daemon::with_intake(
        "[sources.maple]\nretention_days = 0\n[sources.birch]\n",
        2,
        "rescan_secs = 1",
    );
    let k1 = d.account("maplesis", "maple");
    let k2 = d.account("birchsis", "birch");
    let srv = d.start();
    let zip = d.dir.path().join("a.zip");
    zip_dir(&sample("apple"), &zip, None);
    d.upload("maplesis", &k1, &zip, "a.zip");
    d.upload("birchsis", &k2, &zip, "a.zip");
    let m = d.wait_batches("maple", 1, 30)[0].0;
    let b = d.wait_batches("birch", 1, 30)[0].0;
    let gone = d.state.join(format!("archive/maple/{m}"));
    srv.wait_until(20, 100, "the archive to expire", || !gone.exists());
    // The default (30 days) keeps the other source's upload; history and reports stay.
    assert!(d.state.join(format!("archive/birch/{b}/a.zip")).is_file());
    assert!(d
        .state
        .join(format!("reports/maple/{m}/summary.txt"))
        .is_file());
    assert_eq!(d.history().len(), 2);
}

/// Issue 12: a batch the process keeps dying in (killed for memory, say) is not retried at every
/// start: after three starts it is marked failed, mailed, and archived, and the daemon goes on.
#[test]
fn a_batch_that_keeps_killing_the_daemon_is_failed_not_retried_for_ever() {
    let d = Daemon::new("[sources.s]\nadmins = [\"admin@district.example\"]\n", 2);
    let _key = d.account("vendor", "s");
    // A claim left in the spool by a daemon that died while checking it, three times.
    let spool = d.spool_crashed_claim("s", "vendor", 3);
    let srv = d.start();
    let done = d.wait_batches("s", 1, 30);
    assert_eq!(done, vec![(1, "failed".to_string())], "{}", srv.log_text());
    let eml = d.state.join("outbox/batch-1.eml");
    srv.wait_until(10, 50, "the email", || eml.exists());
    let mail = String::from_utf8_lossy(&fs::read(&eml).unwrap()).into_owned();
    assert!(
        mail.contains("stopped while checking this batch 3 times"),
        "{mail}"
    );
    srv.wait_until(10, 50, "the spool emptied", || !spool.exists());
    assert!(d.state.join("archive/s/1").exists());
    assert!(srv
        .log_text()
        .contains("batch given up after repeated crashes"));
}

/// Issue 13: a second `serve` on the same state directory says at once that a daemon runs, with
/// its pid, and exits 2.
#[test]
fn a_second_serve_names_the_running_daemon() {
    let d = Daemon::new("[sources.s]\n", 2);
    let srv = d.start();
    let t = Instant::now();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("already running") && e.contains(&format!("pid {}", srv.pid())),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// Issue 13, item 6: uploads that waited for their source are taken as soon as a reload adds
/// it, not at the next periodic rescan.
#[test]
fn a_reload_takes_uploads_that_waited_for_their_source_at_once() {
    let d = Daemon::with_intake("[sources.late]\n", 2, "rescan_secs = 600");
    let key = d.account("vendor", "late");
    // The source goes away (a configuration edit), and an upload arrives for it.
    let text = fs::read_to_string(&d.config).unwrap();
    fs::write(&d.config, text.replace("[sources.late]\n", "")).unwrap();
    let srv = d.start();
    let (_, zip) = d.synth_zip("apple", 50);
    d.upload("vendor", &key, &zip, "nightly.zip");
    srv.wait_log(20, "not in the configuration");
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.history().is_empty(), "{:?}", d.history());
    fs::write(&d.config, text).unwrap();
    let t = Instant::now();
    srv.signal("-HUP");
    let done = d.wait_batches("late", 1, 30);
    assert_eq!(done[0].1, "applied", "{}", srv.log_text());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

/// A zip is taken within milliseconds of its close, before the client's next request; what
/// clients send next about the file they just wrote (paramiko's and pysftp's `put()` stat it
/// to confirm its size, WinSCP sets its times) is answered as it was when delivered, not "no
/// such file" for an upload that succeeded (found by an outside probe: `put()` failed 6 of 6).
#[test]
fn a_zip_taken_at_once_still_answers_its_uploader() {
    if !crate::sftp_other_clients::have_paramiko() {
        println!("SKIP a_zip_taken_at_once_still_answers_its_uploader: paramiko not installed");
        return;
    }
    let d = Daemon::new(MAPLE, 30);
    let key = d.account("maplesis", "maple");
    let _srv = d.start();
    let zip = d.dir.path().join("roster.zip");
    zip_dir(&sample("apple"), &zip, None);
    let port = d.port.to_string();
    crate::sftp_other_clients::run_paramiko(
        d.dir.path(),
        TAKEN_ZIP_CLIENT,
        &[port.as_ref(), key.as_os_str(), zip.as_os_str()],
    );
    let done = d.wait_batches("maple", 2, 30);
    assert_eq!(done[0].1, "applied");
}

/// The paramiko client of `a_zip_taken_at_once_still_answers_its_uploader`: port, key, zip.
const TAKEN_ZIP_CLIENT: &str = r#"
import sys, os, time, paramiko
port, keyfile, local = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port)); t.connect()
t.auth_publickey("maplesis", paramiko.Ed25519Key.from_private_key_file(keyfile))
s = paramiko.SFTPClient.from_transport(t)
s.put(local, "nightly.zip", confirm=False)
# Wait until the intake has taken it, then ask about it as clients do.
for _ in range(200):
    if "nightly.zip" not in s.listdir("/"):
        break
    time.sleep(0.05)
else:
    print("never taken"); sys.exit(1)
st = s.stat("nightly.zip")
assert st.st_size == os.path.getsize(local), (st.st_size, os.path.getsize(local))
s.utime("nightly.zip", (1600000000, 1600000000))
# put() with its default confirmation, of the same bytes again.
s.put(local, "again.zip")
# A name it never delivered is still unknown.
try:
    s.stat("other.zip"); print("other.zip answered"); sys.exit(1)
except FileNotFoundError:
    pass
t.close()
print("PARAMIKO-OK")
"#;

/// A patch summary too large to attach even zipped is left out of the mail, and nothing is
/// printed beside the daemon's log: the zip crate wrote "ZipWriter drop failed: ..." to
/// stderr, without a newline, whenever a zip it was writing failed (the cap here, a full disk
/// for the reports' modified.zip), and the next log line ran on after it.
#[test]
fn a_patch_summary_too_large_to_attach_prints_nothing_beside_the_log() {
    let d = Daemon::new(
        "[mail]\nattach_zip_over_bytes = 1024\nattach_max_bytes = 4096\n\n\
         [sources.maple]\nadmins = [\"it@maple.example\"]\n",
        30,
    );
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    // A district with a patch summary of about 450 KiB, over 4 KiB even zipped.
    let dir = d.dir.path().join("district");
    let out = d.cli(&[
        "synth",
        "--students",
        "2000",
        "--error-every",
        "5",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let zip = d.dir.path().join("roster.zip");
    zip_dir(&dir, &zip, None);
    d.upload("maplesis", &key, &zip, "nightly.zip");
    let done = d.wait_batches("maple", 1, 60);
    let eml = d.state.join(format!("outbox/batch-{}.eml", done[0].0));
    srv.wait_until(10, 50, "the email", || eml.exists());
    let raw = fs::read(&eml).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    assert!(m.attachment(0).is_none());
    let body = m.body_text(0).unwrap_or_default().to_string();
    assert!(body.contains("patch-summary.csv is not attached"), "{body}");
    let log = srv.log_text();
    assert!(!log.contains("ZipWriter"), "{log}");
    // Every line of the log is one of tracing's.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains(" INFO ") || line.contains(" WARN ") || line.contains(" ERROR "),
            "a line not from the log: {line:?}"
        );
    }
}

/// The daemon goes on working when its stderr cannot be written: a journald restart closes the
/// stream under it (EPIPE), a log redirected to a full disk refuses writes (ENOSPC, here
/// `/dev/full`). tracing-subscriber reported every event it could not write with `eprintln!`,
/// which panics when stderr fails: the thread that logged died (SFTP logins were refused, a
/// batch stayed "received" until a restart), and on `/dev/full` the daemon died at start with
/// status 101 (an outside probe).
#[test]
fn a_daemon_whose_stderr_cannot_be_written_goes_on_working() {
    for broken in ["a closed pipe", "/dev/full"] {
        let d = Daemon::new(MAPLE, 30);
        let key = d.account("maplesis", "maple");
        let mut c = bin();
        c.arg("--config")
            .arg(&d.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null());
        let mut child = if broken == "/dev/full" {
            let full = fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            c.stderr(full).spawn().unwrap()
        } else {
            let mut child = c.stderr(Stdio::piped()).spawn().unwrap();
            drop(child.stderr.take());
            child
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", d.port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{broken}: serve exited at start ({st})");
            }
            assert!(Instant::now() < deadline, "{broken}: serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let zip = d.dir.path().join("roster.zip");
        zip_dir(&sample("apple"), &zip, None);
        d.upload("maplesis", &key, &zip, "nightly.zip");
        let done = d.wait_batches("maple", 1, 30);
        assert_eq!(done[0].1, "applied", "{broken}");
        assert!(Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "{broken}: no exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(st.success(), "{broken}: {st}");
    }
}

/// Names from the network are quoted in the log, so that none can write a field of its own:
/// an unknown user `evil addr=10.6.6.6:22 ...` put a forged `addr=` ahead of the real one, and
/// a log parser reading `addr=` (a fail2ban filter) would have banned 10.6.6.6 for it; an
/// uploaded or renamed file's name did the same to `path=`, `from=` and `to=` (an outside
/// probe).
#[test]
fn names_from_the_network_cannot_forge_log_fields() {
    if !crate::sftp_other_clients::have_paramiko() {
        println!("SKIP names_from_the_network_cannot_forge_log_fields: paramiko not installed");
        return;
    }
    let d = Daemon::new(MAPLE, 30);
    let key = d.account("maplesis", "maple");
    let srv = d.start();
    let port = d.port.to_string();
    crate::sftp_other_clients::run_paramiko(
        d.dir.path(),
        FORGING_CLIENT,
        &[port.as_ref(), key.as_os_str()],
    );
    srv.wait_log(10, "SFTP rename");
    /// The `key=value` fields of a log line, spaces inside double quotes kept.
    fn fields(line: &str) -> Vec<(String, String)> {
        let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
        for c in line.chars().chain([' ']) {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if let Some((k, v)) = cur.split_once('=') {
                        out.push((k.to_owned(), v.to_owned()));
                    }
                    cur.clear();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        out
    }
    let log = srv.log_text();
    let mut seen = 0;
    for line in log.lines().filter(|l| {
        l.contains("SFTP login failed: unknown user")
            || l.contains("SFTP upload complete")
            || l.contains("SFTP rename")
    }) {
        seen += 1;
        let f = fields(line);
        let addrs: Vec<&str> = f
            .iter()
            .filter(|(k, _)| k == "addr")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(addrs.len(), 1, "{line}");
        assert!(addrs[0].starts_with("127.0.0.1:"), "{line}");
        for k in ["bytes", "to"] {
            assert!(f.iter().filter(|(n, _)| n == k).count() <= 1, "{line}");
        }
        assert!(line.contains("10.6.6.6"), "{line}");
    }
    assert_eq!(seen, 3, "{log}");
}

/// The client of `names_from_the_network_cannot_forge_log_fields`: port, key.
const FORGING_CLIENT: &str = r#"
import sys, paramiko
port, keyfile = int(sys.argv[1]), sys.argv[2]
t = paramiko.Transport(("127.0.0.1", port)); t.connect()
try:
    t.auth_password('evil addr=10.6.6.6:22 method="publickey"', "guess")
    print("accepted"); sys.exit(1)
except paramiko.AuthenticationException:
    pass
t.close()
t = paramiko.Transport(("127.0.0.1", port)); t.connect()
t.auth_publickey("maplesis", paramiko.Ed25519Key.from_private_key_file(keyfile))
s = paramiko.SFTPClient.from_transport(t)
name = 'f addr=10.6.6.6:22 bytes=9 "q".txt'
with s.open(name, "w") as f:
    f.write(b"x\n")
s.rename(name, 'g addr=10.6.6.6:22 to=passwd.txt')
t.close()
print("PARAMIKO-OK")
"#;

/// A batch already in the spool when its source left the configuration waits for the source
/// to come back (as an upload still in the drop folder does); it was failed, with no mail,
/// and not tried again once the source was back (an outside probe).
#[test]
fn a_spooled_batch_of_an_unconfigured_source_waits_for_it() {
    let d = Daemon::new("[sources.s]\n", 1);
    let spool = d.spool_crashed_claim("gone", "vendor", 0);
    let srv = d.start();
    srv.wait_log(20, "its source is not in the configuration");
    std::thread::sleep(Duration::from_secs(1));
    assert!(spool.exists(), "{}", srv.log_text());
    // Received, not failed.
    assert_eq!(
        d.history(),
        vec![(1, "gone".to_string(), "received".to_string())]
    );
    let cfg = fs::read_to_string(&d.config).unwrap();
    fs::write(&d.config, format!("{cfg}\n[sources.gone]\n")).unwrap();
    srv.signal("-HUP");
    let done = d.wait_batches("gone", 1, 30);
    assert_eq!(done, vec![(1, "applied".to_string())], "{}", srv.log_text());
}

/// While the state directory's disk has less than `intake.min_free_mib` free, uploads wait in
/// the drop folder (taking one writes to the store, and sled did not come back from a write
/// that found the disk full: the whole daemon hung); with room again they are taken.
#[test]
fn uploads_wait_while_the_disk_is_nearly_full() {
    let d = Daemon::with_intake("[sources.s]\n", 1, "min_free_mib = 1000000000");
    let key = d.account("vendor", "s");
    let srv = d.start();
    let zip = d.dir.path().join("a.zip");
    zip_dir(&sample("apple"), &zip, None);
    d.upload("vendor", &key, &zip, "a.zip");
    srv.wait_log(20, "disk is nearly full");
    assert!(d.state.join("drop/vendor/a.zip").exists());
    assert!(d.history().is_empty(), "{:?}", d.history());
    let cfg = fs::read_to_string(&d.config).unwrap();
    fs::write(
        &d.config,
        cfg.replace("min_free_mib = 1000000000", "min_free_mib = 0"),
    )
    .unwrap();
    srv.signal("-HUP");
    let done = d.wait_batches("s", 1, 30);
    assert_eq!(done, vec![(1, "applied".to_string())], "{}", srv.log_text());
    assert!(srv
        .log_text()
        .contains("room on the state directory's disk again"));
}

/// A batch the process died in before (twice here) is run again, alone: it takes every slot of
/// `daemon.max_parallel_batches`, so that the batches beside it are not counted as crashing
/// with it should it take the daemon down again.
#[test]
fn a_batch_the_daemon_died_in_runs_again_alone() {
    let d = Daemon::new("[sources.s]\n", 1);
    let cfg = fs::read_to_string(&d.config).unwrap();
    fs::write(
        &d.config,
        format!("{cfg}\n[daemon]\nmax_parallel_batches = 3\n"),
    )
    .unwrap();
    let _spool = d.spool_crashed_claim("s", "vendor", 2);
    let srv = d.start();
    let done = d.wait_batches("s", 1, 30);
    assert_eq!(done, vec![(1, "applied".to_string())], "{}", srv.log_text());
}
