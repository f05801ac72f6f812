//! Read views of the store: what the engine sees of a source while checking its batch, and
//! the text of `history`, `show` and `status` and of the commit section of `summary.txt`.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;

use super::*;
use crate::roster::engine::StoredPerson;

impl Store {
    /// The source's last applied batch: what its roster is now (`None`: no roster yet).
    pub fn last_applied(&self, source: &str) -> Result<Option<u64>> {
        Ok(self.state(source)?.last_applied)
    }

    /// What the engine may ask the store while checking a batch of `source`. The stored
    /// persons are read on first use, or ahead of it by [`StoreView::load_persons`] on
    /// another thread while the bundle is parsed.
    pub fn view<'a>(&'a self, source: &'a str) -> Result<StoreView<'a>> {
        let state = self.state(source)?;
        let schema = state
            .format
            .as_deref()
            .and_then(Format::from_label)
            .map(Schema::for_format);
        Ok(StoreView {
            store: self,
            source,
            persons: std::sync::OnceLock::new(),
            asked: std::sync::Mutex::new(Asked::NotYet),
            told: std::sync::Condvar::new(),
            buckets: state.buckets,
            schema,
        })
    }

    /// The stored persons of the source's person tables named in `only` (all of them when
    /// `None`) by duplicate-account key: the id first in key order per key, per table in
    /// schema order.
    fn persons(
        &self,
        source: &str,
        schema: Option<&Schema>,
        only: Option<&[&str]>,
    ) -> Result<Persons> {
        let mut persons = Persons::default();
        let tables = schema.map_or(&[][..], |s| &s.tables[..]);
        let mut key = String::new();
        for (table, t) in tables.iter().enumerate() {
            let Some(p) = t.person else { continue };
            if only.is_some_and(|o| !o.contains(&t.name)) {
                continue;
            }
            // Read in page order, borrowed: the first id in key order is kept per person,
            // as a walk in key order would keep it.
            self.each_page(source, t.name, &mut |raw| {
                visit_raw_page_columns(
                    raw,
                    [p.first, p.last, p.email],
                    &mut |k, [given, family, email]| {
                        if crate::roster::engine::person_key_into(&mut key, given, family, email) {
                            // The record's key: the trimmed id the engine compares uploaded
                            // ids with (the id field keeps its spaces when normalisation is
                            // off).
                            persons.add(table, &key, &String::from_utf8_lossy(k));
                        }
                    },
                )
            })?;
        }
        Ok(persons)
    }
}

/// Stored persons by duplicate-account key -> id. The keys and ids are kept in one text and
/// found through a table of entries hashed as the engine's own maps are (a randomly seeded
/// foldhash: the engine asks once per uploaded person), so a store of 200,000 persons is
/// two allocations, not 400,000.
#[derive(Default)]
struct Persons {
    /// Each entry's key then id.
    text: String,
    entries: Vec<Person>,
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

/// One stored person: `text[start..key_end]` is the key, `text[key_end..end]` the id.
struct Person {
    start: usize,
    key_end: usize,
    end: usize,
    /// Index of the person's table in the schema.
    table: usize,
}

impl Persons {
    fn key(&self, p: &Person) -> &str {
        self.text.get(p.start..p.key_end).unwrap_or_default()
    }
    fn id(&self, p: &Person) -> &str {
        self.text.get(p.key_end..p.end).unwrap_or_default()
    }

    /// Adds a person of the schema's `table`: an earlier table's person with the same key
    /// wins, and within a table the id first in key order.
    fn add(&mut self, table: usize, key: &str, id: &str) {
        let h = self.hasher.hash_one(key);
        let Self {
            text,
            entries,
            index,
            ..
        } = self;
        let found = index.find_mut(h, |&e| {
            let p = &entries[e as usize];
            text.get(p.start..p.key_end) == Some(key)
        });
        if let Some(e) = &found {
            let p = &entries[**e as usize];
            if p.table != table || text.get(p.key_end..p.end).is_some_and(|old| old <= id) {
                return;
            }
        }
        let Ok(n) = u32::try_from(entries.len()) else {
            // More than four billion persons: the later ones are not looked up.
            return;
        };
        let start = text.len();
        text.push_str(key);
        let key_end = text.len();
        text.push_str(id);
        entries.push(Person {
            start,
            key_end,
            end: text.len(),
            table,
        });
        match found {
            // A smaller id of the same table: the entry now points at the new copy.
            Some(e) => *e = n,
            None => {
                let hasher = &self.hasher;
                index.insert_unique(h, n, |&e| {
                    let p = &entries[e as usize];
                    hasher.hash_one(text.get(p.start..p.key_end).unwrap_or_default())
                });
            }
        }
    }

    /// The person with this key: its table's index in the schema and its id.
    fn get(&self, key: &str) -> Option<(usize, &str)> {
        let h = self.hasher.hash_one(key);
        let e = self
            .index
            .find(h, |&e| self.key(&self.entries[e as usize]) == key)?;
        let p = &self.entries[*e as usize];
        Some((p.table, self.id(p)))
    }
}

/// The store as the engine sees it while checking one source's batch.
pub struct StoreView<'a> {
    store: &'a Store,
    source: &'a str,
    persons: std::sync::OnceLock<Result<Persons>>,
    /// Which person tables the check will ask about ([`External::persons_asked`]).
    asked: std::sync::Mutex<Asked>,
    told: std::sync::Condvar,
    buckets: BTreeMap<String, u32>,
    /// The schema of the source's stored format (`None`: nothing stored yet).
    schema: Option<Schema>,
}

/// See [`StoreView::checking`].
pub struct Checking<'v>(&'v std::sync::Mutex<Asked>, &'v std::sync::Condvar);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        let mut asked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*asked, Asked::NotYet) {
            *asked = Asked::Never;
        }
        self.1.notify_all();
    }
}

/// What the check said of the person tables it will ask about.
enum Asked {
    NotYet,
    Tables(Vec<&'static str>),
    /// The check ended without saying.
    Never,
}

impl StoreView<'_> {
    /// Reads the stored persons the check will ask about, once it has said which (before
    /// it parses the bundle): call it on a thread of its own beside the check, and
    /// [`StoreView::checked`] when the check returns. Reads nothing when the check asks
    /// about no table (every person file uploaded whole) or ends without saying.
    pub fn load_persons(&self) {
        let tables = {
            let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
            while matches!(*asked, Asked::NotYet) {
                asked = self.told.wait(asked).unwrap_or_else(|p| p.into_inner());
            }
            match &*asked {
                Asked::Tables(t) if !t.is_empty() => t.clone(),
                _ => return,
            }
        };
        self.persons.get_or_init(|| {
            self.store
                .persons(self.source, self.schema.as_ref(), Some(&tables))
        });
    }

    /// A guard to hold while the check runs: when it goes (the check returned, or
    /// panicked), [`StoreView::load_persons`] stops waiting for the check to say.
    pub fn checking(&self) -> Checking<'_> {
        Checking(&self.asked, &self.told)
    }

    /// Ends the view: an error reading the stored persons, if there was one (the check that
    /// used the view is then void).
    pub fn finish(self) -> Result<()> {
        match self.persons.into_inner() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

impl External for StoreView<'_> {
    fn has_id(&self, table: &str, id: &str) -> Option<bool> {
        let Some(&b) = self.buckets.get(table) else {
            return Some(false);
        };
        let k = k_page(self.source, table, bucket_of(id.as_bytes(), b));
        let page = self.store.load_page(&k).ok()?;
        Some(
            page.binary_search_by(|(k, _)| k.as_slice().cmp(id.as_bytes()))
                .is_ok(),
        )
    }
    fn person_with_key(&self, key: &str) -> Option<StoredPerson<'_>> {
        let persons = self.persons.get_or_init(|| {
            let asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
            let only = match &*asked {
                Asked::Tables(t) => Some(t.clone()),
                _ => None,
            };
            drop(asked);
            self.store
                .persons(self.source, self.schema.as_ref(), only.as_deref())
        });
        let (table, id) = persons.as_ref().ok()?.get(key)?;
        Some(StoredPerson {
            table: self.schema.as_ref()?.tables.get(table)?.name,
            id,
        })
    }
    fn person_key_of(&self, table: &str, id: &str) -> Option<String> {
        let p = self.schema.as_ref()?.table(table)?.person?;
        let &b = self.buckets.get(table)?;
        let page = self
            .store
            .load_page(&k_page(self.source, table, bucket_of(id.as_bytes(), b)))
            .ok()?;
        let i = page
            .binary_search_by(|(k, _)| k.as_slice().cmp(id.as_bytes()))
            .ok()?;
        let fields = row_fields(&page[i].1)?;
        let value = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| *v)
        };
        crate::roster::engine::person_key(value(p.first), value(p.last), value(p.email))
    }
    fn persons_asked(&self, tables: &[&'static str]) {
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*asked, Asked::NotYet) {
            *asked = Asked::Tables(tables.to_vec());
        }
        self.told.notify_all();
    }
}

/// The line the CLI prints after a compaction.
pub fn compacted_text(c: &Compacted) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    if c.swapped {
        format!(
            "Store compacted: {:.1} MiB -> {:.1} MiB on disk",
            mib(c.before),
            mib(c.after)
        )
    } else {
        format!(
            "Store not compacted: a fresh copy was no smaller than its {:.1} MiB",
            mib(c.before)
        )
    }
}

pub fn fmt_time(secs: u64) -> String {
    let d = crate::roster::values::Date::from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{d} {:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// The first line of a batch's reason, cut to fit a table row (`show` has it whole).
fn short_reason(b: &Batch) -> String {
    let Some(r) = &b.reason else {
        return String::new();
    };
    let line = r.lines().next().unwrap_or("");
    let line = crate::roster::text::escape_line(line);
    const MAX: usize = 70;
    if line.chars().count() > MAX {
        let cut: String = line.chars().take(MAX - 3).collect();
        format!("{cut}...")
    } else {
        line.into_owned()
    }
}

fn batch_line(out: &mut String, b: &Batch) {
    let (a, u, d) = b.totals();
    let patches: u64 = b.patches.values().sum();
    let reason = match b.state {
        BatchState::Rejected | BatchState::Held | BatchState::Failed => short_reason(b),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{:>6}  {}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>7}ms  {}",
        b.id,
        fmt_time(b.received_at),
        b.source,
        b.account,
        if b.format.is_empty() { "-" } else { &b.format },
        b.state.label(),
        a,
        u,
        d,
        patches,
        b.duration_ms,
        reason
    );
    // No trailing spaces on rows without a reason.
    if reason.is_empty() {
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    }
}

pub fn history_text(batches: &[Batch]) -> String {
    let mut out = format!(
        "{:>6}  {:<20}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
        "batch",
        "received",
        "source",
        "account",
        "format",
        "state",
        "adds",
        "updates",
        "deletes",
        "patches",
        "duration"
    );
    let header_end = out.trim_end().len();
    out.truncate(header_end);
    out.push_str("  reason\n");
    for b in batches {
        batch_line(&mut out, b);
    }
    out
}

pub fn show_text(b: &Batch) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "batch {}  source {}  account {}",
        b.id, b.source, b.account
    );
    let _ = writeln!(
        out,
        "received {}  took {} ms",
        fmt_time(b.received_at),
        b.duration_ms
    );
    let _ = writeln!(
        out,
        "format {} ({})  state {}",
        b.format,
        b.mode,
        b.state.label()
    );
    let _ = writeln!(
        out,
        "content sha256 {}",
        match (b.content_hash.is_empty(), b.rollback_of) {
            (false, _) => b.content_hash.as_str(),
            (true, Some(_)) => "- (rolled back to the empty roster)",
            (true, None) => "- (the upload was never read)",
        }
    );
    if let Some(r) = &b.rollback_of {
        let _ = writeln!(out, "rollback of batch {r}");
    }
    for d in b.decisions() {
        let _ = writeln!(out, "decided {}", d.text());
    }
    out.push_str(&crate::store::views::commit_text(b));
    if b.bytes_written > 0 || b.bytes_stored > 0 {
        let _ = writeln!(
            out,
            "disk: wrote {} bytes of records; the source's records take {} bytes",
            b.bytes_written, b.bytes_stored
        );
    }
    if !b.patches.is_empty() {
        out.push_str("patches:\n");
        for (r, n) in &b.patches {
            let _ = writeln!(out, "  {r:<20} {n}");
        }
    }
    if let Some(d) = &b.report_dir {
        // Only what this batch really has: a rejected batch has no modified files.
        let dir = Path::new(d);
        let present: Vec<&str> = [
            "summary.txt",
            "patch-summary.csv",
            "modified/",
            "modified.zip",
        ]
        .into_iter()
        .filter(|f| dir.join(f.trim_end_matches('/')).exists())
        .collect();
        if present.is_empty() {
            let _ = writeln!(out, "reports: none were written");
        } else {
            let _ = writeln!(out, "reports: {d}/ ({})", present.join(", "));
        }
    }
    out
}

/// The last batch of every source, one line each.
pub fn last_batches_text(store: &Store) -> Result<String> {
    let mut seen = std::collections::BTreeMap::new();
    for b in store.history(None)? {
        seen.entry(b.source.clone()).or_insert(b);
    }
    let mut out = String::new();
    if seen.is_empty() {
        out.push_str("no batches yet\n");
    }
    for b in seen.values() {
        let (a, u, d) = b.totals();
        let _ = writeln!(
            out,
            "source {:<16} last batch {:>6} {:<11} {}  +{a} ~{u} -{d}",
            b.source,
            b.id,
            b.state.label(),
            fmt_time(b.received_at)
        );
    }
    Ok(out)
}

/// The closing section of `summary.txt`: what was committed.
pub fn commit_text(b: &Batch) -> String {
    let (a, u, d) = b.totals();
    let mut s = format!(
        "\nBatch {} ({}): {}. {} added, {} updated, {} deleted.\n",
        b.id,
        b.source,
        b.state.label().to_uppercase(),
        a,
        u,
        d
    );
    for (t, c) in &b.tables {
        s.push_str(&format!(
            "  {t:<20} before {:>8}  +{:<8} ~{:<8} -{:<8} pages {:<6}{}\n",
            c.before,
            c.adds,
            c.updates,
            c.deletes,
            c.pages_written,
            if c.stale > 0 {
                format!(" ({} stale delta rows skipped)", c.stale)
            } else {
                String::new()
            }
        ));
    }
    if let Some(r) = &b.reason {
        s.push_str(&format!("  {r}\n"));
    }
    if b.state == BatchState::Held {
        s.push_str(&format!(
            "  to apply it: rosterdrop approve {id}; to drop it: rosterdrop discard {id}\n",
            id = b.id
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_persons_keep_the_earlier_table_then_the_smaller_id() {
        let mut p = Persons::default();
        p.add(1, "ana", "S9");
        p.add(1, "ana", "S2"); // smaller id, same table: replaces
        p.add(1, "ana", "S5"); // larger: ignored
        p.add(3, "ana", "T1"); // later table: ignored, whatever its id
        p.add(3, "ben", "T7");
        p.add(1, "cy", "S3");
        p.add(3, "cy", "A0");
        assert_eq!(p.get("ana"), Some((1, "S2")));
        assert_eq!(p.get("ben"), Some((3, "T7")));
        assert_eq!(p.get("cy"), Some((1, "S3")));
        assert_eq!(p.get("dee"), None);
        assert_eq!(p.get(""), None);
        // Many keys: the table grows and every key is still found with its id.
        for i in 0..10_000 {
            p.add(5, &format!("k{i}"), &format!("id{i}"));
        }
        for i in (0..10_000).step_by(7) {
            assert_eq!(
                p.get(&format!("k{i}")),
                Some((5, format!("id{i}").as_str()))
            );
        }
        assert_eq!(p.get("ana"), Some((1, "S2")));
    }
}
