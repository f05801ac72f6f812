//! Untidy but unambiguous vendor data (issue 11): values with one canonical reading are
//! rewritten and reported as `fixed-field`, never dropped; values that could be read two ways
//! are never guessed; an unknown status is never cleared; a dependant names why its parent went;
//! Apple's column and id rules are reported.

use crate::support::bundles::*;
use crate::support::check::*;
use crate::support::*;

/// Replaces `from` by `to` in one file of a bundle.
fn edit(dir: &std::path::Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`:\n{text}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// Excel's booleans, enumerations in another case, a space-separated zone-less date-time, ids
/// and emails with spaces: every row is kept, every change reported, modified/ canonical.
#[test]
fn excel_spellings_are_fixed_and_reported_not_dropped() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    edit(
        &b,
        "users.csv",
        "U1,,,true,L1,student",
        "U1,,,TRUE,L1,Student",
    );
    edit(
        &b,
        "users.csv",
        "U2,,,true,",
        "U2,,2017-05-06 08:01:05,False,",
    );
    edit(&b, "users.csv", "cy@example.org", " cy@example.org ");
    edit(&b, "classes.csv", "1,scheduled,,L1", "1,Scheduled,,L1");
    edit(
        &b,
        "enrollments.csv",
        "E1,,,K1,L1,U1,student,false",
        "E1,,,K1,L1,U1,student,FALSE",
    );
    edit(
        &b,
        "courses.csv",
        "C1,,,Y1,Algebra,ALG,09",
        "C1,,,Y1,Algebra,ALG,9",
    );
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    assert_rows(
        &r,
        &[
            ("courses.csv", 2, "C1", "normalized", "fixed-field"),
            ("classes.csv", 2, "K1", "normalized", "fixed-field"),
            ("users.csv", 2, "U1", "normalized", "fixed-field"),
            ("users.csv", 2, "U1", "normalized", "fixed-field"),
            ("users.csv", 3, "U2", "normalized", "fixed-field"),
            ("users.csv", 3, "U2", "normalized", "fixed-field"),
            ("users.csv", 4, "U3", "normalized", "fixed-field"),
            ("enrollments.csv", 2, "E1", "normalized", "fixed-field"),
        ],
    );
    let values: Vec<(&str, &str)> = r
        .patches()
        .iter()
        .map(|p| (p.field.as_str(), p.value.as_str()))
        .collect();
    for want in [
        ("enabledUser", "TRUE -> true"),
        ("role", "Student -> student"),
        ("enabledUser", "False -> false"),
        (
            "dateLastModified",
            "2017-05-06 08:01:05 -> 2017-05-06T08:01:05Z",
        ),
        ("email", " cy@example.org  -> cy@example.org"),
        ("classType", "Scheduled -> scheduled"),
        ("primary", "FALSE -> false"),
        ("grades", "9 -> 09"),
    ] {
        assert!(values.contains(&want), "{want:?} not in {values:?}");
    }
    let users = r.modified_text("users.csv");
    assert!(users.contains("\nU1,,,true,L1,student,"), "{users}");
    assert!(
        users.contains("\nU2,,2017-05-06T08:01:05Z,false,"),
        "{users}"
    );
    assert!(users.contains(",cy@example.org,"), "{users}");
    assert!(r.modified_text("classes.csv").contains(",scheduled,,L1,"));
    // Nothing was lost: every row of every file is still there.
    for (file, rows) in [("users.csv", 4), ("enrollments.csv", 4), ("classes.csv", 2)] {
        assert_eq!(r.modified_text(file).lines().count(), rows + 1, "{file}");
    }
    // The patched bundle is canonical: checking it again changes nothing.
    let again = check(&r.out.join("modified"), &t.path().join("again"), &[]);
    again.assert_code(0);
    assert_eq!(again.patches(), &[], "{}", again.summary);
}

/// `patch.normalize = false`: the same spellings are invalid values, as a strict importer
/// (Brightspace) would have them.
#[test]
fn normalize_off_keeps_the_strict_reading() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    edit(&b, "classes.csv", "1,scheduled,,L1", "1,Scheduled,,L1");
    let cfg = config(t.path(), "[sources.s]\npatch.normalize = false\n");
    let r = check_with(&b, &t.path().join("out"), &cfg, "s");
    let classes = r.patches().iter().filter(|p| p.file == "classes.csv");
    let got: Vec<(&str, &str)> = classes
        .map(|p| (p.rule.as_str(), p.action.as_str()))
        .collect();
    assert_eq!(got, vec![("invalid-value", "dropped-row")], "{}", r.summary);
    assert_eq!(r.count("normalized"), 0);
}

/// Slash dates: read when the value tells the order (`8/27/2018`), never guessed when it does
/// not (`1/05/2023`), and read with `dates.order` when the district says which it is.
#[test]
fn slash_dates_are_read_only_when_the_order_is_known() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    edit(
        &b,
        "enrollments.csv",
        "E1,,,K1,L1,U1,student,false,,",
        "E1,,,K1,L1,U1,student,false,8/27/2018,",
    );
    edit(
        &b,
        "enrollments.csv",
        "E2,,,K2,L2,U2,student,false,,",
        "E2,,,K2,L2,U2,student,false,1/05/2023,",
    );
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(0);
    let e1 = r.find("enrollments.csv", "E1", "normalized");
    assert_eq!(
        (e1.field.as_str(), e1.value.as_str()),
        ("beginDate", "8/27/2018 -> 2018-08-27")
    );
    // Optional and not knowable: cleared, and the detail names the setting that would read it.
    let e2 = r.find("enrollments.csv", "E2", "invalid-value");
    assert_eq!(
        (e2.action.as_str(), e2.value.as_str()),
        ("cleared-field", "1/05/2023")
    );
    assert!(e2.detail.contains("dates.order"), "{}", e2.detail);

    for (order, want) in [("mdy", "2023-01-05"), ("dmy", "2023-05-01")] {
        let cfg = config(
            t.path(),
            &format!("[sources.s]\ndates.order = \"{order}\"\n"),
        );
        let r = check_with(&b, &t.path().join(order), &cfg, "s");
        r.assert_code(0);
        let e2 = r.find("enrollments.csv", "E2", "normalized");
        assert_eq!(e2.value, format!("1/05/2023 -> {want}"));
        assert!(r
            .modified_text("enrollments.csv")
            .contains(&format!(",{want},")));
    }
    let cfg = config(t.path(), "[sources.s]\ndates.order = \"ymd\"\n");
    let r = check_with(&b, &t.path().join("bad"), &cfg, "s");
    r.assert_code(2);
    assert!(r.stderr.contains("dates.order"), "{}", r.stderr);
}

/// An unrecognised status drops the row: clearing it would make a row that was meant to be
/// deleted active. `toBeDeleted` and 1.0's `inactive` are deletions.
#[test]
fn a_status_is_never_inverted() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    edit(
        &b,
        "manifest.csv",
        "file.enrollments,bulk",
        "file.enrollments,delta",
    );
    write(
        &b,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            "E1,active,2026-09-01T10:00:00Z,K1,L1,U1,student,false,,",
            "E2,deleted,2026-09-01T10:00:00Z,K2,L2,U2,student,false,,",
            "E3,toBeDeleted,2026-09-01T10:00:00Z,,,,,,,",
            "E4,inactive,2026-09-01T10:00:00Z,,,,,,,",
        ]),
    );
    // One enrollment of four dropped: the patch guard holds the bundle (exit 3).
    let r = check(&b, &t.path().join("out"), &[]);
    r.assert_code(3);
    assert_rows(
        &r,
        &[
            ("enrollments.csv", 3, "E2", "invalid-value", "dropped-row"),
            ("enrollments.csv", 4, "E3", "normalized", "fixed-field"),
            ("enrollments.csv", 5, "E4", "normalized", "fixed-field"),
        ],
    );
    assert_eq!(
        r.find("enrollments.csv", "E2", "invalid-value").field,
        "status"
    );
    assert_eq!(
        r.find("enrollments.csv", "E4", "normalized").value,
        "inactive -> tobedeleted"
    );
    let kept = r.modified_text("enrollments.csv");
    assert!(!kept.contains("E2,"), "{kept}");
    assert!(
        kept.contains("\nE3,tobedeleted,") && kept.contains("\nE4,tobedeleted,"),
        "{kept}"
    );

    // The same in a bulk file: dropped, not cleared.
    let b2 = oneroster_bundle(&t.path().join("b2"), "1.1");
    edit(&b2, "orgs.csv", "L2,,,South", "L2,retired,,South");
    let r = check(&b2, &t.path().join("out2"), &[]);
    let l2 = r.find("orgs.csv", "L2", "invalid-value");
    assert_eq!(
        (l2.action.as_str(), l2.field.as_str()),
        ("dropped-row", "status")
    );
}

/// A dependant of a row dropped for an invalid value names the row, its line and the cause,
/// instead of saying the id is not in the file.
#[test]
fn cascades_name_their_cause() {
    let t = tmp();
    let b = oneroster_bundle(&t.path().join("b"), "1.1");
    edit(&b, "users.csv", "U2,,,true,", "U2,,,yes,");
    let r = check(&b, &t.path().join("out"), &[]);
    let u2 = r.find("users.csv", "U2", "invalid-value");
    assert_eq!(
        (u2.field.as_str(), u2.action.as_str()),
        ("enabledUser", "dropped-row")
    );
    let e2 = r.find("enrollments.csv", "E2", "unknown-user");
    assert_eq!(
        e2.detail, "`U2` (users.csv line 3) was dropped: enabledUser invalid",
        "{}",
        r.summary
    );
}

/// Apple: instructor columns past `instructor_id_15` are reported as ignored, ids with
/// characters Apple's templates do not allow are reported, and a misspelt column gets a
/// suggestion.
#[test]
fn apple_columns_and_ids_are_reported() {
    let t = tmp();
    let b = sample_copy(t.path(), "apple");
    let classes = std::fs::read_to_string(b.join("classes.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in classes.lines().enumerate() {
        out.push_str(line);
        out.push_str(if i == 0 { ",instructor_id_16\n" } else { ",\n" });
    }
    write(&b, "classes.csv", out);
    edit(&b, "students.csv", "middle_name", "midle_name");
    let students = std::fs::read_to_string(b.join("students.csv")).unwrap();
    let first_id = students
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    write(
        &b,
        "students.csv",
        students.replacen(&first_id, &format!("{first_id}_x"), 1),
    );
    edit(
        &b,
        "rosters.csv",
        &format!(",{first_id}\n"),
        &format!(",{first_id}_x\n"),
    );
    let r = check(&b, &t.path().join("out2"), &[]);
    r.assert_code(0);
    assert!(
        r.summary
            .contains("`midle_name` (did you mean `middle_name`?)"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("column `instructor_id_16` is ignored")
            && r.summary.contains("instructor_id_15 only"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("person_id value(s) have characters Apple School Manager")
            && r.summary.contains(&format!("`{first_id}_x`")),
        "{}",
        r.summary
    );
    // Reported, not patched: the student and the column stay.
    assert_eq!(r.patches(), &[], "{}", r.summary);
    assert!(r
        .modified_text("students.csv")
        .contains(&format!("{first_id}_x,")));
    assert!(r.modified_text("classes.csv").starts_with("class_id"));
}

/// `sample-csv/oneroster-untidy` (Excel booleans and case, date-only dateLastModified, a stray
/// trailing comma, no manifest) is accepted with only fixed-field patches; the same bundle with
/// users.csv cut short is held, not accepted.
#[test]
fn the_untidy_sample_is_accepted_with_fixes_only_and_its_truncated_twin_is_held() {
    let t = tmp();
    let r = check(&sample("oneroster-untidy"), &t.path().join("out"), &[]);
    r.assert_code(0);
    assert!(!r.patches().is_empty());
    for p in r.patches() {
        assert_eq!(
            (p.rule.as_str(), p.action.as_str()),
            ("normalized", "fixed-field"),
            "{p:?}"
        );
    }
    assert!(
        r.summary.contains("Format:  oneroster-1.1"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("no manifest.csv"), "{}", r.summary);
    assert!(
        r.summary.contains("stray trailing separator"),
        "{}",
        r.summary
    );
    // Every row of every file is kept.
    for f in [
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "enrollments",
    ] {
        let name = format!("{f}.csv");
        let uploaded = std::fs::read_to_string(sample("oneroster-untidy").join(&name)).unwrap();
        assert_eq!(
            r.modified_text(&name).lines().count(),
            uploaded.lines().count(),
            "{name}"
        );
    }
    let again = check(&r.out.join("modified"), &t.path().join("again"), &[]);
    again.assert_code(0);
    assert_eq!(again.patches(), &[], "{}", again.summary);

    let r = check(
        &sample("oneroster-untidy-truncated"),
        &t.path().join("cut"),
        &[],
    );
    r.assert_code(3);
    let first = r.summary.lines().next().unwrap_or_default();
    assert!(first.contains("HELD"), "{}", r.summary);
    assert!(
        r.summary.contains("Why the bundle was held")
            && r.summary.contains("enrollments.csv: patches drop"),
        "{}",
        r.summary
    );
}

/// Found by the mutation probe: an optional value of only spaces (a begin date of " ") passed
/// as it was, and the REST API served it as a date that is none. It is read as empty, said
/// as a `normalized` fix, and the modified file holds it empty.
#[test]
fn an_optional_value_of_only_spaces_is_read_as_empty_and_said() {
    let t = tmp();
    let b = sample_copy(t.path(), "oneroster");
    edit(
        &b,
        "enrollments.csv",
        "\nE8,,,K100,L1,T201,teacher,true,,",
        "\nE8,,,K100,L1,T201,teacher,true, ,",
    );
    let r = check(&b, &t.path().join("out"), &[]);
    assert_eq!(r.code, 0, "{}", r.summary);
    let p: Vec<&Patch> = r.patches().iter().filter(|p| p.id == "E8").collect();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        (
            p[0].rule.as_str(),
            p[0].action.as_str(),
            p[0].field.as_str()
        ),
        ("normalized", "fixed-field", "beginDate")
    );
    let modified = std::fs::read_to_string(r.out.join("modified/enrollments.csv")).unwrap();
    assert!(
        modified.contains("\nE8,,,K100,L1,T201,teacher,true,,"),
        "{modified}"
    );
}
