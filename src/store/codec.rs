//! The on-disk format, version 2: keys, record and page encodings, change sets; and what
//! the migration from version 1 reads of the old one ([`v1`]).
//! A change here is a migration: the byte-exact tests in `format_v2` pin it.

use super::*;
pub(super) use crate::roster::text::{shared_prefix, sort_word};

/// Version of the key and value encodings below; a later release migrates older stores.
pub const FORMAT_VERSION: u32 = 4;

// ---- keys -------------------------------------------------------------------------------

pub(super) fn k_state(source: &str) -> Vec<u8> {
    [b"s\0", source.as_bytes()].concat()
}
pub(super) fn k_records(source: &str, table: &str) -> Vec<u8> {
    [b"r\0", source.as_bytes(), b"\0", table.as_bytes(), b"\0"].concat()
}
pub(super) fn k_page(source: &str, table: &str, bucket: u32) -> Vec<u8> {
    [k_records(source, table).as_slice(), &bucket.to_be_bytes()].concat()
}

/// Records per page that a table's bucket count aims at: a page holds 8 to 16 records while a
/// table's bucket count is freshly chosen, so a change of 1% of records spread over a table
/// rewrites about 9% of its pages (format 1's 256 rewrote about all of them). Measured on the
/// 200,000-student district: 8 rewrote 4.7% but made the store 186 MiB and the first ingest
/// twice as slow (sled's cost per key); 32 rewrote 17%.
pub(super) const PAGE_TARGET: usize = 16;

/// FNV-1a: a fixed hash, so that a record's page never depends on the process.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn bucket_of(pk: &[u8], buckets: u32) -> u32 {
    (fnv1a(pk) & u64::from(buckets.max(1) - 1)) as u32
}

/// The bucket count for a table of `rows` records.
pub(super) fn buckets_for(rows: usize) -> u32 {
    (rows.div_ceil(PAGE_TARGET).max(1).next_power_of_two()).min(1 << 24) as u32
}

/// A page: records sorted by primary key, as (key, encoded row), the row in the pair encoding
/// of [`put_field`] (the form the diff, the cascade and export work on).
pub(super) type Page = Vec<(Vec<u8>, Vec<u8>)>;

/// A stored page value: the encoded page (format 2), compressed.
pub(super) fn encode_page<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    Ok(pack(&encode_page_raw(recs)?))
}

/// A stored page value read back: `None` when it does not decode.
pub(super) fn read_page(v: &[u8]) -> Option<Page> {
    decode_page(&unpack(v)?)
}

/// Longest record key (primary key) a page can hold: its length is written in two bytes.
pub const MAX_KEY_BYTES: usize = u16::MAX as usize;
/// Longest column name a record can hold: its length is written in two bytes.
pub const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// Appends a two-byte length, refusing one that does not fit.
pub(super) fn put_u16(out: &mut Vec<u8>, n: usize, what: impl FnOnce() -> String) -> Result<()> {
    let n = u16::try_from(n).map_err(|_| StoreError::Oversized(what()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends a four-byte length, refusing one that does not fit.
pub(super) fn put_u32(out: &mut Vec<u8>, n: usize, what: impl FnOnce() -> String) -> Result<()> {
    let n = u32::try_from(n).map_err(|_| StoreError::Oversized(what()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn key_too_long(n: usize) -> String {
    format!("a record id of {n} bytes is longer than the {MAX_KEY_BYTES} bytes the store can keep")
}

/// A page as change sets carry it (and format 2 stored it): an LZ4 block with the page's
/// length prepended, written as one run of literals, not compressed. In format 3 a change set
/// lives for one batch (a held one is deflated whole) and its pages are compressed again into
/// bases and runs, so compressing each page here only cost time: about a tenth of a first
/// ingest's CPU. A length past `u32` is written as `u32::MAX`, which [`unpack`] refuses.
pub(super) fn pack(raw: &[u8]) -> Vec<u8> {
    let n = raw.len();
    let mut out = Vec::with_capacity(n.saturating_add(n / 255 + 6));
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    // The token's high nibble is the literal count, 15 meaning "more bytes follow" (each 255
    // adds 255, the first below 255 ends it); no match follows the last literals.
    if n < 15 {
        out.push((n as u8) << 4);
    } else {
        out.push(0xf0);
        let mut rest = n - 15;
        while rest >= 255 {
            out.push(255);
            rest -= 255;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(raw);
    out
}

/// A page from [`pack`] (or any LZ4 block with its length prepended, as format 2 stored
/// pages), refusing sizes beyond any real page. A block that is one run of literals, as
/// [`pack`] writes, is read in place.
pub(super) fn unpack(v: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let n = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?) as usize;
    if n > 256 << 20 {
        return None;
    }
    if let Some(raw) = literals(v, n) {
        return Some(std::borrow::Cow::Borrowed(raw));
    }
    lz4_flex::decompress_size_prepended(v)
        .ok()
        .map(std::borrow::Cow::Owned)
}

/// The `n` bytes of an LZ4 block (after its prepended length) that is exactly one run of
/// `n` literals; `None` for any other block.
fn literals(v: &[u8], n: usize) -> Option<&[u8]> {
    let token = *v.get(4)?;
    let mut i = 5;
    let mut count = usize::from(token >> 4);
    if token & 0x0f != 0 {
        return None;
    }
    if count == 15 {
        loop {
            let b = *v.get(i)?;
            i += 1;
            count = count.checked_add(usize::from(b))?;
            if b != 255 {
                break;
            }
        }
    }
    (count == n && v.len().checked_sub(i)? == n).then(|| &v[i..])
}

/// Appends an unsigned LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads an unsigned LEB128 varint at `*i`; `None` past the end or beyond 64 bits.
#[inline]
pub(super) fn get_varint(bytes: &[u8], i: &mut usize) -> Option<u64> {
    // One byte (a length under 128, a name index) is nearly every varint of a page.
    if let Some(&b) = bytes.get(*i) {
        if b & 0x80 == 0 {
            *i += 1;
            return Some(u64::from(b));
        }
    }
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*i)?;
        *i += 1;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn get_slice<'a>(bytes: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(get_varint(bytes, i)?).ok()?;
    let s = bytes.get(*i..i.checked_add(n)?)?;
    *i += n;
    Some(s)
}

/// A page, format 2: the column names its records use (in order of first use), then its
/// records sorted by key, each a key and its non-empty fields as (name index, value). Every
/// number is a LEB128 varint:
///
/// `names, (len, name)*, count, (key len, key, fields, (name index, value len + 1, value)*)*`
///
/// with a value length of 0 (no value bytes) for a value equal to the record's key: the
/// primary key column is not stored twice.
/// A record's column names are written once per page instead of once per field: pages are
/// small (see [`PAGE_TARGET`]), so the names would otherwise be most of their bytes.
pub(super) fn encode_page_raw<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    let mut names: Vec<&str> = Vec::new();
    let mut body = Vec::with_capacity(
        recs.iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum(),
    );
    put_varint(&mut body, recs.len() as u64);
    for (k, v) in recs {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k.len() > MAX_KEY_BYTES {
            return Err(StoreError::Oversized(key_too_long(k.len())));
        }
        let fields = row_fields(v)
            .ok_or_else(|| StoreError::Unverified(String::from_utf8_lossy(k).into_owned()))?;
        put_varint(&mut body, k.len() as u64);
        body.extend_from_slice(k);
        put_varint(&mut body, fields.len() as u64);
        for (name, value) in fields {
            let at = match names.iter().position(|n| *n == name) {
                Some(at) => at,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            put_varint(&mut body, at as u64);
            // 0: the value is the record's key (its primary key column); else length + 1.
            if value.as_bytes() == k {
                put_varint(&mut body, 0);
            } else {
                put_varint(&mut body, value.len() as u64 + 1);
                body.extend_from_slice(value.as_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 16 * names.len() + 2);
    put_varint(&mut out, names.len() as u64);
    for n in &names {
        put_varint(&mut out, n.len() as u64);
        out.extend_from_slice(n.as_bytes());
    }
    out.extend_from_slice(&body);
    Ok(out)
}

fn page_names<'a>(bytes: &'a [u8], i: &mut usize) -> Option<Vec<&'a str>> {
    let n = get_varint(bytes, i)?;
    let mut names = Vec::with_capacity(n.min(1 << 10) as usize);
    for _ in 0..n {
        let name = std::str::from_utf8(get_slice(bytes, i)?).ok()?;
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        names.push(name);
    }
    Some(names)
}

/// A raw format-2 page decoded, each record back in the pair encoding; `None` when any part
/// of it does not decode, a value is not UTF-8, or bytes follow the last record.
pub(super) fn decode_page(bytes: &[u8]) -> Option<Page> {
    let mut i = 0;
    let names = page_names(bytes, &mut i)?;
    let n = get_varint(bytes, &mut i)?;
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    // Each record is built in one scratch buffer and copied out at its size: one allocation
    // a record instead of one each time it outgrows its buffer.
    let mut rec = Vec::new();
    for _ in 0..n {
        let k = get_slice(bytes, &mut i)?;
        if k.len() > MAX_KEY_BYTES {
            return None;
        }
        let nf = get_varint(bytes, &mut i)?;
        rec.clear();
        for _ in 0..nf {
            let name = names.get(usize::try_from(get_varint(bytes, &mut i)?).ok()?)?;
            let value = match usize::try_from(get_varint(bytes, &mut i)?).ok()? {
                0 => std::str::from_utf8(k).ok()?,
                n => {
                    let v = bytes.get(i..i.checked_add(n - 1)?)?;
                    i += n - 1;
                    std::str::from_utf8(v).ok()?
                }
            };
            put_field(&mut rec, name, value).ok()?;
        }
        out.push((k.to_vec(), rec.clone()));
    }
    (i == bytes.len()).then_some(out)
}

/// Calls `visit` with the fields of each record of a stored page value, in page order,
/// borrowed from the inflated page (nothing is re-encoded: `Store::roster` reads every record
/// of a source this way). `None` when any part of the page does not decode, as for
/// [`decode_page`]; records before the damage have been visited by then.
#[cfg(test)]
pub(super) fn visit_page(
    v: &[u8],
    visit: &mut dyn FnMut(&crate::roster::model::read::Fields<'_>),
) -> Option<()> {
    visit_raw_page_keyed(&unpack(v)?, &mut |_, fields| visit(fields))
}

/// Calls `visit` with each record's key and its values of the columns `wanted` ("" where it
/// has none; the first of two same-named columns) of a raw page, in page order. Only those
/// values are read as text, so a reader that wants three columns of every record (the stored
/// persons) does not validate the rest. `None` when the page does not decode.
pub(super) fn visit_raw_page_columns<const N: usize>(
    bytes: &[u8],
    wanted: [&str; N],
    visit: &mut dyn FnMut(&[u8], [&str; N]),
) -> Option<()> {
    let mut i = 0;
    // Per column name of the page: which wanted column it is.
    let slot: Vec<Option<usize>> = page_names(bytes, &mut i)?
        .iter()
        .map(|n| wanted.iter().position(|w| w == n))
        .collect();
    for _ in 0..get_varint(bytes, &mut i)? {
        let k = get_slice(bytes, &mut i)?;
        if k.len() > MAX_KEY_BYTES {
            return None;
        }
        let mut values = [""; N];
        for _ in 0..get_varint(bytes, &mut i)? {
            let at = *slot.get(usize::try_from(get_varint(bytes, &mut i)?).ok()?)?;
            let value = match usize::try_from(get_varint(bytes, &mut i)?).ok()? {
                0 => k,
                n => {
                    let v = bytes.get(i..i.checked_add(n - 1)?)?;
                    i += n - 1;
                    v
                }
            };
            if let Some(at) = at.filter(|&at| values[at].is_empty()) {
                values[at] = std::str::from_utf8(value).ok()?;
            }
        }
        visit(k, values);
    }
    (i == bytes.len()).then_some(())
}

/// [`visit_page`] of a raw (not compressed) page, giving each record's key (its primary key,
/// trimmed) with its fields.
pub(super) fn visit_raw_page_keyed(
    bytes: &[u8],
    visit: &mut dyn FnMut(&[u8], &crate::roster::model::read::Fields<'_>),
) -> Option<()> {
    let mut page = RawPage::open(bytes)?;
    let mut named: Vec<(&str, &str)> = Vec::new();
    let mut fields = Vec::new();
    while let Some(k) = page.next_record(&mut fields)? {
        named.clear();
        for &(n, v) in &fields {
            named.push((*page.names.get(n)?, v));
        }
        visit(k, &named);
    }
    Some(())
}

/// A raw page read a record at a time, each from a byte offset that a reader may come back
/// to ([`RawPage::record_at`]): the own-format export sorts a table's records by key across
/// its pages and then reads each where it lies.
pub(super) struct RawPage<'a> {
    bytes: &'a [u8],
    /// The page's column names, in the order its records refer to them.
    pub(super) names: Vec<&'a str>,
    /// Where the next record starts, and how many are left.
    at: usize,
    left: u64,
}

impl<'a> RawPage<'a> {
    pub(super) fn open(bytes: &'a [u8]) -> Option<Self> {
        let mut at = 0;
        let names = page_names(bytes, &mut at)?;
        let left = get_varint(bytes, &mut at)?;
        Some(RawPage {
            bytes,
            names,
            at,
            left,
        })
    }

    /// Where the next record starts.
    pub(super) fn offset(&self) -> usize {
        self.at
    }

    /// The next record's key, with its fields as (index into `names`, value) in `fields`;
    /// `Some(None)` after the last one, `None` when the page does not decode (a name index
    /// out of range, a value not UTF-8, bytes after the last record).
    pub(super) fn next_record(
        &mut self,
        fields: &mut Vec<(usize, &'a str)>,
    ) -> Option<Option<&'a [u8]>> {
        if self.left == 0 {
            return (self.at == self.bytes.len()).then_some(None);
        }
        let (k, end) = self.record_at(self.at, fields)?;
        self.left -= 1;
        self.at = end;
        Some(Some(k))
    }

    /// The record that starts at byte `at` (an [`RawPage::offset`] seen before): its key and
    /// where the next record starts, its fields in `fields`.
    pub(super) fn record_at(
        &self,
        at: usize,
        fields: &mut Vec<(usize, &'a str)>,
    ) -> Option<(&'a [u8], usize)> {
        let bytes = self.bytes;
        let mut i = at;
        let k = get_slice(bytes, &mut i)?;
        if k.len() > MAX_KEY_BYTES {
            return None;
        }
        fields.clear();
        for _ in 0..get_varint(bytes, &mut i)? {
            let name = usize::try_from(get_varint(bytes, &mut i)?).ok()?;
            if name >= self.names.len() {
                return None;
            }
            let value = match usize::try_from(get_varint(bytes, &mut i)?).ok()? {
                0 => k,
                n => {
                    let v = bytes.get(i..i.checked_add(n - 1)?)?;
                    i += n - 1;
                    v
                }
            };
            fields.push((name, std::str::from_utf8(value).ok()?));
        }
        Some((k, i))
    }
}

/// Number of records of a raw format-2 page (0 when it does not decode).
pub(super) fn page_len(raw: &[u8]) -> u64 {
    let mut i = 0;
    page_names(raw, &mut i)
        .and_then(|_| get_varint(raw, &mut i))
        .unwrap_or(0)
}

pub(super) fn k_batch(id: u64) -> Vec<u8> {
    [&b"b\0"[..], &id.to_be_bytes()].concat()
}
pub(super) fn k_undo(id: u64) -> Vec<u8> {
    [&b"u\0"[..], &id.to_be_bytes()].concat()
}
pub(super) fn k_pending(id: u64) -> Vec<u8> {
    [&b"p\0"[..], &id.to_be_bytes()].concat()
}
pub(super) const K_VERSION: &[u8] = b"m\0version";
pub(super) const K_NEXT_ID: &[u8] = b"m\0next-batch";
/// Present while a migration to format 3 is under way (`migrate::to_v3`).
pub(super) const K_MIGRATING: &[u8] = b"m\0migrating";

// ---- values -----------------------------------------------------------------------------

/// Encodes rows of one table as their non-empty (column, value) pairs sorted by column name,
/// so that the same data in another column order, separator or line ending encodes
/// identically. OneRoster `status` is an instruction, not data, and is left out. The column
/// order is worked out once per table.
pub struct RowEncoder {
    order: Vec<(usize, String)>,
    /// Per entry of `order`: the first entry with the same name (a page names each name
    /// once; binding refuses repeated names, so this is the entry itself unless that changes).
    same: Vec<usize>,
}

impl RowEncoder {
    /// Refuses a table with a column name or a record id longer than the store can keep,
    /// naming the file and line.
    pub fn new(w: &Work) -> Result<RowEncoder> {
        let mut order: Vec<(usize, String)> = (0..w.table.ncols())
            .map(|c| (c, w.column_name(c).into_owned()))
            // An unnamed column is not part of the roster (`text::is_unnamed`; the check's
            // notes say so): no export could name it again.
            .filter(|(c, n)| n != "status" && !crate::roster::text::is_unnamed(&w.table.header[*c]))
            .collect();
        if let Some((c, n)) = order.iter().find(|(_, n)| n.len() > MAX_NAME_BYTES) {
            return Err(StoreError::Oversized(format!(
                "{}: the name of column {} is {} bytes, longer than the {MAX_NAME_BYTES} \
                 bytes the store can keep; nothing was applied",
                w.def.file_name(),
                c + 1,
                n.len()
            )));
        }
        if let Some(row) =
            (0..w.table.len()).find(|&r| w.is_kept(r) && w.id(r).len() > MAX_KEY_BYTES)
        {
            return Err(StoreError::Oversized(format!(
                "{} line {}: the record id is {} bytes, longer than the {MAX_KEY_BYTES} bytes \
                 the store can keep; nothing was applied",
                w.def.file_name(),
                w.table.line(row),
                w.id(row).len()
            )));
        }
        order.sort_by(|a, b| a.1.cmp(&b.1));
        let mut first: HashMap<&str, usize> = HashMap::new();
        let same = order
            .iter()
            .enumerate()
            .map(|(o, (_, n))| *first.entry(n.as_str()).or_insert(o))
            .collect();
        Ok(RowEncoder { order, same })
    }

    /// The raw format-2 page of `rows` (row, key), sorted by key: byte for byte what
    /// [`encode_page_raw`] makes of the rows' [`RowEncoder::encode`]d records, without
    /// encoding each record first (the bulk diff compares every incoming page with the
    /// stored one, and most are unchanged). `scratch` is reused between calls.
    pub(super) fn encode_page(
        &self,
        w: &Work,
        rows: &[(u32, u32, &[u8])],
        scratch: &mut PageScratch,
    ) -> Vec<u8> {
        let PageScratch { index, names, body } = scratch;
        index.clear();
        index.resize(self.order.len(), u32::MAX);
        names.clear();
        body.clear();
        let (mut small, mut big) = ([""; 32], Vec::new());
        let vals = row_slots(w.table.ncols(), &mut small, &mut big);
        put_varint(body, rows.len() as u64);
        for &(_, row, k) in rows {
            vals.iter_mut().for_each(|v| *v = "");
            w.row_values(row as usize, vals);
            put_varint(body, k.len() as u64);
            body.extend_from_slice(k);
            let n = self
                .order
                .iter()
                .filter(|(c, _)| !vals[*c].is_empty())
                .count();
            put_varint(body, n as u64);
            for (o, (c, _)) in self.order.iter().enumerate() {
                let v = vals[*c];
                if v.is_empty() {
                    continue;
                }
                let o = self.same[o];
                if index[o] == u32::MAX {
                    index[o] = names.len() as u32;
                    names.push(o as u32);
                }
                put_varint(body, u64::from(index[o]));
                if v.as_bytes() == k {
                    put_varint(body, 0);
                } else {
                    put_varint(body, v.len() as u64 + 1);
                    body.extend_from_slice(v.as_bytes());
                }
            }
        }
        let mut out = Vec::with_capacity(body.len() + 16 * names.len() + 2);
        put_varint(&mut out, names.len() as u64);
        for &o in names.iter() {
            let n = &self.order[o as usize].1;
            put_varint(&mut out, n.len() as u64);
            out.extend_from_slice(n.as_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    pub fn encode(&self, w: &Work, row: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let (mut small, mut big) = ([""; 32], Vec::new());
        let vals = row_slots(w.table.ncols(), &mut small, &mut big);
        w.row_values(row, vals);
        for (c, n) in &self.order {
            let v = vals[*c];
            if v.is_empty() {
                continue;
            }
            put_field(buf, n, v)?;
        }
        Ok(())
    }
}

/// Slots for a row's values: on the stack for rows of up to 32 columns, else in `big`.
fn row_slots<'s, 'v>(
    ncols: usize,
    small: &'s mut [&'v str; 32],
    big: &'s mut Vec<&'v str>,
) -> &'s mut [&'v str] {
    if ncols <= small.len() {
        &mut small[..]
    } else {
        big.resize(ncols, "");
        &mut big[..]
    }
}

/// Buffers [`RowEncoder::encode_page`] reuses from page to page.
#[derive(Default)]
pub(super) struct PageScratch {
    index: Vec<u32>,
    names: Vec<u32>,
    body: Vec<u8>,
}

/// Appends one (column, value) pair of an encoded record.
pub(super) fn put_field(buf: &mut Vec<u8>, name: &str, value: &str) -> Result<()> {
    put_u16(buf, name.len(), || {
        format!(
            "a column name of {} bytes is longer than the {MAX_NAME_BYTES} bytes the store can keep",
            name.len()
        )
    })?;
    buf.extend_from_slice(name.as_bytes());
    put_u32(buf, value.len(), || {
        format!("a value of {} bytes is too large to store", value.len())
    })?;
    buf.extend_from_slice(value.as_bytes());
    Ok(())
}

/// The (column, value) pairs of an encoded record, without copying; `None` when it does not
/// decode.
pub(super) fn row_fields(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let nl = u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize;
        i += 2;
        let name = std::str::from_utf8(bytes.get(i..i + nl)?).ok()?;
        i += nl;
        let vl = u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize;
        i += 4;
        let value = std::str::from_utf8(bytes.get(i..i + vl)?).ok()?;
        i += vl;
        out.push((name, value));
    }
    Some(out)
}

pub fn decode_row(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    Some(
        row_fields(bytes)?
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

/// Checks that every record page a change set writes decodes, down to each record's
/// fields, so that no batch can leave a source unreadable.
pub(super) fn verify_pages(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
    // A first batch writes every page of the roster: checked on two threads.
    if changes.len() >= 1024 {
        let (a, b) = changes.split_at(changes.len() / 2);
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| verify_each(a));
            (verify_each(b), h.join())
        });
        return match rb {
            Ok(r) => r.and(ra),
            Err(p) => std::panic::resume_unwind(p),
        };
    }
    verify_each(changes)
}

fn verify_each(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
    for (k, v) in changes {
        let Some(v) = v else { continue };
        if !k.starts_with(b"r\0") {
            continue;
        }
        if !unpack(v).is_some_and(|raw| page_is_sound(&raw)) {
            return Err(StoreError::Unverified(
                String::from_utf8_lossy(k).replace('\0', "/"),
            ));
        }
    }
    Ok(())
}

/// Whether a raw page decodes ([`decode_page`] would read it), holds a record, and has its
/// keys strictly ascending; read in place, without building its records.
pub(super) fn page_is_sound(bytes: &[u8]) -> bool {
    fn walk(bytes: &[u8]) -> Option<()> {
        // A page of ASCII bytes only (most are: their numbers are below 128) holds only
        // UTF-8 values, so they are not validated one by one.
        let ascii = bytes.is_ascii();
        let text = |v: &[u8]| ascii || std::str::from_utf8(v).is_ok();
        let mut i = 0;
        let names = page_names(bytes, &mut i)?;
        let n = get_varint(bytes, &mut i)?;
        if n == 0 {
            return None;
        }
        let mut prev: Option<&[u8]> = None;
        for _ in 0..n {
            let k = get_slice(bytes, &mut i)?;
            if k.len() > MAX_KEY_BYTES || prev.is_some_and(|p| p >= k) {
                return None;
            }
            prev = Some(k);
            let nf = get_varint(bytes, &mut i)?;
            for _ in 0..nf {
                names.get(usize::try_from(get_varint(bytes, &mut i)?).ok()?)?;
                match usize::try_from(get_varint(bytes, &mut i)?).ok()? {
                    0 => text(k).then_some(())?,
                    n => {
                        let v = bytes.get(i..i.checked_add(n - 1)?)?;
                        i += n - 1;
                        u32::try_from(v.len()).ok()?;
                        text(v).then_some(())?;
                    }
                }
            }
        }
        (i == bytes.len()).then_some(())
    }
    walk(bytes).is_some()
}

/// A list of (key, value or deletion), deflated: undo data and held change sets.
pub(super) type ChangeSet = Vec<(Vec<u8>, Option<Vec<u8>>)>;

pub(super) fn encode_changes(c: &ChangeSet) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&(c.len() as u64).to_le_bytes())?;
    for (k, v) in c {
        e.write_all(&(k.len() as u32).to_le_bytes())?;
        e.write_all(k)?;
        match v {
            Some(v) => {
                e.write_all(&[1])?;
                e.write_all(&(v.len() as u32).to_le_bytes())?;
                e.write_all(v)?;
            }
            None => e.write_all(&[0])?,
        }
    }
    e.finish()
}

pub(super) fn decode_changes(bytes: &[u8]) -> Option<ChangeSet> {
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut raw)
        .ok()?;
    let mut i = 0;
    let take = |i: &mut usize, n: usize| -> Option<&[u8]> {
        let s = raw.get(*i..*i + n)?;
        *i += n;
        Some(s)
    };
    let n = u64::from_le_bytes(take(&mut i, 8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(n.min(1 << 24) as usize);
    for _ in 0..n {
        let kl = u32::from_le_bytes(take(&mut i, 4)?.try_into().ok()?) as usize;
        let k = take(&mut i, kl)?.to_vec();
        let v = match take(&mut i, 1)?[0] {
            1 => {
                let vl = u32::from_le_bytes(take(&mut i, 4)?.try_into().ok()?) as usize;
                Some(take(&mut i, vl)?.to_vec())
            }
            _ => None,
        };
        out.push((k, v));
    }
    Some(out)
}

/// What format 1 wrote that format 2 writes differently, kept to read a format-1 store
/// while migrating it (`Store::open`).
pub(super) mod v1 {
    /// Records per page of format 1.
    #[cfg(test)]
    pub(crate) const PAGE_TARGET: usize = 256;

    /// A raw format-1 page: `u32 count`, then per record `u16 key length, key, u32 value
    /// length, value` (the value in the pair encoding), sorted by key. `None` when it does not
    /// decode or bytes follow the last record.
    pub(crate) fn decode_page(bytes: &[u8]) -> Option<super::Page> {
        let n = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
        let mut out = Vec::with_capacity(n.min(1 << 20));
        let mut i = 4;
        for _ in 0..n {
            let kl = u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize;
            let k = bytes.get(i + 2..i + 2 + kl)?;
            i += 2 + kl;
            let vl = u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize;
            let v = bytes.get(i + 4..i + 4 + vl)?;
            i += 4 + vl;
            super::row_fields(v)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        (i == bytes.len()).then_some(out)
    }

    /// A stored format-1 page value (LZ4, size-prefixed, as in format 2) read back.
    pub(crate) fn read_page(v: &[u8]) -> Option<super::Page> {
        decode_page(&super::unpack(v)?)
    }

    /// Format 1's page encoding, for the tests that pin it.
    #[cfg(test)]
    pub(crate) fn encode_page_raw<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Vec<u8> {
        let mut out = (recs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in recs {
            let (k, v) = (k.as_ref(), v.as_ref());
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }
}

/// The on-disk format, version 1, byte for byte: keys, record values, pages, change sets
/// (undo data and held batches) and the JSON of batch and source records. Format 2 keeps the
/// keys, the pair encoding of records, change sets and the JSON; its pages are new (pinned in
/// `format_v2`). These tests pin what the migration reads of a format-1 store.
#[cfg(test)]
mod format_v1 {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(K_VERSION, b"m\0version");
        assert_eq!(K_NEXT_ID, b"m\0next-batch");
        assert_eq!(k_state("north"), b"s\0north");
        assert_eq!(k_records("north", "students"), b"r\0north\0students\0");
        assert_eq!(
            k_page("north", "students", 0x0102_0304),
            b"r\0north\0students\0\x01\x02\x03\x04"
        );
        assert_eq!(k_batch(0x0102), b"b\0\0\0\0\0\0\0\x01\x02");
        assert_eq!(k_undo(7), b"u\0\0\0\0\0\0\0\0\x07");
        assert_eq!(k_pending(7), b"p\0\0\0\0\0\0\0\0\x07");
    }

    #[test]
    fn pages_are_chosen_by_fnv1a_of_the_id() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(bucket_of(b"a", 1), 0);
        assert_eq!(bucket_of(b"a", 16), 0xc);
    }

    #[test]
    fn a_record_is_name_and_value_pairs() {
        let mut rec = Vec::new();
        put_field(&mut rec, "id", "S1").unwrap();
        put_field(&mut rec, "grade", "").unwrap();
        assert_eq!(rec, b"\x02\0id\x02\0\0\0S1\x05\0grade\0\0\0\0");
        assert_eq!(
            decode_row(&rec).unwrap(),
            [("id".into(), "S1".into()), ("grade".into(), String::new())]
        );
    }

    #[test]
    fn a_page_is_sound_only_with_utf8_values_whether_its_bytes_are_ascii_or_not() {
        // One record `K1` with one field `n`: names, count, key, fields, (name, len + 1, value).
        let page = |v: &[u8]| {
            let mut p = vec![1, 1, b'n', 1, 2, b'K', b'1', 1, 0];
            put_varint(&mut p, v.len() as u64 + 1);
            p.extend_from_slice(v);
            p
        };
        let long = |last: u8| {
            let mut v = vec![b'a'; 199];
            v.push(last);
            v
        };
        assert!(page_is_sound(&page(b"ab")));
        assert!(page_is_sound(&page("é".as_bytes())));
        assert!(!page_is_sound(&page(b"\xff")));
        // A 200-byte value's length takes two varint bytes, so the page is not all ASCII.
        assert!(page_is_sound(&page(&long(b'z'))));
        assert!(!page_is_sound(&page(&long(0xff))));
        // pack's blocks are read in place; another encoder's are decompressed.
        let raw = page(b"ab");
        assert!(matches!(unpack(&pack(&raw)), Some(std::borrow::Cow::Borrowed(r)) if r == raw));
        let compressed = lz4_flex::compress_prepend_size(&[7u8; 100]);
        assert!(matches!(unpack(&compressed), Some(std::borrow::Cow::Owned(r)) if r == [7u8; 100]));
    }

    #[test]
    fn a_page_is_counted_entries_in_an_lz4_block() {
        let raw = v1::encode_page_raw(&[(&b"S1"[..], &b"xy"[..]), (b"S2", b"")]);
        assert_eq!(raw, b"\x02\0\0\0\x02\0S1\x02\0\0\0xy\x02\0S2\0\0\0\0");
        // The raw length prepended (little-endian u32), then the page as one run of literals,
        // as this build writes it; the same page compressed, as format 2 stored it (LZ4 with
        // matches), reads alike.
        let mut literal = vec![22, 0, 0, 0, 0xf0, 22 - 15];
        literal.extend_from_slice(&raw);
        assert_eq!(pack(&raw), literal);
        let compressed = [
            22, 0, 0, 0, 128, 2, 0, 0, 0, 2, 0, 83, 49, 8, 0, 160, 120, 121, 2, 0, 83, 50, 0, 0, 0,
            0,
        ];
        assert_eq!(unpack(&compressed).unwrap(), raw);
        assert_eq!(unpack(&literal).unwrap(), raw);
        // Every literal count reads back, the lengths around each extra count byte included.
        for n in [0, 1, 14, 15, 16, 269, 270, 271, 524, 525, 70_000] {
            let raw: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            assert_eq!(unpack(&pack(&raw)).unwrap(), raw, "{n}");
            assert_eq!(
                lz4_flex::decompress_size_prepended(&pack(&raw)).unwrap(),
                raw,
                "{n}"
            );
        }
        // Records are pair-encoded values; these two ("xy" is no pair) do not decode.
        assert!(v1::read_page(&literal).is_none());
        let mut rec = Vec::new();
        put_field(&mut rec, "id", "S1").unwrap();
        let page = pack(&v1::encode_page_raw(&[(&b"S1"[..], &rec[..])]));
        assert_eq!(v1::read_page(&page).unwrap(), vec![(b"S1".to_vec(), rec)]);
        assert_eq!(v1::PAGE_TARGET, 256);
    }

    #[test]
    fn a_change_set_is_counted_keys_and_values_deflated() {
        let c: ChangeSet = vec![
            (b"k1".to_vec(), Some(b"v".to_vec())),
            (b"k2".to_vec(), None),
        ];
        let raw = b"\x02\0\0\0\0\0\0\0\x02\0\0\0k1\x01\x01\0\0\0v\x02\0\0\0k2\0";
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&encode_changes(&c).unwrap()[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, raw);
        // Any deflate stream of those bytes reads back (the compression level is free).
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(raw).unwrap();
        assert_eq!(decode_changes(&e.finish().unwrap()).unwrap(), c);
    }

    #[test]
    fn batch_and_source_records_are_json() {
        let v1 = r#"{"id":3,"source":"north","account":"sis","content_hash":"ab","format":"apple","mode":"bulk","state":"rolled-back","received_at":1700000000,"duration_ms":12,"tables":{"students":{"read":2,"adds":1,"updates":1,"deletes":0,"stale":0,"pages_written":1,"before":1}},"patches":{"invalid-value":1},"report_dir":null,"reason":"held for approval: x","base":2,"rollback_of":null,"buckets_before":{"students":1},"buckets_after":{"students":1}}"#;
        let b: Batch = serde_json::from_slice(v1.as_bytes()).unwrap();
        assert_eq!(
            (b.id, b.state, b.base),
            (3, BatchState::RolledBack, Some(2))
        );
        assert_eq!(b.tables["students"].adds, 1);
        assert_eq!(String::from_utf8(json(&b).unwrap()).unwrap(), v1);
        // Written before page counts were recorded: still read.
        let older = r#"{"id":1,"source":"n","account":"a","content_hash":"","format":"apple","mode":"bulk","state":"applied","received_at":0,"duration_ms":0,"tables":{},"patches":{},"report_dir":null,"reason":null,"base":null,"rollback_of":null}"#;
        assert!(serde_json::from_str::<Batch>(older)
            .unwrap()
            .buckets_after
            .is_empty());
        let st = r#"{"last_applied":3,"last_hash":"ab","format":"apple","buckets":{"students":2}}"#;
        let s: SourceState = serde_json::from_str(st).unwrap();
        assert_eq!(String::from_utf8(json(&s).unwrap()).unwrap(), st);
    }
}

/// The on-disk format, version 2, byte for byte: what changed from format 1 (pages, their
/// size, undo data). Keys, the pair encoding of records, change sets and the JSON of batch
/// and source records are format 1's (`format_v1`). A test here that fails means stores
/// written by an earlier build would be misread: change the format only with a new
/// `FORMAT_VERSION` and a migration, and then update these bytes.
#[cfg(test)]
mod format_v2 {
    use super::*;

    #[test]
    fn a_raw_page_read_at_any_offset_or_cut_anywhere_never_panics() {
        let recs: Vec<(&[u8], Vec<u8>)> = vec![
            (b"A1", rec(&[("id", "A1"), ("name", "\u{e9}cole")])),
            (b"B2", rec(&[("id", "B2"), ("x", "1")])),
        ];
        let raw = encode_page_raw(&recs).unwrap();
        // Read whole: both records, in order, each field named.
        let mut page = RawPage::open(&raw).unwrap();
        let (mut fields, mut seen) = (Vec::new(), Vec::new());
        while let Some(k) = page.next_record(&mut fields).unwrap() {
            let named: Vec<(&str, &str)> =
                fields.iter().map(|&(n, v)| (page.names[n], v)).collect();
            seen.push((k.to_vec(), named));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1, [("id", "A1"), ("name", "\u{e9}cole")]);
        assert_eq!(seen[1].0, b"B2");
        // Any offset, including past the end: an answer or None, never a panic.
        let page = RawPage::open(&raw).unwrap();
        for at in 0..raw.len() + 3 {
            let _ = page.record_at(at, &mut fields);
        }
        // Any cut and any byte changed: read to the end or refused, never a panic.
        let read_all = |bytes: &[u8]| -> Option<usize> {
            let mut p = RawPage::open(bytes)?;
            let mut f = Vec::new();
            let mut n = 0;
            while p.next_record(&mut f)?.is_some() {
                n += 1;
            }
            Some(n)
        };
        for cut in 0..raw.len() {
            assert_eq!(read_all(&raw[..cut]), None, "cut at {cut}");
        }
        for i in 0..raw.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] = b;
                let _ = read_all(&bad);
            }
        }
    }

    #[test]
    fn version_and_page_counts() {
        // Formats 3 and 4 keep these pages, inside segments (`segments.rs`); format 4 is
        // format 3 with the journal (`journal.rs`).
        assert_eq!(FORMAT_VERSION, 4);
        assert_eq!(PAGE_TARGET, 16);
        assert_eq!(
            [0, 1, 16, 17, 1000, 1 << 40].map(buckets_for),
            [1, 1, 1, 2, 64, 1 << 24]
        );
    }

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        for n in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, n);
        }
        assert_eq!(
            out,
            [0, 1, 127, 0x80, 1, 0xac, 2, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]
        );
        let mut i = 0;
        let back: Vec<u64> = (0..6).map(|_| get_varint(&out, &mut i).unwrap()).collect();
        assert_eq!(back, [0, 1, 127, 128, 300, u64::MAX]);
        assert_eq!(get_varint(&[0x80], &mut 0), None);
        assert_eq!(get_varint(&[0xff; 11], &mut 0), None);
    }

    fn rec(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut r = Vec::new();
        for (n, v) in fields {
            put_field(&mut r, n, v).unwrap();
        }
        r
    }

    #[test]
    fn a_page_is_its_names_then_records_by_name_index_compressed_with_lz4() {
        let recs = [
            (&b"S1"[..], rec(&[("id", "S1"), ("name", "Ana")])),
            (&b"S2"[..], rec(&[("grade", "9"), ("id", "S2")])),
            (&b"S3"[..], Vec::new()),
        ];
        let raw = encode_page_raw(&recs).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            3, 2, b'i', b'd', 4, b'n', b'a', b'm', b'e', 5, b'g', b'r', b'a', b'd', b'e',
            3,
            2, b'S', b'1', 2, 0, 0, 1, 4, b'A', b'n', b'a',
            2, b'S', b'2', 2, 2, 2, b'9', 0, 0,
            2, b'S', b'3', 0,
        ];
        assert_eq!(raw, want);
        assert_eq!(page_len(&raw), 3);
        let back = decode_page(&raw).unwrap();
        assert_eq!(
            back,
            recs.iter()
                .map(|(k, v)| (k.to_vec(), v.clone()))
                .collect::<Vec<_>>()
        );
        // Stored: LZ4 with the raw length prepended (little-endian u32), as in format 1.
        let stored = encode_page(&recs).unwrap();
        assert_eq!(&stored[..4], &(want.len() as u32).to_le_bytes());
        assert_eq!(read_page(&stored).unwrap(), back);
        // Trailing bytes, a name index past the names, a value that is not UTF-8 or runs
        // past the end do not decode.
        assert!(decode_page(&[raw.as_slice(), &[0]].concat()).is_none());
        assert!(decode_page(&[0, 1, 1, b'k', 1, 0, 0]).is_none());
        assert!(decode_page(&[1, 1, b'n', 1, 1, b'k', 1, 0, 2, 0xff]).is_none());
        assert!(decode_page(&[1, 1, b'n', 1, 1, b'k', 1, 0, 3, b'x']).is_none());
    }

    #[test]
    fn a_page_is_sound_exactly_when_it_decodes_to_sorted_records() {
        let recs = [
            (&b"S1"[..], rec(&[("id", "S1"), ("name", "Ana")])),
            (&b"S2"[..], rec(&[("grade", "9"), ("id", "S2")])),
        ];
        let raw = encode_page_raw(&recs).unwrap();
        let decodes = |raw: &[u8]| {
            decode_page(raw).is_some_and(|p| !p.is_empty() && p.windows(2).all(|w| w[0].0 < w[1].0))
        };
        assert!(page_is_sound(&raw));
        // Every truncation, and every byte changed to each of a few values.
        for cut in 0..raw.len() {
            assert_eq!(
                page_is_sound(&raw[..cut]),
                decodes(&raw[..cut]),
                "cut {cut}"
            );
        }
        for at in 0..raw.len() {
            for b in [0u8, 1, 2, 0x7f, 0x80, 0xff, b'S'] {
                let mut m = raw.clone();
                m[at] = b;
                assert_eq!(page_is_sound(&m), decodes(&m), "byte {at} = {b}");
            }
        }
    }

    #[test]
    fn a_visited_page_gives_each_records_fields_as_decoded() {
        let recs = [
            (&b"S1"[..], rec(&[("id", "S1"), ("name", "Ana")])),
            (&b"S2"[..], rec(&[("grade", "9"), ("id", "S2")])),
            (&b"S3"[..], Vec::new()),
        ];
        let stored = encode_page(&recs).unwrap();
        let mut seen: Vec<Vec<(String, String)>> = Vec::new();
        visit_page(&stored, &mut |f| {
            seen.push(
                f.iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .unwrap();
        let want: Vec<Vec<(String, String)>> = read_page(&stored)
            .unwrap()
            .iter()
            .map(|(_, v)| decode_row(v).unwrap())
            .collect();
        assert_eq!(seen, want);
        assert_eq!(
            seen[0],
            [("id".into(), "S1".into()), ("name".into(), "Ana".into())]
        );
        // What decode_page refuses, visit_page refuses.
        for bad in [
            vec![0, 1, 1, b'k', 1, 0, 0],
            vec![1, 1, b'n', 1, 1, b'k', 1, 0, 2, 0xff],
            vec![1, 1, b'n', 1, 1, b'k', 1, 0, 3, b'x'],
        ] {
            assert!(visit_page(&pack(&bad), &mut |_| {}).is_none(), "{bad:?}");
        }
        assert!(visit_page(b"xy", &mut |_| {}).is_none());
    }

    #[test]
    fn undo_data_is_the_changed_records_before_the_batch() {
        // Keys `r\0<source>\0<table>\0<id>`, values in the pair encoding, as a change set.
        let old = vec![
            (b"L1".to_vec(), rec(&[("location_name", "North")])),
            (b"L2".to_vec(), rec(&[("location_name", "South")])),
        ];
        let new = vec![
            (b"L2".to_vec(), rec(&[("location_name", "South")])),
            (b"L3".to_vec(), rec(&[("location_name", "East")])),
        ];
        let page = k_page("north", "locations", 0);
        let c = super::super::undo::record_changes(vec![(page, old, new)]).unwrap();
        let undo: ChangeSet = c.into_iter().map(|(k, before, _)| (k, before)).collect();
        assert_eq!(
            undo,
            vec![
                (
                    b"r\0north\0locations\0L1".to_vec(),
                    Some(b"\x0d\0location_name\x05\0\0\0North".to_vec())
                ),
                (b"r\0north\0locations\0L3".to_vec(), None),
            ]
        );
    }
}
