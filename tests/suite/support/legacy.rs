//! Helpers for integration tests that run the real `rosterdrop` binary.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rosterdrop"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The result of one `rosterdrop check` run.
pub struct Checked {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub out: PathBuf,
    /// patch-summary.csv rows (header excluded), split into fields.
    pub rows: Vec<Vec<String>>,
    pub summary: String,
}

impl Checked {
    /// (file, line, rule, action) of every patch row.
    pub fn rules(&self) -> Vec<(String, u32, String, String)> {
        self.rows
            .iter()
            .map(|r| {
                (
                    r[0].clone(),
                    r[1].parse().unwrap_or(0),
                    r[3].clone(),
                    r[4].clone(),
                )
            })
            .collect()
    }
    pub fn count(&self, rule: &str) -> usize {
        self.rows.iter().filter(|r| r[3] == rule).count()
    }
    pub fn modified(&self, file: &str) -> String {
        fs::read_to_string(self.out.join("modified").join(file)).unwrap()
    }
}

/// Runs `check` on `path` writing to `out`, with optional `--config`/`--source`.
pub fn check(path: &Path, out: &Path, config: Option<(&Path, &str)>) -> Checked {
    let mut c = bin();
    c.arg("check").arg(path).arg("--out").arg(out).arg("-q");
    if let Some((cfg, src)) = config {
        c.arg("--config").arg(cfg).arg("--source").arg(src);
    }
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "rosterdrop panicked: {stderr}"
    );
    let mut rows = Vec::new();
    if let Ok(text) = fs::read(out.join("patch-summary.csv")) {
        let mut r = csv::ReaderBuilder::new().from_reader(&text[..]);
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            ["file", "line", "id", "rule", "action", "field", "value", "detail"]
        );
        for rec in r.records() {
            rows.push(rec.unwrap().iter().map(str::to_string).collect());
        }
    }
    Checked {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        out: out.to_path_buf(),
        rows,
        summary: fs::read_to_string(out.join("summary.txt")).unwrap_or_default(),
    }
}

/// Writes files (name, content) into a new directory `dir/name`.
pub fn bundle(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let d = dir.join(name);
    fs::create_dir_all(&d).unwrap();
    for (f, content) in files {
        fs::write(d.join(f), content).unwrap();
    }
    d
}

/// Zips files, each under `prefix` (e.g. "" or "district/").
pub fn zip(path: &Path, prefix: &str, files: &[(String, Vec<u8>)]) {
    let f = fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let o = zip::write::SimpleFileOptions::default();
    for (name, content) in files {
        z.start_file(format!("{prefix}{name}"), o).unwrap();
        z.write_all(content).unwrap();
    }
    z.finish().unwrap();
}

/// Every file of a directory, sorted by name.
pub fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

pub const APPLE_HEADERS: [(&str, &str); 6] = [
    ("locations.csv", "location_id,location_name"),
    ("students.csv", "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id"),
    ("staff.csv", "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id"),
    ("courses.csv", "course_id,course_number,course_name,location_id"),
    ("classes.csv", "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id"),
    ("rosters.csv", "roster_id,class_id,student_id"),
];

/// A small valid Apple bundle's files; callers append rows.
pub fn apple_files() -> Vec<(String, String)> {
    let rows: [&str; 6] = [
        "L1,North High\nL2,South Middle\n",
        "S1,1,Ana,,Lopez,9,ana@x.org,ana,,L1\nS2,2,Ben,,Okafor,10,ben@x.org,ben,,L2\n",
        "T1,1,Grace,,Chen,grace@x.org,grace,L1\n",
        "C1,ALG,Algebra,L1\n",
        "K1,ALG-1,C1,T1,,,L1\n",
        "R1,K1,S1\nR2,K1,S2\n",
    ];
    APPLE_HEADERS
        .iter()
        .zip(rows)
        .map(|((f, h), r)| (f.to_string(), format!("{h}\n{r}")))
        .collect()
}

pub fn write_files(dir: &Path, files: &[(String, String)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (f, c) in files {
        fs::write(dir.join(f), c).unwrap();
    }
    dir.to_path_buf()
}
