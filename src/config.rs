//! The configuration file (TOML): where state lives and each source's settings.
//!
//! `config/rosterdrop.toml` documents every key. Unknown top-level tables are allowed so that
//! parts of the daemon can add their own sections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::roster::bundle::Expect;
use crate::roster::engine::{DateOrder, Encoding, Filter, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("no source `{name}` in {path} (sources: {known})")]
    NoSource {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// `on`/`off` or `true`/`false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(b) => Ok(OnOff(b)),
            Raw::S(s) => match s.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" => Ok(OnOff(true)),
                "off" | "false" | "no" => Ok(OnOff(false)),
                other => Err(serde::de::Error::custom(format!(
                    "expected on or off, found `{other}`"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchConfig {
    #[serde(default = "on")]
    pub errors: OnOff,
    #[serde(default = "on")]
    pub prevent_duplicates: OnOff,
    /// Rewrite unambiguous spellings of valid values (`TRUE`, `Scheduled`) to their canonical
    /// form, reported as `fixed-field`; off: they are `invalid-value`.
    #[serde(default = "on")]
    pub normalize: OnOff,
}

fn on() -> OnOff {
    OnOff(true)
}

impl Default for PatchConfig {
    fn default() -> Self {
        PatchConfig {
            errors: on(),
            prevent_duplicates: on(),
            normalize: on(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Apple location_ids or OneRoster school org sourcedIds to keep (empty: all).
    #[serde(default, alias = "schools")]
    pub locations: Vec<String>,
    /// OneRoster academicSession sourcedIds to keep (empty: all, unless the window is set).
    #[serde(default)]
    pub terms: Vec<String>,
    /// Keep OneRoster sessions active now or starting within this many days.
    #[serde(default)]
    pub terms_active_within_days: Option<u32>,
    /// Roles to keep (empty: all).
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    #[serde(default)]
    pub max_delete_percent: Option<f64>,
    #[serde(default)]
    pub min_rows: Option<u64>,
    /// Hold a bundle whose patches (and their cascades) drop more than this share of any
    /// file's rows (default 20).
    #[serde(default)]
    pub max_patch_drop_percent: Option<f64>,
}

/// How dates are read (`[sources.X.dates]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesConfig {
    /// `mdy` or `dmy`: the day/month order of slash dates such as `1/05/2023`. Unset: dates
    /// whose order the value does not tell are never guessed.
    #[serde(default)]
    pub order: Option<String>,
}

/// One district's SIS connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Expected format: `auto` (default), `apple` or `oneroster`.
    #[serde(default)]
    pub format: Option<String>,
    /// Email addresses of the district admins who receive batch summaries.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub patch: PatchConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub dates: DatesConfig,
    /// Encoding of files without a BOM: `utf-8` (default) or `windows-1252`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Days the original uploads are kept in `archive/` (default 30).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Quick start: an SFTP account of this name is created for the source when `serve` starts
    /// with no accounts file yet; its password is printed once.
    #[serde(default)]
    pub initial_account: Option<String>,
    /// What an Apple source lacks for OneRoster (`[sources.X.apple]`): the district org and
    /// the school year its classes belong to (exports to OneRoster and the REST API).
    #[serde(default)]
    pub apple: AppleConfig,
    /// The configuration's `[limits]`, copied in by [`Config::parse`] so that a source's
    /// settings are whole.
    #[serde(skip)]
    pub limits: crate::roster::bundle::Limits,
}

/// `[sources.X.apple]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppleConfig {
    /// The district org's sourcedId (default: the source's name).
    #[serde(default)]
    pub district_id: Option<String>,
    /// The district org's name (default: the source's name).
    #[serde(default)]
    pub district_name: Option<String>,
    /// The academic session of every class (`[sources.X.apple.school_year]`).
    #[serde(default)]
    pub school_year: Option<SchoolYearConfig>,
}

/// `[sources.X.apple.school_year]`: every field required, no date guessed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchoolYearConfig {
    pub sourced_id: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`.
    pub end_date: String,
    /// The four-digit year the school year ends in (OneRoster's `schoolYear`).
    pub year: String,
}

impl AppleConfig {
    fn validate(&self, source: &str) -> Result<(), String> {
        let Some(y) = &self.school_year else {
            return Ok(());
        };
        let at = |key: &str| format!("sources.{source}.apple.school_year.{key}");
        for (key, v) in [("start_date", &y.start_date), ("end_date", &y.end_date)] {
            if crate::roster::values::parse_date(v).is_none() {
                return Err(format!("{}: `{v}` is not a date (YYYY-MM-DD)", at(key)));
            }
        }
        if y.start_date > y.end_date {
            return Err(format!(
                "{}: the school year ends ({}) before it starts ({})",
                at("end_date"),
                y.end_date,
                y.start_date
            ));
        }
        if y.year.len() != 4 || !y.year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{}: `{}` is not a four-digit year",
                at("year"),
                y.year
            ));
        }
        if y.sourced_id.trim().is_empty() || y.title.trim().is_empty() {
            return Err(format!(
                "{}: sourced_id and title must not be empty",
                at("sourced_id")
            ));
        }
        Ok(())
    }

    /// The model's settings for source `source`.
    pub fn settings(&self, source: &str) -> crate::roster::model::AppleSettings {
        crate::roster::model::AppleSettings {
            district_id: self
                .district_id
                .clone()
                .unwrap_or_else(|| source.to_string()),
            district_name: self
                .district_name
                .clone()
                .unwrap_or_else(|| source.to_string()),
            school_year: self
                .school_year
                .as_ref()
                .map(|y| crate::roster::model::SchoolYear {
                    sourced_id: y.sourced_id.clone(),
                    title: y.title.clone(),
                    start_date: y.start_date.clone(),
                    end_date: y.end_date.clone(),
                    year: y.year.clone(),
                }),
        }
    }
}

/// Default of `retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// When an upload in a drop folder counts as a whole bundle (`[intake]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Loose files wait this long without a write before they are taken.
    #[serde(default = "default_quiet")]
    pub quiet_period_secs: u64,
    /// Loose files that never make a complete bundle are taken after this long without a write,
    /// so the admins hear what is missing (0: wait for ever).
    #[serde(default = "default_incomplete")]
    pub incomplete_after_secs: u64,
    /// How often the drop folders are scanned in full, besides file system events.
    #[serde(default = "default_rescan")]
    pub rescan_secs: u64,
    /// Accept uploads but take none (maintenance); `systemctl reload` after changing it.
    #[serde(default)]
    pub paused: bool,
    /// A batch is taken only while the state directory's file system has this many MiB free
    /// (else it waits in the spool, tried again with backoff): sled cannot be trusted to come
    /// back from a write that found the disk full.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
}

fn default_quiet() -> u64 {
    30
}
fn default_incomplete() -> u64 {
    3600
}
fn default_rescan() -> u64 {
    60
}
fn default_min_free_mib() -> u64 {
    256
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            quiet_period_secs: default_quiet(),
            incomplete_after_secs: default_incomplete(),
            rescan_secs: default_rescan(),
            paused: false,
            min_free_mib: default_min_free_mib(),
        }
    }
}

/// The daemon's own settings (`[daemon]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Batches of different sources checked at the same time (default: number of CPUs).
    #[serde(default)]
    pub max_parallel_batches: Option<usize>,
}

impl SourceConfig {
    /// The pipeline settings of this source. Values were checked by [`SourceConfig::validate`]
    /// when the file was loaded; an unreadable one here falls back to its default.
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            patch_errors: self.patch.errors.0,
            prevent_duplicates: self.patch.prevent_duplicates.0,
            normalize: self.patch.normalize.0,
            date_order: self.dates.order.as_deref().and_then(DateOrder::parse),
            encoding: self
                .encoding
                .as_deref()
                .and_then(Encoding::parse)
                .unwrap_or(d.encoding),
            max_patch_drop_percent: self
                .guard
                .max_patch_drop_percent
                .unwrap_or(d.max_patch_drop_percent),
            expect: self
                .format
                .as_deref()
                .and_then(Expect::parse)
                .unwrap_or(d.expect),
            filter: Filter {
                locations: self.filter.locations.clone(),
                terms: self.filter.terms.clone(),
                terms_active_within_days: self.filter.terms_active_within_days,
                roles: self.filter.roles.clone(),
            },
            today: None,
            limits: self.limits,
        }
    }

    /// Checks the values serde cannot: enumerations given as strings and percentages.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        self.apple.validate(name)?;
        if let Some(f) = &self.format {
            if Expect::parse(f).is_none() {
                return Err(format!(
                    "sources.{name}.format is `{f}`; expected \"auto\", \"apple\" or \"oneroster\""
                ));
            }
        }
        if let Some(o) = &self.dates.order {
            if DateOrder::parse(o).is_none() {
                return Err(format!(
                    "sources.{name}.dates.order is `{o}`; expected \"mdy\" or \"dmy\""
                ));
            }
        }
        if let Some(e) = &self.encoding {
            if Encoding::parse(e).is_none() {
                return Err(format!(
                    "sources.{name}.encoding is `{e}`; expected \"utf-8\" or \"windows-1252\""
                ));
            }
        }
        for (key, v) in [
            ("max_delete_percent", self.guard.max_delete_percent),
            ("max_patch_drop_percent", self.guard.max_patch_drop_percent),
        ] {
            if let Some(v) = v {
                if !(0.0..=100.0).contains(&v) {
                    return Err(format!(
                        "sources.{name}.guard.{key} is {v}; expected a percentage from 0 to 100"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Batch emails (`[mail]`).
    #[serde(default)]
    pub mail: crate::daemon::mail::MailConfig,
    /// What one bundle may make the process read (`[limits]`), for every source.
    #[serde(default)]
    pub limits: crate::roster::bundle::Limits,
    /// The embedded SFTP server (`[sftp]`), checked at every command like the rest.
    #[serde(default)]
    pub sftp: crate::sftp::SftpConfig,
    /// The OneRoster REST provider (`[api]`).
    #[serde(default)]
    pub api: crate::api::ApiConfig,
    /// The web console for district admins (`[console]`), served beside the REST API.
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[console]`: the admins' web pages, on the REST API's listener under `path`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Where the pages are, on the API's server: starts and ends with `/`.
    #[serde(default = "default_console_path")]
    pub path: String,
    /// How long a login lasts without being used (seconds).
    #[serde(default = "default_session_secs")]
    pub session_secs: u64,
    /// Logged-in sessions kept at most (the oldest go first).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// The admin users file (relative: in `state_dir`), managed by `rosterdrop admin-user`.
    #[serde(default = "default_users_file")]
    pub users_file: PathBuf,
}

fn default_console_path() -> String {
    "/admin/".into()
}
fn default_session_secs() -> u64 {
    8 * 3600
}
fn default_max_sessions() -> usize {
    1000
}
fn default_users_file() -> PathBuf {
    PathBuf::from("admin-users.toml")
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: false,
            path: default_console_path(),
            session_secs: default_session_secs(),
            max_sessions: default_max_sessions(),
            users_file: default_users_file(),
        }
    }
}

impl ConsoleConfig {
    /// The admin users file of a state directory.
    pub fn users_path(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(&self.users_file)
    }

    fn validate(&self, api_enabled: bool) -> Result<(), String> {
        let p = &self.path;
        let plain = p
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'.'));
        if p.len() < 3 || !p.starts_with('/') || !p.ends_with('/') || p.contains("//") || !plain {
            return Err(format!(
                "console.path is `{p}`; expected a path such as \"/admin/\" (starting and ending \
                 with '/', letters, digits, '-', '_', '.')"
            ));
        }
        if p.starts_with("/ims/") || p.starts_with("/oauth/") {
            return Err(format!("console.path `{p}` is the REST API's own path"));
        }
        if self.session_secs == 0 || self.max_sessions == 0 {
            return Err("console.session_secs and console.max_sessions must be above 0".into());
        }
        if self.enabled && !api_enabled {
            return Err(
                "console.enabled needs the [api] server: set api.enabled = true (the console is \
                 served on its listener)"
                    .into(),
            );
        }
        Ok(())
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}

/// `rel` taken relative to the folder holding the file `file` (unchanged when absolute), as an
/// absolute path with `.` and `..` folded away.
pub fn resolve_beside(file: &Path, rel: &Path) -> PathBuf {
    if rel.is_absolute() {
        return rel.to_path_buf();
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let joined = std::path::absolute(base.join(rel)).unwrap_or_else(|_| base.join(rel));
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A TOML file's error as one line, `line L, column C: what` (as bad CSV is named), for every
/// TOML file rosterdrop reads (the configuration, accounts, API clients, console users). Not
/// toml's own text: it quotes the line the error is on, so a broken `password = "...` put the
/// password into the daemon's log at a failed reload, over several lines, control characters
/// raw. The message itself is escaped (it can name a key from the file).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let what = without_the_value(&what);
    let what = crate::roster::text::escape_line(&what);
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.into_owned(),
    }
}

/// serde's message without the value it found (`invalid type: integer `123456789`, expected a
/// string` -> `invalid type: integer, expected a string`; `unknown variant `x`, expected one
/// of ...` -> `unknown variant, expected one of ...`): a password typed into the wrong key is
/// not written into the log. The line and column say where the value is.
fn without_the_value(what: &str) -> String {
    let Some(cut) = what.rfind(", expected ") else {
        return what.to_owned();
    };
    let (found, expected) = what.split_at(cut);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(kind) = found.strip_prefix(prefix) {
            let kind = kind.split(['`', '"']).next().unwrap_or("").trim_end();
            return format!("{prefix}{kind}{expected}");
        }
    }
    if found.starts_with("unknown variant ") {
        return format!("unknown variant{expected}");
    }
    what.to_owned()
}

/// A TOML error that names an unknown section or key ("unknown field `mial`, expected one of
/// `state_dir`, ..., `mail`"), with "did you mean" for a known name within two edits of it.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_string();
    };
    let Some((unknown, rest)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known = rest.split('`').skip(1).step_by(2).map(|k| (k, k));
    match crate::roster::text::near_miss(unknown, known) {
        Some(known) => format!(
            "{}; did you mean `{known}`? (`{unknown}` is not a rosterdrop setting)",
            message.trim_end()
        ),
        None => message.to_string(),
    }
}

/// Where commands look for the configuration when `--config` is not given, in this order.
pub const CONFIG_ENV: &str = "ROSTERDROP_CONFIG";
pub const CONFIG_PATHS: [&str; 2] = ["config/rosterdrop.toml", "/etc/rosterdrop/rosterdrop.toml"];

/// Finds the configuration file: `given` (`--config`), else `$ROSTERDROP_CONFIG`, else
/// `./config/rosterdrop.toml`, else `/etc/rosterdrop/rosterdrop.toml`. A path that was named
/// must exist; when none does, the error lists every path tried.
pub fn find(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let named = given.map(|p| (p.to_path_buf(), "--config")).or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), CONFIG_ENV))
    });
    if let Some((p, how)) = named {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ConfigError::NotFound(format!(
                "the configuration file {} (from {how}) does not exist",
                p.display()
            )))
        };
    }
    for p in CONFIG_PATHS {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(ConfigError::NotFound(format!(
        "no configuration file found; tried ${CONFIG_ENV} (not set), ./{}, {} (give one with \
         --config FILE)",
        CONFIG_PATHS[0], CONFIG_PATHS[1]
    )))
}

impl Config {
    /// Reads the configuration file. A relative `state_dir` is taken relative to the folder
    /// that holds the file, so that every command finds the same state whatever directory it
    /// is run from.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(crate::fsutil::at(path))?;
        let mut c = Config::parse(&text, path)?;
        c.state_dir = resolve_beside(path, &c.state_dir);
        Ok(c)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: with_suggestion(&toml_error(text, &e)),
        })?;
        c.path = path.to_path_buf();
        let parse_err = |message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        c.limits.validate().map_err(parse_err)?;
        for sc in c.sources.values_mut() {
            sc.limits = c.limits;
        }
        for (name, sc) in &c.sources {
            sc.validate(name).map_err(|message| ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            })?;
        }
        c.mail.validate().map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        c.sftp.validate().map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        c.api.validate().map_err(parse_err)?;
        c.console.validate(c.api.enabled).map_err(parse_err)?;
        Ok(c)
    }

    pub fn source(&self, name: &str) -> Result<&SourceConfig, ConfigError> {
        self.sources.get(name).ok_or_else(|| ConfigError::NoSource {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.sources.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        match Config::parse(text, Path::new("r.toml")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("parsed: {text}"),
        }
    }

    #[test]
    fn a_misspelt_section_is_refused_with_a_suggestion() {
        let e = parse_err("[mial]\ntransport = \"smtp\"\n");
        assert!(e.contains("unknown field `mial`"), "{e}");
        assert!(e.contains("did you mean `mail`?"), "{e}");
        let e = parse_err("[intkae]\npaused = true\n");
        assert!(e.contains("did you mean `intake`?"), "{e}");
    }

    #[test]
    fn a_misspelt_key_in_a_known_section_is_refused_with_a_suggestion() {
        let e = parse_err("[intake]\npasued = true\n");
        assert!(e.contains("unknown field `pasued`"), "{e}");
        assert!(e.contains("did you mean `paused`?"), "{e}");
        let e = parse_err("[sftp]\nlisen = \"127.0.0.1:2222\"\n");
        assert!(e.contains("did you mean `listen`?"), "{e}");
        let e = parse_err("[sources.north]\nformt = \"apple\"\n");
        assert!(e.contains("did you mean `format`?"), "{e}");
    }

    /// `[sftp]` is checked by every command that reads the configuration, not only by `serve`.
    #[test]
    fn a_bad_sftp_value_is_refused_at_parse() {
        let e = parse_err("[sftp]\nmax_connections = 0\n");
        assert!(e.contains("r.toml"), "{e}");
        assert!(e.contains("max_connections"), "{e}");
        let ok = Config::parse("[sftp]\nlisten = \"127.0.0.1:2022\"\n", Path::new("r.toml"));
        assert_eq!(ok.map(|c| c.sftp.listen.port()).ok(), Some(2022));
    }

    /// A configuration error is one line naming the file, line and column, and does not show
    /// the line it is on: toml's own message quoted that line, so a broken `password = "...`
    /// put the SMTP password into the daemon's log at a failed reload, over several lines, with
    /// any control character in it raw (an outside probe).
    #[test]
    fn a_syntax_error_names_line_and_column_and_quotes_nothing() {
        let e = parse_err("[mail]\ntransport = \"smtp\"\npassword = \"s3cr3t\u{1b}[31m\n");
        assert!(!e.contains('\n'), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(!e.contains('\u{1b}'), "{e}");
        assert!(e.starts_with("r.toml: line 3, column "), "{e}");
        let e = parse_err("[intake]\nquiet_period_secs = \"three\"\n");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("r.toml: line 2, column 21: "), "{e}");
        // A value of the wrong type or an unknown choice is not quoted either: a password
        // typed into the wrong key would be (the re-test of the fix above).
        let e = parse_err("[mail]\nsecurity = \"s3cr3t-pass\"\n");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(
            e.contains("line 2, column 12: unknown variant, expected one of"),
            "{e}"
        );
        let e = parse_err("[mail]\npassword = 123456789\n");
        assert!(!e.contains("123456789"), "{e}");
        assert!(
            e.contains("invalid type: integer, expected a string"),
            "{e}"
        );
        let e = parse_err("[intake]\nquiet_period_secs = \"s3cr3t\"\n");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("invalid type: string, expected"), "{e}");
        // An unknown name keeps its suggestion, on the same line.
        let e = parse_err("\n[intake]\npasued = true\n");
        assert!(
            e.starts_with("r.toml: line 3, column 1: unknown field `pasued`"),
            "{e}"
        );
        assert!(e.contains("did you mean `paused`?"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_name_far_from_any_setting_gets_no_guess() {
        let e = parse_err("[telemetry]\nenabled = true\n");
        assert!(e.contains("unknown field `telemetry`"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn parses_sources_with_defaults_and_on_off() {
        let c = Config::parse(
            r#"
state_dir = "/tmp/x"
[sftp]
listen = "127.0.0.1:2222"
[sources.north]
admins = ["it@north.k12.us"]
patch.errors = "off"
filter.schools = ["LOC1"]
filter.terms_active_within_days = 30
[sources.south]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let n = c.source("north").unwrap().settings();
        assert!(!n.patch_errors && n.prevent_duplicates);
        assert_eq!(n.filter.locations, vec!["LOC1"]);
        assert_eq!(n.filter.terms_active_within_days, Some(30));
        assert!(c.source("south").unwrap().settings().patch_errors);
        assert!(c.source("east").is_err());
    }

    #[test]
    fn rejects_misspelt_keys() {
        let e = Config::parse("[sources.a]\npatch.eror = true\n", Path::new("t.toml"));
        assert!(e.is_err());
    }
}
