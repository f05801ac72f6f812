//! CSV as SIS vendors really write it.
//!
//! Accepts UTF-8 with or without a BOM, UTF-16 with a BOM and (per source) Windows-1252, CRLF
//! or LF, comma or semicolon separators, quoted fields with separators and line breaks inside,
//! and (for Apple School Manager files) backslash escapes inside quoted fields. Rows are stored
//! compact: all field text of a table lives in one `String`, each field followed by a NUL,
//! with one `u32` start per row, so a table costs little more than its bytes on disk.
//!
//! Structural problems that make the file unreadable (undecodable text, NUL bytes, a quote
//! that runs to the end of the file, an unreadable header) are errors with file, physical line
//! and column. A row whose field count cannot be reconciled with the header is set aside as a
//! [`MalformedRow`] and the rest of the file is read; empty fields past the header, and empty
//! header names at its end, are dropped with a note.

use std::io::{Read, Write};

/// Text encoding of files without a BOM (`encoding` per source). A UTF-8 or UTF-16 BOM always
/// wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    Windows1252,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "windows-1252" | "cp1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

/// How a file was written; kept so that modified files are written back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub bom: bool,
    pub crlf: bool,
    /// Apple School Manager style: `\"` and `\\` inside quoted fields.
    pub backslash_escapes: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            bom: false,
            crlf: false,
            backslash_escapes: false,
        }
    }
}

/// A structural error in one CSV file. `line` is the physical line (header = 1); `column` is
/// 1-based, 0 when the error concerns the whole line or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub file: String,
    pub line: u64,
    pub column: usize,
    pub message: String,
}

/// One parsed CSV file: original header, dialect and every data row.
#[derive(Debug, Clone)]
pub struct Table {
    pub file: String,
    pub header: Vec<String>,
    pub dialect: Dialect,
    ncols: usize,
    /// Every row's fields, each followed by a NUL (NUL bytes are rejected in input, so the
    /// separator is unambiguous).
    data: String,
    /// Offset of each row's first field in `data`.
    starts: Vec<u32>,
    /// Physical line of each row, only once some row is not at `row + 2` (multi-line fields,
    /// blank rows); until then lines are implicit.
    lines: Option<Vec<u32>>,
    rows: usize,
    /// Rows made only of empty fields (spreadsheet artefacts), skipped.
    pub blank_rows: usize,
    /// Rows whose field count cannot be reconciled with the header: not stored as rows, the
    /// rest of the file is read. The engine reports each as `malformed-row`.
    pub malformed: Vec<MalformedRow>,
    /// What reading the file tidied up (trailing empty fields and header names, a transcoded
    /// encoding), each naming the file, for the report's notes.
    pub notes: Vec<String>,
}

/// A data row with non-empty fields past the header, or too few fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRow {
    /// Physical line on which the row starts.
    pub line: u32,
    /// 1-based: the first non-empty field past the header, or the first missing one.
    pub column: usize,
    /// Field count of the header (trailing empty names not counted) and of the row.
    pub expected: usize,
    pub found: usize,
    /// The row's first field, trimmed and clipped.
    pub first: String,
    /// The first non-empty field past the header, clipped (too many fields only).
    pub extra: String,
    /// 1-based column of the first field holding a line break, when the row spans lines.
    pub spans_lines: Option<usize>,
}

/// How much of an uploaded value a malformed-row report repeats.
const CLIP: usize = 80;

fn clip(s: &str) -> String {
    if s.len() <= CLIP {
        return s.to_string();
    }
    let mut end = CLIP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl MalformedRow {
    /// The problem, as the structural error of old: `expected 3 fields as in the header,
    /// found 4`.
    pub fn message(&self) -> String {
        let hint = if self.spans_lines.is_some() {
            " (the row spans several lines: an unclosed quote?)"
        } else {
            ""
        };
        format!(
            "expected {} fields as in the header, found {}{hint}",
            self.expected, self.found
        )
    }

    /// The patch summary's `field` (the first missing column's name, if any) and `detail`
    /// (the message, naming the column).
    pub fn describe(&self, header: &[String]) -> (String, String) {
        let name = |c: usize| c.checked_sub(1).and_then(|i| header.get(i));
        if self.found > self.expected {
            let last = match name(self.expected) {
                Some(h) => format!(" `{}`", h.trim()),
                None => String::new(),
            };
            let detail = format!(
                "{}: column {} is past the header's last column{last}",
                self.message(),
                self.column
            );
            (String::new(), detail)
        } else {
            let field = name(self.column).map_or(String::new(), |h| h.trim().to_string());
            let detail = format!(
                "{}: the row ends before column {} `{field}`",
                self.message(),
                self.column
            );
            (field, detail)
        }
    }
}

/// Upper bound on structural errors collected per file before giving up on it.
pub const MAX_ERRORS_PER_FILE: usize = 50;
const PEEK: usize = 64 * 1024;

impl Table {
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    /// Physical line on which row `row` starts (header = line 1).
    pub fn line(&self, row: usize) -> u32 {
        match &self.lines {
            Some(l) => l[row],
            None => row as u32 + 2,
        }
    }
    fn push_line(&mut self, line: u32) {
        if self.lines.is_none() && line != self.rows as u32 + 2 {
            self.lines = Some((0..self.rows as u32).map(|r| r + 2).collect());
        }
        if let Some(l) = &mut self.lines {
            l.push(line);
        }
        self.rows += 1;
    }
    /// Row `row`'s fields, each but the last followed by a NUL.
    pub fn row_text(&self, row: usize) -> &str {
        let start = self.starts[row] as usize;
        let end = match self.starts.get(row + 1) {
            Some(&next) => next as usize - 1,
            None => self.data.len().saturating_sub(1),
        };
        &self.data[start..end]
    }
    /// Asks the CPU to start loading a row's text, for a reader about to visit rows out of
    /// file order (the store's bulk diff reads them in page order); does nothing elsewhere.
    pub fn prefetch(&self, row: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(b) = self
            .starts
            .get(row)
            .and_then(|&s| self.data.as_bytes().get(s as usize))
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: SSE is part of every x86_64 CPU, and a prefetch is only a hint: it
            // reads nothing the program sees and cannot fault (the address is in `data`).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = row;
    }
    pub fn field(&self, row: usize, col: usize) -> &str {
        self.fields(row).nth(col).unwrap_or("")
    }
    /// All fields of a row, in column order.
    pub fn fields(&self, row: usize) -> Fields<'_> {
        Fields {
            rest: Some(self.row_text(row)),
        }
    }
    /// Approximate heap bytes held by this table.
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity()
            + self.starts.capacity() * 4
            + self.lines.as_ref().map_or(0, |l| l.capacity() * 4)
    }
    /// Builds a table from values (tests and exports).
    pub fn from_rows(file: &str, header: &[&str], rows: &[Vec<String>]) -> Table {
        let mut t = Table {
            file: file.to_string(),
            header: header.iter().map(|s| s.to_string()).collect(),
            dialect: Dialect::default(),
            ncols: header.len(),
            data: String::new(),
            starts: Vec::new(),
            lines: None,
            rows: 0,
            blank_rows: 0,
            malformed: Vec::new(),
            notes: Vec::new(),
        };
        for (i, r) in rows.iter().enumerate() {
            t.starts.push(t.data.len() as u32);
            for c in 0..t.ncols {
                let v = r.get(c).map(String::as_str).unwrap_or("");
                t.data.push_str(&v.replace('\0', ""));
                t.data.push('\0');
            }
            t.push_line(i as u32 + 2);
        }
        t
    }
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.file.is_empty(), self.line, self.column) {
            (true, _, _) => f.write_str(&self.message),
            (false, 0, _) => write!(f, "{}: {}", self.file, self.message),
            (false, l, 0) => write!(f, "{}:{l}: {}", self.file, self.message),
            (false, l, c) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for CsvError {}

/// The fields of one stored row. A plain scan, eight bytes at a time: fields are short, so
/// this beats calling memchr per field.
pub struct Fields<'a> {
    rest: Option<&'a str>,
}

/// Where the first NUL of `b` is: eight bytes at a time, then the tail byte by byte. In
/// `(w - 0x0101..01) & !w & 0x8080..80` a word's first zero byte (its lowest, read little-end
/// first) has its high bit set and no byte before it has; later bytes may, and are ignored.
fn nul_in(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(c);
        let w = u64::from_le_bytes(bytes);
        let zero = w.wrapping_sub(ONES) & !w & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&x| x == 0)
        .map(|i| at + i)
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match nul_in(rest.as_bytes()) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

fn err(file: &str, line: u64, column: usize, message: impl Into<String>) -> CsvError {
    CsvError {
        file: file.to_string(),
        line,
        column,
        message: message.into(),
    }
}

/// Picks the separator from the header line: whichever of `,` and `;` occurs more often outside
/// quotes (comma on a tie).
fn sniff(head: &[u8]) -> (u8, bool) {
    let (mut commas, mut semis, mut in_q) = (0usize, 0usize, false);
    let mut crlf = false;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'"' => in_q = !in_q,
            b',' if !in_q => commas += 1,
            b';' if !in_q => semis += 1,
            b'\n' if !in_q => {
                crlf = i > 0 && head[i - 1] == b'\r';
                break;
            }
            _ => {}
        }
    }
    (if semis > commas { b';' } else { b',' }, crlf)
}

/// Parses one CSV file. Returns the table, or every structural error found (up to
/// [`MAX_ERRORS_PER_FILE`]).
pub fn parse<R: Read>(
    file: &str,
    reader: R,
    backslash_escapes: bool,
) -> Result<Table, Vec<CsvError>> {
    parse_sized(file, reader, backslash_escapes, 0, Encoding::Utf8)
}

/// The most text buffer reserved up front from a size the caller gives. A zip entry's size is
/// the sender's word: a tiny zip can declare 4 GiB. Past this the buffer grows with what is
/// actually read.
pub const MAX_RESERVE: u64 = 64 << 20;

/// How the bytes of a file become text.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// UTF-8, validated field by field.
    Utf8 { bom: bool },
    /// Transcoded to UTF-8 while streaming (UTF-16 with a BOM, or the source's
    /// `encoding` for files without one).
    Decoded(&'static encoding_rs::Encoding),
}

impl Text {
    /// Describes undecodable text in `place`; the first such error of a file without a BOM
    /// also says how to read a Windows export.
    fn invalid(self, place: &str, valid_up_to: usize, first: bool) -> String {
        match self {
            Text::Utf8 { bom } => {
                let hint = if first && !bom {
                    " (a Windows export? set `encoding = \"windows-1252\"` for this source)"
                } else {
                    ""
                };
                format!("invalid UTF-8 in {place} at byte {valid_up_to}{hint}")
            }
            Text::Decoded(e) => format!("malformed {} text in {place}", e.name()),
        }
    }
}

/// [`parse`] with the file's size in bytes when known, and the encoding of a file without a
/// BOM. The text buffer is reserved once from the size (field text never exceeds the file),
/// but never more than [`MAX_RESERVE`]: the size may be a number from the upload.
///
/// A UTF-8 BOM is kept for writing back; UTF-16 (LE or BE, with a BOM) and, when `encoding`
/// says so, Windows-1252 are transcoded to UTF-8 and written back as UTF-8 with a BOM (a note
/// says so).
pub fn parse_sized<R: Read>(
    file: &str,
    reader: R,
    backslash_escapes: bool,
    size_hint: u64,
    encoding: Encoding,
) -> Result<Table, Vec<CsvError>> {
    let mut reader = reader;
    let mut prefix = [0u8; 3];
    let got = match read_head(&mut reader, &mut prefix) {
        Ok(n) => n,
        Err(e) => return Err(vec![err(file, 0, 0, format!("cannot read: {e}"))]),
    };
    let head = &prefix[..got];
    let (text, bom_len) = if head.starts_with(b"\xEF\xBB\xBF") {
        (Text::Utf8 { bom: true }, 3)
    } else if head.starts_with(b"\xFF\xFE") {
        (Text::Decoded(encoding_rs::UTF_16LE), 2)
    } else if head.starts_with(b"\xFE\xFF") {
        (Text::Decoded(encoding_rs::UTF_16BE), 2)
    } else if encoding == Encoding::Windows1252 {
        (Text::Decoded(encoding_rs::WINDOWS_1252), 0)
    } else {
        (Text::Utf8 { bom: false }, 0)
    };
    let raw = (&prefix[bom_len..got]).chain(reader);
    let reserve = size_hint.saturating_sub(bom_len as u64).min(MAX_RESERVE) as usize;
    match text {
        Text::Utf8 { .. } => parse_text(file, raw, text, backslash_escapes, reserve, |_| false),
        Text::Decoded(e) => {
            // UTF-8 takes up to 1.5 times the bytes of UTF-16 and 3 times Windows-1252.
            let reserve = reserve.saturating_mul(3) / 2;
            let decoded = Transcode::new(raw, e);
            parse_text(file, decoded, text, backslash_escapes, reserve, |r| {
                r.non_ascii
            })
        }
    }
}

/// Fills `buf` from `r` as far as the input goes; returns how many bytes it holds.
fn read_head<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads the start of the text, up to the end of its first line (or [`PEEK`] bytes), for
/// sniffing the dialect.
fn read_first_line<R: Read>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while head.len() < PEEK {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        if chunk[..n].contains(&b'\n') {
            break;
        }
    }
    Ok(head)
}

/// The parse proper, over text that is UTF-8 unless `text` says it was transcoded.
/// `non_ascii` tells, once the input is consumed, whether a transcoded file held anything but
/// ASCII (then the written-back file differs from the upload's bytes).
fn parse_text<R: Read>(
    file: &str,
    mut src: R,
    text: Text,
    backslash_escapes: bool,
    reserve: usize,
    non_ascii: impl Fn(&R) -> bool,
) -> Result<Table, Vec<CsvError>> {
    let head = match read_first_line(&mut src) {
        Ok(h) => h,
        Err(e) => return Err(vec![err(file, 0, 0, format!("cannot read: {e}"))]),
    };
    let (delimiter, crlf) = sniff(&head);
    let dialect = Dialect {
        delimiter,
        bom: matches!(text, Text::Utf8 { bom: true }),
        crlf,
        backslash_escapes,
    };
    // Line endings are normalised to LF before parsing: the csv crate counts a CRLF record's
    // `\n` towards the next record, which would put physical line numbers off by one.
    let buf = LfReader::new(
        std::io::Cursor::new(head).chain(src),
        delimiter,
        backslash_escapes,
    );
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .double_quote(true)
        .escape(if backslash_escapes { Some(b'\\') } else { None })
        .from_reader(buf);

    let mut errors: Vec<CsvError> = Vec::new();
    let mut undecodable = 0usize;
    let mut invalid = |place: &str, valid_up_to: usize| {
        undecodable += 1;
        text.invalid(place, valid_up_to, undecodable == 1)
    };
    let mut rec = csv::ByteRecord::new();
    // Header.
    let mut header = match rdr.read_byte_record(&mut rec) {
        Ok(true) => {
            let mut h = Vec::with_capacity(rec.len());
            for (c, f) in rec.iter().enumerate() {
                match std::str::from_utf8(f) {
                    Ok(s) if s.contains('\0') => {
                        errors.push(err(file, 1, c + 1, "NUL byte in header"));
                    }
                    // Kept as uploaded (padding too) so it is written back unchanged; it
                    // is matched against the schema ignoring case and spaces.
                    Ok(s) => h.push(s.to_string()),
                    Err(e) => errors.push(err(file, 1, c + 1, invalid("header", e.valid_up_to()))),
                }
            }
            h
        }
        Ok(false) => return Err(vec![err(file, 1, 0, "file is empty: no header row")]),
        Err(e) => return Err(vec![err(file, 1, 0, format!("cannot read header: {e}"))]),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // Trailing empty header names (`a,b,c,,`) are ignored; data fields under them must then
    // be empty too.
    let uploaded_cols = header.len();
    while header.last().is_some_and(|h| h.trim().is_empty()) {
        header.pop();
    }
    let ncols = header.len();
    let mut t = Table {
        file: file.to_string(),
        header,
        dialect,
        ncols,
        data: String::with_capacity(reserve),
        starts: Vec::new(),
        lines: None,
        rows: 0,
        blank_rows: 0,
        malformed: Vec::new(),
        notes: Vec::new(),
    };
    // Rows longer than even the uploaded header whose extra fields are all empty (a stray
    // trailing separator): kept without the extras.
    let mut trailing = 0usize;
    // Whether the last record read was stored as a row (else it was malformed): an unclosed
    // quote is reported at it.
    let mut last_stored = true;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(err(file, line, 0, format!("unreadable CSV: {e}")));
                break;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        // Every field empty (the fields are back to back in the record's bytes).
        if rec.as_slice().is_empty() {
            t.blank_rows += 1;
            continue;
        }
        let n = rec.len();
        let fits = n == ncols || (n > ncols && rec.iter().skip(ncols).all(<[u8]>::is_empty));
        if !fits {
            // Undecodable text rejects the file whatever the field count.
            let mut ok = true;
            for (c, f) in rec.iter().enumerate() {
                let name = t.header.get(c).map_or("(past the header)", String::as_str);
                match std::str::from_utf8(f) {
                    Ok(s) if s.contains('\0') => {
                        errors.push(err(
                            file,
                            line,
                            c + 1,
                            format!("NUL byte in field `{name}`"),
                        ));
                        ok = false;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let place = format!("field `{name}`");
                        errors.push(err(file, line, c + 1, invalid(&place, e.valid_up_to())));
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                let text = |f: &[u8]| String::from_utf8_lossy(f).trim().to_string();
                let extra = rec
                    .iter()
                    .enumerate()
                    .skip(ncols)
                    .find(|(_, f)| !f.is_empty());
                t.malformed.push(MalformedRow {
                    line: line.min(u32::MAX as u64) as u32,
                    column: extra.map_or(n + 1, |(c, _)| c + 1),
                    expected: ncols,
                    found: n,
                    first: clip(&text(rec.get(0).unwrap_or_default())),
                    extra: extra.map_or(String::new(), |(_, f)| clip(&text(f))),
                    spans_lines: rec.iter().position(|f| f.contains(&b'\n')).map(|c| c + 1),
                });
                last_stored = false;
            }
        } else {
            if n > uploaded_cols {
                trailing += 1;
            }
            let before = t.data.len();
            t.starts.push(before as u32);
            // The common case, a row of valid UTF-8 without NUL, checked once for the whole
            // record (the fields are back to back in it: fields past `ncols` are empty); else
            // field by field, to say which field is wrong.
            let whole = rec.as_slice();
            let mut fast = false;
            if let Ok(text) = std::str::from_utf8(whole) {
                if !whole.contains(&0) {
                    fast = true;
                    for c in 0..ncols {
                        match rec.range(c).and_then(|r| text.get(r)) {
                            Some(f) => {
                                t.data.push_str(f);
                                t.data.push('\0');
                            }
                            // A field boundary inside a character: the field loop says where.
                            None => {
                                fast = false;
                                t.data.truncate(before);
                                break;
                            }
                        }
                    }
                }
            }
            let mut ok = true;
            for (c, f) in rec.iter().take(if fast { 0 } else { ncols }).enumerate() {
                match std::str::from_utf8(f) {
                    Ok(s) => {
                        if s.contains('\0') {
                            errors.push(err(
                                file,
                                line,
                                c + 1,
                                format!("NUL byte in field `{}`", t.header[c]),
                            ));
                            ok = false;
                            break;
                        }
                        t.data.push_str(s);
                        t.data.push('\0');
                    }
                    Err(e) => {
                        let place = format!("field `{}`", t.header[c]);
                        errors.push(err(file, line, c + 1, invalid(&place, e.valid_up_to())));
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                if t.data.len() > u32::MAX as usize {
                    errors.push(err(file, line, 0, "file too large (over 4 GiB of text)"));
                    break;
                }
                t.push_line(line.min(u32::MAX as u64) as u32);
                last_stored = true;
            } else {
                t.data.truncate(before);
                t.starts.truncate(t.rows);
            }
        }
        if errors.len() >= MAX_ERRORS_PER_FILE {
            break;
        }
    }
    if errors.is_empty() && rdr.get_ref().in_quote() {
        // The last record holds the runaway field: the first one with a line break in it, or
        // else its last field.
        let (line, column) = match t.malformed.last() {
            Some(m) if !last_stored => (m.line as u64, m.spans_lines.unwrap_or(m.found)),
            _ if t.rows > 0 => {
                let n = t.fields(t.rows - 1).count();
                let column = t
                    .fields(t.rows - 1)
                    .position(|f| f.contains('\n'))
                    .map_or(n, |i| i + 1);
                (t.line(t.rows - 1) as u64, column)
            }
            _ => (1, 0),
        };
        errors.push(err(
            file,
            line,
            column,
            "unclosed quote: a quoted field opened in this row runs to the end of the file \
             (an unclosed quote?)",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if uploaded_cols > ncols {
        t.notes.push(format!(
            "{file}: {} trailing empty column name(s) in the header ignored",
            uploaded_cols - ncols
        ));
    }
    if trailing > 0 {
        t.notes.push(format!(
            "{file}: {trailing} row(s) had empty fields past the last column (a stray trailing \
             separator); the empty fields were removed and the rows kept"
        ));
    }
    if let Text::Decoded(e) = text {
        if non_ascii(rdr.get_ref().get_ref().get_ref().1) || e != encoding_rs::WINDOWS_1252 {
            // Written back as UTF-8 with a BOM, which any reader, this one included, takes
            // as UTF-8 whatever the source's `encoding`.
            t.dialect.bom = true;
            t.notes.push(format!(
                "{file}: read as {}; the modified file is written as UTF-8",
                e.name()
            ));
        }
    }
    t.data.shrink_to_fit();
    t.starts.shrink_to_fit();
    if let Some(l) = &mut t.lines {
        l.shrink_to_fit();
    }
    Ok(t)
}

/// Transcodes a byte stream to UTF-8 while reading, in fixed-size chunks (memory does not
/// depend on the input). Malformed input (a lone UTF-16 surrogate, an odd final byte) becomes
/// a byte that is never valid UTF-8, so the parser reports the row and column of the damage
/// instead of a replacement character hiding it.
struct Transcode<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    eof: bool,
    /// Decoded text not yet handed out, with one spare byte for the malformed marker.
    output: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    done: bool,
    /// Some decoded character was not ASCII.
    non_ascii: bool,
}

impl<R: Read> Transcode<R> {
    const CHUNK: usize = 16 * 1024;

    fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        Transcode {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; Self::CHUNK],
            in_pos: 0,
            in_len: 0,
            eof: false,
            // Worst case: three bytes of UTF-8 per input byte (Windows-1252), plus the marker.
            output: vec![0; 3 * Self::CHUNK + 16],
            out_pos: 0,
            out_len: 0,
            done: false,
            non_ascii: false,
        }
    }
}

impl<R: Read> Read for Transcode<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_pos < self.out_len {
                let n = out.len().min(self.out_len - self.out_pos);
                out[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if self.in_pos == self.in_len && !self.eof {
                self.in_len = self.inner.read(&mut self.input)?;
                self.in_pos = 0;
                self.eof = self.in_len == 0;
            }
            let room = self.output.len() - 1;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_pos..self.in_len],
                &mut self.output[..room],
                self.eof,
            );
            self.in_pos += read;
            self.out_pos = 0;
            self.out_len = written;
            match result {
                encoding_rs::DecoderResult::InputEmpty => self.done = self.eof,
                encoding_rs::DecoderResult::OutputFull => {}
                encoding_rs::DecoderResult::Malformed(..) => {
                    self.output[written] = 0xFF;
                    self.out_len += 1;
                }
            }
            if !self.non_ascii && !self.output[..self.out_len].is_ascii() {
                self.non_ascii = true;
            }
        }
    }
}

/// Turns CRLF and lone CR into LF, streaming and in place: each CR becomes LF and an LF
/// right after a CR is dropped, so the output never grows.
///
/// It also follows quoting, so that a file ending inside a quoted field (an unclosed quote that
/// swallowed the rest of the file) is an error rather than one long value.
struct LfReader<R> {
    inner: R,
    after_cr: bool,
    delimiter: u8,
    backslash_escapes: bool,
    quote: QuoteState,
}

/// Where the byte stream is with respect to quoting, as the csv reader sees it: a quote opens
/// a quoted field only at the start of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    StartField,
    InField,
    InQuoted,
    Escaped,
    QuoteInQuoted,
}

impl<R: Read> LfReader<R> {
    fn new(inner: R, delimiter: u8, backslash_escapes: bool) -> Self {
        LfReader {
            inner,
            after_cr: false,
            delimiter,
            backslash_escapes,
            quote: QuoteState::StartField,
        }
    }

    fn get_ref(&self) -> &R {
        &self.inner
    }

    /// True when the input so far ends inside a quoted field.
    fn in_quote(&self) -> bool {
        matches!(self.quote, QuoteState::InQuoted | QuoteState::Escaped)
    }

    fn track_quotes(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let d = self.delimiter;
        let unquoted = matches!(self.quote, StartField | InField);
        if unquoted && !bytes.contains(&b'"') {
            if let Some(&last) = bytes.last() {
                self.quote = if last == d || last == b'\n' || last == b'\r' {
                    StartField
                } else {
                    InField
                };
            }
            return;
        }
        for &b in bytes {
            self.quote = match (self.quote, b) {
                (StartField, b'"') => InQuoted,
                (StartField | InField | QuoteInQuoted, x) if x == d || x == b'\n' || x == b'\r' => {
                    StartField
                }
                (StartField | InField, _) => InField,
                (InQuoted, b'"') => QuoteInQuoted,
                (InQuoted, b'\\') if self.backslash_escapes => Escaped,
                (InQuoted, _) | (Escaped, _) => InQuoted,
                (QuoteInQuoted, b'"') => InQuoted,
                (QuoteInQuoted, _) => InField,
            };
        }
    }
}

impl<R: Read> Read for LfReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.inner.read(out)?;
            if n == 0 {
                return Ok(0);
            }
            self.track_quotes(&out[..n]);
            if !self.after_cr && !out[..n].contains(&b'\r') {
                return Ok(n);
            }
            let mut w = 0;
            for r in 0..n {
                let b = out[r];
                if b == b'\n' && self.after_cr {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = b == b'\r';
                out[w] = if self.after_cr { b'\n' } else { b };
                w += 1;
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

/// Writes CSV rows in a given dialect.
///
/// Made by [`CsvWriter::new`], every piece of a row (a field, a separator, a quote, the line
/// end) is one `write_all` to the output: give it a buffered one. Made by
/// [`CsvWriter::buffered`], it buffers itself exactly as a `std::io::BufWriter` of that capacity
/// in front of the output would (the output sees the same `write_all` calls, chunk for chunk),
/// and rows stored in a [`Table`] are copied in one pass ([`CsvWriter::write_stored_row`]); call
/// [`CsvWriter::finish`] to write what is still buffered.
pub struct CsvWriter<W: Write> {
    out: W,
    dialect: Dialect,
    /// The header row is still to come: it quotes both possible separators, because the
    /// separator is sniffed from the header when the file is read again.
    header: bool,
    /// What each byte is in a stored row (see [`CsvWriter::write_stored_row`]).
    class: [u8; 256],
    /// Capacity of the buffer (0: none, every piece is written as it comes).
    cap: usize,
    buf: Vec<u8>,
}

/// [`CsvWriter::class`]: a byte copied as is, a stored row's field separator (NUL), a byte that
/// makes its field quoted in a data row (the separator, `"`, CR, LF and, with backslash escapes,
/// `\`; the header also quotes both possible separators, so it never takes the copy).
const PLAIN: u8 = 0;
const SEP: u8 = 1;
const QUOTED: u8 = 2;

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W, dialect: Dialect) -> std::io::Result<Self> {
        Self::buffered(out, dialect, 0)
    }

    /// A writer with a buffer of `cap` bytes (see the type's documentation).
    pub fn buffered(out: W, dialect: Dialect, cap: usize) -> std::io::Result<Self> {
        let mut class = [PLAIN; 256];
        class[0] = SEP;
        for b in [dialect.delimiter, b'"', b'\n', b'\r'] {
            class[b as usize] = QUOTED;
        }
        if dialect.backslash_escapes {
            class[b'\\' as usize] = QUOTED;
        }
        let mut w = CsvWriter {
            out,
            dialect,
            header: true,
            class,
            cap,
            buf: Vec::with_capacity(cap),
        };
        if dialect.bom {
            w.put(b"\xEF\xBB\xBF")?;
        }
        Ok(w)
    }

    /// One piece of output, as `BufWriter::write_all` takes it: the buffer goes out first when
    /// the piece does not fit, and a piece as big as the buffer goes straight out.
    fn put(&mut self, piece: &[u8]) -> std::io::Result<()> {
        if self.cap == 0 {
            return self.out.write_all(piece);
        }
        if self.buf.len() + piece.len() > self.cap && !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        if piece.len() >= self.cap {
            self.out.write_all(piece)
        } else {
            self.buf.extend_from_slice(piece);
            Ok(())
        }
    }

    fn line_end(&self) -> &'static [u8] {
        if self.dialect.crlf {
            b"\r\n"
        } else {
            b"\n"
        }
    }

    pub fn write_row<'a, I: IntoIterator<Item = &'a str>>(
        &mut self,
        fields: I,
    ) -> std::io::Result<()> {
        for (i, f) in fields.into_iter().enumerate() {
            if i > 0 {
                self.put(&[self.dialect.delimiter])?;
            }
            self.write_field(f)?;
        }
        self.header = false;
        self.put(self.line_end())
    }

    /// Writes a row as a [`Table`] stores it (its fields separated by NUL): the same bytes, in
    /// the same chunks, as [`CsvWriter::write_row`] of its fields. With a buffer, a row that
    /// needs no quotes and fits in what is left of the buffer is copied in one pass.
    pub fn write_stored_row(&mut self, text: &str) -> std::io::Result<()> {
        let end = self.line_end();
        if self.header || self.cap == 0 || self.buf.len() + text.len() + end.len() > self.cap {
            return self.write_row(text.split('\0'));
        }
        let start = self.buf.len();
        let (d, class) = (self.dialect.delimiter, &self.class);
        let mut seen = PLAIN;
        self.buf.extend(text.bytes().map(|b| {
            let c = class[b as usize];
            seen |= c;
            if c == SEP {
                d
            } else {
                b
            }
        }));
        if seen & QUOTED != 0 {
            self.buf.truncate(start);
            return self.write_row(text.split('\0'));
        }
        self.buf.extend_from_slice(end);
        Ok(())
    }

    fn write_field(&mut self, f: &str) -> std::io::Result<()> {
        let d = self.dialect.delimiter;
        let bs = self.dialect.backslash_escapes;
        let header = self.header;
        let needs = f.bytes().any(|b| {
            b == d
                || (header && (b == b',' || b == b';'))
                || b == b'"'
                || b == b'\n'
                || b == b'\r'
                || (bs && b == b'\\')
        });
        if !needs {
            return self.put(f.as_bytes());
        }
        self.put(b"\"")?;
        let mut start = 0;
        let bytes = f.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let esc: Option<&[u8]> = match b {
                b'"' if bs => Some(b"\\\""),
                b'"' => Some(b"\"\""),
                b'\\' if bs => Some(b"\\\\"),
                _ => None,
            };
            if let Some(e) = esc {
                self.put(&bytes[start..i])?;
                self.put(e)?;
                start = i + 1;
            }
        }
        self.put(&bytes[start..])?;
        self.put(b"\"")
    }

    /// Writes what is still buffered and returns the output (not flushed).
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
        }
        Ok(self.out)
    }

    /// The output of a writer made by [`CsvWriter::new`] (one made by
    /// [`CsvWriter::buffered`] needs [`CsvWriter::finish`]).
    pub fn into_inner(self) -> W {
        debug_assert!(
            self.buf.is_empty(),
            "CsvWriter::into_inner with buffered output"
        );
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_finds_the_first_nul_at_every_place_and_length() {
        for len in 0..40 {
            for first in 0..=len {
                for second in first..=len {
                    // Bytes that look like NUL to a careless word test: 0x01 after a
                    // zero, 0x80 and 0xff.
                    let mut b: Vec<u8> = (0..len).map(|i| [1u8, 0x80, 0xff, b'a'][i % 4]).collect();
                    if first < len {
                        b[first] = 0;
                    }
                    if second < len {
                        b[second] = 0;
                    }
                    let want = b.iter().position(|&x| x == 0);
                    assert_eq!(nul_in(&b), want, "{b:?}");
                }
            }
        }
    }

    fn p(s: &[u8], bs: bool) -> Result<Table, Vec<CsvError>> {
        parse("t.csv", s, bs)
    }

    /// A reader that hands out one byte at a time.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) => {
                    out[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    }

    #[test]
    fn bom_crlf_semicolon() {
        let t = p(b"\xEF\xBB\xBFa;b\r\n1;2\r\n3;\"x;y\"\r\n", false).unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        assert!(t.dialect.bom && t.dialect.crlf);
        assert_eq!(t.dialect.delimiter, b';');
        assert_eq!(t.field(1, 1), "x;y");
        assert_eq!(t.line(1), 3);
    }

    #[test]
    fn multiline_field_keeps_physical_lines() {
        let t = p(b"a,b\n1,\"two\nlines\"\n3,4\n", false).unwrap();
        assert_eq!(t.field(0, 1), "two\nlines");
        assert_eq!(t.line(0), 2);
        assert_eq!(t.line(1), 4);
    }

    #[test]
    fn backslash_escapes_apple() {
        let t = p(b"a,b\n\"say \\\"hi\\\"\",2\n", true).unwrap();
        assert_eq!(t.field(0, 0), "say \"hi\"");
        let t = p(b"a,b\n\"say \"\"hi\"\"\",2\n", true).unwrap();
        assert_eq!(t.field(0, 0), "say \"hi\"");
    }

    #[test]
    fn wrong_field_counts_are_malformed_rows_and_the_rest_is_read() {
        let t = p(b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n5,6,7\n", false).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t.field(1, 0), t.line(1)), ("5", 5));
        let m = &t.malformed;
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].line, m[0].column, m[0].found), (3, 3, 2));
        assert_eq!((m[1].line, m[1].column, m[1].found), (4, 4, 4));
        assert_eq!((m[1].first.as_str(), m[1].extra.as_str()), ("1", "4"));
        assert_eq!(
            m[0].message(),
            "expected 3 fields as in the header, found 2"
        );
        let (field, detail) = m[0].describe(&t.header);
        assert_eq!(field, "c");
        assert!(detail.contains("column 3 `c`"), "{detail}");
        let (field, detail) = m[1].describe(&t.header);
        assert_eq!(field, "");
        assert!(detail.contains("column 4 is past"), "{detail}");
        // The offending column of a long row is its first non-empty extra field.
        let t = p(b"a,b\n1,2,,x\n", false).unwrap();
        assert_eq!(
            (t.malformed[0].column, t.malformed[0].extra.as_str()),
            (4, "x")
        );
        // A malformed row's value is clipped in the report.
        let long = format!("a,b\n{},2,3\n", "x".repeat(1000));
        let t = p(long.as_bytes(), false).unwrap();
        assert!(t.malformed[0].first.len() < 100);
    }

    #[test]
    fn trailing_empty_fields_and_header_names_are_dropped_with_a_note() {
        // A stray trailing comma on some rows.
        let t = p(b"a,b\n1,2,\n3,4\n5,6,,\n", false).unwrap();
        assert_eq!((t.len(), t.ncols()), (3, 2));
        assert!(t.malformed.is_empty());
        assert_eq!((t.field(0, 1), t.fields(0).count()), ("2", 2));
        assert_eq!(
            t.notes,
            ["t.csv: 2 row(s) had empty fields past the last column (a stray trailing separator); the empty fields were removed and the rows kept"]
        );
        // Two trailing empty header names: rows under them may be empty, or shorter.
        let t = p(b"a,b,,\n1,2,,\n3,4\n5,6,x\n", false).unwrap();
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!(t.len(), 2);
        assert_eq!((t.malformed[0].line, t.malformed[0].column), (4, 3));
        assert_eq!(
            t.notes,
            ["t.csv: 2 trailing empty column name(s) in the header ignored"]
        );
    }

    #[test]
    fn an_unclosed_quote_in_a_malformed_row_still_rejects() {
        let e = p(b"a,b,c\n1,\"x,y\n2,3,4\n", false).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 2));
        assert!(e[0].message.contains("unclosed quote"));
    }

    #[test]
    fn invalid_utf8_suggests_windows_1252_once() {
        let e = p(b"a,b\n1,\xe9\n2,\xe9\n", false).unwrap_err();
        assert!(
            e[0].message.contains("encoding = \"windows-1252\""),
            "{}",
            e[0]
        );
        assert!(!e[1].message.contains("windows-1252"), "{}", e[1]);
        // In a malformed row too, and not when a UTF-8 BOM says what the file is.
        let e = p(b"a,b\n1,2,\xe9\n", false).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 3));
        assert!(e[0].message.contains("windows-1252"));
        let e = p(b"\xEF\xBB\xBFa,b\n1,\xe9\n", false).unwrap_err();
        assert!(!e[0].message.contains("windows-1252"), "{}", e[0]);
    }

    fn w1252(s: &[u8]) -> Result<Table, Vec<CsvError>> {
        parse_sized("t.csv", s, false, 0, Encoding::Windows1252)
    }

    #[test]
    fn windows_1252_is_transcoded_when_configured() {
        let t = w1252(b"a;b\r\n1;Jos\xe9 \x80\r\n").unwrap();
        assert_eq!(t.field(0, 1), "Jos\u{e9} \u{20ac}");
        // Written back as UTF-8, with a BOM so that it reads as UTF-8 whatever the setting.
        assert!(t.dialect.bom && t.dialect.crlf && t.dialect.delimiter == b';');
        assert_eq!(
            t.notes,
            ["t.csv: read as windows-1252; the modified file is written as UTF-8"]
        );
        // ASCII is the same in both: nothing to say, the file is written back as it came.
        let t = w1252(b"a,b\n1,2\n").unwrap();
        assert!(!t.dialect.bom && t.notes.is_empty());
        // A BOM wins over the setting.
        let t = w1252("\u{feff}a,b\n1,\u{e9}\n".as_bytes()).unwrap();
        assert_eq!(t.field(0, 1), "\u{e9}");
        assert!(t.notes.is_empty());
    }

    fn utf16(s: &str, le: bool) -> Vec<u8> {
        let mut out = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in s.encode_utf16() {
            out.extend(if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf16_with_a_bom_is_transcoded() {
        for le in [true, false] {
            let bytes = utf16("a,b\r\n1,\"Zo\u{eb}\n\u{1F600}\"\r\n2,x\r\n", le);
            for one_byte in [false, true] {
                let t = if one_byte {
                    parse("t.csv", OneByte(&bytes), false).unwrap()
                } else {
                    parse("t.csv", &bytes[..], false).unwrap()
                };
                assert_eq!(t.field(0, 1), "Zo\u{eb}\n\u{1F600}");
                assert_eq!((t.line(0), t.line(1)), (2, 4));
                assert!(t.dialect.bom && t.dialect.crlf);
                let enc = if le { "UTF-16LE" } else { "UTF-16BE" };
                assert_eq!(
                    t.notes,
                    [format!(
                        "t.csv: read as {enc}; the modified file is written as UTF-8"
                    )]
                );
            }
        }
        // A lone surrogate is located, not replaced.
        let mut bytes = utf16("a,b\n1,x", true);
        bytes.extend([0x00, 0xD8]);
        bytes.extend(&utf16("y\n", true)[2..]);
        let e = parse("t.csv", &bytes[..], false).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 2));
        assert!(e[0].message.contains("malformed UTF-16LE"), "{}", e[0]);
        // A NUL in UTF-16 text is a NUL.
        let e = parse("t.csv", &utf16("a,b\n1,x\0\n", true)[..], false).unwrap_err();
        assert!(e[0].message.contains("NUL"), "{}", e[0]);
    }

    /// Every field and row of a table, for comparing two parses.
    fn cells(t: &Table) -> Vec<Vec<String>> {
        (0..t.len())
            .map(|r| t.fields(r).map(str::to_string).collect())
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64,
            ..Default::default()
        })]

        /// UTF-16 text reads as the same text in UTF-8 would, whatever the chunking, and
        /// arbitrary bytes after a UTF-16 BOM never panic.
        #[test]
        fn utf16_reads_like_utf8(
            text in "[a,;\"\n\r\u{e9}\u{20ac}\u{1F600} x]{0,40}",
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            le in proptest::prelude::any::<bool>(),
        ) {
            let text = format!("h1,h2\n{text}");
            let want = p(text.as_bytes(), false);
            let bytes = utf16(&text, le);
            for got in [parse("t.csv", &bytes[..], false), parse("t.csv", OneByte(&bytes), false)] {
                match (&want, got) {
                    (Ok(w), Ok(g)) => {
                        proptest::prop_assert_eq!(cells(w), cells(&g));
                        proptest::prop_assert_eq!(&w.malformed, &g.malformed);
                    }
                    (Err(w), Err(g)) => proptest::prop_assert_eq!(w, &g),
                    (w, g) => proptest::prop_assert!(false, "{w:?} vs {g:?}"),
                }
            }
            let mut bytes = vec![0xFF, 0xFE];
            bytes.extend(&junk);
            let _ = parse("t.csv", &bytes[..], false);
            let _ = parse_sized("t.csv", &junk[..], false, u64::MAX, Encoding::Windows1252);
        }
    }

    #[test]
    fn a_size_hint_reserves_no_more_than_the_cap() {
        // The size is the sender's word; the parse still works with whatever it says.
        for hint in [0, 10, u64::MAX] {
            let t = parse_sized("t.csv", &b"a,b\n1,2\n"[..], false, hint, Encoding::Utf8).unwrap();
            assert_eq!(t.field(0, 1), "2");
            assert!(t.heap_bytes() < 1024, "{}", t.heap_bytes());
        }
    }

    #[test]
    fn invalid_utf8_and_nul() {
        let e = p(b"a,b\n1,\xff\xfe\n", false).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 2));
        assert!(e[0].message.contains("invalid UTF-8"));
        let e = p(b"a,b\n1,x\0y\n", false).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 2));
        assert!(e[0].message.contains("NUL"));
    }

    #[test]
    fn line_endings_are_normalised_across_chunk_boundaries() {
        // A reader that hands out one byte at a time puts every CR at a chunk's end.
        let input = b"a\r\nb\rc\r\r\nd\r";
        for chunked in [false, true] {
            let mut out = Vec::new();
            if chunked {
                LfReader::new(OneByte(input), b',', false)
                    .read_to_end(&mut out)
                    .unwrap();
            } else {
                LfReader::new(&input[..], b',', false)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            assert_eq!(out, b"a\nb\nc\n\nd\n", "chunked {chunked}");
        }
        let t = p(b"a,b\r\n1,\"x\r\ny\"\r\n3,4\r\n", false).unwrap();
        assert_eq!((t.line(0), t.line(1)), (2, 4));
    }

    #[test]
    fn unclosed_quotes_are_errors_but_stray_quotes_are_not() {
        let e = p(b"a,b\n1,\"open\n2,3\n", false).unwrap_err();
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("unclosed quote"));
        // A quote inside an unquoted field is literal; doubled and escaped quotes balance.
        let t = p(b"a,b\n1,O\"Neil\n2,\"x\"\"y\"\n", false).unwrap();
        assert_eq!((t.field(0, 1), t.field(1, 1)), ("O\"Neil", "x\"y"));
        let t = p(b"a,b\n1,\"x\\\\\"\n2,\"q\\\"r\"\n", true).unwrap();
        assert_eq!((t.field(0, 1), t.field(1, 1)), ("x\\", "q\"r"));
    }

    #[test]
    fn empty_file_is_an_error() {
        let e = p(b"", false).unwrap_err();
        assert!(e[0].message.contains("empty"));
    }

    #[test]
    fn writer_round_trips_both_dialects() {
        for bs in [false, true] {
            let d = Dialect {
                delimiter: b';',
                bom: true,
                crlf: true,
                backslash_escapes: bs,
            };
            let vals = [
                "plain",
                "semi;colon",
                "quo\"te",
                "back\\slash",
                "line\nbreak",
                "",
            ];
            let mut w = CsvWriter::new(Vec::new(), d).unwrap();
            w.write_row(["h1", "h2", "h3", "h4", "h5", "h6"]).unwrap();
            w.write_row(vals).unwrap();
            let bytes = w.into_inner();
            let t = p(&bytes, bs).unwrap();
            assert_eq!(t.dialect, d);
            for (c, v) in vals.iter().enumerate() {
                assert_eq!(t.field(0, c), *v, "dialect {d:?}");
            }
        }
    }
}
