//! Stdio framing (CONF-2): a 4-byte little-endian length, then the message.

use std::io::{self, Read, Write};

/// Largest frame accepted (64 MiB).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Writes one frame and flushes.
pub fn write_frame(w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    let len = u32::try_from(msg.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(msg)?;
    w.flush()
}

/// The text a stray line started with: `start`, then up to the end of the line
/// (at most 120 bytes in all), for the message.
fn rest_of_line(r: &mut impl Read, start: &[u8]) -> String {
    let mut line = start.to_vec();
    let mut b = [0u8; 1];
    while line.len() < 120 && !line.ends_with(b"\n") {
        match r.read(&mut b) {
            Ok(1) => line.extend_from_slice(&b),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_string()
}

/// Reads one frame; `Ok(None)` at a clean end of stream. A length that is over
/// the limit and reads as text is reported as a stray line of text.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(len.get_mut(got..).unwrap_or_default())?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated frame length",
                ))
            };
        }
        got += n;
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        if len
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a line of text on stdout ({:?}): stdout carries response frames only; write logs to stderr (CONF-8)",
                    rest_of_line(r, &len)
                ),
            ));
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {n} is over 64 MiB (CONF-6)"),
        ));
    }
    let len = n;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_text_line_is_named_as_text() {
        let mut input: &[u8] = b"hello from the adapter\n\x00\x00";
        let e = read_frame(&mut input)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("a line of text on stdout"), "{e}");
        assert!(e.contains("hello from the adapter"), "{e}");
        assert!(!e.contains("64 MiB"), "{e}");
    }

    #[test]
    fn an_oversized_binary_length_is_named_as_such() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let e = read_frame(&mut input)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("over 64 MiB"), "{e}");
    }
}
