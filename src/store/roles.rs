//! OneRoster 1.2's rule that every user has a role, kept by the cascade.
//!
//! A 1.2 user's roles are its roles.csv rows, or for a user without any, its enrollments at a
//! school (`model::read`). The engine drops a user left without either when roles.csv and
//! enrollments.csv are both bulk (`engine::integrity::users_keep_a_role`); what a batch does
//! to the stored roster beyond the upload (the cascade's drops, a delta's deletions of stored
//! records, a delta user with no role anywhere) only the store sees. So the cascade looks, at
//! its fixpoint, at the users the batch may have left without a role, and drops those that
//! hold no roles record and no enrollment at a school in the roster as it will be after the
//! batch; their own dependents then follow as any deleted user's.

use super::diff::{change, tally, Cascade, Gone, Origin, Removed};
use super::*;
use crate::roster::findings::Rule;

/// Who [`Cascade::users_keep_a_role`] still has to look at, and how far it has read the
/// batch's removals of roles and enrollments.
pub(super) struct RoleWatch {
    /// Per user: the first role or enrollment it lost to this batch (`None`: it lost none,
    /// the batch added or changed it), and how many more.
    candidates: BTreeMap<Vec<u8>, Lost>,
    /// How many of the removals of roles and of enrollments were looked at.
    seen: [usize; 2],
    /// The engine checked every user against this upload: users, roles and enrollments are
    /// all bulk, so the upload's own removals and changes cannot have left a user without a
    /// role (only the cascade's can).
    engine_checked_all: bool,
}

/// What a user lost to the batch.
#[derive(Default)]
struct Lost {
    first: Option<String>,
    more: usize,
}

impl Lost {
    fn add(&mut self, what: String) {
        match self.first {
            None => self.first = Some(what),
            Some(_) => self.more += 1,
        }
    }
}

/// The tables that give a 1.2 user a role.
const HOLDERS: [&str; 2] = ["roles", "enrollments"];

/// Whether a record of `table` gives a user of a `format` source a role.
pub(super) fn gives_roles(format: Format, table: &str) -> bool {
    format == Format::OneRoster12 && HOLDERS.contains(&table)
}

/// A record's `userSourcedId`, trimmed ("" when it has none or does not decode).
fn user_of(record: &[u8]) -> &str {
    row_fields(record)
        .and_then(|f| f.into_iter().find(|(n, _)| *n == "userSourcedId"))
        .map_or("", |(_, v)| v.trim())
}

impl Cascade<'_> {
    /// The users this batch's own writes may leave without a role, before the cascade: those
    /// a users file adds or changes (unless the engine checked them: roles.csv and
    /// enrollments.csv both bulk), and those a roles or enrollments record of the upload no
    /// longer names (unless the engine checked every user).
    pub(super) fn role_watch(&mut self) -> Result<RoleWatch> {
        let bulk = |t: &str| self.outcome.table(t).is_some_and(|w| w.mode == Mode::Bulk);
        let engine_checked_upload = bulk("roles") && bulk("enrollments");
        let engine_checked_all = engine_checked_upload && bulk("users");
        let mut w = RoleWatch {
            candidates: BTreeMap::new(),
            seen: [0; 2],
            engine_checked_all,
        };
        let mut tables: Vec<&'static str> = Vec::new();
        if !engine_checked_upload {
            tables.push("users");
        }
        if !engine_checked_all {
            tables.extend(HOLDERS);
        }
        for table in tables {
            if self.outcome.table(table).is_none() {
                continue;
            }
            let prefix = k_records(self.source, table);
            // The pages the upload writes (a page it removes holds no record after it).
            let written: Vec<Page> = self
                .changes
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
                .map(|(k, v)| read_page(v).ok_or_else(|| corrupt(k, "undecodable page")))
                .collect::<Result<_>>()?;
            for page in written {
                for (id, rec) in page {
                    let pre = self.pre(table, &id)?;
                    if table == "users" {
                        if pre.as_deref() != Some(rec.as_slice()) {
                            w.candidates.entry(id).or_default();
                        }
                        continue;
                    }
                    // A role or enrollment that now names another user.
                    let Some(pre) = pre else {
                        continue;
                    };
                    let (was, now) = (user_of(&pre), user_of(&rec));
                    if !was.is_empty() && was != now {
                        w.candidates
                            .entry(was.as_bytes().to_vec())
                            .or_default()
                            .add(format!(
                                "{} `{}` names `{now}` after this batch",
                                kind(table),
                                String::from_utf8_lossy(&id)
                            ));
                    }
                }
            }
        }
        Ok(w)
    }

    /// Drops the users in `w` (and those the removals of roles and enrollments since the last
    /// call name) that hold no roles record and no enrollment at a school after the batch,
    /// each with a finding, and adds them to the removals of `users`. Returns whether it
    /// dropped any. Reads the roles (and, if some users are left, the enrollments) of the
    /// roster after the batch only when there is a user to look at.
    pub(super) fn users_keep_a_role(
        &mut self,
        w: &mut RoleWatch,
        removed: &mut BTreeMap<&'static str, Removed>,
        findings: &mut Vec<Finding>,
    ) -> Result<bool> {
        for (k, table) in HOLDERS.into_iter().enumerate() {
            let fresh: Vec<(Vec<u8>, Option<Vec<u8>>, Origin)> = match removed.get(table) {
                Some(r) => r.ids[w.seen[k].min(r.ids.len())..]
                    .iter()
                    .filter(|g| !(g.direct && w.engine_checked_all))
                    .map(|g| (g.id.clone(), g.record.clone(), g.origin.clone()))
                    .collect(),
                None => Vec::new(),
            };
            w.seen[k] = removed.get(table).map_or(0, |r| r.ids.len());
            for (id, record, origin) in fresh {
                let record = match record {
                    Some(r) => Some(r),
                    None => self.pre(table, &id)?,
                };
                let Some(record) = record else {
                    continue;
                };
                let user = user_of(&record);
                if user.is_empty() {
                    continue;
                }
                w.candidates
                    .entry(user.as_bytes().to_vec())
                    .or_default()
                    .add(format!(
                        "{} `{}` was deleted by this batch ({origin})",
                        kind(table),
                        String::from_utf8_lossy(&id)
                    ));
            }
        }
        if w.candidates.is_empty() {
            return Ok(false);
        }
        let mut lacking = std::mem::take(&mut w.candidates);
        // Only users that are there after the batch.
        let Some(&buckets) = self.after.buckets.get("users") else {
            return Ok(false);
        };
        let mut pages: BTreeMap<u32, Option<(Page, bool)>> = BTreeMap::new();
        for id in lacking.keys() {
            let bucket = bucket_of(id, buckets);
            if let std::collections::btree_map::Entry::Vacant(e) = pages.entry(bucket) {
                e.insert(self.page_after(&k_page(self.source, "users", bucket))?);
            }
        }
        lacking.retain(|id, _| {
            pages
                .get(&bucket_of(id, buckets))
                .and_then(|p| p.as_ref())
                .is_some_and(|(page, _)| {
                    page.binary_search_by(|(k, _)| k.as_slice().cmp(id)).is_ok()
                })
        });
        // Those a roles record names, then those an enrollment at a school names.
        if !lacking.is_empty() {
            self.visit_after("roles", false, &mut lacking)?;
        }
        if !lacking.is_empty() {
            self.visit_after("enrollments", true, &mut lacking)?;
        }
        if lacking.is_empty() {
            return Ok(false);
        }
        let file = self
            .schema
            .table("users")
            .map_or_else(|| "users.csv".to_string(), |d| d.file_name());
        let mut dropped = Vec::new();
        for (bucket, page) in pages {
            let Some((page, overlaid)) = page else {
                continue;
            };
            let mut recs: Vec<(&[u8], &[u8])> = Vec::with_capacity(page.len());
            let mut changed = false;
            for (id, rec) in &page {
                let Some(lost) = lacking.get(id) else {
                    recs.push((id.as_slice(), rec.as_slice()));
                    continue;
                };
                changed = true;
                // (rule, the finding's detail, the origin its dependents name)
                let (rule, detail, origin) = match &lost.first {
                    Some(first) => {
                        let more = match lost.more {
                            0 => String::new(),
                            n => format!(" (and {n} more)"),
                        };
                        (
                            Rule::UnknownReference,
                            format!("left without a role: {first}{more}"),
                            "left without a role",
                        )
                    }
                    None => (
                        Rule::InvalidValue,
                        "no role in roles.csv, enrollments.csv or the stored roster \
                         (OneRoster 1.2 requires a role)"
                            .to_string(),
                        "without a role",
                    ),
                };
                let pre = if overlaid {
                    self.pre("users", id)?
                } else {
                    Some(rec.clone())
                };
                tally(
                    self.counts_of("users")?,
                    change(pre.as_deref(), Some(rec)),
                    change(pre.as_deref(), None),
                );
                findings.push(Finding {
                    file: file.clone(),
                    line: 0,
                    id: String::from_utf8_lossy(id).into_owned(),
                    rule,
                    action: Action::DroppedRow,
                    field: String::new(),
                    value: String::new(),
                    detail,
                });
                dropped.push(Gone {
                    id: id.clone(),
                    origin: std::sync::Arc::from(origin),
                    direct: false,
                    record: None,
                });
            }
            if changed {
                self.put_page("users", k_page(self.source, "users", bucket), &recs)?;
            }
        }
        let any = !dropped.is_empty();
        removed.entry("users").or_default().ids.extend(dropped);
        Ok(any)
    }

    /// Takes out of `lacking` every user a record of `table` names after the batch (the
    /// stored pages with the batch's writes over them); with `at_school`, only a record whose
    /// `schoolSourcedId` is set (an enrollment gives a role at its school). Stops at the
    /// first page after which no user is left.
    fn visit_after(
        &self,
        table: &str,
        at_school: bool,
        lacking: &mut BTreeMap<Vec<u8>, Lost>,
    ) -> Result<()> {
        let Some(&buckets) = self.after.buckets.get(table) else {
            return Ok(());
        };
        for bucket in 0..buckets {
            let key = k_page(self.source, table, bucket);
            let mut take = |_: &[u8], [user, school]: [&str; 2]| {
                if !at_school || !school.trim().is_empty() {
                    lacking.remove(user.trim().as_bytes());
                }
            };
            let columns = ["userSourcedId", "schoolSourcedId"];
            let read = match self.index.get(&key) {
                Some(&i) => match &self.changes[i].1 {
                    Some(v) => {
                        unpack(v).and_then(|raw| visit_raw_page_columns(&raw, columns, &mut take))
                    }
                    None => continue,
                },
                None => match self.store.page(&key)? {
                    Some(p) => visit_raw_page_columns(p.raw(), columns, &mut take),
                    None => continue,
                },
            };
            read.ok_or_else(|| corrupt(&key, "undecodable page"))?;
            if lacking.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

/// What a record of `table` is to a user, for the findings.
fn kind(table: &str) -> &'static str {
    match table {
        "roles" => "role",
        _ => "enrollment",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    const MANIFEST: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n";
    const ORGS: &str = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
                        D1,,,District,district,,\nSCH1,,,One,school,,D1\nSCH2,,,Two,school,,D1\n";
    const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n";
    const ROLES: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n";
    const ENROLLMENTS: &str = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n";
    const WHEN: &str = "2026-09-02T00:00:00Z";

    /// A user row of `id` at `org`.
    fn user(id: &str, org: &str) -> String {
        format!("{id},,,true,{id},,Given,Family,,,,,,,,,,,,,{org},\n")
    }

    /// Writes `files` as bundle `name` under `dir`, ingests it into source `north` and
    /// returns the cascade's findings on users.csv as (id, rule, detail), and the batch.
    fn ingest(
        store: &Store,
        dir: &Path,
        name: &str,
        files: &[(&str, String)],
    ) -> (Vec<(String, String, String)>, Batch) {
        let b = dir.join(name);
        std::fs::create_dir_all(&b).unwrap();
        for (f, text) in files {
            std::fs::write(b.join(f), text).unwrap();
        }
        let sc = SourceConfig::default();
        let done =
            crate::ingest::ingest(store, &dir.join("reports"), "north", &sc, &b, "sis").unwrap();
        let users: Vec<(String, String, String)> = done
            .outcome
            .map(|o| o.findings)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.file == "users.csv" && f.action == Action::DroppedRow)
            .map(|f| (f.id, f.rule.code().to_string(), f.detail))
            .collect();
        (users, done.batch)
    }

    fn exported_users(store: &Store, dir: &Path) -> Vec<String> {
        store.export("north", dir).unwrap();
        std::fs::read_to_string(dir.join("users.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap_or_default().to_string())
            .collect()
    }

    /// A delta roles row that gives a stored role to another user takes the first user's only
    /// role without removing any record: the user goes all the same.
    #[test]
    fn a_role_a_delta_gives_to_another_user_is_a_role_its_first_user_lost() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let users = format!("{USERS}{}{}", user("U1", "SCH1"), user("U5", "SCH1"));
        let (found, b) = ingest(
            &s,
            d.path(),
            "b1",
            &[
                (
                    "manifest.csv",
                    format!("{MANIFEST}file.orgs,bulk\nfile.users,bulk\nfile.roles,bulk\n"),
                ),
                ("orgs.csv", ORGS.to_string()),
                ("users.csv", users),
                (
                    "roles.csv",
                    format!(
                        "{ROLES}R1,,,U1,primary,student,,,SCH1,\nR5,,,U5,primary,student,,,SCH1,\n"
                    ),
                ),
            ],
        );
        assert_eq!((found.len(), b.state), (0, BatchState::Applied));
        let (found, b) = ingest(
            &s,
            d.path(),
            "d2",
            &[
                ("manifest.csv", format!("{MANIFEST}file.roles,delta\n")),
                (
                    "roles.csv",
                    format!("{ROLES}R1,active,{WHEN},U5,secondary,student,,,SCH2,\n"),
                ),
            ],
        );
        assert_eq!(
            found,
            [(
                "U1".to_string(),
                "unknown-reference".to_string(),
                "left without a role: role `R1` names `U5` after this batch".to_string()
            )]
        );
        assert_eq!(b.state, BatchState::Applied);
        assert_eq!(b.totals(), (0, 1, 1));
        assert_eq!(exported_users(&s, &d.path().join("x")), ["U5"]);
    }

    /// An enrollment the batch adds and the cascade then drops (its stored class goes with
    /// the course of a deleted school) was never stored: its user is read from the record the
    /// cascade dropped, and counts among what the user lost.
    #[test]
    fn an_enrollment_the_batch_adds_and_the_cascade_drops_is_a_role_lost() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let classes = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n";
        let (_, b) = ingest(
            &s,
            d.path(),
            "b1",
            &[
                (
                    "manifest.csv",
                    format!(
                        "{MANIFEST}file.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\n\
                         file.classes,bulk\nfile.users,bulk\nfile.enrollments,bulk\n"
                    ),
                ),
                ("orgs.csv", ORGS.to_string()),
                (
                    "academicSessions.csv",
                    "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
                     Y1,,,2026-2027,schoolYear,2026-08-17,2027-06-11,,2027\n"
                        .to_string(),
                ),
                (
                    "courses.csv",
                    "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\n\
                     C1,,,Y1,One,C1,,SCH1,,\nC2,,,Y1,Two,C2,,SCH2,,\n"
                        .to_string(),
                ),
                (
                    "classes.csv",
                    format!(
                        "{classes}K1,,,One,,C1,K1,scheduled,,SCH1,Y1,,,\nK2,,,Two,,C2,K2,scheduled,,SCH1,Y1,,,\n"
                    ),
                ),
                (
                    "users.csv",
                    format!("{USERS}{}{}", user("U1", "SCH1"), user("U7", "SCH1")),
                ),
                (
                    "enrollments.csv",
                    format!(
                        "{ENROLLMENTS}E1,,,K1,SCH1,U1,student,false,,\nE6,,,K1,SCH1,U7,student,false,,\n"
                    ),
                ),
            ],
        );
        assert_eq!(b.state, BatchState::Applied);
        // E6 goes, E7 comes in K2; SCH2 goes, and with it C2, K2 and E7.
        let (found, b) = ingest(
            &s,
            d.path(),
            "d2",
            &[
                (
                    "manifest.csv",
                    format!("{MANIFEST}file.orgs,delta\nfile.enrollments,delta\n"),
                ),
                (
                    "orgs.csv",
                    format!("{}SCH2,tobedeleted,{WHEN},,,,\n", &ORGS[..ORGS.find('\n').unwrap() + 1]),
                ),
                (
                    "enrollments.csv",
                    format!(
                        "{ENROLLMENTS}E6,tobedeleted,{WHEN},,,,,,,\nE7,active,{WHEN},K2,SCH1,U7,student,false,,\n"
                    ),
                ),
            ],
        );
        assert_eq!(
            found,
            [(
                "U7".to_string(),
                "unknown-reference".to_string(),
                "left without a role: enrollment `E6` was deleted by this batch \
                 (enrollments.csv line 2) (and 1 more)"
                    .to_string()
            )]
        );
        // Deleted: SCH2, C2, K2, E6, U7 (E7 was never stored).
        assert_eq!(b.totals(), (0, 0, 5), "{:?}", b.tables);
        assert_eq!(exported_users(&s, &d.path().join("x")), ["U1"]);
    }
}
