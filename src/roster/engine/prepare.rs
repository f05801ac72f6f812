//! Per table, before the tables meet: status first, then every field checked and normalised,
//! duplicate ids, the primary-key index.

use super::*;

/// OneRoster `status`: canonical, or an unambiguous spelling of it (1.0's `inactive` is
/// 1.1's `tobedeleted`). `None`: not a status.
pub(super) fn read_status(v: &str) -> Option<(&'static str, &'static str)> {
    let t = v.trimmed();
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
pub(super) fn read_statuses(ctx: &mut Ctx, w: &mut Work) {
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

/// What the field checks found in one row: fields that are invalid (column, why, whether the
/// row goes), and fields rewritten to their canonical reading.
#[derive(Default)]
struct RowChecks {
    row: u32,
    found: Vec<(usize, String, bool)>,
    fixes: Vec<(usize, String, &'static str)>,
}

/// Rows per thread below which the field checks of a table run on one.
const ROWS_PER_THREAD: usize = 100_000;

pub(super) fn validate_fields(ctx: &mut Ctx, w: &mut Work) {
    read_statuses(ctx, w);
    // The checks read the table only (no row's checks depend on another's), so a big table's
    // rows are checked in ranges on two threads; what they found is applied in row order.
    let n = w.table.len();
    let (checks, odd) = {
        let w: &Work = w;
        let settings = ctx.settings;
        let apple = ctx.schema.format == Format::Apple;
        if n >= 2 * ROWS_PER_THREAD {
            let mid = n / 2;
            let (a, b) = std::thread::scope(|s| {
                let h = s.spawn(|| check_rows(w, settings, apple, mid..n));
                (check_rows(w, settings, apple, 0..mid), h.join())
            });
            match b {
                Ok(mut b) => {
                    let (mut checks, mut odd) = a;
                    checks.append(&mut b.0);
                    odd.append(&mut b.1);
                    (checks, odd)
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        } else {
            check_rows(w, settings, apple, 0..n)
        }
    };
    w.odd_ids.extend(odd);
    for RowChecks {
        row,
        found,
        mut fixes,
    } in checks
    {
        let row = row as usize;
        let dropped = found.iter().any(|f| f.2);
        if !dropped {
            for (col, new, why) in fixes.drain(..) {
                fix_field(ctx, w, row, col, new, why);
            }
        }
        for (col, why, drop) in found {
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

/// The field checks of `rows`: the rows with something to report or rewrite, in order, and
/// the rows whose Apple id has characters Apple's templates do not allow.
fn check_rows(
    w: &Work,
    settings: &Settings,
    apple: bool,
    rows: std::ops::Range<usize>,
) -> (Vec<RowChecks>, Vec<u32>) {
    let delta = w.mode == Mode::Delta;
    let dlm = w.col("dateLastModified");
    let (normalize, order) = (settings.normalize, settings.date_order);
    let mut checks = Vec::new();
    let mut odd = Vec::new();
    let mut out = RowChecks::default();
    for row in rows {
        let deletion = w.is_deletion(row);
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
                out.found.push((col, why, drop));
                if drop {
                    break;
                }
                continue;
            }
            let Some(def) = w.cols.get(col).and_then(|b| b.def.as_ref()) else {
                continue;
            };
            if apple && col == w.pk && !apple_id(raw.trimmed()) {
                odd.push(row as u32);
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
            if v.trimmed().is_empty() {
                if required {
                    let what = if is_meta {
                        "required in a delta file"
                    } else {
                        "required value is empty"
                    };
                    out.found.push((col, what.into(), true));
                    break;
                }
                // An optional value of only spaces is empty, and is written so: a begin date
                // of " " was served by the REST API as a date that is none (a mutation
                // probe found it).
                if normalize && !v.is_empty() && !is_status {
                    out.fixes
                        .push((col, String::new(), "value of only spaces read as empty"));
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
                out.found.push((col, why, drop));
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
                values::Reading::Fixed(new, why) => out.fixes.push((col, new, why)),
                values::Reading::Invalid(why) => {
                    // An unknown status is never cleared: a row meant to be deleted would
                    // become active.
                    let drop = required || col == w.pk || is_status;
                    out.found.push((col, why, drop));
                    if drop {
                        break;
                    }
                }
            }
        }
        if !out.found.is_empty() || !out.fixes.is_empty() {
            out.row = row as u32;
            checks.push(std::mem::take(&mut out));
        }
    }
    (checks, odd)
}

/// Rows from which [`prepare`] finds an unindexed table's duplicate keys on every core.
pub(super) const PARALLEL_DUPLICATE_ROWS: usize = 100_000;

/// The per-table part of the pipeline, independent of other tables (run in parallel by
/// [`crate::roster::check::check`]): field checks, then duplicate primary keys (the first row is
/// kept), leaving the table indexed by primary key.
pub fn prepare(schema: &Schema, settings: &Settings, w: &mut Work) {
    let mut ctx = Ctx::new(schema, settings, &NoExternal);
    validate_fields(&mut ctx, w);
    let referenced = schema.foreign_keys.iter().any(|k| k.target == w.def.name);
    // A large table that nothing looks up by key (OneRoster enrollments, Apple rosters) needs
    // no index, only its duplicates, which all cores can find.
    let unindexed = !referenced && w.def.pk_group.is_none();
    let dups = if unindexed && w.table.len() >= PARALLEL_DUPLICATE_ROWS {
        w.duplicate_ids()
    } else {
        w.build_index(referenced)
    };
    for (row, first) in dups {
        let d = format!(
            "{} `{}` already on line {}",
            w.def.pk,
            w.id(row),
            w.line(first)
        );
        drop_row(&mut ctx, w, row, Rule::DuplicateId, w.def.pk, d);
    }
    if unindexed {
        // Nothing looks rows of this table up by key: free the index.
        w.index = HashTable::new();
    }
    w.pre = ctx.findings;
    w.prepared = true;
}
