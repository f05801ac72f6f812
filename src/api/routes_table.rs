//! The 41 rostering GET operations of OneRoster 1.1 and 1.2, one row each: the router serves
//! from this table, and the 1.2 discovery document ([`crate::api::discovery`]) is generated
//! from it. Both versions have the same 41 paths under their own base ([`base_path`]); they
//! differ in the operationIds only. Written from the table of `docs/design/oneroster-rest.md`
//! §1.2, with that section's decisions on what each route selects.

use crate::api::render::{user_role_v1p1, RecordRef};
use crate::api::status::Version;
use crate::roster::model::Entity;

/// One GET operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path under the version's base, with OpenAPI's (and axum 0.8's) `{name}` for each
    /// path parameter: `/schools/{schoolSourcedId}/classes/{classSourcedId}/enrollments`.
    pub path: &'static str,
    /// The operationId of 1.2 (1EdTech's rostering OpenAPI document).
    pub op_v1p2: &'static str,
    /// The operationId of 1.1 (its OpenAPI definition).
    pub op_v1p1: &'static str,
    pub kind: Kind,
    /// The one property of the response body: the collection's key (`users`) or the single
    /// object's (`user`); `/demographics/{sourcedId}` is `demographics` too. See [`keys`].
    pub key: &'static str,
    /// What the route returns.
    pub entity: Entity,
    /// Which records of `entity` it may return at all (`/schools`: orgs of type school). For a
    /// single GET, a record outside it is unknown (404).
    pub narrow: Narrow,
    /// Nested routes: the path parameters that name a parent object, outermost first, each
    /// with the kind of object it must be (else the parent is unknown). Empty otherwise (a
    /// single GET's one parameter is `sourcedId`, the object itself).
    pub parents: &'static [Parent],
    /// Nested routes: how a returned record relates to the innermost parent.
    pub link: Link,
    /// The scope a token needs.
    pub scope: ScopeClass,
    /// The 1.2 document's tag for the operation.
    pub tag: &'static str,
}

/// Collection of all records, a single record by `sourcedId`, or a collection under a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Collection,
    One,
    Nested,
}

impl Kind {
    /// Whether the route answers with a list (and takes `limit`, `offset`, `sort`, `orderBy`,
    /// `filter`; and sends `X-Total-Count` and `Link`).
    pub fn is_list(self) -> bool {
        !matches!(self, Kind::One)
    }
}

/// A subset of an entity's records, by the type or role they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrow {
    All,
    /// Orgs whose `type` is this (`school`).
    OrgType(&'static str),
    /// Academic sessions whose `type` is this (`term`, `gradingPeriod`).
    SessionType(&'static str),
    /// Users with this role: in 1.1 terms the user's `role`; in the model (1.2) any entry of
    /// `roles` with it (`student`, `teacher`).
    UserRole(&'static str),
}

impl Narrow {
    /// Whether `v` counts the record in the subset: an org or session by its `type`; a user
    /// by its served role, in 1.1 the one `role` it is served with, in 1.2 any entry of
    /// `roles`. A record of another entity is outside every subset but `All`.
    pub fn admits(self, v: Version, rec: RecordRef<'_>) -> bool {
        match (self, rec) {
            (Narrow::All, _) => true,
            (Narrow::OrgType(t), RecordRef::Org(o)) => o.org_type == t,
            (Narrow::SessionType(t), RecordRef::Session(s)) => s.session_type == t,
            (Narrow::UserRole(r), RecordRef::User(u)) => match v {
                Version::V1p1 => user_role_v1p1(u) == r,
                Version::V1p2 => u.roles.iter().any(|x| x.role == r),
            },
            _ => false,
        }
    }
}

/// A path parameter naming a parent object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The parameter's name in `path`.
    pub param: &'static str,
    pub entity: Entity,
    pub narrow: Narrow,
}

/// How the records of a nested route relate to its (innermost) parent `p`. With two parents
/// (`/schools/{s}/classes/{c}/…`) the class must also have `school = s`, else it is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not nested.
    None,
    /// Records whose reference (a served field path ending in `sourcedId`; a list matches
    /// when any element does) is `p`: `school.sourcedId`, `course.sourcedId`,
    /// `terms.sourcedId`, `org.sourcedId`, `parent.sourcedId`, `class.sourcedId`.
    Field(&'static str),
    /// Users with an enrollment in class `p`, of this enrollment role.
    EnrolledIn { role: &'static str },
    /// Classes in which user `p` has an enrollment, of this enrollment role (`None`: any).
    ClassesOf { role: Option<&'static str> },
    /// Users who belong to org `p` (1.1 `orgs`, 1.2 `roles[].org`; the route's `narrow`
    /// gives the role they must have).
    MembersOf,
    /// Terms named in the `terms` of a class of school `p` (sessions carry no org).
    TermsOfClassesOf,
}

/// The scopes an operation accepts, any one of which suffices: `Core` is either
/// `roster-core.readonly` or `roster.readonly`, `Full` is `roster.readonly`, `Demographics` is
/// `roster-demographics.readonly`; under `…/v1p2/scope/` for 1.2 and `…/v1p1/scope/` for 1.1.
/// [`ScopeClass::any_of`] gives the short names, as the clients file spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeClass {
    Core,
    Full,
    Demographics,
}

/// The last part of each scope URI.
pub const SCOPE_ROSTER: &str = "roster.readonly";
pub const SCOPE_ROSTER_CORE: &str = "roster-core.readonly";
pub const SCOPE_DEMOGRAPHICS: &str = "roster-demographics.readonly";

impl ScopeClass {
    /// The scopes (last parts of the URIs, see [`scope_uri`]) any one of which suffices.
    pub fn any_of(self) -> &'static [&'static str] {
        match self {
            ScopeClass::Core => &[SCOPE_ROSTER_CORE, SCOPE_ROSTER],
            ScopeClass::Full => &[SCOPE_ROSTER],
            ScopeClass::Demographics => &[SCOPE_DEMOGRAPHICS],
        }
    }
}

/// `https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly` and the like.
pub fn scope_uri(v: Version, scope: &str) -> String {
    format!("{}{scope}", scope_prefix(v))
}

/// What every scope URI of a version starts with.
pub fn scope_prefix(v: Version) -> &'static str {
    match v {
        Version::V1p1 => "https://purl.imsglobal.org/spec/or/v1p1/scope/",
        Version::V1p2 => "https://purl.imsglobal.org/spec/or/v1p2/scope/",
    }
}

/// The version's base path: every route's `path` is under it.
pub fn base_path(v: Version) -> &'static str {
    match v {
        Version::V1p1 => "/ims/oneroster/v1p1",
        Version::V1p2 => "/ims/oneroster/rostering/v1p2",
    }
}

/// An entity's envelope keys, the same in both versions: (collection, single object). Every
/// route of the entity uses them, whatever its path says (`/schools` → `orgs`, `/terms` →
/// `academicSessions`, `/students` → `users`), and demographics has one key for both.
pub const fn keys(e: Entity) -> (&'static str, &'static str) {
    match e {
        Entity::Org => ("orgs", "org"),
        Entity::Session => ("academicSessions", "academicSession"),
        Entity::Course => ("courses", "course"),
        Entity::Class => ("classes", "class"),
        Entity::User => ("users", "user"),
        Entity::Enrollment => ("enrollments", "enrollment"),
        Entity::Demographics => ("demographics", "demographics"),
    }
}

impl Route {
    /// The operationId in `v`.
    pub fn operation_id(&self, v: Version) -> &'static str {
        match v {
            Version::V1p1 => self.op_v1p1,
            Version::V1p2 => self.op_v1p2,
        }
    }

    /// The names of the path parameters, in order.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// The route with this path template, if any.
pub fn by_path(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path)
}

/// The route with this operationId in `v`, if any.
pub fn by_operation(v: Version, op: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.operation_id(v) == op)
}

const SCHOOL: Parent = Parent {
    param: "schoolSourcedId",
    entity: Entity::Org,
    narrow: Narrow::OrgType("school"),
};
const CLASS: Parent = Parent {
    param: "classSourcedId",
    entity: Entity::Class,
    narrow: Narrow::All,
};

/// A top-level route; `ops` is (1.2 operationId, 1.1 operationId).
const fn flat(
    path: &'static str,
    ops: (&'static str, &'static str),
    kind: Kind,
    entity: Entity,
    narrow: Narrow,
    scope: ScopeClass,
    tag: &'static str,
) -> Route {
    let (many, one) = keys(entity);
    Route {
        path,
        op_v1p2: ops.0,
        op_v1p1: ops.1,
        kind,
        key: if matches!(kind, Kind::One) { one } else { many },
        entity,
        narrow,
        parents: &[],
        link: Link::None,
        scope,
        tag,
    }
}

const fn nested(
    path: &'static str,
    op: &'static str,
    entity: Entity,
    narrow: Narrow,
    parents: &'static [Parent],
    link: Link,
    tag: &'static str,
) -> Route {
    Route {
        path,
        op_v1p2: op,
        op_v1p1: op,
        kind: Kind::Nested,
        key: keys(entity).0,
        entity,
        narrow,
        parents,
        link,
        scope: ScopeClass::Full,
        tag,
    }
}

use Entity::{Class as C, Course as K, Demographics as D, Enrollment as E, Org as O};
use Entity::{Session as S, User as U};
use Kind::{Collection as Coll, One};
use Narrow::All;

/// Every rostering GET of both versions: each collection, its single object, its nested routes.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    flat("/academicSessions", ("getAllAcademicSessions", "getAcademicSessions"), Coll, S, All, ScopeClass::Core, "AcademicSessionsManagement"),
    flat("/academicSessions/{sourcedId}", ("getAcademicSession", "getAcademicSession"), One, S, All, ScopeClass::Core, "AcademicSessionsManagement"),
    flat("/classes", ("getAllClasses", "getClasses"), Coll, C, All, ScopeClass::Core, "ClassesManagement"),
    flat("/classes/{sourcedId}", ("getClass", "getClass"), One, C, All, ScopeClass::Core, "ClassesManagement"),
    nested("/classes/{classSourcedId}/students", "getStudentsForClass", U, All, &[CLASS], Link::EnrolledIn { role: "student" }, "ClassesManagement"),
    nested("/classes/{classSourcedId}/teachers", "getTeachersForClass", U, All, &[CLASS], Link::EnrolledIn { role: "teacher" }, "ClassesManagement"),
    flat("/courses", ("getAllCourses", "getCourses"), Coll, K, All, ScopeClass::Core, "CoursesManagement"),
    flat("/courses/{sourcedId}", ("getCourse", "getCourse"), One, K, All, ScopeClass::Core, "CoursesManagement"),
    nested("/courses/{courseSourcedId}/classes", "getClassesForCourse", C, All, &[Parent { param: "courseSourcedId", entity: K, narrow: All }], Link::Field("course.sourcedId"), "CoursesManagement"),
    flat("/demographics", ("getAllDemographics", "getDemographics"), Coll, D, All, ScopeClass::Demographics, "DemographicsManagement"),
    flat("/demographics/{sourcedId}", ("getDemographics", "getDemographic"), One, D, All, ScopeClass::Demographics, "DemographicsManagement"),
    flat("/enrollments", ("getAllEnrollments", "getEnrollments"), Coll, E, All, ScopeClass::Core, "EnrollmentsManagement"),
    flat("/enrollments/{sourcedId}", ("getEnrollment", "getEnrollment"), One, E, All, ScopeClass::Core, "EnrollmentsManagement"),
    flat("/gradingPeriods", ("getAllGradingPeriods", "getGradingPeriods"), Coll, S, Narrow::SessionType("gradingPeriod"), ScopeClass::Core, "GradingPeriodsManagement"),
    flat("/gradingPeriods/{sourcedId}", ("getGradingPeriod", "getGradingPeriod"), One, S, Narrow::SessionType("gradingPeriod"), ScopeClass::Core, "GradingPeriodsManagement"),
    flat("/orgs", ("getAllOrgs", "getOrgs"), Coll, O, All, ScopeClass::Core, "OrgsManagement"),
    flat("/orgs/{sourcedId}", ("getOrg", "getOrg"), One, O, All, ScopeClass::Core, "OrgsManagement"),
    flat("/schools", ("getAllSchools", "getSchools"), Coll, O, Narrow::OrgType("school"), ScopeClass::Core, "SchoolsManagement"),
    flat("/schools/{sourcedId}", ("getSchool", "getSchool"), One, O, Narrow::OrgType("school"), ScopeClass::Core, "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/classes", "getClassesForSchool", C, All, &[SCHOOL], Link::Field("school.sourcedId"), "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/classes/{classSourcedId}/enrollments", "getEnrollmentsForClassInSchool", E, All, &[SCHOOL, CLASS], Link::Field("class.sourcedId"), "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/classes/{classSourcedId}/students", "getStudentsForClassInSchool", U, All, &[SCHOOL, CLASS], Link::EnrolledIn { role: "student" }, "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/classes/{classSourcedId}/teachers", "getTeachersForClassInSchool", U, All, &[SCHOOL, CLASS], Link::EnrolledIn { role: "teacher" }, "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/courses", "getCoursesForSchool", K, All, &[SCHOOL], Link::Field("org.sourcedId"), "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/enrollments", "getEnrollmentsForSchool", E, All, &[SCHOOL], Link::Field("school.sourcedId"), "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/students", "getStudentsForSchool", U, Narrow::UserRole("student"), &[SCHOOL], Link::MembersOf, "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/teachers", "getTeachersForSchool", U, Narrow::UserRole("teacher"), &[SCHOOL], Link::MembersOf, "SchoolsManagement"),
    nested("/schools/{schoolSourcedId}/terms", "getTermsForSchool", S, Narrow::SessionType("term"), &[SCHOOL], Link::TermsOfClassesOf, "SchoolsManagement"),
    flat("/students", ("getAllStudents", "getStudents"), Coll, U, Narrow::UserRole("student"), ScopeClass::Core, "StudentsManagement"),
    flat("/students/{sourcedId}", ("getStudent", "getStudent"), One, U, Narrow::UserRole("student"), ScopeClass::Core, "StudentsManagement"),
    nested("/students/{studentSourcedId}/classes", "getClassesForStudent", C, All, &[Parent { param: "studentSourcedId", entity: U, narrow: Narrow::UserRole("student") }], Link::ClassesOf { role: Some("student") }, "StudentsManagement"),
    flat("/teachers", ("getAllTeachers", "getTeachers"), Coll, U, Narrow::UserRole("teacher"), ScopeClass::Core, "TeachersManagement"),
    flat("/teachers/{sourcedId}", ("getTeacher", "getTeacher"), One, U, Narrow::UserRole("teacher"), ScopeClass::Core, "TeachersManagement"),
    nested("/teachers/{teacherSourcedId}/classes", "getClassesForTeacher", C, All, &[Parent { param: "teacherSourcedId", entity: U, narrow: Narrow::UserRole("teacher") }], Link::ClassesOf { role: Some("teacher") }, "TeachersManagement"),
    flat("/terms", ("getAllTerms", "getTerms"), Coll, S, Narrow::SessionType("term"), ScopeClass::Core, "TermsManagement"),
    flat("/terms/{sourcedId}", ("getTerm", "getTerm"), One, S, Narrow::SessionType("term"), ScopeClass::Core, "TermsManagement"),
    nested("/terms/{termSourcedId}/classes", "getClassesForTerm", C, All, &[Parent { param: "termSourcedId", entity: S, narrow: Narrow::SessionType("term") }], Link::Field("terms.sourcedId"), "TermsManagement"),
    nested("/terms/{termSourcedId}/gradingPeriods", "getGradingPeriodsForTerm", S, Narrow::SessionType("gradingPeriod"), &[Parent { param: "termSourcedId", entity: S, narrow: Narrow::SessionType("term") }], Link::Field("parent.sourcedId"), "TermsManagement"),
    flat("/users", ("getAllUsers", "getUsers"), Coll, U, All, ScopeClass::Core, "UsersManagement"),
    flat("/users/{sourcedId}", ("getUser", "getUser"), One, U, All, ScopeClass::Core, "UsersManagement"),
    nested("/users/{userSourcedId}/classes", "getClassesForUser", C, All, &[Parent { param: "userSourcedId", entity: U, narrow: All }], Link::ClassesOf { role: None }, "UsersManagement"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_one_routes_of_three_kinds() {
        assert_eq!(ROUTES.len(), 41);
        let count = |k: Kind| ROUTES.iter().filter(|r| r.kind == k).count();
        assert_eq!(
            (
                count(Kind::Collection),
                count(Kind::One),
                count(Kind::Nested)
            ),
            (12, 12, 17)
        );
        let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), 41);
        for v in [Version::V1p1, Version::V1p2] {
            let mut ops: Vec<&str> = ROUTES.iter().map(|r| r.operation_id(v)).collect();
            ops.sort_unstable();
            ops.dedup();
            assert_eq!(ops.len(), 41, "{v:?}: operationIds are unique");
            for r in ROUTES {
                assert_eq!(by_operation(v, r.operation_id(v)), Some(r));
            }
        }
        for r in ROUTES {
            assert_eq!(by_path(r.path), Some(r));
        }
        assert_eq!(by_path("/classes/{classSourcedId}/enrollments"), None);
    }

    #[test]
    fn each_route_is_consistent() {
        for r in ROUTES {
            let (many, one) = keys(r.entity);
            let params: Vec<&str> = r.path_params().collect();
            match r.kind {
                Kind::Collection => {
                    assert_eq!(r.key, many, "{}", r.path);
                    assert!(params.is_empty() && r.parents.is_empty());
                    assert_eq!(r.link, Link::None);
                }
                Kind::One => {
                    assert_eq!(r.key, one, "{}", r.path);
                    assert_eq!(params, ["sourcedId"], "{}", r.path);
                    assert!(r.parents.is_empty());
                    assert_eq!(r.link, Link::None);
                    // Its collection: the same path without the id, the same subset and scope.
                    let coll = r.path.trim_end_matches("/{sourcedId}");
                    let c = by_path(coll).unwrap_or_else(|| panic!("{coll}"));
                    assert_eq!(
                        (c.kind, c.entity, c.narrow, c.scope, c.tag),
                        (Kind::Collection, r.entity, r.narrow, r.scope, r.tag)
                    );
                }
                Kind::Nested => {
                    assert_eq!(r.key, many, "{}", r.path);
                    let names: Vec<&str> = r.parents.iter().map(|p| p.param).collect();
                    assert_eq!(params, names, "{}", r.path);
                    assert_ne!(r.link, Link::None, "{}", r.path);
                    assert_eq!(r.op_v1p1, r.op_v1p2, "nested names are shared");
                    // The parent's kind is the route's first segment's subset.
                    let first = r.path.split('/').nth(1).unwrap_or("");
                    let top = by_path(&format!("/{first}")).unwrap_or_else(|| panic!("{first}"));
                    assert_eq!(
                        (r.parents[0].entity, r.parents[0].narrow, r.tag),
                        (top.entity, top.narrow, top.tag),
                        "{}",
                        r.path
                    );
                }
            }
            let want = match (r.entity, r.kind) {
                (Entity::Demographics, _) => ScopeClass::Demographics,
                (_, Kind::Nested) => ScopeClass::Full,
                _ => ScopeClass::Core,
            };
            assert_eq!(r.scope, want, "{}", r.path);
            if let Link::Field(f) = r.link {
                let path: Vec<String> = f.split('.').map(str::to_string).collect();
                for v in [Version::V1p1, Version::V1p2] {
                    assert!(
                        crate::api::fields::known_path(v, r.entity, &path),
                        "{}: {f}",
                        r.path
                    );
                }
            }
        }
    }

    #[test]
    fn envelope_quirks() {
        let key = |p: &str| by_path(p).map(|r| r.key);
        assert_eq!(key("/schools"), Some("orgs"));
        assert_eq!(key("/schools/{sourcedId}"), Some("org"));
        assert_eq!(key("/terms"), Some("academicSessions"));
        assert_eq!(key("/gradingPeriods/{sourcedId}"), Some("academicSession"));
        assert_eq!(
            key("/terms/{termSourcedId}/gradingPeriods"),
            Some("academicSessions")
        );
        assert_eq!(
            key("/schools/{schoolSourcedId}/terms"),
            Some("academicSessions")
        );
        assert_eq!(key("/students"), Some("users"));
        assert_eq!(key("/teachers/{sourcedId}"), Some("user"));
        assert_eq!(key("/classes/{classSourcedId}/students"), Some("users"));
        assert_eq!(key("/demographics"), Some("demographics"));
        assert_eq!(key("/demographics/{sourcedId}"), Some("demographics"));
        let one = by_path("/demographics/{sourcedId}");
        assert_eq!(
            one.map(|r| (r.op_v1p2, r.op_v1p1)),
            Some(("getDemographics", "getDemographic"))
        );
    }

    #[test]
    fn subsets() {
        use crate::roster::model::{Org, Role, Session, User};
        let school = Org {
            org_type: "school".into(),
            ..Org::default()
        };
        let term = Session {
            session_type: "term".into(),
            ..Session::default()
        };
        let role = |t: &str, r: &str| Role {
            role_type: t.into(),
            role: r.into(),
            ..Role::default()
        };
        let user = User {
            roles: vec![role("primary", "principal"), role("secondary", "teacher")],
            ..User::default()
        };
        let schools = Narrow::OrgType("school");
        assert!(schools.admits(Version::V1p2, RecordRef::Org(&school)));
        assert!(!schools.admits(Version::V1p2, RecordRef::Session(&term)));
        assert!(Narrow::SessionType("term").admits(Version::V1p1, RecordRef::Session(&term)));
        assert!(
            !Narrow::SessionType("gradingPeriod").admits(Version::V1p1, RecordRef::Session(&term))
        );
        let teachers = Narrow::UserRole("teacher");
        assert!(teachers.admits(Version::V1p2, RecordRef::User(&user)));
        assert!(
            !teachers.admits(Version::V1p1, RecordRef::User(&user)),
            "1.1: an administrator"
        );
        assert!(Narrow::All.admits(Version::V1p1, RecordRef::User(&user)));
    }

    #[test]
    fn scopes_and_bases() {
        assert_eq!(
            scope_uri(Version::V1p2, SCOPE_ROSTER_CORE),
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
        );
        assert_eq!(
            scope_uri(Version::V1p1, SCOPE_DEMOGRAPHICS),
            "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-demographics.readonly"
        );
        assert!(ScopeClass::Core.any_of().contains(&SCOPE_ROSTER));
        assert!(!ScopeClass::Full.any_of().contains(&SCOPE_ROSTER_CORE));
        assert_eq!(base_path(Version::V1p1), "/ims/oneroster/v1p1");
        assert_eq!(base_path(Version::V1p2), "/ims/oneroster/rostering/v1p2");
    }
}
