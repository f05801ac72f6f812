//! One table at work: its rows' fates, sparse field overrides, the primary-key index, and
//! writing it back out as the modified CSV.

use super::*;

/// A column of the uploaded file, bound to the schema.
#[derive(Debug, Clone)]
pub(super) struct Bound {
    /// The schema column (numbered columns such as `location_id_7` get their base's
    /// definition, made optional).
    pub(super) def: Option<ColumnDef>,
}

/// One uploaded table in the pipeline.
#[derive(Debug)]
pub struct Work {
    pub def: TableDef,
    pub table: Table,
    pub mode: Mode,
    pub(super) cols: Vec<Bound>,
    pub(super) by_name: Map<&'static str, usize>,
    pub(super) pk: usize,
    pub(super) status: Option<usize>,
    /// Rows marked `status=tobedeleted`, worked out once; empty when there are none.
    pub(super) deletions: Vec<bool>,
    /// `None`: kept; `Some(rule)`: dropped by that rule.
    pub(super) fate: Vec<Option<Rule>>,
    /// Cleared and rewritten fields, by (row, column).
    pub(super) overrides: Map<(u32, u32), String>,
    /// The rows that have an override, a bit each: most rows have none, and one bit per row
    /// is cheaper to ask than the map per field.
    pub(super) override_rows: Vec<u64>,
    /// Rows already dropped when the table was indexed, by primary key: so that a reference to
    /// one names it and why it went, instead of saying the id is not in the file. Empty for a
    /// large table that nothing references ([`Work::duplicate_ids`] builds no index).
    pub(super) gone: HashTable<u32>,
    /// Why each dropped row went: its rule and the field (index into `cause_fields`).
    pub(super) causes: Map<u32, (Rule, u32)>,
    pub(super) cause_fields: Vec<String>,
    /// Apple: rows whose primary key has characters Apple's templates do not allow (found by
    /// the field checks, reported as a note).
    pub(super) odd_ids: Vec<u32>,
    /// Primary key -> first kept row with it; stores row numbers only and hashes the id
    /// text in place, so indexing costs no allocation per row.
    pub(super) index: HashTable<u32>,
    /// For referenced tables instead of `index`: slots that hold short keys inline, so a
    /// lookup that hits reads one slot rather than chasing the row's text.
    pub(super) lookup: HashTable<Slot>,
    pub(super) hasher: RandomState,
    /// The primary key column alone, trimmed, kept compact (referenced tables only).
    pub(super) keys: Keys,
    /// Findings of [`prepare`], merged by [`run`].
    pub(super) pre: Vec<Finding>,
    pub(super) prepared: bool,
    /// Bumped each time a row is dropped; lets the fixpoint skip unchanged targets.
    pub(super) epoch: u64,
}

impl Work {
    fn has_override(&self, row: usize) -> bool {
        self.override_rows
            .get(row / 64)
            .is_some_and(|bits| bits >> (row % 64) & 1 == 1)
    }
    /// Clears or rewrites one field of a row.
    pub(super) fn set_override(&mut self, row: usize, col: usize, new: String) {
        let i = row / 64;
        if self.override_rows.len() <= i {
            self.override_rows.resize(i + 1, 0);
        }
        self.override_rows[i] |= 1 << (row % 64);
        self.overrides.insert((row as u32, col as u32), new);
    }
    pub fn value(&self, row: usize, col: usize) -> &str {
        if self.has_override(row) {
            if let Some(v) = self.overrides.get(&(row as u32, col as u32)) {
                return v;
            }
        }
        self.table.field(row, col)
    }
    /// The values of a few columns of a row (as [`Work::value`] gives them), in one pass over
    /// the row up to the last of them, where asking `value` for each would walk the row from
    /// its start every time.
    pub(super) fn values_at<const N: usize>(&self, row: usize, cols: [usize; N]) -> [&str; N] {
        let mut out = [""; N];
        let last = cols.iter().copied().max().unwrap_or(0);
        for (c, v) in self.table.fields(row).enumerate().take(last + 1) {
            for (slot, &want) in out.iter_mut().zip(&cols) {
                if want == c {
                    *slot = v;
                }
            }
        }
        if self.has_override(row) {
            for (slot, &c) in out.iter_mut().zip(&cols) {
                if let Some(v) = self.overrides.get(&(row as u32, c as u32)) {
                    *slot = v;
                }
            }
        }
        out
    }
    /// Fills `out` with the row's values (cleared fields empty), in one pass over the row.
    pub fn row_values<'a>(&'a self, row: usize, out: &mut [&'a str]) {
        for (c, v) in self.table.fields(row).enumerate() {
            if let Some(slot) = out.get_mut(c) {
                *slot = v;
            }
        }
        if self.has_override(row) {
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
            self.table.field(row, self.pk).trimmed()
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
    pub(super) fn line(&self, row: usize) -> u32 {
        self.table.line(row)
    }

    /// The first kept row with primary key `id`, if any.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.find_hashed(self.hasher.hash_one(id), id)
    }

    /// [`Work::find`] of an id whose hash ([`Work::hash`]) is known.
    pub(super) fn find_hashed(&self, h: u64, id: &str) -> Option<usize> {
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
    pub(super) fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// A row that was already dropped when the table was indexed, with primary key `id`.
    pub(super) fn find_gone(&self, id: &str) -> Option<usize> {
        if self.gone.is_empty() {
            return None;
        }
        let h = self.hasher.hash_one(id);
        self.gone
            .find(h, |&r| self.id(r as usize) == id)
            .map(|&r| r as usize)
    }

    /// Why row `row` was dropped, in words: `enabledUser invalid`, `duplicate-id`.
    pub(super) fn cause(&self, row: usize) -> String {
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
    pub(super) fn build_index(&mut self, compact: bool) -> Vec<(usize, usize)> {
        let mut dups = Vec::new();
        let mut index: HashTable<u32> = HashTable::with_capacity(self.table.len());
        if compact && self.keys.ends.is_empty() {
            self.keys = Keys::of(&self.table, self.pk);
        }
        let (keys, table, pk, hasher) = (&self.keys, &self.table, self.pk, &self.hasher);
        let id = |r: u32| {
            if keys.ends.is_empty() {
                table.field(r as usize, pk).trimmed()
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

    /// The duplicates [`Work::build_index`] finds, the same pairs in the same order, for a
    /// table nobody looks up by key (so no index is kept), on every core: the keys are hashed
    /// with the rows split between the threads, then each thread takes the keys of its share
    /// of the hash space in row order. A key and all its repeats meet on one thread, so the
    /// first kept row is the one each repeat is paired with.
    pub(super) fn duplicate_ids(&self) -> Vec<(usize, usize)> {
        let n = self.table.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .clamp(1, 8);
        let id = |r: usize| self.id(r);
        // 32 bits of each kept row's key hash (4 bytes a row, not 8: this runs at the
        // check's peak of memory); dropped rows are skipped below.
        let step = n.div_ceil(threads).max(1);
        let ranges: Vec<std::ops::Range<usize>> =
            (0..n).step_by(step).map(|a| a..(a + step).min(n)).collect();
        let order: Vec<usize> = (0..ranges.len()).collect();
        let hashes: Vec<u32> = crate::roster::par::parallel_map(&ranges, &order, |rows| {
            rows.clone()
                .map(|r| (self.hasher.hash_one(id(r)) >> 32) as u32)
                .collect::<Vec<u32>>()
        })
        .concat();
        // The table's hash of a 32-bit hash: spread over 64 bits for the table's probe and
        // tag bits.
        let spread = |h: u32| u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shares: Vec<u64> = (0..threads as u64).collect();
        let order: Vec<usize> = (0..shares.len()).collect();
        let mut dups: Vec<(usize, usize)> =
            crate::roster::par::parallel_map(&shares, &order, |&share| {
                let mut seen: HashTable<u32> = HashTable::with_capacity(n / threads + 1);
                let mut dups = Vec::new();
                for (row, &h) in hashes.iter().enumerate() {
                    if (u64::from(h) * threads as u64) >> 32 != share || self.fate[row].is_some() {
                        continue;
                    }
                    let same = |&r: &u32| hashes[r as usize] == h && id(r as usize) == id(row);
                    match seen.entry(spread(h), same, |&r| spread(hashes[r as usize])) {
                        hashbrown::hash_table::Entry::Occupied(e) => {
                            dups.push((row, *e.get() as usize))
                        }
                        hashbrown::hash_table::Entry::Vacant(e) => {
                            e.insert(row as u32);
                        }
                    }
                }
                dups
            })
            .concat();
        dups.sort_unstable();
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
pub(super) const INDEX_BLOCK: usize = 64;

/// An index slot: the row and, when it fits, the key itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) key: [u8; Slot::INLINE],
    /// Key length, or `u8::MAX` when the key is too long to be inline.
    pub(super) len: u8,
    pub(super) row: u32,
}

impl Slot {
    pub(super) const INLINE: usize = 11;
    pub(super) fn new(key: &str, row: u32) -> Slot {
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
    pub(super) fn matches<'a>(&self, id: &str, stored: impl FnOnce() -> &'a str) -> bool {
        if self.len == u8::MAX {
            id.len() > Slot::INLINE && stored() == id
        } else {
            usize::from(self.len) == id.len() && &self.key[..id.len()] == id.as_bytes()
        }
    }
}

/// One column's values, back to back.
#[derive(Debug, Default)]
pub(super) struct Keys {
    pub(super) data: String,
    pub(super) ends: Vec<u32>,
}

impl Keys {
    pub(super) fn of(t: &Table, col: usize) -> Keys {
        let mut k = Keys {
            data: String::new(),
            ends: Vec::with_capacity(t.len()),
        };
        for row in 0..t.len() {
            k.data.push_str(t.field(row, col).trimmed());
            k.ends.push(k.data.len() as u32);
        }
        k.data.shrink_to_fit();
        k
    }
    pub(super) fn get(&self, row: usize) -> &str {
        let start = if row == 0 {
            0
        } else {
            self.ends[row - 1] as usize
        };
        &self.data[start..self.ends[row] as usize]
    }
}
