//! The generic roster engine: validate, filter and patch a bundle's tables to a fixpoint.
//!
//! Every step is driven by the [`Schema`] value: field checks by column kinds, integrity by
//! the foreign keys and their patch actions. Rows are never physically removed: each row has a
//! fate (kept, or the rule that removed it) and cleared fields are sparse overrides, so the
//! modified CSVs can be written with the original header, order and line numbers.

use std::collections::HashMap;
use std::io::Write;

use foldhash::fast::RandomState;

use crate::csvio::{CsvError, CsvWriter, Table};
use crate::report::{Action, Finding, Rule};
use crate::schema::{ColumnDef, ForeignKey, Format, OnMissing, Schema, TableDef};
use crate::values::{self, list_items, Date};

type Map<K, V> = HashMap<K, V, RandomState>;

/// Processing mode of one file (OneRoster manifest `file.*`; Apple files are always bulk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Delta,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Delta => "delta",
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// On: patch integrity errors. Off: any integrity error rejects the whole bundle.
    pub patch_errors: bool,
    pub prevent_duplicates: bool,
    pub filter: Filter,
    /// The date "now" for term filters (today, UTC, unless a test fixes it).
    pub today: Option<Date>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            patch_errors: true,
            prevent_duplicates: true,
            filter: Filter::default(),
            today: None,
        }
    }
}

/// What the engine may ask about records outside the bundle (the store, for delta files and
/// duplicate accounts). `None`: cannot tell.
pub trait External {
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
    Rejected,
}

/// A column of the uploaded file, bound to the schema.
#[derive(Debug, Clone)]
struct Bound {
    /// The schema column (numbered columns get their base's definition).
    def: Option<ColumnDef>,
    /// For numbered columns: the base name (`location_id` for `location_id_7`).
    base: Option<&'static str>,
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
    /// `None`: kept; `Some(rule)`: dropped by that rule.
    fate: Vec<Option<Rule>>,
    overrides: Map<(u32, u16), String>,
    /// Primary key -> first row with it (only for tables that are referenced).
    index: Option<Map<Box<str>, u32>>,
    /// Bumped each time a row is dropped; lets the fixpoint skip unchanged targets.
    epoch: u64,
}

impl Work {
    pub fn value(&self, row: usize, col: usize) -> &str {
        if !self.overrides.is_empty() {
            if let Some(v) = self.overrides.get(&(row as u32, col as u16)) {
                return v;
            }
        }
        self.table.field(row, col)
    }
    pub fn col(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
    pub fn pk_col(&self) -> usize {
        self.pk
    }
    pub fn id(&self, row: usize) -> &str {
        self.table.field(row, self.pk).trim()
    }
    pub fn is_kept(&self, row: usize) -> bool {
        self.fate[row].is_none()
    }
    pub fn dropped_rows(&self) -> usize {
        self.fate.iter().filter(|f| f.is_some()).count()
    }
    /// OneRoster delta row marked `tobedeleted`.
    pub fn is_deletion(&self, row: usize) -> bool {
        self.status
            .is_some_and(|c| self.table.field(row, c) == "tobedeleted")
    }
    fn line(&self, row: usize) -> u32 {
        self.table.line(row)
    }

    /// Writes the table with its original header, column order and dialect, minus dropped
    /// rows and with cleared fields empty.
    pub fn write_csv<W: Write>(&self, out: W) -> std::io::Result<()> {
        let mut w = CsvWriter::new(out, self.table.dialect)?;
        w.write_row(self.table.header.iter().map(String::as_str))?;
        let n = self.table.ncols();
        for row in 0..self.table.len() {
            if self.fate[row].is_none() {
                w.write_row((0..n).map(|c| self.value(row, c)))?;
            }
        }
        Ok(())
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
            verdict: Verdict::Rejected,
        }
    }
}

/// Normalises a header name: case-insensitive, ignoring spaces and underscores.
pub fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Binds an uploaded table's header to its schema table.
pub fn bind(def: &TableDef, table: Table, mode: Mode) -> Result<Work, Vec<CsvError>> {
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
                base: None,
            });
            continue;
        }
        let numbered = def.numbered.iter().find_map(|nb| {
            let p = norm_header(nb.prefix);
            let num: u32 = n.strip_prefix(&p)?.parse().ok()?;
            (nb.first..=nb.last).contains(&num).then_some(nb)
        });
        match numbered.and_then(|nb| def.column(nb.base).map(|c| (nb, c))) {
            Some((nb, c)) => cols.push(Bound {
                def: Some(ColumnDef {
                    name: c.name,
                    kind: c.kind,
                    required: false,
                }),
                base: Some(nb.base),
            }),
            None => cols.push(Bound {
                def: None,
                base: None,
            }),
        }
    }
    let mut missing: Vec<&str> = def
        .columns
        .iter()
        .filter(|c| (c.required || c.name == def.pk) && !by_name.contains_key(c.name))
        .map(|c| c.name)
        .collect();
    missing.dedup();
    for m in missing {
        errors.push(e(
            0,
            format!(
                "missing required column `{m}` (found: {})",
                table.header.join(", ")
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let pk = by_name[def.pk];
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
        fate: vec![None; n],
        overrides: Map::default(),
        index: None,
        epoch: 0,
    })
}

struct Ctx<'a> {
    schema: &'a Schema,
    settings: &'a Settings,
    ext: &'a dyn External,
    findings: Vec<Finding>,
    notes: Vec<String>,
}

impl Ctx<'_> {
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
    w.epoch += 1;
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
    w.overrides.insert((row as u32, col as u16), new);
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
    let mut ctx = Ctx {
        schema,
        settings,
        ext,
        findings: Vec::new(),
        notes: Vec::new(),
    };
    for w in tables.iter_mut() {
        validate_fields(&mut ctx, w);
    }
    duplicate_ids(&mut ctx, &mut tables);
    build_indexes(schema, &mut tables);
    apply_filters(&mut ctx, &mut tables);
    integrity(&mut ctx, &mut tables);
    if settings.prevent_duplicates {
        duplicate_accounts(&mut ctx, &mut tables);
        integrity(&mut ctx, &mut tables);
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

fn validate_fields(ctx: &mut Ctx, w: &mut Work) {
    let delta = w.mode == Mode::Delta;
    let dlm = w.col("dateLastModified");
    for row in 0..w.table.len() {
        let deletion = w.is_deletion(row);
        for col in 0..w.cols.len() {
            let Some(def) = w.cols[col].def.clone() else {
                continue;
            };
            let v = w.table.field(row, col);
            let is_status = w.status == Some(col) || dlm == Some(col);
            let required = if is_status {
                delta
            } else {
                def.required && !(deletion && col != w.pk)
            };
            if v.trim().is_empty() {
                if required {
                    let what = if is_status {
                        "required in a delta file"
                    } else {
                        "required value is empty"
                    };
                    drop_row(ctx, w, row, Rule::InvalidValue, def.name, what.into());
                    break;
                }
                continue;
            }
            if let Err(why) = values::check(def.kind, v) {
                let field = w.table.header[col].clone();
                if required || col == w.pk {
                    drop_row(ctx, w, row, Rule::InvalidValue, &field, why);
                    break;
                }
                let v = v.to_string();
                set_field(ctx, w, row, col, String::new(), Rule::InvalidValue, &v, why);
            }
        }
    }
}

/// The same primary key twice: the first row is kept. Tables of one `pk_group` (Apple
/// students and staff) share a key space.
fn duplicate_ids(ctx: &mut Ctx, tables: &mut [Work]) {
    let mut groups: Map<&'static str, Map<String, (String, u32)>> = Map::default();
    for w in tables.iter_mut() {
        let mut local: Map<Box<str>, u32> = Map::default();
        let group = w.def.pk_group;
        for row in 0..w.table.len() {
            if w.fate[row].is_some() {
                continue;
            }
            let id = w.id(row);
            if let Some(first) = local.get(id) {
                let d = format!("{} `{id}` already on line {first}", w.def.pk);
                drop_row(ctx, w, row, Rule::DuplicateId, w.def.pk, d);
                continue;
            }
            if let Some(g) = group {
                let seen = groups.entry(g).or_default();
                if let Some((file, line)) = seen.get(id) {
                    if *file != w.table.file {
                        let d = format!("{} `{id}` already used in {file} line {line}", w.def.pk);
                        drop_row(ctx, w, row, Rule::DuplicateId, w.def.pk, d);
                        continue;
                    }
                } else {
                    seen.insert(id.to_string(), (w.table.file.clone(), w.line(row)));
                }
            }
            local.insert(id.into(), w.line(row));
        }
    }
}

fn build_indexes(schema: &Schema, tables: &mut [Work]) {
    for w in tables.iter_mut() {
        let referenced = schema.foreign_keys.iter().any(|k| k.target == w.def.name);
        if !referenced {
            continue;
        }
        let mut idx: Map<Box<str>, u32> = Map::default();
        idx.reserve(w.table.len());
        for row in 0..w.table.len() {
            if w.fate[row].is_none() && !w.is_deletion(row) {
                idx.entry(w.id(row).into()).or_insert(row as u32);
            }
        }
        w.index = Some(idx);
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
                *k = by_id || by_date;
            }
            // Keep the ancestors (school years) of kept sessions.
            if let Some(p) = parent {
                let rows: Map<String, usize> = (0..w.table.len())
                    .map(|r| (w.id(r).to_string(), r))
                    .collect();
                for row in 0..w.table.len() {
                    let mut cur = row;
                    let mut hops = 0;
                    while keep[cur] && hops < 16 {
                        match rows.get(w.value(cur, p).trim()) {
                            Some(&up) => {
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

fn lookup(ctx: &Ctx, tables: &[Work], fk: &ForeignKey, id: &str) -> Lookup {
    let target = ctx
        .schema
        .table(fk.target)
        .map(|t| t.name)
        .unwrap_or(fk.target);
    let Some(ti) = pos(tables, target) else {
        return match ctx.ext.has_id(target, id) {
            Some(true) => Lookup::Found,
            Some(false) => Lookup::Missing(
                fk.rule,
                format!("`{id}` is in neither {target}.csv nor the stored roster"),
            ),
            None => Lookup::Unknown,
        };
    };
    let t = &tables[ti];
    let file = &t.table.file;
    match t.index.as_ref().and_then(|idx| idx.get(id)) {
        Some(&row) => match t.fate[row as usize] {
            None => Lookup::Found,
            Some(Rule::Filtered) => Lookup::Missing(
                Rule::Filtered,
                format!(
                    "{target} `{id}` ({file} line {}) is filtered out",
                    t.line(row as usize)
                ),
            ),
            Some(r) => Lookup::Missing(
                fk.rule,
                format!(
                    "{target} `{id}` ({file} line {}) was dropped ({r})",
                    t.line(row as usize)
                ),
            ),
        },
        None if t.mode == Mode::Delta => match ctx.ext.has_id(target, id) {
            Some(true) => Lookup::Found,
            Some(false) => Lookup::Missing(
                fk.rule,
                format!("`{id}` is in neither {target}.csv nor the stored roster"),
            ),
            None => Lookup::Unknown,
        },
        None => Lookup::Missing(fk.rule, format!("`{id}` is not in {file}")),
    }
}

/// Referential integrity to a fixpoint: re-checks a foreign key only when its target table
/// lost rows since the last check.
fn integrity(ctx: &mut Ctx, tables: &mut [Work]) {
    let fks: Vec<ForeignKey> = ctx.schema.foreign_keys.clone();
    let mut checked: Vec<Option<u64>> = vec![None; fks.len()];
    let mut unchecked_noted = vec![false; fks.len()];
    loop {
        let mut progress = false;
        for (k, fk) in fks.iter().enumerate() {
            let Some(si) = pos(tables, fk.table) else {
                continue;
            };
            let target_epoch = pos(tables, fk.target).map(|t| tables[t].epoch);
            let epoch = target_epoch.unwrap_or(0);
            if checked[k] == Some(epoch) {
                continue;
            }
            checked[k] = Some(epoch);
            progress = true;
            let cols: Vec<usize> = (0..tables[si].cols.len())
                .filter(|&c| {
                    let b = &tables[si].cols[c];
                    b.def.as_ref().is_some_and(|d| d.name == fk.column)
                        && (b.base.is_none() || b.base == Some(fk.column))
                })
                .collect();
            let mut unknown = 0usize;
            let nrows = tables[si].table.len();
            for row in 0..nrows {
                let s = &tables[si];
                if s.fate[row].is_some() || s.is_deletion(row) {
                    continue;
                }
                for &col in &cols {
                    let s = &tables[si];
                    let v = s.value(row, col);
                    if v.trim().is_empty() {
                        continue;
                    }
                    if fk.list {
                        let mut kept: Vec<&str> = Vec::new();
                        let mut gone: Vec<(Rule, String, String)> = Vec::new();
                        for item in list_items(v) {
                            match lookup(ctx, tables, fk, item) {
                                Lookup::Found => kept.push(item),
                                Lookup::Unknown => {
                                    unknown += 1;
                                    kept.push(item)
                                }
                                Lookup::Missing(rule, why) => {
                                    gone.push((rule, item.to_string(), why))
                                }
                            }
                        }
                        if gone.is_empty() {
                            continue;
                        }
                        let required = s.cols[col].def.as_ref().is_some_and(|d| d.required);
                        if kept.is_empty() && (required || fk.on_missing == OnMissing::DropRow) {
                            let (rule, _, why) = gone.swap_remove(0);
                            let more = if gone.is_empty() {
                                String::new()
                            } else {
                                format!(" (and {} more)", gone.len())
                            };
                            drop_row(ctx, &mut tables[si], row, rule, fk.column, why + &more);
                            break;
                        }
                        let new = kept.join(",");
                        let rule = gone[0].0;
                        let items: Vec<&str> = gone.iter().map(|g| g.1.as_str()).collect();
                        let whys: Vec<&str> = gone.iter().map(|g| g.2.as_str()).collect();
                        let detail = format!("removed from the list: {}", whys.join("; "));
                        let removed = items.join(",");
                        set_field(ctx, &mut tables[si], row, col, new, rule, &removed, detail);
                    } else {
                        let v = v.trim().to_string();
                        match lookup(ctx, tables, fk, &v) {
                            Lookup::Found => {}
                            Lookup::Unknown => unknown += 1,
                            Lookup::Missing(rule, why) => match fk.on_missing {
                                OnMissing::DropRow => {
                                    drop_row(ctx, &mut tables[si], row, rule, fk.column, why);
                                    break;
                                }
                                OnMissing::ClearField => {
                                    set_field(
                                        ctx,
                                        &mut tables[si],
                                        row,
                                        col,
                                        String::new(),
                                        rule,
                                        &v,
                                        why,
                                    );
                                }
                            },
                        }
                    }
                }
            }
            if unknown > 0 && !unchecked_noted[k] {
                unchecked_noted[k] = true;
                ctx.notes.push(format!(
                    "{} reference(s) in {}.{} to {} were not checked: that file is delta or \
                     absent and no stored roster was available",
                    unknown, fk.table, fk.column, fk.target
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
    let email = email.trim();
    if email.is_empty() {
        return None;
    }
    Some(format!(
        "{}\u{1f}{}\u{1f}{}",
        first.trim().to_lowercase(),
        last.trim().to_lowercase(),
        email.to_lowercase()
    ))
}

fn duplicate_accounts(ctx: &mut Ctx, tables: &mut [Work]) {
    let mut first: Map<String, (String, u32, String)> = Map::default();
    for w in tables.iter_mut() {
        let Some(p) = w.def.person else { continue };
        let (Some(fc), Some(lc), Some(ec)) = (w.col(p.first), w.col(p.last), w.col(p.email)) else {
            continue;
        };
        for row in 0..w.table.len() {
            if w.fate[row].is_some() || w.is_deletion(row) {
                continue;
            }
            let Some(key) = person_key(w.value(row, fc), w.value(row, lc), w.value(row, ec)) else {
                continue;
            };
            let id = w.id(row).to_string();
            if let Some(stored) = ctx.ext.person_with_key(&key) {
                if stored != id {
                    let d =
                        format!("same first name, last name and email as stored person `{stored}`");
                    drop_row(ctx, w, row, Rule::DuplicateAccount, p.email, d);
                }
                continue;
            }
            match first.get(&key) {
                Some((file, line, other)) if *other != id => {
                    let d = format!(
                        "same first name, last name and email as `{other}` ({file} line {line})"
                    );
                    drop_row(ctx, w, row, Rule::DuplicateAccount, p.email, d);
                }
                Some(_) => {}
                None => {
                    first.insert(key, (w.table.file.clone(), w.line(row), id));
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

#[cfg(test)]
mod tests;
