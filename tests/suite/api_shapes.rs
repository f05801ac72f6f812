//! The REST provider's wire shapes: model records rendered as each version's JSON, checked
//! against our JSON Schemas (`support::api_schema`), the envelopes, the status payloads, the
//! field catalogue with the query layer, and the 1.2 discovery document against the route
//! table.

use rosterdrop::api::discovery::{self, body_schema, schema_stem, FILE_NAMES, SECURITY_SCHEME};
use rosterdrop::api::fields::{known_path, top_level_fields};
use rosterdrop::api::query::Query;
use rosterdrop::api::render::{render, write_json, Meta, RecordRef, Status};
use rosterdrop::api::routes_table::{base_path, keys, scope_uri, Kind, ROUTES};
use rosterdrop::api::status::{error_body, Minor, Version};
use rosterdrop::roster::model::*;
use serde_json::{json, Value};

use crate::support::api_schema::{self, validate, validate_route, validate_status};

const PUBLIC: &str = "https://roster.example.edu";
const MS: i64 = 1_788_264_000_123; // 2026-09-01T12:00:00.123Z

fn vname(v: Version) -> &'static str {
    match v {
        Version::V1p1 => "v1p1",
        Version::V1p2 => "v1p2",
    }
}

fn base(v: Version) -> String {
    format!("{PUBLIC}{}", base_path(v))
}

fn s(x: &str) -> String {
    x.to_string()
}

fn l(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| s(x)).collect()
}

fn md() -> Metadata {
    vec![
        (s("apple.password_policy"), s("8")),
        (s("jp.kanaGivenName"), s("ぞーい")),
        (s("plain"), s("p")),
    ]
}

/// One record of each entity with every field the model has filled in.
struct Full {
    district: Org,
    school: Org,
    year: Session,
    term: Session,
    course: Course,
    class: Class,
    student: User,
    principal: User,
    enrollment: Enrollment,
    demographics: Demographics,
}

fn full() -> Full {
    Full {
        district: Org {
            sourced_id: s("d1"),
            name: s("North District"),
            org_type: s("district"),
            identifier: s("NCES-1"),
            parent: None,
            metadata: md(),
        },
        school: Org {
            sourced_id: s("s/1 #a"),
            name: s("North High"),
            org_type: s("school"),
            identifier: s("NCES-2"),
            parent: Some(s("d1")),
            metadata: md(),
        },
        year: Session {
            sourced_id: s("y2027"),
            title: s("2026-27"),
            session_type: s("schoolYear"),
            start_date: s("2026-08-15"),
            end_date: s("2027-06-30"),
            parent: None,
            school_year: s("2027"),
            metadata: md(),
        },
        term: Session {
            sourced_id: s("t1"),
            title: s("Fall"),
            session_type: s("term"),
            start_date: s("2026-08-15"),
            end_date: s("2026-12-20"),
            parent: Some(s("y2027")),
            school_year: s("2027"),
            metadata: md(),
        },
        course: Course {
            sourced_id: s("k1"),
            title: s("Algebra I"),
            school_year: Some(s("y2027")),
            course_code: s("ALG1"),
            grades: l(&["09", "10"]),
            subjects: l(&["mathematics"]),
            subject_codes: l(&["02052"]),
            org: s("s/1 #a"),
            metadata: md(),
        },
        class: Class {
            sourced_id: s("c1"),
            title: s("Algebra I - P1"),
            class_code: s("ALG1-1"),
            class_type: s("scheduled"),
            location: s("Room 101"),
            grades: l(&["09"]),
            subjects: l(&["mathematics"]),
            subject_codes: l(&["02052"]),
            periods: l(&["1", "2"]),
            course: s("k1"),
            school: s("s/1 #a"),
            terms: l(&["t1", "y2027"]),
            metadata: md(),
        },
        student: User {
            sourced_id: s("u1").into(),
            enabled_user: s("true").into(),
            username: s("zoe").into(),
            user_ids: vec![UserId {
                id_type: s("LDAP"),
                identifier: s("z-1"),
            }],
            given_name: s("Zoë").into(),
            family_name: s("O'Brien").into(),
            middle_name: s("Maria").into(),
            roles: vec![
                Role {
                    role_type: s("primary").into(),
                    role: s("student").into(),
                    org: s("s/1 #a").into(),
                    user_profile: Some(s("prof 1")),
                    begin_date: s("2026-08-15").into(),
                    end_date: s("2027-06-30").into(),
                },
                Role {
                    role_type: s("secondary").into(),
                    role: s("student").into(),
                    org: s("s2").into(),
                    user_profile: None,
                    begin_date: s("").into(),
                    end_date: s("").into(),
                },
            ],
            primary_org: Some(s("s/1 #a")),
            user_master_identifier: s("m-1").into(),
            preferred_first_name: s("Zo").into(),
            preferred_middle_name: s("Mia").into(),
            preferred_last_name: s("OB").into(),
            pronouns: s("she/her").into(),
            identifier: s("1001").into(),
            email: s("zoe@north.example").into(),
            sms: s("+15550100").into(),
            phone: s("+15550101").into(),
            agents: l(&["g1"]),
            grades: l(&["09"]),
            password: s("hunter2").into(),
            profiles: vec![UserProfile {
                sourced_id: s("prof 1"),
                profile_type: s("app"),
                vendor_id: s("v-1"),
                application_id: s("a-1"),
                description: s("Math app"),
                credentials: vec![Credential {
                    credential_type: s("username"),
                    username: s("zoe.math"),
                    password: s("credential-secret"),
                }],
            }],
            metadata: md(),
        },
        principal: User {
            sourced_id: s("u2").into(),
            enabled_user: s("false").into(),
            username: s("pat").into(),
            given_name: s("Pat").into(),
            family_name: s("Lee").into(),
            roles: vec![Role {
                role_type: s("primary").into(),
                role: s("principal").into(),
                org: s("s/1 #a").into(),
                ..Role::default()
            }],
            ..User::default()
        },
        enrollment: Enrollment {
            sourced_id: "e1".into(),
            user: "u1".into(),
            class: "c1".into(),
            school: "s/1 #a".into(),
            role: "student".into(),
            primary: "true".into(),
            begin_date: "2026-08-15".into(),
            end_date: "2026-12-20".into(),
            metadata: md(),
        },
        demographics: Demographics {
            sourced_id: s("u1"),
            birth_date: s("2011-03-04"),
            sex: s("female"),
            american_indian_or_alaska_native: s("false"),
            asian: s("false"),
            black_or_african_american: s("false"),
            native_hawaiian_or_other_pacific_islander: s("false"),
            white: s("true"),
            demographic_race_two_or_more_races: s("false"),
            hispanic_or_latino_ethnicity: s("true"),
            country_of_birth_code: s("US"),
            state_of_birth_abbreviation: s("NY"),
            city_of_birth: s("Albany"),
            public_school_residence_status: s("01652"),
            metadata: md(),
        },
    }
}

impl Full {
    fn records(&self) -> Vec<RecordRef<'_>> {
        vec![
            RecordRef::Org(&self.district),
            RecordRef::Org(&self.school),
            RecordRef::Session(&self.year),
            RecordRef::Session(&self.term),
            RecordRef::Course(&self.course),
            RecordRef::Class(&self.class),
            RecordRef::User(&self.student),
            RecordRef::User(&self.principal),
            RecordRef::Enrollment(&self.enrollment),
            RecordRef::Demographics(&self.demographics),
        ]
    }
}

/// Children as the served layer computes them (`parent` of the others).
fn children_of(id: &str, f: &Full) -> Vec<String> {
    let orgs = [&f.district, &f.school];
    let sessions = [&f.year, &f.term];
    let mut out: Vec<String> = orgs
        .iter()
        .filter(|o| o.parent.as_deref() == Some(id))
        .map(|o| o.sourced_id.clone())
        .collect();
    out.extend(
        sessions
            .iter()
            .filter(|x| x.parent.as_deref() == Some(id))
            .map(|x| x.sourced_id.clone()),
    );
    out
}

fn render_all(v: Version, f: &Full) -> Vec<(Entity, Value)> {
    let b = base(v);
    f.records()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let kids = children_of(r.sourced_id(), f);
            let status = if i % 2 == 0 {
                Status::Active
            } else {
                Status::ToBeDeleted
            };
            let m = Meta::new(status, MS, &b).with_children(&kids);
            (r.entity(), render(v, r, &m))
        })
        .collect()
}

fn no_nulls_or_json_booleans(v: &Value, at: &str) {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => panic!("{at}: {v}"),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| no_nulls_or_json_booleans(x, &format!("{at}[{i}]"))),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| no_nulls_or_json_booleans(x, &format!("{at}.{k}"))),
        Value::String(_) => {}
    }
}

fn ok(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn full_records_are_valid_in_both_versions() {
    let f = full();
    for v in [Version::V1p1, Version::V1p2] {
        for (e, value) in render_all(v, &f) {
            let (many, one) = keys(e);
            no_nulls_or_json_booleans(&value, &format!("{v:?} {e:?}"));
            ok(validate(vname(v), schema_stem(e), &value));
            ok(validate(
                vname(v),
                &format!("{}Set", schema_stem(e)),
                &json!({ many: [value.clone(), value.clone()] }),
            ));
            ok(validate(
                vname(v),
                &format!("Single{}", schema_stem(e)),
                &json!({ one: value.clone() }),
            ));
            // Every route that serves the entity accepts the record in its envelope.
            for r in ROUTES.iter().filter(|r| r.entity == e) {
                let body = if r.kind.is_list() {
                    json!({ r.key: [value.clone()] })
                } else {
                    json!({ r.key: value.clone() })
                };
                ok(validate_route(vname(v), r, &body));
            }
            let text = value.to_string();
            assert!(!text.contains("hunter2") && !text.contains("credential-secret"));
            // Everything but `metadata` is in the shape the catalogue lists, and nothing more.
            for k in value.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(
                    top_level_fields(v, e).contains(&k.as_str()),
                    "{v:?} {e:?} {k}"
                );
            }
        }
    }
}

#[test]
fn what_each_version_says_differently() {
    let f = full();
    let b1 = base(Version::V1p1);
    let b2 = base(Version::V1p2);
    let m1 = Meta::new(Status::Active, MS, &b1);
    let m2 = Meta::new(Status::Active, MS, &b2);
    let u1 = render(Version::V1p1, RecordRef::User(&f.student), &m1);
    let u2 = render(Version::V1p2, RecordRef::User(&f.student), &m2);
    assert_eq!(u1["role"], "student");
    assert_eq!(u1["orgs"][0]["href"], format!("{b1}/orgs/s%2F1%20%23a"));
    assert_eq!(u1["orgs"][1]["sourcedId"], "s2");
    assert_eq!(
        u2["roles"][0]["org"]["href"],
        format!("{b2}/orgs/s%2F1%20%23a")
    );
    assert_eq!(u2["primaryOrg"]["type"], "org");
    assert_eq!(
        u2["userProfiles"][0]["profileId"],
        format!("{b2}/users/u1#userProfile-prof%201")
    );
    assert_eq!(
        u2["roles"][0]["userProfile"],
        u2["userProfiles"][0]["profileId"]
    );
    assert_eq!(
        u2["metadata"],
        json!({"apple": {"password_policy": "8"}, "jp": {"kanaGivenName": "ぞーい"}, "plain": "p"})
    );
    assert_eq!(u1["dateLastModified"], "2026-09-01T12:00:00.123Z");
    let p1 = render(Version::V1p1, RecordRef::User(&f.principal), &m1);
    assert_eq!(p1["role"], "administrator", "1.2's principal, said in 1.1");
    assert_eq!(p1["enabledUser"], "false");
    let p2 = render(Version::V1p2, RecordRef::User(&f.principal), &m2);
    assert_eq!(p2["roles"][0]["role"], "principal");
    let c2 = render(Version::V1p2, RecordRef::Class(&f.class), &m2);
    assert_eq!(
        c2["terms"][1],
        json!({"href": format!("{b2}/academicSessions/y2027"), "sourcedId": "y2027", "type": "academicSession"})
    );
    assert_eq!(c2["periods"], json!(["1", "2"]));
    let d = Demographics {
        sex: s("other"),
        ..f.demographics.clone()
    };
    assert!(render(Version::V1p1, RecordRef::Demographics(&d), &m1)
        .get("sex")
        .is_none());
    assert_eq!(
        render(Version::V1p2, RecordRef::Demographics(&d), &m2)["sex"],
        "other"
    );
}

/// Records that hold only what the binding requires render to exactly the required
/// properties, and are valid.
#[test]
fn records_with_only_required_fields() {
    let org = Org {
        sourced_id: s("o1"),
        name: s("O"),
        org_type: s("school"),
        ..Org::default()
    };
    let session = Session {
        sourced_id: s("t1"),
        title: s("T"),
        session_type: s("term"),
        start_date: s("2026-09-01"),
        end_date: s("2026-12-31"),
        school_year: s("2027"),
        ..Session::default()
    };
    let course = Course {
        sourced_id: s("k1"),
        title: s("K"),
        ..Course::default()
    };
    let class = Class {
        sourced_id: s("c1"),
        title: s("C"),
        course: s("k1"),
        school: s("o1"),
        terms: l(&["t1"]),
        ..Class::default()
    };
    let user = User {
        sourced_id: s("u1").into(),
        enabled_user: s("true").into(),
        username: s("u").into(),
        given_name: s("G").into(),
        family_name: s("F").into(),
        roles: vec![Role {
            role_type: s("primary").into(),
            role: s("teacher").into(),
            org: s("o1").into(),
            ..Role::default()
        }],
        ..User::default()
    };
    let enrollment = Enrollment {
        sourced_id: "e1".into(),
        user: "u1".into(),
        class: "c1".into(),
        school: "o1".into(),
        role: "teacher".into(),
        ..Enrollment::default()
    };
    let demographics = Demographics {
        sourced_id: s("u1"),
        ..Demographics::default()
    };
    let records = [
        RecordRef::Org(&org),
        RecordRef::Session(&session),
        RecordRef::Course(&course),
        RecordRef::Class(&class),
        RecordRef::User(&user),
        RecordRef::Enrollment(&enrollment),
        RecordRef::Demographics(&demographics),
    ];
    for v in [Version::V1p1, Version::V1p2] {
        let docs = api_schema::documents(vname(v));
        let b = base(v);
        let m = Meta::new(Status::Active, MS, &b);
        for r in records {
            let e = r.entity();
            let value = render(v, r, &m);
            ok(validate(vname(v), schema_stem(e), &value));
            let mut have: Vec<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut required: Vec<&str> = docs[schema_stem(e)]["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            // 1.1's class has optional `course` and `terms`, 1.1's user an optional
            // `enabledUser` and 1.2's an optional `username`: the test records carry them, so
            // that one record serves both versions.
            match (v, e) {
                (Version::V1p1, Entity::Class) => required.extend(["course", "terms"]),
                (Version::V1p1, Entity::User) => required.push("enabledUser"),
                (Version::V1p2, Entity::User) => required.push("username"),
                _ => {}
            }
            have.sort_unstable();
            required.sort_unstable();
            assert_eq!(have, required, "{v:?} {e:?}");
        }
    }
}

/// The schemas refuse what the decisions rule out, so that a passing test means something.
#[test]
fn the_schemas_bite() {
    let f = full();
    let b = base(Version::V1p2);
    let m = Meta::new(Status::Active, MS, &b);
    let user = render(Version::V1p2, RecordRef::User(&f.student), &m);
    let bad = |v: &str, schema: &str, mutate: &dyn Fn(&mut Value)| {
        let mut x = user.clone();
        mutate(&mut x);
        assert!(validate(v, schema, &x).is_err(), "{schema} accepted {x}");
    };
    bad("v1p2", "User", &|u| u["enabledUser"] = json!(true));
    bad("v1p2", "User", &|u| u["middleName"] = Value::Null);
    bad("v1p2", "User", &|u| u["password"] = json!(1));
    bad("v1p2", "User", &|u| u["nickname"] = json!("x"));
    bad("v1p2", "User", &|u| u["roles"] = json!([]));
    bad("v1p2", "User", &|u| {
        u["dateLastModified"] = json!("2026-09-01T12:00:00Z")
    });
    bad("v1p2", "User", &|u| u["status"] = json!("inactive"));
    bad("v1p2", "User", &|u| {
        u["roles"][0]["org"]["type"] = json!("school")
    });
    bad("v1p2", "User", &|u| {
        u["roles"][0]["role"] = json!("administrator")
    });
    bad("v1p2", "User", &|u| {
        u["roles"][0]["beginDate"] = json!("2026-02-30")
    });
    bad("v1p2", "User", &|u| {
        u["primaryOrg"]["href"] = json!("not a uri")
    });
    bad("v1p2", "User", &|u| {
        u.as_object_mut().unwrap().remove("givenName");
    });
    bad("v1p2", "UserSet", &|u| {
        *u = json!({"users": [u.clone()], "imsx_statusInfo": {}})
    });
    bad("v1p2", "UserSet", &|u| *u = json!({"user": [u.clone()]}));
    bad("v1p2", "SingleUser", &|u| *u = json!({"user": [u.clone()]}));
    bad("v1p2", "SingleDemographics", &|_| {});
    let u1 = render(
        Version::V1p1,
        RecordRef::User(&f.student),
        &Meta::new(Status::Active, MS, &b),
    );
    ok(validate("v1p1", "User", &u1));
    assert!(
        validate("v1p1", "User", &user).is_err(),
        "a 1.2 user is not a 1.1 user"
    );
    assert!(
        validate("v1p2", "User", &u1).is_err(),
        "nor the other way round"
    );
    let mut no_orgs = u1.clone();
    no_orgs["orgs"] = json!([]);
    assert!(validate("v1p1", "User", &no_orgs).is_err());
    assert!(validate("v1p2", "NoSuchSchema", &user)
        .unwrap_err()
        .contains("UserSet"));
}

#[test]
fn every_envelope() {
    for v in api_schema::VERSIONS {
        for e in Entity::ALL {
            let (many, one) = keys(e);
            let stem = schema_stem(e);
            ok(validate(v, &format!("{stem}Set"), &json!({ many: [] })));
            assert!(validate(v, &format!("{stem}Set"), &json!({})).is_err());
            assert!(validate(v, &format!("{stem}Set"), &json!({ many: {} })).is_err());
            assert!(validate(v, &format!("Single{stem}"), &json!({ one: [] })).is_err());
            assert!(validate(v, &format!("{stem}Set"), &json!({ many: [], "extra": 1 })).is_err());
            let warning = json!([{
                "imsx_codeMajor": "success", "imsx_severity": "warning",
                "imsx_messageRefIdentifier": "req-1",
                "imsx_description": "fields: no field `nickname`",
                "imsx_CodeMinor": {"imsx_codeMinorField": [{
                    "imsx_codeMinorFieldName": "TargetEndSystem",
                    "imsx_codeMinorFieldValue": "invalid_selection_field"}]}
            }]);
            let with_warning = validate(
                v,
                &format!("{stem}Set"),
                &json!({ many: [], "statusInfoSet": warning }),
            );
            assert_eq!(
                with_warning.is_ok(),
                v == "v1p1",
                "{v}: 1.1 warnings ride along on a 200"
            );
        }
        // The names: 7 entities, their sets and singles, the references and parts.
        let names = api_schema::names(v);
        assert!(names.len() >= 33, "{v}: {names:?}");
    }
    // Each route names the body schema of its kind.
    for r in ROUTES {
        let want = match r.kind {
            Kind::One => format!("Single{}", schema_stem(r.entity)),
            Kind::Collection | Kind::Nested => format!("{}Set", schema_stem(r.entity)),
        };
        assert_eq!(body_schema(r), want, "{}", r.path);
    }
}

#[test]
fn status_payloads() {
    for minor in [
        Minor::InvalidFilterField,
        Minor::InvalidSelectionField,
        Minor::InvalidData,
        Minor::UnauthorisedRequest,
        Minor::Forbidden,
        Minor::UnknownObject,
        Minor::ServerBusy,
        Minor::InternalServerError,
    ] {
        ok(validate_status(
            "v1p2",
            &error_body(Version::V1p2, minor, "what went wrong"),
        ));
        // 1.1's imsx_StatusInfo requires imsx_messageRefIdentifier, which `error_body` gives.
        let b = error_body(Version::V1p1, minor, "what went wrong");
        ok(validate_status("v1p1", &b));
    }
    let mut wrong = error_body(Version::V1p2, Minor::UnknownObject, "x");
    wrong["imsx_codeMajor"] = json!("bad");
    assert!(validate_status("v1p2", &wrong).is_err());
    let v11_shape = error_body(Version::V1p1, Minor::UnknownObject, "x");
    assert!(
        validate_status("v1p2", &v11_shape).is_err(),
        "1.2 errors are not wrapped"
    );
}

#[test]
fn the_catalogue_drives_the_query_layer() {
    let f = full();
    for v in [Version::V1p1, Version::V1p2] {
        let b = base(v);
        let m = Meta::new(Status::Active, MS, &b);
        let user = render(v, RecordRef::User(&f.student), &m);
        let class = render(v, RecordRef::Class(&f.class), &m);
        let known_user = |p: &[String]| known_path(v, Entity::User, p);
        let known_class = |p: &[String]| known_path(v, Entity::Class, p);
        let org_path = match v {
            Version::V1p1 => "orgs.sourcedId",
            Version::V1p2 => "roles.org.sourcedId",
        };
        let q = |known: &dyn Fn(&[String]) -> bool, filter: &str| {
            let qs = format!(
                "filter={}",
                filter
                    .replace(' ', "%20")
                    .replace('\'', "%27")
                    .replace('=', "%3D")
            );
            Query::parse(&qs, 10_000, known)
                .unwrap_or_else(|e| panic!("{v:?} {filter}: {e}"))
                .filter
                .unwrap()
        };
        assert!(q(&known_user, &format!("{org_path}='s2'")).matches(&user));
        assert!(!q(&known_user, &format!("{org_path}='s3'")).matches(&user));
        assert!(q(&known_user, "dateLastModified>'2026-09-01T12:00:00.122Z'").matches(&user));
        assert!(!q(&known_user, "dateLastModified>'2026-09-01T12:00:00.123Z'").matches(&user));
        assert!(q(&known_user, "enabledUser='true' AND email~'NORTH'").matches(&user));
        assert!(q(&known_user, "metadata.jp.kanaGivenName='ぞーい'").matches(&user));
        assert!(q(&known_class, "school.sourcedId='s/1 #a'").matches(&class));
        assert!(q(&known_class, "terms.sourcedId='y2027'").matches(&class));
        // What one version has and the other does not is refused.
        let other = match v {
            Version::V1p1 => "roles.role='student'",
            Version::V1p2 => "role='student'",
        };
        let qs = format!("filter={}", other.replace('\'', "%27").replace('=', "%3D"));
        assert!(
            Query::parse(&qs, 10_000, known_user).is_err(),
            "{v:?} {other}"
        );
        assert!(Query::parse("fields=sourcedId,password", 10_000, known_user).is_err());
        assert!(Query::parse(
            "sort=familyName&fields=givenName,metadata",
            10_000,
            known_user
        )
        .is_ok());
    }
}

#[test]
fn streamed_bytes_are_the_rendered_value() {
    let f = full();
    for v in [Version::V1p1, Version::V1p2] {
        let b = base(v);
        let m = Meta::new(Status::Active, MS, &b);
        for r in f.records() {
            let mut out = Vec::new();
            write_json(&mut out, v, r, &m, None).unwrap();
            let back: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, render(v, r, &m));
            let fields = vec![s("sourcedId"), s("dateLastModified")];
            let mut out = Vec::new();
            write_json(&mut out, v, r, &m, Some(&fields)).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    "{{\"sourcedId\":{},\"dateLastModified\":\"2026-09-01T12:00:00.123Z\"}}",
                    json!(r.sourced_id())
                )
            );
        }
    }
}

#[test]
fn discovery_document_follows_the_route_table() {
    let doc = discovery::document(&format!("{PUBLIC}/")).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(
        doc["servers"][0]["url"],
        format!("{PUBLIC}/ims/oneroster/rostering/v1p2")
    );
    let scheme = &doc["components"]["securitySchemes"][SECURITY_SCHEME];
    assert_eq!(scheme["type"], "oauth2");
    let flow = &scheme["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], format!("{PUBLIC}/oauth/token"));
    let scopes: Vec<&str> = flow["scopes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        scopes,
        [
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-demographics.readonly",
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly",
        ]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 41);
    assert_eq!(ROUTES.len(), 41);
    for r in ROUTES {
        let item = paths.get(r.path).unwrap_or_else(|| panic!("{}", r.path));
        assert_eq!(
            item.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["get"]
        );
        let get = &item["get"];
        assert_eq!(get["operationId"], r.op_v1p2);
        let params: Vec<(&str, &str)> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
            .collect();
        let path_params: Vec<&str> = params
            .iter()
            .filter(|p| p.1 == "path")
            .map(|p| p.0)
            .collect();
        assert_eq!(
            path_params,
            r.path_params().collect::<Vec<_>>(),
            "{}",
            r.path
        );
        let query: Vec<&str> = params
            .iter()
            .filter(|p| p.1 == "query")
            .map(|p| p.0)
            .collect();
        let want: &[&str] = if r.kind.is_list() {
            &["limit", "offset", "sort", "orderBy", "filter", "fields"]
        } else {
            &["fields"]
        };
        assert_eq!(query, want, "{}", r.path);
        let scopes: Vec<String> = get["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|req| req[SECURITY_SCHEME].as_array().unwrap().clone())
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = r
            .scope
            .any_of()
            .iter()
            .map(|s| scope_uri(Version::V1p2, s))
            .collect();
        assert_eq!(scopes, want, "{}", r.path);
        let ok_schema = &get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(
            *ok_schema,
            format!("#/components/schemas/{}DType", body_schema(r))
        );
        assert_eq!(
            get["responses"]["200"]["headers"]
                .get("X-Total-Count")
                .is_some(),
            r.kind.is_list()
        );
        assert_eq!(
            get["responses"].get("404").is_some(),
            r.kind != Kind::Collection,
            "{}",
            r.path
        );
    }
    assert_eq!(FILE_NAMES.len(), 2);
}

/// The discovery document's own schemas accept what we serve: compile its components as a
/// JSON Schema (they are OpenAPI 3.0 schemas, a JSON Schema subset) and validate rendered
/// bodies of every route against the 200 schema it names.
#[test]
fn discovery_components_accept_rendered_bodies() {
    let doc = discovery::document(PUBLIC).unwrap();
    let f = full();
    let rendered = render_all(Version::V1p2, &f);
    for r in ROUTES {
        let schema_ref = doc["paths"][r.path]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let schema = json!({"$ref": schema_ref, "components": doc["components"].clone()});
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{}: {e}", r.path));
        for (e, value) in rendered.iter().filter(|(e, _)| *e == r.entity) {
            let body = if r.kind.is_list() {
                json!({ r.key: [value] })
            } else {
                json!({ r.key: value })
            };
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|x| x.to_string())
                .collect();
            assert!(errors.is_empty(), "{} {e:?}: {errors:?}", r.path);
        }
        assert!(!validator.is_valid(&json!({ r.key: 7 })));
    }
}

/// How fast a full pull renders: 1,000,000 enrollments (and 400,000 1.2 users) to bytes.
/// `cargo test --release --test suite api_shapes::render_speed -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; run in release mode"]
fn render_speed() {
    use std::time::Instant;
    let b = base(Version::V1p2);
    let m = Meta::new(Status::Active, MS, &b);
    let enrollments: Vec<Enrollment> = (0..1_000_000)
        .map(|i| Enrollment {
            sourced_id: format!("enr-{i:07}").into(),
            user: format!("usr-{:07}", i % 400_000).into(),
            class: format!("cls-{:06}", i % 40_000).into(),
            school: format!("sch-{:03}", i % 50).into(),
            role: s("student").into(),
            primary: s(if i % 10 == 0 { "true" } else { "" }).into(),
            begin_date: s("2026-08-15").into(),
            end_date: s("2027-06-30").into(),
            metadata: Vec::new(),
        })
        .collect();
    let users: Vec<User> = (0..400_000)
        .map(|i| User {
            sourced_id: format!("usr-{i:07}").into(),
            enabled_user: s("true").into(),
            username: format!("user{i}").into(),
            given_name: s("Given").into(),
            family_name: format!("Family{i}").into(),
            roles: vec![Role {
                role_type: s("primary").into(),
                role: s("student").into(),
                org: format!("sch-{:03}", i % 50).into(),
                ..Role::default()
            }],
            primary_org: Some(format!("sch-{:03}", i % 50)),
            identifier: format!("{i}").into(),
            email: format!("user{i}@north.example").into(),
            grades: l(&["09"]),
            ..User::default()
        })
        .collect();
    // As a streaming response writes: into a reused 64 KiB buffer, handed on (here: counted)
    // whenever it fills.
    let time = |name: &str, n: usize, each: &mut dyn FnMut(usize, &mut Vec<u8>)| {
        let mut buf = Vec::with_capacity(128 * 1024);
        let mut total = 0usize;
        let t = Instant::now();
        for i in 0..n {
            each(i, &mut buf);
            buf.push(b',');
            if buf.len() >= 64 * 1024 {
                total += buf.len();
                buf.clear();
            }
        }
        total += buf.len();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name}: {n} in {secs:.3} s = {:.0} records/s, {:.0} MB/s ({total} bytes)",
            n as f64 / secs,
            total as f64 / secs / 1e6,
        );
    };
    time("enrollments", enrollments.len(), &mut |i, out| {
        let e = RecordRef::Enrollment(&enrollments[i]);
        write_json(out, Version::V1p2, e, &m, None).unwrap();
    });
    time("users", users.len(), &mut |i, out| {
        let u = RecordRef::User(&users[i]);
        write_json(out, Version::V1p2, u, &m, None).unwrap();
    });
    // A filtered pull: each record rendered to a `Value`, tested, and the matches written.
    let known = |p: &[String]| known_path(Version::V1p2, Entity::Enrollment, p);
    let filter = Query::parse("filter=school.sourcedId%3D%27sch-007%27", 10_000, known)
        .unwrap()
        .filter
        .unwrap();
    time(
        "enrollments through Value + filter",
        enrollments.len(),
        &mut |i, out| {
            let e = RecordRef::Enrollment(&enrollments[i]);
            let value = render(Version::V1p2, e, &m);
            if filter.matches(&value) {
                serde_json::to_writer(out, &value).unwrap();
            }
        },
    );
}

/// Records of real and messy bundles, not hand-made ones: the samples (with their errors and
/// untidiness patched), Ed-Fi's public OneRoster 1.0 and 1.1 samples, and the 1.1 sample
/// exported as 1.2, each ingested into a real store and read back as the REST provider reads
/// it. Every record, in both versions, must be valid against the version's schema.
#[test]
fn records_of_real_bundles_are_valid_in_both_versions() {
    use rosterdrop::config::SourceConfig;
    use rosterdrop::roster::schema::Format;
    use rosterdrop::store::Store;
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("db")).unwrap();
    let mut sc = SourceConfig::default();
    sc.guard.max_patch_drop_percent = Some(100.0);
    let apple = AppleSettings {
        district_id: "maple".into(),
        district_name: "Maple Valley".into(),
        school_year: Some(SchoolYear {
            sourced_id: "2026-2027".into(),
            title: "2026-2027 School Year".into(),
            start_date: "2026-08-17".into(),
            end_date: "2027-06-11".into(),
            year: "2027".into(),
        }),
    };
    let repo = crate::support::repo();
    let mut bundles: Vec<(String, std::path::PathBuf)> = [
        "apple",
        "apple-with-errors",
        "oneroster",
        "oneroster-untidy",
        "oneroster-with-errors",
    ]
    .iter()
    .map(|n| (n.to_string(), crate::support::sample(n)))
    .collect();
    for v in ["1.0", "1.1"] {
        let p = repo.join("tests/data/edfi-oneroster").join(v);
        bundles.push((format!("edfi-{v}"), p));
    }
    let ingest = |source: &str, path: &std::path::Path| {
        let done = rosterdrop::ingest::ingest(&store, &t.path().join("r"), source, &sc, path, "t")
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(
            matches!(done.batch.state, rosterdrop::store::BatchState::Applied),
            "{source}: {:?}",
            done.batch.state
        );
    };
    for (source, path) in &bundles {
        ingest(source, path);
    }
    let v12 = t.path().join("oneroster-as-1.2");
    store
        .export_as("oneroster", Format::OneRoster12, &apple, &v12)
        .unwrap();
    ingest("as-1.2", &v12);
    bundles.push(("as-1.2".into(), v12));
    let mut seen = 0;
    for (source, _) in &bundles {
        let r = store.roster(source, &apple).unwrap();
        let records: Vec<RecordRef> = RecordRef::all(&r).collect();
        assert!(records.len() > 10, "{source}: {} records", records.len());
        for v in [Version::V1p1, Version::V1p2] {
            let b = base(v);
            let m = Meta::new(Status::Active, MS, &b);
            for rec in &records {
                let value = render(v, *rec, &m);
                let e = rec.entity();
                no_nulls_or_json_booleans(&value, &format!("{source} {v:?} {e:?}"));
                if let Err(err) = validate(vname(v), schema_stem(e), &value) {
                    panic!(
                        "{source} {v:?} {e:?} {}: {err}\n{value:#}",
                        rec.sourced_id()
                    );
                }
                seen += 1;
            }
        }
    }
    assert!(seen > 500, "{seen}");
}
