//! Benchmark baseline: read every CSV file of a bundle directory with the csv crate's
//! `ByteRecord` loop and do nothing else. `bench/check.sh` compares `rosterdrop check` with it.

use std::io::BufReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: parse_only DIR")?;
    let (mut records, mut fields) = (0u64, 0u64);
    let mut rec = csv::ByteRecord::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "csv") {
            let f = BufReader::with_capacity(256 * 1024, std::fs::File::open(&path)?);
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(f);
            while r.read_byte_record(&mut rec)? {
                records += 1;
                fields += rec.len() as u64;
            }
        }
    }
    println!("{records} records, {fields} fields");
    Ok(())
}
