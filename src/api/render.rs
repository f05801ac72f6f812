//! Model records as each version's JSON: what `GET /users` and the rest put on the wire.
//!
//! One code path for both uses: [`Rendered`] is a [`serde::Serialize`] view of a record that
//! writes the served shape directly (no intermediate `Value`, so a full pull streams with
//! `serde_json::to_writer` at little more than the cost of the bytes), and [`render`] turns
//! the same view into a `serde_json::Value` for the filter and the tests.
//!
//! The rules (`docs/ARCHITECTURE.md`, "Wire shapes"): booleans are the strings `"true"`/`"false"`; no
//! nulls, an absent optional field is left out (and an empty list, unless it is required); a
//! required string the data lacks is `""`; references are `{href, sourcedId, type}` with
//! 1.2's type names in both versions and an absolute `href` whose id is percent-encoded;
//! `metadata` is nested by namespace; passwords are never served.

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::api::status::Version;
use crate::roster::model::{
    Class, Course, Demographics, Enrollment, Entity, Org, Role, Session, User, UserProfile,
};
use crate::roster::values::Date;

/// A served record's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// A removed record, kept for a while so that delta consumers see the removal.
    ToBeDeleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::ToBeDeleted => "tobedeleted",
        }
    }
}

/// What the served layer knows about a record that the model does not.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub status: Status,
    /// Milliseconds since the Unix epoch (UTC).
    pub date_last_modified_ms: i64,
    /// The version's absolute base URL, no trailing slash
    /// (`https://roster.example.edu/ims/oneroster/rostering/v1p2`): the start of every `href`.
    pub base: &'a str,
    /// Orgs and academic sessions: the sourcedIds of the records whose `parent` this one is
    /// (served as `children`). Ignored for the other entities.
    pub children: &'a [String],
}

impl<'a> Meta<'a> {
    pub fn new(status: Status, date_last_modified_ms: i64, base: &'a str) -> Meta<'a> {
        Meta {
            status,
            date_last_modified_ms,
            base,
            children: &[],
        }
    }

    pub fn with_children(self, children: &'a [String]) -> Meta<'a> {
        Meta { children, ..self }
    }
}

/// A model record of any entity.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Org(&'a Org),
    Session(&'a Session),
    Course(&'a Course),
    Class(&'a Class),
    User(&'a User),
    Enrollment(&'a Enrollment),
    Demographics(&'a Demographics),
}

impl<'a> RecordRef<'a> {
    /// Every record of `r`, kind by kind in the model's order.
    pub fn all(r: &'a crate::roster::model::Roster) -> impl Iterator<Item = RecordRef<'a>> {
        r.orgs
            .iter()
            .map(RecordRef::Org)
            .chain(r.sessions.iter().map(RecordRef::Session))
            .chain(r.courses.iter().map(RecordRef::Course))
            .chain(r.classes.iter().map(RecordRef::Class))
            .chain(r.users.iter().map(RecordRef::User))
            .chain(r.enrollments.iter().map(RecordRef::Enrollment))
            .chain(r.demographics.iter().map(RecordRef::Demographics))
    }

    pub fn entity(&self) -> Entity {
        match self {
            RecordRef::Org(_) => Entity::Org,
            RecordRef::Session(_) => Entity::Session,
            RecordRef::Course(_) => Entity::Course,
            RecordRef::Class(_) => Entity::Class,
            RecordRef::User(_) => Entity::User,
            RecordRef::Enrollment(_) => Entity::Enrollment,
            RecordRef::Demographics(_) => Entity::Demographics,
        }
    }

    pub fn sourced_id(&self) -> &str {
        match self {
            RecordRef::Org(r) => &r.sourced_id,
            RecordRef::Session(r) => &r.sourced_id,
            RecordRef::Course(r) => &r.sourced_id,
            RecordRef::Class(r) => &r.sourced_id,
            RecordRef::User(r) => &r.sourced_id,
            RecordRef::Enrollment(r) => &r.sourced_id,
            RecordRef::Demographics(r) => &r.sourced_id,
        }
    }
}

/// A record as `version` serves it; serialize it (`serde_json::to_writer`) to write the JSON.
#[derive(Debug, Clone, Copy)]
pub struct Rendered<'a> {
    pub version: Version,
    pub record: RecordRef<'a>,
    pub meta: &'a Meta<'a>,
    /// `fields=`: only these top-level properties (`None`: all). Names the version's shape
    /// does not have are simply not written (check them first with
    /// [`crate::api::fields::known_path`]).
    pub fields: Option<&'a [String]>,
}

impl<'a> Rendered<'a> {
    pub fn new(version: Version, record: RecordRef<'a>, meta: &'a Meta<'a>) -> Rendered<'a> {
        Rendered {
            version,
            record,
            meta,
            fields: None,
        }
    }

    pub fn fields(self, fields: Option<&'a [String]>) -> Rendered<'a> {
        Rendered { fields, ..self }
    }
}

/// The record as `v` serves it, as a JSON value (for the filter, and to inspect).
pub fn render(v: Version, rec: RecordRef<'_>, m: &Meta) -> Value {
    // The view only writes string keys, strings, lists and maps, which a `Value` can always
    // hold: the error case cannot happen.
    serde_json::to_value(Rendered::new(v, rec, m))
        .unwrap_or_else(|_| Value::Object(Default::default()))
}

/// Keeps only the named top-level properties of a rendered record (`fields=` applied to a
/// `Value` that was rendered whole, e.g. to evaluate a filter first).
pub fn select(value: Value, fields: &[String]) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        other => other,
    }
}

/// A record as `v` serves it, written as JSON to `w`.
pub fn write_json<W: std::io::Write>(
    w: W,
    v: Version,
    rec: RecordRef<'_>,
    m: &Meta,
    fields: Option<&[String]>,
) -> serde_json::Result<()> {
    serde_json::to_writer(w, &Rendered::new(v, rec, m).fields(fields))
}

// ---------------------------------------------------------------------------------------------
// References, hrefs, dates

/// The generic collection and the 1.2 type name of what a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Org,
    Session,
    Course,
    Class,
    User,
}

impl RefKind {
    /// The collection in the `href` (`orgs` for schools too, `academicSessions` for terms).
    pub fn collection(self) -> &'static str {
        match self {
            RefKind::Org => "orgs",
            RefKind::Session => "academicSessions",
            RefKind::Course => "courses",
            RefKind::Class => "classes",
            RefKind::User => "users",
        }
    }

    /// The reference's `type`, 1.2's vocabulary (1.1's enum has the same words).
    pub fn type_name(self) -> &'static str {
        match self {
            RefKind::Org => "org",
            RefKind::Session => "academicSession",
            RefKind::Course => "course",
            RefKind::Class => "class",
            RefKind::User => "user",
        }
    }
}

/// `{base}/{collection}/{id}` with the id percent-encoded as one path segment.
#[derive(Debug, Clone, Copy)]
pub struct Href<'a> {
    pub base: &'a str,
    pub kind: RefKind,
    pub id: &'a str,
}

impl fmt::Display for Href<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.strip_suffix('/').unwrap_or(self.base))?;
        f.write_str("/")?;
        f.write_str(self.kind.collection())?;
        f.write_str("/")?;
        fmt::Display::fmt(&Segment(self.id), f)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`),
/// so that any id (with `/`, `?`, `#`, `%`, spaces, non-ASCII) is one path segment or a safe
/// fragment. `.` and `..` are encoded too, so that no id is read as a dot segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a>(pub &'a str);

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let s = self.0;
        if s == "." || s == ".." {
            return f.write_str(if s == "." { "%2E" } else { "%2E%2E" });
        }
        let b = s.as_bytes();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                continue;
            }
            // `i` is at an ASCII byte or the first byte of a multi-byte character, and every
            // byte of a multi-byte character is encoded: `start` stays on a boundary.
            f.write_str(s.get(start..i).unwrap_or(""))?;
            let enc = [b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]];
            f.write_str(std::str::from_utf8(&enc).unwrap_or(""))?;
            start = i + 1;
        }
        f.write_str(s.get(start..).unwrap_or(""))
    }
}

/// A reference `{href, sourcedId, type}`.
struct GuidRef<'a> {
    base: &'a str,
    kind: RefKind,
    id: &'a str,
}

impl Serialize for GuidRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(
            "href",
            &Collect(Href {
                base: self.base,
                kind: self.kind,
                id: self.id,
            }),
        )?;
        m.serialize_entry("sourcedId", self.id)?;
        m.serialize_entry("type", self.kind.type_name())?;
        m.end()
    }
}

/// A list of references, ids that are empty left out.
struct GuidRefs<'a, I> {
    base: &'a str,
    kind: RefKind,
    ids: I,
}

impl<'i, I> Serialize for GuidRefs<'_, I>
where
    I: Iterator<Item = &'i str> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for id in self.ids.clone().filter(|id| !id.is_empty()) {
            seq.serialize_element(&GuidRef {
                base: self.base,
                kind: self.kind,
                id,
            })?;
        }
        seq.end()
    }
}

/// A `Display` value serialized as a string without building it first.
struct Collect<T>(T);

impl<T: fmt::Display> Serialize for Collect<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `dateLastModified`: `2026-09-01T12:00:00.000Z` (UTC, milliseconds).
pub fn format_timestamp(ms: i64) -> String {
    String::from_utf8_lossy(&timestamp_bytes(ms)).into_owned()
}

fn timestamp_bytes(ms: i64) -> [u8; 24] {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let d = Date::from_days(days);
    let y = d.y.clamp(0, 9999) as u32;
    let (secs, millis) = ((rem / 1000) as u32, (rem % 1000) as u32);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, n: u32, width: usize| {
        let mut n = n;
        for k in (0..width).rev() {
            out[at + k] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, y, 4);
    put(5, d.m, 2);
    put(8, d.d, 2);
    put(11, hh, 2);
    put(14, mm, 2);
    put(17, ss, 2);
    put(20, millis, 3);
    out
}

struct Timestamp(i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = timestamp_bytes(self.0);
        s.serialize_str(std::str::from_utf8(&b).unwrap_or("1970-01-01T00:00:00.000Z"))
    }
}

/// A model boolean (`true`/`false`, any case) as the served string; anything else is absent.
pub fn bool_str(s: &str) -> Option<&'static str> {
    if s.eq_ignore_ascii_case("true") {
        Some("true")
    } else if s.eq_ignore_ascii_case("false") {
        Some("false")
    } else {
        None
    }
}

/// A list of strings, empty items left out.
struct Strs<'a>(&'a [String]);

impl Serialize for Strs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|x| !x.is_empty()))
    }
}

fn any_item(list: &[String]) -> bool {
    list.iter().any(|x| !x.is_empty())
}

// ---------------------------------------------------------------------------------------------
// metadata

/// `metadata.<ns>.<name>` nests under `<ns>` (once: the rest of the name, dots and all, is the
/// inner key); a name without a dot stays flat; a namespace that is also a flat name (`a` and
/// `a.b`) stays flat, all of it, so that neither value is lost.
struct MetadataView<'a>(&'a [(String, String)]);

fn split_ns(name: &str) -> Option<(&str, &str)> {
    let (ns, rest) = name.split_once('.')?;
    (!ns.is_empty() && !rest.is_empty()).then_some((ns, rest))
}

/// The namespace an entry nests under, if it does.
fn nests_under<'a>(all: &[(String, String)], name: &'a str) -> Option<(&'a str, &'a str)> {
    let (ns, rest) = split_ns(name)?;
    let collides = all.iter().any(|(n, v)| n == ns && !v.is_empty());
    (!collides).then_some((ns, rest))
}

fn has_metadata(all: &[(String, String)]) -> bool {
    all.iter().any(|(_, v)| !v.is_empty())
}

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let all = self.0;
        let mut m = s.serialize_map(None)?;
        for (i, (name, value)) in all.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            let earlier = &all[..i];
            match nests_under(all, name) {
                Some((ns, _)) => {
                    // The namespace's object, written where its first entry is.
                    let seen = earlier.iter().any(|(n, v)| {
                        !v.is_empty() && nests_under(all, n).is_some_and(|(o, _)| o == ns)
                    });
                    if !seen {
                        m.serialize_entry(ns, &Namespace { all, ns })?;
                    }
                }
                None => {
                    if !earlier.iter().any(|(n, v)| n == name && !v.is_empty()) {
                        m.serialize_entry(name.as_str(), value.as_str())?;
                    }
                }
            }
        }
        m.end()
    }
}

struct Namespace<'a> {
    all: &'a [(String, String)],
    ns: &'a str,
}

impl<'a> Serialize for Namespace<'a> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        fn inner<'x>(n: &'x str, ns: &str) -> Option<&'x str> {
            split_ns(n).filter(|(o, _)| *o == ns).map(|(_, r)| r)
        }
        let mine = |n: &'a str| inner(n, self.ns);
        for (i, (name, value)) in self.all.iter().enumerate() {
            let Some(key) = mine(name).filter(|_| !value.is_empty()) else {
                continue;
            };
            let dup = self.all[..i]
                .iter()
                .any(|(n, v)| !v.is_empty() && mine(n) == Some(key));
            if !dup {
                m.serialize_entry(key, value.as_str())?;
            }
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// The object writer: top-level properties, with `fields=` selection

struct Obj<'f, M> {
    m: M,
    fields: Option<&'f [String]>,
    base: &'f str,
}

impl<M: SerializeMap> Obj<'_, M> {
    fn wanted(&self, k: &str) -> bool {
        self.fields.is_none_or(|f| f.iter().any(|n| n == k))
    }

    fn put<T: ?Sized + Serialize>(&mut self, k: &'static str, v: &T) -> Result<(), M::Error> {
        if self.wanted(k) {
            self.m.serialize_entry(k, v)?;
        }
        Ok(())
    }

    /// A required string: `""` when the data has none.
    fn req(&mut self, k: &'static str, v: &str) -> Result<(), M::Error> {
        self.put(k, v)
    }

    /// An optional string: left out when empty.
    fn opt(&mut self, k: &'static str, v: &str) -> Result<(), M::Error> {
        if v.is_empty() {
            return Ok(());
        }
        self.put(k, v)
    }

    fn boolean(&mut self, k: &'static str, v: &str) -> Result<(), M::Error> {
        match bool_str(v) {
            Some(b) => self.put(k, b),
            None => Ok(()),
        }
    }

    /// A list of strings: left out when empty.
    fn strs(&mut self, k: &'static str, v: &[String]) -> Result<(), M::Error> {
        if any_item(v) {
            self.put(k, &Strs(v))?;
        }
        Ok(())
    }

    /// A reference: left out when the id is empty (an href to nothing would be invented).
    fn reference(&mut self, k: &'static str, kind: RefKind, id: &str) -> Result<(), M::Error> {
        if id.is_empty() {
            return Ok(());
        }
        let base = self.base;
        self.put(k, &GuidRef { base, kind, id })
    }

    /// A list of references: left out when empty unless `required` (then `[]`).
    fn references<'i, I>(
        &mut self,
        k: &'static str,
        kind: RefKind,
        ids: I,
        required: bool,
    ) -> Result<(), M::Error>
    where
        I: Iterator<Item = &'i str> + Clone,
    {
        if !required && !ids.clone().any(|id| !id.is_empty()) {
            return Ok(());
        }
        let base = self.base;
        self.put(k, &GuidRefs { base, kind, ids })
    }

    fn end(self) -> Result<M::Ok, M::Error> {
        self.m.end()
    }
}

fn ids(list: &[String]) -> impl Iterator<Item = &str> + Clone {
    list.iter().map(String::as_str)
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let map = s.serialize_map(None)?;
        let mut o = Obj {
            m: map,
            fields: self.fields,
            base: self.meta.base,
        };
        let (id, metadata) = match self.record {
            RecordRef::Org(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::Session(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::Course(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::Class(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::User(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::Enrollment(r) => (r.sourced_id.as_str(), &r.metadata),
            RecordRef::Demographics(r) => (r.sourced_id.as_str(), &r.metadata),
        };
        o.req("sourcedId", id)?;
        o.put("status", self.meta.status.as_str())?;
        o.put(
            "dateLastModified",
            &Timestamp(self.meta.date_last_modified_ms),
        )?;
        if has_metadata(metadata) {
            o.put("metadata", &MetadataView(metadata))?;
        }
        let v = self.version;
        let children = self.meta.children;
        match self.record {
            RecordRef::Org(r) => org(&mut o, r, children)?,
            RecordRef::Session(r) => session(&mut o, r, children)?,
            RecordRef::Course(r) => course(&mut o, r)?,
            RecordRef::Class(r) => class(&mut o, v, r)?,
            RecordRef::User(r) => match v {
                Version::V1p1 => user_v1p1(&mut o, r)?,
                Version::V1p2 => user_v1p2(&mut o, r)?,
            },
            RecordRef::Enrollment(r) => enrollment(&mut o, r)?,
            RecordRef::Demographics(r) => demographics(&mut o, v, r)?,
        }
        o.end()
    }
}

// ---------------------------------------------------------------------------------------------
// The entities, properties in the order of the binding's schemas

type Res<M> = Result<(), <M as SerializeMap>::Error>;

fn org<M: SerializeMap>(o: &mut Obj<M>, r: &Org, children: &[String]) -> Res<M> {
    o.req("name", &r.name)?;
    o.req("type", &r.org_type)?;
    o.req("identifier", &r.identifier)?;
    o.reference("parent", RefKind::Org, r.parent.as_deref().unwrap_or(""))?;
    o.references("children", RefKind::Org, ids(children), false)
}

fn session<M: SerializeMap>(o: &mut Obj<M>, r: &Session, children: &[String]) -> Res<M> {
    o.req("title", &r.title)?;
    o.req("startDate", &r.start_date)?;
    o.req("endDate", &r.end_date)?;
    o.req("type", &r.session_type)?;
    o.reference(
        "parent",
        RefKind::Session,
        r.parent.as_deref().unwrap_or(""),
    )?;
    o.references("children", RefKind::Session, ids(children), false)?;
    o.req("schoolYear", &r.school_year)
}

fn course<M: SerializeMap>(o: &mut Obj<M>, r: &Course) -> Res<M> {
    o.req("title", &r.title)?;
    o.reference(
        "schoolYear",
        RefKind::Session,
        r.school_year.as_deref().unwrap_or(""),
    )?;
    o.req("courseCode", &r.course_code)?;
    o.strs("grades", &r.grades)?;
    o.strs("subjects", &r.subjects)?;
    o.reference("org", RefKind::Org, &r.org)?;
    o.strs("subjectCodes", &r.subject_codes)
}

fn class<M: SerializeMap>(o: &mut Obj<M>, v: Version, r: &Class) -> Res<M> {
    o.req("title", &r.title)?;
    o.opt("classCode", &r.class_code)?;
    match v {
        // 1.1's enum has no extensions; the field is optional, so an `ext:` value is left out.
        Version::V1p1 if !matches!(r.class_type.as_str(), "homeroom" | "scheduled") => {}
        _ => o.opt("classType", &r.class_type)?,
    }
    o.opt("location", &r.location)?;
    o.strs("grades", &r.grades)?;
    o.strs("subjects", &r.subjects)?;
    o.reference("course", RefKind::Course, &r.course)?;
    o.reference("school", RefKind::Org, &r.school)?;
    // 1.2 requires `terms` (at least one); 1.1 does not.
    o.references("terms", RefKind::Session, ids(&r.terms), v == Version::V1p2)?;
    o.strs("subjectCodes", &r.subject_codes)?;
    o.strs("periods", &r.periods)
}

fn enrollment<M: SerializeMap>(o: &mut Obj<M>, r: &Enrollment) -> Res<M> {
    o.reference("user", RefKind::User, &r.user)?;
    o.reference("class", RefKind::Class, &r.class)?;
    o.reference("school", RefKind::Org, &r.school)?;
    o.req("role", &r.role)?;
    o.boolean("primary", &r.primary)?;
    o.opt("beginDate", &r.begin_date)?;
    o.opt("endDate", &r.end_date)
}

/// `sex` as `v` can say it: 1.1 knows `male` and `female` only; 1.2 also `unspecified`,
/// `other` and `ext:…`. Anything else is left out.
pub fn sex(v: Version, s: &str) -> Option<&str> {
    let ok = match v {
        Version::V1p1 => matches!(s, "male" | "female"),
        Version::V1p2 => {
            matches!(s, "male" | "female" | "unspecified" | "other")
                || s.strip_prefix("ext:").is_some_and(|x| !x.is_empty())
        }
    };
    ok.then_some(s)
}

fn demographics<M: SerializeMap>(o: &mut Obj<M>, v: Version, r: &Demographics) -> Res<M> {
    o.opt("birthDate", &r.birth_date)?;
    if let Some(s) = sex(v, &r.sex) {
        o.put("sex", s)?;
    }
    o.boolean(
        "americanIndianOrAlaskaNative",
        &r.american_indian_or_alaska_native,
    )?;
    o.boolean("asian", &r.asian)?;
    o.boolean("blackOrAfricanAmerican", &r.black_or_african_american)?;
    o.boolean(
        "nativeHawaiianOrOtherPacificIslander",
        &r.native_hawaiian_or_other_pacific_islander,
    )?;
    o.boolean("white", &r.white)?;
    o.boolean(
        "demographicRaceTwoOrMoreRaces",
        &r.demographic_race_two_or_more_races,
    )?;
    o.boolean("hispanicOrLatinoEthnicity", &r.hispanic_or_latino_ethnicity)?;
    o.opt("countryOfBirthCode", &r.country_of_birth_code)?;
    o.opt("stateOfBirthAbbreviation", &r.state_of_birth_abbreviation)?;
    o.opt("cityOfBirth", &r.city_of_birth)?;
    o.opt(
        "publicSchoolResidenceStatus",
        &r.public_school_residence_status,
    )
}

// ---------------------------------------------------------------------------------------------
// users

/// A 1.2 role as 1.1 says it: 1.2's administrators, principals and counselors are 1.1's
/// `administrator`; the roles both have, and `ext:` values, are unchanged.
pub fn role_v1p1(role: &str) -> &str {
    match role {
        "counselor"
        | "principal"
        | "siteAdministrator"
        | "districtAdministrator"
        | "systemAdministrator" => "administrator",
        other => other,
    }
}

/// The user's 1.1 `role`: its primary role entry's (else the first entry's) role, said in
/// 1.1's words; `""` when it has no roles.
pub fn user_role_v1p1(u: &User) -> &str {
    primary_role(u).map_or("", |r| role_v1p1(&r.role))
}

/// The user's primary role entry (else the first).
fn primary_role(u: &User) -> Option<&Role> {
    u.roles
        .iter()
        .find(|r| r.role_type == "primary")
        .or_else(|| u.roles.first())
}

/// 1.1 `orgs`: the orgs of the user's roles, the primary entries' first, then `primaryOrg` if
/// no role names it; each once.
pub fn user_orgs(u: &User) -> impl Iterator<Item = &str> + Clone {
    let primary = u.roles.iter().filter(|r| r.role_type == "primary");
    let rest = u.roles.iter().filter(|r| r.role_type != "primary");
    let all = primary
        .chain(rest)
        .map(|r| r.org.as_str())
        .chain(u.primary_org.as_deref());
    let earlier = all.clone();
    all.enumerate()
        .filter(move |(i, id)| !id.is_empty() && !earlier.clone().take(*i).any(|e| e == *id))
        .map(|(_, id)| id)
}

fn user_v1p1<M: SerializeMap>(o: &mut Obj<M>, u: &User) -> Res<M> {
    o.req("username", &u.username)?;
    if u.user_ids
        .iter()
        .any(|i| !i.identifier.is_empty() || !i.id_type.is_empty())
    {
        o.put(
            "userIds",
            &UserIds {
                u,
                v: Version::V1p1,
            },
        )?;
    }
    o.boolean("enabledUser", &u.enabled_user)?;
    o.req("givenName", &u.given_name)?;
    o.req("familyName", &u.family_name)?;
    o.opt("middleName", &u.middle_name)?;
    o.req("role", user_role_v1p1(u))?;
    o.opt("identifier", &u.identifier)?;
    o.opt("email", &u.email)?;
    o.opt("sms", &u.sms)?;
    o.opt("phone", &u.phone)?;
    o.references("agents", RefKind::User, ids(&u.agents), false)?;
    o.references("orgs", RefKind::Org, user_orgs(u), true)?;
    o.strs("grades", &u.grades)
}

fn user_v1p2<M: SerializeMap>(o: &mut Obj<M>, u: &User) -> Res<M> {
    o.opt("userMasterIdentifier", &u.user_master_identifier)?;
    o.opt("username", &u.username)?;
    if u.user_ids
        .iter()
        .any(|i| !i.identifier.is_empty() || !i.id_type.is_empty())
    {
        o.put(
            "userIds",
            &UserIds {
                u,
                v: Version::V1p2,
            },
        )?;
    }
    // Required in 1.2. OneRoster 1.0 has no such column: a user the roster lists is enabled.
    o.put("enabledUser", bool_str(&u.enabled_user).unwrap_or("true"))?;
    o.req("givenName", &u.given_name)?;
    o.req("familyName", &u.family_name)?;
    o.opt("middleName", &u.middle_name)?;
    o.opt("preferredFirstName", &u.preferred_first_name)?;
    o.opt("preferredMiddleName", &u.preferred_middle_name)?;
    o.opt("preferredLastName", &u.preferred_last_name)?;
    o.opt("pronouns", &u.pronouns)?;
    let base = o.base;
    o.put("roles", &Roles { u, base })?;
    if !u.profiles.is_empty() {
        o.put("userProfiles", &Profiles { u, base })?;
    }
    o.reference(
        "primaryOrg",
        RefKind::Org,
        u.primary_org.as_deref().unwrap_or(""),
    )?;
    o.opt("identifier", &u.identifier)?;
    o.opt("email", &u.email)?;
    o.opt("sms", &u.sms)?;
    o.opt("phone", &u.phone)?;
    o.references("agents", RefKind::User, ids(&u.agents), false)?;
    o.strs("grades", &u.grades)
}

struct UserIds<'a> {
    u: &'a User,
    v: Version,
}

impl Serialize for UserIds<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for i in &self.u.user_ids {
            if i.identifier.is_empty() && i.id_type.is_empty() {
                continue;
            }
            seq.serialize_element(&UserIdView { i, v: self.v })?;
        }
        seq.end()
    }
}

struct UserIdView<'a> {
    i: &'a crate::roster::model::UserId,
    v: Version,
}

impl Serialize for UserIdView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        // 1.2 requires both; 1.1 only the identifier.
        if self.v == Version::V1p2 || !self.i.id_type.is_empty() {
            m.serialize_entry("type", &self.i.id_type)?;
        }
        m.serialize_entry("identifier", &self.i.identifier)?;
        m.end()
    }
}

/// A user profile's `profileId` (and the `userProfile` of the roles that use it): an absolute
/// URI minted from the user's and the profile's sourcedIds,
/// `{base}/users/{user}#userProfile-{profile}`. It identifies; nothing is served there.
#[derive(Debug, Clone, Copy)]
pub struct ProfileUri<'a> {
    pub base: &'a str,
    pub user: &'a str,
    pub profile: &'a str,
}

impl fmt::Display for ProfileUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = Href {
            base: self.base,
            kind: RefKind::User,
            id: self.user,
        };
        write!(f, "{user}#userProfile-{}", Segment(self.profile))
    }
}

struct Roles<'a> {
    u: &'a User,
    base: &'a str,
}

impl Serialize for Roles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.u.roles.len()))?;
        for r in &self.u.roles {
            seq.serialize_element(&RoleView {
                r,
                user: &self.u.sourced_id,
                base: self.base,
            })?;
        }
        seq.end()
    }
}

struct RoleView<'a> {
    r: &'a Role,
    user: &'a str,
    base: &'a str,
}

impl Serialize for RoleView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("roleType", &r.role_type)?;
        m.serialize_entry("role", &r.role)?;
        if !r.org.is_empty() {
            m.serialize_entry(
                "org",
                &GuidRef {
                    base: self.base,
                    kind: RefKind::Org,
                    id: &r.org,
                },
            )?;
        }
        if let Some(p) = r.user_profile.as_deref().filter(|p| !p.is_empty()) {
            let uri = ProfileUri {
                base: self.base,
                user: self.user,
                profile: p,
            };
            m.serialize_entry("userProfile", &Collect(uri))?;
        }
        if !r.begin_date.is_empty() {
            m.serialize_entry("beginDate", &r.begin_date)?;
        }
        if !r.end_date.is_empty() {
            m.serialize_entry("endDate", &r.end_date)?;
        }
        m.end()
    }
}

struct Profiles<'a> {
    u: &'a User,
    base: &'a str,
}

impl Serialize for Profiles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.u.profiles.len()))?;
        for p in &self.u.profiles {
            seq.serialize_element(&ProfileView {
                p,
                user: &self.u.sourced_id,
                base: self.base,
            })?;
        }
        seq.end()
    }
}

struct ProfileView<'a> {
    p: &'a UserProfile,
    user: &'a str,
    base: &'a str,
}

impl Serialize for ProfileView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.p;
        let mut m = s.serialize_map(None)?;
        let uri = ProfileUri {
            base: self.base,
            user: self.user,
            profile: &p.sourced_id,
        };
        m.serialize_entry("profileId", &Collect(uri))?;
        m.serialize_entry("profileType", &p.profile_type)?;
        m.serialize_entry("vendorId", &p.vendor_id)?;
        if !p.application_id.is_empty() {
            m.serialize_entry("applicationId", &p.application_id)?;
        }
        if !p.description.is_empty() {
            m.serialize_entry("description", &p.description)?;
        }
        let creds = || {
            p.credentials
                .iter()
                .filter(|c| !c.credential_type.is_empty() || !c.username.is_empty())
        };
        if creds().next().is_some() {
            m.serialize_entry("credentials", &Credentials(p))?;
        }
        m.end()
    }
}

struct Credentials<'a>(&'a UserProfile);

impl Serialize for Credentials<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for c in &self.0.credentials {
            if c.credential_type.is_empty() && c.username.is_empty() {
                continue;
            }
            seq.serialize_element(&CredentialView(c))?;
        }
        seq.end()
    }
}

/// A credential without its password, which is never served.
struct CredentialView<'a>(&'a crate::roster::model::Credential);

impl Serialize for CredentialView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", &self.0.credential_type)?;
        m.serialize_entry("username", &self.0.username)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fields::{known_path, top_level_fields};
    use crate::roster::model::{Credential, UserId};

    const BASE: &str = "https://h.example/ims/oneroster/rostering/v1p2";
    const MS: i64 = 1_788_264_000_000; // 2026-09-01T12:00:00Z

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn strs(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| s(x)).collect()
    }

    fn meta() -> Meta<'static> {
        Meta::new(Status::Active, MS, BASE)
    }

    fn role(t: &str, r: &str, org: &str) -> Role {
        Role {
            role_type: s(t).into(),
            role: s(r).into(),
            org: s(org).into(),
            ..Role::default()
        }
    }

    fn full_user() -> User {
        User {
            sourced_id: s("u/1 #x").into(),
            enabled_user: s("TRUE").into(),
            username: s("zoe").into(),
            user_ids: vec![
                UserId {
                    id_type: s("LDAP"),
                    identifier: s("z1"),
                },
                UserId {
                    id_type: s(""),
                    identifier: s("bare"),
                },
            ],
            given_name: s("Zoë").into(),
            family_name: s("O'Brien").into(),
            middle_name: s("M").into(),
            roles: vec![
                Role {
                    user_profile: Some(s("p 1")),
                    begin_date: s("2026-09-01").into(),
                    end_date: s("2027-06-30").into(),
                    ..role("primary", "principal", "s1")
                },
                role("secondary", "teacher", "s2"),
                role("secondary", "teacher", "s1"),
            ],
            primary_org: Some(s("d1")),
            user_master_identifier: s("m1").into(),
            preferred_first_name: s("Zo").into(),
            preferred_middle_name: s("Em").into(),
            preferred_last_name: s("OB").into(),
            pronouns: s("she/her").into(),
            identifier: s("1234").into(),
            email: s("zoe@north.example").into(),
            sms: s("+1555").into(),
            phone: s("555").into(),
            agents: strs(&["g1", ""]),
            grades: strs(&["09"]),
            password: s("hunter2").into(),
            profiles: vec![UserProfile {
                sourced_id: s("p 1"),
                profile_type: s("app"),
                vendor_id: s("v"),
                application_id: s("a"),
                description: s("served in 1.2"),
                credentials: vec![Credential {
                    credential_type: s("username"),
                    username: s("zoe.app"),
                    password: s("secret-cred"),
                }],
            }],
            metadata: vec![(s("apple.password_policy"), s("8"))],
        }
    }

    fn walk_no_nulls(v: &Value, at: &str) {
        match v {
            Value::Null => panic!("null at {at}"),
            Value::Bool(_) | Value::Number(_) => panic!("non-string scalar at {at}: {v}"),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk_no_nulls(x, &format!("{at}[{i}]"))),
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| walk_no_nulls(x, &format!("{at}.{k}"))),
            Value::String(_) => {}
        }
    }

    #[test]
    fn hrefs_encode_the_id_as_one_segment() {
        for (id, want) in [
            ("s1", "s1"),
            ("a/b", "a%2Fb"),
            ("with space", "with%20space"),
            ("x#y?z", "x%23y%3Fz"),
            ("100%", "100%25"),
            ("é-._~", "%C3%A9-._~"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("a.b", "a.b"),
        ] {
            let h = Href {
                base: BASE,
                kind: RefKind::Org,
                id,
            };
            assert_eq!(h.to_string(), format!("{BASE}/orgs/{want}"), "{id}");
        }
        // A trailing slash on the base is not doubled.
        let h = Href {
            base: "https://h/x/",
            kind: RefKind::Session,
            id: "t 1",
        };
        assert_eq!(h.to_string(), "https://h/x/academicSessions/t%201");
        // In a record: the ref carries the raw id, the href the encoded one.
        let e = Enrollment {
            sourced_id: "e1".into(),
            user: "u/1 #x".into(),
            class: "c1".into(),
            school: "s1".into(),
            role: "student".into(),
            ..Enrollment::default()
        };
        let v = render(Version::V1p2, RecordRef::Enrollment(&e), &meta());
        assert_eq!(v["user"]["sourcedId"], "u/1 #x");
        assert_eq!(v["user"]["href"], format!("{BASE}/users/u%2F1%20%23x"));
        assert_eq!(v["user"]["type"], "user");
        assert_eq!(v["class"]["type"], "class");
        assert_eq!(v["school"]["type"], "org");
        assert_eq!(v["school"]["href"], format!("{BASE}/orgs/s1"));
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(MS), "2026-09-01T12:00:00.000Z");
        assert_eq!(format_timestamp(MS + 1), "2026-09-01T12:00:00.001Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        // Read back by the filter's own parser (written separately).
        for ms in [0, 1, 999, 86_399_999, MS, 951_782_400_123, -86_400_001] {
            assert_eq!(
                crate::api::query::instant_ms(&format_timestamp(ms)),
                Some(ms),
                "{ms}"
            );
        }
    }

    #[test]
    fn metadata_nests_by_namespace() {
        let md = |pairs: &[(&str, &str)]| -> Value {
            let org = Org {
                sourced_id: s("o"),
                metadata: pairs.iter().map(|(k, v)| (s(k), s(v))).collect(),
                ..Org::default()
            };
            render(Version::V1p2, RecordRef::Org(&org), &meta())
                .get("metadata")
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            md(&[
                ("apple.password_policy", "8"),
                ("jp.kanaGivenName", "ゾーイ"),
                ("jp.kanaFamilyName", "オブライエン"),
                ("plain", "p"),
                ("x.y.z", "deep"),
            ]),
            serde_json::json!({
                "apple": {"password_policy": "8"},
                "jp": {"kanaGivenName": "ゾーイ", "kanaFamilyName": "オブライエン"},
                "plain": "p",
                "x": {"y.z": "deep"},
            })
        );
        // `a` and `a.b` collide: namespace `a` stays flat, the others still nest.
        assert_eq!(
            md(&[("a", "1"), ("a.b", "2"), ("a.c", "3"), ("b.c", "4")]),
            serde_json::json!({"a": "1", "a.b": "2", "a.c": "3", "b": {"c": "4"}})
        );
        // An empty value is not served, and does not cause a collision.
        assert_eq!(
            md(&[("a", ""), ("a.b", "2")]),
            serde_json::json!({"a": {"b": "2"}})
        );
        // Odd names stay flat; a repeated name is written once (the first).
        assert_eq!(
            md(&[
                (".x", "1"),
                ("y.", "2"),
                ("k", "3"),
                ("k", "4"),
                ("n.m", "5"),
                ("n.m", "6")
            ]),
            serde_json::json!({".x": "1", "y.": "2", "k": "3", "n": {"m": "5"}})
        );
        assert_eq!(md(&[]), Value::Null, "no metadata property at all");
        assert_eq!(md(&[("a", "")]), Value::Null);
    }

    #[test]
    fn roles_map_down_for_1p1() {
        for (r12, r11) in [
            ("student", "student"),
            ("teacher", "teacher"),
            ("aide", "aide"),
            ("guardian", "guardian"),
            ("parent", "parent"),
            ("proctor", "proctor"),
            ("relative", "relative"),
            ("counselor", "administrator"),
            ("principal", "administrator"),
            ("siteAdministrator", "administrator"),
            ("districtAdministrator", "administrator"),
            ("systemAdministrator", "administrator"),
            ("ext:coach", "ext:coach"),
        ] {
            assert_eq!(role_v1p1(r12), r11);
        }
        let u = full_user();
        let v11 = render(Version::V1p1, RecordRef::User(&u), &meta());
        assert_eq!(v11["role"], "administrator", "the primary entry's role");
        let orgs: Vec<&str> = v11["orgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["sourcedId"].as_str())
            .collect();
        assert_eq!(
            orgs,
            ["s1", "s2", "d1"],
            "primary first, each once, primaryOrg too"
        );
        assert!(v11.get("roles").is_none() && v11.get("primaryOrg").is_none());
        // No primary entry: the first one's role.
        let mut u2 = full_user();
        u2.roles = vec![
            role("secondary", "guardian", "s9"),
            role("secondary", "teacher", "s1"),
        ];
        u2.primary_org = None;
        let v = render(Version::V1p1, RecordRef::User(&u2), &meta());
        assert_eq!(v["role"], "guardian");
        assert_eq!(v["orgs"][1]["href"], format!("{BASE}/orgs/s1"));
    }

    #[test]
    fn users_per_version() {
        let u = full_user();
        let v12 = render(Version::V1p2, RecordRef::User(&u), &meta());
        assert_eq!(v12["enabledUser"], "true", "normalized to lower case");
        assert_eq!(v12["roles"][0]["role"], "principal");
        assert_eq!(v12["roles"][0]["org"]["sourcedId"], "s1");
        let profile = format!("{BASE}/users/u%2F1%20%23x#userProfile-p%201");
        assert_eq!(v12["roles"][0]["userProfile"], profile.as_str());
        assert_eq!(v12["userProfiles"][0]["profileId"], profile.as_str());
        assert_eq!(v12["roles"][0]["beginDate"], "2026-09-01");
        assert!(v12["roles"][1].get("userProfile").is_none());
        assert_eq!(v12["primaryOrg"]["sourcedId"], "d1");
        assert_eq!(v12["preferredFirstName"], "Zo");
        assert_eq!(
            v12["userIds"][1],
            serde_json::json!({"type": "", "identifier": "bare"})
        );
        assert_eq!(
            v12["agents"].as_array().map(Vec::len),
            Some(1),
            "empty ids left out"
        );
        assert_eq!(v12["userProfiles"][0]["description"], "served in 1.2");
        assert_eq!(
            v12["userProfiles"][0]["credentials"][0],
            serde_json::json!({"type": "username", "username": "zoe.app"})
        );
        assert_eq!(v12["metadata"]["apple"]["password_policy"], "8");
        let v11 = render(Version::V1p1, RecordRef::User(&u), &meta());
        assert_eq!(v11["userIds"][1], serde_json::json!({"identifier": "bare"}));
        for (v, body) in [("1.1", &v11), ("1.2", &v12)] {
            let text = body.to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("secret-cred"),
                "{v}"
            );
            assert!(!text.contains("password\""), "{v}: {text}");
            walk_no_nulls(body, v);
        }
        for k in [
            "preferredFirstName",
            "pronouns",
            "userMasterIdentifier",
            "userProfiles",
        ] {
            assert!(v11.get(k).is_none(), "{k} is 1.2 only");
        }
        // A user with nothing: the required properties only, roles `[]` in 1.2.
        let bare = User {
            sourced_id: s("u0").into(),
            ..User::default()
        };
        let v = render(Version::V1p2, RecordRef::User(&bare), &meta());
        assert_eq!(
            v,
            serde_json::json!({
                "sourcedId": "u0", "status": "active",
                "dateLastModified": "2026-09-01T12:00:00.000Z",
                "enabledUser": "true", "givenName": "", "familyName": "", "roles": [],
            })
        );
        let v = render(Version::V1p1, RecordRef::User(&bare), &meta());
        assert_eq!(
            v,
            serde_json::json!({
                "sourcedId": "u0", "status": "active",
                "dateLastModified": "2026-09-01T12:00:00.000Z",
                "username": "", "givenName": "", "familyName": "", "role": "", "orgs": [],
            })
        );
    }

    #[test]
    fn demographics_and_classes_per_version() {
        let d = Demographics {
            sourced_id: s("u1"),
            sex: s("unspecified"),
            asian: s("false"),
            white: s("True"),
            hispanic_or_latino_ethnicity: s(""),
            birth_date: s("2010-02-03"),
            ..Demographics::default()
        };
        let v12 = render(Version::V1p2, RecordRef::Demographics(&d), &meta());
        let v11 = render(Version::V1p1, RecordRef::Demographics(&d), &meta());
        assert_eq!(v12["sex"], "unspecified");
        assert!(v11.get("sex").is_none(), "1.1 cannot say unspecified");
        for v in [&v11, &v12] {
            assert_eq!(v["asian"], "false");
            assert_eq!(v["white"], "true");
            assert!(v.get("hispanicOrLatinoEthnicity").is_none());
        }
        assert_eq!(sex(Version::V1p1, "female"), Some("female"));
        assert_eq!(sex(Version::V1p2, "ext:x"), Some("ext:x"));
        assert_eq!(sex(Version::V1p2, "ext:"), None);
        assert_eq!(sex(Version::V1p2, "M"), None);

        let c = Class {
            sourced_id: s("c1"),
            title: s("Maths"),
            class_type: s("ext:lab"),
            periods: strs(&["1", "2"]),
            school: s("s1"),
            ..Class::default()
        };
        let v12 = render(Version::V1p2, RecordRef::Class(&c), &meta());
        let v11 = render(Version::V1p1, RecordRef::Class(&c), &meta());
        assert_eq!(v12["classType"], "ext:lab");
        assert!(v11.get("classType").is_none());
        assert_eq!(v12["terms"], serde_json::json!([]), "required in 1.2");
        assert!(v11.get("terms").is_none());
        assert_eq!(
            v11["periods"],
            serde_json::json!(["1", "2"]),
            "an array in 1.1 too"
        );
        assert!(v12.get("course").is_none(), "no reference to nothing");
    }

    #[test]
    fn children_status_and_fields() {
        let o = Org {
            sourced_id: s("d1"),
            name: s("North"),
            org_type: s("district"),
            ..Org::default()
        };
        let kids = strs(&["s1", "s2"]);
        let m = Meta::new(Status::ToBeDeleted, 0, BASE).with_children(&kids);
        let v = render(Version::V1p1, RecordRef::Org(&o), &m);
        assert_eq!(v["status"], "tobedeleted");
        assert_eq!(v["identifier"], "", "required: empty string");
        assert_eq!(v["children"][1]["href"], format!("{BASE}/orgs/s2"));
        assert!(v.get("parent").is_none());
        let want = strs(&["sourcedId", "name", "nonsense"]);
        let mut out = Vec::new();
        write_json(&mut out, Version::V1p1, RecordRef::Org(&o), &m, Some(&want)).unwrap();
        let picked: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            picked,
            serde_json::json!({"sourcedId": "d1", "name": "North"})
        );
        assert_eq!(select(v, &want), picked);
    }

    /// Every property a fully populated record renders is in the catalogue, and the other way
    /// round; the bytes written are the value rendered.
    #[test]
    fn full_records_match_the_catalogue() {
        let user = full_user();
        let org = Org {
            sourced_id: s("s1"),
            name: s("n"),
            org_type: s("school"),
            identifier: s("i"),
            parent: Some(s("d1")),
            metadata: vec![(s("x"), s("1"))],
        };
        let session = Session {
            sourced_id: s("t1"),
            title: s("T"),
            session_type: s("term"),
            start_date: s("2026-09-01"),
            end_date: s("2027-01-31"),
            parent: Some(s("y1")),
            school_year: s("2027"),
            metadata: vec![(s("x"), s("1"))],
        };
        let course = Course {
            sourced_id: s("k1"),
            title: s("K"),
            school_year: Some(s("y1")),
            course_code: s("K-1"),
            grades: strs(&["09"]),
            subjects: strs(&["maths"]),
            subject_codes: strs(&["MA"]),
            org: s("s1"),
            metadata: vec![(s("x"), s("1"))],
        };
        let class = Class {
            sourced_id: s("c1"),
            title: s("C"),
            class_code: s("C-1"),
            class_type: s("scheduled"),
            location: s("R1"),
            grades: strs(&["09"]),
            subjects: strs(&["maths"]),
            subject_codes: strs(&["MA"]),
            periods: strs(&["1"]),
            course: s("k1"),
            school: s("s1"),
            terms: strs(&["t1"]),
            metadata: vec![(s("x"), s("1"))],
        };
        let enrollment = Enrollment {
            sourced_id: "e1".into(),
            user: "u1".into(),
            class: "c1".into(),
            school: "s1".into(),
            role: "student".into(),
            primary: "false".into(),
            begin_date: "2026-09-01".into(),
            end_date: "2027-06-30".into(),
            metadata: vec![(s("x"), s("1"))],
        };
        let demo = Demographics {
            sourced_id: s("u1"),
            birth_date: s("2010-01-01"),
            sex: s("female"),
            american_indian_or_alaska_native: s("false"),
            asian: s("false"),
            black_or_african_american: s("false"),
            native_hawaiian_or_other_pacific_islander: s("false"),
            white: s("true"),
            demographic_race_two_or_more_races: s("false"),
            hispanic_or_latino_ethnicity: s("false"),
            country_of_birth_code: s("US"),
            state_of_birth_abbreviation: s("NY"),
            city_of_birth: s("Albany"),
            public_school_residence_status: s("01652"),
            metadata: vec![(s("x"), s("1"))],
        };
        let kids = strs(&["k"]);
        let m = meta().with_children(&kids);
        let records = [
            RecordRef::Org(&org),
            RecordRef::Session(&session),
            RecordRef::Course(&course),
            RecordRef::Class(&class),
            RecordRef::User(&user),
            RecordRef::Enrollment(&enrollment),
            RecordRef::Demographics(&demo),
        ];
        for v in [Version::V1p1, Version::V1p2] {
            for rec in records {
                let e = rec.entity();
                let value = render(v, rec, &m);
                walk_no_nulls(&value, "");
                let keys: Vec<&str> = value
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut want: Vec<&str> = top_level_fields(v, e).to_vec();
                want.sort_unstable();
                assert_eq!(keys, want, "{v:?} {e:?}");
                let mut paths = Vec::new();
                leaf_paths(&value, &mut Vec::new(), &mut paths);
                for p in paths {
                    assert!(known_path(v, e, &p), "{v:?} {e:?} {}", p.join("."));
                }
                let mut bytes = Vec::new();
                write_json(&mut bytes, v, rec, &m, None).unwrap();
                let back: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(back, value);
            }
        }
    }

    fn leaf_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| leaf_paths(x, at, out)),
            Value::Object(m) => {
                for (k, x) in m {
                    at.push(k.clone());
                    leaf_paths(x, at, out);
                    at.pop();
                }
            }
            _ => out.push(at.clone()),
        }
    }
}
