//! Filters: schools/locations, terms (by id and "active within N days") and roles, with
//! cascades reported as `filtered`.

mod support;

use std::fs;
use support::*;

fn ymd(days_from_today: i64) -> String {
    let d = rosterdrop::values::Date::from_days(
        rosterdrop::values::Date::today_utc().days() + days_from_today,
    );
    d.to_string()
}

/// A OneRoster 1.1 bundle with a past term, a current term and a future one.
fn terms_bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let sessions = format!(
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
         OLD,,,Last year,term,{},{},,2025\n\
         NOW,,,This term,term,{},{},,2026\n\
         SOON,,,Next term,term,{},{},,2026\n",
        ymd(-500),
        ymd(-400),
        ymd(-30),
        ymd(60),
        ymd(70),
        ymd(160)
    );
    bundle(
        dir,
        "terms",
        &[
            ("manifest.csv", b"propertyName,value\noneroster.version,1.1\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.enrollments,bulk\n"),
            ("orgs.csv", b"sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nD1,,,District,district,,\nL1,,,North,school,,D1\nL2,,,South,school,,D1\n"),
            ("academicSessions.csv", sessions.as_bytes()),
            ("courses.csv", b"sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\nC1,,,,Algebra,,,L1,,\nC2,,,,Art,,,L2,,\n"),
            ("classes.csv", b"sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\nK_OLD,,,a,,C1,,scheduled,,L1,OLD,,,\nK_BOTH,,,b,,C1,,scheduled,,L1,\"OLD,NOW\",,,\nK_SOON,,,c,,C1,,scheduled,,L1,SOON,,,\nK_SOUTH,,,d,,C2,,scheduled,,L2,NOW,,,\n"),
            ("users.csv", b"sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\nU1,,,true,L1,student,u1,,Ana,Lopez,,,,,,,,\nT1,,,true,L1,teacher,t1,,Grace,Chen,,,,,,,,\nP1,,,true,\"L1,L2\",parent,p1,,Marta,Lopez,,,,,,U1,,\nU2,,,true,L2,student,u2,,Ben,Okafor,,,,,,,,\n"),
            ("enrollments.csv", b"sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\nE1,,,K_OLD,L1,U1,student,,,\nE2,,,K_BOTH,L1,U1,student,,,\nE3,,,K_SOON,L1,U1,student,,,\nE4,,,K_BOTH,L1,T1,teacher,true,,\nE5,,,K_SOUTH,L2,U2,student,,,\n"),
        ],
    )
}

fn run(filter: &str) -> Checked {
    let tmp = tempfile::tempdir().unwrap().keep();
    let d = terms_bundle(&tmp);
    let cfg = tmp.join("c.toml");
    fs::write(&cfg, format!("[sources.s]\n{filter}\n")).unwrap();
    let c = check(&d, &tmp.join("out"), Some((&cfg, "s")));
    assert_eq!(c.code, 0, "{}", c.summary);
    c
}

fn dropped(c: &Checked, file: &str) -> Vec<String> {
    c.rows
        .iter()
        .filter(|r| r[0] == file && r[4] == "dropped-row")
        .map(|r| r[2].clone())
        .collect()
}

#[test]
fn terms_by_id_filter_classes_and_their_enrollments() {
    let c = run("filter.terms = [\"NOW\"]");
    assert_eq!(dropped(&c, "academicSessions.csv"), ["OLD", "SOON"]);
    assert_eq!(dropped(&c, "classes.csv"), ["K_OLD", "K_SOON"]);
    assert_eq!(dropped(&c, "enrollments.csv"), ["E1", "E3"]);
    assert!(c.rows.iter().all(|r| r[3] == "filtered"), "{:?}", c.rows);
    // A class in a kept and a filtered term stays, with the filtered term removed.
    let k = c.rows.iter().find(|r| r[2] == "K_BOTH").unwrap();
    assert_eq!((k[4].as_str(), k[6].as_str()), ("cleared-field", "OLD"));
    assert!(c
        .modified("classes.csv")
        .contains("K_BOTH,,,b,,C1,,scheduled,,L1,NOW,,,"));
}

#[test]
fn terms_active_within_days_keeps_current_and_upcoming_sessions() {
    let c = run("filter.terms_active_within_days = 30");
    assert_eq!(dropped(&c, "academicSessions.csv"), ["OLD", "SOON"]);
    let c = run("filter.terms_active_within_days = 90");
    assert_eq!(dropped(&c, "academicSessions.csv"), ["OLD"]);
    assert_eq!(dropped(&c, "classes.csv"), ["K_OLD"]);
}

#[test]
fn schools_filter_drops_the_other_school_and_what_hangs_on_it() {
    let c = run("filter.schools = [\"L1\"]");
    assert_eq!(dropped(&c, "orgs.csv"), ["L2"]);
    assert_eq!(dropped(&c, "courses.csv"), ["C2"]);
    assert_eq!(dropped(&c, "classes.csv"), ["K_SOUTH"]);
    assert_eq!(dropped(&c, "users.csv"), ["U2"]);
    assert_eq!(dropped(&c, "enrollments.csv"), ["E5"]);
    // The parent belongs to both schools: only L2 is removed from the list.
    let p = c.rows.iter().find(|r| r[2] == "P1").unwrap();
    assert_eq!(
        (p[3].as_str(), p[4].as_str(), p[6].as_str()),
        ("filtered", "cleared-field", "L2")
    );
    assert!(c.rows.iter().all(|r| r[3] == "filtered"), "{:?}", c.rows);
}

#[test]
fn roles_filter_keeps_only_the_listed_roles() {
    let c = run("filter.roles = [\"student\", \"teacher\"]");
    assert_eq!(dropped(&c, "users.csv"), ["P1"]);
    assert_eq!(c.rows.len(), 1, "{:?}", c.rows);
    let c = run("filter.roles = [\"student\"]");
    assert_eq!(dropped(&c, "users.csv"), ["T1", "P1"]);
    // The teacher's enrollment is filtered (by role, and its user is gone).
    assert_eq!(dropped(&c, "enrollments.csv"), ["E4"]);
}

#[test]
fn apple_roles_filter_without_staff_clears_instructors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = write_files(&tmp.path().join("b"), &apple_files());
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "[sources.s]\nfilter.roles = [\"student\"]\n").unwrap();
    let c = check(&d, &tmp.path().join("out"), Some((&cfg, "s")));
    assert_eq!(
        c.rules(),
        vec![
            (
                "staff.csv".into(),
                2,
                "filtered".into(),
                "dropped-row".into()
            ),
            (
                "classes.csv".into(),
                2,
                "filtered".into(),
                "cleared-field".into()
            ),
        ]
    );
}
