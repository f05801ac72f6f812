//! The query parameters of a OneRoster collection request (`limit`, `offset`, `sort`,
//! `orderBy`, `fields`, `filter`), parsed from the request's query string and checked, and the
//! filter evaluated against a served record.
//!
//! The filter grammar is the binding's, with the choices written down in
//! `docs/ARCHITECTURE.md` ("The REST provider"): predicates `field op 'value'` with the seven
//! operators `= != > >= < <= ~`, joined by ` AND ` / ` OR ` (AND binds tighter, no
//! parentheses, at most [`MAX_CLAUSES`] predicates), dotted fields (`school.sourcedId`,
//! `roles.org.sourcedId`), values in single quotes with a doubled quote for a quote. A field
//! that is a list matches when any element matches (`!=`: when none is equal). `~` is a
//! case-insensitive substring test; the other operators compare strings by code point, or as
//! instants for `dateLastModified` and other date-times (a date means its midnight UTC).

use std::borrow::Cow;

use serde_json::Value;

/// Most predicates one filter may join.
pub const MAX_CLAUSES: usize = 20;

/// A collection's paging, order, selection and filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub limit: usize,
    pub offset: usize,
    /// The field to sort by (dotted), `None`: `sourcedId`.
    pub sort: Option<Vec<String>>,
    pub descending: bool,
    /// The top-level properties to return, `None`: all.
    pub fields: Option<Vec<String>>,
    pub filter: Option<Filter>,
}

/// What is wrong with a request's query, with the status the binding gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A filter that does not parse, or names no field of the record (`invalid_filter_field`).
    #[error("filter: {0}")]
    Filter(String),
    /// A `sort` or `fields` name the record does not have, or a blank one
    /// (`invalid_selection_field`).
    #[error("{param}: {}", selection_text(name))]
    Selection { param: &'static str, name: String },
    /// `limit`, `offset` or `orderBy` that is not a value it can take (`invaliddata`).
    #[error("{param}: {message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
}

fn selection_text(name: &str) -> String {
    if name.is_empty() {
        "a blank field name".to_string()
    } else {
        format!("no field `{name}`")
    }
}

impl QueryError {
    /// The codeMinor (and so the HTTP status) the binding gives this error.
    pub fn minor(&self) -> crate::api::status::Minor {
        use crate::api::status::Minor;
        match self {
            QueryError::Filter(_) => Minor::InvalidFilterField,
            QueryError::Selection { .. } => Minor::InvalidSelectionField,
            QueryError::Invalid { .. } => Minor::InvalidData,
        }
    }
}

/// A filter: predicates joined by AND within a group, groups joined by OR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub any_of: Vec<Vec<Predicate>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    pub path: Vec<String>,
    pub op: Op,
    pub value: String,
}

impl Query {
    /// Reads the query string of a collection request (`a=1&b=2`, percent-encoded, `+` a
    /// space). `known(path)` says whether the record has the (dotted) field; `max_limit` is the
    /// configured ceiling of `limit` (a larger one is lowered to it). Unknown parameters are
    /// ignored (consumers add their own, such as cache-busters).
    pub fn parse(
        query: &str,
        max_limit: usize,
        known: impl Fn(&[String]) -> bool,
    ) -> Result<Query, QueryError> {
        let mut q = Query {
            limit: 100.min(max_limit.max(1)),
            offset: 0,
            sort: None,
            descending: false,
            fields: None,
            filter: None,
        };
        let (mut limit, mut offset, mut order) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "limit" => once(&mut limit, "limit", v)?,
                "offset" => once(&mut offset, "offset", v)?,
                "orderBy" => once(&mut order, "orderBy", v)?,
                "sort" => {
                    let path = split_path(&v);
                    if !known(&path) {
                        return Err(QueryError::Selection {
                            param: "sort",
                            name: v.into_owned(),
                        });
                    }
                    q.sort = Some(path);
                }
                "fields" => {
                    let list = q.fields.get_or_insert_with(Vec::new);
                    for name in v.split(',').map(str::trim) {
                        // A blank name (`fields=`, `fields=a,`) is an invalid request, not
                        // an empty selection.
                        if name.is_empty() || !known(&[name.to_string()]) {
                            return Err(QueryError::Selection {
                                param: "fields",
                                name: name.to_string(),
                            });
                        }
                        if !list.iter().any(|n| n == name) {
                            list.push(name.to_string());
                        }
                    }
                }
                "filter" => {
                    if q.filter.is_some() {
                        return Err(QueryError::Filter("given more than once".into()));
                    }
                    q.filter = Some(Filter::parse(&v, &known)?);
                }
                _ => {}
            }
        }
        if let Some(l) = limit {
            let n = number(&l, "limit")?;
            if n == 0 {
                return Err(invalid("limit", "must be at least 1"));
            }
            q.limit = n.min(max_limit.max(1));
        }
        if let Some(o) = offset {
            q.offset = number(&o, "offset")?;
        }
        if let Some(o) = order {
            q.descending = match o.as_str() {
                "asc" => false,
                "desc" => true,
                _ => return Err(invalid("orderBy", "must be `asc` or `desc`")),
            };
        }
        Ok(q)
    }
}

fn once(slot: &mut Option<String>, param: &'static str, v: Cow<'_, str>) -> Result<(), QueryError> {
    if slot.replace(v.into_owned()).is_some() {
        return Err(invalid(param, "given more than once"));
    }
    Ok(())
}

fn number(s: &str, param: &'static str) -> Result<usize, QueryError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(param, "must be a whole number"));
    }
    s.parse().map_err(|_| invalid(param, "is too large"))
}

fn invalid(param: &'static str, message: &str) -> QueryError {
    QueryError::Invalid {
        param,
        message: message.to_string(),
    }
}

fn split_path(s: &str) -> Vec<String> {
    s.split('.').map(str::to_string).collect()
}

impl Filter {
    /// Parses a decoded filter expression; `known(path)` says whether the record has the field.
    pub fn parse(text: &str, known: impl Fn(&[String]) -> bool) -> Result<Filter, QueryError> {
        let err =
            |at: usize, what: &str| QueryError::Filter(format!("{what} at character {}", at + 1));
        let b = text.as_bytes();
        let mut i = 0;
        let mut any_of = vec![Vec::new()];
        let mut clauses = 0;
        loop {
            // field
            let start = i;
            while i < b.len() && is_name_byte(b[i]) {
                i += 1;
            }
            if i == start {
                return Err(err(i, "expected a field name"));
            }
            let field = &text[start..i];
            let path = split_path(field);
            if path.iter().any(String::is_empty) {
                return Err(err(start, "a field name has an empty part"));
            }
            if !known(&path) {
                return Err(QueryError::Filter(format!("no field `{field}`")));
            }
            // operator (spaces around it are allowed)
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            let (op, len) = match (b.get(i), b.get(i + 1)) {
                (Some(b'!'), Some(b'=')) => (Op::Ne, 2),
                (Some(b'>'), Some(b'=')) => (Op::Ge, 2),
                (Some(b'<'), Some(b'=')) => (Op::Le, 2),
                (Some(b'='), _) => (Op::Eq, 1),
                (Some(b'>'), _) => (Op::Gt, 1),
                (Some(b'<'), _) => (Op::Lt, 1),
                (Some(b'~'), _) => (Op::Contains, 1),
                _ => return Err(err(i, "expected one of = != > >= < <= ~")),
            };
            i += len;
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            // 'value' with '' for a quote
            if b.get(i) != Some(&b'\'') {
                return Err(err(i, "expected a value in single quotes"));
            }
            i += 1;
            let mut value = String::new();
            loop {
                let Some(rel) = text[i..].find('\'') else {
                    return Err(err(text.len(), "the value's closing quote is missing"));
                };
                value.push_str(&text[i..i + rel]);
                i += rel + 1;
                if b.get(i) == Some(&b'\'') {
                    value.push('\'');
                    i += 1;
                } else {
                    break;
                }
            }
            if op != Op::Contains && path.last().is_some_and(|f| f == "dateLastModified") {
                value = instant_value(value, field)?;
            }
            clauses += 1;
            if clauses > MAX_CLAUSES {
                return Err(QueryError::Filter(format!(
                    "more than {MAX_CLAUSES} predicates"
                )));
            }
            if let Some(group) = any_of.last_mut() {
                group.push(Predicate { path, op, value });
            }
            if i == b.len() {
                break;
            }
            let rest = &text[i..];
            if let Some(r) = rest.strip_prefix(" AND ") {
                i = text.len() - r.len();
            } else if let Some(r) = rest.strip_prefix(" OR ") {
                i = text.len() - r.len();
                any_of.push(Vec::new());
            } else {
                return Err(err(i, "expected ` AND ` or ` OR ` or the end"));
            }
        }
        Ok(Filter { any_of })
    }

    /// Whether a served record (its JSON) passes the filter.
    pub fn matches(&self, record: &Value) -> bool {
        self.any_of
            .iter()
            .any(|group| group.iter().all(|p| p.matches(record)))
    }
}

/// A date-time filter value checked: a date or an RFC 3339 date-time (a space may stand for
/// its `T`, as RFC 3339 allows), else the filter is refused; never compared as text.
fn instant_value(value: String, field: &str) -> Result<String, QueryError> {
    // RFC 3339 also allows a lower-case `t` and `z`.
    let value = match value.as_bytes().get(10) {
        Some(b' ' | b't') if value.len() > 10 => format!("{}T{}", &value[..10], &value[11..]),
        _ => value,
    };
    let value = match value.strip_suffix('z') {
        Some(rest) => format!("{rest}Z"),
        None => value,
    };
    if instant_ms(&value).is_some() {
        return Ok(value);
    }
    let shown: String = value.chars().take(40).collect();
    let more = if value.chars().count() > 40 {
        "..."
    } else {
        ""
    };
    Err(QueryError::Filter(format!(
        "`{shown}{more}` is not a date (YYYY-MM-DD) or an RFC 3339 date-time, which {field} \
         compares with"
    )))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.')
}

impl Predicate {
    fn matches(&self, record: &Value) -> bool {
        let mut found = Vec::new();
        leaves(record, &self.path, &mut found);
        if self.op == Op::Ne {
            return !found
                .iter()
                .any(|v| compare(v, Op::Eq, &self.value, &self.path));
        }
        found
            .iter()
            .any(|v| compare(v, self.op, &self.value, &self.path))
    }
}

/// The values at `path` (lists flattened: any element may match), as text.
fn leaves<'a>(v: &'a Value, path: &[String], out: &mut Vec<Cow<'a, str>>) {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|i| leaves(i, path, out)),
        (Value::Object(m), Some((head, rest))) => {
            if let Some(child) = m.get(head) {
                leaves(child, rest, out);
            }
        }
        (Value::String(s), None) => out.push(Cow::Borrowed(s)),
        (Value::Number(n), None) => out.push(Cow::Owned(n.to_string())),
        (Value::Bool(b), None) => out.push(Cow::Owned(b.to_string())),
        _ => {}
    }
}

fn compare(have: &str, op: Op, want: &str, path: &[String]) -> bool {
    use std::cmp::Ordering::*;
    if op == Op::Contains {
        return have.to_lowercase().contains(&want.to_lowercase());
    }
    let is_time = path.last().is_some_and(|f| f == "dateLastModified");
    let ord = match (is_time, instant_ms(have), instant_ms(want)) {
        (true, Some(h), Some(w)) => h.cmp(&w),
        _ => have.cmp(want),
    };
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Contains => false,
    }
}

pub use crate::roster::values::instant_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fields of a 1.2 user as the tests serve it.
    fn known(path: &[String]) -> bool {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        matches!(
            p.as_slice(),
            ["sourcedId"]
                | ["status"]
                | ["dateLastModified"]
                | ["givenName"]
                | ["familyName"]
                | ["email"]
                | ["grades"]
                | ["roles", "role"]
                | ["roles", "org", "sourcedId"]
                | ["enabledUser"]
        )
    }

    fn user() -> Value {
        json!({
            "sourcedId": "u1", "status": "active", "dateLastModified": "2026-09-01T12:00:00.000Z",
            "givenName": "Zoë", "familyName": "O'Brien", "email": "zoe@north.example",
            "enabledUser": "true", "grades": ["09", "10"],
            "roles": [
                {"roleType": "primary", "role": "student", "org": {"sourcedId": "s1", "type": "org"}},
                {"roleType": "secondary", "role": "student", "org": {"sourcedId": "s2", "type": "org"}}
            ]
        })
    }

    fn filter(s: &str) -> Filter {
        Filter::parse(s, known).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_operator() {
        let u = user();
        for (f, want) in [
            ("status='active'", true),
            ("status!='active'", false),
            ("familyName>'N'", true),
            ("familyName>='O''Brien'", true),
            ("familyName<'O'", false),
            ("familyName<='O''Brien'", true),
            ("email~'NORTH'", true),
            ("email~'south'", false),
            ("givenName='Zoë'", true),
            ("enabledUser='true'", true),
        ] {
            assert_eq!(filter(f).matches(&u), want, "{f}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let u = user();
        assert!(filter("status='tobedeleted' AND email~'south' OR givenName='Zoë'").matches(&u));
        assert!(!filter("status='tobedeleted' OR givenName='Zoë' AND email~'south'").matches(&u));
        assert!(filter("status='active' AND givenName='Zoë'").matches(&u));
        assert!(!filter("status='active' AND givenName='Zoe'").matches(&u));
    }

    #[test]
    fn dotted_fields_and_lists_match_any_element() {
        let u = user();
        assert!(filter("roles.org.sourcedId='s2'").matches(&u));
        assert!(!filter("roles.org.sourcedId='s3'").matches(&u));
        assert!(filter("grades='10'").matches(&u));
        assert!(
            !filter("grades!='10'").matches(&u),
            "!= holds when no element equals"
        );
        assert!(filter("grades!='11'").matches(&u));
        assert!(filter("roles.role='student' AND roles.org.sourcedId='s1'").matches(&u));
    }

    #[test]
    fn dates_compare_as_instants() {
        let u = user();
        assert!(filter("dateLastModified>'2026-09-01'").matches(&u));
        assert!(filter("dateLastModified>'2026-09-01T11:59:59Z'").matches(&u));
        assert!(!filter("dateLastModified>'2026-09-01T12:00:00.000Z'").matches(&u));
        assert!(filter("dateLastModified>='2026-09-01T12:00:00Z'").matches(&u));
        // 12:00Z is 14:00 at +02:00
        assert!(filter("dateLastModified='2026-09-01T14:00:00+02:00'").matches(&u));
        assert!(filter("dateLastModified<'2026-09-01T12:00:00.001Z'").matches(&u));
        assert_eq!(instant_ms("1970-01-01"), Some(0));
        assert_eq!(instant_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(instant_ms("1970-01-01T01:00:00+0100"), Some(0));
        assert_eq!(instant_ms("yesterday"), None);
        // RFC 3339 lets a space stand for the `T` (some consumers send it).
        assert!(!filter("dateLastModified>'2026-09-01 12:00:00Z'").matches(&u));
        assert!(filter("dateLastModified>'2026-09-01 11:59:59Z'").matches(&u));
        // And a lower-case `t` and `z`.
        assert!(!filter("dateLastModified>'2026-09-01t12:00:00z'").matches(&u));
        assert!(filter("dateLastModified>'2026-09-01t11:59:59z'").matches(&u));
    }

    /// A value that is no instant is refused, never compared as text: a delta pull with a
    /// malformed date got every record, or none, with a 200 (found by an outside probe).
    #[test]
    fn a_date_that_is_no_date_is_refused() {
        for f in [
            "dateLastModified>'2024-13-45'",
            "dateLastModified<'yesterday'",
            "dateLastModified>='2026-09-01T25:00:00Z'",
            "dateLastModified='2026-09-01T12'",
            "status='active' OR dateLastModified>''",
        ] {
            match Filter::parse(f, known) {
                Err(QueryError::Filter(m)) => assert!(m.contains("not a date"), "{f}: {m}"),
                other => panic!("{f}: {other:?}"),
            }
        }
        // `~` is a substring test, of any text.
        assert!(filter("dateLastModified~'2026-09'").matches(&user()));
    }

    #[test]
    fn quotes_and_spacing() {
        let f = filter("familyName = 'O''Brien'");
        assert_eq!(f.any_of[0][0].value, "O'Brien");
        assert_eq!(filter("givenName=''").any_of[0][0].value, "");
        assert_eq!(filter("givenName='a AND b'").any_of[0][0].value, "a AND b");
    }

    #[test]
    fn bad_filters_are_refused_with_where() {
        for (f, says) in [
            ("", "expected a field name"),
            ("status", "expected one of"),
            ("status=active", "single quotes"),
            ("status='active", "closing quote"),
            ("status='a' and givenName='b'", "AND"),
            ("status='a' AND", "AND"),
            ("status='a' AND  givenName='b'", "expected a field name"),
            ("nickname='x'", "no field `nickname`"),
            ("roles..role='x'", "empty part"),
        ] {
            match Filter::parse(f, known) {
                Err(QueryError::Filter(m)) => assert!(m.contains(says), "{f}: {m}"),
                other => panic!("{f}: {other:?}"),
            }
        }
        let many = vec!["status='a'"; MAX_CLAUSES + 1].join(" AND ");
        assert!(
            matches!(Filter::parse(&many, known), Err(QueryError::Filter(m)) if m.contains("more than"))
        );
    }

    #[test]
    fn query_string_paging_sort_fields() {
        let q = Query::parse("", 10_000, known).unwrap();
        assert_eq!((q.limit, q.offset, q.descending), (100, 0, false));
        let q = Query::parse(
            "limit=50&offset=100&sort=familyName&orderBy=desc&fields=sourcedId,email&fields=email&x=1",
            10_000,
            known,
        )
        .unwrap();
        assert_eq!((q.limit, q.offset, q.descending), (50, 100, true));
        assert_eq!(q.sort, Some(vec!["familyName".to_string()]));
        assert_eq!(q.fields, Some(vec!["sourcedId".into(), "email".into()]));
        // Percent-encoded and `+` for a space, decoded once.
        let q = Query::parse(
            "filter=status%3D%27active%27+AND+email~%27north%27",
            10_000,
            known,
        )
        .unwrap();
        assert!(q.filter.unwrap().matches(&user()));
        let q = Query::parse("filter=givenName%3D%27%2541%27", 10_000, known).unwrap();
        assert_eq!(
            q.filter.unwrap().any_of[0][0].value,
            "%41",
            "decoded once only"
        );
        // A limit over the ceiling is lowered to it.
        assert_eq!(
            Query::parse("limit=20000", 10_000, known).unwrap().limit,
            10_000
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (q, param) in [
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=1&limit=2", "limit"),
            ("offset=-5", "offset"),
            ("offset=99999999999999999999999", "offset"),
            ("orderBy=acs", "orderBy"),
        ] {
            match Query::parse(q, 10_000, known) {
                Err(QueryError::Invalid { param: p, .. }) => assert_eq!(p, param, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        assert!(matches!(
            Query::parse("sort=nickname", 10_000, known),
            Err(QueryError::Selection { param: "sort", .. })
        ));
        assert!(matches!(
            Query::parse("fields=sourcedId,nickname", 10_000, known),
            Err(QueryError::Selection {
                param: "fields",
                ..
            })
        ));
        // A blank selection field is an invalid request (the binding's "Field Selection"):
        // it answered records with no properties at all.
        for q in [
            "fields=",
            "fields=sourcedId,",
            "fields=%20",
            "fields=,email",
        ] {
            assert!(
                matches!(
                    Query::parse(q, 10_000, known),
                    Err(QueryError::Selection { param: "fields", ref name }) if name.is_empty()
                ),
                "{q}"
            );
        }
        assert!(matches!(
            Query::parse(
                "filter=status%3D%27a%27&filter=status%3D%27b%27",
                10_000,
                known
            ),
            Err(QueryError::Filter(_))
        ));
    }
}
