//! In-process benchmarks (criterion), one binary. Each group measures one step of rosterdrop
//! against a baseline measured in the same run, on a synthetic Apple district made by
//! `roster::synth` (20,000 students unless `ROSTERDROP_BENCH_STUDENTS` says otherwise):
//!
//! | group  | baseline                                  | measured                                    |
//! |--------|-------------------------------------------|---------------------------------------------|
//! | parse  | `csv_loop`: the csv crate's `ByteRecord` loop over the files | `check`: check and its reports, as `rosterdrop check` |
//! | ingest | `check`, as above                         | `first` into an empty store; `one_percent`: the copy with 1% of rows changed into a store holding the district |
//! | export | `csv_rewrite`: the bundle's files read by the `ByteRecord` loop and written by the csv crate's writer | `own_format`: `Store::export` of the stored district |
//! | rest   | `export`, as above                        | `served_rebuild`: the REST provider's served roster rebuilt from the store and kept on disk |
//!
//! Stores are real sled databases in temporary directories; each ingest opens its store, commits
//! and closes it, as the CLI does. Process start and exit are not measured here: the
//! whole-process figures are `bench/all.sh`'s.
//!
//!     bench/micro.sh                     # cargo bench, then the table of medians and ratios
//!     cargo bench --bench rosterdrop     # criterion's own output only
//!
//! `cargo test` runs every benchmark once on a 300-student district (criterion's test mode),
//! so a benchmark that breaks fails the suite.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion};
use rosterdrop::config::SourceConfig;
use rosterdrop::roster::check::check;
use rosterdrop::roster::engine::{NoExternal, Settings};
use rosterdrop::roster::model::AppleSettings;
use rosterdrop::roster::{report, synth};
use rosterdrop::store::Store;
use tempfile::TempDir;

/// Every measured pair: group, baseline, measure. `bench/micro.sh` prints these rows.
const PAIRS: [(&str, &str, &str); 5] = [
    ("parse", "csv_loop", "check"),
    ("ingest", "check", "first"),
    ("ingest", "check", "one_percent"),
    ("export", "csv_rewrite", "own_format"),
    ("rest", "export", "served_rebuild"),
];

const SOURCE: &str = "bench";

/// The district, its 1% copy, and a state directory whose store holds the district.
struct Fixture {
    _root: TempDir,
    district: PathBuf,
    changed: PathBuf,
    stored: PathBuf,
    scratch: PathBuf,
    source: SourceConfig,
}

impl Fixture {
    fn new(students: usize) -> Fixture {
        let root = tempfile::tempdir().expect("a temporary directory");
        let district = root.path().join("district");
        let changed = root.path().join("changed");
        synth::apple(&district, synth::Size::scaled(students), 200).expect("synth district");
        one_percent(&district, &changed);
        let mut source = SourceConfig::default();
        // Whole rosters are replaced on purpose.
        source.guard.max_delete_percent = Some(100.0);
        let stored = root.path().join("stored");
        ingest(&stored, &source, &district);
        let scratch = root.path().join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch directory");
        Fixture {
            _root: root,
            district,
            changed,
            stored,
            scratch,
            source,
        }
    }

    /// A fresh directory beside the fixture's (same file system), removed when dropped.
    fn fresh(&self) -> TempDir {
        tempfile::tempdir_in(&self.scratch).expect("a scratch directory")
    }

    /// A copy of the state directory holding the district.
    fn stored_copy(&self) -> TempDir {
        let d = self.fresh();
        copy_tree(&self.stored, d.path());
        d
    }
}

/// `rosterdrop ingest`: open the store under `state`, ingest `bundle`, close the store.
fn ingest(state: &Path, source: &SourceConfig, bundle: &Path) {
    let store = Store::open(&state.join("db")).expect("open the store");
    let done = rosterdrop::ingest::ingest(
        &store,
        &state.join("reports"),
        SOURCE,
        source,
        bundle,
        "bench",
    )
    .expect("ingest");
    assert!(
        matches!(
            done.batch.state,
            rosterdrop::store::BatchState::Applied | rosterdrop::store::BatchState::Unchanged
        ),
        "the benchmark's batch was {:?}",
        done.batch.state
    );
    store.close().expect("close the store");
}

/// `rosterdrop check`: the bundle checked, its reports written into `out`.
fn check_with_reports(bundle: &Path, out: &Path) -> usize {
    let outcome = check(bundle, &Settings::default(), &NoExternal).expect("check");
    report::write_all(&outcome, out).expect("reports");
    outcome.tables.len()
}

/// The parse floor: every CSV file of `dir` through the csv crate's `ByteRecord` loop.
fn csv_loop(dir: &Path) -> u64 {
    let mut fields = 0u64;
    let mut rec = csv::ByteRecord::new();
    for path in csv_files(dir) {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .expect("open a CSV file");
        while r.read_byte_record(&mut rec).expect("read a CSV record") {
            fields += rec.len() as u64;
        }
    }
    fields
}

/// The floor of writing a bundle: every CSV file of `dir` read through the `ByteRecord` loop
/// and written again with the csv crate's writer into `out`.
fn csv_rewrite(dir: &Path, out: &Path) -> u64 {
    let mut records = 0u64;
    let mut rec = csv::ByteRecord::new();
    for path in csv_files(dir) {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .expect("open a CSV file");
        let name = path.file_name().expect("a file name");
        let mut w = csv::Writer::from_path(out.join(name)).expect("create a CSV file");
        while r.read_byte_record(&mut rec).expect("read a CSV record") {
            w.write_byte_record(&rec).expect("write a CSV record");
            records += 1;
        }
        w.flush().expect("flush a CSV file");
    }
    records
}

fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the district's folder")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    v.sort();
    v
}

/// Writes into `dst` the Apple CSVs of `src` with every 100th data row of each file changed
/// in one non-key field (references stay valid), as `bench/data.sh`'s `change_rows` with
/// seed 0 does.
fn one_percent(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("the 1% copy's folder");
    for path in csv_files(src) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let column = match name {
            "students.csv" => "grade_level",
            "staff.csv" => "sis_username",
            "courses.csv" => "course_name",
            "classes.csv" => "class_number",
            "locations.csv" => "location_name",
            "rosters.csv" => "student_id",
            _ => continue,
        };
        let mut r = csv::Reader::from_path(&path).expect("open a district file");
        let headers = r.headers().expect("a header row").clone();
        let at = headers
            .iter()
            .position(|h| h == column)
            .expect("the changed column");
        let mut w = csv::Writer::from_path(dst.join(name)).expect("write the 1% copy");
        w.write_record(&headers).expect("write the header row");
        for (i, row) in r.records().enumerate() {
            let row = row.expect("a district row");
            if i % 100 != 99 {
                w.write_record(&row).expect("write a row");
                continue;
            }
            let old = &row[at];
            let new = match name {
                "students.csv" => match old.parse::<u32>() {
                    Ok(g) if g < 12 => (g + 1).to_string(),
                    _ => "1".to_string(),
                },
                "staff.csv" => format!("{old}x"),
                "courses.csv" => format!("{old} (revised)"),
                "classes.csv" => format!("{old}b"),
                "locations.csv" => format!("{old} Campus"),
                _ if old == "S0000000" => "S0000001".to_string(),
                _ => "S0000000".to_string(),
            };
            let fields = row
                .iter()
                .enumerate()
                .map(|(j, f)| if j == at { new.as_str() } else { f });
            w.write_record(fields).expect("write a changed row");
        }
        w.flush().expect("flush the 1% copy");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a copy's folder");
    for e in std::fs::read_dir(from).expect("read a folder to copy") {
        let e = e.expect("a directory entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("a file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy a file");
        }
    }
}

fn parse(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("parse");
    g.bench_function("csv_loop", |b| b.iter(|| csv_loop(&f.district)));
    g.bench_function("check", |b| {
        b.iter_batched(
            || f.fresh(),
            |out| (check_with_reports(&f.district, out.path()), out),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn ingests(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("ingest");
    g.bench_function("check", |b| {
        b.iter_batched(
            || f.fresh(),
            |out| (check_with_reports(&f.district, out.path()), out),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("first", |b| {
        b.iter_batched(
            || f.fresh(),
            |state| {
                ingest(state.path(), &f.source, &f.district);
                state
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("one_percent", |b| {
        b.iter_batched(
            || f.stored_copy(),
            |state| {
                ingest(state.path(), &f.source, &f.changed);
                state
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The stored district, opened once for the export and REST groups.
fn open_stored(f: &Fixture) -> (TempDir, Store) {
    let state = f.stored_copy();
    let store = Store::open(&state.path().join("db")).expect("open the stored district");
    (state, store)
}

fn exports(c: &mut Criterion, f: &Fixture, store: &Store) {
    let mut g = c.benchmark_group("export");
    g.bench_function("csv_rewrite", |b| {
        b.iter_batched(
            || f.fresh(),
            |out| (csv_rewrite(&f.district, out.path()), out),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("own_format", |b| {
        b.iter_batched(
            || f.fresh(),
            |out| {
                store.export(SOURCE, out.path()).expect("export");
                out
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn rest(c: &mut Criterion, f: &Fixture, store: &Store) {
    let mut g = c.benchmark_group("rest");
    g.bench_function("export", |b| {
        b.iter_batched(
            || f.fresh(),
            |out| {
                store.export(SOURCE, out.path()).expect("export");
                out
            },
            BatchSize::PerIteration,
        )
    });
    let apple = AppleSettings::default();
    g.bench_function("served_rebuild", |b| {
        b.iter_batched(
            || f.fresh(),
            |api| {
                let served = rosterdrop::api::served::refresh(
                    store,
                    SOURCE,
                    &apple,
                    None,
                    api.path(),
                    0,
                    30,
                )
                .expect("served rebuild");
                (served, api)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Where criterion keeps its results, worked out as criterion itself does (short of asking
/// `cargo metadata`), and given to it, so that the table below reads what this run wrote.
fn results_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("criterion"),
        None => PathBuf::from("target/criterion"),
    }
}

/// The median of one benchmark of this run, in seconds (criterion's `estimates.json`); `None`
/// when this run did not measure it (a filter left it out: the file is an older run's).
fn median(dir: &Path, group: &str, name: &str, since: SystemTime) -> Option<f64> {
    let p = dir
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&p).ok()?.modified().ok()? < since {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1e9)
}

fn print_table(dir: &Path, students: usize, since: SystemTime) {
    println!("\nrosterdrop benches, {students} students (medians; ratio = measure / baseline)");
    println!(
        "{:<8} {:<16} {:>11} {:<16} {:>11} {:>7}",
        "group", "baseline", "s", "measure", "s", "ratio"
    );
    for (group, base, measure) in PAIRS {
        let (Some(b), Some(m)) = (
            median(dir, group, base, since),
            median(dir, group, measure, since),
        ) else {
            println!("{group:<8} {base:<16} (not measured in this run)");
            continue;
        };
        println!(
            "{group:<8} {base:<16} {b:>11.4} {measure:<16} {m:>11.4} {:>7.2}",
            m / b
        );
    }
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench")
        && !std::env::args().any(|a| a == "--test" || a == "--list");
    let students = if benchmarking {
        std::env::var("ROSTERDROP_BENCH_STUDENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_000)
    } else {
        300
    };
    let dir = results_dir();
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let f = Fixture::new(students);
    parse(&mut c, &f);
    ingests(&mut c, &f);
    let (_state, store) = open_stored(&f);
    exports(&mut c, &f, &store);
    rest(&mut c, &f, &store);
    c.final_summary();
    if benchmarking {
        print_table(&dir, students, since);
    }
}
