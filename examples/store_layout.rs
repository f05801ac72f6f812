//! Measures a candidate store layout in a real sled database before it is built (issue 15):
//! each table's rows hashed into segments of about S rows (FNV-1a of the row's first field,
//! modulo the segment count), a segment's rows sorted and deflated as one base value, and a
//! per-segment delta value holding the rows changed since its base. Night after night, 1% of
//! every table's rows change the way `bench/data.sh night` changes them; each night is one
//! `apply_batch` (the touched deltas rewritten; the segments whose delta passed FRAC of their
//! base compacted, largest share first, within BUDGET of the store's bytes) and a flush.
//! With MODE `runs` (the default is `one`), a night's changes of a segment are a value of
//! their own (`d`, segment, night) instead of rewriting the segment's one delta value, and
//! compaction merges all of a segment's runs into its base.
//! Prints, per night, the bytes written (deflated values) against the live bytes, and the
//! database directory's size against the CSVs'.
//!
//!     cargo run --release --example store_layout -- DISTRICT_DIR [S] [FRAC] [NIGHTS] [BUDGET] [LEVEL] [MODE]
//!
//! It uses no code of rosterdrop's store (rows are CSV lines, not the store's encoding): it
//! measures sled and the write pattern, which decide the space and write figures.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn deflate(rows: &BTreeMap<Vec<u8>, Vec<u8>>, level: u32) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    for (k, v) in rows {
        let _ = e.write_all(k);
        let _ = e.write_all(v);
        let _ = e.write_all(b"\n");
    }
    e.finish().unwrap_or_default()
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += du(&p);
        } else if let Ok(m) = p.metadata() {
            // Allocated bytes, as du counts them (sled's files are sparse).
            n += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
        }
    }
    n
}

struct Seg {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    delta: BTreeMap<Vec<u8>, Vec<u8>>,
    /// This night's changes (mode `runs`).
    tonight: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The nights whose runs the segment holds (mode `runs`).
    nights: Vec<u32>,
    base_len: usize,
    delta_len: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: store_layout DISTRICT_DIR [S] [FRAC] [NIGHTS] [BUDGET] [LEVEL]")?;
    let s: usize = args.get(2).map_or(Ok(4096), |a| a.parse())?;
    let frac: f64 = args.get(3).map_or(Ok(0.25), |a| a.parse())?;
    let nights: u32 = args.get(4).map_or(Ok(30), |a| a.parse())?;
    let budget: f64 = args.get(5).map_or(Ok(0.05), |a| a.parse())?;
    let level: u32 = args.get(6).map_or(Ok(6), |a| a.parse())?;
    let runs = args.get(7).is_some_and(|m| m == "runs");
    let mib = |b: u64| b as f64 / f64::from(1 << 20);

    let mut csv_bytes = 0u64;
    let mut tables: Vec<(String, Vec<Seg>)> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    names.sort();
    for p in names {
        let data = std::fs::read(&p)?;
        csv_bytes += data.len() as u64;
        let lines: Vec<&[u8]> = data
            .split(|&c| c == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
            .collect();
        let n = lines.len().div_ceil(s).max(1);
        let mut segs: Vec<Seg> = (0..n)
            .map(|_| Seg {
                rows: BTreeMap::new(),
                delta: BTreeMap::new(),
                tonight: BTreeMap::new(),
                nights: Vec::new(),
                base_len: 0,
                delta_len: 0,
            })
            .collect();
        for l in lines {
            let cut = l.iter().position(|&c| c == b',').unwrap_or(l.len());
            let (k, v) = l.split_at(cut);
            let i = (fnv1a(k) % n as u64) as usize;
            segs[i].rows.insert(k.to_vec(), v.to_vec());
        }
        let name = p.file_stem().map(|x| x.to_string_lossy().into_owned());
        tables.push((name.unwrap_or_default(), segs));
    }

    let tmp = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(tmp.path())
        .cache_capacity(64 << 20)
        .open()?;
    let tree = db.open_tree("roster")?;
    let key = |kind: u8, t: &str, i: usize| {
        [&[kind, 0], t.as_bytes(), &[0], &(i as u32).to_be_bytes()].concat()
    };
    let run_key = |t: &str, i: usize, n: u32| [key(b'd', t, i), n.to_be_bytes().to_vec()].concat();

    let started = std::time::Instant::now();
    let mut b = sled::Batch::default();
    let mut live = 0usize;
    let mut values = 0usize;
    for (t, segs) in &mut tables {
        for (i, sg) in segs.iter_mut().enumerate() {
            let v = deflate(&sg.rows, level);
            sg.base_len = v.len();
            live += v.len();
            values += 1;
            b.insert(key(b'g', t, i), v);
        }
    }
    tree.apply_batch(b)?;
    db.flush()?;
    println!(
        "S={s} frac={frac} budget={budget} level={level} runs={runs}: CSV {:.1} MiB; {values} base values, \
         mean {:.0} KiB; first write {:.2} s",
        mib(csv_bytes),
        live as f64 / values as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    println!("night  written MiB  written/live  values  compacted  live MiB  db MiB  db/CSV  s  blobs MiB");
    println!(
        "{:>5}  {:>11.2}  {:>12}  {:>6}  {:>9}  {:>8.1}  {:>6.1}  {:>6.2}",
        0,
        mib(live as u64),
        "-",
        values,
        0,
        mib(live as u64),
        mib(du(tmp.path())),
        du(tmp.path()) as f64 / csv_bytes as f64
    );
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for night in 1..=nights {
        let started = std::time::Instant::now();
        let mut b = sled::Batch::default();
        let mut written = 0usize;
        let mut touched = std::collections::BTreeSet::new();
        for (ti, (_, segs)) in tables.iter_mut().enumerate() {
            let total: usize = segs.iter().map(|s| s.rows.len()).sum();
            for _ in 0..(total / 100).max(1) {
                let i = (next() % segs.len() as u64) as usize;
                let sg = &mut segs[i];
                if sg.rows.is_empty() {
                    continue;
                }
                let nth = (next() % sg.rows.len() as u64) as usize;
                if let Some((k, v)) = sg.rows.iter_mut().nth(nth) {
                    v.push(b'x');
                    sg.delta.insert(k.clone(), v.clone());
                    sg.tonight.insert(k.clone(), v.clone());
                }
                touched.insert((ti, i));
            }
        }
        // Deltas of the touched segments; then compaction within the budget.
        let mut over = Vec::new();
        for &(ti, i) in &touched {
            let name = tables[ti].0.clone();
            let sg = &mut tables[ti].1[i];
            if runs {
                // Tonight's run is written whatever compaction decides (it is small).
                let v = deflate(&std::mem::take(&mut sg.tonight), level);
                sg.delta_len += v.len();
                written += v.len();
                sg.nights.push(night);
                b.insert(run_key(&name, i, night), v);
                if sg.delta_len as f64 > frac * sg.base_len as f64 {
                    over.push((sg.delta_len as f64 / sg.base_len as f64, ti, i));
                }
                continue;
            }
            sg.tonight.clear();
            let v = deflate(&sg.delta, level);
            sg.delta_len = v.len();
            if sg.delta_len as f64 > frac * sg.base_len as f64 {
                over.push((sg.delta_len as f64 / sg.base_len as f64, ti, i));
            } else {
                written += v.len();
                b.insert(key(b'd', &name, i), v);
            }
        }
        over.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut left = budget * live as f64;
        let mut compacted = 0;
        for (_, ti, i) in over {
            let name = tables[ti].0.clone();
            let sg = &mut tables[ti].1[i];
            if left > 0.0 {
                let v = deflate(&sg.rows, level);
                left -= v.len() as f64;
                written += v.len();
                sg.base_len = v.len();
                sg.delta.clear();
                sg.delta_len = 0;
                b.insert(key(b'g', &name, i), v);
                b.remove(key(b'd', &name, i));
                for n in std::mem::take(&mut sg.nights) {
                    b.remove(run_key(&name, i, n));
                }
                compacted += 1;
            } else if !runs {
                let v = deflate(&sg.delta, level);
                written += v.len();
                b.insert(key(b'd', &name, i), v);
            }
        }
        tree.apply_batch(b)?;
        db.flush()?;
        live = tables
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|s| s.base_len + s.delta_len)
            .sum();
        let d = du(tmp.path());
        println!(
            "{:>5}  {:>11.2}  {:>12.3}  {:>6}  {:>9}  {:>8.1}  {:>6.1}  {:>6.2}  {:.2}  {:.1}",
            night,
            mib(written as u64),
            written as f64 / live as f64,
            touched.len(),
            compacted,
            mib(live as u64),
            mib(d),
            d as f64 / csv_bytes as f64,
            started.elapsed().as_secs_f64(),
            mib(du(&tmp.path().join("blobs")))
        );
    }
    Ok(())
}
