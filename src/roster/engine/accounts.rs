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
    /// What the store will hold under the key after the batch, apart from the bundle's own
    /// rows: nobody, this row's person, or another person.
    stored: Stored,
}

#[derive(Clone, Copy, PartialEq)]
enum Stored {
    Nobody,
    Same,
    Other,
}

/// The persons of the bundle with one key, when no stored person outside the bundle has it.
struct Group {
    /// The person kept, as (share, index in it): the first in row order, unless one of them
    /// is already stored under the key.
    kept: (u32, u32),
    members: u32,
    /// `kept` is the person stored under the key.
    stored: bool,
}

/// Rows per range of a person table worked out on its own thread.
const PERSON_RANGE_ROWS: usize = 50_000;

/// The person tables of the bundle and their (first, last, email) columns.
type People = Vec<(usize, [usize; 3], &'static str)>;

/// The person tables whose stored persons matter to a bundle: those it does not upload whole.
/// A bulk file replaces its table's stored persons with its own rows, so a stored person
/// the file leaves out is gone after the batch and holds no key against anyone.
pub fn persons_asked(schema: &Schema, bulk: &[&str]) -> Vec<&'static str> {
    schema
        .tables
        .iter()
        .filter(|t| t.person.is_some() && !bulk.contains(&t.name))
        .map(|t| t.name)
        .collect()
}

/// What the store holds under `key` for the row `row` of `tables[t]` after the batch: a
/// stored person counts only if the batch leaves it there under that key (its table is not
/// uploaded whole, and a delta row neither deletes it nor gives it another key).
fn stored_under(
    ext: &dyn External,
    tables: &[Work],
    people: &People,
    key: &str,
    t: usize,
    row: usize,
) -> Stored {
    let Some(p) = ext.person_with_key(key) else {
        return Stored::Nobody;
    };
    let found = people
        .iter()
        .find(|(i, _, _)| tables[*i].def.name == p.table);
    if found.is_some_and(|&(pt, _, _)| tables[pt].mode == Mode::Bulk) {
        // Replaced by the file's own rows, which are grouped below.
        return Stored::Nobody;
    }
    let w = &tables[t];
    if p.table == w.def.name && p.id == w.id(row) {
        return Stored::Same;
    }
    let Some(&(pt, cols, _)) = found else {
        // Its table is not in the bundle: the person stays as stored.
        return Stored::Other;
    };
    let pw = &tables[pt];
    match pw.find(p.id).filter(|&r| pw.is_kept(r)) {
        None => Stored::Other,
        Some(r) if pw.is_deletion(r) => Stored::Nobody,
        Some(r) => {
            let [first, last, email] = pw.values_at(r, cols);
            if person_key(first, last, email).as_deref() == Some(key) {
                Stored::Other
            } else {
                Stored::Nobody
            }
        }
    }
}

pub(super) fn duplicate_accounts(ctx: &mut Ctx, tables: &mut [Work]) {
    let people: People = tables
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
        let people = &people;
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
                let stored = stored_under(ext, tables, people, &key, t, row);
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
    let seen_at = |(sh, i): (u32, u32)| &shares[sh as usize].seen[i as usize];
    let table_of = |sh: u32| people[shares[sh as usize].person_table].0;
    // Nearly always nobody is stored under anyone's key and no two persons of the bundle
    // share one: that is found first, with one table of keys, and is the end of it.
    let others = shares
        .iter()
        .any(|sh| sh.seen.iter().any(|s| s.stored == Stored::Other));
    let total: usize = shares.iter().map(|s| s.seen.len()).sum();
    if !others {
        let mut by_key: HashTable<(u32, u32)> = HashTable::with_capacity(total);
        let shared = shares.iter().enumerate().any(|(sh, share)| {
            share.seen.iter().enumerate().any(|(i, seen)| {
                if seen.stored != Stored::Nobody {
                    return false;
                }
                let at = (sh as u32, i as u32);
                let key = key_of(at);
                if by_key.find(seen.hash, |&e| key_of(e) == key).is_some() {
                    return true;
                }
                by_key.insert_unique(seen.hash, at, |&e| seen_at(e).hash);
                false
            })
        });
        if !shared {
            return;
        }
    }
    // The bundle's persons grouped by key, in row order; each seen person's group.
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: Vec<Vec<u32>> = shares
        .iter()
        .map(|s| vec![u32::MAX; s.seen.len()])
        .collect();
    {
        // (share, index) of each group's first person, and the group.
        let mut by_key: HashTable<(u32, u32, u32)> = HashTable::with_capacity(total);
        for (sh, share) in shares.iter().enumerate() {
            for (i, seen) in share.seen.iter().enumerate() {
                if seen.stored != Stored::Nobody {
                    continue;
                }
                let at = (sh as u32, i as u32);
                let key = key_of(at);
                let g = match by_key.find(seen.hash, |&(s2, i2, _)| key_of((s2, i2)) == key) {
                    Some(&(_, _, g)) => {
                        groups[g as usize].members += 1;
                        g
                    }
                    None => {
                        let g = groups.len() as u32;
                        groups.push(Group {
                            kept: at,
                            members: 1,
                            stored: false,
                        });
                        by_key.insert_unique(seen.hash, (at.0, at.1, g), |&(s2, i2, _)| {
                            seen_at((s2, i2)).hash
                        });
                        g
                    }
                };
                group_of[sh][i] = g;
            }
        }
    }
    // In a group of several, the one already stored under the key is kept (the first in
    // schema order, then by id, as the store's own persons are taken). Only a bulk file's
    // rows are asked: a person of another file stored under the key is `Same` above.
    if groups.iter().any(|g| g.members > 1) {
        let mut best: Vec<Option<(usize, u32, u32)>> = vec![None; groups.len()];
        for (sh, share) in shares.iter().enumerate() {
            let t = table_of(sh as u32);
            let w = &tables[t];
            if w.mode != Mode::Bulk {
                continue;
            }
            for (i, seen) in share.seen.iter().enumerate() {
                let g = group_of[sh][i];
                if g == u32::MAX || groups[g as usize].members < 2 {
                    continue;
                }
                let id = w.id(seen.row as usize);
                let key = key_of((sh as u32, i as u32));
                if ext.person_key_of(w.def.name, id).as_deref() != Some(key) {
                    continue;
                }
                let better = match best[g as usize] {
                    None => true,
                    Some((bt, bsh, bi)) => {
                        let bid = tables[bt].id(seen_at((bsh, bi)).row as usize);
                        (t, id) < (bt, bid)
                    }
                };
                if better {
                    best[g as usize] = Some((t, sh as u32, i as u32));
                }
            }
        }
        for (g, b) in groups.iter_mut().zip(best) {
            if let Some((_, sh, i)) = b {
                g.kept = (sh, i);
                g.stored = true;
            }
        }
    }
    // Everyone else with a kept person's key is dropped, in row order.
    for (sh, share) in shares.iter().enumerate() {
        let (t, _, email_col) = people[share.person_table];
        for (i, seen) in share.seen.iter().enumerate() {
            let row = seen.row as usize;
            let key = key_of((sh as u32, i as u32));
            let detail = match seen.stored {
                Stored::Same => continue,
                Stored::Other => {
                    let stored = ext.person_with_key(key).map_or("", |p| p.id);
                    format!("same first name, last name and email as stored person `{stored}`")
                }
                Stored::Nobody => {
                    let g = &groups[group_of[sh][i] as usize];
                    if g.kept == (sh as u32, i as u32) {
                        continue;
                    }
                    let w2 = &tables[table_of(g.kept.0)];
                    let r = seen_at(g.kept).row as usize;
                    if w2.id(r) == tables[t].id(row) {
                        continue;
                    }
                    if g.stored {
                        format!(
                            "same first name, last name and email as stored person `{}`",
                            w2.id(r)
                        )
                    } else {
                        format!(
                            "same first name, last name and email as `{}` ({} line {})",
                            w2.id(r),
                            w2.table.file,
                            w2.line(r)
                        )
                    }
                }
            };
            drop_row(
                ctx,
                &mut tables[t],
                row,
                Rule::DuplicateAccount,
                email_col,
                detail,
            );
        }
    }
}
