//! Apple School Manager and OneRoster CSV described as data.
//!
//! A [`Schema`] lists tables (file name, columns with their kind and whether a value is
//! required, the primary key, which columns name a person) and foreign keys, each with the patch
//! action and rule code applied when it points nowhere. The engine in [`crate::roster::engine`] is
//! generic over these values; a new format is a new value.

use crate::roster::findings::Rule;

/// The value type of a column, checked field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// An identifier (primary key or reference). Must not be blank when present.
    Id,
    /// One of a closed set of values. `ext`: OneRoster 1.2 `ext:` tokens are allowed too.
    /// `ci`: compared case-insensitively (Apple).
    Enum {
        values: &'static [&'static str],
        ext: bool,
        ci: bool,
    },
    /// `YYYY-MM-DD`.
    Date,
    /// ISO 8601 date-time, e.g. `2024-08-01T12:00:00Z`.
    DateTime,
    /// `true` or `false`.
    Bool,
    Email,
    /// Four digits.
    Year,
    /// A comma-separated list of identifiers.
    IdList,
    /// A comma-separated list of grade codes.
    GradeList {
        ext: bool,
    },
    /// OneRoster `userIds`: a list of `{type:identifier}`.
    UserIds,
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// A family of optional numbered columns such as `location_id_2 .. location_id_999`; each
/// member behaves like column `base`.
#[derive(Debug, Clone)]
pub struct Numbered {
    pub base: &'static str,
    pub prefix: &'static str,
    pub first: u32,
    pub last: u32,
}

/// Columns naming a person, for duplicate-account detection.
#[derive(Debug, Clone, Copy)]
pub struct PersonCols {
    pub first: &'static str,
    pub last: &'static str,
    pub email: &'static str,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    /// Logical name, also the file stem: `students` for `students.csv`.
    pub name: &'static str,
    pub columns: Vec<ColumnDef>,
    pub numbered: Vec<Numbered>,
    pub pk: &'static str,
    /// Tables sharing a key space for primary-key uniqueness (Apple students + staff).
    pub pk_group: Option<&'static str>,
    pub person: Option<PersonCols>,
    /// OneRoster: the table has `status` and `dateLastModified`.
    pub oneroster_status: bool,
}

impl TableDef {
    pub fn file_name(&self) -> String {
        format!("{}.csv", self.name)
    }
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// What happens to a row whose reference points nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    DropRow,
    ClearField,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub table: &'static str,
    /// Column name; numbered columns whose base is this name are covered too.
    pub column: &'static str,
    pub target: &'static str,
    /// A comma-separated list: unknown items are removed; a required list left empty drops the
    /// row.
    pub list: bool,
    pub on_missing: OnMissing,
    pub rule: Rule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Apple,
    /// OneRoster 1.0 CSV: no manifest.csv by design, demographics keyed by `userSourcedId`,
    /// academicSessions without `schoolYear`, the status `inactive`, 1.0 column names.
    OneRoster10,
    OneRoster11,
    OneRoster12,
}

impl Format {
    /// Every format, for code that has to cover them all.
    pub const ALL: [Format; 4] = [
        Format::Apple,
        Format::OneRoster10,
        Format::OneRoster11,
        Format::OneRoster12,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Format::Apple => "apple",
            Format::OneRoster10 => "oneroster-1.0",
            Format::OneRoster11 => "oneroster-1.1",
            Format::OneRoster12 => "oneroster-1.2",
        }
    }
    /// The format a [`Format::label`] names (as the store keeps it).
    pub fn from_label(label: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.label() == label)
    }
    /// Any OneRoster version: all of them are one format ("oneroster") for a source.
    pub fn is_oneroster(self) -> bool {
        !matches!(self, Format::Apple)
    }
    /// The name people know the format by, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Format::Apple => "Apple School Manager",
            Format::OneRoster10 => "OneRoster 1.0",
            Format::OneRoster11 => "OneRoster 1.1",
            Format::OneRoster12 => "OneRoster 1.2",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub format: Format,
    /// In processing order: a table's references point to tables before it where possible.
    pub tables: Vec<TableDef>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Files of the format that are recognised but not processed (reported as ignored).
    pub known_unused: &'static [&'static str],
}

impl Schema {
    pub fn for_format(f: Format) -> Schema {
        match f {
            Format::Apple => apple(),
            Format::OneRoster10 => oneroster10(),
            Format::OneRoster11 => oneroster(false),
            Format::OneRoster12 => oneroster(true),
        }
    }
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == name)
    }
}

const fn col(name: &'static str, kind: Kind, required: bool) -> ColumnDef {
    ColumnDef {
        name,
        kind,
        required,
    }
}

/// CEDS entry grade levels (OneRoster `grades`).
pub const CEDS_GRADES: &[&str] = &[
    "IT", "PR", "PK", "TK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11",
    "12", "13", "PS", "UG", "Other",
];

/// Apple `grade_level`: free-form in Apple's template (example `9`); we accept the CEDS codes,
/// the plain numbers 0-13 and the usual kindergarten spellings, case-insensitively.
pub const APPLE_GRADES: &[&str] = &[
    "IT",
    "PR",
    "PK",
    "TK",
    "KG",
    "K",
    "Kindergarten",
    "Pre-K",
    "PS",
    "UG",
    "Other",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "10",
    "11",
    "12",
    "13",
    "00",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "07",
    "08",
    "09",
];

fn apple() -> Schema {
    use Kind::*;
    let e = |values| Enum {
        values,
        ext: false,
        ci: true,
    };
    let loc_numbered = || Numbered {
        base: "location_id",
        prefix: "location_id_",
        first: 2,
        last: 999,
    };
    let person = Some(PersonCols {
        first: "first_name",
        last: "last_name",
        email: "email_address",
    });
    let tables = vec![
        TableDef {
            name: "locations",
            columns: vec![
                col("location_id", Id, true),
                col("location_name", Text, true),
            ],
            numbered: vec![],
            pk: "location_id",
            pk_group: None,
            person: None,
            oneroster_status: false,
        },
        TableDef {
            name: "students",
            columns: vec![
                col("person_id", Id, true),
                col("person_number", Text, false),
                col("first_name", Text, true),
                col("middle_name", Text, false),
                col("last_name", Text, true),
                col("grade_level", e(APPLE_GRADES), false),
                col("email_address", Email, false),
                col("sis_username", Text, false),
                col("password_policy", e(&["4", "6", "8"]), false),
                col("location_id", Id, true),
            ],
            numbered: vec![loc_numbered()],
            pk: "person_id",
            pk_group: Some("person_id"),
            person,
            oneroster_status: false,
        },
        TableDef {
            name: "staff",
            columns: vec![
                col("person_id", Id, true),
                col("person_number", Text, false),
                col("first_name", Text, true),
                col("middle_name", Text, false),
                col("last_name", Text, true),
                col("email_address", Email, false),
                col("sis_username", Text, false),
                col("location_id", Id, true),
            ],
            numbered: vec![loc_numbered()],
            pk: "person_id",
            pk_group: Some("person_id"),
            person,
            oneroster_status: false,
        },
        TableDef {
            name: "courses",
            columns: vec![
                col("course_id", Id, true),
                col("course_number", Text, false),
                col("course_name", Text, false),
                col("location_id", Id, true),
            ],
            numbered: vec![],
            pk: "course_id",
            pk_group: None,
            person: None,
            oneroster_status: false,
        },
        TableDef {
            name: "classes",
            columns: vec![
                col("class_id", Id, true),
                col("class_number", Text, false),
                col("course_id", Id, true),
                col("instructor_id", Id, false),
                col("class_display_name", Text, false),
                col("location_id", Id, true),
            ],
            numbered: vec![Numbered {
                base: "instructor_id",
                prefix: "instructor_id_",
                first: 2,
                last: 15,
            }],
            pk: "class_id",
            pk_group: None,
            person: None,
            oneroster_status: false,
        },
        TableDef {
            name: "rosters",
            columns: vec![
                col("roster_id", Id, true),
                col("class_id", Id, true),
                col("student_id", Id, true),
            ],
            numbered: vec![],
            pk: "roster_id",
            pk_group: None,
            person: None,
            oneroster_status: false,
        },
    ];
    let fk = |table, column, target, on_missing, rule| ForeignKey {
        table,
        column,
        target,
        list: false,
        on_missing,
        rule,
    };
    use OnMissing::*;
    let foreign_keys = vec![
        fk(
            "students",
            "location_id",
            "locations",
            DropRow,
            Rule::UnknownReference,
        ),
        fk(
            "staff",
            "location_id",
            "locations",
            DropRow,
            Rule::UnknownReference,
        ),
        fk(
            "courses",
            "location_id",
            "locations",
            DropRow,
            Rule::UnknownReference,
        ),
        fk(
            "classes",
            "course_id",
            "courses",
            DropRow,
            Rule::UnknownReference,
        ),
        fk(
            "classes",
            "location_id",
            "locations",
            DropRow,
            Rule::UnknownReference,
        ),
        fk(
            "classes",
            "instructor_id",
            "staff",
            ClearField,
            Rule::UnknownInstructor,
        ),
        fk(
            "rosters",
            "class_id",
            "classes",
            DropRow,
            Rule::UnknownClass,
        ),
        fk(
            "rosters",
            "student_id",
            "students",
            DropRow,
            Rule::UnknownStudent,
        ),
    ];
    Schema {
        format: Format::Apple,
        tables,
        foreign_keys,
        known_unused: &[],
    }
}

const STATUS_11: &[&str] = &["active", "tobedeleted"];
/// OneRoster 1.0 also has `inactive` (the engine reads it as `tobedeleted`).
const STATUS_10: &[&str] = &["active", "inactive", "tobedeleted"];
const ORG_TYPES: &[&str] = &[
    "department",
    "school",
    "district",
    "local",
    "state",
    "national",
];
const SESSION_TYPES: &[&str] = &["gradingPeriod", "semester", "schoolYear", "term"];
/// User roles of 1.1, also taken for 1.0: 1.0's administrator, aide, guardian, parent,
/// relative, student and teacher, plus proctor, which later 1.0 exporters write too.
const USER_ROLES: &[&str] = &[
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
];

/// OneRoster 1.0 CSV (IMS OneRoster v1.0 Final, CSV tables), the columns as 1.0 exporters
/// write them: users have `orgSourcedIds` and `role` as in 1.1 but no `enabledUser`, and
/// `userId`/`agents` for 1.1's `userIds`/`agentSourcedIds`; courses have `schoolYearId` and
/// `grade`; classes `grade` and `termSourcedId`; academicSessions have no `schoolYear` (kept
/// here as an optional column, since some exporters add it); demographics are keyed by
/// `userSourcedId`, the user they describe, and have no `sourcedId`. 1.0 values are closed
/// sets (no `ext:` tokens).
fn oneroster10() -> Schema {
    use Kind::*;
    let en = |values: &'static [&'static str]| Enum {
        values,
        ext: false,
        ci: false,
    };
    let status = || {
        [
            col("status", en(STATUS_10), false),
            col("dateLastModified", DateTime, false),
        ]
    };
    let with = |key: &'static str, extra: Vec<ColumnDef>| {
        let mut v = vec![col(key, Id, true)];
        v.extend(status());
        v.extend(extra);
        v
    };
    let t = |name, pk, columns, person| TableDef {
        name,
        columns,
        numbered: vec![],
        pk,
        pk_group: None,
        person,
        oneroster_status: true,
    };
    let grades = GradeList { ext: false };
    let s = "sourcedId";
    let b = |n| col(n, Bool, false);
    let tables = vec![
        t(
            "orgs",
            s,
            with(
                s,
                vec![
                    col("name", Text, true),
                    col("type", en(ORG_TYPES), true),
                    col("identifier", Text, false),
                    col("parentSourcedId", Id, false),
                ],
            ),
            None,
        ),
        t(
            "academicSessions",
            s,
            with(
                s,
                vec![
                    col("title", Text, true),
                    col("type", en(SESSION_TYPES), true),
                    col("startDate", Date, true),
                    col("endDate", Date, true),
                    col("parentSourcedId", Id, false),
                    col("schoolYear", Year, false),
                ],
            ),
            None,
        ),
        t(
            "courses",
            s,
            with(
                s,
                vec![
                    col("schoolYearId", Id, false),
                    col("title", Text, true),
                    col("courseCode", Text, false),
                    col("grade", grades, false),
                    col("orgSourcedId", Id, true),
                    col("subjects", Text, false),
                ],
            ),
            None,
        ),
        t(
            "classes",
            s,
            with(
                s,
                vec![
                    col("title", Text, true),
                    col("grade", grades, false),
                    col("courseSourcedId", Id, true),
                    col("classCode", Text, false),
                    col("classType", en(&["homeroom", "scheduled"]), true),
                    col("location", Text, false),
                    col("schoolSourcedId", Id, true),
                    col("termSourcedId", IdList, true),
                    col("subjects", Text, false),
                ],
            ),
            None,
        ),
        t(
            "users",
            s,
            with(
                s,
                vec![
                    col("orgSourcedIds", IdList, true),
                    col("role", en(USER_ROLES), true),
                    col("username", Text, true),
                    col("userId", Text, false),
                    col("givenName", Text, true),
                    col("familyName", Text, true),
                    col("identifier", Text, false),
                    col("email", Email, false),
                    col("sms", Text, false),
                    col("phone", Text, false),
                    col("agents", IdList, false),
                ],
            ),
            Some(PersonCols {
                first: "givenName",
                last: "familyName",
                email: "email",
            }),
        ),
        t(
            "enrollments",
            s,
            with(
                s,
                vec![
                    col("classSourcedId", Id, true),
                    col("schoolSourcedId", Id, true),
                    col("userSourcedId", Id, true),
                    // 1.0 enrollments take the user roles.
                    col("role", en(USER_ROLES), true),
                    col("primary", Bool, false),
                ],
            ),
            None,
        ),
        t(
            "demographics",
            "userSourcedId",
            with(
                "userSourcedId",
                vec![
                    col("birthdate", Date, false),
                    col("sex", en(&["male", "female"]), false),
                    b("americanIndianOrAlaskaNative"),
                    b("asian"),
                    b("blackOrAfricanAmerican"),
                    b("nativeHawaiianOrOtherPacificIslander"),
                    b("white"),
                    b("demographicRaceTwoOrMoreRaces"),
                    b("hispanicOrLatinoEthnicity"),
                    col("countryOfBirthCode", Text, false),
                    col("stateOfBirthAbbreviation", Text, false),
                    col("cityOfBirth", Text, false),
                    col("publicSchoolResidenceStatus", Text, false),
                ],
            ),
            None,
        ),
    ];
    use OnMissing::*;
    let fk = |table, column, target, list, on_missing, rule| ForeignKey {
        table,
        column,
        target,
        list,
        on_missing,
        rule,
    };
    let r = Rule::UnknownReference;
    let sessions = "academicSessions";
    let foreign_keys = vec![
        fk("orgs", "parentSourcedId", "orgs", false, ClearField, r),
        fk(sessions, "parentSourcedId", sessions, false, ClearField, r),
        fk("courses", "schoolYearId", sessions, false, ClearField, r),
        fk("courses", "orgSourcedId", "orgs", false, DropRow, r),
        fk("classes", "courseSourcedId", "courses", false, DropRow, r),
        fk("classes", "schoolSourcedId", "orgs", false, DropRow, r),
        fk("classes", "termSourcedId", sessions, true, DropRow, r),
        fk("users", "orgSourcedIds", "orgs", true, DropRow, r),
        fk("users", "agents", "users", true, ClearField, r),
        fk(
            "enrollments",
            "classSourcedId",
            "classes",
            false,
            DropRow,
            Rule::UnknownClass,
        ),
        fk(
            "enrollments",
            "userSourcedId",
            "users",
            false,
            DropRow,
            Rule::UnknownUser,
        ),
        fk("enrollments", "schoolSourcedId", "orgs", false, DropRow, r),
        fk("demographics", "userSourcedId", "users", false, DropRow, r),
    ];
    Schema {
        format: Format::OneRoster10,
        tables,
        foreign_keys,
        // 1.0 CSV defines the rostering files only; 1.1's gradebook files are not 1.0.
        known_unused: &[],
    }
}

fn oneroster(v12: bool) -> Schema {
    use Kind::*;
    let en = |values: &'static [&'static str]| Enum {
        values,
        ext: v12,
        ci: false,
    };
    let status_cols = || {
        vec![
            col("sourcedId", Id, true),
            col(
                "status",
                Enum {
                    values: STATUS_11,
                    ext: false,
                    ci: false,
                },
                false,
            ),
            col("dateLastModified", DateTime, false),
        ]
    };
    let with = |mut extra: Vec<ColumnDef>| {
        let mut v = status_cols();
        v.append(&mut extra);
        v
    };
    let t = |name, columns, person| TableDef {
        name,
        columns,
        numbered: vec![],
        pk: "sourcedId",
        pk_group: None,
        person,
        oneroster_status: true,
    };
    let grades = GradeList { ext: v12 };
    let mut tables = vec![
        t(
            "orgs",
            with(vec![
                col("name", Text, true),
                col(
                    "type",
                    en(&[
                        "department",
                        "school",
                        "district",
                        "local",
                        "state",
                        "national",
                    ]),
                    true,
                ),
                col("identifier", Text, false),
                col("parentSourcedId", Id, false),
            ]),
            None,
        ),
        t(
            "academicSessions",
            with(vec![
                col("title", Text, true),
                col(
                    "type",
                    en(&["gradingPeriod", "semester", "schoolYear", "term"]),
                    true,
                ),
                col("startDate", Date, true),
                col("endDate", Date, true),
                col("parentSourcedId", Id, false),
                col("schoolYear", Year, true),
            ]),
            None,
        ),
        t(
            "courses",
            with(vec![
                col("schoolYearSourcedId", Id, false),
                col("title", Text, true),
                col("courseCode", Text, false),
                col("grades", grades, false),
                col("orgSourcedId", Id, true),
                col("subjects", Text, false),
                col("subjectCodes", Text, false),
            ]),
            None,
        ),
        t(
            "classes",
            with(vec![
                col("title", Text, true),
                col("grades", grades, false),
                col("courseSourcedId", Id, true),
                col("classCode", Text, false),
                col("classType", en(&["homeroom", "scheduled"]), true),
                col("location", Text, false),
                col("schoolSourcedId", Id, true),
                col("termSourcedIds", IdList, true),
                col("subjects", Text, false),
                col("subjectCodes", Text, false),
                col("periods", Text, false),
            ]),
            None,
        ),
    ];
    let person = Some(PersonCols {
        first: "givenName",
        last: "familyName",
        email: "email",
    });
    let mut users = vec![col("enabledUser", Bool, true)];
    if !v12 {
        users.push(col("orgSourcedIds", IdList, true));
        users.push(col(
            "role",
            en(&[
                "administrator",
                "aide",
                "guardian",
                "parent",
                "proctor",
                "relative",
                "student",
                "teacher",
            ]),
            true,
        ));
    }
    users.extend([
        col("username", Text, true),
        col("userIds", UserIds, false),
        col("givenName", Text, true),
        col("familyName", Text, true),
        col("middleName", Text, false),
        col("identifier", Text, false),
        col("email", Email, false),
        col("sms", Text, false),
        col("phone", Text, false),
        col("agentSourcedIds", IdList, false),
        col("grades", grades, false),
        col("password", Text, false),
    ]);
    if v12 {
        users.extend([
            col("userMasterIdentifier", Text, false),
            col("preferredGivenName", Text, false),
            col("preferredMiddleName", Text, false),
            col("preferredFamilyName", Text, false),
            col("primaryOrgSourcedId", Id, false),
            col("pronouns", Text, false),
        ]);
    }
    tables.push(t("users", with(users), person));
    if v12 {
        tables.push(t(
            "userProfiles",
            with(vec![
                col("userSourcedId", Id, true),
                col("profileType", Text, true),
                col("vendorId", Text, true),
                col("applicationId", Text, false),
                col("description", Text, false),
                col("credentialType", Text, true),
                col("username", Text, true),
                col("password", Text, false),
            ]),
            None,
        ));
        tables.push(t(
            "roles",
            with(vec![
                col("userSourcedId", Id, true),
                col(
                    "roleType",
                    Enum {
                        values: &["primary", "secondary"],
                        ext: false,
                        ci: false,
                    },
                    true,
                ),
                col(
                    "role",
                    en(&[
                        "aide",
                        "counselor",
                        "districtAdministrator",
                        "guardian",
                        "parent",
                        "principal",
                        "proctor",
                        "relative",
                        "siteAdministrator",
                        "student",
                        "systemAdministrator",
                        "teacher",
                    ]),
                    true,
                ),
                col("beginDate", Date, false),
                col("endDate", Date, false),
                col("orgSourcedId", Id, true),
                col("userProfileSourcedId", Id, false),
            ]),
            None,
        ));
    }
    tables.push(t(
        "enrollments",
        with(vec![
            col("classSourcedId", Id, true),
            col("schoolSourcedId", Id, true),
            col("userSourcedId", Id, true),
            col(
                "role",
                en(&["administrator", "proctor", "student", "teacher"]),
                true,
            ),
            col("primary", Bool, false),
            col("beginDate", Date, false),
            col("endDate", Date, false),
        ]),
        None,
    ));
    let sex: &'static [&'static str] = if v12 {
        &["male", "female", "unspecified", "other"]
    } else {
        &["male", "female"]
    };
    let b = |n| col(n, Bool, false);
    tables.push(t(
        "demographics",
        with(vec![
            col("birthDate", Date, false),
            col("sex", en(sex), false),
            b("americanIndianOrAlaskaNative"),
            b("asian"),
            b("blackOrAfricanAmerican"),
            b("nativeHawaiianOrOtherPacificIslander"),
            b("white"),
            b("demographicRaceTwoOrMoreRaces"),
            b("hispanicOrLatinoEthnicity"),
            col("countryOfBirthCode", Text, false),
            col("stateOfBirthAbbreviation", Text, false),
            col("cityOfBirth", Text, false),
            col("publicSchoolResidenceStatus", Text, false),
        ]),
        None,
    ));

    use OnMissing::*;
    let fk = |table, column, target, list, on_missing, rule| ForeignKey {
        table,
        column,
        target,
        list,
        on_missing,
        rule,
    };
    let r = Rule::UnknownReference;
    let mut foreign_keys = vec![
        fk("orgs", "parentSourcedId", "orgs", false, ClearField, r),
        fk(
            "academicSessions",
            "parentSourcedId",
            "academicSessions",
            false,
            ClearField,
            r,
        ),
        fk(
            "courses",
            "schoolYearSourcedId",
            "academicSessions",
            false,
            ClearField,
            r,
        ),
        fk("courses", "orgSourcedId", "orgs", false, DropRow, r),
        fk("classes", "courseSourcedId", "courses", false, DropRow, r),
        fk("classes", "schoolSourcedId", "orgs", false, DropRow, r),
        fk(
            "classes",
            "termSourcedIds",
            "academicSessions",
            true,
            DropRow,
            r,
        ),
        fk("users", "agentSourcedIds", "users", true, ClearField, r),
        fk(
            "enrollments",
            "classSourcedId",
            "classes",
            false,
            DropRow,
            Rule::UnknownClass,
        ),
        fk(
            "enrollments",
            "userSourcedId",
            "users",
            false,
            DropRow,
            Rule::UnknownUser,
        ),
        fk("enrollments", "schoolSourcedId", "orgs", false, DropRow, r),
        fk("demographics", "sourcedId", "users", false, DropRow, r),
    ];
    if v12 {
        foreign_keys.extend([
            fk("users", "primaryOrgSourcedId", "orgs", false, ClearField, r),
            fk("userProfiles", "userSourcedId", "users", false, DropRow, r),
            fk("roles", "userSourcedId", "users", false, DropRow, r),
            fk("roles", "orgSourcedId", "orgs", false, DropRow, r),
            fk(
                "roles",
                "userProfileSourcedId",
                "userProfiles",
                false,
                ClearField,
                r,
            ),
        ]);
    } else {
        foreign_keys.push(fk("users", "orgSourcedIds", "orgs", true, DropRow, r));
    }
    Schema {
        format: if v12 {
            Format::OneRoster12
        } else {
            Format::OneRoster11
        },
        tables,
        foreign_keys,
        known_unused: if v12 {
            &[
                "categories",
                "classResources",
                "courseResources",
                "lineItems",
                "resources",
                "results",
                "userResources",
                "scoreScales",
                "lineItemScoreScales",
                "resultScoreScales",
                "lineItemLearningObjectiveIds",
                "resultLearningObjectiveIds",
            ]
        } else {
            &[
                "categories",
                "classResources",
                "courseResources",
                "lineItems",
                "resources",
                "results",
            ]
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_foreign_key_names_real_tables_and_columns() {
        for f in Format::ALL {
            let s = Schema::for_format(f);
            for k in &s.foreign_keys {
                let t = s.table(k.table).unwrap_or_else(|| panic!("{f:?} {k:?}"));
                assert!(t.column(k.column).is_some(), "{f:?} {k:?}");
                let target = s.table(k.target).unwrap_or_else(|| panic!("{f:?} {k:?}"));
                assert!(target.column(target.pk).is_some());
            }
        }
    }

    #[test]
    fn users_columns_differ_between_versions() {
        let s11 = Schema::for_format(Format::OneRoster11);
        let s12 = Schema::for_format(Format::OneRoster12);
        assert!(s11.table("users").unwrap().column("role").is_some());
        assert!(s12.table("users").unwrap().column("role").is_none());
        assert!(s12.table("roles").is_some() && s11.table("roles").is_none());
    }

    #[test]
    fn oneroster_10_is_a_schema_of_its_own() {
        let s = Schema::for_format(Format::OneRoster10);
        assert_eq!(s.format, Format::OneRoster10);
        let d = s.table("demographics").unwrap();
        assert_eq!(d.pk, "userSourcedId");
        assert!(d.column("sourcedId").is_none());
        assert!(s
            .foreign_keys
            .iter()
            .any(|k| k.table == "demographics" && k.column == "userSourcedId"));
        let a = s.table("academicSessions").unwrap();
        assert!(!a.column("schoolYear").unwrap().required);
        let u = s.table("users").unwrap();
        assert!(u.column("role").unwrap().required && u.column("orgSourcedIds").is_some());
        assert!(u.column("enabledUser").is_none());
        match u.column("status").unwrap().kind {
            Kind::Enum { values, .. } => assert!(values.contains(&"inactive")),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn labels_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_label(f.label()), Some(f));
        }
        assert_eq!(Format::from_label("oneroster"), None);
    }
}
