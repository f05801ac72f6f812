//! The status payloads of each version: what an error (and a 1.1 warning) looks like on the
//! wire. 1.2 puts `imsx_StatusInfo` fields at the top of the body; 1.1 consumers (Moodle's
//! client, the providers we read) expect them in a `statusInfoSet` list.

use serde_json::{json, Value};

/// The two bindings the provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1p1,
    V1p2,
}

/// The codeMinor values the provider uses (the union of both versions' enums that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Minor {
    InvalidFilterField,
    InvalidSelectionField,
    InvalidData,
    UnauthorisedRequest,
    Forbidden,
    UnknownObject,
    ServerBusy,
    InternalServerError,
}

impl Minor {
    pub fn code(self) -> &'static str {
        match self {
            Minor::InvalidFilterField => "invalid_filter_field",
            Minor::InvalidSelectionField => "invalid_selection_field",
            Minor::InvalidData => "invaliddata",
            Minor::UnauthorisedRequest => "unauthorisedrequest",
            Minor::Forbidden => "forbidden",
            Minor::UnknownObject => "unknownobject",
            Minor::ServerBusy => "server_busy",
            Minor::InternalServerError => "internal_server_error",
        }
    }

    /// The HTTP status that goes with it.
    pub fn http(self) -> u16 {
        match self {
            Minor::InvalidFilterField | Minor::InvalidSelectionField | Minor::InvalidData => 400,
            Minor::UnauthorisedRequest => 401,
            Minor::Forbidden => 403,
            Minor::UnknownObject => 404,
            Minor::ServerBusy => 429,
            Minor::InternalServerError => 500,
        }
    }
}

/// One `imsx_StatusInfo`: codeMajor `failure`, severity `error`.
fn info(minor: Minor, description: &str) -> Value {
    json!({
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [{
                "imsx_codeMinorFieldName": "TargetEndSystem",
                "imsx_codeMinorFieldValue": minor.code(),
            }]
        }
    })
}

/// The body of an error response in `version`'s shape.
pub fn error_body(version: Version, minor: Minor, description: &str) -> Value {
    match version {
        Version::V1p2 => info(minor, description),
        Version::V1p1 => {
            // 1.1's imsx_StatusInfo requires a message reference: an opaque id of the answer,
            // unique in the process (nothing from the request).
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut i = info(minor, description);
            i["imsx_messageRefIdentifier"] = json!(format!("rosterdrop-{n}"));
            json!({ "statusInfoSet": [i] })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_has_its_shape() {
        let v12 = error_body(Version::V1p2, Minor::UnknownObject, "No user `u9`.");
        assert_eq!(v12["imsx_codeMajor"], "failure");
        assert_eq!(v12["imsx_severity"], "error");
        assert_eq!(
            v12["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"],
            "unknownobject"
        );
        let v11 = error_body(Version::V1p1, Minor::InvalidFilterField, "filter: bad");
        assert_eq!(v11["statusInfoSet"][0]["imsx_description"], "filter: bad");
        assert_eq!(
            v11["statusInfoSet"][0]["imsx_CodeMinor"]["imsx_codeMinorField"][0]
                ["imsx_codeMinorFieldValue"],
            "invalid_filter_field"
        );
        assert_eq!(v11.as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn http_codes() {
        for (m, code) in [
            (Minor::InvalidFilterField, 400),
            (Minor::InvalidSelectionField, 400),
            (Minor::InvalidData, 400),
            (Minor::UnauthorisedRequest, 401),
            (Minor::Forbidden, 403),
            (Minor::UnknownObject, 404),
            (Minor::ServerBusy, 429),
            (Minor::InternalServerError, 500),
        ] {
            assert_eq!(m.http(), code, "{}", m.code());
        }
    }
}
