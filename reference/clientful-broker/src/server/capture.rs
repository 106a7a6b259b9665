//! Frame capture (`--capture <path>`): every frame the broker receives or sends,
//! appended as `dir(1: 'I' in, 'O' out) || carrier(1: 'W', 'Q', 'D') ||
//! u64be(connection) || u32be(len) || frame`. Used by the tests to show that no
//! plaintext crosses the broker.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;

/// An open capture file.
pub struct Capture {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl Capture {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Capture {
            file: Mutex::new(std::io::BufWriter::new(f)),
        })
    }

    /// Appends one record and flushes, so a killed broker leaves whole records.
    pub fn record(&self, dir: u8, carrier: u8, conn: u64, frame: &[u8]) {
        let Ok(mut f) = self.file.lock() else {
            return;
        };
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let _ = f
            .write_all(&[dir, carrier])
            .and_then(|_| f.write_all(&conn.to_be_bytes()))
            .and_then(|_| f.write_all(&len.to_be_bytes()))
            .and_then(|_| f.write_all(frame))
            .and_then(|_| f.flush());
    }
}

/// Parses a capture file into (dir, carrier, conn, frame) records.
pub fn parse(bytes: &[u8]) -> Vec<(u8, u8, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 14 {
        let (head, tail) = rest.split_at(14);
        let mut conn = [0u8; 8];
        conn.copy_from_slice(head.get(2..10).unwrap_or(&[0; 8]));
        let mut len = [0u8; 4];
        len.copy_from_slice(head.get(10..14).unwrap_or(&[0; 4]));
        let len = u32::from_be_bytes(len) as usize;
        if tail.len() < len {
            break;
        }
        let (frame, next) = tail.split_at(len);
        out.push((
            head.first().copied().unwrap_or(0),
            head.get(1).copied().unwrap_or(0),
            u64::from_be_bytes(conn),
            frame.to_vec(),
        ));
        rest = next;
    }
    out
}
