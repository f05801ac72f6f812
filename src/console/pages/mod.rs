//! The console's pages: one file per family, one layout. maud escapes every interpolation.

pub mod access;
pub mod batches;
pub mod source;
pub mod sources;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::{Admin, Console};

/// A whole page: header with the admin's name and the navigation, then `body`.
pub fn layout(c: &Console, admin: Option<&Admin>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · rosterdrop" }
                link rel="stylesheet" href=(c.at("style.css"));
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "rosterdrop" }
                    @if let Some(a) = admin {
                        nav aria-label="Main" {
                            a href=(c.at("")) { "Sources" }
                            a href=(c.at("batches")) { "Batches" }
                            a href=(c.at("access")) { "Access" }
                        }
                        form.logout method="post" action=(c.at("logout")) {
                            input type="hidden" name="csrf" value=(a.session.csrf);
                            span { (a.name) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML response.
pub fn respond(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        bidi_shown(page.into_string()),
    )
        .into_response()
}

/// The page with every bidirectional embedding, override and isolate character shown as an
/// escape (`\u{202e}`), as `summary.txt` and the emails show them: an uploaded value holding
/// one reversed the rest of its cell on screen, the console's own words included ("is not in
/// locations.csv" read backwards; an account `ven\u{202e}dor` read "venrod"). HTML escaping
/// does not touch them, and the templates hold none of their own.
fn bidi_shown(page: String) -> String {
    let is_bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !page.contains(is_bidi) {
        return page;
    }
    let mut out = String::with_capacity(page.len() + 16);
    for c in page.chars() {
        if is_bidi(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn error_page(
    c: &Console,
    admin: Option<&Admin>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    respond(
        status,
        layout(
            c,
            admin,
            title,
            html! { p.notice role="alert" { (text) } p { a href=(c.at("")) { "Back to the sources" } } },
        ),
    )
}

pub fn login(c: &Console, status: StatusCode, token: &str, note: Option<&str>) -> Response {
    respond(
        status,
        layout(
            c,
            None,
            "Log in",
            html! {
                @if let Some(n) = note { p.notice role="alert" { (n) } }
                form.card method="post" action=(c.at("login")) {
                    input type="hidden" name="csrf" value=(token);
                    label for="name" { "Name" }
                    input id="name" name="name" type="text" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            },
        ),
    )
}

/// "2026-12-06 06:01" from Unix seconds (UTC).
pub fn when(secs: u64) -> String {
    crate::store::views::fmt_time(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_from_uploads_are_shown_not_obeyed() {
        let page = html! { td { "`L9\u{202e}fdp.ecioval` is not in locations.csv" } };
        let r = respond(StatusCode::OK, page);
        let body = futures_body(r);
        assert!(
            body.contains("`L9\\u{202e}fdp.ecioval` is not in locations.csv"),
            "{body}"
        );
        assert!(!body.contains('\u{202e}'));
        // Other text, right-to-left scripts included, is as it was.
        assert_eq!(bidi_shown("שלום <b>".into()), "שלום <b>");
    }

    fn futures_body(r: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
