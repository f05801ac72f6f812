//! Malformed bundles are rejected (exit 1) with the problem located as `file:line:column:`
//! in summary.txt and never a panic (a row whose field count is wrong costs only that row); the CSV variants vendors really send are accepted and
//! written back in their own dialect.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;
use std::path::PathBuf;

const STUDENTS_HEADER: &str = "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id";
const ROSTERS_HEADER: &str = "roster_id,class_id,student_id";

/// The sample Apple bundle with `file` replaced by `bytes`, checked.
fn apple_with(file: &str, bytes: &[u8]) -> (tempfile::TempDir, Run) {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "apple");
    write(&b, file, bytes);
    let r = check(&b, &t.path().join("out"), &[]);
    (t, r)
}

/// The sample OneRoster bundle with `file` replaced by `bytes` (or removed when `None`).
fn oneroster_with(file: &str, bytes: Option<&[u8]>) -> (tempfile::TempDir, Run) {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "oneroster");
    match bytes {
        Some(x) => write(&b, file, x),
        None => std::fs::remove_file(b.join(file)).unwrap(),
    }
    let r = check(&b, &t.path().join("out"), &[]);
    (t, r)
}

/// The sample's rosters.csv with `extra` appended (LF lines).
fn rosters_plus(extra: &str) -> Vec<u8> {
    let mut s = std::fs::read_to_string(sample("apple").join("rosters.csv")).unwrap();
    s.push_str(extra);
    s.into_bytes()
}

// ---------------------------------------------------------------- malformed: rejected
//
// A rejected bundle still lists the findings of its readable files (check_structure.rs);
// `assert_rejected_at` checks that the unreadable file has none and nothing was written back.

#[test]
fn invalid_utf8_is_located_by_file_line_and_column() {
    // Latin-1 `José` in first_name on line 3.
    let mut s = format!("{STUDENTS_HEADER}\nS1001,1001,Ana,,Lopez,9,,alopez,,L1\n").into_bytes();
    s.extend_from_slice(b"S1002,1002,Jos\xe9,,Okafor,10,,bokafor,,L1\n");
    let (_t, r) = apple_with("students.csv", &s);
    r.assert_rejected_at("students.csv:3:3:");
    assert!(r.summary.contains("UTF-8"), "{}", r.summary);

    // In the header.
    let (_t, r) = apple_with(
        "rosters.csv",
        b"roster_id,class_id,st\xffudent_id\nR1,K100,S1001\n",
    );
    r.assert_rejected_at("rosters.csv:1:3:");
}

#[test]
fn a_missing_required_column_is_named() {
    let header = STUDENTS_HEADER.replace(",location_id", "");
    let body = format!("{header}\nS1001,1001,Ana,,Lopez,9,,alopez,\n");
    let (_t, r) = apple_with("students.csv", body.as_bytes());
    r.assert_rejected_at("students.csv:1:");
    assert!(r.summary.contains("location_id"), "{}", r.summary);

    // OneRoster 1.1 users without `role`.
    let users = std::fs::read_to_string(sample("oneroster").join("users.csv")).unwrap();
    let users: String = users
        .lines()
        .map(|l| {
            let mut f = split_simple(l);
            f.remove(5);
            f.join(",") + "\n"
        })
        .collect();
    assert!(
        users.starts_with("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,username,")
    );
    let (_t, r) = oneroster_with("users.csv", Some(users.as_bytes()));
    r.assert_rejected_at("users.csv:1:");
    assert!(r.summary.contains("`role`"), "{}", r.summary);
}

// A wrong field count costs the row (`malformed-row`), not the bundle: these were rejections.

#[test]
fn too_many_fields_are_located() {
    let (_t, r) = apple_with(
        "rosters.csv",
        &rosters_plus("R8,K100,S1003,extra\nR9,K101,S1001\n"),
    );
    r.assert_code(0);
    let p = r.find("rosters.csv", "R8", "malformed-row");
    assert_eq!((p.line, p.action.as_str()), (9, "dropped-row"));
    assert_eq!(p.value, "extra");
    assert!(p.detail.contains("column 4"), "{}", p.detail);
    assert!(r.summary.contains("ACCEPTED"), "{}", r.summary);
    let kept = r.modified_text("rosters.csv");
    assert!(
        !kept.contains("R8,") && kept.contains("R9,K101,S1001\n"),
        "{kept}"
    );
}

#[test]
fn too_few_fields_are_located() {
    let (_t, r) = apple_with("rosters.csv", &rosters_plus("R8,K100\nR9,K101,S1001\n"));
    r.assert_code(0);
    let p = r.find("rosters.csv", "R8", "malformed-row");
    assert_eq!((p.line, p.action.as_str()), (9, "dropped-row"));
    assert_eq!(p.field, "student_id");
    assert!(p.detail.contains("column 3 `student_id`"), "{}", p.detail);
    let kept = r.modified_text("rosters.csv");
    assert!(
        !kept.contains("R8,") && kept.contains("R9,K101,S1001\n"),
        "{kept}"
    );
}

#[test]
fn a_nul_byte_is_located() {
    let body = format!("{STUDENTS_HEADER}\nS1001,1001,Ana,,Lo\0pez,9,,alopez,,L1\n");
    let (_t, r) = apple_with("students.csv", body.as_bytes());
    r.assert_rejected_at("students.csv:2:5:");
    assert!(r.summary.contains("NUL"), "{}", r.summary);
}

#[test]
fn an_empty_file_is_rejected() {
    let (_t, r) = apple_with("locations.csv", b"");
    r.assert_rejected_at("locations.csv:1:");
    assert!(r.summary.contains("empty"), "{}", r.summary);
    let (_t, r) = oneroster_with("orgs.csv", Some(b""));
    r.assert_rejected_at("orgs.csv:1:");
}

#[test]
fn an_unclosed_quote_is_rejected_at_the_row_that_opens_it() {
    // Field counts still match: the quote swallows the rest of the file into one field.
    let (_t, r) = apple_with(
        "rosters.csv",
        format!("{ROSTERS_HEADER}\nR1,K100,S1001\nR2,K100,\"S1002\nR3,K101,S1002\n").as_bytes(),
    );
    r.assert_rejected_at("rosters.csv:3:3:");
    assert!(r.summary.contains("quote"), "{}", r.summary);

    // Field counts do not match.
    let (_t, r) = apple_with(
        "rosters.csv",
        format!("{ROSTERS_HEADER}\nR1,\"K100,S1001\nR2,K100,S1002\n").as_bytes(),
    );
    r.assert_rejected_at("rosters.csv:2:");
}

/// Deterministic noise (xorshift), so a failure reproduces.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn a_zip_that_is_not_a_zip_is_rejected() {
    let t = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("noise.zip", noise(4096, 0x9e37_79b9_7f4a_7c15)),
        ("empty.zip", vec![]),
        // A zip's local header magic followed by garbage.
        (
            "header-only.zip",
            [b"PK\x03\x04".to_vec(), noise(200, 7)].concat(),
        ),
    ];
    for (name, bytes) in cases {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let r = check(&p, &t.path().join(format!("out-{name}")), &[]);
        r.assert_code(1);
        assert!(r.summary.contains("REJECTED"), "{name}: {}", r.summary);
        assert!(
            r.summary.contains(name),
            "{name}: names the upload\n{}",
            r.summary
        );
        assert!(r.summary.contains("zip"), "{name}: {}", r.summary);
    }

    // A real zip cut in half.
    let whole = t.path().join("whole.zip");
    zip_dir(&sample("apple"), &whole, None);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = t.path().join("cut.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = check(&cut, &t.path().join("out-cut"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("cut.zip"), "{}", r.summary);
}

/// A zip of the sample bundle `name` (entries stored uncompressed) whose `victim` entry has
/// some data bytes changed after the fact, so that the entry fails its checksum.
fn zip_with_corrupt_entry(dir: &std::path::Path, name: &str, victim: &str) -> PathBuf {
    let p = dir.join(format!("{name}-{victim}.zip"));
    let f = std::fs::File::create(&p).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, bytes) in dir_files(&sample(name)) {
        z.start_file(n, opts).unwrap();
        std::io::Write::write_all(&mut z, &bytes).unwrap();
    }
    z.finish().unwrap();
    let mut archive = std::fs::read(&p).unwrap();
    let data = std::fs::read(sample(name).join(victim)).unwrap();
    let at = archive
        .windows(data.len())
        .position(|w| w == data.as_slice())
        .expect("the stored entry's data is in the archive");
    for b in &mut archive[at + 20..at + 28] {
        *b = if *b == b'x' { b'y' } else { b'x' };
    }
    std::fs::write(&p, archive).unwrap();
    p
}

#[test]
fn a_zip_entry_failing_its_checksum_is_rejected() {
    let t = tempfile::tempdir().unwrap();
    let z = zip_with_corrupt_entry(t.path(), "oneroster", "users.csv");
    let r = check(&z, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("REJECTED"), "{}", r.summary);
    assert!(
        r.summary.contains("users.csv"),
        "names the entry:\n{}",
        r.summary
    );
}

#[test]
fn a_zip_whose_manifest_entry_is_corrupt_is_rejected_not_an_io_error() {
    let t = tempfile::tempdir().unwrap();
    let z = zip_with_corrupt_entry(t.path(), "oneroster", "manifest.csv");
    let r = check(&z, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("REJECTED"), "{}", r.summary);
    assert!(
        r.summary.contains("manifest.csv"),
        "names the entry:\n{}",
        r.summary
    );
}

#[test]
fn a_manifest_naming_a_missing_bulk_file_is_rejected() {
    let (_t, r) = oneroster_with("users.csv", None);
    r.assert_code(1);
    assert!(r.summary.contains("REJECTED"), "{}", r.summary);
    // manifest.csv line 16 is `file.users,bulk`.
    r.assert_rejected_at("manifest.csv:16:");
    assert!(
        r.summary
            .lines()
            .any(|l| l.contains("manifest.csv:16:") && l.contains("users.csv")),
        "{}",
        r.summary
    );
}

// ---------------------------------------------------------------- variants: accepted

#[test]
fn a_bom_is_accepted_and_kept() {
    let mut s = b"\xEF\xBB\xBF".to_vec();
    s.extend_from_slice(
        lines(&[
            STUDENTS_HEADER,
            "S1001,1001,Ana,,Lopez,9,ana.lopez@students.maplevalley.example,alopez,8,L1",
            "S1002,1002,Ben,J,Okafor,Tenth,ben.okafor@students.maplevalley.example,bokafor,,L1",
            "S1003,1003,Chloe,,\"O'Neil, Jr\",11,chloe.oneil@students.maplevalley.example,coneil,,L1",
            "S1004,1004,Dmitri,,Ivanov,7,dmitri.ivanov@students.maplevalley.example,divanov,6,L2",
            "S1005,1005,Elif,,Yilmaz,8,elif.yilmaz@students.maplevalley.example,eyilmaz,6,L2",
            "S1006,1006,Farah,,Haddad,6,,fhaddad,4,L2",
        ])
        .as_bytes(),
    );
    let (_t, r) = apple_with("students.csv", &s);
    r.assert_code(0);
    // The first column (person_id, behind the BOM) is bound: the id is reported.
    assert_eq!(
        r.keys(),
        [("students.csv", 3, "S1002", "invalid-value", "cleared-field")]
    );
    let want = String::from_utf8(s).unwrap().replace(",Tenth,", ",,");
    assert_eq!(r.modified_text("students.csv"), want);

    // A OneRoster file with a BOM.
    let mut orgs = b"\xEF\xBB\xBF".to_vec();
    orgs.extend(std::fs::read(sample("oneroster").join("orgs.csv")).unwrap());
    let (_t, r) = oneroster_with("orgs.csv", Some(&orgs));
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert_eq!(r.modified("orgs.csv"), orgs);
}

#[test]
fn crlf_is_accepted_and_kept() {
    let text = std::fs::read_to_string(sample("apple").join("rosters.csv"))
        .unwrap()
        .replace('\n', "\r\n")
        + "R8,K999,S1001\r\nR9,K100,S1003\r\n";
    let (_t, r) = apple_with("rosters.csv", text.as_bytes());
    r.assert_code(0);
    assert_eq!(
        r.keys(),
        [("rosters.csv", 9, "R8", "unknown-class", "dropped-row")]
    );
    assert_eq!(
        r.modified_text("rosters.csv"),
        text.replace("R8,K999,S1001\r\n", "")
    );

    // OneRoster, CRLF throughout.
    let users = std::fs::read_to_string(sample("oneroster").join("users.csv"))
        .unwrap()
        .replace('\n', "\r\n");
    let (_t, r) = oneroster_with("users.csv", Some(users.as_bytes()));
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    let got = r.modified_text("users.csv");
    assert!(
        got.ends_with("\r\n") && !got.replace("\r\n", "").contains('\n'),
        "{got:?}"
    );
}

#[test]
fn a_semicolon_separator_is_accepted_and_kept() {
    let text = lines(&[
        &STUDENTS_HEADER.replace(',', ";"),
        "S1001;1001;Ana;;Lopez;9;ana.lopez@students.maplevalley.example;alopez;8;L1",
        "S1002;1002;Ben;J;Okafor;9,5;ben.okafor@students.maplevalley.example;bokafor;;L1",
        "S1003;1003;Chloe;;O'Neil, Jr;11;chloe.oneil@students.maplevalley.example;coneil;;L1",
        "S1004;1004;Dmitri;;Ivanov;7;dmitri.ivanov@students.maplevalley.example;divanov;6;L2",
        "S1005;1005;Elif;;\"Yil;maz\";8;elif.yilmaz@students.maplevalley.example;eyilmaz;6;L2",
        "S1006;1006;Farah;;Haddad;6;;fhaddad;4;L2",
    ]);
    let (_t, r) = apple_with("students.csv", text.as_bytes());
    r.assert_code(0);
    assert_eq!(
        r.keys(),
        [("students.csv", 3, "S1002", "invalid-value", "cleared-field")]
    );
    let p = r.find("students.csv", "S1002", "invalid-value");
    assert_eq!((p.field.as_str(), p.value.as_str()), ("grade_level", "9,5"));
    assert_eq!(r.modified_text("students.csv"), text.replace(";9,5;", ";;"));
}

#[test]
fn quoted_commas_quotes_and_line_breaks_are_accepted() {
    // OneRoster: doubled quotes; a title over three lines; the row after it has an error.
    let text = lines(&[
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
        "K100,,,\"Algebra I, \"\"Honors\"\"\n(period 1,\nroom 12)\",09,C10,ALG1-01,scheduled,Room 12,L1,\"F2026,S2027\",,,1",
        "K101,,,\"Biology, P2\",\"09,10\",C11,BIO-01,scheduled,Lab 3,L1,\"F2026, X9\",,,2",
        "K200,,,Science 7 - P1,07,C20,SCI7-01,scheduled,Room 4,L2,S2027,,,1",
    ]);
    let (_t, r) = oneroster_with("classes.csv", Some(text.as_bytes()));
    r.assert_code(0);
    assert_eq!(
        r.keys(),
        [(
            "classes.csv",
            5,
            "K101",
            "unknown-reference",
            "cleared-field"
        )]
    );
    let p = r.find("classes.csv", "K101", "unknown-reference");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("termSourcedIds", "X9")
    );
    let got = r.modified_text("classes.csv");
    assert_eq!(
        records(got.as_bytes(), b',', false),
        records(
            text.replace("\"F2026, X9\"", "F2026").as_bytes(),
            b',',
            false
        )
    );
    assert!(
        got.contains("\"Algebra I, \"\"Honors\"\"\n(period 1,\nroom 12)\""),
        "{got}"
    );
}

#[test]
fn apple_backslash_escapes_are_accepted() {
    let text = lines(&[
        STUDENTS_HEADER,
        "S1001,1001,Ana,\"\\\"Annie\\\"\",Lopez,9,ana.lopez@students.maplevalley.example,alopez,8,L1",
        "S1002,1002,Ben,J,\"Oka\\\\for\",\"Grade \\\"10\\\"\",ben.okafor@students.maplevalley.example,bokafor,,L1",
        "S1003,1003,Chloe,,\"O'Neil, Jr\",11,chloe.oneil@students.maplevalley.example,coneil,,L1",
        "S1004,1004,Dmitri,,Ivanov,7,dmitri.ivanov@students.maplevalley.example,divanov,6,L2",
        "S1005,1005,Elif,\"say \"\"hi\"\"\",Yilmaz,8,elif.yilmaz@students.maplevalley.example,eyilmaz,6,L2",
        "S1006,1006,Farah,,Haddad,6,,fhaddad,4,L2",
    ]);
    let (_t, r) = apple_with("students.csv", text.as_bytes());
    r.assert_code(0);
    assert_eq!(
        r.keys(),
        [("students.csv", 3, "S1002", "invalid-value", "cleared-field")]
    );
    // The reported value is unescaped.
    assert_eq!(
        r.find("students.csv", "S1002", "invalid-value").value,
        "Grade \"10\""
    );
    let got = r.modified("students.csv");
    let parsed = records(&got, b',', true);
    assert_eq!(parsed[1][3], "\"Annie\"");
    assert_eq!(parsed[2][4], "Oka\\for");
    assert_eq!(parsed[2][5], "");
    assert_eq!(parsed[5][3], "say \"hi\"");
    // Rows without a doubled quote come back byte for byte.
    let got = String::from_utf8(got).unwrap();
    assert!(got.contains(
        "\nS1001,1001,Ana,\"\\\"Annie\\\"\",Lopez,9,ana.lopez@students.maplevalley.example,alopez,8,L1\n"
    ));
    assert!(got.contains("\nS1002,1002,Ben,J,\"Oka\\\\for\",,ben.okafor@"));
}

#[test]
fn header_names_in_any_case_spacing_and_order_bind() {
    // Apple: reordered, other case, spaces for underscores, an unknown metadata column.
    let text = lines(&[
        "Location ID,LAST NAME,first name,Person_Id,metadata.district.note,Person Number,Middle Name,Grade Level,EMAIL_ADDRESS,SIS Username,Password Policy",
        "L1,Lopez,Ana,S1001,\"note, one\",1001,,9,ana.lopez@students.maplevalley.example,alopez,8",
        "L1,Okafor,Ben,S1002,,1002,J,10,ben.okafor@students.maplevalley.example,bokafor,",
        "L1,\"O'Neil, Jr\",Chloe,S1003,x,1003,,11,chloe.oneil@students.maplevalley.example,coneil,",
        "L2,Ivanov,Dmitri,S1004,,1004,,7,dmitri.ivanov@students.maplevalley.example,divanov,6",
        "L2,Yilmaz,Elif,S1005,,1005,,8,elif.yilmaz@students.maplevalley.example,eyilmaz,6",
        "L2,Haddad,Farah,S1006,,1006,,6,,fhaddad,4",
        "L9,Nguyen,Kim,S1009,gone,1009,,9,kim.nguyen@students.maplevalley.example,knguyen,7",
    ]);
    let (_t, r) = apple_with("students.csv", text.as_bytes());
    r.assert_code(0);
    let mut keys = r.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("students.csv", 8, "S1009", "invalid-value", "cleared-field"),
            (
                "students.csv",
                8,
                "S1009",
                "unknown-reference",
                "dropped-row"
            ),
        ]
    );
    assert_eq!(r.find("students.csv", "S1009", "invalid-value").value, "7");
    assert_eq!(
        r.find("students.csv", "S1009", "unknown-reference").value,
        "L9"
    );
    // Header, order and the extra column come back as uploaded.
    let want: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
    assert_eq!(r.modified_text("students.csv"), want);

    // OneRoster: other case and order.
    let orgs = lines(&[
        "Name,SOURCEDID,type,Status,Date Last Modified,Parent Sourced Id,identifier,metadata.district.note",
        "Maple Valley Unified School District,D1,district,,,,MVUSD,\"a \"\"note\"\"\"",
        "Maple Valley High School,L1,school,,,D1,MVHS,",
        "Cedar Creek Middle School,L2,school,,,D1,CCMS,",
        "Far Away,L5,campus,,,D1,FA,",
    ]);
    let (_t, r) = oneroster_with("orgs.csv", Some(orgs.as_bytes()));
    r.assert_code(3); // held: patches drop 1 of 4 orgs
    assert_eq!(
        r.keys(),
        [("orgs.csv", 5, "L5", "invalid-value", "dropped-row")]
    );
    assert_eq!(r.find("orgs.csv", "L5", "invalid-value").value, "campus");
    let want: String = orgs.lines().take(4).map(|l| format!("{l}\n")).collect();
    assert_eq!(r.modified_text("orgs.csv"), want);
}

#[test]
fn padded_header_names_are_written_back_as_uploaded() {
    let text =
        "location_id, location_name \nL1,Maple Valley High School\nL2,Cedar Creek Middle School\n";
    let (_t, r) = apple_with("locations.csv", text.as_bytes());
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert_eq!(r.modified_text("locations.csv"), text);
}

#[test]
fn an_unknown_metadata_column_is_kept_in_the_modified_output() {
    // OneRoster users with `metadata.district.note` in the middle; a cleared field to its
    // right and one to its left land in the right columns.
    let src = std::fs::read_to_string(sample("oneroster").join("users.csv")).unwrap();
    let mut out = String::new();
    for (i, l) in src.lines().enumerate() {
        // Insert the column after `username` (index 6).
        let fields = split_simple(l);
        let note = match i {
            0 => "metadata.district.note".to_string(),
            1 => "\"bus 12, stop \"\"A\"\"\"".to_string(),
            2 => "\"two\nlines\"".to_string(),
            _ => format!("n{i}"),
        };
        let mut f = fields.clone();
        f.insert(7, note);
        out.push_str(&f.join(","));
        out.push('\n');
    }
    // S1002 (line 3, spanning 3-4): invalid grades; S1003 (line 5): invalid enabledUser.
    let out = out
        .replace(
            ",Okafor,J,1002,ben.okafor@students.maplevalley.example,,,,10,",
            ",Okafor,J,1002,ben.okafor@students.maplevalley.example,,,,tenth,",
        )
        .replace("S1003,,,true,", "S1003,,,yes,");
    let (_t, r) = oneroster_with("users.csv", Some(out.as_bytes()));
    r.assert_code(0);
    let mut keys = r.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("enrollments.csv", 5, "E4", "unknown-user", "dropped-row"),
            ("users.csv", 3, "S1002", "invalid-value", "cleared-field"),
            ("users.csv", 5, "S1003", "invalid-value", "dropped-row"),
        ]
    );
    assert_eq!(
        r.find("users.csv", "S1002", "invalid-value").field,
        "grades"
    );
    assert!(r
        .find("enrollments.csv", "E4", "unknown-user")
        .detail
        .contains("S1003"));
    let got = r.modified("users.csv");
    let want = records(out.as_bytes(), b',', false);
    let got = records(&got, b',', false);
    assert_eq!(got[0], want[0], "header with the metadata column");
    assert_eq!(got[1], want[1]);
    let mut s1002 = want[2].clone();
    s1002[17] = String::new();
    assert_eq!(got[2], s1002, "only grades cleared; the note kept");
    assert_eq!(got.len(), want.len() - 1, "S1003 dropped, the rest kept");
    assert!(got.iter().all(|r| r.len() == 19));
}

/// Splits a sample line on commas, keeping quoted fields (with their quotes) whole.
fn split_simple(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut q = false;
    for c in line.chars() {
        match c {
            '"' => {
                q = !q;
                out.last_mut().unwrap().push(c);
            }
            ',' if !q => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}
