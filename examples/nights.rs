//! Nightly ingests into one store kept open between them, as the daemon keeps it: the first
//! bundle, then each night's, printing per night the seconds, the bytes the batch wrote
//! against the bytes stored, and the store's size on disk (sled frees some space only while
//! the database stays open, so a store opened once per ingest, as `rosterdrop ingest` does,
//! grows differently).
//!
//!     cargo run --release --example nights -- STATE_DIR FIRST NIGHT1 NIGHT2 ...

use std::path::PathBuf;

use rosterdrop::store::dir_bytes;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [state, bundles @ ..] = args.as_slice() else {
        anyhow::bail!("usage: nights STATE_DIR FIRST [NIGHT...]");
    };
    let db = state.join("db");
    let store = rosterdrop::store::Store::open(&db)?;
    let mut sc = rosterdrop::config::SourceConfig::default();
    sc.guard.max_delete_percent = Some(100.0);
    for (n, b) in bundles.iter().enumerate() {
        let t = std::time::Instant::now();
        let done =
            rosterdrop::ingest::ingest(&store, &state.join("reports"), "bench", &sc, b, "cli")?;
        let s = t.elapsed().as_secs_f64();
        let (w, st) = (done.batch.bytes_written, done.batch.bytes_stored.max(1));
        println!(
            "{n:>3} {s:>7.3} s  written/stored {:.3}  stored {:>6.1} MiB  disk {:>6.1} MiB",
            w as f64 / st as f64,
            st as f64 / 1048576.0,
            dir_bytes(&db) as f64 / 1048576.0
        );
    }
    Ok(())
}
