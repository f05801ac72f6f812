//! A source's stored roster written back out as CSV files.

use super::*;

impl Store {
    /// The format a source's roster is kept in, if it has one.
    pub fn format_of(&self, source: &str) -> Result<Option<Format>> {
        Ok(self
            .state(source)?
            .format
            .as_deref()
            .and_then(Format::from_label))
    }

    /// Writes the source's current roster as a bundle in its own format.
    pub fn export(&self, source: &str, dir: &Path) -> Result<Format> {
        let Some(format) = self.format_of(source)? else {
            return Err(StoreError::Refused(format!(
                "source `{source}` has no roster yet"
            )));
        };
        std::fs::create_dir_all(dir)?;
        let schema = Schema::for_format(format);
        let mut manifest = String::from("propertyName,value\nmanifest.version,1.0\n");
        // OneRoster 1.0 has no manifest.csv by design: its files are the bundle.
        let with_manifest = format.is_oneroster() && format != Format::OneRoster10;
        if with_manifest {
            manifest.push_str(&format!(
                "oneroster.version,{}\n",
                if format == Format::OneRoster11 {
                    "1.1"
                } else {
                    "1.2"
                }
            ));
        }
        let dialect = crate::roster::csvio::Dialect {
            backslash_escapes: format == Format::Apple,
            ..Default::default()
        };
        for t in &schema.tables {
            let mut rows: Vec<Vec<(String, String)>> = Vec::new();
            for (k, v) in self.records(source, t.name)? {
                rows.push(decode_row(&v).ok_or_else(|| corrupt(&k, "undecodable record"))?);
            }
            if format.is_oneroster() {
                let mode = if rows.is_empty() { "absent" } else { "bulk" };
                manifest.push_str(&format!("file.{},{mode}\n", t.name));
                if rows.is_empty() {
                    continue;
                }
            }
            // Header: the schema's columns, then numbered and extra columns seen in the data.
            let mut header: Vec<String> = t.columns.iter().map(|c| c.name.to_string()).collect();
            let mut extra: Vec<String> = rows
                .iter()
                .flat_map(|r| r.iter().map(|(n, _)| n.clone()))
                .filter(|n| !header.contains(n))
                .collect();
            extra.sort();
            extra.dedup();
            header.extend(extra);
            let f = std::fs::File::create(dir.join(format!("{}.csv", t.name)))?;
            let mut w = crate::roster::csvio::CsvWriter::new(std::io::BufWriter::new(f), dialect)?;
            w.write_row(header.iter().map(String::as_str))?;
            for r in &rows {
                w.write_row(header.iter().map(|h| {
                    r.iter()
                        .find(|(n, _)| n == h)
                        .map_or("", |(_, v)| v.as_str())
                }))?;
            }
            w.into_inner().flush()?;
        }
        if with_manifest {
            std::fs::write(dir.join("manifest.csv"), manifest)?;
        }
        Ok(format)
    }
}
