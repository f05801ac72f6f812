//! Validates REST API bodies against our OneRoster JSON Schemas
//! (`tests/data/oneroster-schema/{v1p1,v1p2}/*.json`, written from the specification; see
//! `docs/ARCHITECTURE.md`, "Wire shapes"). Every schema of both versions is compiled once per test
//! binary, with the others registered by their `$id` so that references between files resolve
//! without touching the file system or the network.
//!
//! Schema names are the file stems, after 1EdTech's data types: the bodies `UserSet`
//! (`{"users": […]}`), `SingleUser` (`{"user": {…}}`), `DemographicsSet`,
//! `SingleDemographics` (`{"demographics": {…}}`), …; the records `User`, `Org`,
//! `AcademicSession`, …; the status payloads `imsx_StatusInfo` (1.2's error body) and, in 1.1,
//! `StatusInfoSet` (`{"statusInfoSet": […]}`). [`validate_route`] picks the body schema of a
//! route from the route table.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonschema::{Resource, Validator};
use rosterdrop::api::discovery::body_schema;
use rosterdrop::api::routes_table::Route;
use serde_json::Value;

/// The versions' directory names.
pub const VERSIONS: [&str; 2] = ["v1p1", "v1p2"];

/// The schema files' directory.
pub fn dir(version: &str) -> std::path::PathBuf {
    super::repo()
        .join("tests/data/oneroster-schema")
        .join(version)
}

/// The schema documents of a version, by stem.
pub fn documents(version: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir(version))
        .unwrap_or_else(|e| panic!("{}: {e}", dir(version).display()));
    for entry in entries {
        let path = entry.unwrap().path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.insert(stem.to_string(), doc);
    }
    out
}

type Compiled = BTreeMap<(String, String), Validator>;

fn compiled() -> &'static Compiled {
    static ALL: OnceLock<Compiled> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = BTreeMap::new();
        for version in VERSIONS {
            let docs = documents(version);
            let resources: Vec<(String, Resource)> = docs
                .values()
                .map(|d| {
                    let id = d["$id"]
                        .as_str()
                        .expect("every schema has an $id")
                        .to_string();
                    (
                        id,
                        Resource::from_contents(d.clone()).expect("a schema resource"),
                    )
                })
                .collect();
            for (stem, doc) in &docs {
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .should_ignore_unknown_formats(false)
                    .with_resources(resources.iter().cloned())
                    .build(doc)
                    .unwrap_or_else(|e| panic!("{version}/{stem}.json: {e}"));
                out.insert((version.to_string(), stem.clone()), validator);
            }
        }
        out
    })
}

/// Whether `body` is valid against `version`'s schema `schema`; the error lists every
/// violation with where it is.
pub fn validate(version: &str, schema: &str, body: &Value) -> Result<(), String> {
    let Some(v) = compiled().get(&(version.to_string(), schema.to_string())) else {
        let known: Vec<&str> = compiled()
            .keys()
            .filter(|(v, _)| v == version)
            .map(|(_, s)| s.as_str())
            .collect();
        return Err(format!(
            "no schema {version}/{schema} (have: {})",
            known.join(", ")
        ));
    };
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("at `{}`: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{version}/{schema}: {}", errors.join("; ")))
    }
}

/// Whether `body` is a valid 200 body of `route` (its collection or single-object envelope).
pub fn validate_route(version: &str, route: &Route, body: &Value) -> Result<(), String> {
    validate(version, &body_schema(route), body)
}

/// Whether `body` is a valid error body: 1.2's `imsx_StatusInfo`, 1.1's `StatusInfoSet`.
pub fn validate_status(version: &str, body: &Value) -> Result<(), String> {
    match version {
        "v1p1" => validate(version, "StatusInfoSet", body),
        _ => validate(version, "imsx_StatusInfo", body),
    }
}

/// The schema names of a version.
pub fn names(version: &str) -> Vec<String> {
    compiled()
        .keys()
        .filter(|(v, _)| v == version)
        .map(|(_, s)| s.clone())
        .collect()
}
