//! Binding an uploaded header to its schema table (case, spaces and underscores ignored, any
//! order, numbered columns, extras kept), and the notes about its columns.

use super::*;

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
        // An unnamed column (`column_notes` says so) binds to nothing and may repeat.
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
        override_rows: Vec::new(),
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

/// Notes on a table's columns that are not read as the format's: columns beyond a numbered
/// family's last member (Apple reads `instructor_id` to `instructor_id_15`), columns the
/// format does not have (with "did you mean" when a known column is within two edits), and, for
/// Apple, primary keys with characters Apple's templates do not allow.
pub(super) fn column_notes(format: Format, w: &Work) -> Vec<String> {
    let mut notes = Vec::new();
    let file = &w.table.file;
    let mut unknown: Vec<String> = Vec::new();
    let mut unnamed: Vec<String> = Vec::new();
    for (i, h) in w.table.header.iter().enumerate() {
        if crate::roster::text::is_unnamed(h) {
            unnamed.push((i + 1).to_string());
            continue;
        }
        // `metadata.*` is OneRoster's own way of carrying extension columns.
        if w.cols.get(i).is_some_and(|b| b.def.is_some())
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
    if !unnamed.is_empty() {
        notes.push(format!(
            "{file}: column(s) {} have no name in the header: their values are kept in \
             modified/ but are not part of the roster (the store, exports and the API leave \
             them out)",
            unnamed.join(", ")
        ));
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
pub(super) fn apple_id(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
