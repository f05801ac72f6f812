//! Referential integrity: every foreign key looked up in the bundle (and the store, for a
//! delta), its patch applied, to a fixpoint.

use super::*;

/// Outcome of looking up one reference.
pub(super) enum Lookup {
    Found,
    /// Not there; the rule to report (the FK's, or `filtered` when the target was filtered).
    Missing(Rule, String),
    Unknown,
}

pub(super) fn lookup(
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
pub(super) fn lookup_found(
    ext: &dyn External,
    t: &Work,
    fk: &ForeignKey,
    id: &str,
    found: Option<usize>,
) -> Lookup {
    match found {
        // A `tobedeleted` row removes the record, in a delta file and in a bulk one alike
        // (the store applies both as deletions), so it is no target: a reference to it would
        // outlive it in the stored roster.
        Some(row) if t.is_deletion(row) => Lookup::Missing(
            fk.rule,
            format!(
                "{} `{id}` is marked tobedeleted in {}",
                fk.target, t.table.file
            ),
        ),
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
pub(super) fn lookup_absent(ext: &dyn External, t: &Work, fk: &ForeignKey, id: &str) -> Lookup {
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
pub(super) enum Patch {
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
pub(super) fn check_fk(
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

pub(super) fn check_fk_rows(
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
    let mut looked: Vec<(usize, &str, Lookup)> = Vec::with_capacity(cols.len());
    for row in rows {
        if s.fate[row].is_some() || s.is_deletion(row) {
            continue;
        }
        if !fk.list {
            looked.clear();
            for &col in &cols {
                let v = s.value(row, col).trimmed();
                if !v.is_empty() {
                    looked.push((col, v, lookup(ext, tables, target, fk, v)));
                }
            }
            row_patches(s, fk, row, &mut looked, &mut out, unknown);
            continue;
        }
        for &col in &cols {
            let v = s.value(row, col);
            if v.trimmed().is_empty() {
                continue;
            }
            // A broken reference in an optional field is cleared; only a required one costs
            // the row.
            let required = s.cols[col].def.as_ref().is_some_and(|d| d.required);
            let on_missing = if required {
                fk.on_missing
            } else {
                OnMissing::ClearField
            };
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
pub(super) const REF_BATCH: usize = 64;

/// [`check_fk_rows`] of a single-valued foreign key into a table of the bundle, the same patches
/// in the same order: the references of a few rows are gathered and hashed first, then looked
/// up one after the other in a tight loop, so that the index probes (cache misses, the index of
/// a big table being larger than the caches) overlap instead of waiting on each other.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_refs_batched(
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
    let mut looked: Vec<(usize, &str, Lookup)> = Vec::with_capacity(cols.len());
    let mut row = rows.start;
    while row < rows.end {
        refs.clear();
        while row < rows.end && refs.len() < REF_BATCH {
            if s.fate[row].is_none() && !s.is_deletion(row) {
                for &col in cols {
                    let v = s.value(row, col).trimmed();
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
        // Each row's references (they are next to each other in `refs`) are patched together,
        // once one of them is not found (nearly every row has all of its references).
        let mut i = 0;
        while i < refs.len() {
            let (row, start) = (refs[i].0, i);
            let mut whole = true;
            while i < refs.len() && refs[i].0 == row {
                let (_, _, v) = refs[i];
                whole &= matches!(lookup_found(ext, t, fk, v, found[i]), Lookup::Found);
                i += 1;
            }
            if whole {
                continue;
            }
            looked.clear();
            for k in start..i {
                let (_, col, v) = refs[k];
                looked.push((col, v, lookup_found(ext, t, fk, v, found[k])));
            }
            row_patches(s, fk, row, &mut looked, out, unknown);
        }
    }
}

/// The patches one row's references of a single-valued foreign key need, given what their
/// lookups found, in column order. A broken reference in an optional column is cleared. A
/// broken one in a required column costs the row, unless an optional column of the same key
/// holds one that is found: that one moves into the required column (an Apple person at a
/// filtered or unknown `location_id` and a kept `location_id_2` stays, at the kept school,
/// as a OneRoster user keeps the orgs of its list that are kept). After the first reference
/// that costs the row, the row's later ones are not looked at.
fn row_patches(
    s: &Work,
    fk: &ForeignKey,
    row: usize,
    looked: &mut Vec<(usize, &str, Lookup)>,
    out: &mut Vec<Patch>,
    unknown: &mut usize,
) {
    let required = |col: usize| s.cols[col].def.as_ref().is_some_and(|d| d.required);
    // Only a required column's broken reference costs the row.
    let costs_row = |col: usize| required(col) && fk.on_missing == OnMissing::DropRow;
    let broken = looked.iter().find_map(|(c, _, l)| match l {
        Lookup::Missing(rule, _) if costs_row(*c) => Some(*rule),
        _ => None,
    });
    // (the optional column whose reference moves, its value, and why it moves)
    let moved: Option<(usize, String, Rule)> = broken.and_then(|rule| {
        looked
            .iter()
            .find(|(c, _, l)| !required(*c) && matches!(l, Lookup::Found))
            .map(|(c, v, _)| (*c, v.to_string(), rule))
    });
    for (col, v, l) in looked.drain(..) {
        match l {
            Lookup::Found => {
                if let Some((mc, _, rule)) = &moved {
                    if *mc == col {
                        out.push(Patch::Set {
                            row,
                            col,
                            new: String::new(),
                            rule: *rule,
                            removed: v.to_string(),
                            detail: format!("moved into {}", fk.column),
                        });
                    }
                }
            }
            Lookup::Unknown => *unknown += 1,
            Lookup::Missing(rule, why) if costs_row(col) => match &moved {
                Some((mc, mv, _)) => out.push(Patch::Set {
                    row,
                    col,
                    new: mv.clone(),
                    rule,
                    removed: v.to_string(),
                    detail: format!("{why}; {}'s `{mv}` takes its place", s.table.header[*mc]),
                }),
                None => {
                    out.push(Patch::Drop(row, rule, why));
                    return;
                }
            },
            Lookup::Missing(rule, why) => out.push(Patch::Set {
                row,
                col,
                new: String::new(),
                rule,
                removed: v.to_string(),
                detail: why,
            }),
        }
    }
}

/// Referential integrity to a fixpoint: re-checks a foreign key only when its target table
/// lost rows since the last check.
pub(super) fn integrity(ctx: &mut Ctx, tables: &mut [Work]) {
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
        // A user that lost its last role to this pass drops what refers to it in the next.
        if !progress && !users_keep_a_role(ctx, tables) {
            break;
        }
    }
}

/// OneRoster 1.2 serves a user with at least one role (`roles`, `minItems: 1`), as 1.1 serves
/// one with at least one org. Its CSV gives roles in roles.csv, and a user without a row there
/// takes its roles from its enrollments (`model::read`). So when roles.csv and enrollments.csv
/// are both bulk (every role and enrollment of the source is in them), a kept user with neither
/// a kept role nor a kept enrollment at a school is dropped, as a 1.1 user whose orgs all went:
/// `filtered` when each of its roles was, `unknown-reference` naming the first role that went
/// otherwise, `invalid-value` when it had none. A delta or absent file says nothing of what is
/// stored: then only a user whose rows in roles.csv were all filtered out (the source keeps
/// none of its roles) is dropped, and the store's cascade drops, after the batch, a user the
/// batch leaves without a role (`store::roles`). Returns whether it dropped any.
pub(super) fn users_keep_a_role(ctx: &mut Ctx, tables: &mut [Work]) -> bool {
    let (Some(ri), Some(ui)) = (pos(tables, "roles"), pos(tables, "users")) else {
        return false;
    };
    let ei = pos(tables, "enrollments");
    // Nothing to look at again unless a row of the three went since the last look.
    let epochs = [
        tables[ri].epoch,
        tables[ui].epoch,
        ei.map_or(0, |e| tables[e].epoch),
    ];
    if ctx.role_pass == Some(epochs) {
        return false;
    }
    ctx.role_pass = Some(epochs);
    let (roles, users) = (&tables[ri], &tables[ui]);
    let Some(uc) = roles.col("userSourcedId") else {
        return false;
    };
    // The users a kept role names, through the users' own index: most often every user, and
    // then nothing else is read.
    let mut has_role = vec![false; users.table.len()];
    for row in 0..roles.table.len() {
        if roles.is_kept(row) && !roles.is_deletion(row) {
            if let Some(u) = users.find(roles.value(row, uc).trim()) {
                has_role[u] = true;
            }
        }
    }
    let mut lacking: Map<&str, usize> = (0..users.table.len())
        .filter(|&r| !has_role[r] && users.is_kept(r) && !users.is_deletion(r))
        .map(|r| (users.id(r), r))
        .collect();
    if lacking.is_empty() {
        return false;
    }
    // Those a kept enrollment at a school gives a role.
    let enrollments = ei.map(|i| &tables[i]);
    if let Some(e) = enrollments {
        if let (Some(eu), Some(es)) = (e.col("userSourcedId"), e.col("schoolSourcedId")) {
            for row in 0..e.table.len() {
                if e.is_kept(row) && !e.is_deletion(row) && !e.value(row, es).trim().is_empty() {
                    lacking.remove(e.value(row, eu).trim());
                    if lacking.is_empty() {
                        return false;
                    }
                }
            }
        }
    }
    /// What roles.csv holds for one user that has no kept role.
    struct Held {
        /// The first of its rows (all dropped), and how many there are.
        first: usize,
        rows: usize,
        all_filtered: bool,
    }
    let mut held: Map<&str, Held> = Map::default();
    for row in 0..roles.table.len() {
        let user = roles.value(row, uc).trim();
        if roles.is_deletion(row) || !lacking.contains_key(user) {
            continue;
        }
        let filtered = roles.fate[row] == Some(Rule::Filtered);
        held.entry(user)
            .and_modify(|h| {
                h.rows += 1;
                h.all_filtered &= filtered;
            })
            .or_insert(Held {
                first: row,
                rows: 1,
                all_filtered: filtered,
            });
    }
    let all_known = roles.mode == Mode::Bulk && enrollments.is_some_and(|e| e.mode == Mode::Bulk);
    let mut drops: Vec<(usize, Rule, String)> = Vec::new();
    for (id, row) in lacking {
        let (rule, why) = match held.get(id) {
            Some(h) if all_known || h.all_filtered => {
                let more = match h.rows - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more)"),
                };
                let rule = if h.all_filtered {
                    Rule::Filtered
                } else {
                    Rule::UnknownReference
                };
                let why = format!(
                    "no role left: `{}` ({} line {}) was dropped: {}{more}",
                    roles.id(h.first),
                    roles.table.file,
                    roles.line(h.first),
                    roles.cause(h.first)
                );
                (rule, why)
            }
            None if all_known => (
                Rule::InvalidValue,
                format!(
                    "the user has no role in {} and no enrollment at a school \
                     (OneRoster 1.2 requires a role)",
                    roles.table.file
                ),
            ),
            _ => continue,
        };
        drops.push((row, rule, why));
    }
    // In file order, whatever order the map gave.
    drops.sort_unstable_by_key(|d| d.0);
    let w = &mut tables[ui];
    let dropped = !drops.is_empty();
    for (row, rule, why) in drops {
        drop_row(ctx, w, row, rule, "", why);
    }
    dropped
}
