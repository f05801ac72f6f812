//! One source: its roster size and changes per batch over time (an SVG chart and the same
//! numbers as a table), and its settings as the configuration file has them, read-only.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::{layout, respond, sources::roster_size};
use crate::console::chart::{self, Point};
use crate::console::{admin_of, blocking, Console, Refused};
use crate::store::BatchState;

/// Batches charted at most (the newest).
const MAX_POINTS: usize = 60;

/// The source's `[sources.NAME]` table of the configuration file, as TOML.
fn settings_text(path: &std::path::Path, name: &str) -> Result<String, String> {
    let text = crate::fsutil::read_if_exists(path)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    // toml's own message would quote the broken line, which may be another section's
    // password, to an admin of this source only.
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| crate::config::toml_error(&text, &e))?;
    let table = doc
        .get("sources")
        .and_then(|s| s.get(name))
        .cloned()
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    let mut wrap = toml::Table::new();
    let mut inner = toml::Table::new();
    inner.insert(name.to_owned(), table);
    wrap.insert("sources".into(), toml::Value::Table(inner));
    toml::to_string_pretty(&wrap).map_err(|e| e.to_string())
}

pub async fn page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let a = match admin_of(&c, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    let cfg = c.backend().config();
    if !cfg.sources.contains_key(&name) || !a.sees(&name) {
        return Refused::NotFound.into_response(&c);
    }
    let b = c.backend().clone();
    let n2 = name.clone();
    let got = blocking(move || {
        let store = b.store().map_err(|e| Refused::Internal(e.to_string()))?;
        let hist = store
            .history(Some(&n2))
            .map_err(|e| Refused::Internal(e.to_string()))?;
        // Oldest first: every batch that changed the roster (applied, or applied and later
        // rolled back), the newest MAX_POINTS of them.
        let mut pts: Vec<Point> = hist
            .iter()
            .filter(|b| matches!(b.state, BatchState::Applied | BatchState::RolledBack))
            .take(MAX_POINTS)
            .map(|b| {
                let (added, changed, removed) = b.totals();
                Point {
                    batch: b.id,
                    size: roster_size(b).values().sum(),
                    added,
                    changed,
                    removed,
                }
            })
            .collect();
        pts.reverse();
        let settings = settings_text(&b.config().path, &n2).map_err(Refused::Internal)?;
        Ok((pts, settings))
    })
    .await;
    let (points, settings) = match got {
        Ok(x) => x,
        Err(e) => return e.into_response(&c),
    };
    let body = html! {
        p { a href=(c.at(&format!("batches?source={name}"))) { "Batch history of " (name) } }
        h2 { "Roster over time" }
        (chart::svg(&name, &points))
        @if !points.is_empty() {
            details {
                summary { "The numbers" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Batch" } th scope="col" class="num" { "Records after" }
                        th scope="col" class="num" { "Added" } th scope="col" class="num" { "Changed" } th scope="col" class="num" { "Removed" } } }
                    tbody { @for p in &points { tr {
                        td { a href=(c.at(&format!("batch/{}", p.batch))) { (p.batch) } }
                        td.num { (p.size) } td.num { (p.added) } td.num { (p.changed) } td.num { (p.removed) }
                    } } }
                } }
            }
        }
        h2 { "Settings" }
        p { "As in " code { (cfg.path.display()) } " (read-only here; edit the file and run " code { "rosterdrop reload" } ")." }
        pre.settings { (settings) }
    };
    respond(
        StatusCode::OK,
        layout(&c, Some(&a), &format!("Source {name}"), body),
    )
}
