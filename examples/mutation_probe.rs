//! A mutation probe: the sample bundles (and Ed-Fi's public OneRoster samples), mutated at
//! random, through the whole library: `check` and its reports; then, for half of them, a real
//! sled store holding the original bundle, four batches of mutations ingested one after the
//! other (manifest modes flipped too, guards sometimes opened), and after each batch every
//! export format checked again (it must check clean: no finding at all), the REST provider's
//! served roster rebuilt, and sometimes a rollback whose export must equal the one before the
//! batch. A panic, an error where none is expected, an export that does not check clean or a
//! rollback that does not restore is a finding: its bundles are saved with WHY.txt.
//!
//!     cargo run --release --example mutation_probe -- SEED ITERATIONS [OUT]
//!
//! Run from the repository's root (it reads `sample-csv/` and `tests/data/`). Deterministic
//! for a seed. It found the defects of the commits that name "a mutation probe".
use rosterdrop::config::SourceConfig;
use rosterdrop::roster::check::check;
use rosterdrop::roster::engine::{NoExternal, Settings};
use rosterdrop::roster::model::{AppleSettings, SchoolYear};
use rosterdrop::roster::schema::Format;
use rosterdrop::store::Store;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const NASTY: &[&str] = &[
    "",
    " ",
    "\"",
    "\"\"",
    "TRUE",
    "FALSE",
    "true",
    "13/45/2020",
    "2/30/2021",
    "2021-02-30",
    "2021-13-01",
    "9999-12-31",
    "0000-00-00",
    "1/1/21",
    "2021-01-01T00:00:00Z",
    "active",
    "tobedeleted",
    "inactive",
    "student",
    "teacher",
    "administrator",
    "aide",
    "guardian",
    "parent",
    "school",
    "district",
    "schoolYear",
    "term",
    "gradingPeriod",
    "semester",
    "KG",
    "PK",
    "13",
    "IT",
    "UG",
    "Other",
    "a@b",
    "x@y.z",
    "é\u{301}",
    "\u{202e}evil",
    "=cmd|' /C calc'!A0",
    "<script>alert(1)</script>",
    "a,b",
    "a\nb",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "NaN",
    "ext:foo",
    "metadata.x",
    "sourcedId",
    "00000000-0000-0000-0000-000000000000",
    "\u{feff}x",
    "\t",
];

fn mutate(rng: &mut Rng, files: &mut Vec<(String, Vec<u8>)>, ids: &[String]) {
    let n = 1 + rng.below(5);
    for _ in 0..n {
        if files.is_empty() {
            return;
        }
        let fi = rng.below(files.len());
        let op = rng.below(18);
        if op >= 16 {
            // manifest modes flipped
            if let Some(m) = files.iter_mut().find(|f| f.0 == "manifest.csv") {
                let t = String::from_utf8_lossy(&m.1).into_owned();
                let mut ls: Vec<String> = t.lines().map(str::to_string).collect();
                let cands: Vec<usize> = (0..ls.len())
                    .filter(|&i| ls[i].starts_with("file."))
                    .collect();
                if !cands.is_empty() {
                    let i = cands[rng.below(cands.len())];
                    let name = ls[i].split(',').next().unwrap_or("").to_string();
                    let mode = ["bulk", "delta", "absent"][rng.below(3)];
                    ls[i] = format!("{name},{mode}");
                }
                m.1 = (ls.join("\n") + "\n").into_bytes();
            }
            continue;
        }
        let text = &mut files[fi].1;
        let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
        let li = rng.below(lines.len());
        match op {
            0..=3 => {
                // replace a field
                let line = String::from_utf8_lossy(&lines[li]).into_owned();
                let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
                let k = rng.below(fields.len());
                fields[k] = if rng.below(3) == 0 && !ids.is_empty() {
                    ids[rng.below(ids.len())].clone()
                } else {
                    let v = NASTY[rng.below(NASTY.len())];
                    if v.contains([',', '"', '\n']) && rng.below(2) == 0 {
                        format!("\"{}\"", v.replace('"', "\"\""))
                    } else {
                        v.to_string()
                    }
                };
                lines[li] = fields.join(",").into_bytes();
            }
            4 => {
                let l = lines[li].clone();
                let at = rng.below(lines.len() + 1);
                lines.insert(at, l);
            }
            5 => {
                lines.remove(li);
            }
            6 => {
                let lj = rng.below(lines.len());
                lines.swap(li, lj);
            }
            7 => {
                let pos = rng.below(lines[li].len() + 1);
                let len = 1 + rng.below(4);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                lines[li].splice(pos..pos, bytes);
            }
            8 => {
                let pos = rng.below(text.len() + 1);
                text.truncate(pos);
                continue;
            }
            9 => {
                if rng.below(4) == 0 {
                    files.remove(fi);
                    return;
                }
            }
            10 => {
                // header columns shuffled
                let line = String::from_utf8_lossy(&lines[0]).into_owned();
                let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
                let a = rng.below(fields.len());
                let b = rng.below(fields.len());
                fields.swap(a, b);
                lines[0] = fields.join(",").into_bytes();
            }
            11 => lines[li].push(b','),
            12 => {
                let joined = lines.join(&b"\r\n"[..]);
                *text = joined;
                continue;
            }
            13 => {
                let line = String::from_utf8_lossy(&lines[0]).into_owned();
                let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
                let a = rng.below(fields.len());
                let dup = fields[a].clone();
                fields.push(dup);
                lines[0] = fields.join(",").into_bytes();
            }
            14 => {
                // many copies of a line with ids changed
                let l = String::from_utf8_lossy(&lines[li]).into_owned();
                for k in 0..rng.below(30) {
                    lines.push(l.replacen(',', &format!("x{k},"), 1).into_bytes());
                }
            }
            _ => {
                let line = String::from_utf8_lossy(&lines[li]).into_owned();
                let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
                let k = rng.below(fields.len());
                fields.remove(k);
                lines[li] = fields.join(",").into_bytes();
            }
        }
        *text = lines.join(&b"\n"[..]);
    }
}

fn read_dir(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn write_dir(d: &Path, files: &[(String, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(d);
    std::fs::create_dir_all(d).unwrap();
    for (n, c) in files {
        std::fs::write(d.join(n), c).unwrap();
    }
}

fn copy(a: &Path, b: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(b)?;
    for e in std::fs::read_dir(a)? {
        let e = e?;
        std::fs::copy(e.path(), b.join(e.file_name()))?;
    }
    Ok(())
}

// The suite's JSON Schema validator (it finds the schemas through `repo()`).
#[path = "../tests/suite/support/api_schema.rs"]
#[allow(dead_code)]
mod api_schema;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every record of `r` rendered in 1.1 and 1.2 and validated against the version's schema.
fn records_are_valid(r: &rosterdrop::roster::model::Roster) -> Result<(), String> {
    use rosterdrop::api::render::{render, Meta, RecordRef, Status};
    use rosterdrop::api::status::Version;
    let records: Vec<RecordRef> = RecordRef::all(r).collect();
    for (v, name) in [(Version::V1p1, "v1p1"), (Version::V1p2, "v1p2")] {
        let base = format!(
            "https://roster.example.edu{}",
            rosterdrop::api::routes_table::base_path(v)
        );
        let m = Meta::new(Status::Active, 1_788_264_000_123, &base);
        for rec in &records {
            let value = render(v, *rec, &m);
            let stem = rosterdrop::api::discovery::schema_stem(rec.entity());
            api_schema::validate(name, stem, &value)
                .map_err(|e| format!("served {name} {stem} {}: {e}", rec.sourced_id()))?;
        }
    }
    Ok(())
}

/// Bases made at the start: small synthetic districts with errors (Apple and OneRoster 1.1),
/// and OneRoster 1.2 bundles (with roles.csv) exported from the 1.1 and Apple samples.
fn made_bases(dir: &Path) -> Vec<PathBuf> {
    let size = rosterdrop::roster::synth::Size::scaled(60);
    let apple = dir.join("synth-apple");
    let oneroster = dir.join("synth-oneroster");
    rosterdrop::roster::synth::apple(&apple, size, 7).unwrap();
    rosterdrop::roster::synth::oneroster(&oneroster, size, 7).unwrap();
    let store = Store::open(&dir.join("db")).unwrap();
    let year = AppleSettings {
        district_id: "d".into(),
        district_name: "d".into(),
        school_year: Some(school_year()),
    };
    let mut out = vec![apple, oneroster];
    for (source, sample) in [("o", "sample-csv/oneroster"), ("a", "sample-csv/apple")] {
        let sc = SourceConfig::default();
        let reports = dir.join("reports");
        rosterdrop::ingest::ingest(&store, &reports, source, &sc, Path::new(sample), "t").unwrap();
        let d = dir.join(format!("{source}-as-1.2"));
        store
            .export_as(source, Format::OneRoster12, &year, &d)
            .unwrap();
        out.push(d);
    }
    store.close().unwrap();
    out
}

fn school_year() -> SchoolYear {
    SchoolYear {
        sourced_id: "2026-2027".into(),
        title: "2026-2027 School Year".into(),
        start_date: "2026-08-17".into(),
        end_date: "2027-06-11".into(),
        year: "2027".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let out = args
        .get(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rosterdrop-mutation-probe"));
    std::fs::create_dir_all(&out).unwrap();
    // A panic is reported as a finding with its message, not printed by the hook.
    std::panic::set_hook(Box::new(|_| {}));
    let made = tempfile::tempdir().unwrap();
    let mut bases: Vec<PathBuf> = [
        "sample-csv/apple",
        "sample-csv/apple-with-errors",
        "sample-csv/oneroster",
        "sample-csv/oneroster-untidy",
        "sample-csv/oneroster-with-errors",
        "tests/data/edfi-oneroster/1.1",
        "tests/data/edfi-oneroster/1.0",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.is_dir())
    .collect();
    bases.extend(made_bases(made.path()));
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut found = 0;
    for it in 0..iters {
        let base = &bases[rng.below(bases.len())];
        let orig = read_dir(base);
        let ids: Vec<String> = orig
            .iter()
            .flat_map(|(_, c)| {
                String::from_utf8_lossy(c)
                    .lines()
                    .skip(1)
                    .take(3)
                    .filter_map(|l| l.split(',').next().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut files = orig.clone();
        mutate(&mut rng, &mut files, &ids);
        let work = tempfile::tempdir().unwrap();
        let b = work.path().join("bundle");
        write_dir(&b, &files);
        let deep = rng.below(2) == 0;
        let mut rng2 = Rng(rng.next() | 1);
        let with_year = rng.below(2) == 0;
        let rng_hold = rng.below(2) == 0;
        let r = catch_unwind(AssertUnwindSafe(|| -> Result<String, String> {
            let o =
                check(&b, &Settings::default(), &NoExternal).map_err(|e| format!("check err {e}"));
            if let Ok(o) = &o {
                rosterdrop::roster::report::write_all(o, &work.path().join("rep"))
                    .map_err(|e| format!("report {e}"))?;
            }
            if !deep {
                return Ok("check".into());
            }
            let store = Store::open(&work.path().join("db")).map_err(|e| format!("open {e}"))?;
            let mut sc = SourceConfig::default();
            sc.guard.max_delete_percent = Some(100.0);
            if rng_hold {
                sc.guard.max_patch_drop_percent = Some(100.0);
            }
            let orig_dir = work.path().join("orig");
            write_dir(&orig_dir, &orig);
            // The original is always applied (a synthetic base drops more rows than the
            // patch guard lets through).
            let mut open = sc.clone();
            open.guard.max_patch_drop_percent = Some(100.0);
            let first = rosterdrop::ingest::ingest(
                &store,
                &work.path().join("r"),
                "s",
                &open,
                &orig_dir,
                "t",
            )
            .map_err(|e| format!("ingest orig {e}"))?;
            let _ = first;
            // Half the Apple sources have a school year, so that they are converted to
            // OneRoster too.
            let apple = AppleSettings {
                district_id: "d".into(),
                district_name: "d".into(),
                school_year: with_year.then(school_year),
            };
            for round in 0..4 {
                let before = work.path().join(format!("before{round}"));
                store
                    .export("s", &before)
                    .map_err(|e| format!("export before {e}"))?;
                let bundle = if round == 0 {
                    b.clone()
                } else {
                    let mut fs2 = orig.clone();
                    mutate(&mut rng2, &mut fs2, &ids);
                    let d = work.path().join(format!("round{round}"));
                    write_dir(&d, &fs2);
                    d
                };
                let second = rosterdrop::ingest::ingest(
                    &store,
                    &work.path().join("r"),
                    "s",
                    &sc,
                    &bundle,
                    "t",
                );
                for f in [
                    Format::Apple,
                    Format::OneRoster10,
                    Format::OneRoster11,
                    Format::OneRoster12,
                ] {
                    let d = work.path().join(format!("x{f:?}{round}"));
                    match store.export_as("s", f, &apple, &d) {
                        Ok(_) => {
                            let c = check(&d, &Settings::default(), &NoExternal);
                            match c {
                                Err(e) => {
                                    return Err(format!(
                                        "round {round}: export {f:?} does not check: {e}"
                                    ))
                                }
                                Ok(o) => {
                                    if !o.findings.is_empty()
                                        || !o.errors.is_empty()
                                        || !o.reasons.is_empty()
                                    {
                                        let _ = copy(&d, &work.path().join("bad-export"));
                                        return Err(format!(
                                            "round {round}: export {f:?} not clean: {:?} {:?} {:?}",
                                            o.findings.first(),
                                            o.errors.first(),
                                            o.reasons.first()
                                        ));
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            let m = e.to_string();
                            if !m.contains("not as OneRoster 1.0") && !m.contains("school_year") {
                                eprintln!("export {f:?}: {m}");
                            }
                        }
                    }
                }
                let api = work.path().join(format!("api{round}"));
                rosterdrop::api::served::refresh(&store, "s", &apple, None, &api, 0, 30)
                    .map_err(|e| format!("round {round}: served {e}"))?;
                // Every record as the REST provider renders it, valid in both versions (an
                // Apple roster without a school year has classes without terms: the daemon
                // warns about it, and it is not checked here).
                let apple_without_year =
                    !with_year && matches!(store.format_of("s"), Ok(Some(Format::Apple)));
                if let (false, Ok(r)) = (apple_without_year, store.roster("s", &apple)) {
                    if let Err(e) = records_are_valid(&r) {
                        return Err(format!("round {round}: {e}"));
                    }
                }
                if let Ok(s) = second {
                    if s.batch.state == rosterdrop::store::BatchState::Applied && rng2.below(3) == 0
                    {
                        store
                            .rollback(s.batch.id)
                            .map_err(|e| format!("rollback {e}"))?;
                        let d = work.path().join(format!("after-rollback{round}"));
                        store
                            .export("s", &d)
                            .map_err(|e| format!("export after rollback {e}"))?;
                        for f in std::fs::read_dir(&before).unwrap() {
                            let f = f.unwrap();
                            let a = std::fs::read(f.path()).unwrap();
                            let b = std::fs::read(d.join(f.file_name())).unwrap_or_default();
                            if a != b {
                                let _ = copy(&d, &work.path().join("bad-export"));
                                return Err(format!(
                                    "round {round}: rollback differs in {:?}",
                                    f.file_name()
                                ));
                            }
                        }
                    }
                }
            }
            store.close().map_err(|e| format!("close {e}"))?;
            Ok("deep".into())
        }));
        let bad = match r {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                if e.starts_with("check err") {
                    None
                } else {
                    Some(e)
                }
            }
            Err(p) => Some(format!(
                "PANIC {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        if let Some(e) = bad {
            found += 1;
            let d = out.join(format!("case-{seed}-{it}"));
            write_dir(&d, &files);
            std::fs::write(d.join("WHY.txt"), format!("{}\n{e}\n", base.display())).unwrap();
            let _ = copy(&work.path().join("bad-export"), &d.join("bad-export"));
            for r in 1..4 {
                let _ = copy(
                    &work.path().join(format!("round{r}")),
                    &d.join(format!("round{r}")),
                );
            }
            println!("{it}: {}: {e}", base.display());
        }
    }
    println!("seed {seed}: {iters} iterations, {found} findings");
}
