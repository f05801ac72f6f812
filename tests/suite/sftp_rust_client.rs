//! The server in-process, driven by a Rust client (russh + russh-sftp) for what a batch file
//! cannot do: dying mid-upload, exact status codes, raw hostile packets, upload events,
//! reloading accounts while sessions run.

use std::fs;
use std::time::Duration;

use crate::support::listing;
use crate::support::sftp_client::{code, sftp, ssh, wflags, Fixture};
use rosterdrop::sftp::SftpConfig;
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// The in-process server with one account, `vendor` (district).
async fn fixture(tune: impl FnOnce(&mut SftpConfig)) -> Fixture {
    Fixture::start(&[("vendor", "district")], tune).await
}

/// Status code of an extended request (russh-sftp returns any status packet as `Ok`).
fn ext_code(r: Result<russh_sftp::protocol::Packet, SftpClientError>) -> StatusCode {
    match r {
        Ok(russh_sftp::protocol::Packet::Status(s)) => s.status_code,
        Err(SftpClientError::Status(s)) => s.status_code,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dying_mid_upload_leaves_nothing_and_keeps_the_old_file() {
    let mut fx = fixture(|_| {}).await;
    fs::create_dir_all(fx.drop_dir("vendor")).unwrap();
    fs::write(
        fx.drop_dir("vendor").join("roster.zip"),
        b"previous complete upload",
    )
    .unwrap();

    // The client goes through a relay we can cut, like a network that dies.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let server = fx.addr;
    let relay_task = tokio::spawn(async move {
        let (mut c, _) = relay.accept().await.unwrap();
        let mut s = TcpStream::connect(server).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
    });
    let h = ssh(relay_addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.expect("sftp session");
    let handle = s
        .open("roster.zip", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    let new = s
        .open("new.csv", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    for i in 0..8u64 {
        s.write(&handle, i * 32768, vec![b'x'; 32768])
            .await
            .unwrap();
        s.write(&new, i * 1000, vec![b'y'; 1000]).await.unwrap();
    }
    // A temporary exists while the upload runs; the real name still holds the old upload.
    let names = listing(&fx.drop_dir("vendor"));
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with(".rosterdrop-upload."))
            .count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("roster.zip")).unwrap(),
        b"previous complete upload"
    );

    relay_task.abort();
    let _ = relay_task.await;
    drop(s);
    drop(h);

    // The server notices, drops the session, and removes the temporaries.
    let mut names = Vec::new();
    for _ in 0..100 {
        names = listing(&fx.drop_dir("vendor"));
        if names == vec!["roster.zip".to_string()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names, vec!["roster.zip"]);
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("roster.zip")).unwrap(),
        b"previous complete upload"
    );
    assert!(
        fx.events.try_recv().is_err(),
        "no event for an unfinished upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_uploads_are_announced_and_replace_atomically() {
    let mut fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.expect("sftp session");
    let hd = s
        .open("/students.csv", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, b"id,name\n1,Ann\n".to_vec()).await.unwrap();
    s.close(&hd).await.unwrap();
    let ev = timeout(Duration::from_secs(5), fx.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            ev.account.as_str(),
            ev.source.as_str(),
            ev.path.as_str(),
            ev.size
        ),
        ("vendor", "district", "/students.csv", 14)
    );
    assert_eq!(ev.file, fx.drop_dir("vendor").join("students.csv"));
    assert_eq!(ev.peer.ip(), fx.addr.ip());

    // Re-upload: until close, the old content stays whole under the real name.
    let hd = s
        .open("students.csv", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, b"id,name\n2,Bo".to_vec()).await.unwrap();
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("students.csv")).unwrap(),
        b"id,name\n1,Ann\n"
    );
    s.write(&hd, 12, b"b\n".to_vec()).await.unwrap();
    s.close(&hd).await.unwrap();
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("students.csv")).unwrap(),
        b"id,name\n2,Bob\n"
    );
    let ev = timeout(Duration::from_secs(5), fx.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.size, 14);

    // WinSCP style: upload as .filepart (no event), then rename to the real name (event).
    let hd = s
        .open("classes.csv.filepart", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, b"c1\n".to_vec()).await.unwrap();
    s.close(&hd).await.unwrap();
    assert!(fx.events.try_recv().is_err());
    s.rename("classes.csv.filepart", "classes.csv")
        .await
        .unwrap();
    let ev = timeout(Duration::from_secs(5), fx.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ev.path.as_str(), ev.size), ("/classes.csv", 3));
    // Plain rename does not overwrite; posix-rename does.
    let hd = s
        .open("x.filepart", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, b"new\n".to_vec()).await.unwrap();
    s.close(&hd).await.unwrap();
    let (c, _) = code(s.rename("x.filepart", "classes.csv").await);
    assert_eq!(c, StatusCode::Failure);
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("classes.csv")).unwrap(),
        b"c1\n"
    );
    let mut data = Vec::new();
    for p in ["x.filepart", "classes.csv"] {
        data.extend_from_slice(&(p.len() as u32).to_be_bytes());
        data.extend_from_slice(p.as_bytes());
    }
    s.extended("posix-rename@openssh.com", data).await.unwrap();
    assert_eq!(
        fs::read(fx.drop_dir("vendor").join("classes.csv")).unwrap(),
        b"new\n"
    );
    assert_eq!(
        listing(&fx.drop_dir("vendor")),
        vec!["classes.csv", "students.csv"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_for_refusals_and_unsupported_operations() {
    let fx = fixture(|c| {
        c.max_file_size = 1000;
    })
    .await;
    let reports = fx.state.join("reports/district/b1");
    fs::create_dir_all(&reports).unwrap();
    fs::write(reports.join("summary.txt"), "ok\n").unwrap();
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.expect("sftp session");
    let none = || FileAttributes::default();

    assert_eq!(
        code(s.open("missing.csv", OpenFlags::READ, none()).await).0,
        StatusCode::NoSuchFile
    );
    assert_eq!(code(s.stat("missing.csv").await).0, StatusCode::NoSuchFile);
    assert_eq!(
        code(s.open("reports/b1/summary.txt", wflags(), none()).await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(s.remove("reports/b1/summary.txt").await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(s.setstat("reports/b1/summary.txt", none()).await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(s.mkdir("reports/x", none()).await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(s.symlink("a", "b").await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(s.hardlink("a", "b").await).0,
        StatusCode::PermissionDenied
    );
    assert_eq!(code(s.readlink("a").await).0, StatusCode::OpUnsupported);
    assert_eq!(
        ext_code(
            s.extended("statvfs@openssh.com", vec![0, 0, 0, 1, b'/'])
                .await
        ),
        StatusCode::OpUnsupported
    );
    assert_eq!(
        ext_code(s.extended("copy-data", vec![]).await),
        StatusCode::OpUnsupported
    );
    assert_eq!(code(s.remove("/").await).0, StatusCode::PermissionDenied);

    // Reports are readable.
    let rh = s
        .open("/reports/b1/summary.txt", OpenFlags::READ, none())
        .await
        .unwrap()
        .handle;
    assert_eq!(s.read(&rh, 0, 100).await.unwrap().data, b"ok\n");
    assert_eq!(code(s.read(&rh, 3, 100).await).0, StatusCode::Eof);
    s.close(&rh).await.unwrap();

    // Too big: clear status, partial removed, later writes and close fail too.
    let hd = s.open("big.csv", wflags(), none()).await.unwrap().handle;
    s.write(&hd, 0, vec![1; 600]).await.unwrap();
    let (c, msg) = code(s.write(&hd, 600, vec![1; 600]).await);
    assert_eq!(c, StatusCode::Failure);
    assert!(msg.contains("file too large"), "{msg}");
    assert_eq!(listing(&fx.drop_dir("vendor")), Vec::<String>::new());
    assert_eq!(code(s.close(&hd).await).0, StatusCode::Failure);
    // Hostile offsets.
    let hd = s.open("o.csv", wflags(), none()).await.unwrap().handle;
    assert_eq!(
        code(s.write(&hd, u64::MAX - 2, vec![1; 10]).await).0,
        StatusCode::Failure
    );
    assert_eq!(code(s.close(&hd).await).0, StatusCode::Failure);
    assert_eq!(listing(&fx.drop_dir("vendor")), Vec::<String>::new());

    // setstat/fsetstat are accepted; times are kept, modes ignored.
    let hd = s.open("t.csv", wflags(), none()).await.unwrap().handle;
    s.write(&hd, 0, b"t\n".to_vec()).await.unwrap();
    let times = FileAttributes {
        atime: Some(1_600_000_000),
        mtime: Some(1_600_000_000),
        permissions: Some(0o777),
        ..Default::default()
    };
    s.fsetstat(&hd, times.clone()).await.unwrap();
    let st = s.fstat(&hd).await.unwrap().attrs;
    assert_eq!(st.size, Some(2));
    s.close(&hd).await.unwrap();
    let st = s.stat("t.csv").await.unwrap().attrs;
    assert_eq!(st.mtime, Some(1_600_000_000));
    assert_eq!(st.permissions.map(|p| p & 0o777), Some(0o644));
    s.setstat(
        "t.csv",
        FileAttributes {
            mtime: Some(1_700_000_000),
            atime: Some(1_700_000_000),
            ..times
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.lstat("t.csv").await.unwrap().attrs.mtime,
        Some(1_700_000_000)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        fs::metadata(fx.drop_dir("vendor").join("t.csv"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o777
    );

    // realpath clamps at the root; directories can be listed and removed when empty.
    assert_eq!(s.realpath("../../..").await.unwrap().files[0].filename, "/");
    assert_eq!(
        s.realpath("a/../b/./c").await.unwrap().files[0].filename,
        "/b/c"
    );
    s.mkdir("d", none()).await.unwrap();
    let dh = s.opendir("/").await.unwrap().handle;
    let names: Vec<String> = s
        .readdir(&dh)
        .await
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.filename)
        .collect();
    assert!(
        names.contains(&"d".to_string())
            && names.contains(&"reports".to_string())
            && names.contains(&"t.csv".to_string()),
        "{names:?}"
    );
    assert_eq!(code(s.readdir(&dh).await).0, StatusCode::Eof);
    s.close(&dh).await.unwrap();
    s.remove("t.csv").await.unwrap();
    s.rmdir("d").await.unwrap();
    assert_eq!(listing(&fx.drop_dir("vendor")), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_packets_get_statuses_or_a_closed_session() {
    let fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    let mut st = ch.into_stream();
    async fn reply(st: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
        let len = timeout(Duration::from_secs(10), st.read_u32())
            .await
            .ok()?
            .ok()?;
        let mut b = vec![0; len as usize];
        timeout(Duration::from_secs(10), st.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(b)
    }
    st.write_all(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).await.unwrap();
    assert_eq!(reply(&mut st).await.unwrap()[0], 2, "VERSION");
    // OPEN with id 7 and a path length that runs past the packet.
    st.write_all(&[0, 0, 0, 9, 3, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xf0])
        .await
        .unwrap();
    let r = reply(&mut st).await.unwrap();
    assert_eq!(r[0], 101, "STATUS");
    assert_eq!(&r[1..5], &[0, 0, 0, 7]);
    assert_eq!(
        u32::from_be_bytes([r[5], r[6], r[7], r[8]]),
        StatusCode::BadMessage as u32
    );
    // An unknown packet type.
    st.write_all(&[0, 0, 0, 5, 99, 0, 0, 0, 8]).await.unwrap();
    let r = reply(&mut st).await.unwrap();
    assert_eq!((r[0], r[4]), (101, 8));
    // A path with a NUL byte.
    let mut p = vec![17, 0, 0, 0, 9, 0, 0, 0, 3, b'a', 0, b'b'];
    let mut pkt = (p.len() as u32).to_be_bytes().to_vec();
    pkt.append(&mut p);
    st.write_all(&pkt).await.unwrap();
    let r = reply(&mut st).await.unwrap();
    assert_eq!((r[0], r[4]), (101, 9));
    // A declared length over the cap: the session is closed, the server lives on.
    st.write_all(&[0x7f, 0xff, 0xff, 0xff, 3, 0, 0, 0, 10])
        .await
        .unwrap();
    assert!(reply(&mut st).await.is_none(), "session must be closed");
    let h2 = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("server still accepts logins");
    let s2 = sftp(&h2).await.expect("sftp session");
    assert_eq!(s2.realpath(".").await.unwrap().files[0].filename, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_reload_without_dropping_sessions() {
    let fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.expect("sftp session");
    // Reload: vendor removed, vendor2 added.
    let pw2 = {
        let mut a = fx.accounts.write().unwrap();
        a.remove("vendor").unwrap();
        a.add("vendor2", "district").unwrap()
    };
    // The running session goes on.
    let hd = s
        .open("still.csv", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, b"x".to_vec()).await.unwrap();
    s.close(&hd).await.unwrap();
    assert!(fx.drop_dir("vendor").join("still.csv").exists());
    // New logins follow the new accounts.
    assert!(ssh(fx.addr, "vendor", &fx.passwords[0]).await.is_none());
    let h2 = ssh(fx.addr, "vendor2", &pw2)
        .await
        .expect("new account logs in");
    let s2 = sftp(&h2).await.expect("sftp session");
    // Each account has its own root.
    assert_eq!(code(s2.stat("still.csv").await).0, StatusCode::NoSuchFile);
}

/// Next reply to a channel request (skipping window adjustments and the like).
async fn next_reply(ch: &mut russh::Channel<russh::client::Msg>) -> Option<russh::ChannelMsg> {
    loop {
        match timeout(Duration::from_secs(10), ch.wait()).await.ok()? {
            Some(m @ (russh::ChannelMsg::Success | russh::ChannelMsg::Failure)) => return Some(m),
            Some(russh::ChannelMsg::WindowAdjusted { .. }) => continue,
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_sftp_channel_requests_and_junk_before_the_subsystem_does_not_stall() {
    let fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let mut ch = h.channel_open_session().await.unwrap();
    ch.set_env(true, "LANG", "C").await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "env"
    );
    ch.request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "pty"
    );
    ch.agent_forward(true).await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "agent"
    );
    ch.request_x11(true, false, "MIT-MAGIC-COOKIE-1", "00", 0)
        .await
        .unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "x11"
    );
    ch.exec(true, "id").await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "exec"
    );
    ch.request_shell(true).await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "shell"
    );
    ch.request_subsystem(true, "netconf").await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Failure)),
        "other subsystem"
    );
    // Lots of data on a channel with no subsystem: dropped, the connection stays responsive.
    for _ in 0..300 {
        ch.data(&[0u8; 1024][..]).await.unwrap();
    }
    // The same channel can still start sftp after all that.
    ch.request_subsystem(true, "sftp").await.unwrap();
    assert!(
        matches!(next_reply(&mut ch).await, Some(russh::ChannelMsg::Success)),
        "sftp"
    );
    let s = RawSftpSession::new(ch.into_stream());
    s.set_timeout(20);
    s.init().await.unwrap();
    assert_eq!(s.realpath(".").await.unwrap().files[0].filename, "/");
    // Forwarding is refused.
    assert!(h
        .channel_open_direct_tcpip("127.0.0.1", 22, "127.0.0.1", 5000)
        .await
        .is_err());
    assert!(h.tcpip_forward("127.0.0.1", 0).await.is_err());
    assert_eq!(listing(&fx.drop_dir("vendor")), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_disconnects_clients_and_discards_open_uploads() {
    let mut fx = fixture(|_| {}).await;
    let h = ssh(fx.addr, "vendor", &fx.passwords[0])
        .await
        .expect("login");
    let s = sftp(&h).await.expect("sftp session");
    let hd = s
        .open("half.csv", wflags(), FileAttributes::default())
        .await
        .unwrap()
        .handle;
    s.write(&hd, 0, vec![b'z'; 5000]).await.unwrap();
    assert_eq!(
        listing(&fx.drop_dir("vendor")).len(),
        1,
        "temporary while uploading"
    );
    if let Some(stop) = fx.stop.take() {
        let _ = stop.send(());
    }
    let mut names = vec![String::new()];
    for _ in 0..100 {
        names = listing(&fx.drop_dir("vendor"));
        if names.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        names,
        Vec::<String>::new(),
        "open upload discarded on shutdown"
    );
    assert!(
        s.write(&hd, 5000, vec![1; 10]).await.is_err(),
        "session is gone"
    );
    // The listener is closed: new connections are refused.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(fx.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "listener still open after shutdown");
    assert!(fx.events.try_recv().is_err());
}
