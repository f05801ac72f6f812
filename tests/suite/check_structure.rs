//! Structure problems are row problems where a row can be isolated, and one upload reports
//! every problem (issue 11, items 4 and 5; issue 12, the CSV half of item 2).
//!
//! A row whose field count cannot be reconciled with the header is dropped (`malformed-row`)
//! and the rest of the file is read; empty trailing fields and header names are tidied with a
//! note; a header-only file is an empty table. Undecodable text, NUL bytes and runaway quotes
//! still reject the bundle, but the other files are still checked and their findings listed.
//! UTF-16 with a BOM and, per source, Windows-1252 are read and written back as UTF-8.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;
use std::path::{Path, PathBuf};

/// The sample Apple bundle with `file` replaced by `bytes`.
fn apple_with(t: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let b = sample_copy(t, "apple");
    write(&b, file, bytes);
    b
}

fn sample_text(file: &str) -> String {
    std::fs::read_to_string(sample("apple").join(file)).unwrap()
}

/// The sample's students.csv with Ana's first name (line 2, column 3) replaced by `first`.
fn students(first: &[u8]) -> Vec<u8> {
    let text = sample_text("students.csv");
    let (head, rest) = text.split_once("S1001,1001,Ana,").unwrap();
    [
        head.as_bytes(),
        b"S1001,1001,",
        first,
        b",",
        rest.as_bytes(),
    ]
    .concat()
}

fn note_lines(summary: &str) -> Vec<&str> {
    summary
        .lines()
        .skip_while(|l| *l != "Notes:")
        .skip(1)
        .take_while(|l| l.starts_with("  - "))
        .collect()
}

fn has_note(r: &Run, words: &[&str]) -> bool {
    note_lines(&r.summary)
        .iter()
        .any(|l| words.iter().all(|w| l.contains(w)))
}

// ---------------------------------------------------------------- rows, not bundles

#[test]
fn a_stray_trailing_comma_on_some_rows_is_accepted_with_a_note_and_the_rows_kept() {
    let t = tempfile::tempdir().unwrap();
    let rosters = sample_text("rosters.csv")
        .replace("R2,K100,S1002\n", "R2,K100,S1002,\n")
        .replace("R5,K200,S1004\n", "R5,K200,S1004,,\n");
    let b = apple_with(t.path(), "rosters.csv", rosters.as_bytes());
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[], "nothing patched");
    assert!(
        has_note(
            &r,
            &[
                "rosters.csv",
                "2 row(s) had empty fields past the last column"
            ]
        ),
        "{}",
        r.summary
    );
    // Every row is kept, written back without the stray separators.
    assert_eq!(r.modified_text("rosters.csv"), sample_text("rosters.csv"));
}

#[test]
fn a_row_with_a_non_empty_extra_field_is_dropped_as_malformed_and_the_rest_read() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    let users = std::fs::read_to_string(b.join("users.csv")).unwrap();
    // U2's row (line 3) gets a 19th field; U3 and U4 follow.
    let users = users.replace(
        "U2,,,true,L2,student,u2,,Bo,Berg,,,bo@example.org,,,,07,\n",
        "U2,,,true,L2,student,u2,,Bo,Berg,,,bo@example.org,,,,07,,oops\n",
    );
    write(&b, "users.csv", &users);
    let r = check(&b, &t.path().join("out"), &[]);
    // One row of four is a quarter of the file: the patch guard holds the bundle (exit 3).
    r.assert_code(3);
    let p = r.find("users.csv", "U2", "malformed-row");
    assert_eq!((p.line, p.action.as_str()), (3, "dropped-row"));
    assert_eq!((p.field.as_str(), p.value.as_str()), ("", "oops"));
    assert!(
        p.detail
            .contains("expected 18 fields as in the header, found 19")
            && p.detail.contains("column 19"),
        "{}",
        p.detail
    );
    // The rest of users.csv was read: U3 and U4 are kept; U2's enrollment loses its user.
    let kept = r.modified_text("users.csv");
    assert!(
        !kept.contains("U2,") && kept.contains("\nU3,") && kept.contains("\nU4,"),
        "{kept}"
    );
    assert_eq!(
        r.find("enrollments.csv", "E2", "unknown-user").action,
        "dropped-row"
    );
    // The summary counts it with the other patches of the file.
    assert!(
        summary_line_has(&r.summary, &["users.csv", "malformed-row", "1"]),
        "{}",
        r.summary
    );
}

#[test]
fn a_row_with_too_few_fields_is_dropped_as_malformed_and_the_rest_read() {
    let t = tempfile::tempdir().unwrap();
    let rosters = sample_text("rosters.csv").replace("R3,K101,S1002\n", "R3,K101\n");
    let b = apple_with(t.path(), "rosters.csv", rosters.as_bytes());
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_rows(
        &r,
        &[("rosters.csv", 4, "R3", "malformed-row", "dropped-row")],
    );
    let p = r.find("rosters.csv", "R3", "malformed-row");
    assert_eq!(p.field, "student_id");
    assert!(
        p.detail.contains("found 2") && p.detail.contains("column 3 `student_id`"),
        "{}",
        p.detail
    );
    assert_eq!(
        r.modified_text("rosters.csv"),
        sample_text("rosters.csv").replace("R3,K101,S1002\n", "")
    );
}

#[test]
fn malformed_rows_are_listed_in_file_and_line_order_with_the_other_findings() {
    let t = tempfile::tempdir().unwrap();
    let rosters = sample_text("rosters.csv")
        .replace("R2,K100,S1002\n", "R2,K100,S1002,x\n")
        .replace("R4,K101,S1003\n", "R4,K999,S1003\n")
        .replace("R6,K200,S1005\n", "R6\n");
    let b = apple_with(t.path(), "rosters.csv", rosters.as_bytes());
    let r = check(&b, &t.path().join("out"), &[]);
    // Three roster rows of seven lost: the patch guard holds the bundle (exit 3).
    r.assert_code(3);
    assert_eq!(
        r.keys(),
        [
            ("rosters.csv", 3, "R2", "malformed-row", "dropped-row"),
            ("rosters.csv", 5, "R4", "unknown-class", "dropped-row"),
            ("rosters.csv", 7, "R6", "malformed-row", "dropped-row"),
        ]
    );
}

#[test]
fn trailing_empty_header_names_are_ignored() {
    let t = tempfile::tempdir().unwrap();
    // A header with two trailing empty names; some rows have the empty fields, some not.
    let rosters = sample_text("rosters.csv")
        .replace(
            "roster_id,class_id,student_id\n",
            "roster_id,class_id,student_id,,\n",
        )
        .replace("R1,K100,S1001\n", "R1,K100,S1001,,\n")
        .replace("R2,K100,S1002\n", "R2,K100,S1002,\n");
    let b = apple_with(t.path(), "rosters.csv", rosters.as_bytes());
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert!(
        has_note(
            &r,
            &[
                "rosters.csv",
                "2 trailing empty column name(s) in the header ignored"
            ]
        ),
        "{}",
        r.summary
    );
    assert_eq!(r.modified_text("rosters.csv"), sample_text("rosters.csv"));
}

#[test]
fn a_header_only_file_without_a_required_column_is_an_empty_table_with_a_note() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    // A 1.0 header (no schoolYear) and no rows.
    write(
        &b,
        "academicSessions.csv",
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId\n",
    );
    // The empty table costs the classes and courses their terms: let the drop guard pass it.
    let cfg = config(
        t.path(),
        "[sources.d]\nguard.max_patch_drop_percent = 100\n",
    );
    let r = check_with(&b, &t.path().join("out"), &cfg, "d");
    // With no sessions, every class loses its terms and the enrollments follow: the patch
    // guard holds the bundle (exit 3) rather than accept a roster without classes.
    r.assert_code(3);
    assert!(!r.summary.contains("could not be read"), "{}", r.summary);
    assert!(
        has_note(
            &r,
            &[
                "academicSessions.csv",
                "header only",
                "`schoolYear`",
                "empty table"
            ]
        ),
        "{}",
        r.summary
    );
    // It is an empty table, not an absent one: references into it point nowhere.
    assert!(r.count("unknown-reference") > 0, "{:#?}", r.patches());
    assert_eq!(
        r.modified_text("academicSessions.csv"),
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId\n"
    );

    // With rows, the missing column still rejects.
    write(
        &b,
        "academicSessions.csv",
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId\nY1,,,Year,schoolYear,2026-08-01,2027-06-30,\n",
    );
    let r = check_with(&b, &t.path().join("out2"), &cfg, "d");
    r.assert_rejected_at("academicSessions.csv:1:");
    assert!(r.summary.contains("`schoolYear`"), "{}", r.summary);
}

// ---------------------------------------------------------------- encodings

#[test]
fn invalid_utf8_still_rejects_and_suggests_windows_1252() {
    let t = tempfile::tempdir().unwrap();
    let b = apple_with(t.path(), "students.csv", &students(b"Jos\xe9"));
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_rejected_at("students.csv:2:3:");
    assert!(
        r.summary.contains("encoding = \"windows-1252\""),
        "{}",
        r.summary
    );
}

#[test]
fn with_encoding_windows_1252_the_same_file_is_read_and_written_back_as_utf8() {
    let t = tempfile::tempdir().unwrap();
    let b = apple_with(t.path(), "students.csv", &students(b"Jos\xe9"));
    let cfg = config(t.path(), "[sources.w]\nencoding = \"windows-1252\"\n");
    let r = check_with(&b, &t.path().join("out"), &cfg, "w");
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    let out = r.modified("students.csv");
    // UTF-8 with a BOM, so that it reads as UTF-8 whatever the source's setting.
    assert!(out.starts_with(b"\xEF\xBB\xBF"), "{out:?}");
    let text = String::from_utf8(out[3..].to_vec()).expect("modified file is UTF-8");
    assert_eq!(
        text,
        sample_text("students.csv").replace(",Ana,", ",Jos\u{e9},")
    );
    assert!(
        has_note(&r, &["students.csv", "windows-1252", "UTF-8"]),
        "{}",
        r.summary
    );
    // Files without a byte outside ASCII are written back as they came.
    assert_eq!(r.modified_text("rosters.csv"), sample_text("rosters.csv"));
    r.assert_zip_matches_dir();
}

#[test]
fn utf16_le_with_a_bom_is_read() {
    let t = tempfile::tempdir().unwrap();
    let text = String::from_utf8(students("Zo\u{eb}".as_bytes()))
        .unwrap()
        .replace('\n', "\r\n");
    let mut bytes = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        bytes.extend(u.to_le_bytes());
    }
    let b = apple_with(t.path(), "students.csv", &bytes);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    let out = r.modified("students.csv");
    assert_eq!(out[..3], *b"\xEF\xBB\xBF");
    assert_eq!(std::str::from_utf8(&out[3..]).unwrap(), text);
    assert!(
        has_note(&r, &["students.csv", "UTF-16LE", "UTF-8"]),
        "{}",
        r.summary
    );
}

// ---------------------------------------------------------------- still rejected

#[test]
fn a_nul_byte_and_an_unclosed_quote_still_reject() {
    let t = tempfile::tempdir().unwrap();
    let b = apple_with(t.path(), "students.csv", &students(b"A\0na"));
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_rejected_at("students.csv:2:3:");
    assert!(r.summary.contains("NUL"), "{}", r.summary);

    // The quote opened on line 3 swallows the rest of the file, field counts or not.
    for rosters in [
        "roster_id,class_id,student_id\nR1,K100,S1001\nR2,K100,\"S1002\nR3,K101,S1002\n",
        "roster_id,class_id,student_id\nR1,K100,S1001\nR2,\"K100,S1002\nR3,K101,S1002\n",
    ] {
        let t = tempfile::tempdir().unwrap();
        let b = apple_with(t.path(), "rosters.csv", rosters.as_bytes());
        let r = check(&b, &t.path().join("out"), &[]);
        r.assert_rejected_at("rosters.csv:3:");
        assert!(r.summary.contains("unclosed quote"), "{}", r.summary);
    }
}

// ---------------------------------------------------------------- one upload, every problem

#[test]
fn a_bundle_with_an_unreadable_file_still_lists_the_other_files_findings() {
    let t = tempfile::tempdir().unwrap();
    // students.csv cannot be read; staff.csv has an invalid email and a malformed row.
    let b = apple_with(t.path(), "students.csv", &students(b"Jos\xe9"));
    let staff = sample_text("staff.csv")
        .replace(
            "hiro.tanaka@maplevalley.example",
            "hiro.tanaka(at)maplevalley",
        )
        .replace("T203,203,Imani,", "T203,203,Imani,,,");
    write(&b, "staff.csv", &staff);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_rejected_at("students.csv:2:3:");
    assert_rows(
        &r,
        &[
            ("staff.csv", 3, "T202", "invalid-value", "cleared-field"),
            ("staff.csv", 4, "T203", "malformed-row", "dropped-row"),
            // The class taught by T203 loses its only instructor.
            (
                "classes.csv",
                4,
                "K200",
                "unknown-instructor",
                "cleared-field",
            ),
        ],
    );
    // References into the unreadable file are not reported as unknown.
    assert_eq!(r.count("unknown-student"), 0);
    assert!(
        has_note(&r, &["students.csv", "could not be read", "not checked"]),
        "{}",
        r.summary
    );
    assert!(
        summary_line_has(&r.summary, &["staff.csv", "invalid-value", "1"]),
        "{}",
        r.summary
    );
}

// ---------------------------------------------------------------- sizes from the upload

/// A zip of the sample Apple bundle whose `students.csv` entry declares an uncompressed size
/// of almost 4 GiB (its data and checksum are the real ones).
fn zip_declaring_4_gib(dir: &Path) -> PathBuf {
    let p = dir.join("declared.zip");
    zip_dir(&sample("apple"), &p, None);
    let mut z = std::fs::read(&p).unwrap();
    let name = b"students.csv";
    let mut patched = 0;
    for (sig, size_at, name_at) in [(b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)] {
        for at in 0..z.len().saturating_sub(name_at + name.len()) {
            if &z[at..at + 4] == sig && &z[at + name_at..at + name_at + name.len()] == name {
                z[at + size_at..at + size_at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                patched += 1;
            }
        }
    }
    assert_eq!(patched, 2, "local and central headers patched");
    std::fs::write(&p, z).unwrap();
    p
}

#[test]
fn a_declared_entry_size_is_not_reserved() {
    let t = tempfile::tempdir().unwrap();
    let z = zip_declaring_4_gib(t.path());
    let out = t.path().join("out");
    // Address space capped well below the declared size: reserving it aborts the process.
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 1500000 && exec \"$0\" check \"$1\" --out \"$2\" -q")
        .arg(BIN)
        .arg(&z)
        .arg(&out);
    let r = run(c, &out);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert_eq!(r.modified_text("students.csv"), sample_text("students.csv"));
}
