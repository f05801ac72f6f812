//! Shared helpers for the `rosterdrop check` integration tests (`check_*.rs`).
//!
//! Every test runs the real binary on a bundle (a sample, or one written into a temporary
//! directory) and reads back what the command wrote: `patch-summary.csv`, `summary.txt`,
//! `modified/` and `modified.zip`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    pub out: PathBuf,
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

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rosterdrop"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sample-csv/<name>` of the repository.
pub fn sample(name: &str) -> PathBuf {
    repo().join("sample-csv").join(name)
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

/// Writes `bytes` to `dir/name`, creating `dir`.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// Copies the files of `src` (not recursive) into a new directory `dst`.
pub fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    dst.to_path_buf()
}

/// A copy of `sample-csv/<name>` in `tmp/<name>` to be edited by a test.
pub fn sample_copy(tmp: &Path, name: &str) -> PathBuf {
    copy_dir(&sample(name), &tmp.join(name))
}

/// Every regular file of `dir`, by name.
pub fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            );
        }
    }
    m
}

/// Zips the files of `src` into `zip_path`, under `folder/` when given.
pub fn zip_dir(src: &Path, zip_path: &Path, folder: Option<&str>) {
    let f = fs::File::create(zip_path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    if let Some(d) = folder {
        z.add_directory(format!("{d}/"), opts).unwrap();
    }
    for (name, bytes) in dir_files(src) {
        let entry = match folder {
            Some(d) => format!("{d}/{name}"),
            None => name,
        };
        z.start_file(entry, opts).unwrap();
        z.write_all(&bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Every file entry of a zip, by entry name.
pub fn zip_files(zip_path: &Path) -> BTreeMap<String, Vec<u8>> {
    let f = fs::File::open(zip_path).unwrap_or_else(|e| panic!("{}: {e}", zip_path.display()));
    let mut z = zip::ZipArchive::new(f).expect("a readable zip");
    let mut m = BTreeMap::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        if e.is_dir() {
            continue;
        }
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        m.insert(e.name().to_string(), bytes);
    }
    m
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

/// Writes a settings file holding `text` into `dir` and returns its path.
pub fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("rosterdrop.toml");
    fs::write(&p, text).unwrap();
    p
}

/// Joins CSV lines with `\n`, ending with one.
pub fn lines(rows: &[&str]) -> String {
    let mut s = rows.join("\n");
    s.push('\n');
    s
}

/// The sample file's text with its physical lines numbered from 1 (header = 1).
pub fn sample_lines(bundle: &str, file: &str) -> Vec<String> {
    fs::read_to_string(sample(bundle).join(file))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Today's date in UTC as days since 1970-01-01, from the system clock.
pub fn today_days() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (secs / 86_400) as i64
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (plain counting, no calendar tricks, so it
/// does not share code with the crate under test).
pub fn ymd(days_since_epoch: i64) -> String {
    assert!(days_since_epoch >= 0);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut rest = days_since_epoch;
    let mut y = 1970;
    loop {
        let n = if leap(y) { 366 } else { 365 };
        if rest < n {
            break;
        }
        rest -= n;
        y += 1;
    }
    let mut m = 1;
    loop {
        let n = match m {
            4 | 6 | 9 | 11 => 30,
            2 if leap(y) => 29,
            2 => 28,
            _ => 31,
        };
        if rest < n {
            break;
        }
        rest -= n;
        m += 1;
    }
    format!("{y:04}-{m:02}-{:02}", rest + 1)
}

/// A small valid OneRoster bundle; `version` is `1.1` or `1.2`. Returns its directory.
///
/// orgs: D1 (district), L1, L2 (schools). Sessions: Y1 (school year), T1, T2 (semesters).
/// Courses C1 (L1), C2 (L2). Classes K1 (C1, L1, T1+T2), K2 (C2, L2, T2).
/// Users: U1, U2 students, U3 teacher, U4 parent of U1 (1.1 roles in users.csv, 1.2 in
/// roles.csv). Enrollments: E1 U1 K1, E2 U2 K2, E3 U3 K1 (teacher), E4 U3 K2 (teacher).
pub fn oneroster_bundle(dir: &Path, version: &str) -> PathBuf {
    let v12 = version.starts_with("1.2");
    let mut manifest = vec![
        "propertyName,value".to_string(),
        "manifest.version,1.0".into(),
        format!("oneroster.version,{version}"),
    ];
    for f in [
        "academicSessions",
        "orgs",
        "courses",
        "classes",
        "users",
        "enrollments",
    ] {
        manifest.push(format!("file.{f},bulk"));
    }
    manifest.push(format!(
        "file.roles,{}",
        if v12 { "bulk" } else { "absent" }
    ));
    manifest.push("file.demographics,absent".into());
    let manifest: Vec<&str> = manifest.iter().map(String::as_str).collect();
    write(dir, "manifest.csv", lines(&manifest));
    write(
        dir,
        "orgs.csv",
        lines(&[
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
            "D1,,,District,district,D,",
            "L1,,,North High,school,NH,D1",
            "L2,,,South Middle,school,SM,D1",
        ]),
    );
    write(
        dir,
        "academicSessions.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear",
            "Y1,,,Year,schoolYear,2026-08-01,2027-06-30,,2027",
            "T1,,,Fall,semester,2026-08-01,2026-12-20,Y1,2027",
            "T2,,,Spring,semester,2027-01-05,2027-06-30,Y1,2027",
        ]),
    );
    write(
        dir,
        "courses.csv",
        lines(&[
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes",
            "C1,,,Y1,Algebra,ALG,09,L1,,",
            "C2,,,Y1,Science,SCI,07,L2,,",
        ]),
    );
    write(
        dir,
        "classes.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
            "K1,,,Algebra P1,09,C1,ALG-1,scheduled,,L1,\"T1,T2\",,,1",
            "K2,,,Science P2,07,C2,SCI-1,scheduled,,L2,T2,,,2",
        ]),
    );
    if v12 {
        write(
            dir,
            "users.csv",
            lines(&[
                "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns",
                "U1,,,true,u1,,Ann,Avery,,,ann@example.org,,,U4,09,,,,,,L1,",
                "U2,,,true,u2,,Bo,Berg,,,bo@example.org,,,,07,,,,,,L2,",
                "U3,,,true,u3,,Cy,Cole,,,cy@example.org,,,,,,,,,,L1,",
                "U4,,,true,u4,,Di,Avery,,,di@example.org,,,U1,,,,,,,,",
            ]),
        );
        write(
            dir,
            "roles.csv",
            lines(&[
                "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId",
                "R1,,,U1,primary,student,,,L1,",
                "R2,,,U2,primary,student,,,L2,",
                "R3,,,U3,primary,teacher,,,L1,",
                "R4,,,U3,secondary,teacher,,,L2,",
                "R5,,,U4,primary,parent,,,L1,",
            ]),
        );
    } else {
        write(
            dir,
            "users.csv",
            lines(&[
                "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password",
                "U1,,,true,L1,student,u1,,Ann,Avery,,,ann@example.org,,,U4,09,",
                "U2,,,true,L2,student,u2,,Bo,Berg,,,bo@example.org,,,,07,",
                "U3,,,true,\"L1,L2\",teacher,u3,,Cy,Cole,,,cy@example.org,,,,,",
                "U4,,,true,L1,parent,u4,,Di,Avery,,,di@example.org,,,U1,,",
            ]),
        );
    }
    write(
        dir,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            "E1,,,K1,L1,U1,student,false,,",
            "E2,,,K2,L2,U2,student,false,,",
            "E3,,,K1,L1,U3,teacher,true,,",
            "E4,,,K2,L2,U3,teacher,true,,",
        ]),
    );
    dir.to_path_buf()
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
