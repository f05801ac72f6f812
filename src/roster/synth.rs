//! A synthetic district: deterministic Apple School Manager and OneRoster 1.1 bundles of any
//! size, for benchmarks and tests (`rosterdrop synth`). Names and emails are made up.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Sizes of a synthetic district.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub students: usize,
    pub staff: usize,
    pub classes: usize,
    pub rosters: usize,
    pub schools: usize,
}

impl Size {
    /// Scales the reference district (200,000 students, 13,000 staff, 50,000 classes,
    /// 1.2 million roster rows) to `students`.
    pub fn scaled(students: usize) -> Size {
        let f = students as f64 / 200_000.0;
        Size {
            students,
            staff: ((13_000.0 * f) as usize).max(1),
            classes: ((50_000.0 * f) as usize).max(1),
            rosters: (1_200_000.0 * f) as usize,
            schools: ((120.0 * f) as usize).clamp(1, 2000),
        }
    }
}

const FIRST: [&str; 16] = [
    "Ana", "Ben", "Chloe", "Dmitri", "Elif", "Farah", "Gus", "Hana", "Ivan", "Jada", "Kofi",
    "Lena", "Mateo", "Nia", "Omar", "Priya",
];
const LAST: [&str; 16] = [
    "Abbott", "Baptiste", "Chen", "Diaz", "Eriksen", "Fofana", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Mbeki", "Nguyen", "Okafor", "Patel",
];

/// Small deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn out(dir: &Path, name: &str) -> std::io::Result<BufWriter<fs::File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        fs::File::create(dir.join(name))?,
    ))
}

/// Writes an Apple School Manager bundle into `dir`. `error_every`: when non-zero, about one
/// row in that many carries a problem for the patcher (unknown class, student or instructor).
pub fn apple(dir: &Path, s: Size, error_every: usize) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = Rng(42);
    let bad = |rng: &mut Rng| error_every > 0 && rng.below(error_every) == 0;
    let mut f = out(dir, "locations.csv")?;
    writeln!(f, "location_id,location_name")?;
    for i in 0..s.schools {
        writeln!(f, "L{i:04},School {i}")?;
    }
    f.flush()?;
    let mut f = out(dir, "students.csv")?;
    writeln!(f, "person_id,person_number,first_name,middle_name,last_name,grade_level,email_address,sis_username,password_policy,location_id")?;
    for i in 0..s.students {
        let (fi, la) = (FIRST[i % 16], LAST[(i / 16) % 16]);
        writeln!(
            f,
            "S{i:07},{i},{fi},,{la},{},s{i}@students.example.org,s{i},,L{:04}",
            1 + i % 12,
            i % s.schools
        )?;
    }
    f.flush()?;
    let mut f = out(dir, "staff.csv")?;
    writeln!(f, "person_id,person_number,first_name,middle_name,last_name,email_address,sis_username,location_id")?;
    for i in 0..s.staff {
        let (fi, la) = (FIRST[(i + 3) % 16], LAST[(i / 16 + 5) % 16]);
        writeln!(
            f,
            "T{i:06},{i},{fi},,{la},t{i}@example.org,t{i},L{:04}",
            i % s.schools
        )?;
    }
    f.flush()?;
    let courses = (s.classes / 4).max(1);
    let mut f = out(dir, "courses.csv")?;
    writeln!(f, "course_id,course_number,course_name,location_id")?;
    for i in 0..courses {
        writeln!(f, "C{i:06},{i},Course {i},L{:04}", i % s.schools)?;
    }
    f.flush()?;
    let mut f = out(dir, "classes.csv")?;
    writeln!(
        f,
        "class_id,class_number,course_id,instructor_id,instructor_id_2,instructor_id_3,location_id"
    )?;
    for i in 0..s.classes {
        let c = i / 4 % courses;
        let t = if bad(&mut rng) {
            format!("TX{i}")
        } else {
            format!("T{:06}", rng.below(s.staff))
        };
        writeln!(f, "K{i:06},{i},C{c:06},{t},,,L{:04}", c % s.schools)?;
    }
    f.flush()?;
    let mut f = out(dir, "rosters.csv")?;
    writeln!(f, "roster_id,class_id,student_id")?;
    for i in 0..s.rosters {
        let k = if bad(&mut rng) {
            format!("KX{i}")
        } else {
            format!("K{:06}", rng.below(s.classes))
        };
        let st = if bad(&mut rng) {
            format!("SX{i}")
        } else {
            format!("S{:07}", rng.below(s.students))
        };
        writeln!(f, "R{i:08},{k},{st}")?;
    }
    f.flush()
}

/// Writes a OneRoster 1.1 bulk bundle of the same district into `dir`.
pub fn oneroster(dir: &Path, s: Size, error_every: usize) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = Rng(7);
    let bad = |rng: &mut Rng| error_every > 0 && rng.below(error_every) == 0;
    let mut f = out(dir, "manifest.csv")?;
    writeln!(
        f,
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1"
    )?;
    for (k, v) in [
        ("academicSessions", "bulk"),
        ("categories", "absent"),
        ("classes", "bulk"),
        ("classResources", "absent"),
        ("courses", "bulk"),
        ("courseResources", "absent"),
        ("demographics", "absent"),
        ("enrollments", "bulk"),
        ("lineItems", "absent"),
        ("orgs", "bulk"),
        ("resources", "absent"),
        ("results", "absent"),
        ("users", "bulk"),
    ] {
        writeln!(f, "file.{k},{v}")?;
    }
    writeln!(
        f,
        "source.systemName,rosterdrop-synth\nsource.systemCode,synth"
    )?;
    f.flush()?;
    let mut f = out(dir, "orgs.csv")?;
    writeln!(
        f,
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"
    )?;
    writeln!(f, "D1,,,Synthetic District,district,D1,")?;
    for i in 0..s.schools {
        writeln!(f, "L{i:04},,,School {i},school,{i},D1")?;
    }
    f.flush()?;
    let mut f = out(dir, "academicSessions.csv")?;
    writeln!(
        f,
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear"
    )?;
    writeln!(
        f,
        "Y2026,,,2026-2027,schoolYear,2026-08-01,2027-06-30,,2027"
    )?;
    writeln!(f, "T1,,,Fall,semester,2026-08-01,2026-12-31,Y2026,2027")?;
    writeln!(f, "T2,,,Spring,semester,2027-01-01,2027-06-30,Y2026,2027")?;
    f.flush()?;
    let courses = (s.classes / 4).max(1);
    let mut f = out(dir, "courses.csv")?;
    writeln!(f, "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes")?;
    for i in 0..courses {
        writeln!(
            f,
            "C{i:06},,,Y2026,Course {i},CRS{i},09,L{:04},,",
            i % s.schools
        )?;
    }
    f.flush()?;
    let mut f = out(dir, "classes.csv")?;
    writeln!(f, "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods")?;
    for i in 0..s.classes {
        let c = i / 4 % courses;
        let terms = if i % 2 == 0 { "T1" } else { "\"T1,T2\"" };
        writeln!(
            f,
            "K{i:06},,,Class {i},09,C{c:06},K{i},scheduled,Room {},L{:04},{terms},,,1",
            i % 40,
            c % s.schools
        )?;
    }
    f.flush()?;
    let mut f = out(dir, "users.csv")?;
    writeln!(f, "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password")?;
    for i in 0..s.students {
        let (fi, la) = (FIRST[i % 16], LAST[(i / 16) % 16]);
        writeln!(f, "S{i:07},,,true,L{:04},student,s{i},{{SIS:{i}}},{fi},{la},,{i},s{i}@students.example.org,,,,{:02},", i % s.schools, 1 + i % 12)?;
    }
    for i in 0..s.staff {
        let (fi, la) = (FIRST[(i + 3) % 16], LAST[(i / 16 + 5) % 16]);
        writeln!(
            f,
            "T{i:06},,,true,L{:04},teacher,t{i},,{fi},{la},,,t{i}@example.org,,,,,",
            i % s.schools
        )?;
    }
    f.flush()?;
    let mut f = out(dir, "enrollments.csv")?;
    writeln!(f, "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate")?;
    for i in 0..s.rosters {
        let k = rng.below(s.classes);
        let kc = if bad(&mut rng) {
            format!("KX{i}")
        } else {
            format!("K{k:06}")
        };
        let st = if bad(&mut rng) {
            format!("SX{i}")
        } else {
            format!("S{:07}", rng.below(s.students))
        };
        writeln!(
            f,
            "E{i:08},,,{kc},L{:04},{st},student,false,,",
            (k / 4 % courses) % s.schools
        )?;
    }
    for k in 0..s.classes {
        let c = k / 4 % courses;
        writeln!(
            f,
            "ET{k:08},,,K{k:06},L{:04},T{:06},teacher,true,,",
            c % s.schools,
            rng.below(s.staff)
        )?;
    }
    f.flush()
}
