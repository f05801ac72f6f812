//! Who may reach the server: the SFTP accounts (add, a new password shown once, a key,
//! remove), the REST API's clients (add, a new secret shown once, remove) and the addresses
//! the defender has banned (unban).
//!
//! Accounts are changed with the same [`Accounts`] methods the `rosterdrop account` command
//! uses, saved the same way, and the daemon then re-reads them as after `rosterdrop reload`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::html;

use super::{layout, respond};
use crate::api::clients::{clients_path, ApiClients};
use crate::console::{admin_of, blocking, poster_of, Admin, Console, Refused};
use crate::sftp::accounts::Accounts;

/// Largest public key line accepted from the form.
const MAX_KEY: usize = 16 * 1024;

/// The two buttons of an account's or a client's row: a new password or secret
/// (`(path, label, aria-label)`), and removal behind a "sure" box (`(path, aria-label)`).
fn row_actions(
    c: &Console,
    csrf: &str,
    name: &str,
    renew: (&str, &str, &str),
    remove: (&str, &str),
) -> maud::Markup {
    html! {
        div.actions {
            form method="post" action=(c.at(renew.0)) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="name" value=(name);
                button type="submit" aria-label=(renew.2) { (renew.1) }
            }
            form method="post" action=(c.at(remove.0)) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="name" value=(name);
                label { input type="checkbox" name="sure" value="yes" required; " sure" }
                button.danger type="submit" aria-label=(remove.1) { "Remove" }
            }
        }
    }
}

fn clients_file(c: &Console) -> std::path::PathBuf {
    let cfg = c.backend().config();
    clients_path(&cfg.api, &cfg.state_dir)
}

/// API client changes, with the same [`ApiClients`] methods and file as `rosterdrop
/// api-client`; the daemon notices the changed file by itself.
fn change_client(
    c: &Console,
    a: &Admin,
    verb: &str,
    form: &HashMap<String, String>,
) -> Result<Outcome, Refused> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("").trim();
    let path = clients_file(c);
    let mut clients = ApiClients::load(&path).map_err(|e| Refused::Internal(e.to_string()))?;
    let name = field("name").to_owned();
    let visible = clients.get(&name).is_some_and(|cl| a.sees(&cl.source));
    let bad = |e: &dyn std::fmt::Display| Refused::Forbidden(e.to_string().into());
    let out = match verb {
        "client-add" => {
            let source = field("source");
            if !a.sees(source) || !c.backend().config().sources.contains_key(source) {
                return Err(Refused::NotFound);
            }
            if clients.get(&name).is_some() && !visible {
                return Err(hidden_name(&name));
            }
            let cr = clients
                .add(&name, source, &[], false, false)
                .map_err(|e| bad(&e))?;
            Outcome {
                message: format!(
                    "API client {name} (source {source}) created; client id {}.",
                    cr.client_id
                ),
                password: Some(cr.secret),
            }
        }
        "client-secret" if visible => {
            let cr = clients.regenerate_secret(&name).map_err(|e| bad(&e))?;
            Outcome {
                message: format!(
                    "API client {name} (client id {}) has a new secret; the old one and its tokens no longer work.",
                    cr.client_id
                ),
                password: Some(cr.secret),
            }
        }
        "client-remove" if visible => {
            if field("sure") != "yes" {
                return Err(Refused::Forbidden(
                    "Tick \"sure\" to remove an API client.".into(),
                ));
            }
            clients.remove(&name).map_err(|e| bad(&e))?;
            Outcome {
                message: format!("API client {name} removed."),
                password: None,
            }
        }
        _ => return Err(Refused::NotFound),
    };
    clients
        .save(&path)
        .map_err(|e| Refused::Internal(e.to_string()))?;
    tracing::info!(admin = %a.name, verb, client = %name, "console changed an API client");
    Ok(out)
}

fn accounts_path(c: &Console) -> std::path::PathBuf {
    let cfg = c.backend().config();
    cfg.sftp.accounts_path(&cfg.state_dir)
}

pub async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let a = match admin_of(&c, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    let path = accounts_path(&c);
    let cpath = clients_file(&c);
    let (accounts, clients) = match blocking(move || {
        Ok((
            Accounts::load(&path).map_err(|e| Refused::Internal(e.to_string()))?,
            ApiClients::load(&cpath).map_err(|e| Refused::Internal(e.to_string()))?,
        ))
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return e.into_response(&c),
    };
    let sources: Vec<String> = c
        .backend()
        .config()
        .sources
        .keys()
        .filter(|s| a.sees(s))
        .cloned()
        .collect();
    let mine: Vec<_> = accounts
        .accounts
        .iter()
        .filter(|(_, acc)| a.sees(&acc.source))
        .collect();
    let my_clients: Vec<_> = clients
        .clients
        .iter()
        .filter(|(_, cl)| a.sees(&cl.source))
        .collect();
    let live: Vec<_> = c
        .presence()
        .live()
        .into_iter()
        .filter(|l| a.sees(&l.source))
        .collect();
    let all_sources = a.user.sources.is_empty();
    let bans = if all_sources {
        c.defender().bans()
    } else {
        vec![]
    };
    let csrf = a.session.csrf.clone();
    let body = html! {
        h2 { "SFTP accounts" }
        @if mine.is_empty() { p { "No accounts yet." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Account" } th scope="col" { "Source" } th scope="col" { "Password" }
                    th scope="col" class="num" { "Keys" } th scope="col" { "Last login" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for (name, acc) in &mine {
                        tr {
                            th scope="row" { (name) }
                            td { (acc.source) }
                            td { @if acc.password_hash.is_some() { "set" } @else { "none (keys only)" } }
                            td.num { (acc.authorized_keys.len()) }
                            td { @match c.presence().last_login(name) {
                                Some((at, addr)) => { (super::when(at)) " from " (addr.ip()) }
                                None => "not since the daemon started",
                            } }
                            td { (row_actions(&c, &csrf, name,
                                ("access/passwd", "New password", &format!("New password for {name}")),
                                ("access/remove", &format!("Remove {name}")))) }
                        }
                    }
                }
            } }
        }
        @if !sources.is_empty() {
            h2 { "Add an account" }
            form.card method="post" action=(c.at("access/add")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="acc-name" { "Account name" }
                input id="acc-name" name="name" type="text" required maxlength="32" pattern="[a-z0-9][a-z0-9_.\\-]*";
                label for="acc-source" { "Source" }
                select id="acc-source" name="source" { @for s in &sources { option value=(s) { (s) } } }
                button type="submit" { "Add account" }
            }
        }
        @if !mine.is_empty() {
            h2 { "Authorize a key" }
            form.card method="post" action=(c.at("access/key")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="key-name" { "Account" }
                select id="key-name" name="name" { @for (n, _) in &mine { option value=(n) { (n) } } }
                label for="key-line" { "Public key (one OpenSSH line, e.g. ssh-ed25519 AAAA…)" }
                textarea id="key-line" name="key" rows="3" required {}
                button type="submit" { "Authorize key" }
            }
        }
        h2 { "Live SFTP sessions" }
        @if live.is_empty() { p { "Nobody is logged in over SFTP." } } @else {
            table {
                thead { tr { th scope="col" { "Account" } th scope="col" { "Source" } th scope="col" { "Address" } th scope="col" { "Since" } } }
                tbody { @for l in &live { tr { td { (l.account) } td { (l.source) } td { (l.addr) } td { (super::when(l.since)) } } } }
            }
        }
        h2 { "API clients" }
        @if my_clients.is_empty() { p { "No API clients yet." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Client" } th scope="col" { "Source" } th scope="col" { "Client id" }
                    th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for (name, cl) in &my_clients {
                        tr {
                            th scope="row" { (name) } td { (cl.source) } td { code { (cl.client_id) } }
                            td { @for sc in &cl.scopes { (sc.name()) " " } } td { (cl.created) }
                            td { (row_actions(&c, &csrf, name,
                                ("access/client-secret", "New secret", &format!("New secret for {name}")),
                                ("access/client-remove", &format!("Remove client {name}")))) }
                        }
                    }
                }
            } }
        }
        @if !sources.is_empty() {
            h3 { "Add an API client" }
            form.card method="post" action=(c.at("access/client-add")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="cl-name" { "Client name" }
                input id="cl-name" name="name" type="text" required maxlength="32" pattern="[a-z0-9][a-z0-9_.\\-]*";
                label for="cl-source" { "Source" }
                select id="cl-source" name="source" { @for s in &sources { option value=(s) { (s) } } }
                p { "Scopes: roster-core.readonly and roster.readonly (for others, or OAuth 1.0a, use " code { "rosterdrop api-client add" } ")." }
                button type="submit" { "Add API client" }
            }
        }
        @if all_sources {
            h2 { "Banned addresses" }
            @if bans.is_empty() { p { "No address is banned." } } @else {
                table {
                    thead { tr { th scope="col" { "Address" } th scope="col" class="num" { "Ban ends in" } th scope="col" { "" } } }
                    tbody {
                        @for (ip, left) in &bans {
                            tr {
                                td { (ip) } td.num { (left.as_secs()) " s" }
                                td { form method="post" action=(c.at("access/unban")) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="addr" value=(ip);
                                    button type="submit" aria-label=(format!("Unban {ip}")) { "Unban" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&c, Some(&a), "Access", body))
}

/// What an action did: a message, and a password to show once.
struct Outcome {
    message: String,
    password: Option<String>,
}

fn change(
    c: &Console,
    a: &Admin,
    verb: &str,
    form: &HashMap<String, String>,
) -> Result<Outcome, Refused> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("").trim();
    let path = accounts_path(c);
    let mut accounts = Accounts::load(&path).map_err(|e| Refused::Internal(e.to_string()))?;
    let name = field("name").to_owned();
    // An account of a source this admin does not see does not exist for them.
    let visible = |accounts: &Accounts| {
        accounts
            .accounts
            .get(&name)
            .is_some_and(|acc| a.sees(&acc.source))
    };
    let bad = |e: &dyn std::fmt::Display| Refused::Forbidden(e.to_string().into());
    let out = match verb {
        "add" => {
            let source = field("source");
            if !a.sees(source) || !c.backend().config().sources.contains_key(source) {
                return Err(Refused::NotFound);
            }
            if accounts.accounts.contains_key(&name) && !visible(&accounts) {
                return Err(hidden_name(&name));
            }
            let pw = accounts.add(&name, source).map_err(|e| bad(&e))?;
            Outcome {
                message: format!("Account {name} (source {source}) created."),
                password: Some(pw),
            }
        }
        "passwd" if visible(&accounts) => {
            let pw = accounts.regenerate_password(&name).map_err(|e| bad(&e))?;
            Outcome {
                message: format!("Account {name} has a new password; the old one no longer works."),
                password: Some(pw),
            }
        }
        "key" if visible(&accounts) => {
            let line = field("key");
            if line.len() > MAX_KEY || line.contains("PRIVATE KEY") {
                return Err(Refused::Forbidden(
                    "That is not a public key line (a private key must stay with the vendor)."
                        .into(),
                ));
            }
            let key = accounts.add_key(&name, line).map_err(|e| bad(&e))?;
            Outcome {
                message: format!(
                    "Key {} {} authorized for {name}.",
                    key.algorithm(),
                    key.fingerprint(russh::keys::HashAlg::Sha256)
                ),
                password: None,
            }
        }
        "remove" if visible(&accounts) => {
            if field("sure") != "yes" {
                return Err(Refused::Forbidden(
                    "Tick \"sure\" to remove an account.".into(),
                ));
            }
            accounts.remove(&name).map_err(|e| bad(&e))?;
            Outcome {
                message: format!("Account {name} removed."),
                password: None,
            }
        }
        _ => return Err(Refused::NotFound),
    };
    accounts
        .save(&path)
        .map_err(|e| Refused::Internal(e.to_string()))?;
    // The running daemon takes the change at once, as after `rosterdrop account ...`.
    if let Err(e) = c.backend().reload() {
        tracing::error!(error = %e, "accounts changed from the console but not reloaded");
    }
    tracing::info!(admin = %a.name, verb, account = %name, "console changed an SFTP account");
    Ok(out)
}

pub async fn act(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(verb): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let a = match poster_of(&c, &headers, &form) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    if verb == "unban" {
        if !a.user.sources.is_empty() {
            return Refused::NotFound.into_response(&c);
        }
        let Ok(ip) = form
            .get("addr")
            .map(String::as_str)
            .unwrap_or("")
            .parse::<IpAddr>()
        else {
            return Refused::NotFound.into_response(&c);
        };
        let was = c.defender().unban(ip);
        tracing::info!(admin = %a.name, addr = %ip, "console unbanned an address");
        let body = html! {
            p.lead role="status" { @if was { (ip) " may log in again." } @else { (ip) " was not banned." } }
            p { a href=(c.at("access")) { "Back to access" } }
        };
        return respond(StatusCode::OK, layout(&c, Some(&a), "Unbanned", body));
    }
    let c2 = c.clone();
    let verb2 = verb.clone();
    let a_name = a.name.clone();
    let a_user = a.user.clone();
    let a_session = a.session.clone();
    let out = blocking(move || {
        let a = Admin {
            name: a_name,
            user: a_user,
            session: a_session,
        };
        if verb2.starts_with("client-") {
            change_client(&c2, &a, &verb2, &form)
        } else {
            change(&c2, &a, &verb2, &form)
        }
    })
    .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return e.into_response(&c),
    };
    let body = html! {
        p.lead role="status" { (out.message) }
        @if let Some(pw) = &out.password {
            p { "Password or secret: " code.secret { (pw) } }
            p.notice { "It is shown once and cannot be retrieved: give it to the vendor now." }
        }
        p { a href=(c.at("access")) { "Back to access" } }
    };
    respond(StatusCode::OK, layout(&c, Some(&a), "Done", body))
}

/// The refusal of a name another source's account or client has. Names are one namespace over
/// all sources, so the name must be refused; this says no more than that (not that it exists,
/// nor whose it is), where "already exists" confirmed another source's vendor to an admin of
/// one source (found by an outside probe).
fn hidden_name(name: &str) -> Refused {
    Refused::Forbidden(format!("the name {name} cannot be used: choose another").into())
}
