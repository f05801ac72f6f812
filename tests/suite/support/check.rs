//! Running `rosterdrop check` and reading back what it wrote: `patch-summary.csv` (one parser,
//! checking the contract's header), `summary.txt`, `modified/` and `modified.zip`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::bundles::zip_files;
use super::{bin, dir_files};

/// The patch-summary header (contract).
pub const PATCH_HEADER: [&str; 8] = [
    "file", "line", "id", "rule", "action", "field", "value", "detail",
];

/// One row of `patch-summary.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub file: String,
    pub line: u32,
    pub id: String,
    pub rule: String,
    pub action: String,
    pub field: String,
    pub value: String,
    pub detail: String,
}

impl Patch {
    /// `(file, line, id, rule, action)`: what most assertions compare.
    pub fn key(&self) -> (&str, u32, &str, &str, &str) {
        (&self.file, self.line, &self.id, &self.rule, &self.action)
    }
}

/// What one `rosterdrop check` run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub out: std::path::PathBuf,
    /// `None` when patch-summary.csv was not written.
    pub patches: Option<Vec<Patch>>,
    /// Empty when summary.txt was not written.
    pub summary: String,
}

impl Run {
    pub fn patches(&self) -> &[Patch] {
        self.patches
            .as_deref()
            .unwrap_or_else(|| panic!("no patch-summary.csv in {}", self.out.display()))
    }
    pub fn keys(&self) -> Vec<(&str, u32, &str, &str, &str)> {
        self.patches().iter().map(Patch::key).collect()
    }
    pub fn count(&self, rule: &str) -> usize {
        self.patches().iter().filter(|p| p.rule == rule).count()
    }
    pub fn find(&self, file: &str, id: &str, rule: &str) -> &Patch {
        self.patches()
            .iter()
            .find(|p| p.file == file && p.id == id && p.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} patch for {file} id {id}: {:#?}", self.patches))
    }
    /// The bytes of `modified/<name>`.
    pub fn modified(&self, name: &str) -> Vec<u8> {
        let p = self.out.join("modified").join(name);
        fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
    pub fn modified_text(&self, name: &str) -> String {
        String::from_utf8(self.modified(name)).expect("modified file is UTF-8")
    }
    /// Every file of `modified/`, by name.
    pub fn modified_files(&self) -> BTreeMap<String, Vec<u8>> {
        dir_files(&self.out.join("modified"))
    }
    /// Asserts the exit code, with the run's output in the message.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}\nsummary.txt:\n{}",
            self.stdout, self.stderr, self.summary
        );
        self
    }
    /// Asserts that `modified.zip` holds exactly the files of `modified/`, at its root.
    pub fn assert_zip_matches_dir(&self) {
        let zipped = zip_files(&self.out.join("modified.zip"));
        let dir = self.modified_files();
        assert_eq!(
            zipped.keys().collect::<Vec<_>>(),
            dir.keys().collect::<Vec<_>>(),
            "modified.zip entries vs modified/"
        );
        for (name, bytes) in &dir {
            assert!(
                zipped[name] == *bytes,
                "modified.zip:{name} differs from modified/{name}"
            );
        }
    }
    /// Asserts a located structural error `needle` (such as `students.csv:3:7:`) is in
    /// summary.txt, that the verdict is REJECTED with exit 1, that the file it names has no
    /// patch rows (it could not be read; the other files' findings are still listed) and that
    /// no modified bundle was written.
    pub fn assert_rejected_at(&self, needle: &str) {
        self.assert_code(1);
        assert!(
            self.summary.contains("REJECTED"),
            "verdict in summary.txt:\n{}",
            self.summary
        );
        assert!(
            self.summary.contains(needle),
            "summary.txt should name `{needle}`:\n{}",
            self.summary
        );
        let file = needle.split(':').next().unwrap_or(needle);
        assert!(
            self.patches().iter().all(|p| p.file != file),
            "an unreadable file has no patch rows: {:#?}",
            self.patches()
        );
        assert!(
            !self.out.join("modified").exists() && !self.out.join("modified.zip").exists(),
            "a rejected bundle has no modified output"
        );
    }
}

/// Runs `rosterdrop check PATH --out OUT -q [extra...]` and collects what it wrote.
pub fn check(path: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut c = bin();
    c.arg("check").arg(path).arg("--out").arg(out).arg("-q");
    c.args(extra);
    run(c, out)
}

/// Like [`check`], with `--config CONFIG --source SOURCE`.
pub fn check_with(path: &Path, out: &Path, config: &Path, source: &str) -> Run {
    let mut c = bin();
    c.arg("check").arg(path).arg("--out").arg(out).arg("-q");
    c.arg("--config").arg(config).arg("--source").arg(source);
    run(c, out)
}

/// Runs a prepared command whose report goes to `out`.
pub fn run(mut c: Command, out: &Path) -> Run {
    let o = c.output().expect("run rosterdrop");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "rosterdrop panicked:\n{stderr}"
    );
    let patches = fs::read(out.join("patch-summary.csv"))
        .ok()
        .map(|b| parse_patch_summary(&b));
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        out: out.to_path_buf(),
        patches,
        summary: fs::read_to_string(out.join("summary.txt")).unwrap_or_default(),
    }
}

/// Parses patch-summary.csv, checking its header is exactly the contract's.
pub fn parse_patch_summary(bytes: &[u8]) -> Vec<Patch> {
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(first_line).trim_end_matches('\r'),
        PATCH_HEADER.join(","),
        "patch-summary.csv header"
    );
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    r.records()
        .map(|rec| {
            let rec = rec.expect("patch-summary.csv is valid CSV");
            assert_eq!(rec.len(), 8, "patch-summary.csv row {rec:?}");
            Patch {
                file: rec[0].to_string(),
                line: rec[1]
                    .parse()
                    .unwrap_or_else(|_| panic!("line `{}` is a number", &rec[1])),
                id: rec[2].to_string(),
                rule: rec[3].to_string(),
                action: rec[4].to_string(),
                field: rec[5].to_string(),
                value: rec[6].to_string(),
                detail: rec[7].to_string(),
            }
        })
        .collect()
}

/// Whether some line of `summary` mentions all of `words` (counts per file and rule).
pub fn summary_line_has(summary: &str, words: &[&str]) -> bool {
    summary.lines().any(|l| {
        words.iter().all(|w| {
            l.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
                .any(|tok| tok == *w)
        })
    })
}

/// Asserts two sets of files (name -> bytes) are equal, showing the first difference as text.
pub fn assert_same_files(
    got: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: file names"
    );
    for (name, bytes) in want {
        let g = &got[name];
        if g != bytes {
            let (g, w) = (String::from_utf8_lossy(g), String::from_utf8_lossy(bytes));
            let line = g
                .split_inclusive('\n')
                .zip(w.split_inclusive('\n'))
                .position(|(a, b)| a != b)
                .map_or(0, |i| i + 1);
            panic!("{what}: {name} differs (first at line {line})\n got: {g:?}\nwant: {w:?}");
        }
    }
}

/// Parses CSV text into records: standard double-quote escaping, or Apple's backslash escapes.
pub fn records(bytes: &[u8], delimiter: u8, apple: bool) -> Vec<Vec<String>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .escape(if apple { Some(b'\\') } else { None })
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// A patch-summary row as (file, line, id, rule, action).
pub type Row = (&'static str, u32, &'static str, &'static str, &'static str);

/// The patch summary holds exactly these rows, in any order.
pub fn assert_rows(r: &Run, expected: &[Row]) {
    let mut got = r.keys();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(
        got, want,
        "patch-summary.csv rows\nsummary.txt:\n{}",
        r.summary
    );
}
