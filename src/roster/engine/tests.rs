//! Unit tests per rule and per format, on small in-memory tables.
#![allow(clippy::field_reassign_with_default)]

use super::*;
use crate::roster::schema::Format;

fn t(file: &str, header: &str, rows: &[&str]) -> Table {
    let h: Vec<&str> = header.split(',').collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.split(',').map(str::to_string).collect())
        .collect();
    Table::from_rows(file, &h, &rows)
}

struct Apple {
    locations: Vec<&'static str>,
    students: Vec<&'static str>,
    staff: Vec<&'static str>,
    courses: Vec<&'static str>,
    classes: Vec<&'static str>,
    rosters: Vec<&'static str>,
}

impl Default for Apple {
    fn default() -> Self {
        Apple {
            locations: vec!["L1,North", "L2,South"],
            students: vec![
                "S1,,Ana,,Lopez,9,ana@x.org,,,L1",
                "S2,,Ben,,Okafor,10,ben@x.org,,,L2",
            ],
            staff: vec!["T1,,Grace,,Chen,grace@x.org,,L1"],
            courses: vec!["C1,,Algebra,L1"],
            classes: vec!["K1,,C1,T1,,,L1"],
            rosters: vec!["R1,K1,S1", "R2,K1,S2"],
        }
    }
}

fn run_apple(a: &Apple, s: &Settings) -> (Vec<Work>, Vec<Finding>) {
    run_apple_ext(a, s, &NoExternal)
}

fn run_apple_ext(a: &Apple, s: &Settings, ext: &dyn External) -> (Vec<Work>, Vec<Finding>) {
    let schema = Schema::for_format(Format::Apple);
    let tables = [
        ("locations", "location_id,location_name", &a.locations),
        (
            "students",
            "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id",
            &a.students,
        ),
        (
            "staff",
            "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id",
            &a.staff,
        ),
        ("courses", "course_id,course_number,course_name,location_id", &a.courses),
        (
            "classes",
            "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id",
            &a.classes,
        ),
        ("rosters", "roster_id,class_id,student_id", &a.rosters),
    ];
    let works = tables
        .iter()
        .map(|(name, h, rows)| {
            let def = schema.table(name).unwrap();
            bind(def, t(&format!("{name}.csv"), h, rows), Mode::Bulk).unwrap()
        })
        .collect();
    let (w, f, _) = run(&schema, s, ext, works);
    (w, f)
}

/// A store that holds some persons, for the duplicate-account checks against stored persons:
/// (table, id, first, last, email), the first per key in this order wins.
struct StoredPersons(Vec<(&'static str, &'static str, Option<String>)>);

impl StoredPersons {
    fn new(persons: &[(&'static str, &'static str, &str, &str, &str)]) -> Self {
        StoredPersons(
            persons
                .iter()
                .map(|&(t, id, f, l, e)| (t, id, person_key(f, l, e)))
                .collect(),
        )
    }
}

impl External for StoredPersons {
    fn person_with_key(&self, key: &str) -> Option<StoredPerson<'_>> {
        self.0
            .iter()
            .find(|(_, _, k)| k.as_deref() == Some(key))
            .map(|&(table, id, _)| StoredPerson { table, id })
    }
    fn person_key_of(&self, table: &str, id: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(t, i, _)| *t == table && *i == id)
            .and_then(|(_, _, k)| k.clone())
    }
}

fn rules(f: &[Finding]) -> Vec<(String, u32, Rule, Action)> {
    f.iter()
        .map(|x| (x.file.clone(), x.line, x.rule, x.action))
        .collect()
}

fn kept(w: &[Work], table: &str) -> Vec<String> {
    let w = w.iter().find(|w| w.def.name == table).unwrap();
    (0..w.table.len())
        .filter(|&r| w.is_kept(r))
        .map(|r| w.id(r).to_string())
        .collect()
}

#[test]
fn clean_apple_bundle_has_no_findings() {
    let (_, f) = run_apple(&Apple::default(), &Settings::default());
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn apple_unknown_instructor_is_cleared_including_numbered_columns() {
    let mut a = Apple::default();
    a.classes = vec!["K1,,C1,T9,T1,T8,L1"];
    let (w, f) = run_apple(&a, &Settings::default());
    let r = rules(&f);
    assert_eq!(r.len(), 2);
    assert!(r
        .iter()
        .all(|x| x.2 == Rule::UnknownInstructor && x.3 == Action::ClearedField));
    let c = w.iter().find(|w| w.def.name == "classes").unwrap();
    assert_eq!(c.value(0, 3), "");
    assert_eq!(c.value(0, 4), "T1");
    assert_eq!(c.value(0, 5), "");
    assert_eq!(f[0].value, "T9");
    assert_eq!(f[1].field, "instructor_id_3");
}

/// An Apple person whose `location_id` is filtered out or unknown, but whose `location_id_2`
/// is a kept school, belongs to that school: the kept location moves into `location_id`, both
/// changes said. (The person and what they teach were dropped, while OneRoster kept the same
/// user with the kept org of its list.)
#[test]
fn apple_person_at_a_lost_location_and_a_kept_one_keeps_the_kept_one() {
    let schema = Schema::for_format(Format::Apple);
    let files: [(&str, &str, &[&str]); 6] = [
        ("locations", "location_id,location_name", &["L1,High", "L2,Closed"]),
        (
            "students",
            "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id,location_id_2",
            &[
                "S1,,Ana,,Lopez,9,ana@x.org,,,L9,L1",
                "S2,,Ben,,Okafor,9,ben@x.org,,,L9,",
                "S3,,Cy,,Diaz,9,cy@x.org,,,L2,L2",
            ],
        ),
        (
            "staff",
            "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id_2,location_id,location_id_3",
            &["T1,,Imani,,Brooks,imani@x.org,,L1,L2,L9"],
        ),
        ("courses", "course_id,course_number,course_name,location_id", &["C1,,Biology,L1"]),
        (
            "classes",
            "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id",
            &["K1,,C1,T1,,,L1"],
        ),
        ("rosters", "roster_id,class_id,student_id", &["R1,K1,S1", "R2,K1,S2"]),
    ];
    let works = files
        .iter()
        .map(|(name, h, rows)| {
            let def = schema.table(name).unwrap();
            bind(def, t(&format!("{name}.csv"), h, rows), Mode::Bulk).unwrap()
        })
        .collect();
    let s = Settings {
        filter: Filter {
            locations: vec!["L1".into()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let (w, f, _) = run(&schema, &s, &NoExternal, works);
    let got: Vec<(String, u32, String, Rule, Action, String)> = f
        .iter()
        .filter(|x| x.file != "locations.csv")
        .map(|x| {
            (
                x.file.clone(),
                x.line,
                x.field.clone(),
                x.rule,
                x.action,
                x.value.clone(),
            )
        })
        .collect();
    use Action::{ClearedField as C, DroppedRow as D};
    let row = |f: &str, l, field: &str, r, a, v: &str| {
        (f.to_string(), l, field.to_string(), r, a, v.to_string())
    };
    assert_eq!(
        got,
        vec![
            row(
                "students.csv",
                2,
                "location_id",
                Rule::UnknownReference,
                C,
                "L9"
            ),
            row(
                "students.csv",
                2,
                "location_id_2",
                Rule::UnknownReference,
                C,
                "L1"
            ),
            // No kept location: dropped as before, and its roster row with it.
            row(
                "students.csv",
                3,
                "location_id",
                Rule::UnknownReference,
                D,
                "L9"
            ),
            row("students.csv", 4, "location_id", Rule::Filtered, D, "L2"),
            row("staff.csv", 2, "location_id_2", Rule::Filtered, C, "L1"),
            row("staff.csv", 2, "location_id", Rule::Filtered, C, "L2"),
            row(
                "staff.csv",
                2,
                "location_id_3",
                Rule::UnknownReference,
                C,
                "L9"
            ),
            row(
                "rosters.csv",
                3,
                "student_id",
                Rule::UnknownStudent,
                D,
                "S2"
            ),
        ],
        "{f:#?}"
    );
    let detail = &f
        .iter()
        .find(|x| x.file == "staff.csv" && x.field == "location_id")
        .unwrap()
        .detail;
    assert!(
        detail.ends_with("; location_id_2's `L1` takes its place"),
        "{detail}"
    );
    assert_eq!(kept(&w, "staff"), vec!["T1"]);
    assert_eq!(kept(&w, "students"), vec!["S1"]);
    assert_eq!(kept(&w, "rosters"), vec!["R1"]);
    let staff = w.iter().find(|w| w.def.name == "staff").unwrap();
    assert_eq!(
        (staff.value(0, 7), staff.value(0, 8), staff.value(0, 9)),
        ("", "L1", "")
    );
    let classes = w.iter().find(|w| w.def.name == "classes").unwrap();
    assert_eq!(classes.value(0, 3), "T1");
}

#[test]
fn apple_roster_rows_to_unknown_class_or_student_are_dropped() {
    let mut a = Apple::default();
    a.rosters = vec!["R1,K1,S1", "R2,K9,S1", "R3,K1,S9"];
    let (w, f) = run_apple(&a, &Settings::default());
    assert_eq!(
        rules(&f),
        vec![
            (
                "rosters.csv".into(),
                3,
                Rule::UnknownClass,
                Action::DroppedRow
            ),
            (
                "rosters.csv".into(),
                4,
                Rule::UnknownStudent,
                Action::DroppedRow
            ),
        ]
    );
    assert_eq!(kept(&w, "rosters"), vec!["R1"]);
}

#[test]
fn a_dropped_class_takes_its_roster_rows_along() {
    let mut a = Apple::default();
    a.classes = vec!["K1,,C9,T1,,,L1"];
    let (w, f) = run_apple(&a, &Settings::default());
    let r = rules(&f);
    assert_eq!(r[0].2, Rule::UnknownReference);
    assert_eq!(r[0].0, "classes.csv");
    assert_eq!(r.iter().filter(|x| x.2 == Rule::UnknownClass).count(), 2);
    assert!(f[1].detail.contains("was dropped"), "{}", f[1].detail);
    assert!(kept(&w, "rosters").is_empty());
}

#[test]
fn duplicate_ids_keep_the_first_and_person_ids_span_students_and_staff() {
    let mut a = Apple::default();
    a.students.push("S1,,Zed,,Doe,9,,,,L1");
    a.staff.push("S2,,Also,,Student,,,L1");
    let (w, f) = run_apple(&a, &Settings::default());
    let r = rules(&f);
    assert_eq!(r.len(), 2, "{f:?}");
    assert_eq!(
        r[0],
        (
            "students.csv".into(),
            4,
            Rule::DuplicateId,
            Action::DroppedRow
        )
    );
    assert_eq!(
        r[1],
        ("staff.csv".into(), 3, Rule::DuplicateId, Action::DroppedRow)
    );
    assert_eq!(kept(&w, "students"), vec!["S1", "S2"]);
}

#[test]
fn duplicate_accounts_are_refused_case_and_space_insensitively() {
    let mut a = Apple::default();
    a.students.push("S3,, ana ,,LOPEZ,9,ANA@X.ORG,,,L1");
    a.students.push("S4,,Ana,,Lopez,9,,,,L1"); // no email: never a duplicate
    a.staff.push("T2,,Ana,,Lopez,ana@x.org,,L1"); // across students and staff
    let (w, f) = run_apple(&a, &Settings::default());
    let r = rules(&f);
    assert_eq!(r.len(), 2, "{f:?}");
    assert!(r.iter().all(|x| x.2 == Rule::DuplicateAccount));
    assert_eq!(kept(&w, "students"), vec!["S1", "S2", "S4"]);
    let off = Settings {
        prevent_duplicates: false,
        ..Settings::default()
    };
    assert!(run_apple(&a, &off).1.is_empty());
}

#[test]
fn duplicate_account_prefers_the_stored_person() {
    // S0 is stored as Ben Okafor and still in the (bulk) file, after S2 with the same name
    // and email: S0 stays, S2 is the duplicate.
    let store = StoredPersons::new(&[("students", "S0", "Ben", "Okafor", "ben@x.org")]);
    let mut a = Apple::default();
    a.students.push("S0,,Ben,,Okafor,10,ben@x.org,,,L2");
    let (w, f) = run_apple_ext(&a, &Settings::default(), &store);
    assert_eq!(rules(&f).len(), 2, "{f:?}"); // S2 refused, and its roster row follows
    assert_eq!(f[0].rule, Rule::DuplicateAccount);
    assert_eq!(f[0].id, "S2");
    assert!(f[0].detail.contains("stored person `S0`"), "{f:?}");
    assert_eq!(kept(&w, "students"), vec!["S1", "S0"]);
    // Without the store, the first in the file stays.
    let (w, _) = run_apple(&a, &Settings::default());
    assert_eq!(kept(&w, "students"), vec!["S1", "S2"]);
}

/// A student the SIS renumbered: the bulk file has the person under a new id and no longer
/// the stored one, which the batch deletes. The new id is not a duplicate of anyone (it was
/// dropped, and with the stored record deleted the student was gone from the roster).
#[test]
fn a_person_under_a_new_id_is_not_a_duplicate_of_the_stored_one_the_file_leaves_out() {
    let store = StoredPersons::new(&[("students", "S0", "Ben", "Okafor", "ben@x.org")]);
    let (w, f) = run_apple_ext(&Apple::default(), &Settings::default(), &store);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(kept(&w, "students"), vec!["S1", "S2"]);
    // Nor is a person whose stored record takes another name or email in the same file.
    let store = StoredPersons::new(&[
        ("students", "S0", "Ben", "Okafor", "ben@x.org"),
        ("staff", "T1", "Ben", "Okafor", "ben@x.org"),
    ]);
    let (w, f) = run_apple_ext(&Apple::default(), &Settings::default(), &store);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(kept(&w, "students"), vec!["S1", "S2"]);
}

/// Users uploaded as a delta leave the stored persons they do not name as they are: those
/// hold their keys against new rows, unless the delta deletes them or gives them another
/// name or email.
#[test]
fn a_delta_keeps_stored_persons_it_leaves_alone() {
    use Mode::Delta;
    let store = StoredPersons::new(&[("users", "U0", "Ben", "Okafor", "ben@x.org")]);
    let date = "2026-11-01T10:00:00Z";
    let ben = format!("U5,active,{date},true,L1,student,u5,,Ben,Okafor,,,ben@x.org,,,,,");
    let run = |rows: Vec<String>| {
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let (w, f, _) = oneroster_ext(
            false,
            &Settings::default(),
            &store,
            &[("users", Delta, USERS11, &rows)],
        );
        let dup: Vec<(String, String)> = f
            .iter()
            .filter(|x| x.rule == Rule::DuplicateAccount)
            .map(|x| (x.id.clone(), x.detail.clone()))
            .collect();
        (kept(&w, "users"), dup)
    };
    let stored = "same first name, last name and email as stored person `U0`".to_string();
    // U0 stays as stored: U5 is its duplicate.
    assert_eq!(
        run(vec![ben.clone()]),
        (vec![], vec![("U5".into(), stored.clone())])
    );
    // The delta deletes U0: U5 is new.
    let gone = format!("U0,tobedeleted,{date},,,,,,,,,,,,,,,");
    assert_eq!(
        run(vec![gone.clone(), ben.clone()]),
        (vec!["U0".to_string(), "U5".to_string()], vec![])
    );
    // The delta gives U0 another email: U5 is new.
    let moved = format!("U0,active,{date},true,L1,student,u0,,Ben,Okafor,,,b.okafor@x.org,,,,,");
    assert_eq!(
        run(vec![ben.clone(), moved]),
        (vec!["U5".to_string(), "U0".to_string()], vec![])
    );
    // The delta names U0 as it is: U0 stays, U5 is its duplicate.
    let same = format!("U0,active,{date},true,L1,student,u0,,Ben,Okafor,,,ben@x.org,,,,,");
    assert_eq!(
        run(vec![ben, same]),
        (vec!["U0".to_string()], vec![("U5".into(), stored)])
    );
}

#[test]
fn invalid_values_drop_required_and_clear_optional_fields() {
    let mut a = Apple::default();
    a.students = vec![
        "S1,,Ana,,Lopez,Freshman,ana@x.org,,5,L1",
        "S2,,,,Okafor,10,not-an-email,,,L2",
    ];
    let (w, f) = run_apple(&a, &Settings::default());
    let r = rules(&f);
    assert_eq!(
        r[0],
        (
            "students.csv".into(),
            2,
            Rule::InvalidValue,
            Action::ClearedField
        )
    );
    assert_eq!(
        r[1],
        (
            "students.csv".into(),
            2,
            Rule::InvalidValue,
            Action::ClearedField
        )
    );
    assert_eq!(
        r[2],
        (
            "students.csv".into(),
            3,
            Rule::InvalidValue,
            Action::DroppedRow
        )
    );
    assert_eq!(f[2].field, "first_name");
    // The roster row of the dropped student follows.
    assert_eq!(r[3].2, Rule::UnknownStudent);
    assert_eq!(kept(&w, "students"), vec!["S1"]);
}

#[test]
fn location_filter_cascades_as_filtered() {
    let s = Settings {
        filter: Filter {
            locations: vec!["L1".into()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let (w, f) = run_apple(&Apple::default(), &s);
    let r = rules(&f);
    assert!(r.iter().all(|x| x.2 == Rule::Filtered), "{r:?}");
    // L2, S2 and S2's roster row.
    assert_eq!(r.len(), 3);
    assert_eq!(kept(&w, "rosters"), vec!["R1"]);
}

#[test]
fn role_filter_without_staff_clears_instructors_as_filtered() {
    let s = Settings {
        filter: Filter {
            roles: vec!["student".into()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let (_, f) = run_apple(&Apple::default(), &s);
    let r = rules(&f);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[1].2, Rule::Filtered);
    assert_eq!(r[1].3, Action::ClearedField);
}

#[test]
fn patch_errors_off_rejects_on_integrity_findings_only() {
    let off = Settings {
        patch_errors: false,
        ..Settings::default()
    };
    let mut a = Apple::default();
    a.rosters.push("R3,K9,S1");
    let (_, f) = run_apple(&a, &off);
    assert_eq!(verdict(&off, &f).0, Verdict::Rejected);
    let (_, f) = run_apple(&Apple::default(), &off);
    assert_eq!(verdict(&off, &f).0, Verdict::Accepted);
}

fn oneroster(
    v12: bool,
    files: &[(&str, Mode, &str, &[&str])],
) -> (Vec<Work>, Vec<Finding>, Vec<String>) {
    oneroster_with(v12, &Settings::default(), files)
}

fn oneroster_with(
    v12: bool,
    s: &Settings,
    files: &[(&str, Mode, &str, &[&str])],
) -> (Vec<Work>, Vec<Finding>, Vec<String>) {
    oneroster_ext(v12, s, &NoExternal, files)
}

fn oneroster_ext(
    v12: bool,
    s: &Settings,
    ext: &dyn External,
    files: &[(&str, Mode, &str, &[&str])],
) -> (Vec<Work>, Vec<Finding>, Vec<String>) {
    let schema = Schema::for_format(if v12 {
        Format::OneRoster12
    } else {
        Format::OneRoster11
    });
    let works = files
        .iter()
        .map(|(name, mode, h, rows)| {
            let def = schema.table(name).unwrap();
            bind(def, t(&format!("{name}.csv"), h, rows), *mode).unwrap()
        })
        .collect();
    run(&schema, s, ext, works)
}

const ORGS: &str = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId";
const SESS: &str =
    "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear";
const COURSES: &str = "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes";
const CLASSES: &str = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods";
const USERS11: &str = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password";
const ENR: &str = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate";

#[test]
fn oneroster_enrollments_to_unknown_users_and_classes_are_dropped() {
    use Mode::Bulk;
    let (w, f, _) = oneroster(
        false,
        &[("enrollments", Bulk, ENR, &["E1,,,K1,L1,U1,student,,,"])],
    );
    // No classes/users/orgs files at all: nothing can be checked against them.
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(kept(&w, "enrollments"), vec!["E1"]);

    let (w, f, _) = oneroster(
        false,
        &[
            ("orgs", Bulk, ORGS, &["L1,,,North,school,,"]),
            (
                "academicSessions",
                Bulk,
                SESS,
                &["T1,,,Fall,term,2026-08-01,2026-12-31,,2027"],
            ),
            ("courses", Bulk, COURSES, &["C1,,,,Algebra,,,L1,,"]),
            (
                "classes",
                Bulk,
                CLASSES,
                &["K1,,,Alg 1,,C1,,scheduled,,L1,T1,,,"],
            ),
            (
                "users",
                Bulk,
                USERS11,
                &["U1,,,true,L1,student,u1,,Ana,Lopez,,,,,,,,"],
            ),
            (
                "enrollments",
                Bulk,
                ENR,
                &[
                    "E1,,,K1,L1,U1,student,,,",
                    "E2,,,K9,L1,U1,student,,,",
                    "E3,,,K1,L1,U9,student,,,",
                    "E4,,,K1,L9,U1,student,,,",
                ],
            ),
        ],
    );
    let r: Vec<Rule> = f.iter().map(|x| x.rule).collect();
    assert_eq!(
        r,
        vec![
            Rule::UnknownClass,
            Rule::UnknownUser,
            Rule::UnknownReference
        ]
    );
    assert_eq!(kept(&w, "enrollments"), vec!["E1"]);
}

#[test]
fn oneroster_class_terms_lose_unknown_items_and_drop_when_none_left() {
    use Mode::Bulk;
    // `|` stands for the list comma inside the termSourcedIds field.
    let classes_rows = [
        "K1,,,A,,C1,,scheduled,,L1,T1|T9,,,",
        "K2,,,B,,C1,,scheduled,,L1,T8,,,",
    ];
    let schema = Schema::for_format(Format::OneRoster11);
    let rows: Vec<Vec<String>> = classes_rows
        .iter()
        .map(|r| r.split(',').map(|x| x.replace('|', ",")).collect())
        .collect();
    let h: Vec<&str> = CLASSES.split(',').collect();
    let works = vec![
        bind(
            schema.table("orgs").unwrap(),
            t("orgs.csv", ORGS, &["L1,,,North,school,,"]),
            Bulk,
        )
        .unwrap(),
        bind(
            schema.table("academicSessions").unwrap(),
            t(
                "academicSessions.csv",
                SESS,
                &["T1,,,Fall,term,2026-08-01,2026-12-31,,2027"],
            ),
            Bulk,
        )
        .unwrap(),
        bind(
            schema.table("courses").unwrap(),
            t("courses.csv", COURSES, &["C1,,,,Algebra,,,L1,,"]),
            Bulk,
        )
        .unwrap(),
        bind(
            schema.table("classes").unwrap(),
            Table::from_rows("classes.csv", &h, &rows),
            Bulk,
        )
        .unwrap(),
    ];
    let (w, f, _) = run(&schema, &Settings::default(), &NoExternal, works);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        (f[0].action, f[0].value.as_str()),
        (Action::ClearedField, "T9")
    );
    assert_eq!((f[1].action, f[1].id.as_str()), (Action::DroppedRow, "K2"));
    let c = w.iter().find(|w| w.def.name == "classes").unwrap();
    assert_eq!(c.value(0, 10), "T1");
    assert_eq!(kept(&w, "classes"), vec!["K1"]);
}

#[test]
fn oneroster_field_checks_follow_the_spec() {
    use Mode::Bulk;
    let (_, f, _) = oneroster(
        false,
        &[
            (
                "orgs",
                Bulk,
                ORGS,
                &[
                    "L1,,,North,school,,",
                    "L2,,,South,campus,,",        // bad enum, required: dropped
                    "L3,bogus,,East,school,,",    // unknown status: dropped, never cleared
                    "L4,inactive,,West,school,,", // OneRoster 1.0's inactive: tobedeleted
                ],
            ),
            (
                "academicSessions",
                Bulk,
                SESS,
                &[
                    "T1,,,Fall,term,2026-08-01,2026-13-31,,2027", // bad date, required
                    "T2,,,Fall,term,2026-08-01,2026-12-31,,27",   // bad year
                ],
            ),
        ],
    );
    let r: Vec<(u32, Action, &str)> = f
        .iter()
        .map(|x| (x.line, x.action, x.field.as_str()))
        .collect();
    assert_eq!(
        r,
        vec![
            (3, Action::DroppedRow, "type"),
            (4, Action::DroppedRow, "status"),
            (5, Action::FixedField, "status"),
            (2, Action::DroppedRow, "endDate"),
            (3, Action::DroppedRow, "schoolYear"),
        ]
    );
    assert!(f
        .iter()
        .all(|x| x.rule == Rule::InvalidValue || x.action == Action::FixedField));
    let fixed = f.iter().find(|x| x.action == Action::FixedField).unwrap();
    assert_eq!(
        (fixed.rule, fixed.value.as_str()),
        (Rule::Normalized, "inactive -> tobedeleted")
    );
}

#[test]
fn oneroster_delta_rows_need_status_and_date_and_skip_unknown_targets() {
    use Mode::Delta;
    let (w, f, notes) = oneroster(
        false,
        &[(
            "enrollments",
            Delta,
            ENR,
            &[
                "E1,active,2026-11-01T10:00:00Z,K1,L1,U1,student,,,",
                "E2,,2026-11-01T10:00:00Z,K1,L1,U1,student,,,",
                "E3,tobedeleted,2026-11-01T10:00:00Z,,,,,,,",
                "E4,active,yesterday,K1,L1,U1,student,,,",
            ],
        )],
    );
    let r: Vec<(String, Rule)> = f.iter().map(|x| (x.id.clone(), x.rule)).collect();
    assert_eq!(
        r,
        vec![
            ("E2".into(), Rule::InvalidValue),
            ("E4".into(), Rule::InvalidValue)
        ]
    );
    assert_eq!(kept(&w, "enrollments"), vec!["E1", "E3"]);
    let _ = notes;
}

#[test]
fn oneroster_12_users_without_a_kept_role_are_filtered() {
    use Mode::Bulk;
    const USERS12: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns";
    const ROLES: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId";
    let s = Settings {
        filter: Filter {
            roles: vec!["student".into(), "teacher".into()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let (w, f, _) = oneroster_with(
        true,
        &s,
        &[
            ("orgs", Bulk, ORGS, &["L1,,,North,school,,"]),
            (
                "users",
                Bulk,
                USERS12,
                &[
                    "U1,,,true,u1,,Ana,Lopez,,,,,,,,,,,,,L1,",
                    "P1,,,true,p1,,Marta,Lopez,,,,,,,,,,,,,L1,",
                ],
            ),
            (
                "roles",
                Bulk,
                ROLES,
                &[
                    "R1,,,U1,primary,student,,,L1,",
                    "R2,,,P1,primary,parent,,,L1,",
                    "R3,,,U9,primary,student,,,L1,",
                ],
            ),
        ],
    );
    assert_eq!(kept(&w, "users"), vec!["U1"]);
    assert_eq!(kept(&w, "roles"), vec!["R1"]);
    let r: Vec<(String, Rule)> = f.iter().map(|x| (x.id.clone(), x.rule)).collect();
    assert!(r.contains(&("P1".into(), Rule::Filtered)));
    assert!(r.contains(&("R2".into(), Rule::Filtered)));
    assert!(r.contains(&("R3".into(), Rule::UnknownReference)));
}

/// OneRoster 1.2 serves a user with at least one role (its `roles` has `minItems: 1`), as 1.1
/// serves one with at least one org. A user whose roles.csv rows all went, and whom no
/// enrollment gives a role, is dropped with them, naming why; what refers to it follows.
#[test]
fn oneroster_12_users_left_without_a_role_are_dropped_and_said() {
    use Mode::{Bulk, Delta};
    const USERS12: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns";
    const ROLES: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId";
    let s = Settings {
        filter: Filter {
            locations: vec!["L1".into()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let files: [(&str, Mode, &str, &[&str]); 4] = [
        (
            "orgs",
            Bulk,
            ORGS,
            &["L1,,,North,school,,", "L2,,,South,school,,"],
        ),
        (
            "users",
            Bulk,
            USERS12,
            &[
                "U1,,,true,u1,,Ana,Lopez,,,,,,,,,,,,,L1,",
                "U2,,,true,u2,,Ben,Okafor,,,,,,,,,,,,,L1,",
                "U3,,,true,u3,,Cy,Diaz,,,,,,,,,,,,,,",
                "U4,,,true,u4,,Di,Eng,,,,,,,,,,,,,L1,",
                "U5,,,true,u5,,Ed,Fox,,,,,,,,,,,,,L1,",
                "P1,,,true,p1,,Marta,Lopez,,,,,,U2,,,,,,,L1,",
            ],
        ),
        (
            "roles",
            Bulk,
            ROLES,
            &[
                "R1,,,U1,primary,student,,,L1,",
                "R2,,,U2,primary,student,,,L9,",
                "R4,,,U4,primary,student,,,L2,",
                "R5,,,U5,primary,student,,,L9,",
                "R6,,,P1,primary,parent,,,L1,",
            ],
        ),
        ("enrollments", Bulk, ENR, &["E5,,,K1,L1,U5,student,,,"]),
    ];
    let (w, f, _) = oneroster_with(true, &s, &files);
    // U5 lost its role too, but its enrollment says what it is where (`model::read`).
    assert_eq!(kept(&w, "users"), vec!["U1", "U5", "P1"]);
    let got = |id: &str, action: Action| {
        f.iter()
            .find(|x| x.id == id && x.action == action)
            .unwrap_or_else(|| panic!("{id} not {action:?}: {f:?}"))
    };
    // Its only role went (an unknown org): the user goes, saying which row and why.
    let u2 = got("U2", Action::DroppedRow);
    assert_eq!(u2.rule, Rule::UnknownReference);
    assert!(
        u2.detail.contains("`R2` (roles.csv line 3)"),
        "{}",
        u2.detail
    );
    // No role at all and no enrollment: a required value missing.
    let u3 = got("U3", Action::DroppedRow);
    assert_eq!(u3.rule, Rule::InvalidValue);
    assert!(u3.detail.contains("no role"), "{}", u3.detail);
    // Its only role was at a school outside the filter: the user is filtered too.
    assert_eq!(got("U4", Action::DroppedRow).rule, Rule::Filtered);
    // What referred to a user that went follows it.
    let p1 = got("P1", Action::ClearedField);
    assert_eq!(
        (p1.field.as_str(), p1.value.as_str()),
        ("agentSourcedIds", "U2")
    );

    // With roles.csv a delta, a user's roles may be stored: nothing is dropped for that.
    let mut delta = files;
    delta[2] = (
        "roles",
        Delta,
        ROLES,
        &["R1,active,2026-11-01T10:00:00Z,U1,primary,student,,,L1,"],
    );
    let (w, f, _) = oneroster_with(true, &Settings::default(), &delta);
    assert_eq!(
        kept(&w, "users"),
        vec!["U1", "U2", "U3", "U4", "U5", "P1"],
        "{f:?}"
    );
}

#[test]
fn header_binding_is_case_and_space_insensitive_and_keeps_extras() {
    let schema = Schema::for_format(Format::Apple);
    let tb = t(
        "locations.csv",
        "Location Name,LOCATION_ID,metadata.note",
        &["North,L1,hello"],
    );
    let w = bind(schema.table("locations").unwrap(), tb, Mode::Bulk).unwrap();
    assert_eq!(w.id(0), "L1");
    let mut out = Vec::new();
    w.write_csv(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Location Name,LOCATION_ID,metadata.note\nNorth,L1,hello\n"
    );
    let missing = bind(
        schema.table("locations").unwrap(),
        t("locations.csv", "location_id", &["L1"]),
        Mode::Bulk,
    )
    .unwrap_err();
    assert!(missing[0]
        .message
        .contains("missing required column `location_name`"));
    assert!(!missing[0].message.contains("misspelt"));
    // A misspelt required column is named as the likely culprit.
    let misspelt = bind(
        schema.table("locations").unwrap(),
        t("locations.csv", "location_id,locaton_nam", &["L1,North"]),
        Mode::Bulk,
    )
    .unwrap_err();
    assert_eq!(
        misspelt[0].message,
        "missing required column `location_name`; `locaton_nam` may be it misspelt: rename \
         that column (found: location_id, locaton_nam)"
    );
    let dup = bind(
        schema.table("locations").unwrap(),
        t(
            "locations.csv",
            "location_id,location_name,Location ID",
            &["L1,a,b"],
        ),
        Mode::Bulk,
    )
    .unwrap_err();
    assert_eq!(dup[0].column, 3);
}

#[test]
fn an_unknown_secondary_location_is_cleared_not_the_student() {
    let schema = Schema::for_format(Format::Apple);
    let a = Apple::default();
    let mut works: Vec<Work> = Vec::new();
    let loc = t("locations.csv", "location_id,location_name", &a.locations);
    works.push(bind(schema.table("locations").unwrap(), loc, Mode::Bulk).unwrap());
    let st = t(
        "students.csv",
        "person_id,first_name,last_name,location_id,location_id_2,location_id_3",
        &["S1,Ana,Lopez,L1,L9,L2"],
    );
    works.push(bind(schema.table("students").unwrap(), st, Mode::Bulk).unwrap());
    let (w, f, _) = run(&schema, &Settings::default(), &NoExternal, works);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].rule, f[0].action),
        (Rule::UnknownReference, Action::ClearedField)
    );
    assert_eq!(f[0].field, "location_id_2");
    assert_eq!(kept(&w, "students"), vec!["S1"]);
}

/// Issue 12, item 6: a cleared field is keyed by its full column index, so an invalid email
/// past column 65,535 clears that email, not the column whose index it wraps to.
#[test]
fn a_field_past_column_65535_is_cleared_where_it_is() {
    let schema = Schema::for_format(Format::Apple);
    let mut header: Vec<String> = [
        "person_id",
        "person_number",
        "first_name",
        "middle_name",
        "last_name",
        "grade_level",
        "sis_username",
        "password_policy",
        "location_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while header.len() < 65_538 {
        header.push(format!("x{}", header.len()));
    }
    header.push("email_address".into());
    let mut row: Vec<String> = vec![String::new(); header.len()];
    for (i, v) in [(0, "S1"), (2, "Ana"), (4, "Lopez"), (8, "L1")] {
        row[i] = v.into();
    }
    row[65_538] = "not-an-email".into();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let table = Table::from_rows("students.csv", &h, &[row]);
    let mut w = bind(schema.table("students").unwrap(), table, Mode::Bulk).unwrap();
    prepare(&schema, &Settings::default(), &mut w);
    assert_eq!(w.value(0, 2), "Ana");
    assert_eq!(w.value(0, 65_538), "");
    let mut out = vec![""; header.len()];
    w.row_values(0, &mut out);
    assert_eq!((out[2], out[65_538]), ("Ana", ""));
}

/// Issue 12, item 1 (engine half): ids and values longer than the store holds are invalid
/// values, found before anything is committed.
#[test]
fn oversized_ids_and_values_are_invalid() {
    let long_id: &'static str = Box::leak("S".repeat(values::MAX_ID_BYTES + 1).into_boxed_str());
    let long_name: &'static str =
        Box::leak("n".repeat(values::MAX_VALUE_BYTES + 1).into_boxed_str());
    let students: &'static str =
        Box::leak(format!("{long_id},,Ana,,Lopez,9,,,,L1").into_boxed_str());
    let staff: &'static str = Box::leak(format!("T2,,Bo,{long_name},Berg,,,L1").into_boxed_str());
    let mut a = Apple::default();
    a.students.push(students);
    a.staff.push(staff);
    let (w, f) = run_apple(&a, &Settings::default());
    let got: Vec<(u32, Rule, Action, &str)> = f
        .iter()
        .map(|x| (x.line, x.rule, x.action, x.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (4, Rule::InvalidValue, Action::DroppedRow, "person_id"),
            (3, Rule::InvalidValue, Action::ClearedField, "middle_name"),
        ]
    );
    assert!(
        f[0].detail.contains("longer than the 4096 accepted"),
        "{}",
        f[0].detail
    );
    assert_eq!(kept(&w, "staff"), vec!["T1", "T2"]);
}

#[test]
fn duplicate_ids_on_all_cores_pair_the_rows_the_index_pairs() {
    // 3,000 roster rows over 1,000 keys (some once, some up to five times, with spaces the
    // trim removes), a few rows already dropped: the first kept row of each key is the one
    // its repeats are paired with, in row order, as build_index pairs them.
    let schema = Schema::for_format(Format::Apple);
    let def = schema
        .tables
        .iter()
        .find(|d| d.name == "rosters")
        .unwrap()
        .clone();
    let mut rows = Vec::new();
    let mut x: u64 = 7;
    for i in 0..3000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = (x >> 33) % 1000;
        let id = if i % 7 == 0 {
            format!(" R{key} ")
        } else {
            format!("R{key}")
        };
        rows.push(vec![id, "K1".to_string(), "S1".to_string()]);
    }
    let table = Table::from_rows(
        "rosters.csv",
        &["roster_id", "class_id", "student_id"],
        &rows,
    );
    let mut w = bind(&def, table, Mode::Bulk).unwrap();
    for r in (0..3000).step_by(11) {
        w.fate[r] = Some(Rule::InvalidValue);
    }
    let parallel = w.duplicate_ids();
    let indexed = w.build_index(false);
    assert!(parallel.len() > 1000, "{}", parallel.len());
    assert_eq!(parallel, indexed);
}

#[test]
fn duplicate_accounts_across_the_ranges_worked_out_apart() {
    // 120,000 students, worked out in ranges of 50,000 rows on separate threads: a person
    // first seen in the first range is found again in the third, in the order of the rows;
    // a stored person wins over all of them, from a later range; staff come after students.
    let store = StoredPersons::new(&[("students", "U100020", "Stored", "Person", "sp@x.org")]);
    let mut a = Apple::default();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    for i in 0..120_000u32 {
        let (first, email) = match i {
            10 | 60_010 | 110_010 => ("Twin".to_string(), "twin@x.org".to_string()),
            20 | 100_020 => ("Stored".to_string(), "sp@x.org".to_string()),
            _ => (format!("P{i}"), format!("p{i}@x.org")),
        };
        let last = if first == "Stored" { "Person" } else { "Doe" };
        a.students
            .push(leak(format!("U{i},,{first},,{last},9,{email},,,L1")));
    }
    a.staff.push("T9,,TWIN,,doe,twin@x.org,,L1");
    let (w, f) = run_apple_ext(&a, &Settings::default(), &store);
    let dup: Vec<(String, u32, String)> = f
        .iter()
        .filter(|x| x.rule == Rule::DuplicateAccount)
        .map(|x| (x.file.clone(), x.line, x.detail.clone()))
        .collect();
    let twin = "same first name, last name and email as `U10` (students.csv line 14)";
    let stored = "same first name, last name and email as stored person `U100020`";
    assert_eq!(
        dup,
        vec![
            ("students.csv".into(), 24, stored.into()),
            ("students.csv".into(), 60_014, twin.into()),
            ("students.csv".into(), 110_014, twin.into()),
            ("staff.csv".into(), 3, twin.into()),
        ]
    );
    let students = kept(&w, "students");
    assert_eq!(students.len(), 2 + 120_000 - 3);
    assert!(students.contains(&"U100020".to_string()));
    assert!(!students.contains(&"U20".to_string()));
}
