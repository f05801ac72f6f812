//! The writer under every zip archive rosterdrop writes to a file or a capped buffer.
//!
//! When an archive cannot be written (the disk is full, or a mail attachment passes its cap),
//! the `zip` crate's `ZipWriter`, dropped on the error path, tries to finish the archive again
//! and prints `ZipWriter drop failed: ...` straight to stderr, without a newline: into the
//! daemon's log, run on into the next line. [`ZipSink`] stops at the first error: every later
//! write, flush and seek does nothing and succeeds, so the drop has nothing to print, and
//! [`ZipSink::into_inner`] returns that first error, so an archive cut short is never taken
//! for a whole one.

use std::io::{self, Seek, SeekFrom, Write};

/// `W` until its first error, then nothing (see the module's text).
pub struct ZipSink<W> {
    inner: W,
    /// The first error, kept as its kind and text (`io::Error` is not `Clone`).
    failed: Option<(io::ErrorKind, String)>,
    /// The stream's position and end as the writes and seeks so far left them. After the
    /// first error they go on moving as if the writes landed: the zip crate asserts that its
    /// positions only grow while it finishes the archive on the way to its drop.
    pos: u64,
    end: u64,
}

impl<W> ZipSink<W> {
    /// `inner` at position 0 (a new file or buffer).
    pub fn new(inner: W) -> ZipSink<W> {
        ZipSink {
            inner,
            failed: None,
            pos: 0,
            end: 0,
        }
    }

    /// The writer, or the first error any write, flush or seek met.
    pub fn into_inner(self) -> io::Result<W> {
        match self.failed {
            None => Ok(self.inner),
            Some((kind, text)) => Err(io::Error::new(kind, text)),
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = Some((e.kind(), e.to_string()));
        e
    }

    fn moved_to(&mut self, pos: u64) -> u64 {
        self.pos = pos;
        self.end = self.end.max(pos);
        pos
    }
}

impl<W: Write> Write for ZipSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            self.moved_to(self.pos.saturating_add(buf.len() as u64));
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Ok(n) => {
                self.moved_to(self.pos.saturating_add(n as u64));
                Ok(n)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.inner.flush().map_err(|e| self.fail(e))
    }
}

impl<W: Seek> Seek for ZipSink<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.failed.is_some() {
            let to = match pos {
                SeekFrom::Start(n) => n,
                SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
                SeekFrom::End(d) => self.end.saturating_add_signed(d),
            };
            return Ok(self.moved_to(to));
        }
        match self.inner.seek(pos) {
            Ok(n) => Ok(self.moved_to(n)),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// A zip error as the I/O error it is, when it is one: `ZipError::Io` shows only "i/o error",
/// keeping the cause in `source()`, which a log line's `error = %e` does not print (a full disk
/// under `modified.zip` was logged as `.../reports/big/3: i/o error`).
pub fn io_error(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        e => io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Cursor;
    use std::rc::Rc;

    /// A buffer that takes `room` bytes and then fails, counting the writes it refused.
    struct Small {
        buf: Cursor<Vec<u8>>,
        room: u64,
        refused: Rc<Cell<usize>>,
    }

    impl Small {
        fn new(room: u64) -> (Small, Rc<Cell<usize>>) {
            let refused = Rc::new(Cell::new(0));
            let s = Small {
                buf: Cursor::new(Vec::new()),
                room,
                refused: refused.clone(),
            };
            (s, refused)
        }
    }

    impl Write for Small {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.buf.position() + data.len() as u64 > self.room {
                self.refused.set(self.refused.get() + 1);
                return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
            }
            self.buf.write(data)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Small {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.buf.seek(pos)
        }
    }

    #[test]
    fn a_zip_io_error_says_its_cause() {
        let e = io_error(zip::result::ZipError::Io(io::Error::new(
            io::ErrorKind::StorageFull,
            "No space left on device",
        )));
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(e.to_string(), "No space left on device");
        let e = io_error(zip::result::ZipError::FileNotFound);
        assert_eq!(e.to_string(), "specified file not found in archive");
    }

    #[test]
    fn after_its_first_error_nothing_reaches_the_writer_and_the_error_is_kept() {
        let (small, refused) = Small::new(4);
        let mut s = ZipSink::new(small);
        s.write_all(b"abc").unwrap();
        let e = s.write_all(b"defg").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        // Later writes, flushes and seeks succeed and reach nothing.
        s.write_all(b"more").unwrap();
        s.flush().unwrap();
        assert_eq!(s.stream_position().unwrap(), 7);
        assert_eq!(s.seek(SeekFrom::Current(-1)).unwrap(), 6);
        assert_eq!(s.seek(SeekFrom::Start(1)).unwrap(), 1);
        assert_eq!(s.seek(SeekFrom::End(-2)).unwrap(), 5);
        assert_eq!(refused.get(), 1);
        assert_eq!(s.inner.buf.get_ref(), b"abc");
        let e = s.into_inner().err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(e.to_string(), "full");
    }

    /// The zip crate's drop finishes an archive its writer failed, and prints when that fails
    /// again: under a `ZipSink` it reaches the writer no more.
    #[test]
    fn a_zip_dropped_after_its_writer_failed_writes_nothing_more() {
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i},{}\n", i.wrapping_mul(2_654_435_761)).into_bytes())
            .collect();
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let (small, refused) = Small::new(1024);
        let mut z = zip::ZipWriter::new(ZipSink::new(small));
        z.start_file("a.csv", opts).unwrap();
        assert!(z.write_all(&big).is_err());
        drop(z);
        assert_eq!(refused.get(), 1);
        // Within the room, the archive reads back whole.
        let mut z = zip::ZipWriter::new(ZipSink::new(Cursor::new(Vec::new())));
        z.start_file("a.csv", opts).unwrap();
        z.write_all(&big).unwrap();
        let bytes = z.finish().unwrap().into_inner().unwrap().into_inner();
        let mut back = Vec::new();
        io::Read::read_to_end(
            &mut zip::ZipArchive::new(Cursor::new(bytes))
                .unwrap()
                .by_name("a.csv")
                .unwrap(),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, big);
    }
}
