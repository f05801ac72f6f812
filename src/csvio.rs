//! CSV as SIS vendors really write it.
//!
//! Accepts UTF-8 with or without a BOM, CRLF or LF, comma or semicolon separators, quoted
//! fields with separators and line breaks inside, and (for Apple School Manager files)
//! backslash escapes inside quoted fields. Rows are stored column-major-free and compact: all
//! field text of a table lives in one `String`, with one `u32` end offset per field, so a table
//! costs little more than its bytes on disk. Structural problems (invalid UTF-8, NUL bytes,
//! wrong field counts, an unreadable header) are reported with file, physical line and column.

use std::io::{BufRead, BufReader, Read, Write};

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
    /// Row `row`'s fields, NUL-separated.
    fn row_text(&self, row: usize) -> &str {
        let start = self.starts[row] as usize;
        let end = match self.starts.get(row + 1) {
            Some(&next) => next as usize - 1,
            None => self.data.len().saturating_sub(1),
        };
        &self.data[start..end]
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

/// The fields of one stored row. A plain byte scan: fields are short, so this beats calling
/// memchr per field.
pub struct Fields<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == 0) {
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
    parse_sized(file, reader, backslash_escapes, 0)
}

/// [`parse`] with the file's size in bytes when known: the text buffer is reserved once
/// (field text never exceeds the file), so memory does not overshoot by doubling.
pub fn parse_sized<R: Read>(
    file: &str,
    reader: R,
    backslash_escapes: bool,
    size_hint: u64,
) -> Result<Table, Vec<CsvError>> {
    let mut buf = BufReader::with_capacity(PEEK, reader);
    let head = match buf.fill_buf() {
        Ok(h) => h,
        Err(e) => return Err(vec![err(file, 0, 0, format!("cannot read: {e}"))]),
    };
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    let (delimiter, crlf) = sniff(if bom { &head[3..] } else { head });
    if bom {
        buf.consume(3);
    }
    let dialect = Dialect {
        delimiter,
        bom,
        crlf,
        backslash_escapes,
    };
    // Line endings are normalised to LF before parsing: the csv crate counts a CRLF record's
    // `\n` towards the next record, which would put physical line numbers off by one.
    let buf = LfReader::new(buf, delimiter, backslash_escapes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .double_quote(true)
        .escape(if backslash_escapes { Some(b'\\') } else { None })
        .from_reader(buf);

    let mut errors: Vec<CsvError> = Vec::new();
    let mut rec = csv::ByteRecord::new();
    // Header.
    let header = match rdr.read_byte_record(&mut rec) {
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
                    Err(e) => errors.push(err(
                        file,
                        1,
                        c + 1,
                        format!("invalid UTF-8 in header at byte {}", e.valid_up_to()),
                    )),
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
    let ncols = header.len();
    let mut t = Table {
        file: file.to_string(),
        header,
        dialect,
        ncols,
        data: String::with_capacity(size_hint.min(u32::MAX as u64) as usize),
        starts: Vec::new(),
        lines: None,
        rows: 0,
        blank_rows: 0,
    };
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
        if rec.iter().all(|f| f.is_empty()) {
            t.blank_rows += 1;
            continue;
        }
        if rec.len() != ncols {
            let multi = rec.iter().any(|f| f.contains(&b'\n'));
            let hint = if multi {
                " (the row spans several lines: an unclosed quote?)"
            } else {
                ""
            };
            let column = if rec.len() > ncols {
                ncols + 1
            } else {
                rec.len() + 1
            };
            errors.push(err(
                file,
                line,
                column,
                format!(
                    "expected {ncols} fields as in the header, found {}{hint}",
                    rec.len()
                ),
            ));
        } else {
            let before = t.data.len();
            t.starts.push(before as u32);
            let mut ok = true;
            for (c, f) in rec.iter().enumerate() {
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
                        errors.push(err(
                            file,
                            line,
                            c + 1,
                            format!(
                                "invalid UTF-8 in field `{}` at byte {}",
                                t.header[c],
                                e.valid_up_to()
                            ),
                        ));
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
        let line = if t.rows > 0 {
            t.line(t.rows - 1) as u64
        } else {
            1
        };
        // The last record holds the runaway field: the first one with a line break in it, or
        // else its last field.
        let column = if t.rows > 0 {
            let n = t.fields(t.rows - 1).count();
            t.fields(t.rows - 1)
                .position(|f| f.contains('\n'))
                .map_or(n, |i| i + 1)
        } else {
            0
        };
        errors.push(err(
            file,
            line,
            column,
            "unclosed quote: a quoted field opened in this row runs to the end of the file \
             (an unclosed quote?)",
        ));
    }
    if errors.is_empty() {
        t.data.shrink_to_fit();
        t.starts.shrink_to_fit();
        if let Some(l) = &mut t.lines {
            l.shrink_to_fit();
        }
        Ok(t)
    } else {
        Err(errors)
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
pub struct CsvWriter<W: Write> {
    out: W,
    dialect: Dialect,
    /// The header row is still to come: it quotes both possible separators, because the
    /// separator is sniffed from the header when the file is read again.
    header: bool,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(mut out: W, dialect: Dialect) -> std::io::Result<Self> {
        if dialect.bom {
            out.write_all(b"\xEF\xBB\xBF")?;
        }
        Ok(CsvWriter {
            out,
            dialect,
            header: true,
        })
    }

    pub fn write_row<'a, I: IntoIterator<Item = &'a str>>(
        &mut self,
        fields: I,
    ) -> std::io::Result<()> {
        for (i, f) in fields.into_iter().enumerate() {
            if i > 0 {
                self.out.write_all(&[self.dialect.delimiter])?;
            }
            self.write_field(f)?;
        }
        self.header = false;
        self.out
            .write_all(if self.dialect.crlf { b"\r\n" } else { b"\n" })
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
            return self.out.write_all(f.as_bytes());
        }
        self.out.write_all(b"\"")?;
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
                self.out.write_all(&bytes[start..i])?;
                self.out.write_all(e)?;
                start = i + 1;
            }
        }
        self.out.write_all(&bytes[start..])?;
        self.out.write_all(b"\"")
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8], bs: bool) -> Result<Table, Vec<CsvError>> {
        parse("t.csv", s, bs)
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
    fn wrong_field_counts_name_line_and_column() {
        let e = p(b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n", false).unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[0].column), (3, 3));
        assert_eq!((e[1].line, e[1].column), (4, 4));
        assert!(e[0].to_string().starts_with("t.csv:3:3: expected 3 fields"));
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
