//! The field catalogue: every property, and every dotted path into it, that a version's served
//! shape of an entity has ([`crate::api::render`] writes exactly these). The query layer checks
//! `filter`, `sort` and `fields` names against it ([`known_path`]), and `fields=` selects among
//! [`top_level_fields`].

use crate::api::status::Version;
use crate::roster::model::Entity;

/// A property and what is inside it (an object's or a list of objects' properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub sub: &'static [Field],
}

const fn leaf(name: &'static str) -> Field {
    Field { name, sub: &[] }
}

const fn obj(name: &'static str, sub: &'static [Field]) -> Field {
    Field { name, sub }
}

const GUIDREF: &[Field] = &[leaf("href"), leaf("sourcedId"), leaf("type")];

/// `metadata`'s contents are the source's own: any path under it is accepted.
pub const METADATA: &str = "metadata";

const ORG: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("name"),
    leaf("type"),
    leaf("identifier"),
    obj("parent", GUIDREF),
    obj("children", GUIDREF),
];

const SESSION: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("title"),
    leaf("startDate"),
    leaf("endDate"),
    leaf("type"),
    obj("parent", GUIDREF),
    obj("children", GUIDREF),
    leaf("schoolYear"),
];

const COURSE: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("title"),
    obj("schoolYear", GUIDREF),
    leaf("courseCode"),
    leaf("grades"),
    leaf("subjects"),
    obj("org", GUIDREF),
    leaf("subjectCodes"),
];

const CLASS: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("title"),
    leaf("classCode"),
    leaf("classType"),
    leaf("location"),
    leaf("grades"),
    leaf("subjects"),
    obj("course", GUIDREF),
    obj("school", GUIDREF),
    obj("terms", GUIDREF),
    leaf("subjectCodes"),
    leaf("periods"),
];

const USER_IDS_V1P1: &[Field] = &[leaf("type"), leaf("identifier")];

const USER_V1P1: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("username"),
    obj("userIds", USER_IDS_V1P1),
    leaf("enabledUser"),
    leaf("givenName"),
    leaf("familyName"),
    leaf("middleName"),
    leaf("role"),
    leaf("identifier"),
    leaf("email"),
    leaf("sms"),
    leaf("phone"),
    obj("agents", GUIDREF),
    obj("orgs", GUIDREF),
    leaf("grades"),
];

const ROLE: &[Field] = &[
    leaf("roleType"),
    leaf("role"),
    obj("org", GUIDREF),
    leaf("userProfile"),
    leaf("beginDate"),
    leaf("endDate"),
];

const PROFILE: &[Field] = &[
    leaf("profileId"),
    leaf("profileType"),
    leaf("vendorId"),
    leaf("applicationId"),
    leaf("description"),
    obj("credentials", &[leaf("type"), leaf("username")]),
];

const USER_V1P2: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("userMasterIdentifier"),
    leaf("username"),
    obj("userIds", USER_IDS_V1P1),
    leaf("enabledUser"),
    leaf("givenName"),
    leaf("familyName"),
    leaf("middleName"),
    leaf("preferredFirstName"),
    leaf("preferredMiddleName"),
    leaf("preferredLastName"),
    leaf("pronouns"),
    obj("roles", ROLE),
    obj("userProfiles", PROFILE),
    obj("primaryOrg", GUIDREF),
    leaf("identifier"),
    leaf("email"),
    leaf("sms"),
    leaf("phone"),
    obj("agents", GUIDREF),
    leaf("grades"),
];

const ENROLLMENT: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    obj("user", GUIDREF),
    obj("class", GUIDREF),
    obj("school", GUIDREF),
    leaf("role"),
    leaf("primary"),
    leaf("beginDate"),
    leaf("endDate"),
];

const DEMOGRAPHICS: &[Field] = &[
    leaf("sourcedId"),
    leaf("status"),
    leaf("dateLastModified"),
    leaf(METADATA),
    leaf("birthDate"),
    leaf("sex"),
    leaf("americanIndianOrAlaskaNative"),
    leaf("asian"),
    leaf("blackOrAfricanAmerican"),
    leaf("nativeHawaiianOrOtherPacificIslander"),
    leaf("white"),
    leaf("demographicRaceTwoOrMoreRaces"),
    leaf("hispanicOrLatinoEthnicity"),
    leaf("countryOfBirthCode"),
    leaf("stateOfBirthAbbreviation"),
    leaf("cityOfBirth"),
    leaf("publicSchoolResidenceStatus"),
];

/// The served shape of `e` in `v`: its properties, in the order they are written.
pub fn shape(v: Version, e: Entity) -> &'static [Field] {
    match (v, e) {
        (_, Entity::Org) => ORG,
        (_, Entity::Session) => SESSION,
        (_, Entity::Course) => COURSE,
        (_, Entity::Class) => CLASS,
        (Version::V1p1, Entity::User) => USER_V1P1,
        (Version::V1p2, Entity::User) => USER_V1P2,
        (_, Entity::Enrollment) => ENROLLMENT,
        (_, Entity::Demographics) => DEMOGRAPHICS,
    }
}

/// The top-level property names of `e` in `v` (what `fields=` may name), in written order.
pub fn top_level_fields(v: Version, e: Entity) -> &'static [&'static str] {
    macro_rules! names {
        ($shape:expr) => {{
            const S: &[Field] = $shape;
            const N: usize = S.len();
            const NAMES: [&str; N] = {
                let mut out = [""; N];
                let mut i = 0;
                while i < N {
                    out[i] = S[i].name;
                    i += 1;
                }
                out
            };
            &NAMES
        }};
    }
    match (v, e) {
        (_, Entity::Org) => names!(ORG),
        (_, Entity::Session) => names!(SESSION),
        (_, Entity::Course) => names!(COURSE),
        (_, Entity::Class) => names!(CLASS),
        (Version::V1p1, Entity::User) => names!(USER_V1P1),
        (Version::V1p2, Entity::User) => names!(USER_V1P2),
        (_, Entity::Enrollment) => names!(ENROLLMENT),
        (_, Entity::Demographics) => names!(DEMOGRAPHICS),
    }
}

/// Whether the dotted `path` (`["roles", "org", "sourcedId"]`) exists in the served shape of
/// `e` in `v`: a property, or a path into an object or a list of objects (a list is stepped
/// through: `roles.role` names the `role` of every entry), or anything under `metadata`.
/// Intermediate paths (`school`, `roles.org`) exist too.
pub fn known_path(v: Version, e: Entity, path: &[String]) -> bool {
    let Some((head, rest)) = path.split_first() else {
        return false;
    };
    if head == METADATA {
        return rest.iter().all(|p| !p.is_empty());
    }
    let mut level = shape(v, e);
    let mut name = head;
    let mut rest = rest;
    loop {
        let Some(f) = level.iter().find(|f| f.name == name) else {
            return false;
        };
        match rest.split_first() {
            None => return true,
            Some((next, more)) => {
                level = f.sub;
                name = next;
                rest = more;
            }
        }
    }
}

/// Every path [`known_path`] accepts outside `metadata`, dotted, in shape order (for
/// documentation and the tests).
pub fn all_paths(v: Version, e: Entity) -> Vec<String> {
    fn walk(prefix: &str, level: &[Field], out: &mut Vec<String>) {
        for f in level {
            let p = if prefix.is_empty() {
                f.name.to_string()
            } else {
                format!("{prefix}.{}", f.name)
            };
            walk(&p, f.sub, out);
            out.push(p);
        }
    }
    let mut out = Vec::new();
    walk("", shape(v, e), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn paths_of_each_version() {
        use Entity::*;
        let v2 = Version::V1p2;
        let v1 = Version::V1p1;
        for (v, e, path, want) in [
            (v2, User, "sourcedId", true),
            (v2, User, "roles.org.sourcedId", true),
            (v2, User, "roles.role", true),
            (v2, User, "roles.org", true),
            (v2, User, "roles", true),
            (v2, User, "role", false),
            (v2, User, "orgs.sourcedId", false),
            (v1, User, "role", true),
            (v1, User, "orgs.sourcedId", true),
            (v1, User, "roles.role", false),
            (v1, User, "preferredFirstName", false),
            (v2, User, "password", false),
            (v1, User, "password", false),
            (v2, User, "userProfiles.credentials.username", true),
            (v2, User, "userProfiles.credentials.password", false),
            (v2, Class, "school.sourcedId", true),
            (v2, Class, "school.name", false),
            (v2, Class, "terms.sourcedId", true),
            (v1, Enrollment, "class.sourcedId", true),
            (v1, Org, "children.type", true),
            (v2, Session, "parent.sourcedId", true),
            (v2, Course, "schoolYear.sourcedId", true),
            (v2, Demographics, "sex", true),
            (v2, Demographics, "metadata", true),
            (v2, Demographics, "metadata.jp.kanaName", true),
            (v1, Org, "metadata.anything.at.all", true),
            (v2, Org, "sourcedId.x", false),
            (v2, Org, "", false),
        ] {
            assert_eq!(known_path(v, e, &p(path)), want, "{v:?} {e:?} {path}");
        }
        assert!(!known_path(v2, User, &[]));
    }

    #[test]
    fn top_level_is_the_shape() {
        for v in [Version::V1p1, Version::V1p2] {
            for e in Entity::ALL {
                let names = top_level_fields(v, e);
                let shape_names: Vec<&str> = shape(v, e).iter().map(|f| f.name).collect();
                assert_eq!(names, shape_names.as_slice());
                for n in names {
                    assert!(known_path(v, e, &[n.to_string()]), "{n}");
                }
                for base in ["sourcedId", "status", "dateLastModified", "metadata"] {
                    assert!(names.contains(&base), "{v:?} {e:?} {base}");
                }
                let mut sorted = names.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), names.len(), "no name twice");
                for path in all_paths(v, e) {
                    assert!(known_path(v, e, &p(&path)), "{path}");
                }
            }
        }
    }
}
