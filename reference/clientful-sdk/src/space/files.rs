//! Files (spec §9.6, STO-16): stored chunked and encrypted under the current
//! epoch, referenced from documents by a 64-byte reference (hex).

use std::path::Path;

use clientful_storage::files::FileRef;

use super::SpaceSession;
use crate::error::{AccessError, ClientError, FileRefError};

impl SpaceSession {
    /// Stores a file (chunked, encrypted, STO-16) from `path`; `progress` gets the
    /// bytes stored so far. Returns its reference (hex), to put in a document.
    pub async fn put_file(
        &mut self,
        path: &Path,
        media_type: &str,
        progress: impl FnMut(u64),
    ) -> Result<String, ClientError> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(path, e))?;
        let media = media_type.to_owned();
        let r = self
            .with_main(async move |s| s.put_file(f, &media, progress).await)
            .await?
            .ok_or(AccessError::NoCurrentKey)?;
        Ok(hex::encode(r.to_bytes()))
    }

    /// Fetches the file `reference` into `out` (written to a temporary file,
    /// then renamed: a failed fetch leaves nothing behind); `progress` gets
    /// `(written, total)`. Returns the media type.
    pub async fn get_file(
        &mut self,
        reference: &str,
        out: &Path,
        progress: impl FnMut(u64, u64),
    ) -> Result<String, ClientError> {
        let bytes = hex::decode(reference.trim()).map_err(|_| FileRefError::NotHex)?;
        let r = FileRef::from_bytes(&bytes).ok_or(FileRefError::Length)?;
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
