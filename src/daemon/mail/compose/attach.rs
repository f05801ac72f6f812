//! The patch summary attached to the email: as it is, or zipped when large, within the
//! configured cap.

use super::*;
use crate::zipsink::{io_error, ZipSink};

/// Whether a CSV file has a line after its header.
pub(super) fn has_rows(path: &Path) -> io::Result<bool> {
    let mut r = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    line.clear();
    r.read_until(b'\n', &mut line)?;
    Ok(line.iter().any(|b| !b.is_ascii_whitespace()))
}

/// `patch-summary.csv` as an attachment, or why there is none.
pub(super) fn patch_attachment(
    path: &Path,
    cfg: &MailConfig,
) -> (Option<Attachment>, Option<String>) {
    let size = match (std::fs::metadata(path), has_rows(path)) {
        (Ok(m), Ok(true)) => m.len(),
        (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return (None, None),
        (Ok(_), Ok(false)) => return (None, None),
        (Err(e), _) | (_, Err(e)) => {
            return (
                None,
                Some(format!(
                    "patch-summary.csv could not be read ({e}); see the reports above."
                )),
            )
        }
    };
    let too_big = |n: u64| {
        Some(format!(
            "patch-summary.csv is not attached: {} is over the {} limit; see the reports above.",
            human(n),
            human(cfg.attach_max_bytes)
        ))
    };
    if size <= cfg.attach_zip_over_bytes {
        if size > cfg.attach_max_bytes {
            return (None, too_big(size));
        }
        return match std::fs::read(path) {
            Ok(data) => (
                Some(Attachment {
                    filename: "patch-summary.csv".into(),
                    content_type: "text/csv; charset=utf-8".into(),
                    data,
                }),
                None,
            ),
            Err(e) => (
                None,
                Some(format!("patch-summary.csv could not be read ({e})")),
            ),
        };
    }
    match zip_file(path, "patch-summary.csv", cfg.attach_max_bytes) {
        Ok(data) => (
            Some(Attachment {
                filename: "patch-summary.zip".into(),
                content_type: "application/zip".into(),
                data,
            }),
            None,
        ),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => (
            None,
            Some(format!(
                "patch-summary.csv is not attached: it is {}, and over the {} limit even zipped; see the reports above.",
                human(size),
                human(cfg.attach_max_bytes)
            )),
        ),
        Err(e) => (
            None,
            Some(format!("patch-summary.csv could not be zipped ({e})")),
        ),
    }
}

pub(super) fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// An in-memory buffer that refuses to grow past `cap` bytes (`FileTooLarge`), so that
/// zipping a huge file stops as soon as the result cannot be attached.
pub(super) struct Capped {
    pub(super) buf: Cursor<Vec<u8>>,
    pub(super) cap: u64,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.position() + data.len() as u64 > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "attachment over the size limit",
            ));
        }
        self.buf.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Capped {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.buf.seek(pos)
    }
}

/// `path` deflated into a one-file zip named `name`, at most `cap` bytes.
pub(super) fn zip_file(path: &Path, name: &str, cap: u64) -> io::Result<Vec<u8>> {
    let mut src = File::open(path)?;
    let large = src.metadata()?.len() >= u64::from(u32::MAX);
    let mut z = zip::ZipWriter::new(ZipSink::new(Capped {
        buf: Cursor::new(Vec::new()),
        cap,
    }));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(large);
    z.start_file(name, opts).map_err(io_error)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        z.write_all(&chunk[..n])?;
    }
    Ok(z.finish().map_err(io_error)?.into_inner()?.buf.into_inner())
}
