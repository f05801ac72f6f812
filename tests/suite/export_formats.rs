//! `export --format`: a roster kept in one format written in another through the one roster
//! model. For every source format (Apple, OneRoster 1.1, 1.2; and 1.0 from a public sample)
//! and every target (apple, oneroster-1.1, oneroster-1.2): the export checks clean (no patch
//! at all), and ingesting it into a new source of the target's format and exporting that again
//! gives the same files, byte for byte. On the samples of `sample-csv/`, a hand-written 1.2
//! bundle with what only 1.2 has, synthetic districts and Ed-Fi's public OneRoster samples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::check::*;
use crate::support::store::Env;
use crate::support::*;

const TARGETS: [&str; 3] = ["apple", "oneroster-1.1", "oneroster-1.2"];

/// `[sources.src.apple]` with a school year, which an Apple source needs for OneRoster.
const APPLE: &str = "[sources.src.apple]
district_id = \"D1\"
district_name = \"Maple Valley Unified\"
[sources.src.apple.school_year]
sourced_id = \"Y2027\"
title = \"2026-2027\"
start_date = \"2026-08-17\"
end_date = \"2027-06-11\"
year = \"2027\"
";

/// The source `src` (with `src_extra` settings) and a fresh source per target.
fn env(src_extra: &str) -> Env {
    Env::new(&format!(
        "[sources.t-apple]\n[sources.t-oneroster-11]\n[sources.t-oneroster-12]\n[sources.src]\n{src_extra}"
    ))
}

fn target_source(target: &str) -> String {
    format!("t-{}", target.replace('.', ""))
}

/// `export --source S --format F --out NAME`; it must succeed. (directory, stdout)
fn export_as(e: &Env, source: &str, format: &str, name: &str) -> (PathBuf, String) {
    let out = e.path(name);
    let (code, text) = e.run_text(&[
        "export",
        "--source",
        source,
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "export {source} as {format}: {text}");
    (out, text)
}

/// `rosterdrop check` on `dir` accepts it without a single patch.
fn assert_checks_clean(dir: &Path, out: &Path, what: &str) {
    let r = check(dir, out, &[]);
    assert_eq!(r.code, 0, "{what}: check exit\n{}", r.summary);
    assert!(
        r.patches().is_empty(),
        "{what}: the export needs patches: {:#?}",
        r.patches()
    );
    assert!(r.summary.contains("ACCEPTED"), "{what}:\n{}", r.summary);
}

/// Exports by target, in a state directory kept alive with them.
struct Exports {
    _env: Env,
    dirs: BTreeMap<&'static str, PathBuf>,
}

impl std::ops::Index<&str> for Exports {
    type Output = PathBuf;
    fn index(&self, target: &str) -> &PathBuf {
        &self.dirs[target]
    }
}

/// Ingests `bundle` into `src`, then for every target: export, check clean, ingest into a new
/// source, export again (its own format now: the lossless path) and compare. Returns each
/// target's export.
fn round_trips(bundle: &Path, src_extra: &str, what: &str) -> Exports {
    let e = env(src_extra);
    let (code, out) = e.ingest(bundle, "src");
    assert_eq!(code, 0, "{what}: ingest\n{out}");
    let mut exports = BTreeMap::new();
    for target in TARGETS {
        let label = format!("{what} as {target}");
        let (first, _) = export_as(&e, "src", target, &format!("first-{target}"));
        assert_checks_clean(&first, &e.path(&format!("check-{target}")), &label);
        let t = target_source(target);
        let (code, out) = e.ingest(&first, &t);
        assert_eq!(code, 0, "{label}: ingest of the export\n{out}");
        let (second, _) = export_as(&e, &t, target, &format!("second-{target}"));
        assert_same_files(&dir_files(&second), &dir_files(&first), &label);
        exports.insert(target, first);
    }
    Exports {
        _env: e,
        dirs: exports,
    }
}

/// A OneRoster 1.2 bundle with what only 1.2 has: several roles per user, a user profile,
/// preferred names and pronouns, an `ext:` org type and role, `unspecified` sex, and users
/// Apple has no place for (a guardian, a district administrator).
fn oneroster12_bundle(dir: &Path) -> PathBuf {
    let files: [(&str, &str); 10] = [
        (
            "manifest.csv",
            "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n\
             file.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\n\
             file.users,bulk\nfile.roles,bulk\nfile.userProfiles,bulk\nfile.enrollments,bulk\n\
             file.demographics,bulk\n",
        ),
        (
            "orgs.csv",
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId,metadata.ext.region\n\
             D1,,,North District,district,ND,,north\n\
             S1,,,North High,school,NH,D1,\n\
             S2,,,North Middle,school,NM,D1,\n\
             X1,,,Outdoor Campus,ext:campus,,D1,\n",
        ),
        (
            "academicSessions.csv",
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
             Y1,,,2026-2027,schoolYear,2026-08-17,2027-06-11,,2027\n\
             T1,,,Fall,term,2026-08-17,2026-12-18,Y1,2027\n",
        ),
        (
            "courses.csv",
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\n\
             C1,,,Y1,Algebra I,ALG1,09,S1,Mathematics,\n\
             C2,,,Y1,Science 7,SCI7,07,D1,Science,\n",
        ),
        (
            "classes.csv",
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n\
             K1,,,Algebra I - P1,09,C1,ALG1-01,scheduled,Room 1,S1,T1,,,1\n\
             K2,,,Science 7 - P2,07,C2,SCI7-01,homeroom,,S2,\"Y1,T1\",,,2\n",
        ),
        (
            "users.csv",
            "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n\
             U1,,,true,ana,{SIS:1},Ana,Lopez,,1,ana@north.example,,,G1,09,,M-1,Annie,,,S1,she/her\n\
             U2,,,true,ben,{SIS:2},Ben,Okafor,J,2,ben@north.example,,,,07,,,,,,S2,\n\
             T1,,,true,grace,,Grace,Chen,,201,grace@north.example,,,,,,,,,,S1,\n\
             T2,,,false,hiro,,Hiro,Tanaka,,202,hiro@north.example,,,,,,,,,,S2,\n\
             A1,,,true,ada,,Ada,Admin,,301,ada@north.example,,,,,,,,,,D1,\n\
             G1,,,true,marta,,Marta,Lopez,,,marta@mail.example,,,U1,,,,,,,,\n\
             C9,,,true,cole,,Cole,Coach,,,cole@north.example,,,,,,,,,,X1,\n",
        ),
        (
            "roles.csv",
            "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n\
             R1,,,U1,primary,student,,,S1,\n\
             R2,,,U2,primary,student,,,S2,\n\
             R3,,,T1,primary,teacher,2026-08-01,,S1,P1\n\
             R4,,,T1,secondary,aide,,,S2,\n\
             R5,,,T2,primary,teacher,,,S2,\n\
             R6,,,A1,primary,districtAdministrator,,,D1,\n\
             R7,,,G1,primary,guardian,,,S1,\n\
             R8,,,C9,primary,ext:coach,,,X1,\n",
        ),
        (
            "userProfiles.csv",
            "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,description,credentialType,username,password\n\
             P1,,,T1,lms,vendor-1,app-1,LMS login,password,gchen,\n",
        ),
        (
            "enrollments.csv",
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n\
             E1,,,K1,S1,U1,student,false,2026-08-17,\n\
             E2,,,K2,S2,U2,student,false,,\n\
             E3,,,K1,S1,T1,teacher,true,,\n\
             E4,,,K2,S2,T2,teacher,true,,\n\
             E5,,,K2,S2,T1,teacher,false,,\n",
        ),
        (
            "demographics.csv",
            "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus\n\
             U1,,,2011-03-04,female,false,false,false,false,true,false,true,US,WA,Seattle,\n\
             U2,,,2013-05-06,unspecified,,,,,,,,,,,\n",
        ),
    ];
    write_files(dir, &files)
}

/// The rows of `file` in an export, as column -> value maps.
fn rows(dir: &Path, file: &str) -> Vec<BTreeMap<String, String>> {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let recs = records(&bytes, b',', !file_is_oneroster(dir));
    let header = recs[0].clone();
    recs[1..]
        .iter()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.iter().cloned())
                .filter(|(_, v)| !v.is_empty())
                .collect()
        })
        .collect()
}

fn file_is_oneroster(dir: &Path) -> bool {
    dir.join("manifest.csv").exists() || dir.join("users.csv").exists()
}

fn row<'a>(
    rows: &'a [BTreeMap<String, String>],
    key: &str,
    id: &str,
) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r.get(key).map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no row {key}={id} in {rows:#?}"))
}

#[test]
fn apple_sample_round_trips_in_every_format() {
    let x = round_trips(&sample("apple"), APPLE, "sample-csv/apple");
    // The settings make the district and the school year; staff are teachers, instructors
    // teacher enrollments with ids of their own, the first primary.
    let d = &x["oneroster-1.1"];
    let orgs = rows(d, "orgs.csv");
    assert_eq!(row(&orgs, "sourcedId", "D1")["type"], "district");
    assert_eq!(row(&orgs, "sourcedId", "L1")["parentSourcedId"], "D1");
    let sessions = rows(d, "academicSessions.csv");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["sourcedId"], "Y2027");
    let users = rows(d, "users.csv");
    assert_eq!(row(&users, "sourcedId", "T202")["role"], "teacher");
    let s1001 = row(&users, "sourcedId", "S1001");
    assert_eq!(s1001["grades"], "09");
    assert_eq!(s1001["metadata.apple.password_policy"], "8");
    let enr = rows(d, "enrollments.csv");
    assert_eq!(
        row(&enr, "sourcedId", "K101.teacher.T202")["primary"],
        "true"
    );
    assert_eq!(
        row(&enr, "sourcedId", "K101.teacher.T201")["primary"],
        "false"
    );
    assert_eq!(row(&enr, "sourcedId", "R1")["schoolSourcedId"], "L1");
    let classes = rows(d, "classes.csv");
    assert_eq!(
        row(&classes, "sourcedId", "K100")["termSourcedIds"],
        "Y2027"
    );
    // 1.2: the same, roles in roles.csv.
    let roles = rows(&x["oneroster-1.2"], "roles.csv");
    let r = row(&roles, "userSourcedId", "S1004");
    assert_eq!(
        (r["role"].as_str(), r["roleType"].as_str()),
        ("student", "primary")
    );
    assert_eq!(r["orgSourcedId"], "L2");
}

#[test]
fn oneroster_sample_round_trips_in_every_format() {
    let x = round_trips(&sample("oneroster"), "", "sample-csv/oneroster");
    let apple = &x["apple"];
    // The parent has no place in Apple; teachers keep their classes, primary first.
    let students = rows(apple, "students.csv");
    assert_eq!(students.len(), 6);
    assert!(rows(apple, "staff.csv")
        .iter()
        .all(|r| r["person_id"] != "P501"));
    let classes = rows(apple, "classes.csv");
    let k101 = row(&classes, "class_id", "K101");
    assert_eq!(k101["instructor_id"], "T202");
    assert_eq!(k101["instructor_id_2"], "T201");
    assert_eq!(k101["class_display_name"], "Biology - P2");
    // 1.2 says the 1.1 roles in roles.csv, the first org primary.
    let roles = rows(&x["oneroster-1.2"], "roles.csv");
    assert_eq!(row(&roles, "userSourcedId", "P501")["role"], "parent");
    // And the 1.2 export is itself a 1.2 source that round trips.
    round_trips(&x["oneroster-1.2"], "", "sample-csv/oneroster as 1.2");
}

#[test]
fn patched_samples_round_trip_in_every_format() {
    // What the engine patched on the way in is what is exported: the stored roster.
    for (name, extra) in [
        ("apple-with-errors", APPLE),
        ("oneroster-with-errors", ""),
        ("oneroster-untidy", ""),
    ] {
        round_trips(&sample(name), extra, &format!("sample-csv/{name}"));
    }
}

#[test]
fn oneroster_12_bundle_round_trips_in_every_format() {
    let dir = tmp();
    let b = oneroster12_bundle(&dir.path().join("b12"));
    let x = round_trips(&b, "", "1.2 bundle");
    // 1.1: roles down-mapped, orgs from the roles, the ext: org and its only user left out.
    let d = &x["oneroster-1.1"];
    let users = rows(d, "users.csv");
    let t1 = row(&users, "sourcedId", "T1");
    assert_eq!(
        (t1["role"].as_str(), t1["orgSourcedIds"].as_str()),
        ("teacher", "S1,S2")
    );
    assert_eq!(row(&users, "sourcedId", "A1")["role"], "administrator");
    assert!(users.iter().all(|u| u["sourcedId"] != "C9"));
    assert!(rows(d, "orgs.csv").iter().all(|o| o["sourcedId"] != "X1"));
    assert!(!users.iter().any(|u| u.contains_key("pronouns")));
    // `unspecified` is not a 1.1 sex: left out, the rest of the record kept.
    let demo = rows(d, "demographics.csv");
    assert!(!row(&demo, "sourcedId", "U2").contains_key("sex"));
    assert_eq!(row(&demo, "sourcedId", "U1")["sex"], "female");
    // Apple: students and staff at schools only; the district course sits at its class's school.
    let a = &x["apple"];
    let staff = rows(a, "staff.csv");
    let t1 = row(&staff, "person_id", "T1");
    assert_eq!(
        (t1["location_id"].as_str(), t1["location_id_2"].as_str()),
        ("S1", "S2")
    );
    assert!(staff
        .iter()
        .all(|s| !["A1", "G1", "C9"].contains(&s["person_id"].as_str())));
    assert_eq!(
        row(&rows(a, "courses.csv"), "course_id", "C2")["location_id"],
        "S2"
    );
    let k2 = rows(a, "classes.csv");
    let k2 = row(&k2, "class_id", "K2");
    assert_eq!(
        (k2["instructor_id"].as_str(), k2["instructor_id_2"].as_str()),
        ("T2", "T1")
    );
}

#[test]
fn synthetic_districts_round_trip_in_every_format() {
    let dir = tmp();
    for format in ["apple", "oneroster"] {
        let b = dir.path().join(format);
        let o = bin()
            .args(["synth", "--format", format, "--students", "2000"])
            .arg(&b)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let extra = if format == "apple" { APPLE } else { "" };
        let x = round_trips(&b, extra, &format!("synthetic {format}"));
        if format == "oneroster" {
            round_trips(&x["oneroster-1.2"], "", "synthetic oneroster as 1.2");
        }
    }
}

#[test]
fn public_edfi_samples_round_trip_in_every_format() {
    let data = repo().join("tests/data/edfi-oneroster");
    let x = round_trips(&data.join("1.1"), "", "Ed-Fi OneRoster 1.1 sample");
    // Its course belongs to the district, so in Apple it sits at the school of its class.
    let orgs = rows(&x["oneroster-1.2"], "orgs.csv");
    assert_eq!(
        row(&orgs, "sourcedId", "255901001")["parentSourcedId"],
        "255901"
    );
    let courses = rows(&x["apple"], "courses.csv");
    assert!(
        courses.iter().all(|c| c["location_id"] == "255901001"),
        "{courses:#?}"
    );
    // OneRoster 1.0 as a source: 1.0's column names read, converted to every target.
    let y = round_trips(&data.join("1.0"), "", "Ed-Fi OneRoster 1.0 sample");
    let sessions = rows(&y["oneroster-1.1"], "academicSessions.csv");
    // 1.0 has no schoolYear: the year the session ends in.
    assert!(
        sessions.iter().all(|s| s["schoolYear"] == "2021"),
        "{sessions:#?}"
    );
    // Its extension columns (with values) go along.
    let orgs = rows(&y["oneroster-1.2"], "orgs.csv");
    assert_eq!(
        row(&orgs, "sourcedId", "255901")["metadata.classification"],
        "public"
    );
    let demo = rows(&y["oneroster-1.2"], "demographics.csv");
    assert_eq!(row(&demo, "sourcedId", "604863")["birthDate"], "1997-05-30");
}

#[test]
fn own_format_export_is_the_lossless_one() {
    let dir = tmp();
    // An extra column (kept by the engine, no OneRoster home) and an extension column.
    let b = copy_dir(&sample("oneroster"), &dir.path().join("b"));
    let users = std::fs::read_to_string(b.join("users.csv")).unwrap();
    let mut out = String::new();
    for (i, l) in users.lines().enumerate() {
        out.push_str(l);
        out.push_str(if i == 0 {
            ",locker,metadata.mv.house\n"
        } else {
            ",L-7,red\n"
        });
    }
    std::fs::write(b.join("users.csv"), out).unwrap();
    let e = env("");
    assert_eq!(e.ingest(&b, "src").0, 0);
    let plain = dir_files(&e.export("src", "plain"));
    for f in ["oneroster", "oneroster-1.1"] {
        let (d, text) = export_as(&e, "src", f, f);
        assert_same_files(&dir_files(&d), &plain, f);
        assert!(
            text.contains("exported oneroster-1.1 roster of `src` to"),
            "{text}"
        );
    }
    let users = String::from_utf8(plain["users.csv"].clone()).unwrap();
    assert!(
        users
            .lines()
            .next()
            .unwrap()
            .ends_with(",locker,metadata.mv.house"),
        "{users}"
    );
    // Converted: the extension column goes along, the unknown one does not.
    let (d, text) = export_as(&e, "src", "oneroster-1.2", "v12");
    assert!(text.contains("as oneroster-1.2"), "{text}");
    let header = std::fs::read_to_string(d.join("users.csv")).unwrap();
    let header = header.lines().next().unwrap().to_string();
    assert!(header.ends_with(",pronouns,metadata.mv.house"), "{header}");
    assert!(!header.contains("locker"), "{header}");
}

#[test]
fn what_a_format_cannot_hold_is_listed() {
    let e = env("");
    assert_eq!(e.ingest(&sample("oneroster"), "src").0, 0);
    let (_, text) = export_as(&e, "src", "apple", "apple");
    for want in [
        "left out (Apple School Manager has no place for them):",
        "1 users who are neither students nor staff",
        "3 academic sessions (Apple has none)",
        "1 orgs that are not schools",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn apple_to_oneroster_needs_the_school_year_setting() {
    let e = env("[sources.src.apple]\ndistrict_id = \"D1\"\n");
    assert_eq!(e.ingest(&sample("apple"), "src").0, 0);
    for f in ["oneroster-1.1", "oneroster-1.2"] {
        let out = e.path(f);
        let (code, text) = e.run_text(&[
            "export",
            "--source",
            "src",
            "--format",
            f,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("[sources.src.apple.school_year]"), "{text}");
        assert!(!out.exists(), "a refused export writes nothing");
    }
    // `oneroster` is the source's own OneRoster version, which an Apple source has not.
    let (code, text) = e.run_text(&[
        "export",
        "--source",
        "src",
        "--format",
        "oneroster",
        "--out",
        e.path("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("oneroster-1.1 or oneroster-1.2"), "{text}");
    let (code, text) = e.run_text(&[
        "export",
        "--source",
        "src",
        "--format",
        "csv",
        "--out",
        e.path("y").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unknown format `csv`"), "{text}");
    // Apple needs no settings: it is the source's own format.
    let (d, _) = export_as(&e, "src", "apple", "apple");
    assert_checks_clean(&d, &e.path("check"), "apple as apple");
}

/// `--out` is a new or an empty folder, never a link, and the export lands whole or not at
/// all: an outside probe exported into a folder of other files (overwriting same-named ones,
/// and an Apple export and a OneRoster one mixed into one bundle `check` took for OneRoster),
/// and through a link into `/etc`.
#[test]
fn an_export_goes_to_a_new_or_empty_folder_only() {
    let e = env(APPLE);
    assert_eq!(e.ingest(&sample("apple"), "src").0, 0);
    let export =
        |out: &Path| e.run_text(&["export", "--source", "src", "--out", out.to_str().unwrap()]);
    // Into a folder holding other files: refused, nothing touched.
    let full = e.path("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("students.csv"), "old").unwrap();
    std::fs::write(full.join("keep.txt"), "keep").unwrap();
    let (code, text) = export(&full);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("is not empty (2 entries)"), "{text}");
    assert!(
        text.contains("give --out a new or an empty folder"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(full.join("students.csv")).unwrap(),
        "old"
    );
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 2);
    // Through a link to a folder: refused, nothing written where it points.
    let elsewhere = e.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let link = e.path("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let (code, text) = export(&link);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("is a symbolic link"), "{text}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // Onto a file: refused.
    let file = e.path("file.txt");
    std::fs::write(&file, "x").unwrap();
    let (code, text) = export(&file);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("is a file"), "{text}");
    // A new folder (its parents made) and an empty one: the bundle, and nothing beside it.
    for out in [e.path("new/deeper/bundle"), elsewhere.clone()] {
        let (code, text) = export(&out);
        assert_eq!(code, 0, "{text}");
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "classes.csv",
                "courses.csv",
                "locations.csv",
                "rosters.csv",
                "staff.csv",
                "students.csv"
            ],
            "{}",
            out.display()
        );
        let parent = out.parent().unwrap();
        assert!(
            std::fs::read_dir(parent).unwrap().all(|f| !f
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".partial-")),
            "a partial folder left in {}",
            parent.display()
        );
    }
    // An export refused by the store leaves no folder behind.
    let none = e.path("none");
    let (code, _) = e.run_text(&[
        "export",
        "--source",
        "t-apple",
        "--out",
        none.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(!none.exists());
}
