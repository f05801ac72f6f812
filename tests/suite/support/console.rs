//! A browser-less client of the web console: a real HTTP client (ureq) that keeps the cookies
//! the console sets, does not follow redirects (the tests look at them), and finds the CSRF
//! token in a page's forms.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::daemon::Daemon;
use super::{sample, text};

pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in: {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

pub struct Client {
    pub base: String,
    agent: ureq::Agent,
    jar: RefCell<BTreeMap<String, String>>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            base: format!("http://127.0.0.1:{port}"),
            agent,
            jar: RefCell::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn done(&self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut r = r.expect("HTTP request failed");
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or("");
                if let Some((n, val)) = pair.split_once('=') {
                    let mut jar = self.jar.borrow_mut();
                    if val.is_empty() || v.contains("Max-Age=0") {
                        jar.remove(n);
                    } else {
                        jar.insert(n.to_string(), val.to_string());
                    }
                }
            }
        }
        let body = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        Page {
            status: r.status().as_u16(),
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Page {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        let c = self.cookie_header();
        if !c.is_empty() {
            req = req.header("Cookie", &c);
        }
        self.done(req.call())
    }

    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        let mut r = self
            .agent
            .get(&url)
            .header("Cookie", &self.cookie_header())
            .call()
            .expect("HTTP request failed");
        let st = r.status().as_u16();
        let b = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (st, b)
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.post(&url);
        let c = self.cookie_header();
        if !c.is_empty() {
            req = req.header("Cookie", &c);
        }
        self.done(req.send_form(form.iter().copied()))
    }

    /// Opens the login form and sends it.
    pub fn login(&self, name: &str, password: &str) -> Page {
        let form = self.get("/admin/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let t = form.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &t), ("name", name), ("password", password)],
        )
    }
}

/// `admin-user add`: the password it prints once.
pub fn add_admin(d: &Daemon, name: &str, sources: &[&str]) -> String {
    let mut args = vec!["admin-user", "add", name];
    for s in sources {
        args.extend_from_slice(&["--source", s]);
    }
    let out = d.cli_ok(&args);
    out.lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no password in {out}"))
        .to_string()
}

/// A daemon's store with the Apple sample applied to `maple` (batch 1) and the same bundle
/// with all students but one held by the deletion guard (batch 2), and an `oak` source with
/// the OneRoster sample; `extra` is more TOML. Not started.
pub fn held_daemon(extra: &str) -> (Daemon, u64, u64) {
    let d = Daemon::new(
        &format!(
            "{extra}\n[sources.maple]\nadmins = [\"it@maple.example\"]\nguard.min_rows = 1\n\
             guard.max_delete_percent = 10.0\n[sources.oak]\nformat = \"oneroster\"\n"
        ),
        1,
    );
    let out = d.cli(&[
        "ingest",
        sample("apple").to_str().unwrap(),
        "--source",
        "maple",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let cut = d.dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    for e in std::fs::read_dir(sample("apple")).unwrap().flatten() {
        let t = std::fs::read_to_string(e.path()).unwrap();
        let t = if e.file_name() == "students.csv" {
            t.lines().take(2).map(|l| format!("{l}\n")).collect()
        } else {
            t
        };
        std::fs::write(cut.join(e.file_name()), t).unwrap();
    }
    // Held: `ingest` exits with its "held" code.
    let _ = d.cli(&["ingest", cut.to_str().unwrap(), "--source", "maple"]);
    let out = d.cli(&[
        "ingest",
        sample("oneroster").to_str().unwrap(),
        "--source",
        "oak",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let h = d.history();
    let find = |state: &str| {
        h.iter()
            .find(|(_, s, st)| s == "maple" && st == state)
            .unwrap_or_else(|| panic!("no {state} maple batch: {h:?}"))
            .0
    };
    (d, find("applied"), find("held"))
}
