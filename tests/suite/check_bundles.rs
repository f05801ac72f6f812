//! What a bundle is: detection without a manifest, OneRoster 1.0, the source's format setting,
//! the content hash, linear and unambiguous resolution of names, and zip entries whose
//! declared sizes lie. Every test runs the real binary.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::store::Env;
use crate::support::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn remove(dir: &Path, name: &str) {
    fs::remove_file(dir.join(name)).unwrap();
}

/// A OneRoster 1.0 bundle as 1.0 exporters wrote it: no manifest.csv, demographics keyed by
/// `userSourcedId`, academicSessions without `schoolYear`, users without `enabledUser`, 1.0
/// column names (`userId`, `agents`, `grade`, `termSourcedId`, `schoolYearId`) and the 1.0
/// status `inactive`.
fn oneroster10_bundle(dir: &Path) -> PathBuf {
    write(
        dir,
        "orgs.csv",
        lines(&[
            "sourcedId,status,dateLastModified,name,type,identifier,metadata.classification,metadata.gender,metadata.boarding,parentSourcedId",
            "D1,active,2016-09-24T00:00:00Z,District,district,D,public,mixed,false,",
            "L1,active,2016-09-24T00:00:00Z,North High,school,NH,public,mixed,false,D1",
        ]),
    );
    write(
        dir,
        "academicSessions.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId",
            "Y1,active,2016-09-24T00:00:00Z,2016-17,schoolYear,2016-08-15,2017-06-02,",
            "T1,active,2016-09-24T00:00:00Z,Fall,semester,2016-08-15,2016-12-16,Y1",
        ]),
    );
    write(
        dir,
        "courses.csv",
        lines(&[
            "sourcedId,status,dateLastModified,schoolYearId,title,courseCode,grade,orgSourcedId,subjects",
            "C1,active,2016-09-24T00:00:00Z,Y1,Algebra,ALG,09,L1,math",
        ]),
    );
    write(
        dir,
        "classes.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,grade,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedId,subjects",
            "K1,active,2016-09-24T00:00:00Z,Algebra P1,09,C1,ALG-1,scheduled,Room 1,L1,T1,math",
        ]),
    );
    write(
        dir,
        "users.csv",
        lines(&[
            "sourcedId,status,dateLastModified,orgSourcedIds,role,username,userId,givenName,familyName,identifier,email,sms,phone,agents",
            "U1,active,2016-09-24T00:00:00Z,L1,student,u1,u1,Ann,Avery,1001,ann@example.org,,,",
            "U2,inactive,2016-09-24T00:00:00Z,L1,student,u2,u2,Bo,Berg,1002,bo@example.org,,,",
            "U3,active,2016-09-24T00:00:00Z,L1,teacher,u3,u3,Cy,Cole,1003,cy@example.org,,,",
        ]),
    );
    write(
        dir,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary",
            "E1,active,2016-09-24T00:00:00Z,K1,L1,U1,student,false",
            "E2,active,2016-09-24T00:00:00Z,K1,L1,U3,teacher,true",
        ]),
    );
    write(
        dir,
        "demographics.csv",
        lines(&[
            "userSourcedId,status,dateLastModified,birthdate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus",
            "U1,active,2016-09-24T00:00:00Z,2002-03-04,female,false,false,false,false,true,false,false,US,WA,Seattle,",
            "U9,active,2016-09-24T00:00:00Z,2002-05-06,male,false,false,false,false,true,false,false,US,WA,Tacoma,",
        ]),
    );
    dir.to_path_buf()
}

fn demographics_11(user_col: &str) -> String {
    lines(&[
        &format!("{user_col},status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus"),
        "U1,,,2010-03-04,female,,,,,true,,,,,,",
        "U2,,,2011-05-06,male,,,,,,,,,,,",
        "U7,,,2011-05-06,male,,,,,,,,,,,",
    ])
}

fn set_manifest(dir: &Path, key: &str, value: &str) {
    let m = fs::read_to_string(dir.join("manifest.csv")).unwrap();
    let mut out = String::new();
    let mut found = false;
    for l in m.lines() {
        if l.split(',').next() == Some(key) {
            out.push_str(&format!("{key},{value}\n"));
            found = true;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!("{key},{value}\n"));
    }
    fs::write(dir.join("manifest.csv"), out).unwrap();
}

// ---- Issue 11 item 6: OneRoster 1.0 and bundles without a manifest ----

#[test]
fn oneroster_11_without_manifest_is_detected_from_its_file_names() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    remove(&b, "manifest.csv");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(
        r.summary.contains("Format:  oneroster-1.1"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("no manifest.csv") && r.summary.contains("bulk"),
        "the assumption is noted:\n{}",
        r.summary
    );
    assert!(!r.summary.contains("Apple School Manager"), "{}", r.summary);
    // Every file present was read, as bulk.
    for f in ["orgs.csv", "users.csv", "enrollments.csv", "classes.csv"] {
        assert!(
            summary_line_has(&r.summary, &[f, "bulk"]),
            "{f}:\n{}",
            r.summary
        );
    }
}

#[test]
fn oneroster_12_without_manifest_is_detected_from_roles_csv() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.2");
    remove(&b, "manifest.csv");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(
        r.summary.contains("Format:  oneroster-1.2"),
        "{}",
        r.summary
    );
    assert!(
        summary_line_has(&r.summary, &["roles.csv", "bulk"]),
        "{}",
        r.summary
    );
}

/// `check` with a source whose patch guard never holds: for bundles whose few rows make one
/// deliberate patch a large share of a file (the guard itself is tested in store_guards.rs).
fn check_lenient(b: &Path, out: &Path) -> Run {
    let dir = out.with_extension("config");
    fs::create_dir_all(&dir).unwrap();
    let cfg = config(&dir, "[sources.s]\nguard.max_patch_drop_percent = 100.0\n");
    check_with(b, out, &cfg, "s")
}

#[test]
fn oneroster_10_bundle_is_read_as_its_own_format() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster10_bundle(&t.path().join("b"));
    let r = check_lenient(&b, &t.path().join("out"));
    r.assert_code(0);
    assert!(
        r.summary.contains("Format:  oneroster-1.0"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("OneRoster 1.0"),
        "why 1.0 was assumed is noted:\n{}",
        r.summary
    );
    // Demographics are keyed by userSourcedId, which must name a user: U9 does not. 1.0's
    // `inactive` is read as the deletion it means in 1.1 and 1.2, and said so.
    assert_rows(
        &r,
        &[
            (
                "demographics.csv",
                3,
                "U9",
                "unknown-reference",
                "dropped-row",
            ),
            ("users.csv", 3, "U2", "normalized", "fixed-field"),
        ],
    );
    assert_eq!(
        r.find("users.csv", "U2", "normalized").value,
        "inactive -> tobedeleted"
    );
    assert_eq!(
        r.find("demographics.csv", "U9", "unknown-reference").field,
        "userSourcedId"
    );
    // 1.0's `inactive` is a status 1.0 knows, not an invalid value.
    assert_eq!(r.count("invalid-value"), 0);
    // The modified bundle stays a 1.0 bundle: no manifest invented, 1.0 headers kept.
    let files = r.modified_files();
    assert!(!files.contains_key("manifest.csv"), "{:?}", files.keys());
    assert!(r
        .modified_text("demographics.csv")
        .starts_with("userSourcedId,"));
}

#[test]
fn oneroster_10_enumerations_are_checked_against_10_values() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster10_bundle(&t.path().join("b"));
    let users = fs::read_to_string(b.join("users.csv")).unwrap();
    // 1.2's `districtAdministrator` is not a 1.0 role.
    fs::write(
        b.join("users.csv"),
        users.replace(
            "U3,active,2016-09-24T00:00:00Z,L1,teacher",
            "U3,active,2016-09-24T00:00:00Z,L1,districtAdministrator",
        ),
    )
    .unwrap();
    let r = check(&b, &t.path().join("out"), &[]);
    assert!(
        r.summary.contains("Format:  oneroster-1.0"),
        "{}",
        r.summary
    );
    let p = r.find("users.csv", "U3", "invalid-value");
    assert_eq!(p.field, "role");
}

#[test]
fn oneroster_10_columns_under_a_11_manifest_are_mapped_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    set_manifest(&b, "file.demographics", "bulk");
    write(&b, "demographics.csv", demographics_11("userSourcedId"));
    let r = check_lenient(&b, &t.path().join("out"));
    r.assert_code(0);
    assert!(
        r.summary.contains("Format:  oneroster-1.1"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("demographics.csv") && r.summary.contains("userSourcedId"),
        "the 1.0 column is reported:\n{}",
        r.summary
    );
    // Read as the 1.1 key: U7 names no user.
    assert_rows(
        &r,
        &[(
            "demographics.csv",
            4,
            "U7",
            "unknown-reference",
            "dropped-row",
        )],
    );
}

#[test]
fn oneroster_10_academic_sessions_under_a_11_manifest_are_reported() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    write(
        &b,
        "academicSessions.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId",
            "Y1,,,Year,schoolYear,2026-08-01,2027-06-30,",
            "T1,,,Fall,semester,2026-08-01,2026-12-20,Y1",
            "T2,,,Spring,semester,2027-01-05,2027-06-30,Y1",
        ]),
    );
    let r = check(&b, &t.path().join("out"), &[]);
    assert!(
        r.summary.contains("academicSessions.csv")
            && r.summary.contains("schoolYear")
            && r.summary.contains("1.0"),
        "the 1.0 header is recognised:\n{}",
        r.summary
    );
}

#[test]
fn manifest_version_10_beside_oneroster_version_11_is_11() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    let m = fs::read_to_string(b.join("manifest.csv")).unwrap();
    assert!(m.contains("manifest.version,1.0\noneroster.version,1.1\n"));
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(
        r.summary.contains("Format:  oneroster-1.1"),
        "{}",
        r.summary
    );
}

#[test]
fn an_empty_file_value_is_absent_with_a_note() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    set_manifest(&b, "file.demographics", "");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(
        r.summary.contains("file.demographics") && r.summary.contains("absent"),
        "{}",
        r.summary
    );
}

#[test]
fn a_bundle_of_neither_format_names_what_it_found_and_what_each_needs() {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("b");
    write(&b, "classes.csv", "class_id,course_id\nK1,C1\n");
    write(&b, "readme.txt", "hello\n");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    let s = &r.summary;
    assert!(s.contains("classes.csv") && s.contains("readme.txt"), "{s}");
    assert!(
        s.contains("Apple School Manager") && s.contains("students.csv"),
        "{s}"
    );
    assert!(
        s.contains("OneRoster") && s.contains("manifest.csv") && s.contains("users.csv"),
        "{s}"
    );
    assert!(
        !s.contains("bundle is missing"),
        "not taken for an Apple bundle: {s}"
    );
}

#[test]
fn a_bundle_mixing_both_formats_is_rejected_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "apple");
    remove(&b, "staff.csv");
    write(&b, "users.csv", "sourcedId,role\nU1,student\n");
    write(&b, "orgs.csv", "sourcedId,name\nO1,x\n");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    let s = &r.summary;
    assert!(
        s.contains("mixes the two formats")
            && s.contains("users.csv")
            && s.contains("students.csv"),
        "{s}"
    );
}

#[test]
fn all_six_apple_files_make_an_apple_bundle_whatever_is_beside_them() {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "apple");
    write(&b, "users.csv", "sourcedId,role\nU1,student\n");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(r.summary.contains("Format:  apple"), "{}", r.summary);
    assert!(
        r.summary
            .contains("users.csv: not an Apple School Manager file")
            && r.summary
                .contains("OneRoster file(s) beside them were not read: users.csv"),
        "{}",
        r.summary
    );
}

// ---- Issue 11 item 7: the source's format setting ----

#[test]
fn the_format_setting_rejects_a_bundle_of_the_other_format() {
    let t = tempfile::tempdir().unwrap();
    let cfg = config(
        t.path(),
        "[sources.apples]\nformat = \"apple\"\n[sources.ors]\nformat = \"oneroster\"\n[sources.any]\n",
    );
    let or = oneroster_bundle(&t.path().join("or"), "1.1");
    let r = check_with(&or, &t.path().join("o1"), &cfg, "apples");
    r.assert_code(1);
    assert!(
        r.summary.contains("format = \"apple\"") && r.summary.contains("OneRoster"),
        "the message names the setting:\n{}",
        r.summary
    );
    let r = check_with(&sample("apple"), &t.path().join("o2"), &cfg, "ors");
    r.assert_code(1);
    assert!(
        r.summary.contains("format = \"oneroster\""),
        "{}",
        r.summary
    );
    // The matching format, and auto, pass.
    check_with(&or, &t.path().join("o3"), &cfg, "ors").assert_code(0);
    check_with(&sample("apple"), &t.path().join("o4"), &cfg, "apples").assert_code(0);
    check_with(&or, &t.path().join("o5"), &cfg, "any").assert_code(0);
}

#[test]
fn an_auto_source_keeps_its_first_format_and_says_how_to_add_another_source() {
    let e = Env::new("[sources.north]\n");
    let (code, out) = e.ingest_text(&sample("apple"), "north");
    assert_eq!(code, 0, "{out}");
    let or = oneroster_bundle(&e.path("or"), "1.1");
    let (code, out) = e.ingest_text(&or, "north");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("source holds a apple roster") || out.contains("apple roster"),
        "{out}"
    );
    assert!(
        out.contains("[sources.") && out.contains("format = \"oneroster\""),
        "the rejection says how to add a source for the other format:\n{out}"
    );
}

#[test]
fn an_explicit_format_setting_is_not_second_guessed_by_the_first_batch() {
    // The setting was changed from apple to oneroster: the admin decides, not the history.
    let e = Env::new("[sources.north]\n");
    let (code, out) = e.ingest_text(&sample("apple"), "north");
    assert_eq!(code, 0, "{out}");
    fs::write(
        &e.config,
        format!(
            "state_dir = \"{}\"\n[sources.north]\nformat = \"oneroster\"\n",
            e.path("state").display()
        ),
    )
    .unwrap();
    let or = oneroster_bundle(&e.path("or"), "1.1");
    let (code, out) = e.ingest_text(&or, "north");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APPLIED"), "{out}");
}

#[test]
fn a_oneroster_10_roster_is_stored_exported_as_10_and_shares_the_oneroster_format() {
    // The bundle's one dangling demographics row is half its file: the patch guard would hold.
    let e = Env::new(
        "[sources.north]\nguard.max_patch_drop_percent = 100.0\n\
         [sources.south]\nguard.max_patch_drop_percent = 100.0\n",
    );
    let b = oneroster10_bundle(&e.path("b10"));
    let (code, out) = e.ingest_text(&b, "north");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Format:  oneroster-1.0") && out.contains("APPLIED"),
        "{out}"
    );
    let x = e.path("exported");
    let (code, out) = e.run_text(&["export", "--source", "north", "--out", x.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let files = dir_files(&x);
    assert!(!files.contains_key("manifest.csv"), "{:?}", files.keys());
    let demo = String::from_utf8(files["demographics.csv"].clone()).unwrap();
    assert!(demo.starts_with("userSourcedId,"), "{demo}");
    // The export reads back as the same 1.0 roster.
    let (code, out) = e.ingest_text(&x, "north");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Format:  oneroster-1.0"), "{out}");
    assert!(out.contains("no record differs"), "{out}");
    // 1.0, 1.1 and 1.2 are one format for a source.
    let (code, out) = e.ingest_text(&oneroster_bundle(&e.path("b11"), "1.1"), "north");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APPLIED"), "{out}");
}

// ---- Issue 11 item 10: the content hash ----

#[test]
fn two_bundles_inside_one_top_folder_are_both_applied() {
    let e = Env::new("[sources.north]\n");
    let first = e.path("up1");
    copy_dir(&sample("apple"), &first.join("export"));
    let (code, out) = e.ingest_text(&first, "north");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APPLIED"), "{out}");
    let second = e.path("up2");
    let d = copy_dir(&sample("apple"), &second.join("export"));
    let s = fs::read_to_string(d.join("students.csv")).unwrap();
    fs::write(
        d.join("students.csv"),
        format!("{s}S1010,1010,Kofi,,Mensah,9,,kmensah,,L1\n"),
    )
    .unwrap();
    let (code, out) = e.ingest_text(&second, "north");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("APPLIED. 1 added"),
        "the second upload differs and must be applied:\n{out}"
    );
    // The same content again, zipped this time and in another folder: unchanged by hash.
    let z = e.path("again.zip");
    zip_dir(&d, &z, Some("other-folder"));
    let (code, out) = e.ingest_text(&z, "north");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("same content as the last applied batch"),
        "{out}"
    );
}

#[test]
fn files_the_engine_does_not_read_do_not_change_the_hash() {
    let e = Env::new("[sources.north]\n");
    let b = copy_dir(&sample("apple"), &e.path("b"));
    let (code, out) = e.ingest_text(&b, "north");
    assert_eq!(code, 0, "{out}");
    write(&b, "notes.txt", "exported by hand\n");
    let (code, out) = e.ingest_text(&b, "north");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("same content as the last applied batch"),
        "{out}"
    );
}

/// The same upload again after the source's settings changed is checked with the new ones:
/// a filter added for the night takes effect (it was recorded as unchanged by its hash, and
/// the filtered school stayed until the content changed).
#[test]
fn the_same_upload_under_new_settings_is_checked_again() {
    let e = Env::new("[sources.north]\n");
    let b = copy_dir(&sample("apple"), &e.path("b"));
    assert_eq!(e.ingest_text(&b, "north").0, 0);
    let (_, out) = e.ingest_text(&b, "north");
    assert!(
        out.contains("same content as the last applied batch"),
        "{out}"
    );
    let config = fs::read_to_string(&e.config).unwrap();
    fs::write(
        &e.config,
        config.replace("[sources.north]\n", "[sources.north]\nfilter.locations = [\"L1\"]\nguard.max_delete_percent = 100.0\nguard.max_patch_drop_percent = 100.0\n"),
    )
    .unwrap();
    let (code, out) = e.ingest_text(&b, "north");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("same content"), "{out}");
    assert!(out.contains("filtered"), "{out}");
    assert!(out.contains("APPLIED"), "{out}");
    // And again under these settings: unchanged.
    let (_, out) = e.ingest_text(&b, "north");
    assert!(
        out.contains("same content as the last applied batch"),
        "{out}"
    );
}

// ---- Issue 12 item 7: linear manifest and bundle resolution; the manifest's size ----

/// A zip of a OneRoster 1.1 bundle whose manifest names `n` extra files that are all present
/// (one zip rather than `n` loose files: quicker to build, and the same resolution code).
fn big_manifest_bundle(dir: &Path, n: usize) -> PathBuf {
    let b = oneroster_bundle(&dir.join("b"), "1.1");
    let mut m = fs::read_to_string(b.join("manifest.csv")).unwrap();
    for i in 0..n {
        m.push_str(&format!("file.extra{i:06},bulk\n"));
    }
    assert!(m.len() > 1 << 20);
    fs::write(b.join("manifest.csv"), m).unwrap();
    let zip_path = dir.join("big.zip");
    let mut z = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in dir_files(&b) {
        z.start_file(name, opts).unwrap();
        z.write_all(&bytes).unwrap();
    }
    for i in 0..n {
        z.start_file(format!("extra{i:06}.csv"), opts).unwrap();
        z.write_all(b"a\n").unwrap();
    }
    z.finish().unwrap();
    zip_path
}

#[test]
fn a_manifest_of_100000_rows_is_resolved_in_linear_time() {
    let t = tempfile::tempdir().unwrap();
    let b = big_manifest_bundle(t.path(), 100_000);
    let started = std::time::Instant::now();
    let r = check(&b, &t.path().join("out"), &[]);
    let took = started.elapsed();
    eprintln!("100,000 manifest rows and files: rosterdrop check took {took:?}");
    r.assert_code(0);
    assert!(
        r.summary.contains("extra099999.csv"),
        "the last row was read"
    );
    // Generous: the quadratic resolution took minutes (10,000 rows: 4.8 s); linear takes
    // about a second even in a debug build on a loaded machine.
    assert!(took.as_secs_f64() < 10.0, "took {took:?}");
}

#[test]
fn a_manifest_over_one_mib_is_read_whole() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    let mut m = fs::read_to_string(b.join("manifest.csv"))
        .unwrap()
        .replace("file.demographics,absent\n", "");
    // source.* rows padding the manifest past 1 MiB, then a row that matters.
    while m.len() < (1 << 20) + 4096 {
        m.push_str("source.comment,padding padding padding padding padding padding padding\n");
    }
    m.push_str("file.demographics,bulk\n");
    fs::write(b.join("manifest.csv"), m).unwrap();
    write(&b, "demographics.csv", demographics_11("sourcedId"));
    let r = check_lenient(&b, &t.path().join("out"));
    r.assert_code(0);
    assert!(
        summary_line_has(&r.summary, &["demographics.csv", "bulk"]),
        "the row past 1 MiB was read:\n{}",
        r.summary
    );
}

#[test]
fn a_manifest_over_the_limit_is_refused_by_its_size() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(b.join("manifest.csv"))
        .unwrap();
    let row = "source.comment,padding padding padding padding padding padding padding\n";
    let mut written = 0usize;
    while written <= 17 << 20 {
        f.write_all(row.as_bytes()).unwrap();
        written += row.len();
    }
    drop(f);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(
        r.summary.contains("manifest.csv is larger than"),
        "{}",
        r.summary
    );
}

// ---- Issue 12 item 10: duplicate names ----

#[test]
fn a_zip_with_two_entries_of_one_name_is_rejected_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_copy(t.path(), "apple");
    // `studentz.csv` becomes a second `students.csv` in the zip's bytes (the writer refuses
    // duplicate names, vendors' tools do not).
    fs::copy(src.join("students.csv"), src.join("studentz.csv")).unwrap();
    let z = t.path().join("b.zip");
    zip_dir(&src, &z, None);
    let bytes = fs::read(&z).unwrap();
    let (from, to) = (b"studentz.csv", b"students.csv");
    let mut patched = bytes.clone();
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= patched.len() {
        if &patched[i..i + from.len()] == from {
            patched[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
        i += 1;
    }
    assert_eq!(n, 2, "local header and central directory");
    fs::write(&z, patched).unwrap();
    let r = check(&z, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(
        r.summary.matches("students.csv").count() >= 2 && r.summary.contains("twice"),
        "{}",
        r.summary
    );
}

#[test]
fn names_differing_only_by_case_are_rejected_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "apple");
    fs::copy(b.join("students.csv"), b.join("STUDENTS.CSV")).unwrap();
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(
        r.summary.contains("students.csv") && r.summary.contains("STUDENTS.CSV"),
        "{}",
        r.summary
    );
    assert!(
        !r.summary.contains("not an Apple School Manager file"),
        "{}",
        r.summary
    );
}

// ---- Issue 12 item 2 (zip half): declared sizes never size an allocation ----

/// Overwrites the compressed and uncompressed sizes of every entry, in the local headers and
/// the central directory, with `size`.
fn lie_about_sizes(zip: &[u8], size: u32) -> Vec<u8> {
    let mut z = zip.to_vec();
    let s = size.to_le_bytes();
    let mut i = 0;
    while i + 30 <= z.len() {
        match &z[i..i + 4] {
            [0x50, 0x4b, 0x03, 0x04] => {
                z[i + 18..i + 22].copy_from_slice(&s);
                z[i + 22..i + 26].copy_from_slice(&s);
                i += 30;
            }
            [0x50, 0x4b, 0x01, 0x02] => {
                z[i + 20..i + 24].copy_from_slice(&s);
                z[i + 24..i + 28].copy_from_slice(&s);
                i += 46;
            }
            _ => i += 1,
        }
    }
    z
}

#[test]
fn a_zip_declaring_huge_sizes_is_reported_not_allocated() {
    let t = tempfile::tempdir().unwrap();
    let src = sample_copy(t.path(), "apple");
    let z = t.path().join("b.zip");
    zip_dir(&src, &z, None);
    let liar = t.path().join("liar.zip");
    fs::write(&liar, lie_about_sizes(&fs::read(&z).unwrap(), 0xFFFF_FF00)).unwrap();
    let out = t.path().join("out");
    // About 1 GB of address space: far less than the 4 GiB the entries declare.
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 1000000 && exec "$0" check "$1" --out "$2" -q"#)
        .arg(BIN)
        .arg(&liar)
        .arg(&out)
        .output()
        .unwrap();
    let code = o.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        code == 0 || code == 1,
        "exit {code} (134 is an abort on allocation failure):\n{stderr}"
    );
    assert!(
        fs::metadata(out.join("summary.txt")).is_ok(),
        "a report was written:\n{stderr}"
    );
}

/// Issue 12, item 11: a deep chain of single folders (1,500 levels, as deep as a path can
/// name) is a rejected bundle with a short reason (no path of thousands of characters, no I/O
/// error), found without walking the whole chain.
#[test]
fn a_deep_chain_of_folders_is_rejected_briefly() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("b");
    fs::create_dir_all(&root).unwrap();
    let mut rel = PathBuf::new();
    for _ in 0..3000 {
        rel.push("d");
        if rel.as_os_str().len() > 3000 {
            break;
        }
        fs::create_dir(root.join(&rel)).unwrap();
    }
    let r = check(&root, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("nested folders"), "{}", r.summary);
    assert!(
        r.summary.lines().all(|l| l.len() < 400),
        "no line carries the path:\n{}",
        r.summary
    );
}
