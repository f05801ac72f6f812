//! The web console over real HTTP against the real daemon: logins, sessions and their cookie,
//! CSRF, restricted admins, and an approval through the same code as the CLI, recorded and
//! mailed. Every refusal is checked to have changed nothing.

use std::fs;

use crate::support::console::{add_admin, held_daemon, Client};
use crate::support::daemon::Daemon;

const CONSOLE: &str = "[console]\nenabled = true\nsession_secs = 5\n\
     [sftp.defender]\nthreshold = 6\nscore_wrong_credentials = 1\nscore_unknown_user = 2\n";

fn state_of(d: &Daemon, id: u64) -> String {
    d.history()
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, _, st)| st)
        .unwrap_or_default()
}

#[test]
fn refusals_change_nothing_and_an_approval_is_recorded_and_mailed() {
    let (d, applied, held) = held_daemon(CONSOLE);
    let ann = add_admin(&d, "ann", &[]);
    let olga = add_admin(&d, "olga", &["oak"]);
    d.cli_ok(&["account", "add", "maplesis", "--source", "maple"]);
    let run = d.start();
    let c = Client::new(d.api_port);
    let approve = format!("/admin/batch/{held}/do/approve");

    // Logged out: every page sends to the login form, and a post does nothing.
    for p in ["/admin/", "/admin/batches", &format!("/admin/batch/{held}")] {
        let r = c.get(p);
        assert_eq!(r.status, 303, "{p}");
        assert_eq!(r.header("location"), Some("/admin/login"), "{p}");
    }
    let r = c.post(&approve, &[("csrf", "x")]);
    assert_eq!(r.status, 303);
    assert_eq!(state_of(&d, held), "held");

    // A wrong password and an unknown name are refused alike.
    assert_eq!(c.login("ann", "not-it").status, 401);
    assert_eq!(c.login("nobody", &ann).status, 401);
    // A login post without the form's token is refused.
    let r = c.post(
        "/admin/login",
        &[("csrf", "forged"), ("name", "ann"), ("password", &ann)],
    );
    assert_eq!(r.status, 403);

    // Logged in: the cookie's attributes; no Secure on plain HTTP.
    let r = c.login("ann", &ann);
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with("rosterdrop_session="))
        .expect("session cookie");
    for a in ["HttpOnly", "SameSite=Strict", "Path=/admin/"] {
        assert!(set.contains(a), "{set}");
    }
    // No lifetime of its own: the server's idle expiry decides.
    assert!(!set.contains("Max-Age"), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    let home = c.get("/admin/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("held for approval"), "{}", home.body);
    assert!(home.body.contains(&format!("batch/{held}")));
    let page = c.get(&format!("/admin/batch/{held}"));
    assert!(page.body.contains("Held for approval"), "{}", page.body);

    // A post without the CSRF token, or with another, is refused and changes nothing.
    let confirm = c.get(&approve);
    assert_eq!(confirm.status, 200);
    let token = confirm.csrf();
    assert_eq!(c.post(&approve, &[]).status, 403);
    assert_eq!(c.post(&approve, &[("csrf", "not-the-token")]).status, 403);
    assert_eq!(state_of(&d, held), "held");

    // Addresses the console does not have, or cannot read, get a console page with its
    // headers, never a framework message or the REST API's JSON (found by an outside probe).
    for (path, status) in [
        ("/admin/batch/abc", 400),
        ("/admin/batch/99999999999999999999", 400),
        ("/admin/batches?page=2x", 400),
        ("/admin/batchs", 404),
        (&format!("/admin/batch/{held}/") as &str, 404),
    ] {
        let r = c.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.body.contains("<!DOCTYPE html>"), "{path}: {}", r.body);
        assert!(
            !r.body.contains("u64") && !r.body.contains("imsx"),
            "{path}: {}",
            r.body
        );
        assert!(
            r.header("content-security-policy")
                .is_some_and(|v| v.contains("default-src 'none'")),
            "{path}"
        );
    }

    // A restricted admin does not see another source's batch, nor act on it.
    let o = Client::new(d.api_port);
    assert_eq!(o.login("olga", &olga).status, 303);
    assert_eq!(o.get(&format!("/admin/batch/{held}")).status, 404);
    assert_eq!(o.get(&approve).status, 404);
    assert_eq!(o.get("/admin/batches?source=maple").status, 404);
    assert_eq!(o.get("/admin/source/maple").status, 404);
    assert_eq!(o.get("/admin/source/oak").status, 200);
    let oh = o.get("/admin/batches");
    assert!(!oh.body.contains("maple"), "{}", oh.body);
    let ot = o.get("/admin/").csrf();
    assert_eq!(o.post(&approve, &[("csrf", &ot)]).status, 404);
    assert_eq!(state_of(&d, held), "held");
    // Nor another source's SFTP account.
    let accounts = d.state.join("accounts.toml");
    let before = fs::read(&accounts).unwrap();
    let r = o.post(
        "/admin/access/passwd",
        &[("csrf", &ot), ("name", "maplesis")],
    );
    assert_eq!(r.status, 404);
    assert!(!o.get("/admin/access").body.contains("maplesis"));
    assert_eq!(fs::read(&accounts).unwrap(), before);
    // Nor learn that it exists by adding one of that name to its own source: refused without
    // saying why (found by an outside probe: "account maplesis already exists").
    let r = o.post(
        "/admin/access/add",
        &[("csrf", &ot), ("name", "maplesis"), ("source", "oak")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("cannot be used"), "{}", r.body);
    assert!(!r.body.contains("exists"), "{}", r.body);
    assert_eq!(fs::read(&accounts).unwrap(), before);

    // Only the source's last applied batch offers a rollback (every applied one did).
    let rollback_link = |id: u64| format!("/admin/batch/{id}/do/rollback");
    assert!(c
        .get(&format!("/admin/batch/{applied}"))
        .body
        .contains(&rollback_link(applied)));

    // The approval: through the daemon's admin path, recorded with who and how, and mailed.
    let r = c.post(&approve, &[("csrf", &token)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(state_of(&d, held), "applied");
    // Back to its confirmation page: nothing to confirm now, said (it asked again).
    let again = c.get(&approve);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains("cannot be approved now"),
        "{}",
        again.body
    );
    // The batch before it is no longer the last applied: no rollback offered or confirmed.
    assert!(!c
        .get(&format!("/admin/batch/{applied}"))
        .body
        .contains(&rollback_link(applied)));
    assert_eq!(c.get(&rollback_link(applied)).status, 409);
    assert!(c
        .get(&format!("/admin/batch/{held}"))
        .body
        .contains(&rollback_link(held)));
    let show = d.cli_ok(&["show", &held.to_string()]);
    assert!(
        show.contains("decided approved by ann from the web console"),
        "{show}"
    );
    let mail = d
        .state
        .join("outbox")
        .join(format!("batch-{held}-approved.eml"));
    run.wait_until(10, 50, "approval mail", || mail.exists());
    let raw = fs::read(&mail).unwrap();
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let body = m.body_text(0).unwrap_or_default().to_string();
    assert!(body.contains("approved by ann"), "{body}");
    assert!(
        body.contains(&format!(
            "http://127.0.0.1:{}/admin/batch/{held}",
            d.api_port
        )),
        "{body}"
    );

    // The batch's reports download; a name that is not one of them does not.
    let (st, csv) = c.get_bytes(&format!("/admin/batch/{held}/file/patch-summary.csv"));
    assert_eq!(st, 200);
    assert!(
        String::from_utf8_lossy(&csv).starts_with("file,"),
        "{csv:?}"
    );
    let (st, _) = c.get_bytes(&format!("/admin/batch/{held}/file/..%2Fbatch.json"));
    assert_eq!(st, 404);

    // An API client made in the console gets tokens with the secret it showed once.
    let t = c.get("/admin/access").csrf();
    let r = c.post(
        "/admin/access/client-add",
        &[("csrf", &t), ("name", "sis"), ("source", "maple")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let between = |a: &str, b: &str| {
        let i = r
            .body
            .find(a)
            .unwrap_or_else(|| panic!("{a} in {}", r.body))
            + a.len();
        r.body[i..i + r.body[i..].find(b).unwrap()].to_string()
    };
    let secret = between("<code class=\"secret\">", "<");
    let id = between("client id ", ".");
    let api = crate::support::api::Api::new(d.api_port);
    assert_eq!(api.token_basic(&id, &secret, None).status, 200);
    assert_eq!(api.token_basic(&id, "wrong-secret", None).status, 401);

    // Logged out: the session no longer works.
    let t = c.get("/admin/").csrf();
    assert_eq!(c.post("/admin/logout", &[("csrf", &t)]).status, 303);
    assert_eq!(c.get("/admin/").status, 303);

    // An expired session: refused, and its post changes nothing.
    let rb = format!("/admin/batch/{held}/do/rollback");
    let t = o.get("/admin/").csrf();
    assert_eq!(c.login("ann", &ann).status, 303);
    let t_ann = c.get(&rb).csrf();
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(c.get("/admin/").status, 303);
    assert_eq!(c.post(&rb, &[("csrf", &t_ann)]).status, 303);
    assert_eq!(o.post("/admin/logout", &[("csrf", &t)]).status, 303);
    assert_eq!(state_of(&d, held), "applied");

    // Failed logins are counted by the defender: past its threshold even the right password
    // is refused from that address.
    let x = Client::new(d.api_port);
    for _ in 0..6 {
        x.login("ann", "wrong");
    }
    assert_eq!(x.login("ann", &ann).status, 403);
    assert!(run.log_text().contains("address banned"));
}

#[test]
fn admin_user_commands() {
    let d = Daemon::new("[sources.maple]\n", 1);
    let pw = add_admin(&d, "ann", &["maple"]);
    assert_eq!(pw.len(), 24);
    let list = d.cli_ok(&["admin-user", "list"]);
    assert!(list.contains("ann") && list.contains("maple"), "{list}");
    let out = d.cli(&["admin-user", "add", "bob", "--source", "elm"]);
    assert!(!out.status.success());
    let pw2 = d.cli_ok(&["admin-user", "passwd", "ann"]);
    assert!(!pw2.contains(&pw));
    let text = fs::read_to_string(d.state.join("admin-users.toml")).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains(&pw));
    d.cli_ok(&["admin-user", "remove", "ann"]);
    assert!(d.cli_ok(&["admin-user", "list"]).contains("no admin users"));
}
