//! Benchmark: `Store::roster` (a stored roster read into the one roster model, what the REST
//! provider does after each commit) on a synthetic OneRoster district.
//!
//! `model_roster DIR STUDENTS`: the first run writes the district (as `rosterdrop synth
//! --format oneroster --students STUDENTS`) and ingests it into `DIR/state`; later runs read the
//! roster three times, then export it as apple, oneroster-1.2 and oneroster-1.1
//! (`Store::export_as`, into `DIR/export-*`), printing the seconds and the process's peak
//! resident size.

use std::path::Path;
use std::time::Instant;

/// A `/proc/self/status` line's value (`VmHWM`, `VmRSS`).
fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim_start_matches(':').trim().to_string())
        })
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(students)) = (args.next(), args.next()) else {
        return Err("usage: model_roster DIR STUDENTS".into());
    };
    let dir = Path::new(&dir);
    let db = dir.join("state/db");
    let fresh = !db.exists();
    let store = rosterdrop::store::Store::open(&db)?;
    if fresh {
        let bundle = dir.join("bundle");
        let size = rosterdrop::roster::synth::Size::scaled(students.parse()?);
        rosterdrop::roster::synth::oneroster(&bundle, size, 0)?;
        let config = dir.join("rosterdrop.toml");
        std::fs::write(&config, "state_dir = \"state\"\n[sources.synth]\n")?;
        let cfg = rosterdrop::config::Config::load(&config)?;
        let t = Instant::now();
        let r = rosterdrop::ingest::ingest(
            &store,
            &dir.join("reports"),
            "synth",
            cfg.source("synth")?,
            &bundle,
            "bench",
        )?;
        println!(
            "ingested: {:?} in {:.1} s",
            r.batch.state,
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let apple = rosterdrop::roster::model::AppleSettings::default();
    println!(
        "store open: peak {}, now {}",
        status("VmHWM"),
        status("VmRSS")
    );
    for run in 1..=3 {
        let t = Instant::now();
        let r = store.roster("synth", &apple)?;
        let read = t.elapsed().as_secs_f64();
        let (users, enrollments) = (r.users.len(), r.enrollments.len());
        let (peak, now) = (status("VmHWM"), status("VmRSS"));
        let t = Instant::now();
        drop(r);
        println!(
            "run {run}: Store::roster {read:.2} s ({users} users, {enrollments} enrollments), \
             peak {peak}, with the roster {now}; dropping it {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    for f in [
        rosterdrop::roster::schema::Format::Apple,
        rosterdrop::roster::schema::Format::OneRoster12,
        rosterdrop::roster::schema::Format::OneRoster11,
    ] {
        let out = dir.join(format!("export-{}", f.label()));
        let _ = std::fs::remove_dir_all(&out);
        let t = Instant::now();
        let e = store.export_as("synth", f, &apple, &out)?;
        println!(
            "export_as {}: {:.2} s, lost {:?}, peak {}",
            f.label(),
            t.elapsed().as_secs_f64(),
            e.lost,
            status("VmHWM")
        );
    }
    Ok(())
}
