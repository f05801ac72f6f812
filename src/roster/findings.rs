//! What the engine finds: the rule codes, actions and rows of the patch summary (the
//! contract of DESIGN.md), shared by every stage of the roster engine and by the store.

/// Rule codes of the patch summary (**contract**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    UnknownInstructor,
    UnknownClass,
    UnknownStudent,
    UnknownUser,
    UnknownReference,
    DuplicateId,
    DuplicateAccount,
    InvalidValue,
    Filtered,
    /// An unambiguous spelling of a valid value, rewritten to its canonical form.
    Normalized,
    /// A row whose field count cannot be reconciled with the header.
    MalformedRow,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::UnknownInstructor,
        Rule::UnknownClass,
        Rule::UnknownStudent,
        Rule::UnknownUser,
        Rule::UnknownReference,
        Rule::DuplicateId,
        Rule::DuplicateAccount,
        Rule::InvalidValue,
        Rule::Filtered,
        Rule::Normalized,
        Rule::MalformedRow,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Rule::UnknownInstructor => "unknown-instructor",
            Rule::UnknownClass => "unknown-class",
            Rule::UnknownStudent => "unknown-student",
            Rule::UnknownUser => "unknown-user",
            Rule::UnknownReference => "unknown-reference",
            Rule::DuplicateId => "duplicate-id",
            Rule::DuplicateAccount => "duplicate-account",
            Rule::InvalidValue => "invalid-value",
            Rule::Filtered => "filtered",
            Rule::Normalized => "normalized",
            Rule::MalformedRow => "malformed-row",
        }
    }
    pub fn from_code(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.code() == s)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    DroppedRow,
    ClearedField,
    /// A value rewritten to its one canonical reading; `value` holds `before -> after`.
    FixedField,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::DroppedRow => "dropped-row",
            Action::ClearedField => "cleared-field",
            Action::FixedField => "fixed-field",
        }
    }
}

/// One row of `patch-summary.csv`: one patched row or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: u32,
    pub id: String,
    pub rule: Rule,
    pub action: Action,
    pub field: String,
    pub value: String,
    pub detail: String,
}

pub const PATCH_SUMMARY_HEADER: [&str; 8] = [
    "file", "line", "id", "rule", "action", "field", "value", "detail",
];
