//! The first page: every source this admin sees, its last batch, its roster's size and what
//! waits for approval.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::{layout, respond, when};
use crate::console::{admin_of, blocking, Console, Refused};
use crate::store::{Batch, BatchState};

/// Records per table after a batch (what the roster held once it was applied).
pub fn roster_size(b: &Batch) -> BTreeMap<String, u64> {
    b.tables
        .iter()
        .map(|(n, t)| (n.clone(), (t.before + t.adds).saturating_sub(t.deletes)))
        .collect()
}

struct Row {
    name: String,
    last: Option<Batch>,
    applied: Option<Batch>,
    held: Vec<Batch>,
}

pub async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let a = match admin_of(&c, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(&c),
    };
    let b = c.backend().clone();
    let user = a.user.clone();
    let rows = blocking(move || {
        let cfg = b.config();
        let store = b.store().map_err(|e| Refused::Internal(e.to_string()))?;
        let mut rows = Vec::new();
        for name in cfg.sources.keys().filter(|s| user.sees(s)) {
            let hist = store
                .history(Some(name))
                .map_err(|e| Refused::Internal(e.to_string()))?;
            rows.push(Row {
                name: name.clone(),
                last: hist.first().cloned(),
                applied: hist
                    .iter()
                    .find(|b| b.state == BatchState::Applied)
                    .cloned(),
                held: hist
                    .iter()
                    .filter(|b| b.state == BatchState::Held)
                    .cloned()
                    .collect(),
            });
        }
        Ok(rows)
    })
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return e.into_response(&c),
    };
    let body = html! {
        @if rows.is_empty() { p { "No sources are configured for you." } }
        @for r in &rows {
            section.card aria-labelledby=(format!("src-{}", r.name)) {
                h2 id=(format!("src-{}", r.name)) { (r.name) }
                @match &r.last {
                    Some(l) => p {
                        "Last batch: "
                        a href=(c.at(&format!("batch/{}", l.id))) { "batch " (l.id) }
                        ", " span class=(format!("state {}", l.state.label())) { (l.state.label()) }
                        ", received " (when(l.received_at)) "."
                    },
                    None => p { "No batch yet." },
                }
                @if r.held.is_empty() {
                    p { "Nothing waits for approval." }
                } @else {
                    p.notice { strong { (r.held.len()) " held for approval:" } }
                    ul {
                        @for h in &r.held {
                            li { a href=(c.at(&format!("batch/{}", h.id))) { "batch " (h.id) } " — " (h.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
                @if let Some(ap) = &r.applied {
                    table {
                        caption { "Roster after batch " (ap.id) }
                        thead { tr { th scope="col" { "Records" } th scope="col" class="num" { "Count" } } }
                        tbody {
                            @for (t, n) in roster_size(ap) {
                                tr { th scope="row" { (t) } td.num { (n) } }
                            }
                        }
                    }
                }
                p {
                    a href=(c.at(&format!("source/{}", r.name))) { "Chart and settings of " (r.name) }
                    " · "
                    a href=(c.at(&format!("batches?source={}", r.name))) { "History of " (r.name) }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&c, Some(&a), "Sources", body))
}
