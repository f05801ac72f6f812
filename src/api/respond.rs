//! One REST request to its answer, without HTTP plumbing: the route a path names, which
//! served records it selects, the query (filter, sort, paging, fields) applied to them, and
//! the body and headers of the answer in the request's version.
//!
//! Collections are answered from the served roster's order and relations (no scan of the
//! store): a page is a slice of positions, rendered one record at a time into the body.

use serde_json::Value;

use crate::api::clients::Scope;
use crate::api::fields::known_path;
use crate::api::query::{Query, QueryError};
use crate::api::render::{self, Meta, Status};
pub use crate::api::routes_table::base_path;
use crate::api::routes_table::{Kind, Link, Narrow, Route, ScopeClass, ROUTES};
use crate::api::served::{Links, Record, Relations, Served};
use crate::api::status::{error_body, Minor, Version};
use crate::roster::model::Entity;

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn error(v: Version, minor: Minor, description: &str) -> Reply {
        Reply {
            status: minor.http(),
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(&error_body(v, minor, description)).unwrap_or_default(),
        }
    }
}

/// A route found for a path, with the ids its path holds, outermost first.
#[derive(Debug)]
pub struct Matched {
    pub route: &'static Route,
    pub ids: Vec<String>,
}

/// The route a path (under the version's base, percent-encoded as sent) names, with its ids
/// decoded; `None`: no such route.
pub fn match_route(rest: &str) -> Option<Matched> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    if segs.len() > 5 || segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    'routes: for route in ROUTES {
        let tpl: Vec<&str> = route.path.trim_start_matches('/').split('/').collect();
        if tpl.len() != segs.len() {
            continue;
        }
        let mut ids = Vec::new();
        for (t, s) in tpl.iter().zip(&segs) {
            if t.starts_with('{') {
                // A path segment: `+` is itself, a malformed `%` refuses the path.
                let id = crate::api::auth::oauth1::pct_decode(s.as_bytes(), false)?;
                ids.push(String::from_utf8(id).ok()?);
            } else if t != s {
                continue 'routes;
            }
        }
        return Some(Matched { route, ids });
    }
    None
}

/// The scopes any one of which lets a token use the route.
pub fn scopes_for(m: &Matched) -> Vec<Scope> {
    let names = m.route.scope.any_of();
    Scope::ALL
        .into_iter()
        .filter(|s| names.contains(&s.name()))
        .collect()
}

/// The scope class of a route (for the `insufficient_scope` challenge).
pub fn scope_class(m: &Matched) -> ScopeClass {
    m.route.scope
}

/// The positions a subset of records holds, from the served relations (`None`: all). A user
/// subset in 1.1 is by the one role a 1.1 user is served with; in 1.2 by any of its roles.
fn set_of(served: &Served, v: Version, narrow: Narrow) -> Option<&[u32]> {
    let r = &served.rel;
    Some(match narrow {
        Narrow::All => return None,
        Narrow::OrgType("school") => &r.schools,
        Narrow::SessionType("term") => &r.terms,
        Narrow::SessionType("gradingPeriod") => &r.grading_periods,
        Narrow::UserRole("student") if v == Version::V1p1 => &r.students_v1p1,
        Narrow::UserRole("teacher") if v == Version::V1p1 => &r.teachers_v1p1,
        Narrow::UserRole("student") => &r.students,
        Narrow::UserRole("teacher") => &r.teachers,
        _ => &[],
    })
}

/// The position of `id` among `entity`'s records, if it is in the subset.
fn find_in(served: &Served, v: Version, entity: Entity, narrow: Narrow, id: &str) -> Option<u32> {
    let pos = served.table(entity).find(id)?;
    match set_of(served, v, narrow) {
        None => Some(pos),
        Some(list) => list.binary_search(&pos).ok().map(|_| pos),
    }
}

/// The relation a nested route follows from its innermost parent.
fn links_of(route: &Route) -> Option<fn(&Relations) -> &Links> {
    use Entity::*;
    Some(match (route.link, route.entity, route.narrow) {
        (Link::Field("school.sourcedId"), Class, _) => |r| &r.school_classes,
        (Link::Field("school.sourcedId"), Enrollment, _) => |r| &r.school_enrollments,
        (Link::Field("class.sourcedId"), Enrollment, _) => |r| &r.class_enrollments,
        (Link::Field("course.sourcedId"), Class, _) => |r| &r.course_classes,
        (Link::Field("org.sourcedId"), Course, _) => |r| &r.school_courses,
        (Link::Field("terms.sourcedId"), Class, _) => |r| &r.term_classes,
        (Link::Field("parent.sourcedId"), Session, _) => |r| &r.term_grading_periods,
        (Link::EnrolledIn { role: "student" }, User, _) => |r| &r.class_students,
        (Link::EnrolledIn { role: "teacher" }, User, _) => |r| &r.class_teachers,
        (
            Link::ClassesOf {
                role: Some("student"),
            },
            Class,
            _,
        ) => |r| &r.student_classes,
        (
            Link::ClassesOf {
                role: Some("teacher"),
            },
            Class,
            _,
        ) => |r| &r.teacher_classes,
        (Link::ClassesOf { role: None }, Class, _) => |r| &r.user_classes,
        (Link::MembersOf, User, Narrow::UserRole("student")) => |r| &r.school_students,
        (Link::MembersOf, User, Narrow::UserRole("teacher")) => |r| &r.school_teachers,
        (Link::TermsOfClassesOf, Session, _) => |r| &r.school_terms,
        _ => return None,
    })
}

/// What a request carries besides its path.
pub struct Request<'a> {
    pub version: Version,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// `public_url` without a trailing slash.
    pub public_url: &'a str,
    /// The path under the version's base, as sent.
    pub rest: &'a str,
    pub max_limit: usize,
    /// Moodle's client wants a status object on success (per API client).
    pub status_info_on_success: bool,
    /// Tombstones older than this (ms since the epoch) are no longer shown.
    pub tombstones_after_ms: i64,
}

/// Answers a GET of a route already matched (and authorized).
pub fn answer(req: &Request<'_>, m: &Matched, served: &Served) -> Reply {
    let v = req.version;
    let route = m.route;
    let entity = route.entity;
    let query = match Query::parse(req.query, req.max_limit, |p| known_path(v, entity, p)) {
        Ok(q) => q,
        Err(e) => return query_error(v, &e),
    };
    let base = format!("{}{}", req.public_url, base_path(v));
    let table = served.table(entity);
    let visible = |pos: u32| {
        table
            .item(pos)
            .is_some_and(|it| !it.gone || it.date_last_modified_ms >= req.tombstones_after_ms)
    };
    let page = Page {
        v,
        served,
        entity,
        base: &base,
    };

    if route.kind == Kind::One {
        let id = m.ids.first().map(String::as_str).unwrap_or("");
        let Some(pos) = find_in(served, v, entity, route.narrow, id).filter(|&p| visible(p)) else {
            return Reply::error(
                v,
                Minor::UnknownObject,
                &format!("no {} with this sourcedId", route.key),
            );
        };
        let mut body = Vec::with_capacity(1024);
        body.push(b'{');
        push_key(&mut body, route.key);
        page.write(&mut body, pos, query.fields.as_deref());
        if req.status_info_on_success {
            body.extend_from_slice(SUCCESS_INFO);
        }
        body.push(b'}');
        return Reply {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
        };
    }

    // The candidates, in sourcedId order.
    let owned: Vec<u32>;
    let candidates: &[u32] = if route.kind == Kind::Nested {
        match nested(served, v, m) {
            Some(list) => list,
            None if v == Version::V1p1 => &[],
            None => {
                return Reply::error(
                    v,
                    Minor::UnknownObject,
                    "the parent object of this collection is not known",
                )
            }
        }
    } else {
        match set_of(served, v, route.narrow) {
            Some(list) => list,
            None => {
                owned = (0..table.len() as u32).collect();
                &owned
            }
        }
    };
    // A 1.1 user list under a school is of the users served there with that role.
    let narrow_v1p1 = v == Version::V1p1
        && route.kind == Kind::Nested
        && matches!(route.narrow, Narrow::UserRole(_));

    // Filter, then order.
    let by_meta = query
        .filter
        .as_ref()
        .is_none_or(|f| f.any_of.iter().flatten().all(|p| is_meta_path(&p.path)));
    let mut matched: Vec<u32> = Vec::with_capacity(candidates.len().min(1 << 20));
    for &pos in candidates {
        if !visible(pos) {
            continue;
        }
        if query.filter.is_none() && !narrow_v1p1 {
            matched.push(pos);
            continue;
        }
        let Some(it) = table.item(pos) else { continue };
        let record = (narrow_v1p1 || !by_meta).then(|| it.record(entity));
        if narrow_v1p1
            && !record
                .as_ref()
                .is_some_and(|r| route.narrow.admits(v, r.as_ref()))
        {
            continue;
        }
        let Some(f) = &query.filter else {
            matched.push(pos);
            continue;
        };
        let value = match &record {
            Some(r) if !by_meta => page.value(pos, r),
            _ => meta_value(&it),
        };
        if f.matches(&value) {
            matched.push(pos);
        }
    }
    if let Some(sort) = query.sort.as_ref().filter(|s| !is_sourced_id(s)) {
        let mut keyed: Vec<(Option<String>, u32)> = matched
            .iter()
            .filter_map(|&pos| {
                let r = table.item(pos)?.record(entity);
                Some((first_leaf(&page.value(pos, &r), sort), pos))
            })
            .collect();
        keyed.sort();
        matched = keyed.into_iter().map(|(_, p)| p).collect();
    }
    if query.descending {
        matched.reverse();
    }

    // The page.
    let total = matched.len();
    let start = query.offset.min(total);
    let end = start.saturating_add(query.limit).min(total);
    let mut body = Vec::with_capacity((end - start).saturating_mul(300).min(64 << 20) + 64);
    body.push(b'{');
    push_key(&mut body, route.key);
    body.push(b'[');
    for (i, &pos) in matched[start..end].iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        page.write(&mut body, pos, query.fields.as_deref());
    }
    body.push(b']');
    if req.status_info_on_success {
        body.extend_from_slice(SUCCESS_INFO);
    }
    body.push(b'}');
    let url = format!("{base}{}", req.rest);
    let mut headers = vec![
        ("content-type", "application/json".into()),
        ("x-total-count", total.to_string()),
    ];
    let links = link_header(&url, req.query, query.offset, query.limit, total);
    if !links.is_empty() {
        headers.push(("link", links));
    }
    Reply {
        status: 200,
        headers,
        body,
    }
}

/// A nested route's children, or `None` when a parent is unknown (or not of its kind, or a
/// class not of the school the path names).
fn nested<'a>(served: &'a Served, v: Version, m: &Matched) -> Option<&'a [u32]> {
    let route = m.route;
    let mut parent = None;
    for (p, id) in route.parents.iter().zip(&m.ids) {
        parent = Some(find_in(served, v, p.entity, p.narrow, id)?);
    }
    if let ([_, _], [school_id, _]) = (route.parents, m.ids.as_slice()) {
        // `/schools/{s}/classes/{c}/...`: the class must be one of the school's.
        let class = served.table(Entity::Class).item(parent?)?;
        match class.record(Entity::Class) {
            Record::Class(c) if &c.school == school_id => {}
            _ => return None,
        }
    }
    let links = links_of(route)?;
    links(&served.rel).get(parent? as usize)
}

/// What renders one kind of record of one served roster.
struct Page<'a> {
    v: Version,
    served: &'a Served,
    entity: Entity,
    base: &'a str,
}

impl Page<'_> {
    /// The ids of an org's or a session's children.
    fn children(&self, pos: u32) -> Vec<String> {
        let links = match self.entity {
            Entity::Org => &self.served.rel.org_children,
            Entity::Session => &self.served.rel.session_children,
            _ => return Vec::new(),
        };
        let table = self.served.table(self.entity);
        links
            .get(pos as usize)
            .map(|l| {
                l.iter()
                    .filter_map(|&c| table.item(c).map(|i| i.id.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the renderer needs besides the record: status, time, base, children.
    fn meta<'m>(&'m self, it: &crate::api::served::Item<'_>, children: &'m [String]) -> Meta<'m> {
        Meta {
            status: if it.gone {
                Status::ToBeDeleted
            } else {
                Status::Active
            },
            date_last_modified_ms: it.date_last_modified_ms,
            base: self.base,
            children,
        }
    }

    /// The record at `pos` as JSON, appended to `body`.
    fn write(&self, body: &mut Vec<u8>, pos: u32, fields: Option<&[String]>) {
        let Some(it) = self.served.table(self.entity).item(pos) else {
            body.extend_from_slice(b"{}");
            return;
        };
        let record = it.record(self.entity);
        let children = self.children(pos);
        let meta = self.meta(&it, &children);
        if render::write_json(&mut *body, self.v, record.as_ref(), &meta, fields).is_err() {
            body.extend_from_slice(b"{}");
        }
    }

    /// The record at `pos` as a JSON value (for a filter or a sort).
    fn value(&self, pos: u32, record: &Record) -> Value {
        let Some(it) = self.served.table(self.entity).item(pos) else {
            return Value::Null;
        };
        let children = self.children(pos);
        render::render(self.v, record.as_ref(), &self.meta(&it, &children))
    }
}

const SUCCESS_INFO: &[u8] =
    br#","imsx_statusInfo":{"imsx_codeMajor":"success","imsx_severity":"status"}"#;

fn push_key(body: &mut Vec<u8>, key: &str) {
    let _ = serde_json::to_writer(&mut *body, key);
    body.push(b':');
}

fn query_error(v: Version, e: &QueryError) -> Reply {
    Reply::error(v, e.minor(), &e.to_string())
}

fn is_sourced_id(path: &[String]) -> bool {
    path.len() == 1 && path[0] == "sourcedId"
}

/// Paths the served record's own bookkeeping answers, without rendering it.
fn is_meta_path(path: &[String]) -> bool {
    path.len() == 1
        && matches!(
            path[0].as_str(),
            "sourcedId" | "status" | "dateLastModified"
        )
}

fn meta_value(it: &crate::api::served::Item<'_>) -> Value {
    serde_json::json!({
        "sourcedId": it.id,
        "status": if it.gone { "tobedeleted" } else { "active" },
        "dateLastModified": render::format_timestamp(it.date_last_modified_ms),
    })
}

/// The first string a dotted path reaches in a record (a list sorts by its first element).
fn first_leaf(v: &Value, path: &[String]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Array(a) => a.first()?.get(p)?,
            other => other.get(p)?,
        };
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_string),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Longest `Link` header sent: each link repeats the query, and a proxy reads all of a
/// response's headers into one buffer (nginx: 4 or 8 KiB by default).
pub const MAX_LINK_HEADER: usize = 4 << 10;

/// RFC 8288 links to the first, previous, next and last pages, keeping every other query
/// parameter as it was sent. When the four would pass [`MAX_LINK_HEADER`] (a long filter),
/// only `next` is sent, which is what consumers page by; when even that would, none (the
/// `X-Total-Count` header still says how many there are).
pub fn link_header(url: &str, query: &str, offset: usize, limit: usize, total: usize) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            name != "offset" && name != "limit"
        })
        .collect();
    let to = |off: usize| {
        let mut q = kept.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        format!("<{url}?{q}limit={limit}&offset={off}>")
    };
    let limit_nz = limit.max(1);
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit_nz * limit_nz
    };
    let mut links = vec![format!("{}; rel=\"first\"", to(0))];
    if offset > 0 {
        links.push(format!(
            "{}; rel=\"prev\"",
            to(offset.saturating_sub(limit_nz).min(last))
        ));
    }
    if offset.saturating_add(limit_nz) < total {
        links.push(format!("{}; rel=\"next\"", to(offset + limit_nz)));
    }
    links.push(format!("{}; rel=\"last\"", to(last)));
    let all = links.join(", ");
    if all.len() <= MAX_LINK_HEADER {
        return all;
    }
    links
        .into_iter()
        .find(|l| l.ends_with("rel=\"next\"") && l.len() <= MAX_LINK_HEADER)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long filter is repeated in each link: past the bound only `next` goes, past it
    /// again none (found by an outside probe: a 26 KB filter made 100 KB of headers, which
    /// curl, Python's http.client and nginx's default buffers refuse).
    #[test]
    fn the_link_header_stays_bounded() {
        let url = "https://r.example/ims/oneroster/v1p1/users";
        let short = link_header(url, "filter=givenName%3D%27Ana%27", 100, 100, 1000);
        for rel in ["first", "prev", "next", "last"] {
            assert!(short.contains(&format!("rel=\"{rel}\"")), "{short}");
        }
        let filter = |n: usize| format!("filter=givenName%3D%27{}%27", "a".repeat(n));
        let long = link_header(url, &filter(1500), 100, 100, 1000);
        assert!(long.len() <= MAX_LINK_HEADER, "{}", long.len());
        assert!(
            long.ends_with("rel=\"next\"") && !long.contains("rel=\"first\""),
            "{long}"
        );
        assert!(long.contains("offset=200"), "{long}");
        assert_eq!(link_header(url, &filter(5000), 100, 100, 1000), "");
    }

    #[test]
    fn every_route_has_a_plan_and_paths_match() {
        assert_eq!(ROUTES.len(), 41);
        for r in ROUTES.iter().filter(|r| r.kind == Kind::Nested) {
            assert!(links_of(r).is_some(), "{}", r.path);
        }
        let m = match_route("/schools/s%2F1/classes/c%201/students").unwrap();
        assert_eq!(m.ids, ["s/1", "c 1"]);
        assert!(m.route.path.ends_with("/students"));
        assert!(match_route("/classes/c1/enrollments").is_none());
        assert!(match_route("/users//classes").is_none());
        assert!(match_route("/users/%ZZ").is_none());
        assert!(match_route("/orgs/a/b/c/d/e/f").is_none());
    }

    #[test]
    fn links_keep_the_query_and_name_every_page() {
        let l = link_header(
            "http://h/ims/oneroster/v1p1/users",
            "filter=role%3D%27student%27&limit=2&offset=2",
            2,
            2,
            5,
        );
        assert_eq!(
            l,
            "<http://h/ims/oneroster/v1p1/users?filter=role%3D%27student%27&limit=2&offset=0>; rel=\"first\", \
             <http://h/ims/oneroster/v1p1/users?filter=role%3D%27student%27&limit=2&offset=0>; rel=\"prev\", \
             <http://h/ims/oneroster/v1p1/users?filter=role%3D%27student%27&limit=2&offset=4>; rel=\"next\", \
             <http://h/ims/oneroster/v1p1/users?filter=role%3D%27student%27&limit=2&offset=4>; rel=\"last\""
        );
        let l = link_header("u", "", 0, 100, 0);
        assert_eq!(
            l,
            "<u?limit=100&offset=0>; rel=\"first\", <u?limit=100&offset=0>; rel=\"last\""
        );
    }
}
