//! Bad bytes get a clear error naming file, line and column (exit 1, never a panic); the
//! variants vendors really write are accepted.

mod support;

use std::fs;
use support::*;

/// A valid Apple bundle whose `file` is replaced by `content`; returns the check result.
fn with(file: &str, content: &[u8]) -> Checked {
    let tmp = tempfile::tempdir().unwrap().keep();
    let d = write_files(&tmp.join("b"), &apple_files());
    fs::write(d.join(file), content).unwrap();
    check(&d, &tmp.join("out"), None)
}

fn rejected_at(c: &Checked, needle: &str) {
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(c.summary.contains("could not be read"), "{}", c.summary);
    assert!(
        c.summary.contains(needle),
        "expected `{needle}` in:\n{}",
        c.summary
    );
}

#[test]
fn invalid_utf8() {
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K1,S1\nR2,K\xff1,S2\n",
    );
    rejected_at(&c, "rosters.csv:3:2: invalid UTF-8 in field `class_id`");
}

#[test]
fn missing_required_column() {
    let c = with("rosters.csv", b"roster_id,class_id\nR1,K1\n");
    rejected_at(&c, "rosters.csv:1: missing required column `student_id`");
}

#[test]
fn too_many_fields() {
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K1,S1,extra\n",
    );
    rejected_at(
        &c,
        "rosters.csv:2:4: expected 3 fields as in the header, found 4",
    );
}

#[test]
fn too_few_fields() {
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K1,S1\nR2,K1\n",
    );
    rejected_at(
        &c,
        "rosters.csv:3:3: expected 3 fields as in the header, found 2",
    );
}

#[test]
fn nul_byte() {
    let c = with(
        "students.csv",
        b"person_id,first_name,last_name,location_id\nS1,A\0na,Lopez,L1\n",
    );
    rejected_at(&c, "students.csv:2:2: NUL byte in field `first_name`");
}

#[test]
fn empty_file() {
    let c = with("staff.csv", b"");
    rejected_at(&c, "staff.csv:1: file is empty: no header row");
}

#[test]
fn unclosed_quote_points_at_the_row_where_it_opens() {
    let c = with(
        "locations.csv",
        b"location_id,location_name\nL1,\"North High\nL2,South\nL3,East\n",
    );
    rejected_at(&c, "locations.csv:2:");
    assert!(c.summary.contains("an unclosed quote?"), "{}", c.summary);
}

#[test]
fn duplicate_column() {
    let c = with(
        "courses.csv",
        b"course_id,course_name,Course ID,location_id\nC1,A,C1,L1\n",
    );
    rejected_at(
        &c,
        "courses.csv:1:3: duplicate column `Course ID` (also column 1)",
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K1\nR2,K1,S1\nR3\n",
    );
    assert!(c.summary.contains("rosters.csv:2:3"));
    assert!(c.summary.contains("rosters.csv:4:2"));
}

#[test]
fn a_zip_that_is_not_a_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let z = tmp.path().join("upload.zip");
    fs::write(&z, b"PK\x03\x04 this is not really a zip archive at all").unwrap();
    let c = check(&z, &tmp.path().join("out"), None);
    assert_eq!(c.code, 1);
    assert!(
        c.summary.contains("not a readable zip archive"),
        "{}",
        c.summary
    );
}

#[test]
fn bom_crlf_semicolon_and_backslash_escapes_are_accepted() {
    let c = with(
        "students.csv",
        "\u{feff}person_id;person_number;first_name;middle_name;last_name;grade_level;email_address;sis_username;password_policy;location_id\r\nS1;1;\"Ana \\\"Nan\\\"\";;\"Lopez; Jr\";9;ana@x.org;ana;;L1\r\nS2;2;Ben;;Okafor;10;ben@x.org;ben;;L2\r\n".as_bytes(),
    );
    assert_eq!(c.code, 0, "{}", c.summary);
    assert!(c.rows.is_empty(), "{:?}", c.rows);
    // Written back the same way: BOM, semicolons, CRLF, backslash escapes.
    let m = c.modified("students.csv");
    assert!(m.starts_with("\u{feff}person_id;person_number;"));
    assert!(
        m.contains("S1;1;\"Ana \\\"Nan\\\"\";;\"Lopez; Jr\";9;ana@x.org;ana;;L1\r\n"),
        "{m}"
    );
}

#[test]
fn headers_in_any_case_spacing_and_order_with_extra_columns() {
    let c = with(
        "classes.csv",
        b"Location ID,CLASS_ID,course_id,Instructor ID,instructor_id_2,instructor_id_3,class_number,metadata.district.room\nL1,K1,C1,T1,,,ALG-1,\"Room 12, east\"\n",
    );
    assert_eq!(c.code, 0, "{}", c.summary);
    assert!(c.rows.is_empty(), "{:?}", c.rows);
    assert_eq!(
        c.modified("classes.csv"),
        "Location ID,CLASS_ID,course_id,Instructor ID,instructor_id_2,instructor_id_3,class_number,metadata.district.room\nL1,K1,C1,T1,,,ALG-1,\"Room 12, east\"\n"
    );
}

#[test]
fn extra_instructor_columns_up_to_15_are_checked() {
    let c = with(
        "classes.csv",
        b"class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,instructor_id_15,location_id\nK1,1,C1,T1,,,T77,L1\n",
    );
    assert_eq!(
        c.rules(),
        vec![(
            "classes.csv".into(),
            2,
            "unknown-instructor".into(),
            "cleared-field".into()
        )]
    );
    assert_eq!(c.rows[0][5], "instructor_id_15");
}

#[test]
fn oneroster_delta_needs_status_and_date() {
    let tmp = tempfile::tempdir().unwrap();
    let d = bundle(
        tmp.path(),
        "delta",
        &[
            ("manifest.csv", b"propertyName,value\noneroster.version,1.1\nfile.enrollments,delta\nfile.users,absent\n"),
            ("enrollments.csv", b"sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\nE1,active,2026-11-20T08:00:00Z,K1,L1,U1,student,,,\nE2,,2026-11-20T08:00:00Z,K1,L1,U1,student,,,\nE3,tobedeleted,2026-11-20T08:00:00Z,,,,,,,\nE4,inactive,2026-11-20T08:00:00Z,K1,L1,U1,student,,,\n"),
        ],
    );
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(c.code, 0, "{}", c.summary);
    let got: Vec<(String, String, String)> = c
        .rows
        .iter()
        .map(|r| (r[2].clone(), r[3].clone(), r[5].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("E2".into(), "invalid-value".into(), "status".into()),
            ("E4".into(), "invalid-value".into(), "status".into()),
        ]
    );
}

#[test]
fn a_zip_bomb_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = apple_files()
        .into_iter()
        .map(|(n, c)| (n, c.into_bytes()))
        .collect();
    // 100 MiB of one repeated byte compresses about a thousand times.
    let mut rosters = b"roster_id,class_id,student_id\n".to_vec();
    rosters.resize(100 << 20, b'x');
    files[5].1 = rosters;
    let z = tmp.path().join("bomb.zip");
    let f = fs::File::create(&z).unwrap();
    let mut w = zip::ZipWriter::new(f);
    for (name, content) in &files {
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file(name.as_str(), o).unwrap();
        std::io::Write::write_all(&mut w, content).unwrap();
    }
    w.finish().unwrap();
    assert!(fs::metadata(&z).unwrap().len() < 1 << 20);
    let c = check(&z, &tmp.path().join("out"), None);
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(c.summary.contains("refused as a zip bomb"), "{}", c.summary);
}
