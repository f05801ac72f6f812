//! Bundles built by the tests (a small Apple bundle, a small OneRoster bundle of any version,
//! copies of the samples), and zips written and read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{copy_dir, dir_files, sample, write, write_files};

pub const APPLE_HEADERS: [(&str, &str); 6] = [
    ("locations.csv", "location_id,location_name"),
    ("students.csv", "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id"),
    ("staff.csv", "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id"),
    ("courses.csv", "course_id,course_number,course_name,location_id"),
    ("classes.csv", "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id"),
    ("rosters.csv", "roster_id,class_id,student_id"),
];

/// A small valid Apple bundle's files; callers append rows.
pub fn apple_files() -> Vec<(String, String)> {
    let rows: [&str; 6] = [
        "L1,North High\nL2,South Middle\n",
        "S1,1,Ana,,Lopez,9,ana@x.org,ana,,L1\nS2,2,Ben,,Okafor,10,ben@x.org,ben,,L2\n",
        "T1,1,Grace,,Chen,grace@x.org,grace,L1\n",
        "C1,ALG,Algebra,L1\n",
        "K1,ALG-1,C1,T1,,,L1\n",
        "R1,K1,S1\nR2,K1,S2\n",
    ];
    APPLE_HEADERS
        .iter()
        .zip(rows)
        .map(|((f, h), r)| (f.to_string(), format!("{h}\n{r}")))
        .collect()
}

/// Writes files (name, content) into a new directory `dir/name`.
pub fn bundle(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    write_files(&dir.join(name), files)
}

/// A copy of `sample-csv/<name>` in `tmp/<name>` to be edited by a test.
pub fn sample_copy(tmp: &Path, name: &str) -> PathBuf {
    copy_dir(&sample(name), &tmp.join(name))
}

/// Writes a deflated zip of `entries` (name, bytes), each under `prefix` (such as "" or
/// "district/").
pub fn zip_entries(path: &Path, prefix: &str, entries: &[(String, Vec<u8>)]) {
    write_zip(
        path,
        None,
        entries
            .iter()
            .map(|(n, b)| (format!("{prefix}{n}"), b.as_slice())),
    );
}

/// Zips the files of `src` (not recursive, sorted by name) into `zip_path`, under `folder/`
/// (with its directory entry) when given.
pub fn zip_dir(src: &Path, zip_path: &Path, folder: Option<&str>) {
    let files = dir_files(src);
    write_zip(
        zip_path,
        folder.map(|d| format!("{d}/")),
        files.iter().map(|(name, bytes)| {
            let entry = match folder {
                Some(d) => format!("{d}/{name}"),
                None => name.clone(),
            };
            (entry, bytes.as_slice())
        }),
    );
}

fn write_zip<'a>(
    path: &Path,
    dir_entry: Option<String>,
    entries: impl IntoIterator<Item = (String, &'a [u8])>,
) {
    let f = fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    if let Some(d) = dir_entry {
        z.add_directory(d, opts).unwrap();
    }
    for (name, bytes) in entries {
        z.start_file(name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Every file entry of a zip, by entry name.
pub fn zip_files(zip_path: &Path) -> BTreeMap<String, Vec<u8>> {
    let f = fs::File::open(zip_path).unwrap_or_else(|e| panic!("{}: {e}", zip_path.display()));
    let mut z = zip::ZipArchive::new(f).expect("a readable zip");
    let mut m = BTreeMap::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        if e.is_dir() {
            continue;
        }
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        m.insert(e.name().to_string(), bytes);
    }
    m
}

/// Joins CSV lines with `\n`, ending with one.
pub fn lines(rows: &[&str]) -> String {
    let mut s = rows.join("\n");
    s.push('\n');
    s
}

/// The sample file's text with its physical lines numbered from 1 (header = 1).
pub fn sample_lines(bundle: &str, file: &str) -> Vec<String> {
    fs::read_to_string(sample(bundle).join(file))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Today's date in UTC as days since 1970-01-01, from the system clock.
pub fn today_days() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (secs / 86_400) as i64
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (plain counting, no calendar tricks, so it
/// does not share code with the crate under test).
pub fn ymd(days_since_epoch: i64) -> String {
    assert!(days_since_epoch >= 0);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut rest = days_since_epoch;
    let mut y = 1970;
    loop {
        let n = if leap(y) { 366 } else { 365 };
        if rest < n {
            break;
        }
        rest -= n;
        y += 1;
    }
    let mut m = 1;
    loop {
        let n = match m {
            4 | 6 | 9 | 11 => 30,
            2 if leap(y) => 29,
            2 => 28,
            _ => 31,
        };
        if rest < n {
            break;
        }
        rest -= n;
        m += 1;
    }
    format!("{y:04}-{m:02}-{:02}", rest + 1)
}

/// A small valid OneRoster bundle; `version` is `1.1` or `1.2`. Returns its directory.
///
/// orgs: D1 (district), L1, L2 (schools). Sessions: Y1 (school year), T1, T2 (semesters).
/// Courses C1 (L1), C2 (L2). Classes K1 (C1, L1, T1+T2), K2 (C2, L2, T2).
/// Users: U1, U2 students, U3 teacher, U4 parent of U1 (1.1 roles in users.csv, 1.2 in
/// roles.csv). Enrollments: E1 U1 K1, E2 U2 K2, E3 U3 K1 (teacher), E4 U3 K2 (teacher).
pub fn oneroster_bundle(dir: &Path, version: &str) -> PathBuf {
    let v12 = version.starts_with("1.2");
    let mut manifest = vec![
        "propertyName,value".to_string(),
        "manifest.version,1.0".into(),
        format!("oneroster.version,{version}"),
    ];
    for f in [
        "academicSessions",
        "orgs",
        "courses",
        "classes",
        "users",
        "enrollments",
    ] {
        manifest.push(format!("file.{f},bulk"));
    }
    manifest.push(format!(
        "file.roles,{}",
        if v12 { "bulk" } else { "absent" }
    ));
    manifest.push("file.demographics,absent".into());
    let manifest: Vec<&str> = manifest.iter().map(String::as_str).collect();
    write(dir, "manifest.csv", lines(&manifest));
    write(
        dir,
        "orgs.csv",
        lines(&[
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
            "D1,,,District,district,D,",
            "L1,,,North High,school,NH,D1",
            "L2,,,South Middle,school,SM,D1",
        ]),
    );
    write(
        dir,
        "academicSessions.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear",
            "Y1,,,Year,schoolYear,2026-08-01,2027-06-30,,2027",
            "T1,,,Fall,semester,2026-08-01,2026-12-20,Y1,2027",
            "T2,,,Spring,semester,2027-01-05,2027-06-30,Y1,2027",
        ]),
    );
    write(
        dir,
        "courses.csv",
        lines(&[
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes",
            "C1,,,Y1,Algebra,ALG,09,L1,,",
            "C2,,,Y1,Science,SCI,07,L2,,",
        ]),
    );
    write(
        dir,
        "classes.csv",
        lines(&[
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
            "K1,,,Algebra P1,09,C1,ALG-1,scheduled,,L1,\"T1,T2\",,,1",
            "K2,,,Science P2,07,C2,SCI-1,scheduled,,L2,T2,,,2",
        ]),
    );
    if v12 {
        write(
            dir,
            "users.csv",
            lines(&[
                "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns",
                "U1,,,true,u1,,Ann,Avery,,,ann@example.org,,,U4,09,,,,,,L1,",
                "U2,,,true,u2,,Bo,Berg,,,bo@example.org,,,,07,,,,,,L2,",
                "U3,,,true,u3,,Cy,Cole,,,cy@example.org,,,,,,,,,,L1,",
                "U4,,,true,u4,,Di,Avery,,,di@example.org,,,U1,,,,,,,,",
            ]),
        );
        write(
            dir,
            "roles.csv",
            lines(&[
                "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId",
                "R1,,,U1,primary,student,,,L1,",
                "R2,,,U2,primary,student,,,L2,",
                "R3,,,U3,primary,teacher,,,L1,",
                "R4,,,U3,secondary,teacher,,,L2,",
                "R5,,,U4,primary,parent,,,L1,",
            ]),
        );
    } else {
        write(
            dir,
            "users.csv",
            lines(&[
                "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password",
                "U1,,,true,L1,student,u1,,Ann,Avery,,,ann@example.org,,,U4,09,",
                "U2,,,true,L2,student,u2,,Bo,Berg,,,bo@example.org,,,,07,",
                "U3,,,true,\"L1,L2\",teacher,u3,,Cy,Cole,,,cy@example.org,,,,,",
                "U4,,,true,L1,parent,u4,,Di,Avery,,,di@example.org,,,U1,,",
            ]),
        );
    }
    write(
        dir,
        "enrollments.csv",
        lines(&[
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            "E1,,,K1,L1,U1,student,false,,",
            "E2,,,K2,L2,U2,student,false,,",
            "E3,,,K1,L1,U3,teacher,true,,",
            "E4,,,K2,L2,U3,teacher,true,,",
        ]),
    );
    dir.to_path_buf()
}
