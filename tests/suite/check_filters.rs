//! Source filters (`filter.locations`/`schools`, `terms`, `terms_active_within_days`,
//! `roles`): rows outside them are dropped as `filtered`, and so is everything that hangs on
//! them; rows that only mention a filtered item lose that mention.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;
use std::path::Path;

fn run_filter(bundle: &Path, tmp: &Path, filter: &str) -> Run {
    run_filter_exit(bundle, tmp, filter, 0)
}

/// [`run_filter`] expecting exit code `code` (3: held for what patches dropped).
fn run_filter_exit(bundle: &Path, tmp: &Path, filter: &str, code: i32) -> Run {
    let cfg = config(tmp, &format!("[sources.district]\n{filter}\n"));
    let r = check_with(bundle, &tmp.join("out"), &cfg, "district");
    r.assert_code(code);
    r.assert_zip_matches_dir();
    r
}

/// The ids (first field) of the data rows of a modified file.
fn ids(r: &Run, file: &str) -> Vec<String> {
    records(&r.modified(file), b',', false)
        .into_iter()
        .skip(1)
        .map(|rec| rec[0].clone())
        .collect()
}

#[test]
fn apple_location_filter_drops_the_other_location_and_what_hangs_on_it() {
    let t = tempfile::tempdir().unwrap();
    let b = sample_copy(t.path(), "apple");
    // S1001 also attends L2 (second location); K101 is taught by T203 of L2 as well.
    let students = std::fs::read_to_string(b.join("students.csv"))
        .unwrap()
        .replace(
            "password_policy,location_id\n",
            "password_policy,location_id,location_id_2\n",
        )
        .replace(",L1\n", ",L1,\n")
        .replace(",L2\n", ",L2,\n")
        .replace("alopez,8,L1,\n", "alopez,8,L1,L2\n");
    write(&b, "students.csv", students);
    let classes = std::fs::read_to_string(b.join("classes.csv"))
        .unwrap()
        .replace(
            "K101,BIO-01,C11,T202,T201,,L1",
            "K101,BIO-01,C11,T202,T201,T203,L1",
        );
    write(&b, "classes.csv", classes);

    for key in ["filter.locations", "filter.schools"] {
        let t2 = tempfile::tempdir().unwrap();
        let r = run_filter(&b, t2.path(), &format!("{key} = [\"L1\"]"));
        assert_rows(
            &r,
            &[
                ("locations.csv", 3, "L2", "filtered", "dropped-row"),
                ("students.csv", 2, "S1001", "filtered", "cleared-field"),
                ("students.csv", 5, "S1004", "filtered", "dropped-row"),
                ("students.csv", 6, "S1005", "filtered", "dropped-row"),
                ("students.csv", 7, "S1006", "filtered", "dropped-row"),
                ("staff.csv", 4, "T203", "filtered", "dropped-row"),
                ("courses.csv", 4, "C20", "filtered", "dropped-row"),
                ("classes.csv", 3, "K101", "filtered", "cleared-field"),
                ("classes.csv", 4, "K200", "filtered", "dropped-row"),
                ("rosters.csv", 6, "R5", "filtered", "dropped-row"),
                ("rosters.csv", 7, "R6", "filtered", "dropped-row"),
                ("rosters.csv", 8, "R7", "filtered", "dropped-row"),
            ],
        );
        let p = r.find("students.csv", "S1001", "filtered");
        assert_eq!(
            (p.field.as_str(), p.value.as_str()),
            ("location_id_2", "L2")
        );
        let p = r.find("classes.csv", "K101", "filtered");
        assert_eq!(
            (p.field.as_str(), p.value.as_str()),
            ("instructor_id_3", "T203")
        );
        for id in ["R5", "R6", "R7"] {
            assert!(r
                .find("rosters.csv", id, "filtered")
                .detail
                .contains("K200"));
        }
        assert_eq!(ids(&r, "locations.csv"), ["L1"]);
        assert_eq!(ids(&r, "students.csv"), ["S1001", "S1002", "S1003"]);
        assert_eq!(ids(&r, "staff.csv"), ["T201", "T202"]);
        assert_eq!(ids(&r, "courses.csv"), ["C10", "C11"]);
        assert_eq!(ids(&r, "classes.csv"), ["K100", "K101"]);
        assert_eq!(ids(&r, "rosters.csv"), ["R1", "R2", "R3", "R4"]);
        assert!(r.modified_text("students.csv").contains(
            "S1001,1001,Ana,,Lopez,9,ana.lopez@students.maplevalley.example,alopez,8,L1,\n"
        ));
        assert!(r.summary.contains("filtered"), "{}", r.summary);
    }
}

#[test]
fn oneroster_school_filter_drops_the_other_school_and_what_hangs_on_it() {
    let t = tempfile::tempdir().unwrap();
    let r = run_filter(&sample("oneroster"), t.path(), "filter.schools = [\"L1\"]");
    // The district is not a school: kept. T203 teaches at L2 only.
    assert_eq!(ids(&r, "orgs.csv"), ["D1", "L1"]);
    assert_eq!(ids(&r, "courses.csv"), ["C10", "C11"]);
    assert_eq!(ids(&r, "classes.csv"), ["K100", "K101"]);
    assert_eq!(
        ids(&r, "users.csv"),
        ["S1001", "S1002", "S1003", "T201", "T202", "P501"]
    );
    assert_eq!(
        ids(&r, "enrollments.csv"),
        ["E1", "E2", "E3", "E4", "E8", "E9", "E10"]
    );
    assert!(
        r.patches().iter().all(|p| p.rule == "filtered"),
        "{:#?}",
        r.patches()
    );
    assert_eq!(r.count("filtered"), 11);
}

#[test]
fn oneroster_term_filter_by_id_drops_classes_left_without_terms() {
    let t = tempfile::tempdir().unwrap();
    let r = run_filter(&sample("oneroster"), t.path(), "filter.terms = [\"S2027\"]");
    // F2026 goes; its school year Y2027 stays as the parent of a kept term. K101 (F2026
    // only) goes with its enrollments; K100 (F2026, S2027) stays with S2027 alone.
    assert_rows(
        &r,
        &[
            (
                "academicSessions.csv",
                3,
                "F2026",
                "filtered",
                "dropped-row",
            ),
            ("classes.csv", 2, "K100", "filtered", "cleared-field"),
            ("classes.csv", 3, "K101", "filtered", "dropped-row"),
            ("enrollments.csv", 4, "E3", "filtered", "dropped-row"),
            ("enrollments.csv", 5, "E4", "filtered", "dropped-row"),
            ("enrollments.csv", 10, "E9", "filtered", "dropped-row"),
            ("enrollments.csv", 11, "E10", "filtered", "dropped-row"),
        ],
    );
    let p = r.find("classes.csv", "K100", "filtered");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("termSourcedIds", "F2026")
    );
    assert_eq!(ids(&r, "academicSessions.csv"), ["Y2027", "S2027"]);
    let classes = records(&r.modified("classes.csv"), b',', false);
    assert_eq!(classes[1][0], "K100");
    assert_eq!(classes[1][10], "S2027");
    assert_eq!(classes[2][0], "K200");
    assert_eq!(classes[2][10], "S2027");
    assert_eq!(
        ids(&r, "enrollments.csv"),
        ["E1", "E2", "E5", "E6", "E7", "E8", "E11"]
    );
}

/// A OneRoster bundle whose sessions are placed around today:
/// YOLD (school year that ended last year) with OLD; YNOW (running) with NOW (running),
/// SOON (starts in 10 days) and LATER (starts in 90 days).
/// Classes: KOLD (OLD), KNOW (NOW), KSOON (SOON), KLATER (LATER), KMIX (OLD, NOW).
fn dated_bundle(dir: &Path) -> std::path::PathBuf {
    let b = oneroster_bundle(dir, "1.1");
    let today = today_days();
    let d = |n: i64| ymd(today + n);
    let year = |n: i64| ymd(today + n)[..4].to_string();
    let sessions = [
        ("YOLD", "schoolYear", -560, -200, ""),
        ("OLD", "semester", -400, -230, "YOLD"),
        ("YNOW", "schoolYear", -100, 250, ""),
        ("NOW", "semester", -60, 60, "YNOW"),
        ("SOON", "semester", 10, 150, "YNOW"),
        ("LATER", "semester", 90, 240, "YNOW"),
    ];
    let mut text = String::from(
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n",
    );
    for (id, ty, s, e, parent) in sessions {
        let yr = if ty == "schoolYear" { year(e) } else { year(s) };
        text.push_str(&format!(
            "{id},,,{id} title,{ty},{},{},{parent},{yr}\n",
            d(s),
            d(e)
        ));
    }
    write(&b, "academicSessions.csv", text);
    write(
        &b,
        "courses.csv",
        lines(&[
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes",
            "C1,,,,Algebra,ALG,09,L1,,",
        ]),
    );
    write(
        &b,
        "classes.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
            "KOLD,,,Old,09,C1,A,scheduled,,L1,OLD,,,",
            "KNOW,,,Now,09,C1,B,scheduled,,L1,NOW,,,",
            "KSOON,,,Soon,09,C1,C,scheduled,,L1,SOON,,,",
            "KLATER,,,Later,09,C1,D,scheduled,,L1,LATER,,,",
            "KMIX,,,Mix,09,C1,E,scheduled,,L1,\"OLD,NOW\",,,",
        ]),
    );
    write(
        &b,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            "E1,,,KOLD,L1,U1,student,false,,",
            "E2,,,KNOW,L1,U1,student,false,,",
            "E3,,,KSOON,L1,U1,student,false,,",
            "E4,,,KLATER,L1,U1,student,false,,",
            "E5,,,KMIX,L1,U1,student,false,,",
            "E6,,,KMIX,L1,U3,teacher,true,,",
        ]),
    );
    b
}

#[test]
fn terms_active_within_days_keeps_running_and_soon_starting_sessions() {
    let t = tempfile::tempdir().unwrap();
    let b = dated_bundle(&t.path().join("bundle"));
    // Without a filter the bundle is clean.
    let clean = check(&b, &t.path().join("clean"), &[]);
    clean.assert_code(0);
    assert_eq!(clean.patches(), &[]);

    let r = run_filter(&b, t.path(), "filter.terms_active_within_days = 30");
    assert_rows(
        &r,
        &[
            ("academicSessions.csv", 2, "YOLD", "filtered", "dropped-row"),
            ("academicSessions.csv", 3, "OLD", "filtered", "dropped-row"),
            (
                "academicSessions.csv",
                7,
                "LATER",
                "filtered",
                "dropped-row",
            ),
            ("classes.csv", 2, "KOLD", "filtered", "dropped-row"),
            ("classes.csv", 5, "KLATER", "filtered", "dropped-row"),
            ("classes.csv", 6, "KMIX", "filtered", "cleared-field"),
            ("enrollments.csv", 2, "E1", "filtered", "dropped-row"),
            ("enrollments.csv", 5, "E4", "filtered", "dropped-row"),
        ],
    );
    assert_eq!(ids(&r, "academicSessions.csv"), ["YNOW", "NOW", "SOON"]);
    assert_eq!(ids(&r, "classes.csv"), ["KNOW", "KSOON", "KMIX"]);
    let classes = records(&r.modified("classes.csv"), b',', false);
    assert_eq!(classes[3][10], "NOW", "KMIX keeps its running term only");
    assert_eq!(ids(&r, "enrollments.csv"), ["E2", "E3", "E5", "E6"]);

    // A window that reaches LATER keeps it too.
    let t2 = tempfile::tempdir().unwrap();
    let r = run_filter(&b, t2.path(), "filter.terms_active_within_days = 120");
    assert_eq!(
        ids(&r, "academicSessions.csv"),
        ["YNOW", "NOW", "SOON", "LATER"]
    );
    assert_eq!(ids(&r, "classes.csv"), ["KNOW", "KSOON", "KLATER", "KMIX"]);
}

#[test]
fn oneroster_11_role_filter_keeps_students_and_teachers_only() {
    let t = tempfile::tempdir().unwrap();
    let r = run_filter(
        &sample("oneroster"),
        t.path(),
        "filter.roles = [\"student\", \"teacher\"]",
    );
    // The parent goes; the student whose agent it was loses the reference.
    assert_rows(
        &r,
        &[
            ("users.csv", 2, "S1001", "filtered", "cleared-field"),
            ("users.csv", 11, "P501", "filtered", "dropped-row"),
        ],
    );
    let p = r.find("users.csv", "S1001", "filtered");
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("agentSourcedIds", "P501")
    );
    assert_eq!(
        ids(&r, "users.csv"),
        ["S1001", "S1002", "S1003", "S1004", "S1005", "S1006", "T201", "T202", "T203"]
    );
    assert_eq!(
        ids(&r, "enrollments.csv").len(),
        11,
        "no enrollment is touched"
    );

    // Students only: teachers and their enrollments go as well.
    let t2 = tempfile::tempdir().unwrap();
    let r = run_filter(
        &sample("oneroster"),
        t2.path(),
        "filter.roles = [\"student\"]",
    );
    assert_eq!(
        ids(&r, "users.csv"),
        ["S1001", "S1002", "S1003", "S1004", "S1005", "S1006"]
    );
    assert_eq!(
        ids(&r, "enrollments.csv"),
        ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]
    );
    assert!(r.patches().iter().all(|p| p.rule == "filtered"));
}

#[test]
fn oneroster_12_role_filter_uses_roles_csv() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("bundle"), "1.2");
    let r = run_filter(&b, t.path(), "filter.roles = [\"student\", \"teacher\"]");
    assert_rows(
        &r,
        &[
            ("users.csv", 2, "U1", "filtered", "cleared-field"),
            ("users.csv", 5, "U4", "filtered", "dropped-row"),
            ("roles.csv", 6, "R5", "filtered", "dropped-row"),
        ],
    );
    assert_eq!(ids(&r, "users.csv"), ["U1", "U2", "U3"]);
    assert_eq!(ids(&r, "roles.csv"), ["R1", "R2", "R3", "R4"]);
}

#[test]
fn apple_role_filter_students_only_drops_staff_and_clears_instructors() {
    let t = tempfile::tempdir().unwrap();
    let r = run_filter(&sample("apple"), t.path(), "filter.roles = [\"student\"]");
    assert_rows(
        &r,
        &[
            ("staff.csv", 2, "T201", "filtered", "dropped-row"),
            ("staff.csv", 3, "T202", "filtered", "dropped-row"),
            ("staff.csv", 4, "T203", "filtered", "dropped-row"),
            ("classes.csv", 2, "K100", "filtered", "cleared-field"),
            ("classes.csv", 3, "K101", "filtered", "cleared-field"),
            ("classes.csv", 3, "K101", "filtered", "cleared-field"),
            ("classes.csv", 4, "K200", "filtered", "cleared-field"),
        ],
    );
    assert_eq!(ids(&r, "staff.csv"), Vec::<String>::new());
    assert_eq!(
        r.modified_text("classes.csv"),
        lines(&[
            "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id",
            "K100,ALG1-01,C10,,,,L1",
            "K101,BIO-01,C11,,,,L1",
            "K200,SCI7-01,C20,,,,L2",
        ])
    );
    assert_eq!(ids(&r, "rosters.csv").len(), 7);
}

#[test]
fn terms_active_within_days_window_edges() {
    let t = tempfile::tempdir().unwrap();
    let b = dated_bundle(&t.path().join("bundle"));
    let today = today_days();
    let d = |n: i64| ymd(today + n);
    // Keep the dated sessions the classes use, plus four sessions on the window's edges.
    let mut text = std::fs::read_to_string(b.join("academicSessions.csv")).unwrap();
    for (id, s, e) in [
        ("ENDS_TODAY", -100, 0),
        ("ENDED_YESTERDAY", -100, -1),
        ("STARTS_IN_30", 30, 100),
        ("STARTS_IN_31", 31, 100),
    ] {
        let yr = &d(s)[..4];
        text.push_str(&format!("{id},,,{id},term,{},{},,{yr}\n", d(s), d(e)));
    }
    write(&b, "academicSessions.csv", text);
    let r = run_filter(&b, t.path(), "filter.terms_active_within_days = 30");
    let kept = ids(&r, "academicSessions.csv");
    assert_eq!(kept, ["YNOW", "NOW", "SOON", "ENDS_TODAY", "STARTS_IN_30"]);
}

#[test]
fn a_term_filter_does_not_keep_the_parent_of_a_dropped_term() {
    let t = tempfile::tempdir().unwrap();
    let b = oneroster_bundle(&t.path().join("bundle"), "1.1");
    // T1 is the only term kept by the filter, and it is invalid (schoolYear `27`).
    let sessions = std::fs::read_to_string(b.join("academicSessions.csv"))
        .unwrap()
        .replace(
            "T1,,,Fall,semester,2026-08-01,2026-12-20,Y1,2027",
            "T1,,,Fall,semester,2026-08-01,2026-12-20,Y1,27",
        );
    write(&b, "academicSessions.csv", sessions);
    // Held: patches drop every session the filter left.
    let r = run_filter_exit(&b, t.path(), "filter.terms = [\"T1\"]", 3);
    assert_eq!(
        r.find("academicSessions.csv", "T1", "invalid-value").action,
        "dropped-row"
    );
    // Nothing kept by the filter is left, so its school year goes too...
    assert_eq!(ids(&r, "academicSessions.csv"), Vec::<String>::new());
    // ...and checking the modified bundle again finds nothing more to filter.
    let cfg = config(t.path(), "[sources.district]\nfilter.terms = [\"T1\"]\n");
    let again = check_with(
        &t.path().join("out").join("modified"),
        &t.path().join("again"),
        &cfg,
        "district",
    );
    again.assert_code(0);
    assert_eq!(again.patches(), &[], "second pass");
}
