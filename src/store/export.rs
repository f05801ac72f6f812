//! A source's stored roster written back out as CSV files, in its own format (lossless) or,
//! through the one roster model, in another; and the stored roster as that model.

use super::*;
use crate::roster::model::{self, AppleSettings, Roster};
use crate::roster::text::is_unnamed;

/// What [`Store::export_as`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The format the source's roster is kept in.
    pub source_format: Format,
    /// The format written.
    pub format: Format,
    /// What the target format could not hold, one line each (empty for a same-format export).
    pub lost: Vec<String>,
}

impl Store {
    /// The format a source's roster is kept in, if it has one.
    pub fn format_of(&self, source: &str) -> Result<Option<Format>> {
        Ok(self
            .state(source)?
            .format
            .as_deref()
            .and_then(Format::from_label))
    }

    fn kept_format(&self, source: &str) -> Result<Format> {
        self.format_of(source)?
            .ok_or_else(|| StoreError::Refused(format!("source `{source}` has no roster yet")))
    }

    /// Calls `visit` with the fields of every stored record of a table, page by page (not in
    /// key order), borrowed from each inflated page.
    fn each_record(
        &self,
        source: &str,
        table: &str,
        visit: &mut dyn FnMut(&model::read::Fields<'_>),
    ) -> Result<()> {
        let pages = self.table_pages_once(&k_records(source, table))?;
        each_page(source, table, pages, &mut |raw| {
            visit_raw_page_keyed(raw, &mut |_, fields| visit(fields))
        })
    }

    /// Calls `read` with each raw page of a table, in bucket order; a page `read` cannot
    /// decode (`None`) stops the walk as corrupt, naming the page.
    pub(super) fn each_page(
        &self,
        source: &str,
        table: &str,
        read: &mut dyn FnMut(&[u8]) -> Option<()>,
    ) -> Result<()> {
        each_page(
            source,
            table,
            self.table_pages(&k_records(source, table))?,
            read,
        )
    }

    /// The source's current roster in the one model (`roster::model`): one pass over its
    /// stored pages, each record read once. `apple` is what an Apple source lacks (the district
    /// org, the school-year session); a OneRoster source ignores it.
    pub fn roster(&self, source: &str, apple: &AppleSettings) -> Result<Roster> {
        let format = self.kept_format(source)?;
        model::read(format, apple, |table, visit| {
            self.each_record(source, table, visit)
        })
    }

    /// Writes the source's current roster as a bundle in its own format: the schema's columns
    /// first, then numbered and extra columns sorted by name, rows sorted by primary key.
    /// Nothing is converted, so extra columns and every stored value are kept.
    ///
    /// A table at a time, straight from its stored pages: each record's key and place are
    /// taken in one pass, sorted, and each record is then read where it lies and written; no
    /// value is copied out of the pages (a table's pages are what is in memory).
    pub fn export(&self, source: &str, dir: &Path) -> Result<Format> {
        let format = self.kept_format(source)?;
        let schema = Schema::for_format(format);
        let mut w = model::write::BundleWriter::new(format, dir)?;
        for t in &schema.tables {
            let prefix = k_records(source, t.name);
            let stored: Vec<segments::PageRef> =
                self.table_pages_once(&prefix)?.collect::<Result<_>>()?;
            let bad = |p: &segments::PageRef| {
                corrupt(
                    &[&prefix[..], &p.bucket.to_be_bytes()].concat(),
                    "undecodable page",
                )
            };
            // Every record as (sort word, key, page, offset of the record in the page).
            let mut pages = Vec::with_capacity(stored.len());
            let mut recs: Vec<(u64, &[u8], u32, u32)> = Vec::new();
            let mut fields = Vec::new();
            for p in &stored {
                let mut page = RawPage::open(p.raw()).ok_or_else(|| bad(p))?;
                let at_page = u32::try_from(pages.len()).map_err(|_| bad(p))?;
                loop {
                    let at = u32::try_from(page.offset()).map_err(|_| bad(p))?;
                    match page.next_record(&mut fields).ok_or_else(|| bad(p))? {
                        Some(k) => recs.push((0, k, at_page, at)),
                        None => break,
                    }
                }
                pages.push((page, p));
            }
            // Keys share a prefix (`R000`): sorted by the eight bytes after it first.
            let shared = shared_prefix(recs.iter().map(|r| r.1));
            for r in &mut recs {
                r.0 = sort_word(r.1, shared);
            }
            recs.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(y.1)));
            // The header: the schema's columns, then every other name the pages use. A store
            // written before unnamed columns were left out may hold one: it is not written
            // (an empty header name at the end reads as a stray separator).
            let mut header: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
            let names: std::collections::BTreeSet<&str> = pages
                .iter()
                .flat_map(|(page, _)| page.names.iter().copied())
                .filter(|n| !t.columns.iter().any(|c| c.name == *n) && !is_unnamed(n))
                .collect();
            header.extend(names);
            let column: HashMap<&str, usize> =
                header.iter().enumerate().map(|(i, &n)| (n, i)).collect();
            // Per page, the header column of each of its names (`None`: not written).
            let columns: Vec<Vec<Option<usize>>> = pages
                .iter()
                .map(|(page, p)| {
                    page.names
                        .iter()
                        .map(|n| match column.get(n) {
                            Some(&c) => Ok(Some(c)),
                            None if is_unnamed(n) => Ok(None),
                            None => Err(bad(p)),
                        })
                        .collect()
                })
                .collect::<Result<_>>()?;
            let Some(mut out) = w.begin(t.name, &header, recs.len())? else {
                continue;
            };
            let mut row = vec![""; header.len()];
            for &(_, _, at_page, at) in &recs {
                let (page, p) = &pages[at_page as usize];
                page.record_at(at as usize, &mut fields)
                    .ok_or_else(|| bad(p))?;
                row.fill("");
                for &(n, v) in &fields {
                    let Some(c) = columns[at_page as usize][n] else {
                        continue;
                    };
                    // The first of a repeated name wins (a stored record has none).
                    if row[c].is_empty() {
                        row[c] = v;
                    }
                }
                out.row(row.iter().copied())?;
            }
            out.finish()?;
        }
        w.finish()?;
        Ok(format)
    }

    /// Writes the source's current roster as a bundle of `format` (Apple, OneRoster 1.1 or
    /// 1.2). The source's own format takes the lossless path of [`Store::export`]; another
    /// goes through the one roster model, and what it cannot hold is listed in
    /// [`Exported::lost`]. An Apple source needs `[sources.X.apple.school_year]` for OneRoster
    /// (every class needs a term, and Apple has none).
    pub fn export_as(
        &self,
        source: &str,
        format: Format,
        apple: &AppleSettings,
        dir: &Path,
    ) -> Result<Exported> {
        let kept = self.kept_format(source)?;
        if kept == format {
            self.export(source, dir)?;
            return Ok(Exported {
                source_format: kept,
                format,
                lost: Vec::new(),
            });
        }
        if format == Format::OneRoster10 {
            return Err(StoreError::Refused(format!(
                "source `{source}` keeps a {} roster; it can be exported as apple, \
                 oneroster-1.1 or oneroster-1.2, not as OneRoster 1.0",
                kept.label()
            )));
        }
        if kept == Format::Apple && format.is_oneroster() && apple.school_year.is_none() {
            return Err(StoreError::Refused(format!(
                "source `{source}` keeps an Apple roster, which has no academic sessions; \
                 exporting it as {} needs the school year of its classes: set \
                 [sources.{source}.apple.school_year] (sourced_id, title, start_date, \
                 end_date, year) in the configuration",
                format.label()
            )));
        }
        let roster = self.roster(source, apple)?;
        let lost = model::write::write(&roster, format, dir).map_err(|e| match e {
            model::write::WriteDirError::Io(e) => StoreError::Io(e),
            e => StoreError::Refused(e.to_string()),
        })?;
        Ok(Exported {
            source_format: kept,
            format,
            lost,
        })
    }
}

/// [`Store::each_page`] over `pages`, the pages of `table`.
fn each_page(
    source: &str,
    table: &str,
    pages: segments::TablePages<'_>,
    read: &mut dyn FnMut(&[u8]) -> Option<()>,
) -> Result<()> {
    for p in pages {
        let p = p?;
        read(p.raw()).ok_or_else(|| {
            corrupt(
                &[&k_records(source, table)[..], &p.bucket.to_be_bytes()].concat(),
                "undecodable page",
            )
        })?;
    }
    Ok(())
}
