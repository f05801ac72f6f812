//! The generic roster engine: validate, filter and patch a bundle's tables to a fixpoint.
//!
//! Every step is driven by the [`Schema`] value: field checks by column kinds, integrity by
//! the foreign keys and their patch actions. Rows are never physically removed: each row has a
//! fate (kept, or the rule that removed it) and cleared fields are sparse overrides, so the
//! modified CSVs can be written with the original header, order and line numbers.
//!
//! A file per step: [`bind`] (header to schema), [`prepare`] (status, fields, duplicate ids,
//! index: per table), then [`run`] over all tables: `filters` (schools, terms, roles; shared
//! ids), `integrity` (foreign keys to a fixpoint) and `accounts` (duplicate persons), and the
//! verdict here. `work` is one table at work and its index.

use std::collections::HashMap;
use std::io::Write;

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::roster::bundle::{Expect, Mode};
pub use crate::roster::csvio::Encoding;
use crate::roster::csvio::{CsvError, CsvWriter, Table};
use crate::roster::findings::{Action, Finding, Rule};
use crate::roster::schema::{ColumnDef, ForeignKey, Format, OnMissing, Schema, TableDef};
use crate::roster::text::{norm_header, Trimmed};
pub use crate::roster::values::DateOrder;
use crate::roster::values::{self, list_items, Date};

mod accounts;
mod bind;
mod filters;
mod integrity;
mod prepare;
mod work;

use accounts::*;
use bind::*;
use filters::*;
use integrity::*;
use work::*;

pub use accounts::{person_key, person_key_into, persons_asked};
pub use bind::bind;
pub use prepare::prepare;
pub use work::{Work, WRITE_CHUNK};

type Map<K, V> = HashMap<K, V, RandomState>;

/// Filters of a source: what the district wants to keep. Empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Apple `location_id`s, or OneRoster org `sourcedId`s of type school.
    pub locations: Vec<String>,
    /// OneRoster academicSession `sourcedId`s to keep.
    pub terms: Vec<String>,
    /// Keep OneRoster sessions active today or starting within this many days.
    pub terms_active_within_days: Option<u32>,
    /// Roles to keep: Apple `student`, `staff`; OneRoster role values.
    pub roles: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
            && self.terms.is_empty()
            && self.terms_active_within_days.is_none()
            && self.roles.is_empty()
    }
}

/// Per-source settings that shape the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// On: patch integrity errors. Off: any integrity error rejects the whole bundle.
    pub patch_errors: bool,
    pub prevent_duplicates: bool,
    /// On: unambiguous spellings of valid values (`TRUE`, `Scheduled`, a date-only
    /// `dateLastModified`) are rewritten to their canonical form (`fixed-field`, rule
    /// `normalized`). Off: they are `invalid-value`.
    pub normalize: bool,
    /// How to read slash dates such as `1/05/2023` whose day/month order is not knowable from
    /// the value. `None`: such dates are never guessed.
    pub date_order: Option<DateOrder>,
    /// Text encoding of the uploaded files when they have no BOM.
    pub encoding: Encoding,
    /// A bundle whose patches drop more than this share of any file's rows is held.
    pub max_patch_drop_percent: f64,
    /// The format the source expects.
    pub expect: Expect,
    pub filter: Filter,
    /// The date "now" for term filters (today, UTC, unless a test fixes it).
    pub today: Option<Date>,
    /// How much the bundle may make the process read (`[limits]`, shared by every source).
    pub limits: crate::roster::bundle::Limits,
}

impl Settings {
    /// A digest of everything here that can change a check's outcome, so that an upload the
    /// source already applied is checked again when its settings changed (a filter added, a
    /// patch setting turned off). `today` counts only for a filter that reads it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut s = self.clone();
        s.today = match s.filter.terms_active_within_days {
            Some(_) => Some(s.today.unwrap_or_else(Date::today_utc)),
            None => None,
        };
        let digest = sha2::Sha256::digest(format!("{s:?}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Default of `guard.max_patch_drop_percent`.
pub const DEFAULT_MAX_PATCH_DROP_PERCENT: f64 = 20.0;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            patch_errors: true,
            prevent_duplicates: true,
            normalize: true,
            date_order: None,
            encoding: Encoding::Utf8,
            max_patch_drop_percent: DEFAULT_MAX_PATCH_DROP_PERCENT,
            expect: Expect::Auto,
            filter: Filter::default(),
            today: None,
            limits: crate::roster::bundle::Limits::default(),
        }
    }
}

/// What the engine may ask about records outside the bundle (the store, for delta files and
/// duplicate accounts). `None`: cannot tell.
pub trait External: Sync {
    fn has_id(&self, _table: &str, _id: &str) -> Option<bool> {
        None
    }
    /// The stored person with this duplicate-account key, if any: the schema table it is
    /// stored in and its id.
    fn person_with_key(&self, _key: &str) -> Option<StoredPerson<'_>> {
        None
    }
    /// The duplicate-account key of the stored record `id` of the person table `table`
    /// (`None`: no such record, or no email).
    fn person_key_of(&self, _table: &str, _id: &str) -> Option<String> {
        None
    }
    /// Says, before the bundle is parsed, which person tables [`External::person_with_key`]
    /// will be asked about: the others are uploaded whole (bulk), so their stored persons
    /// are replaced by the upload's and need not be read.
    fn persons_asked(&self, _tables: &[&'static str]) {}
}

/// A stored person, as [`External::person_with_key`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPerson<'a> {
    /// The schema table the person is stored in.
    pub table: &'a str,
    pub id: &'a str,
}

/// No store: references to delta or absent files cannot be checked.
pub struct NoExternal;
impl External for NoExternal {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Readable, but it lost so much to patches that an admin must approve it.
    Held,
    Rejected,
}

/// Everything `check` learns about a bundle.
#[derive(Debug)]
pub struct Outcome {
    pub bundle_name: String,
    pub format: Option<Format>,
    pub settings: Settings,
    pub tables: Vec<Work>,
    pub findings: Vec<Finding>,
    /// Structural errors: the bundle could not be read.
    pub errors: Vec<CsvError>,
    /// Why a readable bundle was rejected.
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    pub ignored: Vec<(String, String)>,
    /// Uploaded files written into the modified bundle unchanged (OneRoster's manifest.csv).
    pub passthrough: Vec<(String, Vec<u8>)>,
    pub verdict: Verdict,
}

impl Outcome {
    pub fn count(&self, rule: Rule) -> usize {
        self.findings.iter().filter(|f| f.rule == rule).count()
    }
    pub fn table(&self, name: &str) -> Option<&Work> {
        self.tables.iter().find(|w| w.def.name == name)
    }
    /// A bundle that could not be read at all.
    pub fn unreadable(bundle_name: String, settings: Settings, errors: Vec<CsvError>) -> Self {
        Outcome {
            bundle_name,
            format: None,
            settings,
            tables: vec![],
            findings: vec![],
            errors,
            reasons: vec![],
            notes: vec![],
            ignored: vec![],
            passthrough: vec![],
            verdict: Verdict::Rejected,
        }
    }
}

struct Ctx<'a> {
    schema: &'a Schema,
    settings: &'a Settings,
    ext: &'a dyn External,
    findings: Vec<Finding>,
    notes: Vec<String>,
    /// Per foreign key: the target table's epoch when it was last checked.
    checked: Vec<Option<u64>>,
    noted: Vec<bool>,
    /// The epochs of roles, users and enrollments when 1.2's users were last checked for a
    /// role (`integrity::users_keep_a_role`).
    role_pass: Option<[u64; 3]>,
}

impl<'a> Ctx<'a> {
    fn new(schema: &'a Schema, settings: &'a Settings, ext: &'a dyn External) -> Self {
        Ctx {
            schema,
            settings,
            ext,
            findings: Vec::new(),
            notes: Vec::new(),
            checked: vec![None; schema.foreign_keys.len()],
            noted: vec![false; schema.foreign_keys.len()],
            role_pass: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn find(
        &mut self,
        w: &Work,
        row: usize,
        rule: Rule,
        action: Action,
        field: &str,
        value: &str,
        detail: String,
    ) {
        self.findings.push(Finding {
            file: w.table.file.clone(),
            line: w.line(row),
            id: w.id(row).to_string(),
            rule,
            action,
            field: field.to_string(),
            value: value.to_string(),
            detail,
        });
    }
}

fn drop_row(ctx: &mut Ctx, w: &mut Work, row: usize, rule: Rule, field: &str, detail: String) {
    if w.fate[row].is_some() {
        return;
    }
    let value = w
        .col(field)
        .map(|c| w.value(row, c).to_string())
        .unwrap_or_default();
    ctx.find(w, row, rule, Action::DroppedRow, field, &value, detail);
    w.fate[row] = Some(rule);
    let f = match w.cause_fields.iter().position(|x| x == field) {
        Some(i) => i,
        None => {
            w.cause_fields.push(field.to_string());
            w.cause_fields.len() - 1
        }
    };
    w.causes.insert(row as u32, (rule, f as u32));
    w.epoch += 1;
}

/// Rewrites a field to its canonical reading (`fixed-field`, rule `normalized`).
fn fix_field(ctx: &mut Ctx, w: &mut Work, row: usize, col: usize, new: String, why: &str) {
    let field = w.table.header[col].clone();
    let before = w.value(row, col).to_string();
    let value = format!("{before} -> {new}");
    ctx.find(
        w,
        row,
        Rule::Normalized,
        Action::FixedField,
        &field,
        &value,
        why.to_string(),
    );
    w.set_override(row, col, new);
}

#[allow(clippy::too_many_arguments)]
fn set_field(
    ctx: &mut Ctx,
    w: &mut Work,
    row: usize,
    col: usize,
    new: String,
    rule: Rule,
    removed: &str,
    detail: String,
) {
    let field = w.table.header[col].clone();
    ctx.find(w, row, rule, Action::ClearedField, &field, removed, detail);
    w.set_override(row, col, new);
}

/// Runs the whole pipeline on bound tables.
pub fn run(
    schema: &Schema,
    settings: &Settings,
    ext: &dyn External,
    mut tables: Vec<Work>,
) -> (Vec<Work>, Vec<Finding>, Vec<String>) {
    // Keep the schema's processing order.
    tables.sort_by_key(|w| {
        schema
            .tables
            .iter()
            .position(|t| t.name == w.def.name)
            .unwrap_or(usize::MAX)
    });
    let mut ctx = Ctx::new(schema, settings, ext);
    let mut clock = std::time::Instant::now();
    let mut lap = |phase: &str| {
        tracing::debug!(
            phase,
            ms = clock.elapsed().as_millis() as u64,
            "engine phase"
        );
        clock = std::time::Instant::now();
    };
    for w in tables.iter_mut() {
        if !w.prepared {
            prepare(schema, settings, w);
        }
        ctx.findings.append(&mut w.pre);
    }
    lap("validate and index");
    for w in &tables {
        ctx.notes.extend(column_notes(schema.format, w));
    }
    shared_key_duplicates(&mut ctx, &mut tables);
    lap("duplicate-ids");
    apply_filters(&mut ctx, &mut tables);
    lap("filters");
    integrity(&mut ctx, &mut tables);
    lap("integrity");
    if settings.prevent_duplicates {
        duplicate_accounts(&mut ctx, &mut tables);
        lap("duplicate-accounts");
        integrity(&mut ctx, &mut tables);
        lap("integrity");
    }
    // A rewrite in a row that was dropped in the end changed nothing anyone will see.
    if ctx.findings.iter().any(|f| f.action == Action::FixedField) {
        let dropped: std::collections::HashSet<(&str, u32), RandomState> = ctx
            .findings
            .iter()
            .filter(|f| f.action == Action::DroppedRow)
            .map(|f| (f.file.as_str(), f.line))
            .collect();
        let moot: Vec<bool> = ctx
            .findings
            .iter()
            .map(|f| f.action == Action::FixedField && dropped.contains(&(f.file.as_str(), f.line)))
            .collect();
        let mut i = 0;
        ctx.findings.retain(|_| {
            i += 1;
            !moot[i - 1]
        });
    }
    // Findings in file order, then line.
    let order: Map<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, w)| (w.table.file.clone(), i))
        .collect();
    ctx.findings
        .sort_by(|a, b| (order.get(&a.file), a.line).cmp(&(order.get(&b.file), b.line)));
    (tables, ctx.findings, ctx.notes)
}

fn pos(tables: &[Work], name: &str) -> Option<usize> {
    tables.iter().position(|w| w.def.name == name)
}

/// Whether integrity findings reject the bundle (`patch.errors = off`).
pub fn verdict(settings: &Settings, findings: &[Finding]) -> (Verdict, Vec<String>) {
    if settings.patch_errors {
        return (Verdict::Accepted, vec![]);
    }
    let mut counts: std::collections::BTreeMap<Rule, usize> = Default::default();
    for f in findings {
        if !matches!(f.rule, Rule::Filtered | Rule::DuplicateAccount) {
            *counts.entry(f.rule).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return (Verdict::Accepted, vec![]);
    }
    let list: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    (
        Verdict::Rejected,
        vec![format!(
            "patching is off for this source and the bundle has integrity errors: {}",
            list.join(", ")
        )],
    )
}

/// The patch guard: holds an otherwise accepted bundle whose patches (with the rows they took
/// along) drop more than `max_patch_drop_percent` of any file's rows, or every row of a file
/// that had rows. Rows a filter removed do not count: the district asked for that. The hold's
/// reasons come first, before any others.
pub fn hold(
    settings: &Settings,
    tables: &[Work],
    (verdict, reasons): (Verdict, Vec<String>),
) -> (Verdict, Vec<String>) {
    if verdict != Verdict::Accepted {
        return (verdict, reasons);
    }
    let limit = settings.max_patch_drop_percent;
    let mut held = Vec::new();
    for w in tables {
        // Malformed rows never became rows of the table, but they were read and are lost.
        let malformed = w.table.malformed.len();
        let read = w.table.len() + malformed;
        let dropped = w
            .fate
            .iter()
            .filter(|f| f.is_some_and(|r| r != Rule::Filtered))
            .count()
            + malformed;
        if read == 0 || dropped == 0 {
            continue;
        }
        let file = w.def.file_name();
        let kept = read - w.dropped_rows() - malformed;
        let share = dropped as f64 * 100.0 / read as f64;
        if kept == 0 && dropped == read {
            held.push(format!("{file}: patches drop all {read} of its rows"));
        } else if kept == 0 {
            held.push(format!(
                "{file}: patches drop all {dropped} rows its filters left ({read} read)"
            ));
        } else if share > limit {
            held.push(format!(
                "{file}: patches drop {dropped} of its {read} rows ({share:.1}%, more than \
                 guard.max_patch_drop_percent = {limit}%)"
            ));
        }
    }
    if held.is_empty() {
        return (verdict, reasons);
    }
    held.extend(reasons);
    (Verdict::Held, held)
}

#[cfg(test)]
mod tests;
