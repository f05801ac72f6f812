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
            let at = buf.len();
            buf.push_str(part);
            buf[at..].make_ascii_lowercase();
        } else {
            buf.extend(part.chars().flat_map(char::to_lowercase));
        }
    }
    true
}

/// Persons of one range of a person table's rows, as the duplicate-account check sees them:
/// worked out on every core, then taken in row order by [`duplicate_accounts`].
#[derive(Default)]
struct PersonRange {
    /// Index into `people`.
    person_table: usize,
    /// The persons' keys, one after the other.
    keys: String,
    seen: Vec<Seen>,
}

/// A row with a duplicate-account key.
struct Seen {
    row: u32,
    hash: u64,
    key: std::ops::Range<usize>,
    /// What the store holds under the key: nobody, this id, or another id.
    stored: Stored,
}

#[derive(Clone, Copy, PartialEq)]
enum Stored {
    Nobody,
    Same,
    Other,
}

/// Rows per range of a person table worked out on its own thread.
const PERSON_RANGE_ROWS: usize = 50_000;

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
    let hasher = RandomState::default();
    // Each row's key, its hash and what the store says of it do not depend on the other
    // rows: they are worked out on every core, a range of rows at a time.
    let ranges: Vec<(usize, std::ops::Range<usize>)> = people
        .iter()
        .enumerate()
        .flat_map(|(pi, &(t, _, _))| {
            let n = tables[t].table.len();
            (0..n)
                .step_by(PERSON_RANGE_ROWS)
                .map(move |a| (pi, a..(a + PERSON_RANGE_ROWS).min(n)))
        })
        .collect();
    let ext = ctx.ext;
    let order: Vec<usize> = (0..ranges.len()).collect();
    let shares: Vec<PersonRange> = {
        let tables = &*tables;
        crate::roster::par::parallel_map(&ranges, &order, |(pi, rows)| {
            let (t, cols, _) = people[*pi];
            let w = &tables[t];
            let mut out = PersonRange {
                person_table: *pi,
                ..PersonRange::default()
            };
            let mut key = String::new();
            for row in rows.clone() {
                if w.fate[row].is_some() || w.is_deletion(row) {
                    continue;
                }
                let [first, last, email] = w.values_at(row, cols);
                if !person_key_into(&mut key, first, last, email) {
                    continue;
                }
                let stored = match ext.person_with_key(&key) {
                    None => Stored::Nobody,
                    Some(id) if id == w.id(row) => Stored::Same,
                    Some(_) => Stored::Other,
                };
                let at = out.keys.len();
                out.keys.push_str(&key);
                out.seen.push(Seen {
                    row: row as u32,
                    hash: hasher.hash_one(&key),
                    key: at..out.keys.len(),
                    stored,
                });
            }
            out
        })
    };
    let key_of = |(sh, i): (u32, u32)| -> &str {
        let share = &shares[sh as usize];
        share
            .seen
            .get(i as usize)
            .and_then(|s| share.keys.get(s.key.clone()))
            .unwrap_or_default()
    };
    let hash_of = |(sh, i): (u32, u32)| shares[sh as usize].seen[i as usize].hash;
    // First person seen per key, as (share, index in it), taken in row order.
    let total: usize = shares.iter().map(|s| s.seen.len()).sum();
    let mut first: HashTable<(u32, u32)> = HashTable::with_capacity(total);
    for (sh, share) in shares.iter().enumerate() {
        let (t, _, email_col) = people[share.person_table];
        for (i, seen) in share.seen.iter().enumerate() {
            let row = seen.row as usize;
            let key = key_of((sh as u32, i as u32));
            let id = tables[t].id(row);
            match seen.stored {
                Stored::Same => continue,
                Stored::Other => {
                    let stored = ext.person_with_key(key).unwrap_or_default();
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
                    continue;
                }
                Stored::Nobody => {}
            }
            match first.find(seen.hash, |&e| key_of(e) == key) {
                Some(&(sh2, i2)) => {
                    let other = &shares[sh2 as usize];
                    let w2 = &tables[people[other.person_table].0];
                    let r = other.seen[i2 as usize].row as usize;
                    if w2.id(r) == id {
                        continue;
                    }
                    let d = format!(
                        "same first name, last name and email as `{}` ({} line {})",
                        w2.id(r),
                        w2.table.file,
                        w2.line(r)
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
                    first.insert_unique(seen.hash, (sh as u32, i as u32), |&e| hash_of(e));
                }
            }
        }
    }
}
