//! The source's filters (schools, terms, roles) and ids shared across tables (an Apple
//! person_id in both students and staff).

use super::*;

/// Tables of one `pk_group` (Apple students and staff) share a key space: a key already used
/// by an earlier table of the group is a duplicate.
pub(super) fn shared_key_duplicates(ctx: &mut Ctx, tables: &mut [Work]) {
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

pub(super) fn apply_filters(ctx: &mut Ctx, tables: &mut [Work]) {
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
            // 1.2: a user all of whose roles.csv rows are filtered out goes with them
            // (`integrity::users_keep_a_role`).
            for name in ["users", "roles", "enrollments"] {
                let Some(i) = pos(tables, name) else { continue };
                let w = &mut tables[i];
                let Some(rc) = w.col("role") else { continue };
                for row in 0..w.table.len() {
                    if w.fate[row].is_some() || w.is_deletion(row) {
                        continue;
                    }
                    let r = w.value(row, rc).to_string();
                    if !keep(&r) {
                        drop_row(ctx, w, row, Rule::Filtered, "role", d(&r));
                    }
                }
            }
        }
    }
}
