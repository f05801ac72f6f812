//! The 1.2 discovery document: an OpenAPI 3.0 description of the rostering service as this
//! provider serves it, generated from the route table ([`crate::api::routes_table::ROUTES`])
//! and our own JSON Schemas of the payloads (`tests/data/oneroster-schema/v1p2/`, compiled in),
//! localized: `servers` is the real base and the OAuth 2 scheme's `tokenUrl` the real token
//! endpoint. 1.1 has no discovery document.

use serde_json::{json, Map, Value};

use crate::api::routes_table::{scope_uri, Route, ScopeClass, ROUTES, SCOPE_DEMOGRAPHICS};
use crate::api::routes_table::{SCOPE_ROSTER, SCOPE_ROSTER_CORE};
use crate::api::status::Version;
use crate::roster::model::Entity;

/// The file names the document is published under (below `{base}/discovery/`): the REST
/// binding's, and the conformance guide's.
pub const FILE_NAMES: [&str; 2] = [
    "onerosterv1p2rostersservice_openapi3_v1p0.json",
    "imsorv1p2_rostering_openapi3_v1p0.json",
];

/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "OAuth2CC";

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// One of the compiled-in schemas is not JSON (a build of a broken tree).
    #[error("JSON Schema {name}: {source}")]
    Schema {
        name: &'static str,
        source: serde_json::Error,
    },
}

macro_rules! schemas {
    ($($name:literal),* $(,)?) => {
        /// Our 1.2 JSON Schemas, by file stem.
        const SCHEMAS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/oneroster-schema/v1p2/",
                $name,
                ".json"
            )))),*
        ];
    };
}

schemas!(
    "AcadSessionGUIDRef",
    "AcademicSession",
    "AcademicSessionSet",
    "Class",
    "ClassGUIDRef",
    "ClassSet",
    "Course",
    "CourseGUIDRef",
    "CourseSet",
    "Credential",
    "Demographics",
    "DemographicsSet",
    "Enrollment",
    "EnrollmentSet",
    "Metadata",
    "Org",
    "OrgGUIDRef",
    "OrgSet",
    "ResourceGUIDRef",
    "Role",
    "SingleAcademicSession",
    "SingleClass",
    "SingleCourse",
    "SingleDemographics",
    "SingleEnrollment",
    "SingleOrg",
    "SingleUser",
    "User",
    "UserGUIDRef",
    "UserId",
    "UserProfile",
    "UserSet",
    "imsx_CodeMinor",
    "imsx_CodeMinorField",
    "imsx_StatusInfo",
);

/// The schema file stem of an entity (`AcademicSession` for sessions).
pub fn schema_stem(e: Entity) -> &'static str {
    match e {
        Entity::Org => "Org",
        Entity::Session => "AcademicSession",
        Entity::Course => "Course",
        Entity::Class => "Class",
        Entity::User => "User",
        Entity::Enrollment => "Enrollment",
        Entity::Demographics => "Demographics",
    }
}

/// The schema (file stem) of a route's 200 body: `UserSet` for lists, `SingleUser` for one.
pub fn body_schema(r: &Route) -> String {
    let stem = schema_stem(r.entity);
    if r.kind.is_list() {
        format!("{stem}Set")
    } else {
        format!("Single{stem}")
    }
}

/// The component name of a schema stem, as 1EdTech's document names them (`UserDType`).
fn component(stem: &str) -> String {
    format!("{stem}DType")
}

/// A JSON Schema of ours as an OpenAPI 3.0 schema object: no `$schema`/`$id`/`title` at its
/// root, and references between files turned into references between components.
fn to_openapi(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "$id" | "title"))
                .map(|(k, v)| (k, refs_to_components(v)))
                .collect(),
        ),
        other => refs_to_components(other),
    }
}

fn refs_to_components(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let stem = r.strip_suffix(".json").unwrap_or(&r);
                        let to = format!("#/components/schemas/{}", component(stem));
                        (k, Value::String(to))
                    }
                    (_, v) => (k, refs_to_components(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(refs_to_components).collect()),
        other => other,
    }
}

fn components() -> Result<Map<String, Value>, DiscoveryError> {
    let mut out = Map::new();
    for (name, text) in SCHEMAS {
        let v: Value =
            serde_json::from_str(text).map_err(|source| DiscoveryError::Schema { name, source })?;
        out.insert(component(name), to_openapi(v));
    }
    Ok(out)
}

fn scope_description(scope: &str) -> &'static str {
    match scope {
        SCOPE_ROSTER => "Read every rostering collection and object except demographics.",
        SCOPE_ROSTER_CORE => "Read the top-level rostering collections and single objects.",
        _ => "Read demographics.",
    }
}

fn query_parameters(list: bool) -> Vec<Value> {
    let fields = json!({
        "name": "fields", "in": "query", "required": false,
        "description": "The properties to return (repeated, or one comma-separated list).",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form", "explode": true,
    });
    if !list {
        return vec![fields];
    }
    vec![
        json!({
            "name": "limit", "in": "query", "required": false,
            "description": "How many records to return at most (lowered to the provider's maximum).",
            "schema": {"type": "integer", "format": "int32", "default": 100, "minimum": 1},
            "style": "form",
        }),
        json!({
            "name": "offset", "in": "query", "required": false,
            "description": "How many records of the full result to skip.",
            "schema": {"type": "integer", "format": "int32", "default": 0, "minimum": 0},
            "style": "form",
        }),
        json!({
            "name": "sort", "in": "query", "required": false,
            "description": "The property to order by (default sourcedId).",
            "schema": {"type": "string"}, "style": "form",
        }),
        json!({
            "name": "orderBy", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["asc", "desc"]}, "style": "form",
        }),
        json!({
            "name": "filter", "in": "query", "required": false,
            "description": "Predicates `field op 'value'` joined by ` AND ` / ` OR `.",
            "schema": {"type": "string"}, "style": "form",
        }),
        fields,
    ]
}

fn status_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "$ref": format!("#/components/schemas/{}", component("imsx_StatusInfo"))
        }}},
    })
}

fn operation(r: &Route) -> Value {
    let v = Version::V1p2;
    let mut parameters: Vec<Value> = r
        .path_params()
        .map(|p| {
            json!({
                "name": p, "in": "path", "required": true,
                "schema": {"type": "string"}, "style": "simple",
            })
        })
        .collect();
    parameters.extend(query_parameters(r.kind.is_list()));
    // Each scope alone suffices: one security requirement per scope (alternatives).
    let security: Vec<Value> = r
        .scope
        .any_of()
        .iter()
        .map(|s| json!({ SECURITY_SCHEME: [scope_uri(v, s)] }))
        .collect();
    let mut ok = json!({
        "description": "The request succeeded.",
        "content": {"application/json": {"schema": {
            "$ref": format!("#/components/schemas/{}", component(&body_schema(r)))
        }}},
    });
    if r.kind.is_list() {
        ok["headers"] = json!({
            "X-Total-Count": {
                "description": "How many records match, over all pages.",
                "schema": {"type": "integer"}
            },
            "Link": {
                "description": "The first, prev, next and last pages (RFC 8288).",
                "schema": {"type": "string"}
            },
        });
    }
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    responses.insert(
        "400".into(),
        status_response("A query parameter is not valid."),
    );
    responses.insert(
        "401".into(),
        status_response("No valid access token (or OAuth 1.0a signature)."),
    );
    responses.insert(
        "403".into(),
        status_response("The token lacks the operation's scope."),
    );
    if !matches!(r.kind, crate::api::routes_table::Kind::Collection) {
        let what = if r.kind.is_list() {
            "The parent object is unknown."
        } else {
            "The object is unknown."
        };
        responses.insert("404".into(), status_response(what));
    }
    responses.insert("429".into(), status_response("Too many requests."));
    responses.insert("500".into(), status_response("The provider failed."));
    responses.insert("default".into(), status_response("Any other failure."));
    json!({
        "operationId": r.op_v1p2,
        "summary": format!("The {}() operation.", r.op_v1p2),
        "tags": [r.tag],
        "parameters": parameters,
        "security": security,
        "responses": responses,
    })
}

/// The document for a provider reached at `public_url` (`https://roster.example.edu`, no
/// trailing slash needed).
pub fn document(public_url: &str) -> Result<Value, DiscoveryError> {
    let public = public_url.trim_end_matches('/');
    let v = Version::V1p2;
    let mut paths = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for r in ROUTES {
        paths.insert(r.path.to_string(), json!({ "get": operation(r) }));
        if !tags.contains(&r.tag) {
            tags.push(r.tag);
        }
    }
    let scopes: Map<String, Value> = [SCOPE_ROSTER, SCOPE_ROSTER_CORE, SCOPE_DEMOGRAPHICS]
        .iter()
        .map(|s| (scope_uri(v, s), Value::from(scope_description(s))))
        .collect();
    debug_assert!(ScopeClass::Demographics.any_of() == [SCOPE_DEMOGRAPHICS]);
    Ok(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "OneRoster 1.2 Rostering Service (rosterdrop)",
            "version": "1.2",
            "description": "The OneRoster 1.2 rostering read operations this provider serves.",
        },
        "servers": [{
            "url": format!("{public}{}", crate::api::routes_table::base_path(v)),
            "description": "This provider.",
        }],
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "oauth2",
                    "description": "OAuth 2.0 client credentials.",
                    "flows": {"clientCredentials": {
                        "tokenUrl": format!("{public}/oauth/token"),
                        "scopes": scopes,
                    }},
                }
            },
            "schemas": components()?,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 1EdTech's 1.2 document, cross-checked by hand: (component, properties, required).
    const OA12_SCHEMAS: &[(&str, &str, &str)] = &[
        ("AcadSessionGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("AcademicSessionDType", "sourcedId status dateLastModified metadata title startDate endDate type parent children schoolYear", "sourcedId status dateLastModified title startDate endDate type schoolYear"),
        ("AcademicSessionSetDType", "academicSessions", ""),
        ("ClassDType", "sourcedId status dateLastModified metadata title classCode classType location grades subjects course school terms subjectCodes periods resources", "sourcedId status dateLastModified title course school terms"),
        ("ClassGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("ClassSetDType", "classes", ""),
        ("CourseDType", "sourcedId status dateLastModified metadata title schoolYear courseCode grades subjects org subjectCodes resources", "sourcedId status dateLastModified title courseCode"),
        ("CourseGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("CourseSetDType", "courses", ""),
        ("CredentialDType", "type username password", "type username"),
        ("DemographicsDType", "sourcedId status dateLastModified metadata birthDate sex americanIndianOrAlaskaNative asian blackOrAfricanAmerican nativeHawaiianOrOtherPacificIslander white demographicRaceTwoOrMoreRaces hispanicOrLatinoEthnicity countryOfBirthCode stateOfBirthAbbreviation cityOfBirth publicSchoolResidenceStatus", "sourcedId status dateLastModified"),
        ("DemographicsSetDType", "demographics", ""),
        ("EnrollmentDType", "sourcedId status dateLastModified metadata user class school role primary beginDate endDate", "sourcedId status dateLastModified user class school role"),
        ("EnrollmentSetDType", "enrollments", ""),
        ("MetadataDType", "", ""),
        ("OrgDType", "sourcedId status dateLastModified metadata name type identifier parent children", "sourcedId status dateLastModified name type identifier"),
        ("OrgGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("OrgSetDType", "orgs", ""),
        ("ResourceGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("RoleDType", "roleType role org userProfile beginDate endDate", "roleType role org"),
        ("SingleAcademicSessionDType", "academicSession", "academicSession"),
        ("SingleClassDType", "class", "class"),
        ("SingleCourseDType", "course", "course"),
        ("SingleDemographicsDType", "demographics", "demographics"),
        ("SingleEnrollmentDType", "enrollment", "enrollment"),
        ("SingleOrgDType", "org", "org"),
        ("SingleUserDType", "user", "user"),
        ("UserDType", "sourcedId status dateLastModified metadata userMasterIdentifier username userIds enabledUser givenName familyName middleName preferredFirstName preferredMiddleName preferredLastName pronouns roles userProfiles primaryOrg identifier email sms phone agents grades password resources", "sourcedId status dateLastModified enabledUser givenName familyName roles"),
        ("UserGUIDRefDType", "href sourcedId type", "href sourcedId type"),
        ("UserIdDType", "type identifier", "type identifier"),
        ("UserProfileDType", "profileId profileType vendorId applicationId description credentials", "profileId profileType vendorId"),
        ("UserSetDType", "users", ""),
        ("imsx_CodeMinorDType", "imsx_codeMinorField", "imsx_codeMinorField"),
        ("imsx_CodeMinorFieldDType", "imsx_codeMinorFieldName imsx_codeMinorFieldValue", "imsx_codeMinorFieldName imsx_codeMinorFieldValue"),
        ("imsx_StatusInfoDType", "imsx_codeMajor imsx_severity imsx_description imsx_CodeMinor", "imsx_codeMajor imsx_severity"),
    ];
    /// (path, operationId, 200 body component, scopes, parameters).
    const OA12_OPERATIONS: &[(&str, &str, &str, &str, &str)] = &[
        (
            "/academicSessions",
            "getAllAcademicSessions",
            "AcademicSessionSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/academicSessions/{sourcedId}",
            "getAcademicSession",
            "SingleAcademicSessionDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/classes",
            "getAllClasses",
            "ClassSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/classes/{classSourcedId}/students",
            "getStudentsForClass",
            "UserSetDType",
            "roster.readonly",
            "classSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/classes/{classSourcedId}/teachers",
            "getTeachersForClass",
            "UserSetDType",
            "roster.readonly",
            "classSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/classes/{sourcedId}",
            "getClass",
            "SingleClassDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/courses",
            "getAllCourses",
            "CourseSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/courses/{courseSourcedId}/classes",
            "getClassesForCourse",
            "ClassSetDType",
            "roster.readonly",
            "courseSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/courses/{sourcedId}",
            "getCourse",
            "SingleCourseDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/demographics",
            "getAllDemographics",
            "DemographicsSetDType",
            "roster-demographics.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/demographics/{sourcedId}",
            "getDemographics",
            "SingleDemographicsDType",
            "roster-demographics.readonly",
            "sourcedId fields",
        ),
        (
            "/enrollments",
            "getAllEnrollments",
            "EnrollmentSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/enrollments/{sourcedId}",
            "getEnrollment",
            "SingleEnrollmentDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/gradingPeriods",
            "getAllGradingPeriods",
            "AcademicSessionSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/gradingPeriods/{sourcedId}",
            "getGradingPeriod",
            "SingleAcademicSessionDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/orgs",
            "getAllOrgs",
            "OrgSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/orgs/{sourcedId}",
            "getOrg",
            "SingleOrgDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/schools",
            "getAllSchools",
            "OrgSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/classes",
            "getClassesForSchool",
            "ClassSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/enrollments",
            "getEnrollmentsForClassInSchool",
            "EnrollmentSetDType",
            "roster.readonly",
            "schoolSourcedId classSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/students",
            "getStudentsForClassInSchool",
            "UserSetDType",
            "roster.readonly",
            "schoolSourcedId classSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/teachers",
            "getTeachersForClassInSchool",
            "UserSetDType",
            "roster.readonly",
            "schoolSourcedId classSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/courses",
            "getCoursesForSchool",
            "CourseSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/enrollments",
            "getEnrollmentsForSchool",
            "EnrollmentSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/students",
            "getStudentsForSchool",
            "UserSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/teachers",
            "getTeachersForSchool",
            "UserSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{schoolSourcedId}/terms",
            "getTermsForSchool",
            "AcademicSessionSetDType",
            "roster.readonly",
            "schoolSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/schools/{sourcedId}",
            "getSchool",
            "SingleOrgDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/students",
            "getAllStudents",
            "UserSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/students/{sourcedId}",
            "getStudent",
            "SingleUserDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/students/{studentSourcedId}/classes",
            "getClassesForStudent",
            "ClassSetDType",
            "roster.readonly",
            "studentSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/teachers",
            "getAllTeachers",
            "UserSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/teachers/{sourcedId}",
            "getTeacher",
            "SingleUserDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/teachers/{teacherSourcedId}/classes",
            "getClassesForTeacher",
            "ClassSetDType",
            "roster.readonly",
            "teacherSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/terms",
            "getAllTerms",
            "AcademicSessionSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/terms/{sourcedId}",
            "getTerm",
            "SingleAcademicSessionDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/terms/{termSourcedId}/classes",
            "getClassesForTerm",
            "ClassSetDType",
            "roster.readonly",
            "termSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/terms/{termSourcedId}/gradingPeriods",
            "getGradingPeriodsForTerm",
            "AcademicSessionSetDType",
            "roster.readonly",
            "termSourcedId limit offset sort orderBy filter fields",
        ),
        (
            "/users",
            "getAllUsers",
            "UserSetDType",
            "roster.readonly roster-core.readonly",
            "limit offset sort orderBy filter fields",
        ),
        (
            "/users/{sourcedId}",
            "getUser",
            "SingleUserDType",
            "roster.readonly roster-core.readonly",
            "sourcedId fields",
        ),
        (
            "/users/{userSourcedId}/classes",
            "getClassesForUser",
            "ClassSetDType",
            "roster.readonly",
            "userSourcedId limit offset sort orderBy filter fields",
        ),
    ];

    fn words(s: &str) -> BTreeSet<&str> {
        s.split_whitespace().collect()
    }

    fn keys_of(v: &Value) -> BTreeSet<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn components_have_the_binding_property_sets() {
        let doc = document("https://h.example").unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            keys_of(schemas),
            OA12_SCHEMAS.iter().map(|s| s.0).collect(),
            "the same components"
        );
        for (name, props, required) in OA12_SCHEMAS {
            let s = &schemas[*name];
            assert_eq!(keys_of(&s["properties"]), words(props), "{name}");
            let req: BTreeSet<&str> = s["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            // Ours also requires the one key of each collection envelope (always sent).
            let mut want = words(required);
            if name.ends_with("SetDType") {
                want = words(props);
            }
            assert_eq!(req, want, "{name}");
        }
        // References point at components that exist.
        let text = schemas.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let target = part.split('"').next().unwrap_or("");
            assert!(schemas.get(target).is_some(), "{target}");
        }
        assert!(!text.contains(".json"), "file references rewritten");
    }

    #[test]
    fn operations_match_the_binding() {
        let doc = document("https://h.example/").unwrap();
        let paths = &doc["paths"];
        assert_eq!(keys_of(paths).len(), OA12_OPERATIONS.len());
        for (path, op, body, scopes, params) in OA12_OPERATIONS {
            let get = &paths[*path]["get"];
            assert_eq!(get["operationId"], *op, "{path}");
            let ok = &get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(*ok, format!("#/components/schemas/{body}"), "{path}");
            // OA12 lists the scopes in one requirement; we list each as an alternative.
            let ours: BTreeSet<String> = get["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|req| req[SECURITY_SCHEME].as_array().cloned().unwrap_or_default())
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            let want: BTreeSet<String> = words(scopes)
                .into_iter()
                .map(|s| scope_uri(Version::V1p2, s))
                .collect();
            assert_eq!(ours, want, "{path}");
            let names: Vec<&str> = get["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(
                names,
                params.split_whitespace().collect::<Vec<_>>(),
                "{path}"
            );
        }
        assert_eq!(
            doc["servers"][0]["url"],
            "https://h.example/ims/oneroster/rostering/v1p2"
        );
        let flow =
            &doc["components"]["securitySchemes"][SECURITY_SCHEME]["flows"]["clientCredentials"];
        assert_eq!(flow["tokenUrl"], "https://h.example/oauth/token");
        assert_eq!(keys_of(&flow["scopes"]).len(), 3);
    }
}
