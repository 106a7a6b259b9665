//! Files (spec §9.6, STO-16): stored chunked and encrypted under the current
//! epoch, referenced from documents by a 64-byte reference (hex). From and to
//! bytes or any async reader/writer on every platform; from and to a path
//! natively.

#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use clientful_storage::files::FileRef;

use super::SpaceSession;
use crate::error::{AccessError, ClientError, FileRefError};

/// Parses a file reference (hex of [`FileRef::to_bytes`]).
fn parse_ref(reference: &str) -> Result<FileRef, ClientError> {
    let bytes = hex::decode(reference.trim()).map_err(|_| FileRefError::NotHex)?;
    Ok(FileRef::from_bytes(&bytes).ok_or(FileRefError::Length)?)
}

impl SpaceSession {
    /// Stores a file (chunked, encrypted, STO-16) read from `source`;
    /// `progress` gets the bytes stored so far. Returns its reference (hex).
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &mut self,
        source: R,
        media_type: &str,
        progress: impl FnMut(u64),
    ) -> Result<String, ClientError> {
        let media = media_type.to_owned();
        let r = self
            .with_main(async move |s| s.put_file(source, &media, progress).await)
            .await?
            .ok_or(AccessError::NoCurrentKey)?;
        Ok(hex::encode(r.to_bytes()))
    }

    /// Stores a file (chunked, encrypted, STO-16) holding `bytes`; see
    /// [`Self::put_reader`].
    pub async fn put_bytes(
        &mut self,
        bytes: &[u8],
        media_type: &str,
        progress: impl FnMut(u64),
    ) -> Result<String, ClientError> {
        self.put_reader(bytes, media_type, progress).await
    }

    /// Fetches the file `reference` into `sink` (not flushed on failure: what
    /// was written is then partial); `progress` gets `(written, total)`.
    /// Returns the media type.
    pub async fn get_writer<W: AsyncWrite + Unpin>(
        &mut self,
        reference: &str,
        sink: &mut W,
        progress: impl FnMut(u64, u64),
    ) -> Result<String, ClientError> {
        let r = parse_ref(reference)?;
        if !self.core.replica().keys().contains(&r.epoch_id) {
            return Err(AccessError::FileSealed(r.epoch_id).into());
        }
        let m = self
            .with_main(async move |s| {
                let m = s.get_file(&r, &mut *sink, progress).await?;
                tokio::io::AsyncWriteExt::flush(sink).await?;
                Ok(m)
            })
            .await?
            .ok_or(AccessError::NoCurrentKey)?;
        Ok(m.media_type)
    }

    /// Fetches the file `reference` into memory: its bytes and media type.
    pub async fn get_bytes(
        &mut self,
        reference: &str,
        progress: impl FnMut(u64, u64),
    ) -> Result<(Vec<u8>, String), ClientError> {
        let mut out = Vec::new();
        let media = self.get_writer(reference, &mut out, progress).await?;
        Ok((out, media))
    }

    /// Stores a file (chunked, encrypted, STO-16) from `path`; `progress` gets the
    /// bytes stored so far. Returns its reference (hex), to put in a document.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn put_file(
        &mut self,
        path: &Path,
        media_type: &str,
        progress: impl FnMut(u64),
    ) -> Result<String, ClientError> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(path, e))?;
        self.put_reader(f, media_type, progress).await
    }

    /// Fetches the file `reference` into `out` (written to a temporary file,
    /// then renamed: a failed fetch leaves nothing behind); `progress` gets
    /// `(written, total)`. Returns the media type.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn get_file(
        &mut self,
        reference: &str,
        out: &Path,
        progress: impl FnMut(u64, u64),
    ) -> Result<String, ClientError> {
        let r = parse_ref(reference)?;
        if !self.core.replica().keys().contains(&r.epoch_id) {
            return Err(AccessError::FileSealed(r.epoch_id).into());
        }
        let tmp = out.with_extension("clientful-partial");
        let f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ClientError::io(&tmp, e))?;
        let res = self
            .with_main(async move |s| {
                let mut f = f;
                let m = s.get_file(&r, &mut f, progress).await?;
                tokio::io::AsyncWriteExt::flush(&mut f).await?;
                f.sync_all().await?;
                Ok(m)
            })
            .await;
        match res {
            Ok(Some(m)) => {
                std::fs::rename(&tmp, out).map_err(|e| ClientError::io(out, e))?;
                Ok(m.media_type)
            }
            Ok(None) => {
                let _ = std::fs::remove_file(&tmp);
                Err(AccessError::NoCurrentKey.into())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}
