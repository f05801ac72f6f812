//! Duplicate accounts: one person (name and email) under two ids, in the bundle or against
//! the store.

use super::*;

/// The duplicate-account key: first name, last name and email, trimmed and case-folded.
/// `None` when the email is empty.
pub fn person_key(first: &str, last: &str, email: &str) -> Option<String> {
    let mut k = String::new();
    person_key_into(&mut k, first, last, email).then_some(k)
}

/// Writes the duplicate-account key of a person into `buf` (cleared first); false when the
/// email is empty.
pub fn person_key_into(buf: &mut String, first: &str, last: &str, email: &str) -> bool {
    buf.clear();
    let email = email.trimmed();
    if email.is_empty() {
        return false;
    }
    for (i, part) in [first.trimmed(), last.trimmed(), email]
        .into_iter()
        .enumerate()
    {
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

pub(super) fn duplicate_accounts(ctx: &mut Ctx, tables: &mut [Work]) {
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
        let [first, last, email] = tables[t].values_at(row, *cols);
        person_key_into(buf, first, last, email)
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
