//! Large files (spec §9.9: STO-16 to STO-18): photos, video, audio, PDF, streamed in fixed-size
//! chunks with bounded memory (two chunk buffers), each chunk sealed under a random
//! per-file key and stored under its content address, listed by a signed,
//! encrypted file manifest. Documents reference a file by its [`FileRef`].

use clientful_core::limits::ID_LEN;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::backend::BlobStore;
use crate::chunk::{open_chunk, seal_chunk};
use crate::error::StorageError;
use crate::layout::{ObjectId, object_id};
use crate::object::{CHUNK_SIZE, FileManifest, Kind};
use crate::space::Space;

/// How a document references a stored file: the epoch that sealed its manifest
/// and the manifest's object id (64 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRef {
    /// Epoch id.
    pub epoch_id: [u8; 32],
    /// File manifest object id.
    pub manifest: ObjectId,
}

impl FileRef {
    /// `epoch_id || manifest`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..ID_LEN].copy_from_slice(&self.epoch_id);
        out[ID_LEN..].copy_from_slice(&self.manifest);
        out
    }

    /// Parses [`FileRef::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 64 {
            return None;
        }
        Some(FileRef {
            epoch_id: b.get(..ID_LEN)?.try_into().ok()?,
            manifest: b.get(ID_LEN..)?.try_into().ok()?,
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, StorageError> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else { break };
        let k = r.read(rest).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

impl<S: BlobStore> Space<S> {
    /// Streams `reader` into storage as an encrypted, chunked file; `progress` gets
    /// the plaintext bytes stored so far after each chunk.
    pub async fn put_file<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
        media_type: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<FileRef, StorageError> {
        let es = self.current().clone();
        let mut file_key = [0u8; 32];
        rand_core::Rng::fill_bytes(self.rng(), &mut file_key);
        let chunk = CHUNK_SIZE as usize;
        let mut cur = vec![0u8; chunk];
        let mut next = vec![0u8; chunk];
        let mut cur_len = fill(&mut reader, &mut cur).await?;
        let mut hasher = Sha256::new();
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let mut index = 0u64;
        while cur_len > 0 {
            let next_len = fill(&mut reader, &mut next).await?;
            let plain = cur.get(..cur_len).unwrap_or_default();
            hasher.update(plain);
            let sealed = seal_chunk(&file_key, index, next_len == 0, plain)?;
            let id = object_id(&sealed)?;
            self.store()
                .put_immutable(&es.object_path(&id), sealed)
                .await?;
            chunks.push(id);
            size += cur_len as u64;
            index += 1;
            progress(size);
            std::mem::swap(&mut cur, &mut next);
            cur_len = next_len;
        }
        let manifest = FileManifest {
            device: self.device().public_bytes(),
            size,
            chunk_size: CHUNK_SIZE,
            chunks,
            file_key,
            content_hash: hasher.finalize().into(),
            media_type: media_type.to_owned(),
        };
        let body = manifest.encode(&es);
        let file = self.seal(&es, Kind::File, body)?;
        let id = object_id(&file)?;
        self.store()
            .put_immutable(&es.object_path(&id), file)
            .await?;
        Ok(FileRef {
            epoch_id: *es.epoch_id(),
            manifest: id,
        })
    }

    /// Streams a stored file into `writer`, verifying every chunk; `progress` gets
    /// `(bytes written, total size)`. A missing, changed or substituted chunk, or a
    /// substituted manifest, is a `STORAGE_CORRUPT` error naming the file and chunk;
    /// bytes already written before it must be discarded by the caller.
    pub async fn get_file<W: AsyncWrite + Unpin>(
        &self,
        file: &FileRef,
        mut writer: W,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<FileManifest, StorageError> {
        let name = format!(
            "file {}",
            hex::encode(file.manifest.get(..4).unwrap_or_default())
        );
        let es = self
            .epochs()
            .iter()
            .find(|e| e.epoch_id() == &file.epoch_id)
            .ok_or(StorageError::Core(clientful_core::Error::UnknownEpoch))?
            .clone();
        let opened = self
            .fetch_object(&es, Kind::File, &file.manifest, &format!("{name} manifest"))
            .await?;
        let m = FileManifest::decode(&opened.body, &es, &opened.signer)?;
        let n = m.chunks.len() as u64;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        for (i, id) in m.chunks.iter().enumerate() {
            let i = i as u64;
            let what = format!("{name} chunk {i} of {n}");
            let sealed = self
                .store()
                .get(&es.object_path(id))
                .await?
                .ok_or_else(|| StorageError::corrupt(&what, "missing"))?;
            if &object_id(&sealed)? != id {
                return Err(StorageError::corrupt(
                    &what,
                    "changed: content does not match its address",
                ));
            }
            let last = i + 1 == n;
            let plain = open_chunk(&m.file_key, i, last, &sealed).ok_or_else(|| {
                StorageError::corrupt(
                    &what,
                    "substituted: does not authenticate for this file and position",
                )
            })?;
            let expected = if last {
                m.size - u64::from(m.chunk_size) * (n - 1)
            } else {
                u64::from(m.chunk_size)
            };
            if plain.len() as u64 != expected {
                return Err(StorageError::corrupt(&what, "wrong length"));
            }
            hasher.update(&plain);
            writer.write_all(&plain).await?;
            done += plain.len() as u64;
            progress(done, m.size);
        }
        writer.flush().await?;
        if <[u8; 32]>::from(hasher.finalize()) != m.content_hash {
            return Err(StorageError::corrupt(
                name,
                "substituted: content hash does not match the manifest",
            ));
        }
        Ok(m)
    }
}
