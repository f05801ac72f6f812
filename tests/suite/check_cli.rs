//! `rosterdrop check` end to end: the sample bundles, zips, settings, exit codes, cascades
//! and physical line numbers.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;
use std::path::Path;

/// The sample settings file and its source.
fn sample_config() -> std::path::PathBuf {
    sample("sample.toml")
}

/// Each (file, rule) of the patch summary is counted on a line of summary.txt.
fn assert_summary_counts(r: &Run) {
    let mut counts: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for p in r.patches() {
        *counts.entry((&p.file, &p.rule)).or_default() += 1;
    }
    for ((file, rule), n) in counts {
        assert!(
            summary_line_has(&r.summary, &[file, rule, &n.to_string()]),
            "summary.txt should count {n} {rule} in {file}:\n{}",
            r.summary
        );
    }
}

/// The sample file's lines with `drop` (physical line numbers) removed and the replacements
/// `(line, from, to)` applied, joined as the writer writes them (LF, trailing newline).
fn edited_sample(
    bundle: &str,
    file: &str,
    drop: &[usize],
    replace: &[(usize, &str, &str)],
) -> String {
    let mut out = String::new();
    for (i, l) in sample_lines(bundle, file).into_iter().enumerate() {
        let n = i + 1;
        if drop.contains(&n) {
            continue;
        }
        let mut l = l;
        for (at, from, to) in replace {
            if *at == n {
                assert!(l.contains(from), "{file}:{n} has `{from}`");
                l = l.replacen(from, to, 1);
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

const APPLE_ERRORS: [Row; 7] = [
    ("students.csv", 8, "S1001", "duplicate-id", "dropped-row"),
    (
        "students.csv",
        9,
        "S1007",
        "duplicate-account",
        "dropped-row",
    ),
    (
        "students.csv",
        10,
        "S1008",
        "invalid-value",
        "cleared-field",
    ),
    ("staff.csv", 5, "T204", "unknown-reference", "dropped-row"),
    (
        "classes.csv",
        5,
        "K102",
        "unknown-instructor",
        "cleared-field",
    ),
    ("rosters.csv", 9, "R8", "unknown-class", "dropped-row"),
    ("rosters.csv", 10, "R9", "unknown-student", "dropped-row"),
];

const ONEROSTER_ERRORS: [Row; 6] = [
    ("users.csv", 12, "S1007", "duplicate-account", "dropped-row"),
    ("users.csv", 13, "S1008", "invalid-value", "cleared-field"),
    (
        "users.csv",
        14,
        "S1009",
        "unknown-reference",
        "cleared-field",
    ),
    ("enrollments.csv", 13, "E1", "duplicate-id", "dropped-row"),
    ("enrollments.csv", 14, "E12", "unknown-class", "dropped-row"),
    ("enrollments.csv", 15, "E13", "unknown-user", "dropped-row"),
];

#[test]
fn valid_samples_need_no_patches_with_or_without_the_sample_config() {
    let t = tmp();
    for name in ["apple", "oneroster"] {
        for with_config in [false, true] {
            let out = t.path().join(format!("{name}-{with_config}"));
            let r = if with_config {
                check_with(&sample(name), &out, &sample_config(), "maple-valley")
            } else {
                check(&sample(name), &out, &[])
            };
            r.assert_code(0);
            assert_eq!(r.patches(), &[], "{name} config={with_config}");
            assert!(r.summary.contains("ACCEPTED"), "{}", r.summary);
            assert!(!r.summary.contains("REJECTED"), "{}", r.summary);
            // Nothing patched: every uploaded file comes back with the same records (the
            // Apple sample byte for byte; the OneRoster sample has a needlessly quoted `"L1"`
            // that may be written unquoted).
            let original = dir_files(&sample(name));
            if name == "apple" {
                assert_same_files(&r.modified_files(), &original, name);
            } else {
                let got = r.modified_files();
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    original.keys().collect::<Vec<_>>()
                );
                for (f, bytes) in &original {
                    assert_eq!(
                        records(&got[f], b',', false),
                        records(bytes, b',', false),
                        "{f}"
                    );
                }
            }
            r.assert_zip_matches_dir();
        }
    }
}

#[test]
fn apple_with_errors_shows_each_rule_once() {
    let t = tmp();
    let r = check(&sample("apple-with-errors"), t.path(), &[]);
    r.assert_code(0);
    assert_rows(&r, &APPLE_ERRORS);
    for rule in [
        "duplicate-id",
        "duplicate-account",
        "invalid-value",
        "unknown-reference",
        "unknown-instructor",
        "unknown-class",
        "unknown-student",
    ] {
        assert_eq!(r.count(rule), 1, "{rule}");
    }
    // Fields and values of the patch rows.
    let p = r.find("students.csv", "S1008", "invalid-value");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("grade_level", "Freshman")
    );
    let p = r.find("classes.csv", "K102", "unknown-instructor");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("instructor_id", "T299")
    );
    let p = r.find("staff.csv", "T204", "unknown-reference");
    assert_eq!((p.field.as_str(), p.value.as_str()), ("location_id", "L9"));
    let p = r.find("rosters.csv", "R8", "unknown-class");
    assert_eq!((p.field.as_str(), p.value.as_str()), ("class_id", "K999"));
    let p = r.find("rosters.csv", "R9", "unknown-student");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("student_id", "S9999")
    );
    let p = r.find("students.csv", "S1007", "duplicate-account");
    assert!(
        p.detail.contains("S1001"),
        "names the kept person: {}",
        p.detail
    );
    assert!(r.summary.contains("ACCEPTED") && !r.summary.contains("REJECTED"));
    assert_summary_counts(&r);

    // Modified files: dropped rows gone, cleared fields empty, the rest byte for byte.
    let b = "apple-with-errors";
    assert_eq!(
        r.modified_text("students.csv"),
        edited_sample(b, "students.csv", &[8, 9], &[(10, ",Freshman,", ",,")])
    );
    assert_eq!(
        r.modified_text("staff.csv"),
        edited_sample(b, "staff.csv", &[5], &[])
    );
    assert_eq!(
        r.modified_text("classes.csv"),
        edited_sample(b, "classes.csv", &[], &[(5, ",T299,", ",,")])
    );
    assert_eq!(
        r.modified_text("rosters.csv"),
        edited_sample(b, "rosters.csv", &[9, 10], &[])
    );
    for f in ["locations.csv", "courses.csv"] {
        assert_eq!(r.modified_text(f), edited_sample(b, f, &[], &[]), "{f}");
    }
    assert_eq!(r.modified_files().len(), 6);
    r.assert_zip_matches_dir();
}

#[test]
fn apple_with_errors_and_the_sample_config_also_filters_the_closed_location() {
    let t = tmp();
    let r = check_with(
        &sample("apple-with-errors"),
        t.path(),
        &sample_config(),
        "maple-valley",
    );
    r.assert_code(0);
    let mut want = APPLE_ERRORS.to_vec();
    want.push(("locations.csv", 4, "L3", "filtered", "dropped-row"));
    assert_rows(&r, &want);
    assert_eq!(
        r.modified_text("locations.csv"),
        edited_sample("apple-with-errors", "locations.csv", &[4], &[])
    );
    assert_summary_counts(&r);
    r.assert_zip_matches_dir();
}

#[test]
fn oneroster_with_errors_shows_each_rule_once() {
    let t = tmp();
    let r = check(
        &sample("oneroster-with-errors"),
        &t.path().join("plain"),
        &[],
    );
    r.assert_code(0);
    assert_rows(&r, &ONEROSTER_ERRORS);
    let p = r.find("users.csv", "S1009", "unknown-reference");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("agentSourcedIds", "P999")
    );
    let p = r.find("users.csv", "S1008", "invalid-value");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("email", "gus.eriksen@")
    );
    let p = r.find("enrollments.csv", "E13", "unknown-user");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("userSourcedId", "S9999")
    );
    assert_summary_counts(&r);

    // users.csv: line 12 dropped, line 13's email and line 14's agentSourcedIds cleared.
    let b = "oneroster-with-errors";
    let want = edited_sample(
        b,
        "users.csv",
        &[12],
        &[(13, ",gus.eriksen@,", ",,"), (14, ",P999,", ",,")],
    );
    assert_eq!(
        records(&r.modified("users.csv"), b',', false),
        records(want.as_bytes(), b',', false)
    );
    assert_eq!(
        r.modified_text("enrollments.csv"),
        edited_sample(b, "enrollments.csv", &[13, 14, 15], &[])
    );
    // The manifest travels with the modified bundle unchanged.
    assert_eq!(
        r.modified("manifest.csv"),
        std::fs::read(sample(b).join("manifest.csv")).unwrap()
    );
    r.assert_zip_matches_dir();

    let r = check_with(
        &sample(b),
        &t.path().join("config"),
        &sample_config(),
        "maple-valley",
    );
    r.assert_code(0);
    let mut want = ONEROSTER_ERRORS.to_vec();
    want.push(("orgs.csv", 5, "L3", "filtered", "dropped-row"));
    assert_rows(&r, &want);
}

#[test]
fn zips_at_the_root_or_in_one_folder_give_the_directory_result() {
    let t = tmp();
    for name in ["apple-with-errors", "oneroster-with-errors"] {
        let dir = check(&sample(name), &t.path().join(format!("{name}-dir")), &[]);
        dir.assert_code(0);
        for folder in [None, Some("export-2026")] {
            let zip = t.path().join(format!("{name}-{}.zip", folder.is_some()));
            zip_dir(&sample(name), &zip, folder);
            let out = t.path().join(format!("{name}-{}-out", folder.is_some()));
            let z = check(&zip, &out, &[]);
            z.assert_code(0);
            assert_eq!(z.patches(), dir.patches(), "{name} folder {folder:?}");
            assert_same_files(&z.modified_files(), &dir.modified_files(), name);
            z.assert_zip_matches_dir();
        }
    }
}

#[test]
fn a_zip_from_macos_finder_gives_the_directory_result() {
    // One top folder with a space in its name, plus the resource forks and .DS_Store that
    // Finder's "Compress" adds.
    let t = tmp();
    let name = "apple-with-errors";
    let dir = check(&sample(name), &t.path().join("dir"), &[]);
    let zip = t.path().join("Archive.zip");
    {
        let f = std::fs::File::create(&zip).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default();
        for (n, bytes) in dir_files(&sample(name)) {
            z.start_file(format!("Roster Export/{n}"), opts).unwrap();
            std::io::Write::write_all(&mut z, &bytes).unwrap();
            z.start_file(format!("__MACOSX/Roster Export/._{n}"), opts)
                .unwrap();
            std::io::Write::write_all(&mut z, b"\x00\x05\x16\x07 resource fork").unwrap();
        }
        z.start_file("Roster Export/.DS_Store", opts).unwrap();
        std::io::Write::write_all(&mut z, b"\x00\x00\x00\x01Bud1").unwrap();
        z.finish().unwrap();
    }
    let r = check(&zip, &t.path().join("zip"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), dir.patches());
    assert_same_files(&r.modified_files(), &dir.modified_files(), "Finder zip");
}

#[test]
fn a_directory_of_neither_format_is_rejected_naming_what_it_found() {
    let t = tmp();
    let b = t.path().join("bundle");
    write(&b, "people.csv", "id,name\n1,Ann\n");
    write(&b, "readme.txt", "hello\n");
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("REJECTED"), "{}", r.summary);
    assert!(
        r.summary.contains("people.csv") && r.summary.contains("readme.txt"),
        "summary names the files found:\n{}",
        r.summary
    );
    assert!(r.summary.contains("manifest.csv") && r.summary.contains("students.csv"));
    assert_eq!(r.patches(), &[]);

    // An empty directory, too.
    let e = t.path().join("empty");
    std::fs::create_dir(&e).unwrap();
    let r = check(&e, &t.path().join("out2"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("REJECTED"), "{}", r.summary);
}

#[test]
fn an_apple_bundle_missing_a_file_is_rejected_naming_it() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    std::fs::remove_file(b.join("rosters.csv")).unwrap();
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(1);
    assert!(r.summary.contains("rosters.csv"), "{}", r.summary);
}

#[test]
fn missing_path_and_usage_errors_exit_2() {
    let t = tmp();
    let out = t.path().join("out");
    let missing = t.path().join("no-such-bundle");
    let r = check(&missing, &out, &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("no-such-bundle"), "stderr: {}", r.stderr);
    let r = check(&t.path().join("no-such.zip"), &out, &[]);
    r.assert_code(2);

    // No PATH; --config without --source; a settings file that does not exist; an unknown
    // source.
    let o = bin().arg("check").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .arg("check")
        .arg(sample("apple"))
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(sample_config())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let r = check_with(&sample("apple"), &out, &t.path().join("nope.toml"), "x");
    r.assert_code(2);
    let r = check_with(&sample("apple"), &out, &sample_config(), "no-such-source");
    r.assert_code(2);
    assert!(r.stderr.contains("no-such-source"), "stderr: {}", r.stderr);
}

#[test]
fn quiet_prints_nothing_and_the_default_prints_the_summary() {
    let t = tmp();
    let out = t.path().join("out");
    let r = check(&sample("apple-with-errors"), &out, &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "", "-q prints nothing");
    let mut c = bin();
    c.arg("check")
        .arg(sample("apple-with-errors"))
        .arg("--out")
        .arg(&out);
    let loud = run(c, &out);
    loud.assert_code(0);
    assert!(loud.stdout.contains(loud.summary.lines().next().unwrap()));
    assert!(
        loud.stdout.contains("unknown-instructor"),
        "{}",
        loud.stdout
    );
}

#[test]
fn oneroster_12_bundle_with_roles_is_checked() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("or12"), "1.2");
    let r = check(&b, &t.path().join("clean"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert!(r.summary.contains("1.2"), "format named:\n{}", r.summary);
    assert!(r.modified_files().contains_key("roles.csv"));

    // A role of an unknown user goes, an unknown primary org is cleared, an enrollment of a
    // user that is not there goes.
    let mut roles = std::fs::read_to_string(b.join("roles.csv")).unwrap();
    roles.push_str("R6,,,U9,primary,teacher,,,L1,\n");
    write(&b, "roles.csv", roles);
    let users = std::fs::read_to_string(b.join("users.csv"))
        .unwrap()
        .replace(
            "bo@example.org,,,,07,,,,,,L2,",
            "bo@example.org,,,,07,,,,,,L7,",
        );
    write(&b, "users.csv", users);
    let mut enr = std::fs::read_to_string(b.join("enrollments.csv")).unwrap();
    enr.push_str("E5,,,K1,L1,U9,student,false,,\n");
    write(&b, "enrollments.csv", enr);
    let r = check(&b, &t.path().join("errors"), &[]);
    r.assert_code(0);
    assert_rows(
        &r,
        &[
            ("roles.csv", 7, "R6", "unknown-reference", "dropped-row"),
            ("users.csv", 3, "U2", "unknown-reference", "cleared-field"),
            ("enrollments.csv", 6, "E5", "unknown-user", "dropped-row"),
        ],
    );
    let p = r.find("users.csv", "U2", "unknown-reference");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("primaryOrgSourcedId", "L7")
    );
    r.assert_zip_matches_dir();
}

#[test]
fn unused_and_unknown_files_are_listed_as_ignored() {
    let t = tmp();
    // OneRoster: lineItems.csv marked absent, and a notes.txt.
    let b = sample_copy(t.path(), "oneroster");
    write(&b, "lineItems.csv", "sourcedId,title\nLI1,Quiz\n");
    write(&b, "notes.txt", "exported by hand\n");
    let r = check(&b, &t.path().join("or"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    let ignored = r
        .summary
        .split_once("Ignored")
        .map(|x| x.1)
        .unwrap_or_else(|| panic!("summary.txt lists ignored files:\n{}", r.summary));
    assert!(ignored.contains("lineItems.csv"), "{}", r.summary);
    assert!(ignored.contains("notes.txt"), "{}", r.summary);

    // Apple: an extra file beside the six.
    let b = sample_copy(t.path(), "apple");
    write(&b, "notes.txt", "exported by hand\n");
    let r = check(&b, &t.path().join("apple"), &[]);
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert!(r.summary.contains("notes.txt"), "{}", r.summary);
}

#[test]
fn patch_errors_off_rejects_the_with_errors_bundles_with_the_same_report() {
    let t = tmp();
    let cfg = config(
        t.path(),
        "[sources.strict]\npatch.errors = \"off\"\n\n[sources.strict-l1]\npatch.errors = \"off\"\nfilter.locations = [\"L1\"]\n",
    );
    for name in ["apple-with-errors", "oneroster-with-errors"] {
        let on = check(&sample(name), &t.path().join(format!("{name}-on")), &[]);
        on.assert_code(0);
        let off = check_with(
            &sample(name),
            &t.path().join(format!("{name}-off")),
            &cfg,
            "strict",
        );
        off.assert_code(1);
        assert!(off.summary.contains("REJECTED"), "{}", off.summary);
        assert_eq!(off.patches(), on.patches(), "{name}: same patch summary");
    }
    // The valid bundle passes with patching off.
    let r = check_with(
        &sample("apple"),
        &t.path().join("valid-off"),
        &cfg,
        "strict",
    );
    r.assert_code(0);

    // Only `filtered` and `duplicate-account` findings: still accepted with patching off.
    let b = sample_copy(t.path(), "apple");
    let mut staff = std::fs::read_to_string(b.join("staff.csv")).unwrap();
    staff.push_str("T205,205,Ana,,Lopez,ana.lopez@students.maplevalley.example,alopez2,L1\n");
    write(&b, "staff.csv", staff);
    let r = check_with(&b, &t.path().join("filtered-off"), &cfg, "strict-l1");
    r.assert_code(3); // not rejected; held: the duplicate is one of four staff
    assert_eq!(r.count("duplicate-account"), 1);
    assert!(r.count("filtered") > 0);
    assert_eq!(
        r.patches().len(),
        r.count("duplicate-account") + r.count("filtered")
    );
}

/// The sample Apple bundle plus staff rows: T205 has S1001's name and email (in other case,
/// names padded with spaces), T206 has S1006's name with no email (S1006 has none either),
/// and K100 names T205 as second instructor.
fn apple_with_duplicate_staff(tmp: &Path) -> std::path::PathBuf {
    let b = sample_copy(tmp, "apple");
    let mut staff = std::fs::read_to_string(b.join("staff.csv")).unwrap();
    staff.push_str("T205,205, ana ,,LOPEZ ,Ana.Lopez@Students.MapleValley.example,alopez2,L1\n");
    staff.push_str("T206,206,Farah,,Haddad,,fhaddad2,L2\n");
    write(&b, "staff.csv", staff);
    let classes = std::fs::read_to_string(b.join("classes.csv"))
        .unwrap()
        .replace(
            "K100,ALG1-01,C10,T201,,,L1",
            "K100,ALG1-01,C10,T201,T205,,L1",
        );
    write(&b, "classes.csv", classes);
    b
}

#[test]
fn duplicate_account_spans_students_and_staff() {
    let t = tmp();
    let b = apple_with_duplicate_staff(t.path());
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    // The first (the student) is kept; the staff row goes, and the class's reference to it
    // is cleared. No email: no duplicate.
    assert_rows(
        &r,
        &[
            ("staff.csv", 5, "T205", "duplicate-account", "dropped-row"),
            (
                "classes.csv",
                2,
                "K100",
                "unknown-instructor",
                "cleared-field",
            ),
        ],
    );
    let p = r.find("staff.csv", "T205", "duplicate-account");
    assert!(p.detail.contains("S1001"), "{}", p.detail);
    let p = r.find("classes.csv", "K100", "unknown-instructor");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("instructor_id_2", "T205")
    );
    let staff = r.modified_text("staff.csv");
    assert!(!staff.contains("T205") && staff.contains("T206"), "{staff}");
    assert!(r
        .modified_text("classes.csv")
        .contains("K100,ALG1-01,C10,T201,,,L1\n"));
}

#[test]
fn prevent_duplicates_off_keeps_the_duplicate_account() {
    let t = tmp();
    let b = apple_with_duplicate_staff(t.path());
    let cfg = config(
        t.path(),
        "[sources.lenient]\npatch.prevent_duplicates = \"off\"\n",
    );
    let r = check_with(&b, &t.path().join("out"), &cfg, "lenient");
    r.assert_code(0);
    assert_eq!(r.patches(), &[]);
    assert_same_files(
        &r.modified_files(),
        &dir_files(&b),
        "modified/ = the upload",
    );

    // The samples' duplicate accounts are kept too; every other rule still applies.
    let r = check_with(
        &sample("apple-with-errors"),
        &t.path().join("s"),
        &cfg,
        "lenient",
    );
    r.assert_code(0);
    let want: Vec<Row> = APPLE_ERRORS
        .iter()
        .copied()
        .filter(|r| r.3 != "duplicate-account")
        .collect();
    assert_rows(&r, &want);
    assert!(r.modified_text("students.csv").contains("S1007"));
}

#[test]
fn a_person_id_in_both_students_and_staff_is_a_duplicate_id() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    let mut staff = std::fs::read_to_string(b.join("staff.csv")).unwrap();
    staff.push_str("S1002,902,Zed,,Zane,zed@maplevalley.example,zzane,L1\n");
    write(&b, "staff.csv", staff);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3); // held: one patch is over 20% of a small file
    assert_rows(
        &r,
        &[("staff.csv", 5, "S1002", "duplicate-id", "dropped-row")],
    );
    assert!(r
        .find("staff.csv", "S1002", "duplicate-id")
        .detail
        .contains("students.csv"));
}

#[test]
fn a_dropped_class_takes_its_roster_rows_along() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    // K300's course does not exist; K301's course C30 is dropped for its location.
    let mut courses = std::fs::read_to_string(b.join("courses.csv")).unwrap();
    courses.push_str("C30,ART,Art,L9\n");
    write(&b, "courses.csv", courses);
    let mut classes = std::fs::read_to_string(b.join("classes.csv")).unwrap();
    classes.push_str("K300,X-01,C99,T201,,,L1\nK301,ART-01,C30,T202,,,L1\n");
    write(&b, "classes.csv", classes);
    let mut rosters = std::fs::read_to_string(b.join("rosters.csv")).unwrap();
    rosters.push_str("R10,K300,S1001\nR11,K300,S1002\nR12,K301,S1003\n");
    write(&b, "rosters.csv", rosters);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3); // held: one patch is over 20% of a small file
    assert_rows(
        &r,
        &[
            ("courses.csv", 5, "C30", "unknown-reference", "dropped-row"),
            ("classes.csv", 5, "K300", "unknown-reference", "dropped-row"),
            ("classes.csv", 6, "K301", "unknown-reference", "dropped-row"),
            ("rosters.csv", 9, "R10", "unknown-class", "dropped-row"),
            ("rosters.csv", 10, "R11", "unknown-class", "dropped-row"),
            ("rosters.csv", 11, "R12", "unknown-class", "dropped-row"),
        ],
    );
    let p = r.find("classes.csv", "K300", "unknown-reference");
    assert_eq!((p.field.as_str(), p.value.as_str()), ("course_id", "C99"));
    // The roster rows' detail says which class went and why.
    for id in ["R10", "R11"] {
        let p = r.find("rosters.csv", id, "unknown-class");
        assert_eq!(p.value, "K300");
        assert!(
            p.detail.contains("K300") && p.detail.contains("unknown-reference"),
            "{id}: {}",
            p.detail
        );
    }
    let p = r.find("rosters.csv", "R12", "unknown-class");
    assert!(p.detail.contains("K301"), "{}", p.detail);
    // The modified bundle is the sample again.
    for f in ["courses.csv", "classes.csv", "rosters.csv"] {
        assert_eq!(
            r.modified(f),
            std::fs::read(sample("apple").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn line_numbers_are_physical_after_multiline_quoted_fields() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    // students.csv: S1002's middle name spans lines 3-5 and its grade is invalid; the last
    // row, at line 10, names an unknown location.
    let students = std::fs::read_to_string(b.join("students.csv"))
        .unwrap()
        .replace(
            "S1002,1002,Ben,J,Okafor,10,",
            "S1002,1002,Ben,\"J\nsecond line\nthird, line\",Okafor,Tenth,",
        );
    let mut students = students;
    students.push_str("S1009,1009,Kim,,Nguyen,9,kim@maplevalley.example,knguyen,,L9\n");
    write(&b, "students.csv", &students);
    // classes.csv with CRLF: K100's number spans lines 2-3; K102 (line 6) has an unknown
    // instructor.
    let classes = "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id\r\n\
                   K100,\"ALG1\r\n01\",C10,T201,,,L1\r\n\
                   K101,BIO-01,C11,T202,T201,,L1\r\n\
                   K200,SCI7-01,C20,T203,,,L2\r\n\
                   K102,ALG1-02,C10,T299,,,L1\r\n";
    write(&b, "classes.csv", classes);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_rows(
        &r,
        &[
            ("students.csv", 3, "S1002", "invalid-value", "cleared-field"),
            (
                "students.csv",
                10,
                "S1009",
                "unknown-reference",
                "dropped-row",
            ),
            (
                "classes.csv",
                6,
                "K102",
                "unknown-instructor",
                "cleared-field",
            ),
        ],
    );
    // Line breaks inside the field survive; CRLF is kept for classes.csv.
    assert!(r
        .modified_text("students.csv")
        .contains("\"J\nsecond line\nthird, line\",Okafor,,"));
    let classes = r.modified_text("classes.csv");
    assert!(classes.starts_with("class_id,class_number,"));
    assert!(
        classes.ends_with("K102,ALG1-02,C10,,,,L1\r\n"),
        "{classes:?}"
    );
}

#[test]
fn duplicate_account_key_trims_the_email() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    let mut staff = std::fs::read_to_string(b.join("staff.csv")).unwrap();
    staff.push_str("T205,205,Ana,,Lopez, ana.lopez@students.maplevalley.example ,alopez2,L1\n");
    write(&b, "staff.csv", staff);
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3); // held: one patch is over 20% of a small file
    assert_rows(
        &r,
        &[("staff.csv", 5, "T205", "duplicate-account", "dropped-row")],
    );
}

#[test]
fn oneroster_delta_rows_need_status_and_date_last_modified() {
    let t = tmp();
    let b = sample_copy(t.path(), "oneroster");
    let manifest = std::fs::read_to_string(b.join("manifest.csv"))
        .unwrap()
        .replace("file.enrollments,bulk", "file.enrollments,delta");
    write(&b, "manifest.csv", manifest);
    write(
        &b,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            "E1,active,2026-09-01T10:00:00Z,K100,L1,S1001,student,false,,",
            "E2,,2026-09-01T10:00:00Z,K100,L1,S1002,student,false,,",
            "E3,active,,K101,L1,S1002,student,false,,",
            "E4,tobedeleted,2026-09-01T10:00:00.5Z,,,,,,,",
            "E5,active,2026-09-01,K200,L2,S1004,student,false,,",
            "E6,deleted,2026-09-01T10:00:00Z,K200,L2,S1005,student,false,,",
            "E7,active,2026-09-01T10:00:00+02:00,K200,L2,S1006,student,false,,",
        ]),
    );
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3); // held: one patch is over 20% of a small file
                      // A deletion needs only its id; the bulk files leave status and date empty.
    assert_rows(
        &r,
        &[
            ("enrollments.csv", 3, "E2", "invalid-value", "dropped-row"),
            ("enrollments.csv", 4, "E3", "invalid-value", "dropped-row"),
            ("enrollments.csv", 6, "E5", "normalized", "fixed-field"),
            ("enrollments.csv", 7, "E6", "invalid-value", "dropped-row"),
        ],
    );
    // A date-only dateLastModified is midnight UTC, said so, and written canonical.
    assert_eq!(
        r.find("enrollments.csv", "E5", "normalized").value,
        "2026-09-01 -> 2026-09-01T00:00:00Z"
    );
    assert_eq!(
        r.find("enrollments.csv", "E2", "invalid-value").field,
        "status"
    );
    assert_eq!(
        r.find("enrollments.csv", "E3", "invalid-value").field,
        "dateLastModified"
    );
    let kept = r.modified_text("enrollments.csv");
    assert!(
        kept.contains("\nE4,tobedeleted,")
            && kept.contains("\nE5,active,2026-09-01T00:00:00Z,")
            && kept.contains("\nE7,"),
        "{kept}"
    );
    assert!(r.summary.contains("delta"), "mode shown:\n{}", r.summary);
}
