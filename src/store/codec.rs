//! The on-disk format, version 1: keys, record and page encodings, change sets.
//! A change here is a migration: the byte-exact tests in `format_v1` pin it.

use super::*;

/// Version of the key and value encodings below; a later release migrates older stores.
pub const FORMAT_VERSION: u32 = 1;

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

/// Records per page that a table's bucket count aims at.
pub(super) const PAGE_TARGET: usize = 256;

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

/// A page: records sorted by primary key, as (key, encoded row).
pub(super) type Page<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A stored page value: the encoded page, compressed.
pub(super) fn encode_page<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    Ok(deflate(&encode_page_raw(recs)?))
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

/// Appends one page entry: a key and its encoded record.
pub(super) fn put_entry(out: &mut Vec<u8>, k: &[u8], v: &[u8]) -> Result<()> {
    put_u16(out, k.len(), || {
        format!(
            "a record id of {} bytes is longer than the {MAX_KEY_BYTES} bytes the store can keep",
            k.len()
        )
    })?;
    out.extend_from_slice(k);
    put_u32(out, v.len(), || {
        format!("a record of {} bytes is too large to store", v.len())
    })?;
    out.extend_from_slice(v);
    Ok(())
}

/// Compresses a page with LZ4: pages are small and read on every diff, so speed wins.
pub(super) fn deflate(raw: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(raw)
}

/// Decompresses a stored page value, refusing sizes beyond any real page.
pub(super) fn inflate(v: &[u8]) -> Option<Vec<u8>> {
    let n = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?) as usize;
    if n > 256 << 20 {
        return None;
    }
    lz4_flex::decompress_size_prepended(v).ok()
}

pub(super) fn encode_page_raw<K: AsRef<[u8]>, V: AsRef<[u8]>>(recs: &[(K, V)]) -> Result<Vec<u8>> {
    let size: usize = recs
        .iter()
        .map(|(k, v)| 6 + k.as_ref().len() + v.as_ref().len())
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    put_u32(&mut out, recs.len(), || {
        "too many records in one page".into()
    })?;
    for (k, v) in recs {
        put_entry(&mut out, k.as_ref(), v.as_ref())?;
    }
    Ok(out)
}

pub(super) fn decode_page(bytes: &[u8]) -> Option<Page<'_>> {
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
        out.push((k, v));
    }
    Some(out)
}

pub(super) fn page_len(raw: &[u8]) -> u64 {
    raw.get(0..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
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

// ---- values -----------------------------------------------------------------------------

/// Encodes rows of one table as their non-empty (column, value) pairs sorted by column name,
/// so that the same data in another column order, separator or line ending encodes
/// identically. OneRoster `status` is an instruction, not data, and is left out. The column
/// order is worked out once per table.
pub struct RowEncoder {
    order: Vec<(usize, String)>,
}

impl RowEncoder {
    /// Refuses a table with a column name or a record id longer than the store can keep,
    /// naming the file and line.
    pub fn new(w: &Work) -> Result<RowEncoder> {
        let mut order: Vec<(usize, String)> = (0..w.table.ncols())
            .map(|c| (c, w.column_name(c).into_owned()))
            .filter(|(_, n)| n != "status")
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
        Ok(RowEncoder { order })
    }

    pub fn encode(&self, w: &Work, row: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let mut small = [""; 32];
        let mut big = Vec::new();
        let vals: &mut [&str] = if w.table.ncols() <= small.len() {
            &mut small[..]
        } else {
            big.resize(w.table.ncols(), "");
            &mut big[..]
        };
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
    for (k, v) in changes {
        let Some(v) = v else { continue };
        if !k.starts_with(b"r\0") {
            continue;
        }
        let bad = || StoreError::Unverified(String::from_utf8_lossy(k).replace('\0', "/"));
        let raw = inflate(v).ok_or_else(bad)?;
        let page = decode_page(&raw).ok_or_else(bad)?;
        let mut consumed = 4;
        for (key, rec) in &page {
            row_fields(rec).ok_or_else(bad)?;
            consumed += 6 + key.len() + rec.len();
        }
        if consumed != raw.len() || !page.windows(2).all(|p| p[0].0 < p[1].0) {
            return Err(bad());
        }
    }
    Ok(())
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

/// The on-disk format, version 1, byte for byte: keys, record values, pages, change sets
/// (undo data and held batches) and the JSON of batch and source records. A test here that
/// fails means stores written by an earlier build would be misread: change the format only
/// with a new `FORMAT_VERSION` and a migration, and then update these bytes.
#[cfg(test)]
mod format_v1 {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(FORMAT_VERSION, 1);
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
        assert_eq!(
            [0, 1, 256, 257, 1000, 1 << 40].map(buckets_for),
            [1, 1, 1, 2, 4, 1 << 24]
        );
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
    fn a_page_is_counted_entries_compressed_with_lz4() {
        let raw = encode_page_raw(&[(&b"S1"[..], &b"xy"[..]), (b"S2", b"")]).unwrap();
        assert_eq!(raw, b"\x02\0\0\0\x02\0S1\x02\0\0\0xy\x02\0S2\0\0\0\0");
        let stored = encode_page(&[(&b"S1"[..], &b"xy"[..]), (b"S2", b"")]).unwrap();
        // An LZ4 block with the raw length prepended (little-endian u32), as this build
        // writes it; and the same page as one run of literals, as another LZ4 encoder may
        // write it, reads alike.
        let written = [
            22, 0, 0, 0, 128, 2, 0, 0, 0, 2, 0, 83, 49, 8, 0, 160, 120, 121, 2, 0, 83, 50, 0, 0, 0,
            0,
        ];
        assert_eq!(stored, written);
        let mut literal = vec![22, 0, 0, 0, 0xf0, 22 - 15];
        literal.extend_from_slice(&raw);
        assert_eq!(inflate(&written).unwrap(), raw);
        assert_eq!(inflate(&literal).unwrap(), raw);
        assert_eq!(page_len(&raw), 2);
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
