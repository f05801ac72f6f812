//! One roster model for every format: OneRoster's entities, which Apple School Manager's six
//! files and OneRoster CSV 1.0, 1.1 and 1.2 map into and back out of (the tables are in
//! `docs/ARCHITECTURE.md`, "One roster model"). `export --format` and the REST provider both
//! read a stored roster through it, so that a field is converted in one place.
//!
//! The model is OneRoster 1.2's vocabulary, the superset: a 1.1 user's `role` and `orgs` are its
//! `roles`, and convert back. Strings hold values as the CSVs do, an empty string for an absent
//! value; lists are lists. What the served layer adds (`status`, `dateLastModified`) is not
//! here: the model is a roster, not a history.

pub mod read;
pub mod write;

pub use read::read;
pub use write::{convert, write_bundle, Converted, CsvTable};

/// A whole roster in the model, each list sorted by `sourced_id` (byte order).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Roster {
    pub orgs: Vec<Org>,
    pub sessions: Vec<Session>,
    pub courses: Vec<Course>,
    pub classes: Vec<Class>,
    pub users: Vec<User>,
    pub enrollments: Vec<Enrollment>,
    pub demographics: Vec<Demographics>,
    /// Stored columns the model does not hold (an upload's extra columns, other than
    /// `metadata.*`), as (table, column, values), sorted: a conversion lists them as left out.
    #[serde(default)]
    pub extra_columns: Vec<(String, String, usize)>,
}

/// Extension values (`metadata.<ns>.<name>` columns), as (name after `metadata.`, value),
/// sorted by name; an empty value is not kept.
pub type Metadata = Vec<(String, String)>;

/// A short text value kept inline (up to 24 bytes, no allocation): the single values of
/// enrollments, users and roles (ids, names, roles, flags, dates), which are most of a
/// district's values and mostly short. Serialized as a string.
pub type Text = compact_str::CompactString;

/// An org: a school, the district, or another kind (`type`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Org {
    pub sourced_id: String,
    pub name: String,
    /// `school`, `district`, `department`, `local`, `national`, `state` or `ext:…`.
    pub org_type: String,
    pub identifier: String,
    pub parent: Option<String>,
    pub metadata: Metadata,
}

/// An academic session: a school year, semester, term or grading period.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub sourced_id: String,
    pub title: String,
    /// `schoolYear`, `semester`, `term`, `gradingPeriod` or `ext:…`.
    pub session_type: String,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    pub end_date: String,
    pub parent: Option<String>,
    /// The four-digit year, as text.
    pub school_year: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Course {
    pub sourced_id: String,
    pub title: String,
    /// The academic session of the course's school year.
    pub school_year: Option<String>,
    pub course_code: String,
    pub grades: Vec<String>,
    pub subjects: Vec<String>,
    pub subject_codes: Vec<String>,
    pub org: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Class {
    pub sourced_id: String,
    pub title: String,
    pub class_code: String,
    /// `homeroom`, `scheduled` or `ext:…`.
    pub class_type: String,
    pub location: String,
    pub grades: Vec<String>,
    pub subjects: Vec<String>,
    pub subject_codes: Vec<String>,
    pub periods: Vec<String>,
    pub course: String,
    pub school: String,
    pub terms: Vec<String>,
    pub metadata: Metadata,
}

/// A user: a student, teacher, administrator, guardian, ... (its `roles`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub sourced_id: Text,
    /// `true` or `false`.
    pub enabled_user: Text,
    pub username: Text,
    pub user_ids: Vec<UserId>,
    pub given_name: Text,
    pub family_name: Text,
    pub middle_name: Text,
    /// The user's roles, the `primary` one first.
    pub roles: Vec<Role>,
    /// 1.2's `primaryOrg`.
    pub primary_org: Option<String>,
    pub user_master_identifier: Text,
    pub preferred_first_name: Text,
    pub preferred_middle_name: Text,
    pub preferred_last_name: Text,
    pub pronouns: Text,
    pub identifier: Text,
    pub email: Text,
    pub sms: Text,
    pub phone: Text,
    pub agents: Vec<String>,
    pub grades: Vec<String>,
    /// Kept for export; never served by the API.
    pub password: Text,
    pub profiles: Vec<UserProfile>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserId {
    pub id_type: String,
    pub identifier: String,
}

/// One of a user's roles at an org (1.2 `roles.csv`; for 1.1 and Apple, one per org).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Role {
    /// `primary` or `secondary`.
    pub role_type: Text,
    /// 1.2's vocabulary: `student`, `teacher`, `aide`, `guardian`, `parent`, `proctor`,
    /// `relative`, `counselor`, `principal`, `siteAdministrator`, `districtAdministrator`,
    /// `systemAdministrator` or `ext:…`.
    pub role: Text,
    pub org: Text,
    /// The `sourced_id` of one of the user's `profiles`.
    pub user_profile: Option<String>,
    pub begin_date: Text,
    pub end_date: Text,
}

/// 1.2 `userProfiles.csv`: one row per credential, grouped by profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserProfile {
    pub sourced_id: String,
    pub profile_type: String,
    pub vendor_id: String,
    pub application_id: String,
    pub description: String,
    pub credentials: Vec<Credential>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    pub credential_type: String,
    pub username: String,
    /// Kept for export; never served by the API.
    pub password: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrollment {
    pub sourced_id: Text,
    pub user: Text,
    pub class: Text,
    pub school: Text,
    /// `student`, `teacher`, `administrator`, `proctor` (1.1 also the other user roles) or `ext:…`.
    pub role: Text,
    /// `true`, `false`, or empty (not said).
    pub primary: Text,
    pub begin_date: Text,
    pub end_date: Text,
    pub metadata: Metadata,
}

/// A user's demographics; `sourced_id` is the user's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Demographics {
    pub sourced_id: String,
    pub birth_date: String,
    pub sex: String,
    /// `true`/`false`/empty each.
    pub american_indian_or_alaska_native: String,
    pub asian: String,
    pub black_or_african_american: String,
    pub native_hawaiian_or_other_pacific_islander: String,
    pub white: String,
    pub demographic_race_two_or_more_races: String,
    pub hispanic_or_latino_ethnicity: String,
    pub country_of_birth_code: String,
    pub state_of_birth_abbreviation: String,
    pub city_of_birth: String,
    pub public_school_residence_status: String,
    pub metadata: Metadata,
}

/// What an Apple source lacks and OneRoster needs, from the source's `[sources.X.apple]`
/// settings: the district org that parents every school, and the academic session its
/// classes belong to (Apple has no terms; dates are never guessed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppleSettings {
    /// The district org's sourcedId (default: the source's name).
    pub district_id: String,
    /// The district org's name (default: the source's name).
    pub district_name: String,
    pub school_year: Option<SchoolYear>,
}

/// The `apple.school_year` session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchoolYear {
    pub sourced_id: String,
    pub title: String,
    pub start_date: String,
    pub end_date: String,
    /// The four-digit year.
    pub year: String,
}

/// The kinds of record in the model (OneRoster's rostering entities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Org,
    Session,
    Course,
    Class,
    User,
    Enrollment,
    Demographics,
}

impl Entity {
    pub const ALL: [Entity; 7] = [
        Entity::Org,
        Entity::Session,
        Entity::Course,
        Entity::Class,
        Entity::User,
        Entity::Enrollment,
        Entity::Demographics,
    ];
}
