//! Helper of the large-file test (`tests/large_file.rs`): streams `SIZE` bytes of
//! deterministic pseudo-random data into a local-folder store and back out through
//! the chunked file API, then prints one line of `key=value` results including the
//! process's peak resident set size (VmHWM from /proc/self/status).
//!
//! Usage: `stream-file DIR SIZE`

use std::pin::Pin;
use std::task::{Context, Poll};

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_storage::space::{Space, SpaceConfig};
use clientful_storage::{LocalStore, OpendalStore};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Deterministic pseudo-random bytes, hashed as they are produced.
struct Source {
    rng: ChaCha20Rng,
    left: u64,
    hash: Sha256,
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(256 * 1024) as usize;
        let mut tmp = vec![0u8; n];
        self.rng.fill_bytes(&mut tmp);
        self.hash.update(&tmp);
        self.left -= n as u64;
        buf.put_slice(&tmp);
        Poll::Ready(Ok(()))
    }
}

/// Hashes what is written to it.
struct Sink {
    hash: Sha256,
    len: u64,
}

impl AsyncWrite for Sink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.hash.update(buf);
        self.len += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("missing DIR")?);
    let size: u64 = args.next().ok_or("missing SIZE")?.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // One member device with fixed keys (a test helper: no secret is at stake).
        let device = SigningKey::from_seed(&[11; 32]);
        let signers = vec![device.public_bytes()];
        std::fs::create_dir_all(dir.join("storage"))?;
        let store = OpendalStore::fs(&dir.join("storage"))?;
        let local = LocalStore::open(&dir.join("local.redb"))?;
        let mut space = Space::new(
            store,
            local,
            SpaceConfig {
                space_id: [1; 32],
                device,
                epoch: EpochKey::new([3; 32], [4; 32]),
                old_epochs: Vec::new(),
                signers,
                rng_seed: Some([5; 32]),
            },
        )?;
        space.init().await?;
        let mut source = Source {
            rng: ChaCha20Rng::from_seed([9; 32]),
            left: size,
            hash: Sha256::new(),
        };
        let (mut put_calls, mut put_last) = (0u64, 0u64);
        let file = space
            .put_file(&mut source, "application/octet-stream", |done| {
                put_calls += 1;
                put_last = done;
            })
            .await?;
        let mut sink = Sink {
            hash: Sha256::new(),
            len: 0,
        };
        let (mut get_calls, mut get_last, mut get_total) = (0u64, 0u64, 0u64);
        space
            .get_file(&file, &mut sink, |done, total| {
                get_calls += 1;
                get_last = done;
                get_total = total;
            })
            .await?;
        println!(
            "in_hash={} out_hash={} out_len={} put_calls={put_calls} put_last={put_last} get_calls={get_calls} get_last={get_last} get_total={get_total} vmhwm_kib={}",
            hex::encode(source.hash.finalize()),
            hex::encode(sink.hash.finalize()),
            sink.len,
            vm_hwm_kib().unwrap_or(u64::MAX),
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
