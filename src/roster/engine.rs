//! The generic roster engine: validate, filter and patch a bundle's tables to a fixpoint.
//!
//! Every step is driven by the [`Schema`] value: field checks by column kinds, integrity by
//! the foreign keys and their patch actions. Rows are never physically removed: each row has a
//! fate (kept, or the rule that removed it) and cleared fields are sparse overrides, so the
//! modified CSVs can be written with the original header, order and line numbers.

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
use crate::roster::text::norm_header;
pub use crate::roster::values::DateOrder;
use crate::roster::values::{self, list_items, Date};

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
    /// The id of a stored person with this duplicate-account key, if any.
    fn person_with_key(&self, _key: &str) -> Option<String> {
        None
    }
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

/// A column of the uploaded file, bound to the schema.
#[derive(Debug, Clone)]
struct Bound {
    /// The schema column (numbered columns such as `location_id_7` get their base's
    /// definition, made optional).
    def: Option<ColumnDef>,
}

/// One uploaded table in the pipeline.
#[derive(Debug)]
pub struct Work {
    pub def: TableDef,
    pub table: Table,
    pub mode: Mode,
    cols: Vec<Bound>,
    by_name: Map<&'static str, usize>,
    pk: usize,
    status: Option<usize>,
    /// Rows marked `status=tobedeleted`, worked out once; empty when there are none.
    deletions: Vec<bool>,
    /// `None`: kept; `Some(rule)`: dropped by that rule.
    fate: Vec<Option<Rule>>,
    /// Cleared and rewritten fields, by (row, column).
    overrides: Map<(u32, u32), String>,
    /// Rows already dropped when the table was indexed, by primary key: so that a reference to
    /// one names it and why it went, instead of saying the id is not in the file.
    gone: HashTable<u32>,
    /// Why each dropped row went: its rule and the field (index into `cause_fields`).
    causes: Map<u32, (Rule, u32)>,
    cause_fields: Vec<String>,
    /// Apple: rows whose primary key has characters Apple's templates do not allow (found by
    /// the field checks, reported as a note).
    odd_ids: Vec<u32>,
    /// Primary key -> first kept row with it; stores row numbers only and hashes the id
    /// text in place, so indexing costs no allocation per row.
    index: HashTable<u32>,
    /// For referenced tables instead of `index`: slots that hold short keys inline, so a
    /// lookup that hits reads one slot rather than chasing the row's text.
    lookup: HashTable<Slot>,
    hasher: RandomState,
    /// The primary key column alone, trimmed, kept compact (referenced tables only).
    keys: Keys,
    /// Findings of [`prepare`], merged by [`run`].
    pre: Vec<Finding>,
    prepared: bool,
    /// Bumped each time a row is dropped; lets the fixpoint skip unchanged targets.
    epoch: u64,
}

impl Work {
    pub fn value(&self, row: usize, col: usize) -> &str {
        if !self.overrides.is_empty() {
            if let Some(v) = self.overrides.get(&(row as u32, col as u32)) {
                return v;
            }
        }
        self.table.field(row, col)
    }
    /// Fills `out` with the row's values (cleared fields empty), in one pass over the row.
    pub fn row_values<'a>(&'a self, row: usize, out: &mut [&'a str]) {
        for (c, v) in self.table.fields(row).enumerate() {
            if let Some(slot) = out.get_mut(c) {
                *slot = v;
            }
        }
        if !self.overrides.is_empty() {
            for (c, slot) in out.iter_mut().enumerate() {
                if let Some(v) = self.overrides.get(&(row as u32, c as u32)) {
                    *slot = v;
                }
            }
        }
    }
    pub fn col(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
    pub fn pk_col(&self) -> usize {
        self.pk
    }
    pub fn id(&self, row: usize) -> &str {
        if self.keys.ends.is_empty() {
            self.table.field(row, self.pk).trim()
        } else {
            self.keys.get(row)
        }
    }
    /// The name a column is stored under: the schema's name for known columns (numbered
    /// columns keep their own, normalised), the uploaded header text for extra columns.
    pub fn column_name(&self, col: usize) -> std::borrow::Cow<'_, str> {
        let h = &self.table.header[col];
        match self.cols.get(col).and_then(|b| b.def.as_ref()) {
            Some(d) if norm_header(d.name) == norm_header(h) => std::borrow::Cow::Borrowed(d.name),
            Some(_) => {
                // A numbered column: `Location ID 7` is stored as `location_id_7`.
                let n = norm_header(h);
                self.def
                    .numbered
                    .iter()
                    .find_map(|nb| {
                        let num: u32 = n.strip_prefix(&norm_header(nb.prefix))?.parse().ok()?;
                        Some(std::borrow::Cow::Owned(format!("{}{num}", nb.prefix)))
                    })
                    .unwrap_or(std::borrow::Cow::Owned(n))
            }
            None => std::borrow::Cow::Borrowed(h.as_str()),
        }
    }
    pub fn is_kept(&self, row: usize) -> bool {
        self.fate[row].is_none()
    }
    pub fn dropped_rows(&self) -> usize {
        self.fate.iter().filter(|f| f.is_some()).count()
    }
    /// OneRoster delta row marked `tobedeleted`.
    pub fn is_deletion(&self, row: usize) -> bool {
        self.deletions.get(row).copied().unwrap_or(false)
    }
    fn line(&self, row: usize) -> u32 {
        self.table.line(row)
    }

    /// The first kept row with primary key `id`, if any.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.find_hashed(self.hasher.hash_one(id), id)
    }

    /// [`Work::find`] of an id whose hash ([`Work::hash`]) is known.
    fn find_hashed(&self, h: u64, id: &str) -> Option<usize> {
        if !self.lookup.is_empty() {
            return self
                .lookup
                .find(h, |s| s.matches(id, || self.id(s.row as usize)))
                .map(|s| s.row as usize);
        }
        self.index
            .find(h, |&r| self.id(r as usize) == id)
            .map(|&r| r as usize)
    }

    /// The hash of `id` in this table's indexes.
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// A row that was already dropped when the table was indexed, with primary key `id`.
    fn find_gone(&self, id: &str) -> Option<usize> {
        if self.gone.is_empty() {
            return None;
        }
        let h = self.hasher.hash_one(id);
        self.gone
            .find(h, |&r| self.id(r as usize) == id)
            .map(|&r| r as usize)
    }

    /// Why row `row` was dropped, in words: `enabledUser invalid`, `duplicate-id`.
    fn cause(&self, row: usize) -> String {
        match self.causes.get(&(row as u32)) {
            Some(&(Rule::InvalidValue, f)) => {
                let field = self.cause_fields.get(f as usize).map_or("", String::as_str);
                if field.is_empty() {
                    "invalid value".to_string()
                } else {
                    format!("{field} invalid")
                }
            }
            Some(&(rule, f)) => match self.cause_fields.get(f as usize) {
                Some(field) if !field.is_empty() => format!("{rule} ({field})"),
                _ => rule.to_string(),
            },
            None => self.fate[row].map_or_else(String::new, |r| r.to_string()),
        }
    }

    /// Indexes every kept row by primary key; returns the rows whose key was already taken,
    /// with the row that has it.
    fn build_index(&mut self, compact: bool) -> Vec<(usize, usize)> {
        let mut dups = Vec::new();
        let mut index: HashTable<u32> = HashTable::with_capacity(self.table.len());
        if compact && self.keys.ends.is_empty() {
            self.keys = Keys::of(&self.table, self.pk);
        }
        let (keys, table, pk, hasher) = (&self.keys, &self.table, self.pk, &self.hasher);
        let id = |r: u32| {
            if keys.ends.is_empty() {
                table.field(r as usize, pk).trim()
            } else {
                keys.get(r as usize)
            }
        };
        let mut gone: HashTable<u32> = HashTable::new();
        // Keys are read and hashed a block of rows at a time, then inserted in a tight loop,
        // so that the index's cache misses overlap.
        let mut block: Vec<(&str, u64)> = Vec::with_capacity(INDEX_BLOCK);
        for first in (0..table.len()).step_by(INDEX_BLOCK) {
            let rows = first..(first + INDEX_BLOCK).min(table.len());
            block.clear();
            block.extend(rows.clone().map(|r| {
                let k = id(r as u32);
                (k, hasher.hash_one(k))
            }));
            for (row, &(k, h)) in rows.zip(&block) {
                if self.fate[row].is_some() {
                    if let hashbrown::hash_table::Entry::Vacant(e) =
                        gone.entry(h, |&r| id(r) == k, |&r| hasher.hash_one(id(r)))
                    {
                        e.insert(row as u32);
                    }
                    continue;
                }
                match index.entry(h, |&r| id(r) == k, |&r| hasher.hash_one(id(r))) {
                    hashbrown::hash_table::Entry::Occupied(e) => {
                        dups.push((row, *e.get() as usize))
                    }
                    hashbrown::hash_table::Entry::Vacant(e) => {
                        e.insert(row as u32);
                    }
                }
            }
        }
        self.gone = gone;
        if compact {
            let mut lookup: HashTable<Slot> = HashTable::with_capacity(index.len());
            for &r in index.iter() {
                let k = id(r);
                lookup.insert_unique(hasher.hash_one(k), Slot::new(k, r), |s| {
                    hasher.hash_one(id(s.row))
                });
            }
            self.lookup = lookup;
            self.index = HashTable::new();
        } else {
            self.index = index;
        }
        dups
    }

    /// Writes the table with its original header, column order and dialect, minus dropped
    /// rows and with cleared fields empty, to `out` in the chunks a `BufWriter` of
    /// [`WRITE_CHUNK`] bytes would hand it. Rows without a cleared or rewritten field are
    /// copied from the table's text in one pass when none of their fields needs quotes.
    pub fn write_csv<W: Write>(&self, out: W) -> std::io::Result<()> {
        let mut w = CsvWriter::buffered(out, self.table.dialect, WRITE_CHUNK)?;
        w.write_row(self.table.header.iter().map(String::as_str))?;
        // Rows with an override, in order.
        let mut touched: Vec<u32> = self.overrides.keys().map(|&(r, _)| r).collect();
        touched.sort_unstable();
        touched.dedup();
        let mut next = touched.iter().peekable();
        for row in 0..self.table.len() {
            let over = next.next_if(|&&r| r as usize == row).is_some();
            if self.fate[row].is_some() {
                continue;
            }
            if !over {
                w.write_stored_row(self.table.row_text(row))?;
            } else {
                w.write_row(
                    self.table
                        .fields(row)
                        .enumerate()
                        .map(|(c, v)| self.overrides.get(&(row as u32, c as u32)).map_or(v, |o| o)),
                )?;
            }
        }
        w.finish()?;
        Ok(())
    }
}

/// The chunks [`Work::write_csv`] writes in. modified.zip's deflate (zlib-rs) ends its blocks
/// where its input chunks end, so its bytes depend on them: these are the chunks of the
/// 256 KiB `BufWriter` that fed it before the writer buffered itself.
pub const WRITE_CHUNK: usize = 256 * 1024;

/// Rows [`Work::build_index`] reads and hashes ahead of inserting them.
const INDEX_BLOCK: usize = 64;

/// An index slot: the row and, when it fits, the key itself.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: [u8; Slot::INLINE],
    /// Key length, or `u8::MAX` when the key is too long to be inline.
    len: u8,
    row: u32,
}

impl Slot {
    const INLINE: usize = 11;
    fn new(key: &str, row: u32) -> Slot {
        let mut s = Slot {
            key: [0; Slot::INLINE],
            len: u8::MAX,
            row,
        };
        if key.len() <= Slot::INLINE {
            s.key[..key.len()].copy_from_slice(key.as_bytes());
            s.len = key.len() as u8;
        }
        s
    }
    fn matches<'a>(&self, id: &str, stored: impl FnOnce() -> &'a str) -> bool {
        if self.len == u8::MAX {
            id.len() > Slot::INLINE && stored() == id
        } else {
            usize::from(self.len) == id.len() && &self.key[..id.len()] == id.as_bytes()
        }
    }
}

/// One column's values, back to back.
#[derive(Debug, Default)]
struct Keys {
    data: String,
    ends: Vec<u32>,
}

impl Keys {
    fn of(t: &Table, col: usize) -> Keys {
        let mut k = Keys {
            data: String::new(),
            ends: Vec::with_capacity(t.len()),
        };
        for row in 0..t.len() {
            k.data.push_str(t.field(row, col).trim());
            k.ends.push(k.data.len() as u32);
        }
        k.data.shrink_to_fit();
        k
    }
    fn get(&self, row: usize) -> &str {
        let start = if row == 0 {
            0
        } else {
            self.ends[row - 1] as usize
        };
        &self.data[start..self.ends[row] as usize]
    }
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

/// Binds an uploaded table's header to its schema table.
pub fn bind(def: &TableDef, mut table: Table, mode: Mode) -> Result<Work, Vec<CsvError>> {
    let file = table.file.clone();
    let e = |column: usize, message: String| CsvError {
        file: file.clone(),
        line: 1,
        column,
        message,
    };
    let mut errors = Vec::new();
    let mut known: Map<String, &ColumnDef> = Map::default();
    for c in &def.columns {
        known.insert(norm_header(c.name), c);
    }
    let mut cols = Vec::with_capacity(table.header.len());
    let mut by_name: Map<&'static str, usize> = Map::default();
    let mut seen: Map<String, usize> = Map::default();
    for (i, h) in table.header.iter().enumerate() {
        let n = norm_header(h);
        if n.is_empty() && !h.is_empty() {
            errors.push(e(i + 1, "blank column name".into()));
        }
        if let Some(prev) = seen.insert(n.clone(), i) {
            if !n.is_empty() {
                errors.push(e(
                    i + 1,
                    format!("duplicate column `{h}` (also column {})", prev + 1),
                ));
            }
        }
        if let Some(c) = known.get(&n) {
            by_name.insert(c.name, i);
            cols.push(Bound {
                def: Some((*c).clone()),
            });
            continue;
        }
        let numbered = def.numbered.iter().find_map(|nb| {
            let p = norm_header(nb.prefix);
            let num: u32 = n.strip_prefix(&p)?.parse().ok()?;
            (nb.first..=nb.last).contains(&num).then_some(nb)
        });
        match numbered.and_then(|nb| def.column(nb.base).map(|c| (nb, c))) {
            Some((_, c)) => cols.push(Bound {
                def: Some(ColumnDef {
                    name: c.name,
                    kind: c.kind,
                    required: false,
                }),
            }),
            None => cols.push(Bound { def: None }),
        }
    }
    let mut missing: Vec<&str> = def
        .columns
        .iter()
        .filter(|c| (c.required || c.name == def.pk) && !by_name.contains_key(c.name))
        .map(|c| c.name)
        .collect();
    missing.dedup();
    if !missing.is_empty() && errors.is_empty() && table.is_empty() && table.malformed.is_empty() {
        // A header-only file (a truncated export, a 1.0 header under 1.1) has no row that
        // could lack the column: an empty table.
        let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        table.notes.push(format!(
            "{file}: header only, without required column(s) {}: read as an empty table",
            list.join(", ")
        ));
        missing.clear();
    }
    for m in missing {
        // A header cell within two edits of the missing name, that is no column of the file's
        // own, is most likely it misspelt.
        let known = |h: &str| def.columns.iter().any(|c| norm_header(c.name) == h);
        let near = crate::roster::text::near_miss(
            &norm_header(m),
            table
                .header
                .iter()
                .map(|h| (norm_header(h), h))
                .filter(|(n, _)| !known(n)),
        );
        let hint = match near {
            Some(h) => format!(
                "; `{}` may be it misspelt: rename that column",
                crate::roster::text::escape(h)
            ),
            None => String::new(),
        };
        let found: Vec<String> = table
            .header
            .iter()
            .map(|h| crate::roster::text::escape(h).into_owned())
            .collect();
        errors.push(e(
            0,
            format!(
                "missing required column `{m}`{hint} (found: {})",
                found.join(", ")
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Present unless the table is empty (above); then no row is ever keyed.
    let pk = by_name.get(def.pk).copied().unwrap_or(0);
    let status = if def.oneroster_status {
        by_name.get("status").copied()
    } else {
        None
    };
    let n = table.len();
    Ok(Work {
        def: def.clone(),
        table,
        mode,
        cols,
        by_name,
        pk,
        status,
        // Worked out by `prepare` once `status` has been read and normalised
        // (`read_statuses`).
        deletions: Vec::new(),
        fate: vec![None; n],
        overrides: Map::default(),
        gone: HashTable::new(),
        causes: Map::default(),
        cause_fields: Vec::new(),
        odd_ids: Vec::new(),
        index: HashTable::new(),
        lookup: HashTable::new(),
        hasher: RandomState::default(),
        keys: Keys::default(),
        pre: Vec::new(),
        prepared: false,
        epoch: 0,
    })
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
    w.overrides.insert((row as u32, col as u32), new);
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
    w.overrides.insert((row as u32, col as u32), new);
}

/// Notes on a table's columns that are not read as the format's: columns beyond a numbered
/// family's last member (Apple reads `instructor_id` to `instructor_id_15`), columns the
/// format does not have (with "did you mean" when a known column is within two edits), and, for
/// Apple, primary keys with characters Apple's templates do not allow.
fn column_notes(format: Format, w: &Work) -> Vec<String> {
    let mut notes = Vec::new();
    let file = &w.table.file;
    let mut unknown: Vec<String> = Vec::new();
    for (i, h) in w.table.header.iter().enumerate() {
        // `metadata.*` is OneRoster's own way of carrying extension columns.
        if w.cols.get(i).is_some_and(|b| b.def.is_some())
            || h.trim().is_empty()
            || (format.is_oneroster() && h.trim().starts_with("metadata."))
        {
            continue;
        }
        let n = norm_header(h);
        let beyond = w.def.numbered.iter().find_map(|nb| {
            let num: u32 = n.strip_prefix(&norm_header(nb.prefix))?.parse().ok()?;
            (num > nb.last).then_some(nb)
        });
        if let Some(nb) = beyond {
            notes.push(format!(
                "{file}: column `{}` is ignored: {} reads {} to {}{} only; its values are kept \
                 in modified/ but not checked",
                crate::roster::text::escape(h),
                format.display_name(),
                nb.base,
                nb.prefix,
                nb.last
            ));
            continue;
        }
        let present = |c: &str| w.by_name.contains_key(c);
        let guess = crate::roster::text::near_miss(
            &n,
            w.def
                .columns
                .iter()
                .filter(|c| !present(c.name))
                .map(|c| (norm_header(c.name), c.name)),
        );
        unknown.push(match guess {
            Some(c) => format!("`{}` (did you mean `{c}`?)", crate::roster::text::escape(h)),
            None => format!("`{}`", crate::roster::text::escape(h)),
        });
    }
    if !unknown.is_empty() {
        notes.push(format!(
            "{file}: column(s) that are not in the {} {} file, kept as uploaded and not \
             checked: {}",
            format.display_name(),
            w.def.name,
            unknown.join(", ")
        ));
    }
    if format == Format::Apple {
        let bad: Vec<usize> = w
            .odd_ids
            .iter()
            .map(|&r| r as usize)
            .filter(|&r| w.is_kept(r))
            .collect();
        if let Some(&first) = bad.first() {
            notes.push(format!(
                "{file}: {} {} value(s) have characters Apple School Manager's templates do not \
                 allow (only letters, digits and hyphens), e.g. line {} `{}`; Apple may refuse them",
                bad.len(),
                w.def.pk,
                w.line(first),
                crate::roster::text::escape(w.id(first))
            ));
        }
    }
    notes
}

/// An id Apple School Manager's templates allow: letters, digits and hyphens.
fn apple_id(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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

/// OneRoster `status`: canonical, or an unambiguous spelling of it (1.0's `inactive` is
/// 1.1's `tobedeleted`). `None`: not a status.
fn read_status(v: &str) -> Option<(&'static str, &'static str)> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("active") {
        Some(("active", "value written in another case"))
    } else if t.eq_ignore_ascii_case("tobedeleted") {
        Some(("tobedeleted", "value written in another case"))
    } else if t.eq_ignore_ascii_case("inactive") {
        Some((
            "tobedeleted",
            "OneRoster 1.0's `inactive` is `tobedeleted` in 1.1 and 1.2",
        ))
    } else {
        None
    }
}

/// Normalises `status` before anything else (it decides which rows are deletions) and works out
/// the deletions.
fn read_statuses(ctx: &mut Ctx, w: &mut Work) {
    let Some(sc) = w.status else {
        return;
    };
    let n = w.table.len();
    // Flags for every row, made only once a file has a deletion (most bulk files have none).
    let mut deletions: Vec<bool> = Vec::new();
    for row in 0..n {
        let v = w.table.field(row, sc);
        let canon = match v {
            "active" | "tobedeleted" | "" => v,
            _ if !ctx.settings.normalize => v,
            _ => match read_status(v) {
                Some((c, why)) => {
                    fix_field(ctx, w, row, sc, c.to_string(), why);
                    c
                }
                // Invalid: the field checks drop the row.
                None => v,
            },
        };
        if canon == "tobedeleted" {
            if deletions.is_empty() {
                deletions = vec![false; n];
            }
            deletions[row] = true;
        }
    }
    w.deletions = deletions;
}

fn validate_fields(ctx: &mut Ctx, w: &mut Work) {
    let delta = w.mode == Mode::Delta;
    let dlm = w.col("dateLastModified");
    let (normalize, order) = (ctx.settings.normalize, ctx.settings.date_order);
    let apple = ctx.schema.format == Format::Apple;
    read_statuses(ctx, w);
    // (column, why, drop the row?) for the current row, and its rewritten fields.
    let mut found: Vec<(usize, String, bool)> = Vec::new();
    let mut fixes: Vec<(usize, String, &'static str)> = Vec::new();
    for row in 0..w.table.len() {
        let deletion = w.is_deletion(row);
        found.clear();
        fixes.clear();
        for (col, raw) in w.table.fields(row).enumerate() {
            if raw.len() > values::MAX_VALUE_BYTES {
                let why = format!(
                    "value of {} bytes is longer than the {} accepted",
                    raw.len(),
                    values::MAX_VALUE_BYTES
                );
                let required = w
                    .cols
                    .get(col)
                    .and_then(|b| b.def.as_ref())
                    .is_some_and(|d| d.required);
                let drop = required || col == w.pk;
                found.push((col, why, drop));
                if drop {
                    break;
                }
                continue;
            }
            let Some(def) = w.cols.get(col).and_then(|b| b.def.as_ref()) else {
                continue;
            };
            if apple && col == w.pk && !apple_id(raw.trim()) {
                w.odd_ids.push(row as u32);
            }
            let is_status = w.status == Some(col);
            let is_meta = is_status || dlm == Some(col);
            let required = if is_meta {
                delta
            } else {
                def.required && !(deletion && col != w.pk)
            };
            // `status` was read first; a rewritten one is in the overrides.
            let v = if is_status && !w.overrides.is_empty() {
                w.value(row, col)
            } else {
                raw
            };
            // The common identifier: printable ASCII without spaces, not too long. It is not
            // empty, valid and canonical, so the checks below would find nothing.
            if def.kind == crate::roster::schema::Kind::Id
                && !v.is_empty()
                && v.len() <= values::MAX_ID_BYTES
                && v.bytes().all(|b| (0x21..0x7f).contains(&b))
            {
                continue;
            }
            if v.trim().is_empty() {
                if required {
                    let what = if is_meta {
                        "required in a delta file"
                    } else {
                        "required value is empty"
                    };
                    found.push((col, what.into(), true));
                    break;
                }
                continue;
            }
            if def.kind == crate::roster::schema::Kind::Id && v.len() > values::MAX_ID_BYTES {
                let why = format!(
                    "identifier of {} bytes is longer than the {} accepted",
                    v.len(),
                    values::MAX_ID_BYTES
                );
                let drop = required || col == w.pk;
                found.push((col, why, drop));
                if drop {
                    break;
                }
                continue;
            }
            // A value is checked once; only a refused one (or a kind with a more canonical
            // form of valid values) is looked at again.
            let reading = match values::check(def.kind, v) {
                Ok(()) if !normalize || is_status => values::Reading::Canonical,
                Ok(()) => values::normalize_valid(def.kind, v),
                Err(why) if !normalize || is_status => values::Reading::Invalid(why),
                Err(why) => values::normalize_invalid(def.kind, v, order, why),
            };
            match reading {
                values::Reading::Canonical => {}
                values::Reading::Fixed(new, why) => fixes.push((col, new, why)),
                values::Reading::Invalid(why) => {
                    // An unknown status is never cleared: a row meant to be deleted would
                    // become active.
                    let drop = required || col == w.pk || is_status;
                    found.push((col, why, drop));
                    if drop {
                        break;
                    }
                }
            }
        }
        let dropped = found.iter().any(|f| f.2);
        if !dropped {
            for (col, new, why) in fixes.drain(..) {
                fix_field(ctx, w, row, col, new, why);
            }
        }
        for (col, why, drop) in found.drain(..) {
            let field = w.table.header[col].clone();
            if drop {
                drop_row(ctx, w, row, Rule::InvalidValue, &field, why);
            } else {
                let v = w.table.field(row, col).to_string();
                set_field(ctx, w, row, col, String::new(), Rule::InvalidValue, &v, why);
            }
        }
    }
}

/// The per-table part of the pipeline, independent of other tables (run in parallel by
/// [`crate::roster::check::check`]): field checks, then duplicate primary keys (the first row is
/// kept), leaving the table indexed by primary key.
pub fn prepare(schema: &Schema, settings: &Settings, w: &mut Work) {
    let mut ctx = Ctx::new(schema, settings, &NoExternal);
    validate_fields(&mut ctx, w);
    let referenced = schema.foreign_keys.iter().any(|k| k.target == w.def.name);
    let dups = w.build_index(referenced);
    for (row, first) in dups {
        let d = format!(
            "{} `{}` already on line {}",
            w.def.pk,
            w.id(row),
            w.line(first)
        );
        drop_row(&mut ctx, w, row, Rule::DuplicateId, w.def.pk, d);
    }
    if !referenced && w.def.pk_group.is_none() {
        // Nothing looks rows of this table up by key: free the index.
        w.index = HashTable::new();
    }
    w.pre = ctx.findings;
    w.prepared = true;
}

/// Tables of one `pk_group` (Apple students and staff) share a key space: a key already used
/// by an earlier table of the group is a duplicate.
fn shared_key_duplicates(ctx: &mut Ctx, tables: &mut [Work]) {
    for i in 0..tables.len() {
        let Some(group) = tables[i].def.pk_group else {
            continue;
        };
        let (before, rest) = tables.split_at_mut(i);
        let w = &mut rest[0];
        let mut dropped = false;
        for other in before.iter().filter(|o| o.def.pk_group == Some(group)) {
            let clash: Vec<(usize, usize)> = (0..w.table.len())
                .filter(|&r| w.fate[r].is_none())
                .filter_map(|r| other.find(w.id(r)).map(|o| (r, o)))
                .collect();
            for (row, o) in clash {
                let d = format!(
                    "{} `{}` already used in {} line {}",
                    w.def.pk,
                    w.id(row),
                    other.table.file,
                    other.line(o)
                );
                drop_row(ctx, w, row, Rule::DuplicateId, w.def.pk, d);
                dropped = true;
            }
        }
        if dropped {
            let referenced = ctx
                .schema
                .foreign_keys
                .iter()
                .any(|k| k.target == w.def.name);
            w.build_index(referenced);
        }
    }
}

fn pos(tables: &[Work], name: &str) -> Option<usize> {
    tables.iter().position(|w| w.def.name == name)
}

fn apply_filters(ctx: &mut Ctx, tables: &mut [Work]) {
    let f = ctx.settings.filter.clone();
    if f.is_empty() {
        return;
    }
    let format = ctx.schema.format;
    // Schools / locations.
    if !f.locations.is_empty() {
        let keep: std::collections::HashSet<&str> =
            f.locations.iter().map(String::as_str).collect();
        let name = if format == Format::Apple {
            "locations"
        } else {
            "orgs"
        };
        if let Some(i) = pos(tables, name) {
            let w = &mut tables[i];
            let ty = w.col("type");
            for row in 0..w.table.len() {
                if w.fate[row].is_some() || w.is_deletion(row) {
                    continue;
                }
                if let Some(t) = ty {
                    if w.value(row, t) != "school" {
                        continue;
                    }
                }
                if !keep.contains(w.id(row)) {
                    let d = "school/location not in this source's filter".to_string();
                    drop_row(ctx, w, row, Rule::Filtered, "", d);
                }
            }
        }
    }
    // Terms (OneRoster).
    if format.is_oneroster() && (!f.terms.is_empty() || f.terms_active_within_days.is_some()) {
        if let Some(i) = pos(tables, "academicSessions") {
            let today = ctx.settings.today.unwrap_or_else(Date::today_utc);
            let w = &mut tables[i];
            let (sd, ed, parent) = (
                w.col("startDate"),
                w.col("endDate"),
                w.col("parentSourcedId"),
            );
            let mut keep = vec![false; w.table.len()];
            for (row, k) in keep.iter_mut().enumerate() {
                let id = w.id(row);
                let by_id = f.terms.iter().any(|t| t == id);
                let by_date = f.terms_active_within_days.is_some_and(|n| {
                    let start = sd.and_then(|c| values::parse_date(w.value(row, c)));
                    let end = ed.and_then(|c| values::parse_date(w.value(row, c)));
                    match (start, end) {
                        (Some(s), Some(e)) => {
                            e.days() >= today.days() && s.days() <= today.days() + i64::from(n)
                        }
                        _ => false,
                    }
                });
                // A session already dropped (an invalid value) keeps nothing, not even its parent.
                *k = w.fate[row].is_none() && (by_id || by_date);
            }
            // Keep the ancestors (school years) of kept sessions.
            if let Some(p) = parent {
                for row in 0..w.table.len() {
                    let mut cur = row;
                    let mut hops = 0;
                    while keep[cur] && hops < 16 {
                        match w.find(w.value(cur, p).trim()) {
                            Some(up) => {
                                keep[up] = true;
                                cur = up;
                            }
                            None => break,
                        }
                        hops += 1;
                    }
                }
            }
            for (row, k) in keep.iter().enumerate() {
                if !k && !w.is_deletion(row) {
                    let d = "academic session not in this source's term filter".to_string();
                    drop_row(ctx, w, row, Rule::Filtered, "", d);
                }
            }
        }
    }
    // Roles.
    if !f.roles.is_empty() {
        let keep = |r: &str| f.roles.iter().any(|k| k.eq_ignore_ascii_case(r));
        let d = |r: &str| format!("role `{r}` not in this source's filter");
        if format == Format::Apple {
            let staff_kept = ["staff", "instructor", "teacher"].iter().any(|r| keep(r));
            for (name, kept) in [("students", keep("student")), ("staff", staff_kept)] {
                if kept {
                    continue;
                }
                if let Some(i) = pos(tables, name) {
                    let w = &mut tables[i];
                    for row in 0..w.table.len() {
                        drop_row(ctx, w, row, Rule::Filtered, "", d(name));
                    }
                }
            }
        } else {
            let mut with_roles: Option<(Map<String, bool>, usize)> = None;
            for name in ["users", "roles", "enrollments"] {
                let Some(i) = pos(tables, name) else { continue };
                let w = &mut tables[i];
                let Some(rc) = w.col("role") else { continue };
                let uc = w.col("userSourcedId");
                let mut seen: Map<String, bool> = Map::default();
                for row in 0..w.table.len() {
                    if w.fate[row].is_some() || w.is_deletion(row) {
                        continue;
                    }
                    let r = w.value(row, rc).to_string();
                    let kept = keep(&r);
                    if name == "roles" {
                        if let Some(uc) = uc {
                            let e = seen.entry(w.value(row, uc).trim().to_string());
                            *e.or_default() |= kept;
                        }
                    }
                    if !kept {
                        drop_row(ctx, w, row, Rule::Filtered, "role", d(&r));
                    }
                }
                if name == "roles" {
                    with_roles = Some((seen, i));
                }
            }
            // 1.2: a user all of whose roles were filtered out is filtered too.
            if let (Some((seen, _)), Some(ui)) = (with_roles, pos(tables, "users")) {
                let w = &mut tables[ui];
                for row in 0..w.table.len() {
                    if seen.get(w.id(row)) == Some(&false) {
                        let detail = "none of the user's roles is in this source's filter";
                        drop_row(ctx, w, row, Rule::Filtered, "", detail.into());
                    }
                }
            }
        }
    }
}

/// Outcome of looking up one reference.
enum Lookup {
    Found,
    /// Not there; the rule to report (the FK's, or `filtered` when the target was filtered).
    Missing(Rule, String),
    Unknown,
}

fn lookup(
    ext: &dyn External,
    tables: &[Work],
    target: Option<usize>,
    fk: &ForeignKey,
    id: &str,
) -> Lookup {
    let from_ext = || match ext.has_id(fk.target, id) {
        Some(true) => Lookup::Found,
        Some(false) => Lookup::Missing(
            fk.rule,
            format!(
                "`{id}` is in neither {}.csv nor the stored roster",
                fk.target
            ),
        ),
        None => Lookup::Unknown,
    };
    let Some(ti) = target else {
        return from_ext();
    };
    lookup_found(ext, &tables[ti], fk, id, tables[ti].find(id))
}

/// [`lookup`] in a target table, given what [`Work::find`] says of `id` there.
fn lookup_found(
    ext: &dyn External,
    t: &Work,
    fk: &ForeignKey,
    id: &str,
    found: Option<usize>,
) -> Lookup {
    match found {
        Some(row) if t.is_deletion(row) => {
            if t.mode == Mode::Delta {
                Lookup::Missing(
                    fk.rule,
                    format!(
                        "{} `{id}` is marked tobedeleted in {}",
                        fk.target, t.table.file
                    ),
                )
            } else {
                Lookup::Found
            }
        }
        Some(row) => match t.fate[row] {
            None => Lookup::Found,
            Some(Rule::Filtered) => Lookup::Missing(
                Rule::Filtered,
                format!(
                    "{} `{id}` ({} line {}) is filtered out",
                    fk.target,
                    t.table.file,
                    t.line(row)
                ),
            ),
            Some(_) => Lookup::Missing(
                fk.rule,
                format!(
                    "`{id}` ({} line {}) was dropped: {}",
                    t.table.file,
                    t.line(row),
                    t.cause(row)
                ),
            ),
        },
        // A delta row dropped in this bundle leaves the stored record as it was.
        None if t.mode == Mode::Delta && ext.has_id(fk.target, id) == Some(true) => Lookup::Found,
        None => match t.find_gone(id) {
            Some(row) if t.fate[row] == Some(Rule::Filtered) => Lookup::Missing(
                Rule::Filtered,
                format!(
                    "{} `{id}` ({} line {}) is filtered out",
                    fk.target,
                    t.table.file,
                    t.line(row)
                ),
            ),
            Some(row) => Lookup::Missing(
                fk.rule,
                format!(
                    "`{id}` ({} line {}) was dropped: {}",
                    t.table.file,
                    t.line(row),
                    t.cause(row)
                ),
            ),
            None => lookup_absent(ext, t, fk, id),
        },
    }
}

/// A reference to an id that was never in the target file: asked of the store when the file
/// is a delta.
fn lookup_absent(ext: &dyn External, t: &Work, fk: &ForeignKey, id: &str) -> Lookup {
    match t.mode {
        Mode::Delta => match ext.has_id(fk.target, id) {
            Some(true) => Lookup::Found,
            Some(false) => Lookup::Missing(
                fk.rule,
                format!(
                    "`{id}` is in neither {}.csv nor the stored roster",
                    fk.target
                ),
            ),
            None => Lookup::Unknown,
        },
        Mode::Bulk => Lookup::Missing(fk.rule, format!("`{id}` is not in {}", t.table.file)),
    }
}

/// A broken reference found by a read-only pass, applied afterwards.
enum Patch {
    Drop(usize, Rule, String),
    Set {
        row: usize,
        col: usize,
        new: String,
        rule: Rule,
        removed: String,
        detail: String,
    },
}

/// Checks one foreign key over its table without changing anything.
fn check_fk(
    ext: &dyn External,
    tables: &[Work],
    si: usize,
    target: Option<usize>,
    fk: &ForeignKey,
    unknown: &mut usize,
) -> Vec<Patch> {
    let n = tables[si].table.len();
    let workers = std::thread::available_parallelism().map_or(1, |p| p.get());
    if n < 100_000 || workers < 2 {
        return check_fk_rows(ext, tables, si, target, fk, 0..n, unknown);
    }
    let chunk = n.div_ceil(workers);
    let parts: Vec<(Vec<Patch>, usize)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|k| {
                let rows = (k * chunk).min(n)..((k + 1) * chunk).min(n);
                sc.spawn(move || {
                    let mut u = 0;
                    let p = check_fk_rows(ext, tables, si, target, fk, rows, &mut u);
                    (p, u)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = Vec::new();
    for (mut p, u) in parts {
        out.append(&mut p);
        *unknown += u;
    }
    out
}

fn check_fk_rows(
    ext: &dyn External,
    tables: &[Work],
    si: usize,
    target: Option<usize>,
    fk: &ForeignKey,
    rows: std::ops::Range<usize>,
    unknown: &mut usize,
) -> Vec<Patch> {
    let s = &tables[si];
    let cols: Vec<usize> = (0..s.cols.len())
        .filter(|&c| s.cols[c].def.as_ref().is_some_and(|d| d.name == fk.column))
        .collect();
    let mut out = Vec::new();
    if let (false, Some(ti)) = (fk.list, target) {
        check_refs_batched(ext, s, &tables[ti], fk, &cols, rows, &mut out, unknown);
        return out;
    }
    for row in rows {
        if s.fate[row].is_some() || s.is_deletion(row) {
            continue;
        }
        for &col in &cols {
            let v = s.value(row, col);
            if v.trim().is_empty() {
                continue;
            }
            // A broken reference in an optional field (such as Apple's location_id_2) is
            // cleared; only a required one costs the row.
            let required = s.cols[col].def.as_ref().is_some_and(|d| d.required);
            let on_missing = if required {
                fk.on_missing
            } else {
                OnMissing::ClearField
            };
            if !fk.list {
                match lookup(ext, tables, target, fk, v.trim()) {
                    Lookup::Found => {}
                    Lookup::Unknown => *unknown += 1,
                    Lookup::Missing(rule, why) => match on_missing {
                        OnMissing::DropRow => {
                            out.push(Patch::Drop(row, rule, why));
                            break;
                        }
                        OnMissing::ClearField => out.push(Patch::Set {
                            row,
                            col,
                            new: String::new(),
                            rule,
                            removed: v.trim().to_string(),
                            detail: why,
                        }),
                    },
                }
                continue;
            }
            let mut kept: Vec<&str> = Vec::new();
            let mut gone: Vec<(Rule, &str, String)> = Vec::new();
            for item in list_items(v) {
                match lookup(ext, tables, target, fk, item) {
                    Lookup::Found => kept.push(item),
                    Lookup::Unknown => {
                        *unknown += 1;
                        kept.push(item)
                    }
                    Lookup::Missing(rule, why) => gone.push((rule, item, why)),
                }
            }
            if gone.is_empty() {
                continue;
            }
            if kept.is_empty() && on_missing == OnMissing::DropRow {
                let more = if gone.len() > 1 {
                    format!(" (and {} more)", gone.len() - 1)
                } else {
                    String::new()
                };
                let (rule, _, why) = gone.swap_remove(0);
                out.push(Patch::Drop(row, rule, why + &more));
                break;
            }
            let whys: Vec<&str> = gone.iter().map(|g| g.2.as_str()).collect();
            out.push(Patch::Set {
                row,
                col,
                new: kept.join(","),
                rule: gone[0].0,
                removed: gone.iter().map(|g| g.1).collect::<Vec<_>>().join(","),
                detail: format!("removed from the list: {}", whys.join("; ")),
            });
        }
    }
    out
}

/// How many references [`check_refs_batched`] looks up together.
const REF_BATCH: usize = 64;

/// [`check_fk_rows`] of a single-valued foreign key into a table of the bundle, the same patches
/// in the same order: the references of a few rows are gathered and hashed first, then looked
/// up one after the other in a tight loop, so that the index probes (cache misses, the index of
/// a big table being larger than the caches) overlap instead of waiting on each other.
#[allow(clippy::too_many_arguments)]
fn check_refs_batched(
    ext: &dyn External,
    s: &Work,
    t: &Work,
    fk: &ForeignKey,
    cols: &[usize],
    rows: std::ops::Range<usize>,
    out: &mut Vec<Patch>,
    unknown: &mut usize,
) {
    // (row, column, trimmed value), the value's hash, and what `find` says of it.
    let mut refs: Vec<(usize, usize, &str)> = Vec::with_capacity(REF_BATCH + cols.len());
    let mut hashes: Vec<u64> = Vec::with_capacity(REF_BATCH + cols.len());
    let mut found: Vec<Option<usize>> = Vec::with_capacity(REF_BATCH + cols.len());
    let mut row = rows.start;
    while row < rows.end {
        refs.clear();
        while row < rows.end && refs.len() < REF_BATCH {
            if s.fate[row].is_none() && !s.is_deletion(row) {
                for &col in cols {
                    let v = s.value(row, col).trim();
                    if !v.is_empty() {
                        refs.push((row, col, v));
                    }
                }
            }
            row += 1;
        }
        hashes.clear();
        hashes.extend(refs.iter().map(|r| t.hash(r.2)));
        found.clear();
        found.extend(
            refs.iter()
                .zip(&hashes)
                .map(|(r, &h)| t.find_hashed(h, r.2)),
        );
        // A dropped row's later references are not looked at, as in the unbatched loop.
        let mut dropped = None;
        for (&(row, col, v), &hit) in refs.iter().zip(&found) {
            if dropped == Some(row) {
                continue;
            }
            let required = s.cols[col].def.as_ref().is_some_and(|d| d.required);
            let on_missing = if required {
                fk.on_missing
            } else {
                OnMissing::ClearField
            };
            match lookup_found(ext, t, fk, v, hit) {
                Lookup::Found => {}
                Lookup::Unknown => *unknown += 1,
                Lookup::Missing(rule, why) => match on_missing {
                    OnMissing::DropRow => {
                        out.push(Patch::Drop(row, rule, why));
                        dropped = Some(row);
                    }
                    OnMissing::ClearField => out.push(Patch::Set {
                        row,
                        col,
                        new: String::new(),
                        rule,
                        removed: v.to_string(),
                        detail: why,
                    }),
                },
            }
        }
    }
}

/// Referential integrity to a fixpoint: re-checks a foreign key only when its target table
/// lost rows since the last check.
fn integrity(ctx: &mut Ctx, tables: &mut [Work]) {
    let fks: Vec<ForeignKey> = ctx.schema.foreign_keys.clone();
    loop {
        let mut progress = false;
        for (k, fk) in fks.iter().enumerate() {
            let Some(si) = pos(tables, fk.table) else {
                continue;
            };
            let target = pos(tables, fk.target);
            let epoch = target.map(|t| tables[t].epoch).unwrap_or(0);
            if ctx.checked[k] == Some(epoch) {
                continue;
            }
            ctx.checked[k] = Some(epoch);
            progress = true;
            let mut unknown = 0usize;
            let patches = check_fk(ctx.ext, tables, si, target, fk, &mut unknown);
            let w = &mut tables[si];
            for p in patches {
                match p {
                    Patch::Drop(row, rule, why) => drop_row(ctx, w, row, rule, fk.column, why),
                    Patch::Set {
                        row,
                        col,
                        new,
                        rule,
                        removed,
                        detail,
                    } => set_field(ctx, w, row, col, new, rule, &removed, detail),
                }
            }
            if unknown > 0 && !ctx.noted[k] {
                ctx.noted[k] = true;
                ctx.notes.push(format!(
                    "{unknown} reference(s) in {}.{} to {} were not checked: that file is \
                     delta or absent and no stored roster was available",
                    fk.table, fk.column, fk.target
                ));
            }
        }
        if !progress {
            break;
        }
    }
}

/// The duplicate-account key: first name, last name and email, trimmed and case-folded.
/// `None` when the email is empty.
pub fn person_key(first: &str, last: &str, email: &str) -> Option<String> {
    let mut k = String::new();
    person_key_into(&mut k, first, last, email).then_some(k)
}

/// Writes the duplicate-account key of a person into `buf` (cleared first); false when the
/// email is empty.
fn person_key_into(buf: &mut String, first: &str, last: &str, email: &str) -> bool {
    buf.clear();
    let email = email.trim();
    if email.is_empty() {
        return false;
    }
    for (i, part) in [first.trim(), last.trim(), email].into_iter().enumerate() {
        if i > 0 {
            buf.push('\u{1f}');
        }
        if part.is_ascii() {
            buf.extend(part.bytes().map(|b| b.to_ascii_lowercase() as char));
        } else {
            buf.extend(part.chars().flat_map(char::to_lowercase));
        }
    }
    true
}

fn duplicate_accounts(ctx: &mut Ctx, tables: &mut [Work]) {
    // Person tables and their (first, last, email) columns.
    let people: Vec<(usize, [usize; 3], &'static str)> = tables
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let p = w.def.person?;
            Some((
                i,
                [w.col(p.first)?, w.col(p.last)?, w.col(p.email)?],
                p.email,
            ))
        })
        .collect();
    let key_of = |tables: &[Work], buf: &mut String, t: usize, cols: &[usize; 3], row: usize| {
        let w = &tables[t];
        person_key_into(
            buf,
            w.value(row, cols[0]),
            w.value(row, cols[1]),
            w.value(row, cols[2]),
        )
    };
    let hasher = RandomState::default();
    // First person seen per key, as (index into `people`, row).
    let total: usize = people.iter().map(|p| tables[p.0].table.len()).sum();
    let mut first: HashTable<(u32, u32)> = HashTable::with_capacity(total);
    let (mut key, mut other) = (String::new(), String::new());
    for (pi, &(t, cols, email_col)) in people.iter().enumerate() {
        for row in 0..tables[t].table.len() {
            if tables[t].fate[row].is_some() || tables[t].is_deletion(row) {
                continue;
            }
            if !key_of(tables, &mut key, t, &cols, row) {
                continue;
            }
            let id = tables[t].id(row);
            if let Some(stored) = ctx.ext.person_with_key(&key) {
                if stored != id {
                    let d =
                        format!("same first name, last name and email as stored person `{stored}`");
                    drop_row(
                        ctx,
                        &mut tables[t],
                        row,
                        Rule::DuplicateAccount,
                        email_col,
                        d,
                    );
                }
                continue;
            }
            let h = hasher.hash_one(&key);
            let eq = |&(p, r): &(u32, u32)| {
                let (t2, cols2, _) = people[p as usize];
                key_of(tables, &mut other, t2, &cols2, r as usize) && other == key
            };
            match first.find(h, eq) {
                Some(&(p, r)) => {
                    let w2 = &tables[people[p as usize].0];
                    if w2.id(r as usize) == id {
                        continue;
                    }
                    let d = format!(
                        "same first name, last name and email as `{}` ({} line {})",
                        w2.id(r as usize),
                        w2.table.file,
                        w2.line(r as usize)
                    );
                    drop_row(
                        ctx,
                        &mut tables[t],
                        row,
                        Rule::DuplicateAccount,
                        email_col,
                        d,
                    );
                }
                None => {
                    let tk = &tables;
                    // Capacity is reserved below, so this rehash closure is not expected to
                    // run; it allocates only if it does.
                    first.insert_unique(h, (pi as u32, row as u32), |&(p, r)| {
                        let (t2, cols2, _) = people[p as usize];
                        let mut scratch = String::new();
                        key_of(tk, &mut scratch, t2, &cols2, r as usize);
                        hasher.hash_one(&scratch)
                    });
                }
            }
        }
    }
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
