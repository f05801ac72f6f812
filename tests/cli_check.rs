//! `rosterdrop check` end to end: the binary on bundles made in the test and on the samples.

mod support;

use std::fs;
use support::*;

fn sample(name: &str) -> std::path::PathBuf {
    repo().join("sample-csv").join(name)
}

fn sample_config() -> std::path::PathBuf {
    repo().join("sample-csv/sample.toml")
}

#[test]
fn valid_samples_need_no_patch() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["apple", "oneroster"] {
        let c = check(&sample(name), &tmp.path().join(name), None);
        assert_eq!(c.code, 0, "{name}: {}", c.summary);
        assert!(c.rows.is_empty(), "{name}: {:?}", c.rows);
        assert!(c.summary.contains("ACCEPTED (no patches needed)"));
    }
}

#[test]
fn apple_with_errors_shows_every_rule_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = sample_config();
    let c = check(
        &sample("apple-with-errors"),
        tmp.path(),
        Some((&cfg, "maple-valley")),
    );
    assert_eq!(c.code, 0, "{}", c.summary);
    let expect = [
        ("locations.csv", 4, "filtered", "dropped-row"),
        ("students.csv", 8, "duplicate-id", "dropped-row"),
        ("students.csv", 9, "duplicate-account", "dropped-row"),
        ("students.csv", 10, "invalid-value", "cleared-field"),
        ("staff.csv", 5, "unknown-reference", "dropped-row"),
        ("classes.csv", 5, "unknown-instructor", "cleared-field"),
        ("rosters.csv", 9, "unknown-class", "dropped-row"),
        ("rosters.csv", 10, "unknown-student", "dropped-row"),
    ];
    let got = c.rules();
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for (g, e) in got.iter().zip(expect) {
        assert_eq!((g.0.as_str(), g.1, g.2.as_str(), g.3.as_str()), e);
    }
    // The modified files lack exactly what was dropped or cleared.
    assert!(!c.modified("rosters.csv").contains("R8,"));
    assert!(c.modified("classes.csv").contains("K102,ALG1-02,C10,,,,L1"));
    assert!(c
        .modified("students.csv")
        .contains("S1008,1008,Gus,,Eriksen,,"));
    // Without the filter the location stays.
    let c = check(
        &sample("apple-with-errors"),
        &tmp.path().join("nofilter"),
        None,
    );
    assert_eq!(c.count("filtered"), 0);
    assert_eq!(c.rows.len(), 7);
}

#[test]
fn oneroster_with_errors_shows_every_oneroster_rule_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = sample_config();
    let c = check(
        &sample("oneroster-with-errors"),
        tmp.path(),
        Some((&cfg, "maple-valley")),
    );
    assert_eq!(c.code, 0, "{}", c.summary);
    let mut rules: Vec<String> = c.rows.iter().map(|r| r[3].clone()).collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "duplicate-account",
            "duplicate-id",
            "filtered",
            "invalid-value",
            "unknown-class",
            "unknown-reference",
            "unknown-user"
        ]
    );
    let users = c.modified("users.csv");
    assert!(users.contains("S1009,,,true,L1,student,knguyen,,Kim,Nguyen,,1009,kim.nguyen@students.maplevalley.example,,,,09,"));
    assert!(!users.contains("S1007"));
}

#[test]
fn zips_with_files_at_the_root_or_in_one_folder_match_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample("apple-with-errors");
    let files = read_dir(&dir);
    let base = check(&dir, &tmp.path().join("dir"), None);
    for (name, prefix) in [("root.zip", ""), ("folder.zip", "district-export/")] {
        let z = tmp.path().join(name);
        zip(&z, prefix, &files);
        let c = check(&z, &tmp.path().join(format!("out-{name}")), None);
        assert_eq!(c.code, 0, "{}", c.summary);
        assert_eq!(c.rows, base.rows, "{name}");
        assert_eq!(
            read_dir(&c.out.join("modified")),
            read_dir(&base.out.join("modified"))
        );
    }
    // modified.zip holds the modified files at its root.
    let mut z =
        zip::ZipArchive::new(fs::File::open(base.out.join("modified.zip")).unwrap()).unwrap();
    let mut names: Vec<String> = z.file_names().map(str::to_string).collect();
    names.sort();
    assert_eq!(
        names,
        read_dir(&base.out.join("modified"))
            .into_iter()
            .map(|f| f.0)
            .collect::<Vec<_>>()
    );
    let mut rosters = String::new();
    std::io::Read::read_to_string(&mut z.by_name("rosters.csv").unwrap(), &mut rosters).unwrap();
    assert_eq!(rosters, base.modified("rosters.csv"));
}

#[test]
fn neither_format_is_rejected_naming_what_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = bundle(
        tmp.path(),
        "b",
        &[("grades.csv", b"a,b\n1,2\n"), ("notes.txt", b"hi")],
    );
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(c.code, 1);
    assert!(c.summary.contains("not a roster bundle"), "{}", c.summary);
    assert!(c.summary.contains("grades.csv") && c.summary.contains("notes.txt"));
}

#[test]
fn apple_bundle_missing_a_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = apple_files();
    files.retain(|f| f.0 != "staff.csv");
    let d = write_files(&tmp.path().join("b"), &files);
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(c.code, 1);
    assert!(c.summary.contains("missing staff.csv"), "{}", c.summary);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let c = check(&tmp.path().join("nope"), &tmp.path().join("out"), None);
    assert_eq!(c.code, 2);
    assert!(c.stderr.contains("nope"), "{}", c.stderr);
    let o = bin().args(["check"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .args(["check", "x", "--config", "c.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--config needs --source");
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "[sources.a]\n").unwrap();
    let o = bin()
        .arg("check")
        .arg(sample("apple"))
        .args(["--out"])
        .arg(tmp.path().join("o2"))
        .arg("--config")
        .arg(&cfg)
        .args(["--source", "b"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no source `b`"));
}

#[test]
fn patch_errors_off_rejects_with_the_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "[sources.strict]\npatch.errors = \"off\"\n").unwrap();
    let on = check(&sample("apple-with-errors"), &tmp.path().join("on"), None);
    let off = check(
        &sample("apple-with-errors"),
        &tmp.path().join("off"),
        Some((&cfg, "strict")),
    );
    assert_eq!(off.code, 1);
    assert_eq!(off.rows, on.rows);
    assert!(off.summary.contains("REJECTED") && off.summary.contains("patching is off"));
    // A clean bundle passes even with patching off.
    let ok = check(
        &sample("apple"),
        &tmp.path().join("ok"),
        Some((&cfg, "strict")),
    );
    assert_eq!(ok.code, 0);
}

#[test]
fn duplicate_accounts_span_students_and_staff_and_can_be_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = apple_files();
    files[2].1.push_str("T2,2,ANA,, Lopez ,Ana@X.org,ana2,L1\n");
    let d = write_files(&tmp.path().join("b"), &files);
    let c = check(&d, &tmp.path().join("on"), None);
    assert_eq!(
        c.rules(),
        vec![(
            "staff.csv".into(),
            3,
            "duplicate-account".into(),
            "dropped-row".into()
        )]
    );
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "[sources.a]\npatch.prevent_duplicates = false\n").unwrap();
    let c = check(&d, &tmp.path().join("off"), Some((&cfg, "a")));
    assert!(c.rows.is_empty(), "{:?}", c.rows);
}

#[test]
fn a_class_with_an_unknown_course_takes_its_roster_rows_along() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = apple_files();
    files[4].1 = format!("{}\nK1,ALG-1,C9,T1,,,L1\n", APPLE_HEADERS[4].1);
    let d = write_files(&tmp.path().join("b"), &files);
    let c = check(&d, &tmp.path().join("out"), None);
    let r = c.rules();
    assert_eq!(
        r[0],
        (
            "classes.csv".into(),
            2,
            "unknown-reference".into(),
            "dropped-row".into()
        )
    );
    assert_eq!(r[1].2, "unknown-class");
    assert_eq!(r[2].2, "unknown-class");
    assert!(c.rows[1][7].contains("was dropped"), "{:?}", c.rows[1]);
    assert_eq!(c.modified("rosters.csv"), "roster_id,class_id,student_id\n");
}

#[test]
fn line_numbers_are_physical_after_multiline_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = apple_files();
    files[0].1 =
        "location_id,location_name\r\nL1,\"North\r\nHigh\r\nSchool\"\r\nL2,South\r\n".into();
    files[5].1 = "roster_id,class_id,student_id\nR1,K1,S1\nR2,K9,S2\n".into();
    files[1].1.push_str("S3,3,Cy,,Diaz,9,,,,L7\n");
    let d = write_files(&tmp.path().join("b"), &files);
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(
        c.rules(),
        vec![
            (
                "students.csv".into(),
                4,
                "unknown-reference".into(),
                "dropped-row".into()
            ),
            (
                "rosters.csv".into(),
                3,
                "unknown-class".into(),
                "dropped-row".into()
            ),
        ]
    );
    // The multi-line value survives in the CRLF file, written back with CRLF.
    assert_eq!(
        c.modified("locations.csv"),
        "location_id,location_name\r\nL1,\"North\nHigh\nSchool\"\r\nL2,South\r\n"
    );
}

const OR12_MANIFEST: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.enrollments,bulk\nfile.lineItems,absent\nfile.userProfiles,absent\n";

#[test]
fn oneroster_12_with_roles_and_ignored_files() {
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
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(c.code, 0, "{}", c.summary);
    assert!(c.summary.contains("oneroster-1.2"));
    let got: Vec<(String, String, String)> = c
        .rows
        .iter()
        .map(|r| (r[0].clone(), r[3].clone(), r[5].clone()))
        .collect();
    assert_eq!(
        got,
        vec![(
            "users.csv".into(),
            "unknown-reference".into(),
            "primaryOrgSourcedId".into()
        )]
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

#[test]
fn manifest_naming_a_missing_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let d = bundle(
        tmp.path(),
        "b",
        &[(
            "manifest.csv",
            b"propertyName,value\noneroster.version,1.1\nfile.users,bulk\n",
        )],
    );
    let c = check(&d, &tmp.path().join("out"), None);
    assert_eq!(c.code, 1);
    assert!(
        c.summary
            .contains("file.users is `bulk` but users.csv is not in the bundle"),
        "{}",
        c.summary
    );
}
