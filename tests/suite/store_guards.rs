//! Guards that hold a bundle that lost too much, deletions that cascade through the stored
//! roster, and a store that no batch can leave unreadable (issue 11 items 3 and 11; issue 12
//! item 1). Every test runs the real binary.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::store::Env;
use crate::support::*;
use proptest::prelude::*;

/// Exports `north` and checks the export: it must need no patch at all.
fn assert_export_checks_clean(e: &Env, name: &str) {
    let exp = e.export("north", name);
    let r = check(&exp, &e.path(&format!("{name}-check")), &[]);
    assert!(
        r.patches().is_empty(),
        "the stored roster no longer checks clean:\n{}\n{:#?}",
        r.summary,
        r.patches()
    );
    r.assert_code(0);
}

fn patches_of(report_dir: &Path) -> Vec<Patch> {
    parse_patch_summary(&fs::read(report_dir.join("patch-summary.csv")).unwrap())
}

const ORGS: &str = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId";
const SESSIONS: &str =
    "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear";
const COURSES: &str = "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes";
const CLASSES: &str = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods";
const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password";
const ENROLLMENTS: &str = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate";

/// A OneRoster 1.1 manifest with these `file.*` modes (others absent).
fn manifest(dir: &Path, modes: &[(&str, &str)]) {
    let mut m = vec![
        "propertyName,value".to_string(),
        "manifest.version,1.0".into(),
        "oneroster.version,1.1".into(),
    ];
    for t in [
        "academicSessions",
        "orgs",
        "courses",
        "classes",
        "users",
        "enrollments",
        "demographics",
    ] {
        let mode = modes.iter().find(|m| m.0 == t).map_or("absent", |m| m.1);
        m.push(format!("file.{t},{mode}"));
    }
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    write(dir, "manifest.csv", lines(&m));
}

/// A OneRoster 1.1 bundle: one school, ten users (`orgs[i]` is user `U<i+1>`'s
/// orgSourcedIds), two classes and an enrollment for each of the first seven users.
fn ten_users(dir: &Path, orgs: [&str; 10]) -> PathBuf {
    let all = [
        "academicSessions",
        "orgs",
        "courses",
        "classes",
        "users",
        "enrollments",
    ];
    let modes: Vec<(&str, &str)> = all.iter().map(|t| (*t, "bulk")).collect();
    manifest(dir, &modes);
    write(
        dir,
        "orgs.csv",
        lines(&[
            ORGS,
            "D1,,,District,district,D,",
            "L1,,,North High,school,NH,D1",
        ]),
    );
    write(
        dir,
        "academicSessions.csv",
        lines(&[SESSIONS, "Y1,,,Year,schoolYear,2026-08-01,2027-06-30,,2027"]),
    );
    write(
        dir,
        "courses.csv",
        lines(&[COURSES, "C1,,,Y1,Algebra,ALG,09,L1,,"]),
    );
    write(
        dir,
        "classes.csv",
        lines(&[
            CLASSES,
            "K1,,,Algebra P1,09,C1,ALG-1,scheduled,,L1,Y1,,,1",
            "K2,,,Algebra P2,09,C1,ALG-2,scheduled,,L1,Y1,,,2",
        ]),
    );
    let mut users = vec![USERS.to_string()];
    let mut enr = vec![ENROLLMENTS.to_string()];
    for (i, org) in orgs.iter().enumerate() {
        let n = i + 1;
        users.push(format!(
            "U{n},,,true,{org},student,u{n},,Given{n},Family{n},,,,,,,09,"
        ));
        if n <= 7 {
            enr.push(format!("E{n},,,K{},L1,U{n},student,false,,", 1 + n % 2));
        }
    }
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let enr: Vec<&str> = enr.iter().map(String::as_str).collect();
    write(dir, "users.csv", lines(&users));
    write(dir, "enrollments.csv", lines(&enr));
    dir.to_path_buf()
}

/// Ten users of whom U8, U9 and U10 name a school that does not exist: patches drop 30% of
/// users.csv.
fn thirty_percent_bad(dir: &Path) -> PathBuf {
    let mut orgs = ["L1"; 10];
    orgs[7] = "L9";
    orgs[8] = "L9";
    orgs[9] = "L9";
    ten_users(dir, orgs)
}

/// summary.txt opens with the verdict line and then the reasons under their heading.
fn assert_held_first(summary: &str, reason: &str) {
    let mut l = summary.lines().filter(|l| !l.trim().is_empty());
    assert_eq!(l.next(), Some("rosterdrop check: HELD"), "{summary}");
    assert_eq!(l.next(), Some("Why the bundle was held:"), "{summary}");
    let first = l.next().unwrap_or_default();
    assert!(
        first.starts_with("  - ") && first.contains(reason),
        "first reason `{first}` should say `{reason}`:\n{summary}"
    );
}

#[test]
fn check_holds_a_bundle_whose_patches_drop_30_percent_of_users() {
    let t = tempfile::tempdir().unwrap();
    let b = thirty_percent_bad(&t.path().join("b"));
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3);
    assert_eq!(r.count("unknown-reference"), 3);
    assert_held_first(
        &r.summary,
        "users.csv: patches drop 3 of its 10 rows (30.0%",
    );
    assert!(
        r.summary.contains("guard.max_patch_drop_percent = 20%"),
        "{}",
        r.summary
    );
    // Two users of ten (20%) is not more than the default share: accepted.
    let mut orgs = ["L1"; 10];
    orgs[8] = "L9";
    orgs[9] = "L9";
    let b2 = ten_users(&t.path().join("b2"), orgs);
    check(&b2, &t.path().join("out2"), &[]).assert_code(0);
    // A source may allow more.
    let cfg = config(
        t.path(),
        "[sources.lenient]\nguard.max_patch_drop_percent = 40.0\n",
    );
    check_with(&b, &t.path().join("out3"), &cfg, "lenient").assert_code(0);
}

#[test]
fn check_holds_a_bundle_that_loses_every_row_of_a_file_whatever_the_share() {
    let t = tempfile::tempdir().unwrap();
    let b = ten_users(&t.path().join("b"), ["L1"; 10]);
    // Every enrollment names a class that does not exist.
    let mut enr = vec![ENROLLMENTS.to_string()];
    for n in 1..=3 {
        enr.push(format!("E{n},,,K9,L1,U{n},student,false,,"));
    }
    let enr: Vec<&str> = enr.iter().map(String::as_str).collect();
    write(&b, "enrollments.csv", lines(&enr));
    let cfg = config(
        t.path(),
        "[sources.lenient]\nguard.max_patch_drop_percent = 100.0\n",
    );
    let r = check_with(&b, &t.path().join("out"), &cfg, "lenient");
    r.assert_code(3);
    assert_held_first(
        &r.summary,
        "enrollments.csv: patches drop all 3 of its rows",
    );
}

#[test]
fn filtered_rows_do_not_count_toward_the_patch_guard() {
    let t = tempfile::tempdir().unwrap();
    let b = ten_users(&t.path().join("b"), ["L1"; 10]);
    let mut users = vec![USERS.to_string()];
    for n in 1..=10 {
        let role = if n <= 5 { "student" } else { "teacher" };
        users.push(format!(
            "U{n},,,true,L1,{role},u{n},,Given{n},Family{n},,,,,,,09,"
        ));
    }
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    write(&b, "users.csv", lines(&users));
    let cfg = config(
        t.path(),
        "[sources.students]\nfilter.roles = [\"student\"]\n",
    );
    let r = check_with(&b, &t.path().join("out"), &cfg, "students");
    r.assert_code(0);
    assert_eq!(r.count("filtered"), 5 + 2, "{}", r.summary);
}

#[test]
fn ingest_of_a_held_bundle_is_held_and_approve_applies_it() {
    let e = Env::with_sources(&["north"], "");
    let good = ten_users(&e.path("good"), ["L1"; 10]);
    let (code, out, _) = e.ingest_report(&good, "north");
    assert_eq!(code, 0, "{out}");
    let before = dir_files(&e.export("north", "before"));
    let (code, out, report) = e.ingest_report(&thirty_percent_bad(&e.path("bad")), "north");
    assert_eq!(code, 3, "{out}");
    let summary = fs::read_to_string(report.join("summary.txt")).unwrap();
    assert_held_first(&summary, "users.csv: patches drop 3 of its 10 rows");
    assert!(
        summary.contains("HELD. 0 added, 0 updated, 3 deleted"),
        "{summary}"
    );
    let h = e.history("north");
    assert_eq!(h[0].1, "held");
    assert_eq!(
        dir_files(&e.export("north", "held")),
        before,
        "held: nothing applied"
    );
    e.approve(h[0].0);
    assert_eq!(e.history("north")[0].1, "applied");
    let users = fs::read_to_string(e.export("north", "after").join("users.csv")).unwrap();
    assert!(users.contains("U7,") && !users.contains("U8,"), "{users}");
    assert_export_checks_clean(&e, "after2");
}

/// An Apple bundle: two locations, `n` students, one staff member, one course, one class
/// with every student on its roster.
fn apple_world(dir: &Path, n: usize) -> PathBuf {
    write(
        dir,
        "locations.csv",
        lines(&["location_id,location_name", "L1,North", "L2,South"]),
    );
    let mut s = vec!["person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id".to_string()];
    let mut r = vec!["roster_id,class_id,student_id".to_string()];
    for i in 1..=n {
        s.push(format!("S{i},{i},Given{i},,Family{i},9,,s{i},,L1"));
        r.push(format!("R{i},K1,S{i}"));
    }
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    write(dir, "students.csv", lines(&s));
    write(dir, "rosters.csv", lines(&r));
    write(
        dir,
        "staff.csv",
        lines(&[
            "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id",
            "T1,1,Grace,,Chen,,gchen,L1",
        ]),
    );
    write(
        dir,
        "courses.csv",
        lines(&[
            "course_id,course_number,course_name,location_id",
            "C1,ALG,Algebra,L1",
        ]),
    );
    write(
        dir,
        "classes.csv",
        lines(&[
            "class_id,class_number,course_id,instructor_id,location_id",
            "K1,ALG-1,C1,T1,L1",
        ]),
    );
    dir.to_path_buf()
}

#[test]
fn a_header_only_students_file_over_ten_stored_students_is_held() {
    // The default min_rows (50) is above the ten stored students: emptying a table is held
    // whatever min_rows says.
    let e = Env::with_sources(&["north"], "");
    let (code, out, _) = e.ingest_report(&apple_world(&e.path("v1"), 10), "north");
    assert_eq!(code, 0, "{out}");
    let empty = apple_world(&e.path("v2"), 0);
    let (code, out, _) = e.ingest_report(&empty, "north");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("students: 10 of 10 records would be deleted"),
        "{out}"
    );
    assert!(
        out.contains("rosters: 10 of 10 records would be deleted"),
        "{out}"
    );
    let h = e.history("north");
    assert_eq!(h[0].1, "held");
    let students = fs::read_to_string(e.export("north", "held").join("students.csv")).unwrap();
    assert_eq!(students.lines().count(), 11, "held: the students stay");
}

/// The stored world of [`oneroster_bundle`] 1.1, then a delta of `files` (name, body rows).
fn delta(dir: &Path, files: &[(&str, &str, &[&str])]) -> PathBuf {
    let modes: Vec<(&str, &str)> = files.iter().map(|f| (f.0, "delta")).collect();
    manifest(dir, &modes);
    for (t, header, rows) in files {
        let mut all = vec![*header];
        all.extend_from_slice(rows);
        write(dir, &format!("{t}.csv"), lines(&all));
    }
    dir.to_path_buf()
}

#[test]
fn a_delta_deleting_a_user_takes_its_enrollments_and_agent_references_with_it() {
    let e = Env::with_sources(&["north"], "");
    let (code, out, _) = e.ingest_report(&oneroster_bundle(&e.path("v1"), "1.1"), "north");
    assert_eq!(code, 0, "{out}");
    let d = delta(
        &e.path("d1"),
        &[(
            "users",
            USERS,
            &["U1,tobedeleted,2026-11-20T08:00:00Z,,,,,,,,,,,,,,,"],
        )],
    );
    let (code, out, report) = e.ingest_report(&d, "north");
    assert_eq!(code, 0, "{out}");
    let p = patches_of(&report);
    let e1 = p
        .iter()
        .find(|p| p.file == "enrollments.csv" && p.id == "E1")
        .unwrap_or_else(|| panic!("no cascade row for E1: {p:#?}"));
    assert_eq!(
        (e1.line, e1.rule.as_str(), e1.action.as_str()),
        (0, "unknown-user", "dropped-row")
    );
    assert_eq!(
        e1.detail,
        "`U1` was deleted by this batch (users.csv line 2)"
    );
    let u4 = p
        .iter()
        .find(|p| p.file == "users.csv" && p.id == "U4")
        .unwrap_or_else(|| panic!("no cascade row for U4: {p:#?}"));
    assert_eq!(
        (
            u4.line,
            u4.rule.as_str(),
            u4.action.as_str(),
            u4.field.as_str(),
            u4.value.as_str()
        ),
        (
            0,
            "unknown-reference",
            "cleared-field",
            "agentSourcedIds",
            "U1"
        )
    );
    // U1 and E1 deleted, U4 updated.
    let h = e.history("north");
    assert_eq!((h[0].2, h[0].3, h[0].4), (0, 1, 2), "{out}");
    assert_export_checks_clean(&e, "after");
}

#[test]
fn a_delta_deleting_a_school_takes_its_courses_classes_users_and_enrollments() {
    let e = Env::with_sources(&["north"], "");
    e.ingest_report(&oneroster_bundle(&e.path("v1"), "1.1"), "north");
    let d = delta(
        &e.path("d1"),
        &[("orgs", ORGS, &["L2,tobedeleted,2026-11-20T08:00:00Z,,,,"])],
    );
    let (code, out, report) = e.ingest_report(&d, "north");
    assert_eq!(code, 0, "{out}");
    let mut got: Vec<(String, String, String)> = patches_of(&report)
        .into_iter()
        .map(|p| (p.file, p.id, p.action))
        .collect();
    got.sort();
    let want = [
        ("classes.csv", "K2", "dropped-row"),
        ("courses.csv", "C2", "dropped-row"),
        ("enrollments.csv", "E2", "dropped-row"),
        ("enrollments.csv", "E4", "dropped-row"),
        ("users.csv", "U2", "dropped-row"),
        ("users.csv", "U3", "cleared-field"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    // L2, C2, K2, U2, E2 and E4 deleted; U3 keeps only L1.
    let h = e.history("north");
    assert_eq!((h[0].2, h[0].3, h[0].4), (0, 1, 6), "{out}");
    let exp = e.export("north", "after");
    let users = fs::read_to_string(exp.join("users.csv")).unwrap();
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("U3,") && l.contains(",L1,")),
        "{users}"
    );
    assert_export_checks_clean(&e, "after2");
}

#[test]
fn a_bulk_users_file_takes_the_stored_enrollments_of_missing_users_with_it() {
    let e = Env::with_sources(&["north"], "");
    e.ingest_report(&oneroster_bundle(&e.path("v1"), "1.1"), "north");
    let b = e.path("b");
    manifest(&b, &[("users", "bulk")]);
    write(
        &b,
        "users.csv",
        lines(&[
            USERS,
            "U1,,,true,L1,student,u1,,Ann,Avery,,,ann@example.org,,,U4,09,",
            "U3,,,true,\"L1,L2\",teacher,u3,,Cy,Cole,,,cy@example.org,,,,,",
            "U4,,,true,L1,parent,u4,,Di,Avery,,,di@example.org,,,U1,,",
        ]),
    );
    let (code, out, report) = e.ingest_report(&b, "north");
    assert_eq!(code, 0, "{out}");
    let p = patches_of(&report);
    let e2 = p
        .iter()
        .find(|p| p.id == "E2")
        .unwrap_or_else(|| panic!("no cascade row for E2: {p:#?}"));
    assert_eq!(
        (e2.file.as_str(), e2.rule.as_str(), e2.action.as_str()),
        ("enrollments.csv", "unknown-user", "dropped-row")
    );
    assert_export_checks_clean(&e, "after");
}

#[test]
fn the_mass_deletion_guard_counts_cascaded_deletions() {
    // Deleting term T2 deletes 1 of 3 sessions (under 40%); the cascade takes class K2 (its
    // only term) and K2's enrollments E2 and E4 (2 of 4): the guard sees those.
    let e = Env::with_sources(
        &["north"],
        "guard.max_delete_percent = 40.0\nguard.min_rows = 1\n",
    );
    e.ingest_report(&oneroster_bundle(&e.path("v1"), "1.1"), "north");
    let d = delta(
        &e.path("d1"),
        &[(
            "academicSessions",
            SESSIONS,
            &["T2,tobedeleted,2026-11-20T08:00:00Z,,,,,,"],
        )],
    );
    let (code, out, _) = e.ingest_report(&d, "north");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("enrollments: 2 of 4 records would be deleted"),
        "{out}"
    );
    assert!(
        out.contains("classes: 1 of 2 records would be deleted"),
        "{out}"
    );
    assert!(!out.contains("academicSessions: 1 of 3"), "{out}");
    e.approve(e.history("north")[0].0);
    let h = e.history("north");
    // T2, K2, E2, E4 deleted; K1 loses T2 from its terms.
    assert_eq!(
        (h[0].1.as_str(), h[0].2, h[0].3, h[0].4),
        ("applied", 0, 1, 4)
    );
    assert_export_checks_clean(&e, "after");
}

// ---- the property: the stored roster stays whole across any batches ---------------------

/// One record of the small world: a table, an id number and reference choices.
#[derive(Debug, Clone)]
enum Op {
    Upsert { table: usize, id: u8, refs: [u8; 3] },
    Delete { table: usize, id: u8 },
}

/// The records of a bulk file: (id, reference choices).
type BulkFile = Vec<(u8, [u8; 3])>;

#[derive(Debug, Clone)]
enum Batch {
    /// Per table: `None` absent, else the records of a bulk file.
    Bulk(Vec<Option<BulkFile>>),
    Delta(Vec<Op>),
}

const TABLES: [&str; 6] = [
    "orgs",
    "academicSessions",
    "courses",
    "classes",
    "users",
    "enrollments",
];
/// Ids per table: O0..O3, A0..A3, C0..C3, K0..K4, U0..U5, E0..E7.
const SIZES: [u8; 6] = [4, 4, 4, 5, 6, 8];

fn header(t: usize) -> &'static str {
    [ORGS, SESSIONS, COURSES, CLASSES, USERS, ENROLLMENTS][t]
}

fn pick(n: u8, of: usize) -> u8 {
    n % SIZES[of]
}

/// The CSV row of a record; references are drawn from the id spaces of their targets, so some
/// point at records that do not exist (the engine patches those).
fn row(t: usize, id: u8, r: [u8; 3], status: &str, dlm: &str) -> String {
    let s = format!(",{status},{dlm},");
    match t {
        0 => {
            let (ty, parent) = if id == 0 {
                ("district", String::new())
            } else {
                ("school", format!("O{}", pick(r[0], 0)))
            };
            format!("O{id}{s}Org {id},{ty},,{parent}")
        }
        1 => {
            let (ty, parent) = if id == 0 {
                ("schoolYear", String::new())
            } else {
                ("semester", format!("A{}", pick(r[0], 1)))
            };
            format!("A{id}{s}Term {id},{ty},2026-08-01,2027-06-30,{parent},2027")
        }
        2 => format!(
            "C{id}{s}A{},Course {id},C{id},09,O{},,",
            pick(r[0], 1),
            pick(r[1], 0)
        ),
        3 => {
            let t1 = pick(r[2], 1);
            let t2 = pick(r[2] / 4, 1);
            let terms = if t1 == t2 {
                format!("A{t1}")
            } else {
                format!("\"A{t1},A{t2}\"")
            };
            format!(
                "K{id}{s}Class {id},09,C{},K{id},scheduled,,O{},{terms},,,1",
                pick(r[0], 2),
                pick(r[1], 0)
            )
        }
        4 => {
            let o1 = pick(r[0], 0);
            let o2 = pick(r[0] / 4, 0);
            let orgs = if o1 == o2 {
                format!("O{o1}")
            } else {
                format!("\"O{o1},O{o2}\"")
            };
            let agent = if r[1].is_multiple_of(3) {
                String::new()
            } else {
                format!("U{}", pick(r[1], 4))
            };
            let role = if agent.is_empty() {
                "teacher"
            } else {
                "student"
            };
            format!("U{id}{s}true,{orgs},{role},u{id},,Given{id},Family{id},,,,,,{agent},,")
        }
        _ => format!(
            "E{id}{s}K{},O{},U{},student,false,,",
            pick(r[0], 3),
            pick(r[1], 0),
            pick(r[2], 4)
        ),
    }
}

fn write_batch(dir: &Path, b: &Batch, seq: usize) {
    let dlm = format!("2026-11-{:02}T08:00:00Z", 1 + seq);
    let mut modes = Vec::new();
    let mut files: Vec<Vec<String>> = vec![vec![]; TABLES.len()];
    match b {
        Batch::Bulk(tables) => {
            for (t, recs) in tables.iter().enumerate() {
                let Some(recs) = recs else { continue };
                modes.push((TABLES[t], "bulk"));
                for (id, r) in recs {
                    files[t].push(row(t, pick(*id, t), *r, "", ""));
                }
            }
        }
        Batch::Delta(ops) => {
            for op in ops {
                let (t, line) = match op {
                    Op::Upsert { table, id, refs } => (
                        *table,
                        row(*table, pick(*id, *table), *refs, "active", &dlm),
                    ),
                    Op::Delete { table, id } => {
                        let prefix = ["O", "A", "C", "K", "U", "E"][*table];
                        let commas = header(*table).matches(',').count() - 2;
                        let line = format!(
                            "{prefix}{},tobedeleted,{dlm}{}",
                            pick(*id, *table),
                            ",".repeat(commas)
                        );
                        (*table, line)
                    }
                };
                if !modes.iter().any(|m: &(&str, &str)| m.0 == TABLES[t]) {
                    modes.push((TABLES[t], "delta"));
                }
                files[t].push(line);
            }
        }
    }
    manifest(dir, &modes);
    for (t, rows) in files.iter().enumerate() {
        if !modes.iter().any(|m| m.0 == TABLES[t]) {
            continue;
        }
        let mut all = vec![header(t).to_string()];
        all.extend(rows.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        write(dir, &format!("{}.csv", TABLES[t]), lines(&all));
    }
}

fn refs() -> impl Strategy<Value = [u8; 3]> {
    [any::<u8>(), any::<u8>(), any::<u8>()]
}

/// A whole world in bulk: every id of every table, so that every reference resolves.
fn world() -> impl Strategy<Value = Batch> {
    let tables: Vec<_> = SIZES
        .iter()
        .map(|&n| {
            prop::collection::vec(refs(), n as usize).prop_map(|r| {
                Some(
                    r.into_iter()
                        .enumerate()
                        .map(|(i, r)| (i as u8, r))
                        .collect::<Vec<_>>(),
                )
            })
        })
        .collect();
    tables.prop_map(Batch::Bulk)
}

fn batch() -> impl Strategy<Value = Batch> {
    let table = prop::collection::vec((any::<u8>(), refs()), 0..8);
    let bulk = prop::collection::vec(prop::option::weighted(0.7, table), TABLES.len()).prop_map(
        |mut tables| {
            // A bundle needs at least one file.
            if tables.iter().all(Option::is_none) {
                tables[4] = Some(vec![]);
            }
            Batch::Bulk(tables)
        },
    );
    let op = prop_oneof![
        (0..TABLES.len(), any::<u8>(), refs()).prop_map(|(table, id, refs)| Op::Upsert {
            table,
            id,
            refs
        }),
        (0..TABLES.len(), any::<u8>()).prop_map(|(table, id)| Op::Delete { table, id }),
    ];
    let delta = prop::collection::vec(op, 1..8).prop_map(Batch::Delta);
    prop_oneof![1 => bulk, 2 => delta]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// After any sequence of bulk and delta batches (adds, changes, deletions of parents and
    /// children), the export of the stored roster checks with no patches.
    #[test]
    fn the_stored_roster_checks_clean_after_any_batches(
        first in world(),
        rest in prop::collection::vec(batch(), 1..5)
    ) {
        let batches: Vec<Batch> = std::iter::once(first).chain(rest).collect();
        // Nothing is held for its size here: the guards have their own tests.
        let e = Env::with_sources(&["north"], "guard.max_delete_percent = 100.0\nguard.max_patch_drop_percent = 100.0\n");
        let mut applied = false;
        for (i, b) in batches.iter().enumerate() {
            let dir = e.path(&format!("b{i}"));
            write_batch(&dir, b, i);
            let (code, out, _) = e.ingest_report(&dir, "north");
            match code {
                0 => {}
                // A held batch (a table emptied, a file that lost every row) is approved.
                3 => e.approve(e.history("north")[0].0),
                _ => panic!("batch {i} ({b:?}) failed:\n{out}"),
            }
            let last = &e.history("north")[0];
            applied |= last.1 == "applied";
            if applied {
                let exp = e.export("north", &format!("x{i}"));
                let r = check(&exp, &e.path(&format!("x{i}-check")), &[]);
                prop_assert!(
                    r.patches.as_ref().is_none_or(|p| p.is_empty()),
                    "after batch {i} of {batches:?}:\n{}\n{:#?}",
                    r.summary,
                    r.patches
                );
            }
        }
    }
}
