//! A minimal WebSocket client for the scale figures (RFC 6455, client side, binary
//! frames only), so that tens of thousands of clients fit beside the servers on one
//! machine and the load generator stays cheaper than the broker it measures.
//!
//! A connection is a plain `tokio::net::TcpStream` after the upgrade: no read buffer
//! of its own while idle (the scale figures hold idle connections as bare sockets)
//! and a small growable buffer while active ([`FrameReader`]). Frames are sent with
//! a zero masking key (a client must mask; a zero key leaves the bytes as they are,
//! so nothing is copied to mask them). Server frames are never masked and never
//! fragmented by tungstenite, the broker's library; ping, pong and text frames are
//! skipped, close or end of stream ends the reader.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest frame accepted from a server (a DELIVER of a B4 document's largest
/// batch is far smaller).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Opens a TCP connection from the loopback address `source` (so that more than one
/// source address's ephemeral ports can be used for one server) and upgrades it to
/// WebSocket on `path`. Returns the stream and any bytes read past the upgrade
/// response (a server may speak first: y-websocket sends its sync step 1 at once).
pub async fn connect(
    server: SocketAddr,
    source: Ipv4Addr,
    path: &str,
) -> Result<(TcpStream, Vec<u8>)> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let mut s = sock.connect(server).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 1024];
    let mut n = 0;
    loop {
        let Some(spare) = buf.get_mut(n..) else {
            bail!("upgrade response too long");
        };
        if spare.is_empty() {
            bail!("upgrade response too long");
        }
        let k = s.read(spare).await?;
        if k == 0 {
            bail!("closed during the upgrade");
        }
        n += k;
        let got = buf.get(..n).unwrap_or_default();
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if !got.starts_with(b"HTTP/1.1 101") {
                bail!(
                    "upgrade refused: {:?}",
                    String::from_utf8_lossy(got.get(..got.len().min(64)).unwrap_or_default())
                );
            }
            let rest = got.get(end + 4..).unwrap_or_default().to_vec();
            return Ok((s, rest));
        }
    }
}

/// One binary frame, masked with a zero key.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x82);
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Sends one binary frame.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> Result<()> {
    w.write_all(&frame(payload)).await?;
    Ok(())
}

/// Reads server frames from a byte stream.
pub struct FrameReader<R> {
    r: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with an initial buffer of `cap` bytes (it grows for larger frames).
    pub fn new(r: R, cap: usize) -> Self {
        FrameReader::with_prefix(r, cap, &[])
    }

    /// A reader whose first bytes are `prefix` (read past the upgrade response).
    pub fn with_prefix(r: R, cap: usize, prefix: &[u8]) -> Self {
        let mut buf = vec![0; cap.max(16).max(prefix.len())];
        if let Some(head) = buf.get_mut(..prefix.len()) {
            head.copy_from_slice(prefix);
        }
        FrameReader {
            r,
            buf,
            start: 0,
            end: prefix.len(),
        }
    }

    /// The underlying stream back (bytes buffered and not yet read are dropped).
    pub fn into_inner(self) -> R {
        self.r
    }

    async fn fill(&mut self, need: usize) -> Result<bool> {
        while self.end - self.start < need {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            let spare = self.buf.get_mut(self.end..).unwrap_or_default();
            let k = self.r.read(spare).await?;
            if k == 0 {
                return Ok(false);
            }
            self.end += k;
        }
        Ok(true)
    }

    /// The next binary frame's payload, or `None` at close or end of stream.
    pub async fn next(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if !self.fill(2).await? {
                return Ok(None);
            }
            let b = self.buf.get(self.start..self.end).unwrap_or_default();
            let (b0, b1) = (
                b.first().copied().unwrap_or(0),
                b.get(1).copied().unwrap_or(0),
            );
            if b1 & 0x80 != 0 {
                bail!("masked frame from the server");
            }
            let (head, len) = match b1 & 0x7f {
                126 => {
                    if !self.fill(4).await? {
                        return Ok(None);
                    }
                    let b = self
                        .buf
                        .get(self.start + 2..self.start + 4)
                        .unwrap_or_default();
                    (4, usize::from(u16::from_be_bytes(b.try_into()?)))
                }
                127 => {
                    if !self.fill(10).await? {
                        return Ok(None);
                    }
                    let b = self
                        .buf
                        .get(self.start + 2..self.start + 10)
                        .unwrap_or_default();
                    (10, usize::try_from(u64::from_be_bytes(b.try_into()?))?)
                }
                n => (2, usize::from(n)),
            };
            if len > MAX_FRAME {
                bail!("frame of {len} bytes from the server");
            }
            if !self.fill(head + len).await? {
                return Ok(None);
            }
            let from = self.start + head;
            self.start = from + len;
            match b0 & 0x0f {
                0x2 => {
                    return self
                        .buf
                        .get(from..from + len)
                        .map(Some)
                        .ok_or_else(|| anyhow!("frame bounds"));
                }
                0x8 => return Ok(None),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked), as tungstenite writes it.
    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let n = payload.len();
        if n < 126 {
            f.push(n as u8);
        } else if n <= 0xffff {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn client_frames_are_masked_with_a_zero_key() {
        for n in [0usize, 125, 126, 65_535, 65_536] {
            let p = vec![7u8; n];
            let f = frame(&p);
            let head = match n {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(f.first(), Some(&0x82));
            assert_eq!(f.get(1).map(|b| b & 0x80), Some(0x80), "mask bit");
            assert_eq!(f.get(head..head + 4), Some(&[0u8; 4][..]), "zero key");
            assert_eq!(f.get(head + 4..), Some(&p[..]));
        }
    }

    #[tokio::test]
    async fn reader_splits_frames_of_every_length_form_and_skips_control_frames() {
        let big = vec![3u8; 70_000];
        let mid = vec![2u8; 300];
        let mut bytes = Vec::new();
        bytes.extend(server_frame(0x2, b"hello"));
        bytes.extend(server_frame(0x9, b"ping"));
        bytes.extend(server_frame(0x2, &mid));
        bytes.extend(server_frame(0x2, &big));
        bytes.extend(server_frame(0x8, b""));
        bytes.extend(server_frame(0x2, b"after close"));
        // The first frame's bytes arrive as leftover of the upgrade response.
        let (prefix, rest) = bytes.split_at(3);
        let (mut w, r) = tokio::io::duplex(1024);
        let rest = rest.to_vec();
        let writer = tokio::spawn(async move { w.write_all(&rest).await });
        let mut fr = FrameReader::with_prefix(r, 16, prefix);
        assert_eq!(fr.next().await.ok().flatten(), Some(&b"hello"[..]));
        assert_eq!(fr.next().await.ok().flatten(), Some(&mid[..]));
        assert_eq!(fr.next().await.ok().flatten(), Some(&big[..]));
        assert!(matches!(fr.next().await, Ok(None)), "close ends the reader");
        assert!(matches!(writer.await, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn masked_server_frames_and_truncation_are_refused_or_end() {
        let mut masked = server_frame(0x2, b"x");
        if let Some(b) = masked.get_mut(1) {
            *b |= 0x80;
        }
        let mut fr = FrameReader::new(&masked[..], 16);
        assert!(fr.next().await.is_err());
        let whole = server_frame(0x2, b"truncated payload");
        let cut = whole.get(..whole.len() - 3).unwrap_or_default();
        let mut fr = FrameReader::new(cut, 16);
        assert!(matches!(fr.next().await, Ok(None)));
    }
}
