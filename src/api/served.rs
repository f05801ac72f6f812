//! What the REST provider serves of one source, kept between batches: the source's roster in
//! the model, each record with the time it last changed (`dateLastModified`) and whether a
//! batch removed it (a tombstone, shown as `status: "tobedeleted"` for `api.tombstone_days`),
//! in `sourcedId` order, with the relations the nested routes follow.
//!
//! It is rebuilt after every batch the store applies (a commit, an approval, a rollback), by
//! comparing each record with what was served before: a record whose bytes are unchanged keeps
//! its time; an added or changed one gets the time the new roster became visible to the API
//! (never earlier than its batch's commit, so a client that pulled before the swap sees the
//! change in its next delta pull); a record no longer in the roster becomes a tombstone with
//! that time. Times and tombstones are kept in `state_dir/api/<source>.served` so that they
//! survive a restart. Records are held as compact bytes (postcard) in one arena per kind, so
//! the served roster costs about its CSV size in memory, not a Rust struct per record.

use std::path::{Path, PathBuf};

use crate::roster::model::*;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    #[error("a served record could not be encoded: {0}")]
    Encode(#[from] postcard::Error),
}

/// One record of any kind, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Org(Org),
    Session(Session),
    Course(Course),
    Class(Class),
    User(User),
    Enrollment(Enrollment),
    Demographics(Demographics),
}

impl Record {
    pub fn entity(&self) -> Entity {
        self.as_ref().entity()
    }

    pub fn sourced_id(&self) -> &str {
        match self {
            Record::Org(r) => &r.sourced_id,
            Record::Session(r) => &r.sourced_id,
            Record::Course(r) => &r.sourced_id,
            Record::Class(r) => &r.sourced_id,
            Record::User(r) => &r.sourced_id,
            Record::Enrollment(r) => &r.sourced_id,
            Record::Demographics(r) => &r.sourced_id,
        }
    }

    /// The record as the renderer takes it.
    pub fn as_ref(&self) -> crate::api::render::RecordRef<'_> {
        use crate::api::render::RecordRef as R;
        match self {
            Record::Org(r) => R::Org(r),
            Record::Session(r) => R::Session(r),
            Record::Course(r) => R::Course(r),
            Record::Class(r) => R::Class(r),
            Record::User(r) => R::User(r),
            Record::Enrollment(r) => R::Enrollment(r),
            Record::Demographics(r) => R::Demographics(r),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        match self {
            Record::Org(r) => postcard::to_allocvec(r),
            Record::Session(r) => postcard::to_allocvec(r),
            Record::Course(r) => postcard::to_allocvec(r),
            Record::Class(r) => postcard::to_allocvec(r),
            Record::User(r) => postcard::to_allocvec(r),
            Record::Enrollment(r) => postcard::to_allocvec(r),
            Record::Demographics(r) => postcard::to_allocvec(r),
        }
    }

    /// A record read back from its bytes; a record whose last value is not known (a removal
    /// the API did not see happen, as after a restart) is its id alone.
    fn decode(e: Entity, id: &str, body: &[u8]) -> Record {
        fn or_id<T: serde::de::DeserializeOwned + Default>(
            body: &[u8],
            id: &str,
            set: impl FnOnce(&mut T, String),
        ) -> T {
            match postcard::from_bytes::<T>(body) {
                Ok(v) if !body.is_empty() => v,
                _ => {
                    let mut v = T::default();
                    set(&mut v, id.to_string());
                    v
                }
            }
        }
        match e {
            Entity::Org => Record::Org(or_id(body, id, |r: &mut Org, s| r.sourced_id = s)),
            Entity::Session => {
                Record::Session(or_id(body, id, |r: &mut Session, s| r.sourced_id = s))
            }
            Entity::Course => Record::Course(or_id(body, id, |r: &mut Course, s| r.sourced_id = s)),
            Entity::Class => Record::Class(or_id(body, id, |r: &mut Class, s| r.sourced_id = s)),
            Entity::User => Record::User(or_id(body, id, |r: &mut User, s| r.sourced_id = s)),
            Entity::Enrollment => {
                Record::Enrollment(or_id(body, id, |r: &mut Enrollment, s| r.sourced_id = s))
            }
            Entity::Demographics => {
                Record::Demographics(or_id(body, id, |r: &mut Demographics, s| r.sourced_id = s))
            }
        }
    }
}

/// Every record of a roster, by kind.
fn records_of(r: Roster) -> [Vec<Record>; 7] {
    [
        r.orgs.into_iter().map(Record::Org).collect(),
        r.sessions.into_iter().map(Record::Session).collect(),
        r.courses.into_iter().map(Record::Course).collect(),
        r.classes.into_iter().map(Record::Class).collect(),
        r.users.into_iter().map(Record::User).collect(),
        r.enrollments.into_iter().map(Record::Enrollment).collect(),
        r.demographics
            .into_iter()
            .map(Record::Demographics)
            .collect(),
    ]
}

fn ix(e: Entity) -> usize {
    e as usize
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    off: u64,
    id_len: u32,
    body_len: u32,
    hash: u64,
    dlm_ms: i64,
    gone: bool,
}

/// The records of one kind, sorted by sourcedId: their ids and bodies in one arena.
#[derive(Debug, Default)]
pub struct Table {
    arena: Vec<u8>,
    recs: Vec<Rec>,
}

/// One served record as stored.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub id: &'a str,
    pub date_last_modified_ms: i64,
    /// Removed by a batch: served as `tobedeleted`.
    pub gone: bool,
    body: &'a [u8],
    hash: u64,
}

impl Table {
    pub fn len(&self) -> usize {
        self.recs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    fn push(&mut self, id: &str, body: &[u8], hash: u64, dlm_ms: i64, gone: bool) {
        let off = self.arena.len() as u64;
        self.arena.extend_from_slice(id.as_bytes());
        self.arena.extend_from_slice(body);
        self.recs.push(Rec {
            off,
            id_len: id.len() as u32,
            body_len: body.len() as u32,
            hash,
            dlm_ms,
            gone,
        });
    }

    pub fn item(&self, pos: u32) -> Option<Item<'_>> {
        let r = self.recs.get(pos as usize)?;
        let start = r.off as usize;
        let mid = start + r.id_len as usize;
        let end = mid + r.body_len as usize;
        Some(Item {
            id: std::str::from_utf8(self.arena.get(start..mid)?).ok()?,
            date_last_modified_ms: r.dlm_ms,
            gone: r.gone,
            body: self.arena.get(mid..end)?,
            hash: r.hash,
        })
    }

    fn id_at(&self, pos: usize) -> &[u8] {
        let r = &self.recs[pos];
        &self.arena[r.off as usize..r.off as usize + r.id_len as usize]
    }

    /// The position of the record with this sourcedId.
    pub fn find(&self, id: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.recs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_at(mid).cmp(id.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    fn items(&self) -> impl Iterator<Item = Item<'_>> {
        (0..self.recs.len() as u32).filter_map(|p| self.item(p))
    }
}

impl Item<'_> {
    /// The record itself.
    pub fn record(&self, e: Entity) -> Record {
        Record::decode(e, self.id, self.body)
    }
}

/// Lists of positions: a parent's position in its table to its children's positions in
/// theirs, each list sorted (so in sourcedId order).
pub type Links = Vec<Vec<u32>>;

/// The relations the nested routes and the typed collections follow.
#[derive(Debug, Default)]
pub struct Relations {
    /// Orgs of type `school`.
    pub schools: Vec<u32>,
    /// Terms: sessions of type `term` or `semester`, and any session a class names in its
    /// `terms`; and sessions of type `gradingPeriod`.
    pub terms: Vec<u32>,
    pub grading_periods: Vec<u32>,
    /// Users with a `student` role, and with a `teacher` role.
    pub students: Vec<u32>,
    pub teachers: Vec<u32>,
    /// The same in 1.1, where a user has the one role it is served with.
    pub students_v1p1: Vec<u32>,
    pub teachers_v1p1: Vec<u32>,
    /// By org: classes, courses, enrollments, students and teachers of the school, its terms.
    pub school_classes: Links,
    pub school_courses: Links,
    pub school_enrollments: Links,
    pub school_students: Links,
    pub school_teachers: Links,
    pub school_terms: Links,
    /// By class: its enrollments, its students and teachers (users).
    pub class_enrollments: Links,
    pub class_students: Links,
    pub class_teachers: Links,
    /// By course: its classes. By session: its classes, its grading periods.
    pub course_classes: Links,
    pub term_classes: Links,
    pub term_grading_periods: Links,
    /// By org and by session: the records whose `parent` it is (served as `children`).
    pub org_children: Links,
    pub session_children: Links,
    /// By user: the classes it is enrolled in with any role, as a student, as a teacher.
    pub user_classes: Links,
    pub student_classes: Links,
    pub teacher_classes: Links,
}

/// One source's served roster.
#[derive(Debug)]
pub struct Served {
    pub source: String,
    /// The store's last applied batch this shows.
    pub batch: Option<u64>,
    /// When it was built (ms since the epoch).
    pub built_ms: i64,
    /// What the Apple settings were when it was built (a change rebuilds it).
    pub settings: String,
    tables: [Table; 7],
    pub rel: Relations,
}

impl Served {
    /// A source with nothing served yet.
    pub fn empty(source: &str) -> Served {
        Served {
            source: source.to_string(),
            batch: None,
            built_ms: 0,
            settings: String::new(),
            tables: Default::default(),
            rel: Relations::default(),
        }
    }

    pub fn table(&self, e: Entity) -> &Table {
        &self.tables[ix(e)]
    }

    /// Number of records of each kind, tombstones included.
    pub fn counts(&self) -> [usize; 7] {
        std::array::from_fn(|i| self.tables[i].len())
    }

    /// Builds the served roster of `roster` over what `previous` served: unchanged records keep
    /// their time, changed and added ones get `now_ms`, removed ones become tombstones at
    /// `now_ms`; tombstones older than `tombstone_days` are dropped.
    pub fn build(
        source: &str,
        batch: Option<u64>,
        settings: String,
        roster: Roster,
        previous: Option<&Served>,
        now_ms: i64,
        tombstone_days: u32,
    ) -> Result<Served, ServedError> {
        let keep_after = now_ms.saturating_sub(i64::from(tombstone_days) * 86_400_000);
        let by_kind = records_of(roster);
        let mut tables: [Table; 7] = Default::default();
        let mut gone_records: Vec<(Entity, Record)> = Vec::new();
        let mut fresh: [Vec<Record>; 7] = Default::default();
        for (e, mut recs) in Entity::ALL.into_iter().zip(by_kind) {
            recs.sort_by(|a, b| a.sourced_id().cmp(b.sourced_id()));
            recs.dedup_by(|a, b| a.sourced_id() == b.sourced_id());
            let empty = Table::default();
            let prev = previous.map_or(&empty, |p| &p.tables[ix(e)]);
            let table = &mut tables[ix(e)];
            let mut old = prev.items().peekable();
            let mut body = Vec::new();
            for r in &recs {
                body.clear();
                body.extend_from_slice(&r.encode()?);
                let hash = fnv1a(&body);
                // Records only the previous roster had, before this one: removed.
                while let Some(o) = old.peek().copied() {
                    if o.id.as_bytes() >= r.sourced_id().as_bytes() {
                        break;
                    }
                    old.next();
                    keep_removed(table, o, now_ms, keep_after, e, &mut gone_records);
                }
                let dlm = match old.peek().copied() {
                    Some(o) if o.id == r.sourced_id() => {
                        old.next();
                        if !o.gone && o.hash == hash {
                            o.date_last_modified_ms
                        } else {
                            now_ms
                        }
                    }
                    _ => now_ms,
                };
                table.push(r.sourced_id(), &body, hash, dlm, false);
            }
            for o in old {
                keep_removed(table, o, now_ms, keep_after, e, &mut gone_records);
            }
            fresh[ix(e)] = recs;
        }
        let mut s = Served {
            source: source.to_string(),
            batch,
            built_ms: now_ms,
            settings,
            tables,
            rel: Relations::default(),
        };
        s.rel = relate(&s, &fresh, &gone_records);
        Ok(s)
    }
}

/// A record the new roster lacks: a tombstone (kept while young enough), pushed in order.
fn keep_removed(
    table: &mut Table,
    o: Item<'_>,
    now_ms: i64,
    keep_after: i64,
    e: Entity,
    gone: &mut Vec<(Entity, Record)>,
) {
    let dlm = if o.gone {
        o.date_last_modified_ms
    } else {
        now_ms
    };
    if dlm < keep_after {
        return;
    }
    table.push(o.id, o.body, o.hash, dlm, true);
    gone.push((e, o.record(e)));
}

/// FNV-1a over a record's bytes: fixed, so times survive a restart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The relations over every served record, live and removed.
fn relate(s: &Served, fresh: &[Vec<Record>; 7], gone: &[(Entity, Record)]) -> Relations {
    let t = |e: Entity| &s.tables[ix(e)];
    let links = |e: Entity| vec![Vec::new(); t(e).len()];
    let mut rel = Relations {
        school_classes: links(Entity::Org),
        school_courses: links(Entity::Org),
        school_enrollments: links(Entity::Org),
        school_students: links(Entity::Org),
        school_teachers: links(Entity::Org),
        school_terms: links(Entity::Org),
        org_children: links(Entity::Org),
        session_children: links(Entity::Session),
        class_enrollments: links(Entity::Class),
        class_students: links(Entity::Class),
        class_teachers: links(Entity::Class),
        course_classes: links(Entity::Course),
        term_classes: links(Entity::Session),
        term_grading_periods: links(Entity::Session),
        user_classes: links(Entity::User),
        student_classes: links(Entity::User),
        teacher_classes: links(Entity::User),
        ..Relations::default()
    };
    let all = fresh
        .iter()
        .flatten()
        .chain(gone.iter().map(|(_, r)| r))
        .collect::<Vec<_>>();
    let pos = |e: Entity, id: &str| t(e).find(id);
    let link = |l: &mut Links, parent: Option<u32>, child: Option<u32>| {
        if let (Some(p), Some(c)) = (parent, child) {
            if let Some(v) = l.get_mut(p as usize) {
                v.push(c);
            }
        }
    };
    for r in &all {
        match r {
            Record::Org(o) => {
                let me = pos(Entity::Org, &o.sourced_id);
                if o.org_type == "school" {
                    rel.schools.extend(me);
                }
                if let Some(p) = &o.parent {
                    link(&mut rel.org_children, pos(Entity::Org, p), me);
                }
            }
            Record::Session(x) => {
                let me = pos(Entity::Session, &x.sourced_id);
                match x.session_type.as_str() {
                    "term" | "semester" => rel.terms.extend(me),
                    "gradingPeriod" => rel.grading_periods.extend(me),
                    _ => {}
                }
                if let Some(p) = &x.parent {
                    link(&mut rel.session_children, pos(Entity::Session, p), me);
                }
                if x.session_type == "gradingPeriod" {
                    if let Some(p) = &x.parent {
                        link(&mut rel.term_grading_periods, pos(Entity::Session, p), me);
                    }
                }
            }
            Record::Course(c) => {
                let me = pos(Entity::Course, &c.sourced_id);
                link(&mut rel.school_courses, pos(Entity::Org, &c.org), me);
            }
            Record::Class(c) => {
                let me = pos(Entity::Class, &c.sourced_id);
                let school = pos(Entity::Org, &c.school);
                link(&mut rel.school_classes, school, me);
                link(&mut rel.course_classes, pos(Entity::Course, &c.course), me);
                for term in &c.terms {
                    let tp = pos(Entity::Session, term);
                    // What a class is scheduled in is a term to consumers, whatever its type
                    // (a semester; Apple's school year).
                    rel.terms.extend(tp);
                    link(&mut rel.term_classes, tp, me);
                    link(&mut rel.school_terms, school, tp);
                }
            }
            Record::User(u) => {
                let me = pos(Entity::User, &u.sourced_id);
                match crate::api::render::user_role_v1p1(u) {
                    "student" => rel.students_v1p1.extend(me),
                    "teacher" => rel.teachers_v1p1.extend(me),
                    _ => {}
                }
                for role in &u.roles {
                    let org = pos(Entity::Org, &role.org);
                    match role.role.as_str() {
                        "student" => {
                            rel.students.extend(me);
                            link(&mut rel.school_students, org, me);
                        }
                        "teacher" => {
                            rel.teachers.extend(me);
                            link(&mut rel.school_teachers, org, me);
                        }
                        _ => {}
                    }
                }
            }
            Record::Enrollment(en) => {
                let me = pos(Entity::Enrollment, &en.sourced_id);
                let class = pos(Entity::Class, &en.class);
                let user = pos(Entity::User, &en.user);
                link(
                    &mut rel.school_enrollments,
                    pos(Entity::Org, &en.school),
                    me,
                );
                link(&mut rel.class_enrollments, class, me);
                link(&mut rel.user_classes, user, class);
                match en.role.as_str() {
                    "student" => {
                        link(&mut rel.class_students, class, user);
                        link(&mut rel.student_classes, user, class);
                    }
                    "teacher" => {
                        link(&mut rel.class_teachers, class, user);
                        link(&mut rel.teacher_classes, user, class);
                    }
                    _ => {}
                }
            }
            Record::Demographics(_) => {}
        }
    }
    for v in [
        &mut rel.schools,
        &mut rel.terms,
        &mut rel.grading_periods,
        &mut rel.students,
        &mut rel.teachers,
        &mut rel.students_v1p1,
        &mut rel.teachers_v1p1,
    ] {
        v.sort_unstable();
        v.dedup();
    }
    for l in [
        &mut rel.school_classes,
        &mut rel.school_courses,
        &mut rel.school_enrollments,
        &mut rel.school_students,
        &mut rel.school_teachers,
        &mut rel.school_terms,
        &mut rel.org_children,
        &mut rel.session_children,
        &mut rel.class_enrollments,
        &mut rel.class_students,
        &mut rel.class_teachers,
        &mut rel.course_classes,
        &mut rel.term_classes,
        &mut rel.term_grading_periods,
        &mut rel.user_classes,
        &mut rel.student_classes,
        &mut rel.teacher_classes,
    ] {
        for v in l.iter_mut() {
            v.sort_unstable();
            v.dedup();
            v.shrink_to_fit();
        }
    }
    rel
}

// ---- kept between runs ---------------------------------------------------------------------

const MAGIC: &[u8; 16] = b"rosterdrop-srv1\n";

/// The file a source's served state is kept in.
pub fn file_of(api_dir: &Path, source: &str) -> PathBuf {
    let safe = !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let name = if safe {
        source.to_string()
    } else {
        source.bytes().map(|b| format!("{b:02x}")).collect()
    };
    api_dir.join(format!("{name}.served"))
}

impl Served {
    /// What is kept: every record's id, hash, time and tombstone flag, and the last value of
    /// each tombstone (a live record's value is in the store).
    pub fn save(&self, api_dir: &Path) -> Result<(), ServedError> {
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.batch.map_or(u64::MAX, |b| b).to_le_bytes());
        out.extend_from_slice(&(self.settings.len() as u32).to_le_bytes());
        out.extend_from_slice(self.settings.as_bytes());
        for t in &self.tables {
            out.extend_from_slice(&(t.recs.len() as u64).to_le_bytes());
            for it in t.items() {
                out.extend_from_slice(&(it.id.len() as u32).to_le_bytes());
                out.extend_from_slice(it.id.as_bytes());
                out.extend_from_slice(&it.hash.to_le_bytes());
                out.extend_from_slice(&it.date_last_modified_ms.to_le_bytes());
                out.push(u8::from(it.gone));
                let body: &[u8] = if it.gone { it.body } else { &[] };
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out.extend_from_slice(body);
            }
        }
        std::fs::create_dir_all(api_dir).map_err(crate::fsutil::at(api_dir))?;
        crate::fsutil::write_atomic(&file_of(api_dir, &self.source), &out)?;
        Ok(())
    }

    /// What [`Served::save`] kept, or `None` when there is no file or it does not read (then
    /// every record counts as changed now: a delta pull gets too much, never too little).
    pub fn load(api_dir: &Path, source: &str) -> Option<Served> {
        let bytes = std::fs::read(file_of(api_dir, source)).ok()?;
        let mut r = Reader(&bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let batch = r.u64()?;
        let settings_len = r.u32()? as usize;
        let settings = String::from_utf8(r.take(settings_len)?.to_vec()).ok()?;
        let mut tables: [Table; 7] = Default::default();
        for t in &mut tables {
            let n = r.u64()?;
            // Each record takes at least 25 bytes: a count beyond that is damage.
            if n > (r.0.len() / 25) as u64 {
                return None;
            }
            let mut last: Option<&[u8]> = None;
            for _ in 0..n {
                let id_len = r.u32()? as usize;
                let id_bytes = r.take(id_len)?;
                let id = std::str::from_utf8(id_bytes).ok()?;
                if last.is_some_and(|l| l >= id_bytes) {
                    return None;
                }
                last = Some(id_bytes);
                let hash = r.u64()?;
                let dlm = r.u64()? as i64;
                let gone = r.take(1)?[0] == 1;
                let body_len = r.u32()? as usize;
                let body = r.take(body_len)?;
                t.push(id, body, hash, dlm, gone);
            }
        }
        Some(Served {
            source: source.to_string(),
            batch: (batch != u64::MAX).then_some(batch),
            built_ms: 0,
            settings,
            tables,
            rel: Relations::default(),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Rebuilds a source's served roster from the store, over `previous` (or what was kept on
/// disk), and keeps the result on disk.
pub fn refresh(
    store: &Store,
    source: &str,
    apple: &AppleSettings,
    previous: Option<&Served>,
    api_dir: &Path,
    now_ms: i64,
    tombstone_days: u32,
) -> Result<Served, ServedError> {
    let batch = store.last_applied(source)?;
    let roster = if batch.is_some() {
        store.roster(source, apple)?
    } else {
        Roster::default()
    };
    let loaded;
    let previous = match previous {
        Some(p) if p.built_ms > 0 || p.batch.is_some() => Some(p),
        _ => {
            loaded = Served::load(api_dir, source);
            loaded.as_ref()
        }
    };
    let s = Served::build(
        source,
        batch,
        settings_text(apple),
        roster,
        previous,
        now_ms,
        tombstone_days,
    )?;
    s.save(api_dir)?;
    Ok(s)
}

/// The Apple settings as text, to notice when they change.
pub fn settings_text(apple: &AppleSettings) -> String {
    format!("{apple:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrol(id: &str, user: &str, class: &str, role: &str) -> Enrollment {
        Enrollment {
            sourced_id: id.into(),
            user: user.into(),
            class: class.into(),
            school: "s1".into(),
            role: role.into(),
            ..Default::default()
        }
    }

    fn roster(enrollments: Vec<Enrollment>) -> Roster {
        Roster {
            orgs: vec![Org {
                sourced_id: "s1".into(),
                name: "North".into(),
                org_type: "school".into(),
                ..Default::default()
            }],
            classes: vec![Class {
                sourced_id: "c1".into(),
                title: "Math".into(),
                school: "s1".into(),
                course: "k1".into(),
                terms: vec!["t1".into()],
                ..Default::default()
            }],
            users: ["u1", "u2", "t9"]
                .iter()
                .map(|id| User {
                    sourced_id: (*id).into(),
                    roles: vec![Role {
                        role_type: "primary".into(),
                        role: if id.starts_with('t') {
                            "teacher".into()
                        } else {
                            "student".into()
                        },
                        org: "s1".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            enrollments,
            ..Default::default()
        }
    }

    fn times(s: &Served, e: Entity) -> Vec<(String, i64, bool)> {
        s.table(e)
            .items()
            .map(|i| (i.id.to_string(), i.date_last_modified_ms, i.gone))
            .collect()
    }

    #[test]
    fn unchanged_records_keep_their_time_changed_ones_move_removed_ones_stay_as_tombstones() {
        let day = 86_400_000;
        let first = roster(vec![
            enrol("e1", "u1", "c1", "student"),
            enrol("e2", "u2", "c1", "student"),
        ]);
        let a = Served::build("x", Some(1), String::new(), first, None, 1000, 30).unwrap();
        assert_eq!(
            times(&a, Entity::Enrollment),
            vec![("e1".into(), 1000, false), ("e2".into(), 1000, false)]
        );
        // e1 changes role, e2 is removed, e3 is added.
        let second = roster(vec![
            enrol("e1", "u1", "c1", "teacher"),
            enrol("e3", "t9", "c1", "teacher"),
        ]);
        let b = Served::build(
            "x",
            Some(2),
            String::new(),
            second.clone(),
            Some(&a),
            5000,
            30,
        )
        .unwrap();
        assert_eq!(
            times(&b, Entity::Enrollment),
            vec![
                ("e1".into(), 5000, false),
                ("e2".into(), 5000, true),
                ("e3".into(), 5000, false)
            ]
        );
        assert_eq!(times(&b, Entity::Org), vec![("s1".into(), 1000, false)]);
        // The tombstone keeps its last value.
        let e2 = b.table(Entity::Enrollment).find("e2").unwrap();
        let item = b.table(Entity::Enrollment).item(e2).unwrap();
        assert_eq!(
            item.record(Entity::Enrollment),
            Record::Enrollment(enrol("e2", "u2", "c1", "student"))
        );
        // Kept on disk: the times survive a restart; the tombstone ages out after 30 days.
        let dir = tempfile::tempdir().unwrap();
        b.save(dir.path()).unwrap();
        let loaded = Served::load(dir.path(), "x").unwrap();
        assert_eq!(loaded.batch, Some(2));
        let c = Served::build(
            "x",
            Some(2),
            String::new(),
            second.clone(),
            Some(&loaded),
            9000,
            30,
        )
        .unwrap();
        assert_eq!(times(&c, Entity::Enrollment), times(&b, Entity::Enrollment));
        let d = Served::build(
            "x",
            Some(3),
            String::new(),
            second,
            Some(&c),
            5000 + 31 * day,
            30,
        )
        .unwrap();
        assert_eq!(
            times(&d, Entity::Enrollment),
            vec![("e1".into(), 5000, false), ("e3".into(), 5000, false)]
        );
        // A record that comes back is changed at that time.
        let back = roster(vec![enrol("e2", "u2", "c1", "student")]);
        let e = Served::build("x", Some(4), String::new(), back, Some(&b), 7000, 30).unwrap();
        assert_eq!(
            times(&e, Entity::Enrollment),
            vec![
                ("e1".into(), 7000, true),
                ("e2".into(), 7000, false),
                ("e3".into(), 7000, true)
            ]
        );
    }

    #[test]
    fn relations_follow_enrollments_roles_and_terms() {
        let r = roster(vec![
            enrol("e1", "u1", "c1", "student"),
            enrol("e2", "u2", "c1", "student"),
            enrol("e3", "t9", "c1", "teacher"),
        ]);
        let s = Served::build("x", Some(1), String::new(), r, None, 1, 30).unwrap();
        let users = s.table(Entity::User);
        let names = |v: &[u32]| {
            v.iter()
                .map(|&p| users.item(p).unwrap().id.to_string())
                .collect::<Vec<_>>()
        };
        let c1 = s.table(Entity::Class).find("c1").unwrap() as usize;
        assert_eq!(names(&s.rel.class_students[c1]), ["u1", "u2"]);
        assert_eq!(names(&s.rel.class_teachers[c1]), ["t9"]);
        assert_eq!(names(&s.rel.students), ["u1", "u2"]);
        let s1 = s.table(Entity::Org).find("s1").unwrap() as usize;
        assert_eq!(s.rel.school_classes[s1], vec![c1 as u32]);
        assert_eq!(s.rel.school_enrollments[s1].len(), 3);
        let u1 = users.find("u1").unwrap() as usize;
        assert_eq!(s.rel.student_classes[u1], vec![c1 as u32]);
        assert!(s.rel.teacher_classes[u1].is_empty());
    }

    #[test]
    fn a_damaged_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let r = roster(vec![enrol("e1", "u1", "c1", "student")]);
        let s = Served::build("x", Some(1), String::new(), r, None, 1, 30).unwrap();
        s.save(dir.path()).unwrap();
        let path = file_of(dir.path(), "x");
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 10, 20, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(Served::load(dir.path(), "x").is_none(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[28..36].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        assert!(Served::load(dir.path(), "x").is_none());
        assert_eq!(
            file_of(dir.path(), "a/b").file_name().unwrap(),
            "612f62.served"
        );
    }
}
