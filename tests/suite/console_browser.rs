//! The web console in a real headless Chromium, driven over WebDriver (chromedriver) with
//! fantoccini: an admin logs in, sees a held batch, opens it, filters its problems, approves
//! it, finds the email that followed and opens the batch page it links to, rolls the batch
//! back and downloads a report. A screenshot of each page is saved (the folder is printed).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/install-deps`); without them the test
//! is skipped, except under CI (`CI=true`), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::console::{add_admin, held_daemon};
use crate::support::free_port;

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// The browser and its driver, or `None` (skip) when they are not installed outside CI.
fn driver() -> Option<(Driver, PathBuf)> {
    let (Some(drv), Some(browser)) = (which("chromedriver"), which("chromium")) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium and chromedriver are required under CI (.ci/install-deps installs them)"
        );
        eprintln!("skipped: chromium or chromedriver not installed (.ci/install-deps)");
        return None;
    };
    let port = free_port();
    let child = Command::new(drv)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let d = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((d, browser))
}

/// Where the screenshots go: `console-screenshots/` in the target folder.
fn shots_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

struct Browser {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Browser {
    /// A headless Chromium session through the driver, at the daemon's HTTP port.
    async fn open(drv: &Driver, browser: &Path, port: u16, shots: PathBuf) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": browser.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,1000"],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", drv.port))
            .await
            .expect("a WebDriver session");
        Browser {
            c,
            base: format!("http://127.0.0.1:{port}"),
            shots,
        }
    }
    /// Fills the login form (the browser at it) and sends it.
    async fn log_in(&self, name: &str, password: &str) {
        self.c
            .find(Locator::Id("name"))
            .await
            .unwrap()
            .send_keys(name)
            .await
            .unwrap();
        self.c
            .find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys(password)
            .await
            .unwrap();
        self.click("form.card button[type=submit]").await;
    }
    async fn go(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("goto");
    }
    /// The page's text; retried while a navigation a click started is still under way (the
    /// body may be gone between two documents, more so on a loaded machine).
    async fn text(&self) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            match self.c.find(Locator::Css("body")).await {
                Ok(b) => match b.text().await {
                    Ok(t) => return t,
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no page text: {last}");
    }
    /// The page's text once it holds `needle` (a click's page may not have replaced the one
    /// the click was made on yet), or the last text seen after 15 s.
    async fn text_with(&self, needle: &str) -> String {
        let mut t = String::new();
        for _ in 0..150 {
            t = self.text().await;
            if t.contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        t
    }
    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }
    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }
    async fn click_link(&self, text: &str) {
        self.c
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("link {text:?}: {e}"))
            .click()
            .await
            .expect("click link");
    }
    /// Waits (up to 15 s) until the browser is at a URL whose path and query satisfy `ok`,
    /// and returns it: a click's navigation may still be under way on a loaded machine, when
    /// the URL is still the page the click was made on.
    async fn path_when(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..150 {
            last = self.path().await;
            if ok(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }
    /// Waits for the browser to reach `want` (path and query); fails with where it is.
    async fn at(&self, want: &str) {
        let got = self.path_when(|p| p == want).await;
        assert_eq!(got, want);
    }
    async fn path(&self) -> String {
        let u = self.c.current_url().await.expect("url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }
}

#[test]
fn an_admin_approves_and_rolls_back_a_held_batch_in_chromium() {
    let Some((drv, browser)) = driver() else {
        return;
    };
    let (d, _applied, held) = held_daemon("[console]\nenabled = true\n");
    let pw = add_admin(&d, "ann", &[]);
    let key = d.account("maplesis", "maple");
    let run = d.start();
    let shots = shots_dir();
    println!("console screenshots: {}", shots.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let b = Browser::open(&drv, &browser, d.api_port, shots).await;

        // Logged out: the console sends to its login form.
        b.go("/admin/").await;
        b.at("/admin/login").await;
        b.shot("01-login").await;
        b.log_in("ann", &pw).await;

        // The sources page shows the held batch.
        b.at("/admin/").await;
        let t = b.text().await;
        assert!(t.contains("1 held for approval"), "{t}");
        b.shot("02-sources-held").await;

        // Its page: what happened, and its problems.
        b.c.find(Locator::Css(&format!("ul a[href='/admin/batch/{held}']")))
            .await
            .expect("a link to the held batch")
            .click()
            .await
            .unwrap();
        b.at(&format!("/admin/batch/{held}")).await;
        let t = b.text().await;
        assert!(t.contains("Held for approval"), "{t}");
        b.shot("03-batch-held").await;
        let all_rows =
            b.c.find_all(Locator::Css("table.problems tbody tr"))
                .await
                .unwrap()
                .len();
        assert!(all_rows > 1, "the held batch has problems to filter");

        // Filter the problems by a rule: only its rows remain.
        let options = b.c.find_all(Locator::Css("#p-rule option")).await.unwrap();
        let mut rule = String::new();
        for o in options {
            let v = o.attr("value").await.unwrap().unwrap_or_default();
            if !v.is_empty() {
                rule = v;
                break;
            }
        }
        assert!(!rule.is_empty(), "a rule to filter by");
        b.c.find(Locator::Id("p-rule"))
            .await
            .unwrap()
            .select_by_value(&rule)
            .await
            .unwrap();
        b.click("form.filters button[type=submit]").await;
        let filtered = b.path_when(|p| p.contains(&format!("rule={rule}"))).await;
        assert!(filtered.contains(&format!("rule={rule}")), "{filtered}");
        let rows =
            b.c.find_all(Locator::Css("table.problems tbody tr td:nth-child(4)"))
                .await
                .unwrap();
        assert!(!rows.is_empty());
        for r in &rows {
            assert_eq!(r.text().await.unwrap(), rule);
        }
        b.shot("04-problems-filtered").await;

        // Approve, through the confirmation step.
        b.click_link("Approve…").await;
        let t = b.text_with("Approving applies batch").await;
        assert!(t.contains("Approving applies batch"), "{t}");
        b.shot("05-confirm-approve").await;
        b.click("button.danger").await;
        let t = b.text_with("APPLIED").await;
        assert!(t.contains("APPLIED"), "{t}");
        b.shot("06-approved").await;

        // The email that followed names the admin and links to the batch page.
        let mail = d
            .state
            .join("outbox")
            .join(format!("batch-{held}-approved.eml"));
        run.wait_until(10, 50, "approval mail", || mail.exists());
        let raw = std::fs::read(&mail).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let body = m.body_text(0).unwrap_or_default().to_string();
        assert!(body.contains("approved by ann"), "{body}");
        let link = body
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains("/admin/batch/"))
            .unwrap_or_else(|| panic!("no batch link in: {body}"))
            .to_string();
        b.c.goto(&link).await.unwrap();
        let t = b.text().await;
        assert!(t.contains("Applied to the roster"), "{t}");
        assert!(t.contains("by ann from the web console"), "{t}");
        b.shot("07-batch-applied-from-email-link").await;

        // A report downloads with the browser's session.
        let href =
            b.c.find(Locator::Css("ul.downloads a[href$='patch-summary.csv']"))
                .await
                .expect("a download link")
                .attr("href")
                .await
                .unwrap()
                .unwrap();
        let cookie =
            b.c.get_named_cookie("rosterdrop_session")
                .await
                .expect("session cookie");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(&format!("{}{href}", b.base))
            .header("Cookie", &format!("rosterdrop_session={}", cookie.value()))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.body_mut().read_to_string().unwrap().starts_with("file,"));

        // Roll it back, through the confirmation step.
        b.click_link("Roll back…").await;
        b.shot("08-confirm-rollback").await;
        b.click("button.danger").await;
        let t = b.text_with("Done").await;
        assert!(t.contains("Done"), "{t}");
        b.go(&format!("/admin/batch/{held}")).await;
        let t = b.text().await;
        assert!(t.contains("rolled back"), "{t}");
        b.shot("09-batch-rolled-back").await;

        // The history, filtered; and a batch page at a phone's width.
        b.go("/admin/batches?source=maple").await;
        assert!(b.text().await.contains("rolled-back"));
        b.shot("10-history").await;
        // The source's chart (drawn on the server) and its settings.
        b.go("/admin/source/maple").await;
        let points =
            b.c.find_all(Locator::Css("svg.chart circle"))
                .await
                .unwrap()
                .len();
        assert_eq!(
            points, 3,
            "batch 1, the approved batch (rolled back since) and the rollback"
        );
        assert!(b.text().await.contains("guard"), "the settings are shown");
        b.shot("10b-source-chart-settings").await;
        // The Access page shows a live SFTP session (an `sftp` waiting for commands) and the
        // account's last login.
        let mut sftp = d
            .sftp_cmd("maplesis", &key, &[])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sftp");
        run.wait_log(20, "SFTP login");
        b.click_link("Access").await;
        let t = b.text_with("Live SFTP sessions").await;
        assert!(t.contains("Live SFTP sessions"), "{t}");
        assert!(!t.contains("Nobody is logged in over SFTP"), "{t}");
        assert!(t.contains("from 127.0.0.1"), "{t}");
        b.shot("11-access").await;
        let _ = sftp.kill();
        let _ = sftp.wait();

        // Give an SFTP account a new password: shown once, and the one the file now holds.
        b.click("button[aria-label='New password for maplesis']")
            .await;
        // Waits for the page the click opens.
        let mut new_pw = String::new();
        for _ in 0..100 {
            if let Ok(e) = b.c.find(Locator::Css("code.secret")).await {
                if let Ok(t) = e.text().await {
                    new_pw = t;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(new_pw.len(), 24);
        b.shot("12-new-password-shown-once").await;
        let accounts =
            rosterdrop::sftp::accounts::Accounts::load(&d.state.join("accounts.toml")).unwrap();
        let hash = accounts.accounts["maplesis"].password_hash.clone().unwrap();
        assert!(rosterdrop::sftp::accounts::verify_password(&hash, &new_pw));

        b.c.set_window_size(390, 844).await.unwrap();
        b.go(&format!("/admin/batch/{held}")).await;
        b.shot("13-batch-phone").await;
        b.c.close().await.unwrap();
    });
    assert!(d
        .history()
        .iter()
        .any(|(i, _, st)| *i == held && st == "rolled-back"));
}

/// A login lasts `session_secs` past its last use, in a real browser too: the cookie carried
/// a Max-Age set at login, so Chromium dropped it `session_secs` after logging in however much
/// the admin was using the console (found by an outside probe).
#[test]
fn a_login_lasts_while_it_is_used_in_chromium() {
    let Some((drv, browser)) = driver() else {
        return;
    };
    let (d, _applied, _held) = held_daemon("[console]\nenabled = true\nsession_secs = 3\n");
    let pw = add_admin(&d, "ann", &[]);
    let _run = d.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let b = Browser::open(&drv, &browser, d.api_port, shots_dir()).await;
        b.go("/admin/").await;
        b.at("/admin/login").await;
        b.log_in("ann", &pw).await;
        b.at("/admin/").await;
        // Used every second for twice its lifetime: still logged in.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            b.go("/admin/").await;
            assert_eq!(b.path().await, "/admin/", "sent to log in while in use");
        }
        // Unused for longer than its lifetime: logged out.
        tokio::time::sleep(Duration::from_secs(4)).await;
        b.go("/admin/").await;
        b.at("/admin/login").await;
        b.c.close().await.unwrap();
    });
}
