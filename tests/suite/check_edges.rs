//! Edge cases of `rosterdrop check` not covered by the check_* suites: several errors at once,
//! duplicate columns, numbered instructor columns, zip bombs, unresolvable references.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;
use std::fs;

/// A valid Apple bundle whose `file` is replaced by `content`; returns the check result.
fn with(file: &str, content: &[u8]) -> Run {
    let tmp = tempfile::tempdir().unwrap().keep();
    let d = write_files(&tmp.join("b"), &apple_files());
    fs::write(d.join(file), content).unwrap();
    check(&d, &tmp.join("out"), &[])
}

fn rejected_at(c: &Run, needle: &str) {
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(c.summary.contains("could not be read"), "{}", c.summary);
    assert!(
        c.summary.contains(needle),
        "expected `{needle}` in:\n{}",
        c.summary
    );
}

const OR12_MANIFEST: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.enrollments,bulk\nfile.lineItems,absent\nfile.userProfiles,absent\n";

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
    // Wrong field counts cost their rows (`malformed-row`, check_structure.rs).
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K1\nR2,K1,S1\nR3\n",
    );
    let malformed: Vec<(&str, u32, &str, &str)> = c
        .patches()
        .iter()
        .filter(|p| p.rule == "malformed-row")
        .map(|p| (p.file.as_str(), p.line, p.rule.as_str(), p.action.as_str()))
        .collect();
    assert_eq!(
        malformed,
        [2, 4].map(|l| ("rosters.csv", l, "malformed-row", "dropped-row"))
    );
    // Structural errors that reject are all reported too.
    let c = with(
        "rosters.csv",
        b"roster_id,class_id,student_id\nR1,K\xff1,S1\nR2,K1,S1\nR3,K1,S\0\n",
    );
    rejected_at(&c, "rosters.csv:2:2");
    assert!(c.summary.contains("rosters.csv:4:3"), "{}", c.summary);
}

#[test]
fn extra_instructor_columns_up_to_15_are_checked() {
    let c = with(
        "classes.csv",
        b"class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,instructor_id_15,location_id\nK1,1,C1,T1,,,T77,L1\n",
    );
    let rules: Vec<(&str, u32, &str, &str)> = c
        .patches()
        .iter()
        .map(|p| (p.file.as_str(), p.line, p.rule.as_str(), p.action.as_str()))
        .collect();
    assert_eq!(
        rules,
        [("classes.csv", 2, "unknown-instructor", "cleared-field")]
    );
    assert_eq!(c.patches()[0].field, "instructor_id_15");
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
    let c = check(&z, &tmp.path().join("out"), &[]);
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(c.summary.contains("refused as a zip bomb"), "{}", c.summary);
}

#[test]
fn references_into_an_absent_file_are_noted_not_patched() {
    let tmp = tempfile::tempdir().unwrap();
    let d = bundle(
        tmp.path(),
        "or12",
        &[
            ("manifest.csv", OR12_MANIFEST.as_bytes()),
            ("orgs.csv", b"sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nL1,,,North,school,,\n"),
            ("academicSessions.csv", b"sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\nT1,,,Fall,ext:trimester,2026-08-01,2026-12-31,,2027\n"),
            ("courses.csv", b"sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\nC1,,,,Algebra,,09,L1,,\n"),
            ("classes.csv", b"sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\nK1,,,Alg,,C1,,scheduled,,L1,T1,,,\n"),
            ("users.csv", b"sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\nU1,,,true,u1,,Ana,Lopez,,,ana@x.org,,,,09,,,,,,L1,\nU2,,,true,u2,,Gus,Chen,,,,,,,,,,,,,L9,\n"),
            ("roles.csv", b"sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\nR1,,,U1,primary,student,,,L1,\nR2,,,U2,primary,teacher,,,L1,P9\n"),
            ("enrollments.csv", b"sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\nE1,,,K1,L1,U1,student,,,\nE2,,,K1,L1,U2,teacher,true,,\n"),
            ("lineItems.csv", b"sourcedId\nX\n"),
            ("readme.txt", b"hello"),
        ],
    );
    let c = check(&d, &tmp.path().join("out"), &[]);
    assert_eq!(c.code, 0, "{}", c.summary);
    assert!(c.summary.contains("oneroster-1.2"));
    let got: Vec<(&str, &str, &str)> = c
        .patches()
        .iter()
        .map(|p| (p.file.as_str(), p.rule.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [("users.csv", "unknown-reference", "primaryOrgSourcedId")]
    );
    // userProfiles.csv is absent: its references cannot be checked and are not patched.
    assert!(
        c.summary.contains(
            "1 reference(s) in roles.userProfileSourcedId to userProfiles were not checked"
        ),
        "{}",
        c.summary
    );
    assert!(
        c.summary
            .contains("lineItems.csv: OneRoster file not used by rosterdrop"),
        "{}",
        c.summary
    );
    assert!(c
        .summary
        .contains("readme.txt: not a OneRoster rostering file"));
}

/// `[limits]` bounds what one bundle may make the process read: the files of a zip together
/// (each well within its own ratio), and a loose file by its size (issue 12, "a decompressed
/// entry is bounded by a configurable total").
#[test]
fn the_limits_section_bounds_a_bundle_in_total_and_per_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("rosterdrop.toml");
    fs::write(
        &cfg,
        "state_dir = \"state\"\n[limits]\nmax_bundle_bytes = 2000\nmax_file_bytes = 1500\n\
         [sources.north]\n",
    )
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = apple_files()
        .into_iter()
        .map(|(n, c)| (n, c.into_bytes()))
        .collect();
    // Six ordinary files; padded so that together they pass 2,000 bytes, each under 1,500.
    for (_, c) in files.iter_mut() {
        c.extend(std::iter::repeat_n(b'\n', 400));
    }
    let z = tmp.path().join("big.zip");
    zip_entries(&z, "", &files);
    let c = check_with(&z, &tmp.path().join("out"), &cfg, "north");
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(
        c.summary.contains("[limits] max_bundle_bytes = 2000"),
        "{}",
        c.summary
    );
    // The defaults take the same zip.
    let c = check(&z, &tmp.path().join("out2"), &[]);
    assert_eq!(c.code, 0, "{}", c.summary);

    // A loose file past max_file_bytes is named and not read.
    let d = write_files(&tmp.path().join("loose"), &apple_files());
    let mut students = fs::read(d.join("students.csv")).unwrap();
    students.extend(std::iter::repeat_n(b'\n', 1600));
    fs::write(d.join("students.csv"), students).unwrap();
    let c = check_with(&d, &tmp.path().join("out3"), &cfg, "north");
    assert_eq!(c.code, 1, "{}", c.summary);
    assert!(
        c.summary.contains("students.csv") && c.summary.contains("max_file_bytes = 1500"),
        "{}",
        c.summary
    );

    // A limit of 0 is a configuration error, not a daemon that refuses everything.
    fs::write(
        &cfg,
        "state_dir = \"state\"\n[limits]\nmax_zip_ratio = 0\n[sources.north]\n",
    )
    .unwrap();
    let c = check_with(&z, &tmp.path().join("out4"), &cfg, "north");
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(c.stderr.contains("max_zip_ratio"), "{}", c.stderr);
}
