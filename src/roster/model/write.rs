//! The one model ([`Roster`]) out as the tables of a format: Apple School Manager's six files,
//! or OneRoster 1.1 or 1.2 CSV with its manifest.
//!
//! What the target cannot hold is left out and counted in [`Converted::lost`], never replaced
//! by an invented value: a record whose required reference or value the target lacks is
//! dropped, and what depended on it goes with it (a course without a school, its classes,
//! their enrollments), so that the bundle checks clean. The rules are the tables of
//! `docs/ARCHITECTURE.md`, "One roster model". [`BundleWriter`] is also the writer of a
//! same-format export (`store/export.rs`), so both write a table the same way.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use super::*;
use crate::roster::csvio::{CsvWriter, Dialect};
use crate::roster::schema::{Format, Schema, TableDef, APPLE_GRADES, CEDS_GRADES};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("exporting as {} is not supported (apple, oneroster-1.1 or oneroster-1.2)", .0.label())]
    Unsupported(Format),
}

/// One file of a bundle: its header and rows, aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTable {
    /// The table's name (`users` for `users.csv`).
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    /// A table from records of non-empty `(column, value)` pairs (a stored record's form): the
    /// header is the schema's columns, then every other column the records use, sorted by
    /// name (numbered columns, extensions, extras).
    pub fn from_records<N: AsRef<str>, V: AsRef<str>>(
        def: &TableDef,
        records: Vec<Vec<(N, V)>>,
    ) -> Self {
        let columns = Columns::of(def, &records);
        let width = columns.header.len();
        let rows = records
            .iter()
            .map(|r| {
                let mut row = vec![""; width];
                columns.fill(&mut row, r);
                row.into_iter().map(str::to_string).collect()
            })
            .collect();
        CsvTable {
            name: def.name.to_string(),
            header: columns.header,
            rows,
        }
    }
}

/// The header of a table made from records, and where each column name goes in it.
struct Columns {
    header: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    /// The schema's columns, then every other column `records` use, sorted by name.
    fn of<N: AsRef<str>, V>(def: &TableDef, records: &[Vec<(N, V)>]) -> Columns {
        let mut header: Vec<String> = def.columns.iter().map(|c| c.name.to_string()).collect();
        let mut index: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        let mut extra: Vec<&str> = records
            .iter()
            .flat_map(|r| r.iter().map(|(n, _)| n.as_ref()))
            .filter(|n| !index.contains_key(*n))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        for e in extra {
            index.insert(e.to_string(), header.len());
            header.push(e.to_string());
        }
        Columns { header, index }
    }

    /// Fills `row` (as wide as the header) from `record`; the first of a repeated name wins,
    /// and a value is never empty (a stored record repeats no name and keeps no empty value).
    fn fill<'v, N: AsRef<str> + 'v, V: AsRef<str> + 'v>(
        &self,
        row: &mut [&'v str],
        record: impl IntoIterator<Item = &'v (N, V)>,
    ) {
        row.fill("");
        for (n, v) in record {
            if let Some(c) = self.index.get(n.as_ref()).and_then(|&i| row.get_mut(i)) {
                if c.is_empty() {
                    *c = v.as_ref();
                }
            }
        }
    }
}

/// Writes `tables` (in the schema's order) into `dir` as a bundle of `format`: Apple's files
/// with backslash escapes, every one of them even when empty; OneRoster's files that have
/// rows, and a manifest marking them `bulk` and the schema's other files `absent` (1.0 has no
/// manifest by design).
pub fn write_bundle(format: Format, tables: &[CsvTable], dir: &Path) -> std::io::Result<()> {
    let mut w = BundleWriter::new(format, dir)?;
    for t in tables {
        w.table(t)?;
    }
    w.finish()
}

/// [`write_bundle`] a table at a time, so that a caller holds one table in memory at once.
pub struct BundleWriter<'a> {
    format: Format,
    dir: &'a Path,
    manifest: String,
}

impl<'a> BundleWriter<'a> {
    pub fn new(format: Format, dir: &'a Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut manifest = String::from("propertyName,value\nmanifest.version,1.0\n");
        if Self::has_manifest(format) {
            manifest.push_str(&format!(
                "oneroster.version,{}\n",
                if format == Format::OneRoster11 {
                    "1.1"
                } else {
                    "1.2"
                }
            ));
        }
        Ok(BundleWriter {
            format,
            dir,
            manifest,
        })
    }

    /// OneRoster 1.0 has no manifest.csv by design: its files are the bundle.
    fn has_manifest(format: Format) -> bool {
        format.is_oneroster() && format != Format::OneRoster10
    }

    /// Writes one table (tables come in the schema's order, for the manifest).
    pub fn table(&mut self, t: &CsvTable) -> std::io::Result<()> {
        let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
        let Some(mut w) = self.begin(&t.name, &header, t.rows.len())? else {
            return Ok(());
        };
        for r in &t.rows {
            w.row(r.iter().map(String::as_str))?;
        }
        w.finish()
    }

    /// Writes one table made of `records` ([`CsvTable::from_records`]'s header), each record
    /// straight into its row: no copy of the table is made on the way.
    pub fn records<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        def: &TableDef,
        records: &[Vec<(N, V)>],
    ) -> std::io::Result<()> {
        let columns = Columns::of(def, records);
        let header: Vec<&str> = columns.header.iter().map(String::as_str).collect();
        let Some(mut w) = self.begin(def.name, &header, records.len())? else {
            return Ok(());
        };
        let mut row: Vec<&str> = vec![""; header.len()];
        for r in records {
            columns.fill(&mut row, r);
            w.row(row.iter().copied())?;
        }
        w.finish()
    }

    /// Starts the table `name` of `rows` rows (tables come in the schema's order, for the
    /// manifest), its header written: the caller writes the rows. `None` when the table is
    /// not written at all (an empty OneRoster table is `absent` in the manifest); Apple's six
    /// files are all written, even when empty.
    pub fn begin(
        &mut self,
        name: &str,
        header: &[&str],
        rows: usize,
    ) -> std::io::Result<Option<TableWriter>> {
        if self.format.is_oneroster() {
            let mode = if rows == 0 { "absent" } else { "bulk" };
            self.manifest.push_str(&format!("file.{name},{mode}\n"));
            if rows == 0 {
                return Ok(None);
            }
        }
        let dialect = Dialect {
            backslash_escapes: self.format == Format::Apple,
            ..Default::default()
        };
        let f = std::fs::File::create(self.dir.join(format!("{name}.csv")))?;
        let mut csv = CsvWriter::new(std::io::BufWriter::new(f), dialect)?;
        csv.write_row(header.iter().copied())?;
        Ok(Some(TableWriter { csv }))
    }

    /// Writes the manifest (OneRoster 1.1 and 1.2).
    pub fn finish(self) -> std::io::Result<()> {
        if Self::has_manifest(self.format) {
            std::fs::write(self.dir.join("manifest.csv"), self.manifest)?;
        }
        Ok(())
    }
}

/// The rows of one table of a bundle, written one at a time ([`BundleWriter::begin`]).
pub struct TableWriter {
    csv: CsvWriter<std::io::BufWriter<std::fs::File>>,
}

impl TableWriter {
    pub fn row<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) -> std::io::Result<()> {
        self.csv.write_row(fields)
    }

    /// Writes out what is buffered: a table is not complete before this.
    pub fn finish(self) -> std::io::Result<()> {
        self.csv.into_inner().flush()
    }
}

/// A roster as the tables of a format, and what it could not hold.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// Every table of the format's schema, in its order.
    pub tables: Vec<CsvTable>,
    /// What was left out, one line each ("3 users without a school: Apple needs one").
    pub lost: Vec<String>,
}

/// Counts of what a conversion left out, by reason.
#[derive(Default)]
struct Lost(BTreeMap<Cow<'static, str>, usize>);

impl Lost {
    fn add(&mut self, why: impl Into<Cow<'static, str>>, n: usize) {
        if n > 0 {
            *self.0.entry(why.into()).or_default() += n;
        }
    }

    /// The columns of the stored roster that the model does not hold.
    fn extra_columns(&mut self, r: &Roster) {
        for (table, column, n) in &r.extra_columns {
            let column = crate::roster::text::escape_line(column);
            self.add(
                format!(
                    "values of {table}.csv column `{column}` (not in the roster model: only an \
                     export in the source's own format keeps them)"
                ),
                *n,
            );
        }
    }
    fn lines(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|(w, n)| format!("{n} {w}"))
            .collect()
    }
}

/// The records of one kind that keep their place in the target but lose values it has no
/// column for, and which fields those are: said as one line per kind.
#[derive(Default)]
struct Unheld {
    records: usize,
    fields: std::collections::BTreeSet<&'static str>,
}

impl Unheld {
    /// One record: each field named with whether it holds a value the target drops.
    fn record<const N: usize>(&mut self, fields: [(&'static str, bool); N]) {
        let mut any = false;
        for (name, dropped) in fields {
            if dropped {
                self.fields.insert(name);
                any = true;
            }
        }
        self.records += usize::from(any);
    }

    fn said(self, lost: &mut Lost, kind: &str, target: &str) {
        if self.records > 0 {
            let fields: Vec<&str> = self.fields.into_iter().collect();
            lost.add(
                format!(
                    "{kind} with values {target} has no column for ({})",
                    fields.join(", ")
                ),
                self.records,
            );
        }
    }
}

/// A record of the target format: its non-empty values by column name. Values are borrowed
/// from the roster where it holds them as they are written (most of them), so that a table's
/// records do not copy the roster's text.
type Record<'r> = Vec<(Cow<'static, str>, Cow<'r, str>)>;

/// Appends `(name, value)` when the value is not empty.
fn put<'r>(rec: &mut Record<'r>, name: &'static str, v: &'r str) {
    if !v.is_empty() {
        rec.push((Cow::Borrowed(name), Cow::Borrowed(v)));
    }
}

/// [`put`] of a value the conversion made.
fn put_owned(rec: &mut Record<'_>, name: &'static str, v: String) {
    if !v.is_empty() {
        rec.push((Cow::Borrowed(name), Cow::Owned(v)));
    }
}

fn put_list(rec: &mut Record<'_>, name: &'static str, v: &[String]) {
    if !v.is_empty() {
        rec.push((Cow::Borrowed(name), Cow::Owned(v.join(","))));
    }
}

fn put_meta<'r>(rec: &mut Record<'r>, m: &'r Metadata) {
    for (n, v) in m {
        if !v.is_empty() {
            rec.push((Cow::Owned(format!("metadata.{n}")), Cow::Borrowed(v)));
        }
    }
}

/// Where a conversion hands each table's records, in the schema's order.
type Emit<'a, 'r> = dyn FnMut(&'static str, Vec<Record<'r>>) -> std::io::Result<()> + 'a;

/// Runs the conversion to `target`, handing `emit` each table as soon as it is made.
fn run<'r>(
    roster: &'r Roster,
    target: Format,
    lost: &mut Lost,
    emit: &mut Emit<'_, 'r>,
) -> Result<(), WriteDirError> {
    match target {
        Format::Apple => apple(roster, lost, emit)?,
        Format::OneRoster11 => oneroster(roster, false, lost, emit)?,
        Format::OneRoster12 => oneroster(roster, true, lost, emit)?,
        Format::OneRoster10 => return Err(WriteError::Unsupported(target).into()),
    }
    Ok(())
}

/// The roster as the tables of `target` (Apple, OneRoster 1.1 or 1.2), all in memory.
pub fn convert(roster: &Roster, target: Format) -> Result<Converted, WriteError> {
    let schema = Schema::for_format(target);
    let mut lost = Lost::default();
    let mut tables: HashMap<&'static str, Vec<Record>> = HashMap::new();
    lost.extra_columns(roster);
    let made = run(roster, target, &mut lost, &mut |name, recs| {
        tables.insert(name, recs);
        Ok(())
    });
    match made {
        Ok(()) => {}
        Err(WriteDirError::Convert(e)) => return Err(e),
        // Collecting in memory does no I/O.
        Err(WriteDirError::Io(_)) => {}
    }
    let tables = schema
        .tables
        .iter()
        .map(|def| CsvTable::from_records(def, tables.remove(def.name).unwrap_or_default()))
        .collect();
    Ok(Converted {
        tables,
        lost: lost.lines(),
    })
}

/// Converts and writes the bundle into `dir` a table at a time (each table is written and
/// dropped as soon as it is made, so a conversion holds the roster and one table's records,
/// not the whole bundle). Returns what was left out, as [`Converted::lost`].
pub fn write(roster: &Roster, target: Format, dir: &Path) -> Result<Vec<String>, WriteDirError> {
    if target == Format::OneRoster10 {
        return Err(WriteError::Unsupported(target).into());
    }
    let schema = Schema::for_format(target);
    let mut w = BundleWriter::new(target, dir)?;
    let mut next = 0;
    let mut lost = Lost::default();
    lost.extra_columns(roster);
    run(roster, target, &mut lost, &mut |name, recs| {
        // Tables the conversion has no records for (OneRoster: absent) come in their place.
        while let Some(def) = schema.tables.get(next) {
            next += 1;
            if def.name == name {
                return w.records(def, &recs);
            }
            w.records::<&str, &str>(def, &[])?;
        }
        Err(std::io::Error::other(format!(
            "table `{name}` is not of the {} schema, or out of its order",
            target.label()
        )))
    })?;
    for def in schema.tables.get(next..).unwrap_or_default() {
        w.records::<&str, &str>(def, &[])?;
    }
    w.finish()?;
    Ok(lost.lines())
}

#[derive(Debug, thiserror::Error)]
pub enum WriteDirError {
    #[error(transparent)]
    Convert(#[from] WriteError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

// ---- OneRoster --------------------------------------------------------------------------

const ORG_TYPES: &[&str] = &[
    "department",
    "school",
    "district",
    "local",
    "state",
    "national",
];
const SESSION_TYPES: &[&str] = &["gradingPeriod", "semester", "schoolYear", "term"];
const CLASS_TYPES: &[&str] = &["homeroom", "scheduled"];
const ENROLLMENT_ROLES: &[&str] = &["administrator", "proctor", "student", "teacher"];
const ROLES_12: &[&str] = &[
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
];
const SEX_11: &[&str] = &["male", "female"];
const SEX_12: &[&str] = &["male", "female", "unspecified", "other"];

fn is_ext(v: &str) -> bool {
    v.strip_prefix("ext:").is_some_and(|t| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// Whether `v` is one of `values`, or (1.2) an `ext:` token.
fn allowed(v: &str, values: &[&str], v12: bool) -> bool {
    values.contains(&v) || (v12 && is_ext(v))
}

/// A model role as 1.1's user role: 1.2's administrators, principals and counselors are
/// `administrator`; `None` for what 1.1 cannot say (`ext:` roles).
fn role_11(role: &str) -> Option<&'static str> {
    Some(match role {
        "districtAdministrator"
        | "siteAdministrator"
        | "systemAdministrator"
        | "principal"
        | "counselor"
        | "administrator" => "administrator",
        "aide" => "aide",
        "guardian" => "guardian",
        "parent" => "parent",
        "proctor" => "proctor",
        "relative" => "relative",
        "student" => "student",
        "teacher" => "teacher",
        _ => return None,
    })
}

fn grades_for(grades: &[String], v12: bool, lost: &mut Lost) -> Vec<String> {
    let kept: Vec<String> = grades
        .iter()
        .filter(|g| CEDS_GRADES.contains(&g.as_str()) || (v12 && is_ext(g)))
        .cloned()
        .collect();
    lost.add(
        "grades that are not CEDS codes (OneRoster 1.1 has no ext: grades)",
        grades.len() - kept.len(),
    );
    kept
}

/// The `{user}.role.{n}` id of a user's n-th role (1.2 `roles.csv` rows need one; the model's
/// roles have none). The suffix is digits, so two users' ids never meet.
pub fn role_id(user: &str, n: usize) -> String {
    format!("{user}.role.{n}")
}

fn oneroster<'r>(
    r: &'r Roster,
    v12: bool,
    lost: &mut Lost,
    emit: &mut Emit<'_, 'r>,
) -> std::io::Result<()> {
    // Orgs and sessions whose type the version cannot hold go, with what needs them.
    let orgs: HashSet<&str> = r
        .orgs
        .iter()
        .filter(|o| allowed(&o.org_type, ORG_TYPES, v12))
        .map(|o| o.sourced_id.as_str())
        .collect();
    lost.add(
        "orgs of a type OneRoster 1.1 does not have (ext:)",
        r.orgs.len() - orgs.len(),
    );
    let sessions: HashSet<&str> = r
        .sessions
        .iter()
        .filter(|s| allowed(&s.session_type, SESSION_TYPES, v12))
        .map(|s| s.sourced_id.as_str())
        .collect();
    lost.add(
        "academic sessions of a type OneRoster 1.1 does not have (ext:)",
        r.sessions.len() - sessions.len(),
    );
    let courses: HashSet<&str> = r
        .courses
        .iter()
        .filter(|c| orgs.contains(c.org.as_str()))
        .map(|c| c.sourced_id.as_str())
        .collect();
    lost.add(
        "courses whose org was left out",
        r.courses.len() - courses.len(),
    );
    let mut classes: HashSet<&str> = HashSet::new();
    let mut class_rows = Vec::new();
    for c in &r.classes {
        let terms: Vec<String> = c
            .terms
            .iter()
            .filter(|t| sessions.contains(t.as_str()))
            .cloned()
            .collect();
        if !courses.contains(c.course.as_str()) || !orgs.contains(c.school.as_str()) {
            lost.add("classes whose course or school was left out", 1);
            continue;
        }
        if !allowed(&c.class_type, CLASS_TYPES, v12) {
            lost.add(
                "classes of a classType OneRoster 1.1 does not have (ext:)",
                1,
            );
            continue;
        }
        if terms.is_empty() {
            lost.add("classes without a term (OneRoster requires one)", 1);
            continue;
        }
        classes.insert(c.sourced_id.as_str());
        let mut rec = Record::new();
        put(&mut rec, "sourcedId", &c.sourced_id);
        put(&mut rec, "title", &c.title);
        put_list(&mut rec, "grades", &grades_for(&c.grades, v12, lost));
        put(&mut rec, "courseSourcedId", &c.course);
        put(&mut rec, "classCode", &c.class_code);
        put(&mut rec, "classType", &c.class_type);
        put(&mut rec, "location", &c.location);
        put(&mut rec, "schoolSourcedId", &c.school);
        put_list(&mut rec, "termSourcedIds", &terms);
        put_list(&mut rec, "subjects", &c.subjects);
        put_list(&mut rec, "subjectCodes", &c.subject_codes);
        put_list(&mut rec, "periods", &c.periods);
        put_meta(&mut rec, &c.metadata);
        class_rows.push(rec);
    }
    emit(
        "orgs",
        r.orgs
            .iter()
            .filter(|o| orgs.contains(o.sourced_id.as_str()))
            .map(|o| {
                let mut rec = Record::new();
                put(&mut rec, "sourcedId", &o.sourced_id);
                put(&mut rec, "name", &o.name);
                put(&mut rec, "type", &o.org_type);
                put(&mut rec, "identifier", &o.identifier);
                if let Some(p) = o.parent.as_deref().filter(|p| orgs.contains(p)) {
                    put(&mut rec, "parentSourcedId", p);
                }
                put_meta(&mut rec, &o.metadata);
                rec
            })
            .collect(),
    )?;
    emit(
        "academicSessions",
        r.sessions
            .iter()
            .filter(|s| sessions.contains(s.sourced_id.as_str()))
            .map(|s| {
                let mut rec = Record::new();
                put(&mut rec, "sourcedId", &s.sourced_id);
                put(&mut rec, "title", &s.title);
                put(&mut rec, "type", &s.session_type);
                put(&mut rec, "startDate", &s.start_date);
                put(&mut rec, "endDate", &s.end_date);
                if let Some(p) = s.parent.as_deref().filter(|p| sessions.contains(p)) {
                    put(&mut rec, "parentSourcedId", p);
                }
                put(&mut rec, "schoolYear", &s.school_year);
                put_meta(&mut rec, &s.metadata);
                rec
            })
            .collect(),
    )?;
    let mut course_rows = Vec::new();
    for c in r
        .courses
        .iter()
        .filter(|c| courses.contains(c.sourced_id.as_str()))
    {
        let mut rec = Record::new();
        put(&mut rec, "sourcedId", &c.sourced_id);
        if let Some(y) = c.school_year.as_deref().filter(|y| sessions.contains(y)) {
            put(&mut rec, "schoolYearSourcedId", y);
        }
        put(&mut rec, "title", &c.title);
        put(&mut rec, "courseCode", &c.course_code);
        put_list(&mut rec, "grades", &grades_for(&c.grades, v12, lost));
        put(&mut rec, "orgSourcedId", &c.org);
        put_list(&mut rec, "subjects", &c.subjects);
        put_list(&mut rec, "subjectCodes", &c.subject_codes);
        put_meta(&mut rec, &c.metadata);
        course_rows.push(rec);
    }
    emit("courses", course_rows)?;
    emit("classes", class_rows)?;

    // Users: each needs a role at an org it has (1.1: one it can say); a user with none (a 1.2
    // user kept by a release before the check required a role) is left out of both versions.
    let mut users: HashSet<&str> = HashSet::new();
    let mut kept_roles: Vec<(&User, Vec<&Role>)> = Vec::new();
    for u in &r.users {
        let roles: Vec<&Role> = u
            .roles
            .iter()
            .filter(|x| orgs.contains(x.org.as_str()))
            .filter(|x| {
                if v12 {
                    allowed(&x.role, ROLES_12, true)
                } else {
                    role_11(&x.role).is_some()
                }
            })
            .collect();
        lost.add(
            "user roles at an org that was left out or in a role the version does not have",
            u.roles.len() - roles.len(),
        );
        if roles.is_empty() {
            lost.add("users without a role at an org (OneRoster requires one)", 1);
            continue;
        }
        users.insert(u.sourced_id.as_str());
        kept_roles.push((u, roles));
    }
    let mut user_rows = Vec::new();
    let mut role_rows = Vec::new();
    let mut profile_rows = Vec::new();
    let mut lost_12 = 0;
    for (u, roles) in &kept_roles {
        let mut rec = Record::new();
        put(&mut rec, "sourcedId", &u.sourced_id);
        put(&mut rec, "enabledUser", &u.enabled_user);
        if !v12 {
            let mut org_ids: Vec<&str> = Vec::new();
            for x in roles {
                if !org_ids.contains(&x.org.as_str()) {
                    org_ids.push(&x.org);
                }
            }
            put_owned(&mut rec, "orgSourcedIds", org_ids.join(","));
            put(
                &mut rec,
                "role",
                roles
                    .iter()
                    .find_map(|x| role_11(&x.role))
                    .unwrap_or_default(),
            );
            lost_12 += usize::from(
                !u.user_master_identifier.is_empty()
                    || !u.preferred_first_name.is_empty()
                    || !u.preferred_middle_name.is_empty()
                    || !u.preferred_last_name.is_empty()
                    || !u.pronouns.is_empty()
                    || !u.profiles.is_empty()
                    || roles.len() > 1 && roles.iter().any(|x| x.role != roles[0].role)
                    || roles
                        .iter()
                        .any(|x| !x.begin_date.is_empty() || !x.end_date.is_empty()),
            );
        }
        // OneRoster requires a username; Apple's sis_username is optional.
        put(
            &mut rec,
            "username",
            if u.username.is_empty() {
                &u.sourced_id
            } else {
                &u.username
            },
        );
        let ids: Vec<String> = u
            .user_ids
            .iter()
            .map(|i| format!("{{{}:{}}}", i.id_type, i.identifier))
            .collect();
        put_list(&mut rec, "userIds", &ids);
        put(&mut rec, "givenName", &u.given_name);
        put(&mut rec, "familyName", &u.family_name);
        put(&mut rec, "middleName", &u.middle_name);
        put(&mut rec, "identifier", &u.identifier);
        put(&mut rec, "email", &u.email);
        put(&mut rec, "sms", &u.sms);
        put(&mut rec, "phone", &u.phone);
        let agents: Vec<String> = u
            .agents
            .iter()
            .filter(|a| users.contains(a.as_str()))
            .cloned()
            .collect();
        lost.add(
            "agent references to users that were left out",
            u.agents.len() - agents.len(),
        );
        put_list(&mut rec, "agentSourcedIds", &agents);
        put_list(&mut rec, "grades", &grades_for(&u.grades, v12, lost));
        put(&mut rec, "password", &u.password);
        if v12 {
            put(&mut rec, "userMasterIdentifier", &u.user_master_identifier);
            put(&mut rec, "preferredGivenName", &u.preferred_first_name);
            put(&mut rec, "preferredMiddleName", &u.preferred_middle_name);
            put(&mut rec, "preferredFamilyName", &u.preferred_last_name);
            if let Some(p) = u.primary_org.as_deref().filter(|p| orgs.contains(p)) {
                put(&mut rec, "primaryOrgSourcedId", p);
            }
            put(&mut rec, "pronouns", &u.pronouns);
            let profiles: HashSet<&str> =
                u.profiles.iter().map(|p| p.sourced_id.as_str()).collect();
            for (n, x) in roles.iter().enumerate() {
                let mut rr = Record::new();
                put_owned(&mut rr, "sourcedId", role_id(&u.sourced_id, n + 1));
                put(&mut rr, "userSourcedId", &u.sourced_id);
                put(&mut rr, "roleType", &x.role_type);
                put(&mut rr, "role", &x.role);
                put(&mut rr, "beginDate", &x.begin_date);
                put(&mut rr, "endDate", &x.end_date);
                put(&mut rr, "orgSourcedId", &x.org);
                if let Some(p) = x.user_profile.as_deref().filter(|p| profiles.contains(p)) {
                    put(&mut rr, "userProfileSourcedId", p);
                }
                role_rows.push(rr);
            }
            for p in &u.profiles {
                for (n, c) in p.credentials.iter().enumerate() {
                    // userProfiles.csv has one credential per row; a second one gets a row
                    // of its own.
                    let id = if n == 0 {
                        p.sourced_id.clone()
                    } else {
                        format!("{}.credential.{}", p.sourced_id, n + 1)
                    };
                    let mut pr = Record::new();
                    put_owned(&mut pr, "sourcedId", id);
                    put(&mut pr, "userSourcedId", &u.sourced_id);
                    put(&mut pr, "profileType", &p.profile_type);
                    put(&mut pr, "vendorId", &p.vendor_id);
                    put(&mut pr, "applicationId", &p.application_id);
                    put(&mut pr, "description", &p.description);
                    put(&mut pr, "credentialType", &c.credential_type);
                    put(&mut pr, "username", &c.username);
                    put(&mut pr, "password", &c.password);
                    profile_rows.push(pr);
                }
            }
        }
        put_meta(&mut rec, &u.metadata);
        user_rows.push(rec);
    }
    lost.add(
        "users with 1.2-only data (preferred names, pronouns, userMasterIdentifier, profiles, \
         role dates, a second role) that OneRoster 1.1 cannot hold",
        lost_12,
    );
    emit("users", user_rows)?;
    if v12 {
        emit("userProfiles", profile_rows)?;
        emit("roles", role_rows)?;
    }
    let mut enrollment_rows = Vec::new();
    for e in &r.enrollments {
        if !classes.contains(e.class.as_str())
            || !users.contains(e.user.as_str())
            || !orgs.contains(e.school.as_str())
        {
            lost.add("enrollments whose class, user or school was left out", 1);
            continue;
        }
        if !allowed(&e.role, ENROLLMENT_ROLES, v12) {
            lost.add("enrollments in a role the version does not have", 1);
            continue;
        }
        let mut rec = Record::new();
        put(&mut rec, "sourcedId", &e.sourced_id);
        put(&mut rec, "classSourcedId", &e.class);
        put(&mut rec, "schoolSourcedId", &e.school);
        put(&mut rec, "userSourcedId", &e.user);
        put(&mut rec, "role", &e.role);
        put(&mut rec, "primary", &e.primary);
        put(&mut rec, "beginDate", &e.begin_date);
        put(&mut rec, "endDate", &e.end_date);
        put_meta(&mut rec, &e.metadata);
        enrollment_rows.push(rec);
    }
    emit("enrollments", enrollment_rows)?;
    let mut demographics_rows = Vec::new();
    for d in &r.demographics {
        if !users.contains(d.sourced_id.as_str()) {
            lost.add("demographics of users that were left out", 1);
            continue;
        }
        let mut rec = Record::new();
        put(&mut rec, "sourcedId", &d.sourced_id);
        put(&mut rec, "birthDate", &d.birth_date);
        if allowed(&d.sex, if v12 { SEX_12 } else { SEX_11 }, v12) {
            put(&mut rec, "sex", &d.sex);
        } else if !d.sex.is_empty() {
            lost.add("sex values OneRoster 1.1 does not have", 1);
        }
        put(
            &mut rec,
            "americanIndianOrAlaskaNative",
            &d.american_indian_or_alaska_native,
        );
        put(&mut rec, "asian", &d.asian);
        put(
            &mut rec,
            "blackOrAfricanAmerican",
            &d.black_or_african_american,
        );
        put(
            &mut rec,
            "nativeHawaiianOrOtherPacificIslander",
            &d.native_hawaiian_or_other_pacific_islander,
        );
        put(&mut rec, "white", &d.white);
        put(
            &mut rec,
            "demographicRaceTwoOrMoreRaces",
            &d.demographic_race_two_or_more_races,
        );
        put(
            &mut rec,
            "hispanicOrLatinoEthnicity",
            &d.hispanic_or_latino_ethnicity,
        );
        put(&mut rec, "countryOfBirthCode", &d.country_of_birth_code);
        put(
            &mut rec,
            "stateOfBirthAbbreviation",
            &d.state_of_birth_abbreviation,
        );
        put(&mut rec, "cityOfBirth", &d.city_of_birth);
        put(
            &mut rec,
            "publicSchoolResidenceStatus",
            &d.public_school_residence_status,
        );
        put_meta(&mut rec, &d.metadata);
        demographics_rows.push(rec);
    }
    emit("demographics", demographics_rows)
}

// ---- Apple ------------------------------------------------------------------------------

/// Roles that make a user Apple staff (a student role wins: Apple's person_id is one key
/// across students and staff).
const STAFF_ROLES: &[&str] = &[
    "teacher",
    "administrator",
    "aide",
    "counselor",
    "principal",
    "siteAdministrator",
    "districtAdministrator",
    "systemAdministrator",
];

/// Apple's columns a numbered family allows (`location_id_2` .. `location_id_999`).
const MAX_LOCATIONS: usize = 999;
const MAX_INSTRUCTORS: usize = 15;

fn numbered_name(prefix: &str, k: usize) -> Cow<'static, str> {
    Cow::Owned(format!("{prefix}{k}"))
}

fn apple<'r>(r: &'r Roster, lost: &mut Lost, emit: &mut Emit<'_, 'r>) -> std::io::Result<()> {
    let schools: HashSet<&str> = r
        .orgs
        .iter()
        .filter(|o| o.org_type == "school")
        .map(|o| o.sourced_id.as_str())
        .collect();
    lost.add(
        "orgs that are not schools (Apple has locations only)",
        r.orgs.len() - schools.len(),
    );
    lost.add("academic sessions (Apple has none)", r.sessions.len());
    lost.add(
        "demographics records (Apple has none)",
        r.demographics.len(),
    );
    let mut unheld = Unheld::default();
    emit(
        "locations",
        r.orgs
            .iter()
            .filter(|o| schools.contains(o.sourced_id.as_str()))
            .map(|o| {
                // References to what is left out whole (a district parent, terms, a school
                // year) go with it, said once in its own line, not again here.
                unheld.record([
                    ("identifier", !o.identifier.is_empty()),
                    ("metadata", !o.metadata.is_empty()),
                ]);
                let mut rec = Record::new();
                put(&mut rec, "location_id", &o.sourced_id);
                put(&mut rec, "location_name", &o.name);
                rec
            })
            .collect(),
    )?;

    std::mem::take(&mut unheld).said(lost, "orgs", "Apple");

    // Students and staff, each at its schools: primary org first, then the roles' orgs.
    let mut students: HashSet<&str> = HashSet::new();
    let mut staff: HashSet<&str> = HashSet::new();
    let (mut student_rows, mut staff_rows) = (Vec::new(), Vec::new());
    for u in &r.users {
        let is_student = u.roles.iter().any(|x| x.role == "student");
        let is_staff = !is_student
            && u.roles
                .iter()
                .any(|x| STAFF_ROLES.contains(&x.role.as_str()));
        if !is_student && !is_staff {
            lost.add(
                "users who are neither students nor staff (guardians, parents, relatives, \
                 proctors, users without a role)",
                1,
            );
            continue;
        }
        let mut at: Vec<&str> = Vec::new();
        for o in u
            .primary_org
            .iter()
            .map(String::as_str)
            .chain(u.roles.iter().map(|x| x.org.as_str()))
        {
            if schools.contains(o) && !at.contains(&o) {
                at.push(o);
            }
        }
        if at.is_empty() {
            lost.add("users without a school (Apple needs a location)", 1);
            continue;
        }
        if at.len() > MAX_LOCATIONS {
            lost.add(
                "user schools past Apple's 999 locations",
                at.len() - MAX_LOCATIONS,
            );
            at.truncate(MAX_LOCATIONS);
        }
        let mut rec = Record::new();
        put(&mut rec, "person_id", &u.sourced_id);
        put(&mut rec, "person_number", &u.identifier);
        put(&mut rec, "first_name", &u.given_name);
        put(&mut rec, "middle_name", &u.middle_name);
        put(&mut rec, "last_name", &u.family_name);
        let mut grades_taken = 0;
        if is_student {
            // Apple has one grade level: the first grade it accepts.
            if let Some(g) = u.grades.iter().find(|g| {
                APPLE_GRADES
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(g.as_str()))
            }) {
                put(&mut rec, "grade_level", g);
                grades_taken = 1;
            }
        }
        put(&mut rec, "email_address", &u.email);
        put(&mut rec, "sis_username", &u.username);
        let mut metadata_taken = 0;
        if is_student {
            if let Some((_, p)) = u
                .metadata
                .iter()
                .find(|(n, _)| n == "apple.password_policy")
                .filter(|(_, p)| ["4", "6", "8"].contains(&p.as_str()))
            {
                put(&mut rec, "password_policy", p);
                metadata_taken = 1;
            }
        }
        unheld.record([
            ("userIds", !u.user_ids.is_empty()),
            ("sms", !u.sms.is_empty()),
            ("phone", !u.phone.is_empty()),
            ("agents", !u.agents.is_empty()),
            ("password", !u.password.is_empty()),
            ("enabledUser false", u.enabled_user.as_str() == "false"),
            ("grades", u.grades.len() > grades_taken),
            ("metadata", u.metadata.len() > metadata_taken),
            (
                "OneRoster 1.2 fields",
                !u.user_master_identifier.is_empty()
                    || !u.preferred_first_name.is_empty()
                    || !u.preferred_middle_name.is_empty()
                    || !u.preferred_last_name.is_empty()
                    || !u.pronouns.is_empty()
                    || !u.profiles.is_empty(),
            ),
        ]);
        put(&mut rec, "location_id", at[0]);
        for (k, o) in at.iter().enumerate().skip(1) {
            rec.push((numbered_name("location_id_", k + 1), Cow::Borrowed(*o)));
        }
        if is_student {
            students.insert(&u.sourced_id);
            student_rows.push(rec);
        } else {
            staff.insert(&u.sourced_id);
            staff_rows.push(rec);
        }
    }
    std::mem::take(&mut unheld).said(lost, "users", "Apple");
    emit("students", student_rows)?;
    emit("staff", staff_rows)?;

    // Classes at a school; a course's location is its org when that is a school, else the
    // school of its first class (by sourcedId).
    let mut course_school: HashMap<&str, &str> = HashMap::new();
    for c in &r.courses {
        if schools.contains(c.org.as_str()) {
            course_school.insert(&c.sourced_id, &c.org);
        }
    }
    for c in &r.classes {
        if schools.contains(c.school.as_str()) {
            course_school
                .entry(c.course.as_str())
                .or_insert(c.school.as_str());
        }
    }
    let mut courses: HashSet<&str> = HashSet::new();
    let mut course_rows = Vec::new();
    for c in &r.courses {
        let Some(school) = course_school.get(c.sourced_id.as_str()) else {
            lost.add("courses without a school (and no class at one)", 1);
            continue;
        };
        courses.insert(&c.sourced_id);
        unheld.record([
            ("grades", !c.grades.is_empty()),
            ("subjects", !c.subjects.is_empty()),
            ("subjectCodes", !c.subject_codes.is_empty()),
            ("metadata", !c.metadata.is_empty()),
        ]);
        let mut rec = Record::new();
        put(&mut rec, "course_id", &c.sourced_id);
        put(&mut rec, "course_number", &c.course_code);
        put(&mut rec, "course_name", &c.title);
        put(&mut rec, "location_id", school);
        course_rows.push(rec);
    }
    std::mem::take(&mut unheld).said(lost, "courses", "Apple");
    emit("courses", course_rows)?;

    // Teachers of each class: the primary one first, then by enrollment sourcedId.
    let mut teachers: HashMap<&str, Vec<&Enrollment>> = HashMap::new();
    let mut rostered: Vec<&Enrollment> = Vec::new();
    let classes: HashSet<&str> = r
        .classes
        .iter()
        .filter(|c| courses.contains(c.course.as_str()) && schools.contains(c.school.as_str()))
        .map(|c| c.sourced_id.as_str())
        .collect();
    lost.add(
        "classes whose course or school Apple could not hold",
        r.classes.len() - classes.len(),
    );
    for e in &r.enrollments {
        if !classes.contains(e.class.as_str()) {
            lost.add("enrollments in classes that were left out", 1);
            continue;
        }
        let dates_and_metadata = |u: &mut Unheld| {
            u.record([
                ("beginDate", !e.begin_date.is_empty()),
                ("endDate", !e.end_date.is_empty()),
                ("metadata", !e.metadata.is_empty()),
            ])
        };
        match e.role.as_str() {
            "teacher" if staff.contains(e.user.as_str()) => {
                dates_and_metadata(&mut unheld);
                teachers.entry(e.class.as_str()).or_default().push(e)
            }
            "student" if students.contains(e.user.as_str()) => {
                dates_and_metadata(&mut unheld);
                rostered.push(e);
            }
            "teacher" | "student" => lost.add(
                "enrollments of users Apple has not as that kind (a student teaching, a \
                 teacher left out)",
                1,
            ),
            _ => lost.add(
                "enrollments that are neither student nor teacher (Apple has no other)",
                1,
            ),
        }
    }
    std::mem::take(&mut unheld).said(lost, "enrollments", "Apple");
    let mut class_rows = Vec::new();
    for c in r
        .classes
        .iter()
        .filter(|c| classes.contains(c.sourced_id.as_str()))
    {
        unheld.record([
            ("classType", !c.class_type.is_empty()),
            ("location", !c.location.is_empty()),
            ("grades", !c.grades.is_empty()),
            ("subjects", !c.subjects.is_empty()),
            ("subjectCodes", !c.subject_codes.is_empty()),
            ("periods", !c.periods.is_empty()),
            ("metadata", !c.metadata.is_empty()),
        ]);
        let mut rec = Record::new();
        put(&mut rec, "class_id", &c.sourced_id);
        put(&mut rec, "class_number", &c.class_code);
        put(&mut rec, "course_id", &c.course);
        put(&mut rec, "class_display_name", &c.title);
        put(&mut rec, "location_id", &c.school);
        if let Some(ts) = teachers.get_mut(c.sourced_id.as_str()) {
            // Enrollments are sorted by sourcedId; a stable sort puts the primary first.
            ts.sort_by_key(|e| e.primary != "true");
            let mut seen: Vec<&str> = Vec::new();
            for e in ts.iter() {
                if seen.contains(&e.user.as_str()) {
                    continue;
                }
                if seen.len() == MAX_INSTRUCTORS {
                    lost.add("teachers past Apple's 15 instructors of a class", 1);
                    continue;
                }
                seen.push(&e.user);
            }
            for (k, t) in seen.iter().enumerate() {
                if k == 0 {
                    put(&mut rec, "instructor_id", t);
                } else {
                    rec.push((numbered_name("instructor_id_", k + 1), Cow::Borrowed(*t)));
                }
            }
        }
        class_rows.push(rec);
    }
    unheld.said(lost, "classes", "Apple");
    emit("classes", class_rows)?;
    let roster_rows = rostered
        .into_iter()
        .map(|e| {
            let mut rec = Record::new();
            put(&mut rec, "roster_id", &e.sourced_id);
            put(&mut rec, "class_id", &e.class);
            put(&mut rec, "student_id", &e.user);
            rec
        })
        .collect();
    emit("rosters", roster_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::model::read::read_tables;
    use crate::roster::model::read::tests::{apple_sample, settings, tables};

    /// A conversion's tables as stored records: non-empty pairs sorted by column name.
    fn stored(c: &Converted) -> BTreeMap<String, Vec<Vec<(String, String)>>> {
        c.tables
            .iter()
            .map(|t| {
                let recs = t
                    .rows
                    .iter()
                    .map(|row| {
                        let mut r: Vec<(String, String)> = t
                            .header
                            .iter()
                            .zip(row)
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(h, v)| (h.clone(), v.clone()))
                            .collect();
                        r.sort();
                        r
                    })
                    .collect();
                (t.name.clone(), recs)
            })
            .collect()
    }

    fn table<'a>(c: &'a Converted, name: &str) -> &'a CsvTable {
        c.tables.iter().find(|t| t.name == name).unwrap()
    }

    /// The values of column `col` of a table, row by row.
    fn column(c: &Converted, name: &str, col: &str) -> Vec<String> {
        let t = table(c, name);
        let i = t.header.iter().position(|h| h == col).unwrap();
        t.rows.iter().map(|r| r[i].clone()).collect()
    }

    #[test]
    fn apple_through_oneroster_and_back_is_the_same_roster() {
        let a = read_tables(Format::Apple, &settings(), &apple_sample());
        for v in [Format::OneRoster11, Format::OneRoster12] {
            let or = convert(&a, v).unwrap();
            assert!(or.lost.is_empty(), "{v:?}: {:?}", or.lost);
            let back = read_tables(v, &AppleSettings::default(), &stored(&or));
            let apple = convert(&back, Format::Apple).unwrap();
            // Only what Apple has no place for is left out: the district, the session, and
            // the class type the way there gave each class.
            assert_eq!(
                apple.lost,
                [
                    "1 academic sessions (Apple has none)",
                    "3 classes with values Apple has no column for (classType)",
                    "1 orgs that are not schools (Apple has locations only)"
                ],
                "{v:?}"
            );
            // And the one derived value: OneRoster requires a username, so a staff member
            // without a sis_username comes back with the id as one.
            let mut want = a.clone();
            for u in &mut want.users {
                if u.username.is_empty() {
                    u.username = u.sourced_id.clone();
                }
            }
            let again = read_tables(Format::Apple, &settings(), &stored(&apple));
            assert_eq!(again, want, "{v:?}");
        }
    }

    #[test]
    fn oneroster_12_to_11_maps_roles_down_and_lists_what_is_lost() {
        let t = tables(&[
            ("orgs", "sourcedId|name|type\nD|District|district\nS|School|school\nE|Ext|ext:campus"),
            (
                "users",
                "sourcedId|enabledUser|username|givenName|familyName|pronouns\nU1|true|u1|Ana|Lopez|she/her\nU2|true||Ben|Ode|\nU3|true|u3|Cy|Cole|",
            ),
            (
                "roles",
                "sourcedId|userSourcedId|roleType|role|orgSourcedId\nr1|U1|primary|principal|S\nr2|U1|secondary|districtAdministrator|D\nr3|U2|primary|ext:coach|S\nr4|U2|secondary|teacher|S\nr5|U3|primary|teacher|E",
            ),
        ]);
        let r = read_tables(Format::OneRoster12, &AppleSettings::default(), &t);
        let c = convert(&r, Format::OneRoster11).unwrap();
        assert_eq!(column(&c, "users", "sourcedId"), ["U1", "U2"]);
        assert_eq!(column(&c, "users", "role"), ["administrator", "teacher"]);
        assert_eq!(column(&c, "users", "orgSourcedIds"), ["S,D", "S"]);
        // A missing username is the user's id, never empty (OneRoster requires one).
        assert_eq!(column(&c, "users", "username"), ["u1", "U2"]);
        assert_eq!(column(&c, "orgs", "sourcedId"), ["D", "S"]);
        let lost = c.lost.join("\n");
        for want in [
            "1 orgs of a type OneRoster 1.1 does not have",
            "1 users without a role at an org",
            "users with 1.2-only data",
        ] {
            assert!(lost.contains(want), "{want}: {lost}");
        }
        // 1.2 keeps them all, with role ids of their own.
        let c = convert(&r, Format::OneRoster12).unwrap();
        assert_eq!(
            column(&c, "roles", "sourcedId"),
            [
                "U1.role.1",
                "U1.role.2",
                "U2.role.1",
                "U2.role.2",
                "U3.role.1"
            ]
        );
        assert!(c.lost.is_empty(), "{:?}", c.lost);
    }

    /// A stored 1.2 user without a role (kept by a release before the check required one) is
    /// left out of every OneRoster export, said, as OneRoster requires a role of each user.
    #[test]
    fn a_user_without_a_role_is_left_out_and_said_in_both_versions() {
        let t = tables(&[
            ("orgs", "sourcedId|name|type\nS|School|school"),
            (
                "users",
                "sourcedId|enabledUser|username|givenName|familyName\nU1|true|u1|Ana|Lopez\nU4|true|u4|Di|Eng",
            ),
            ("roles", "sourcedId|userSourcedId|roleType|role|orgSourcedId\nr1|U1|primary|student|S"),
            ("classes", "sourcedId|title|schoolSourcedId|courseSourcedId\nK|Algebra|S|C"),
            ("courses", "sourcedId|title|orgSourcedId\nC|Course|S"),
            (
                "enrollments",
                "sourcedId|classSourcedId|schoolSourcedId|userSourcedId|role\nE1|K|S|U1|student",
            ),
        ]);
        let r = read_tables(Format::OneRoster12, &AppleSettings::default(), &t);
        for v in [Format::OneRoster11, Format::OneRoster12] {
            let c = convert(&r, v).unwrap();
            assert_eq!(column(&c, "users", "sourcedId"), ["U1"], "{v:?}");
            let lost = c.lost.join("\n");
            assert!(
                lost.contains("1 users without a role at an org"),
                "{v:?}: {lost}"
            );
        }
    }

    /// What a conversion cannot carry is said, value by value kind, never dropped quietly:
    /// columns the model does not hold (an extra `ext_` column of the upload), and fields the
    /// target has no column for (Apple has no userIds, sms, phone, agents, password, ...).
    #[test]
    fn values_a_conversion_cannot_carry_are_listed() {
        let t = tables(&[
            ("orgs", "sourcedId|name|type|identifier\nS|School|school|NCES-1"),
            (
                "users",
                "sourcedId|enabledUser|orgSourcedIds|role|username|userIds|givenName|familyName|sms|phone|agentSourcedIds|password|metadata.nickname|ext_motherName\n\
                 U1|true|S|student|u1|{LDAP:ann1}|Ann|Lee|555|556|G1|secret|Annie|Mary Lee\n\
                 U2|true|S|student|u2||Bo|Ode||||||\n\
                 G1|true|S|guardian|g1||Gil|Lee||||||Sue",
            ),
        ]);
        let r = read_tables(Format::OneRoster11, &AppleSettings::default(), &t);
        assert_eq!(
            r.extra_columns,
            vec![("users".to_string(), "ext_motherName".to_string(), 2)]
        );
        let extra = "2 values of users.csv column `ext_motherName` (not in the roster model: \
                     only an export in the source's own format keeps them)";
        let c = convert(&r, Format::OneRoster12).unwrap();
        assert!(c.lost.iter().any(|l| l == extra), "{:?}", c.lost);
        // The metadata column is carried.
        assert_eq!(column(&c, "users", "metadata.nickname"), ["", "Annie", ""]);

        // 1.0's `userId` is an extra column of a 1.1 bundle, which the check did not look at:
        // it is not read as the user's ids (found in oat-sa's sample bundle).
        let t11 = tables(&[(
            "users",
            "sourcedId|enabledUser|orgSourcedIds|role|username|userIds|userId|givenName|familyName\n\
             U2|true|S|student|u2|{LDAP:bob}|xyz|Bo|Ode",
        )]);
        let r11 = read_tables(Format::OneRoster11, &AppleSettings::default(), &t11);
        assert_eq!(r11.users[0].user_ids.len(), 1);
        assert_eq!(r11.users[0].user_ids[0].identifier, "bob");
        assert_eq!(
            r11.extra_columns,
            vec![("users".to_string(), "userId".to_string(), 1)]
        );

        let c = convert(&r, Format::Apple).unwrap();
        let lost = c.lost.join("\n");
        for want in [
            extra,
            "1 users with values Apple has no column for (agents, metadata, password, phone, \
             sms, userIds)",
            "1 orgs with values Apple has no column for (identifier)",
        ] {
            assert!(lost.contains(want), "{want}: {lost}");
        }
    }

    #[test]
    fn an_apple_class_holds_fifteen_teachers() {
        let mut users =
            String::from("sourcedId|enabledUser|orgSourcedIds|role|username|givenName|familyName");
        let mut enr =
            String::from("sourcedId|classSourcedId|schoolSourcedId|userSourcedId|role|primary");
        for i in 1..=16 {
            users.push_str(&format!("\nT{i:02}|true|S|teacher|t{i}|T|{i}"));
            let primary = if i == 9 { "true" } else { "false" };
            enr.push_str(&format!("\nE{i:02}|K|S|T{i:02}|teacher|{primary}"));
        }
        users.push_str("\nG|true|S|guardian|g|G|G");
        enr.push_str("\nE99|K|S|G|student|");
        let t = tables(&[
            ("orgs", "sourcedId|name|type\nD|District|district\nS|School|school"),
            ("courses", "sourcedId|title|orgSourcedId\nC|Course|D"),
            (
                "classes",
                "sourcedId|title|courseSourcedId|classType|schoolSourcedId|termSourcedIds\nK|Class|C|scheduled|S|Y",
            ),
            ("users", users.as_str()),
            ("enrollments", enr.as_str()),
        ]);
        let r = read_tables(Format::OneRoster11, &AppleSettings::default(), &t);
        let c = convert(&r, Format::Apple).unwrap();
        let k = table(&c, "classes");
        let row: BTreeMap<&str, &str> = k
            .header
            .iter()
            .map(String::as_str)
            .zip(k.rows[0].iter().map(String::as_str))
            .collect();
        // The primary first, then by enrollment id; the 16th is dropped.
        assert_eq!(row["instructor_id"], "T09");
        assert_eq!(row["instructor_id_2"], "T01");
        assert_eq!(row["instructor_id_15"], "T15");
        assert!(!row.contains_key("instructor_id_16"));
        assert!(!k.header.iter().any(|h| h.ends_with("T16")));
        // The course's org is the district: its location is the school of its class.
        assert_eq!(column(&c, "courses", "location_id"), ["S"]);
        let lost = c.lost.join("\n");
        assert!(
            lost.contains("1 teachers past Apple's 15 instructors"),
            "{lost}"
        );
        assert!(
            lost.contains("1 users who are neither students nor staff"),
            "{lost}"
        );
        assert!(
            lost.contains("1 enrollments of users Apple has not"),
            "{lost}"
        );
        assert_eq!(table(&c, "rosters").rows.len(), 0);
    }

    #[test]
    fn a_table_has_the_schema_columns_then_the_others_by_name() {
        let schema = Schema::for_format(Format::Apple);
        let def = schema.table("classes").unwrap();
        let t = CsvTable::from_records(
            def,
            vec![vec![
                ("class_id", "K".to_string()),
                ("instructor_id_2", "T2".to_string()),
                ("instructor_id_10", "T10".to_string()),
                ("zz", "z".to_string()),
            ]],
        );
        let n = def.columns.len();
        assert_eq!(
            &t.header[n..],
            ["instructor_id_10", "instructor_id_2", "zz"]
        );
        assert_eq!(t.rows[0][0], "K");
        assert_eq!(&t.rows[0][n..], ["T10", "T2", "z"]);
        assert!(t.rows[0][1..n].iter().all(String::is_empty));
    }

    #[test]
    fn writing_a_table_at_a_time_writes_what_convert_makes() {
        let a = read_tables(Format::Apple, &settings(), &apple_sample());
        for target in [Format::Apple, Format::OneRoster11, Format::OneRoster12] {
            let d = tempfile::tempdir().unwrap();
            let (one, all) = (d.path().join("one"), d.path().join("all"));
            let lost = write(&a, target, &one).unwrap();
            let c = convert(&a, target).unwrap();
            write_bundle(target, &c.tables, &all).unwrap();
            assert_eq!(lost, c.lost);
            let files = |p: &Path| -> BTreeMap<String, Vec<u8>> {
                std::fs::read_dir(p)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect()
            };
            let got = files(&one);
            assert_eq!(got, files(&all), "{target:?}");
            // Apple: all six files; OneRoster: the six with rows, the manifest, 1.2's roles.
            let want = match target {
                Format::Apple => 6,
                Format::OneRoster11 => 7,
                _ => 8,
            };
            assert_eq!(got.len(), want, "{target:?}: {:?}", got.keys());
        }
    }

    #[test]
    fn oneroster_10_is_no_target() {
        assert!(matches!(
            convert(&Roster::default(), Format::OneRoster10),
            Err(WriteError::Unsupported(Format::OneRoster10))
        ));
    }
}
