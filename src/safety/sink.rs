//! The writer every byte difyplan prints goes through (stdout and stderr): it holds each line
//! until it is complete and [`scrub`]s the secrets out of it, so no report, diff, note or
//! error can print a secret value that a reader saw, whichever code path produced the text.

use super::secret::scrub;
use std::io::{self, Write};

/// A line-buffered writer that scrubs secrets from each line before passing it on.
pub struct Scrubbed<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Scrubbed<W> {
    pub fn new(inner: W) -> Self {
        Scrubbed { inner, line: Vec::new() }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.inner.write_all(scrub(text).as_bytes()),
            Err(_) => self.inner.write_all(scrub(&String::from_utf8_lossy(bytes)).as_bytes()),
        }
    }
}

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(last) = self.line.iter().rposition(|&b| b == b'\n') {
            let rest = self.line.split_off(last + 1);
            let done = std::mem::replace(&mut self.line, rest);
            self.emit(&done)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let done = std::mem::take(&mut self.line);
            self.emit(&done)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Scrubbed<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_scrubbed_whole_even_when_written_in_pieces() {
        crate::safety::secret::register("Piece-wise-secret");
        let mut out = Vec::new();
        {
            let mut w = Scrubbed::new(&mut out);
            write!(w, "x=Piece-").unwrap();
            write!(w, "wise-secret\nnext Piece-wise-").unwrap();
            write!(w, "secret").unwrap();
            w.flush().unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "x=***\nnext ***");
    }
}
