//! Storage given as a URL (spec §9.10 backends):
//!
//! | URL | backend |
//! |---|---|
//! | `file:///abs/folder`, or a plain path | a local folder |
//! | `s3://bucket/root?endpoint=http://host:port&region=us-east-1` | any S3-compatible service; keys from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` |
//! | `webdav://host:port/root` (`webdavs://` for TLS) | a WebDAV server; credentials from `CLIENTFUL_WEBDAV_USER` and `CLIENTFUL_WEBDAV_PASSWORD` |
//!
//! Secrets never go in the URL: it is stored in the space's settings and
//! printed in messages.

use std::path::PathBuf;

use clientful_storage::{OpendalStore, S3Config};

use crate::error::ClientError;

/// What is wrong with a storage URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlProblem {
    /// Empty.
    Empty,
    /// A folder URL without a folder.
    NoFolder,
    /// A relative folder (it is kept and used from any working directory).
    RelativeFolder,
    /// An S3 URL without a bucket.
    NoBucket,
    /// An S3 URL without its service endpoint.
    NoEndpoint,
    /// A WebDAV URL without a host.
    NoHost,
    /// A scheme this client does not know.
    UnknownScheme,
    /// The backend needs a variable the environment lacks.
    MissingEnv(&'static str),
    /// A folder, on a platform without a file system (a browser).
    NoFolders,
}

impl std::fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlProblem::Empty => f.write_str("empty"),
            UrlProblem::NoFolder => f.write_str("no folder"),
            UrlProblem::RelativeFolder => {
                f.write_str("a folder must be an absolute path (file:///abs/folder or /abs/folder)")
            }
            UrlProblem::NoBucket => f.write_str("no bucket"),
            UrlProblem::NoEndpoint => {
                f.write_str("give the service as `?endpoint=http://host:port`")
            }
            UrlProblem::NoHost => f.write_str("no host"),
            UrlProblem::UnknownScheme => {
                f.write_str("unknown scheme (use file://, s3://, webdav:// or webdavs://)")
            }
            UrlProblem::MissingEnv(k) => write!(f, "S3 storage needs {k} in the environment"),
            UrlProblem::NoFolders => f.write_str(
                "a folder cannot be storage here (no file system); use s3:// or webdav://",
            ),
        }
    }
}

/// A storage URL that is not one, or lacks what its backend needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage URL `{url}`: {problem}")]
pub struct StorageUrlError {
    /// The URL as given (it holds no secret: see the module documentation).
    pub url: String,
    /// What is wrong.
    pub problem: UrlProblem,
}

/// A parsed storage URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageUrl {
    /// A local folder.
    Folder(PathBuf),
    /// S3-compatible.
    S3 {
        /// Bucket.
        bucket: String,
        /// Root inside the bucket.
        root: String,
        /// Endpoint URL.
        endpoint: String,
        /// Region.
        region: String,
    },
    /// WebDAV.
    Webdav {
        /// `http(s)://host:port`.
        endpoint: String,
        /// Root folder.
        root: String,
    },
}

fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

fn root_of(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        "/".into()
    } else {
        format!("/{p}/")
    }
}

impl StorageUrl {
    /// Parses `url`.
    pub fn parse(url: &str) -> Result<Self, StorageUrlError> {
        let bad = |problem| StorageUrlError {
            url: url.to_owned(),
            problem,
        };
        // A folder is kept in the space's settings and used from any working
        // directory later: it must be absolute (`file:relative/dir` would be a
        // folder named `file:relative` under whatever the current directory is).
        let absolute = |p: &str| -> Result<Self, StorageUrlError> {
            if p.is_empty() {
                return Err(bad(UrlProblem::NoFolder));
            }
            let path = PathBuf::from(p);
            if !path.is_absolute() {
                return Err(bad(UrlProblem::RelativeFolder));
            }
            Ok(StorageUrl::Folder(path))
        };
        if let Some(rest) = url.strip_prefix("file://") {
            return absolute(rest);
        }
        if let Some(rest) = url.strip_prefix("file:") {
            return absolute(rest);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (loc, q) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, path) = loc.split_once('/').unwrap_or((loc, ""));
            if bucket.is_empty() {
                return Err(bad(UrlProblem::NoBucket));
            }
            let q = query(q);
            let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
            let endpoint = get("endpoint")
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .ok_or_else(|| bad(UrlProblem::NoEndpoint))?;
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_owned(),
                root: root_of(path),
                endpoint,
                region: get("region").unwrap_or_else(|| "us-east-1".into()),
            });
        }
        for (scheme, http) in [("webdav://", "http://"), ("webdavs://", "https://")] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                if host.is_empty() {
                    return Err(bad(UrlProblem::NoHost));
                }
                return Ok(StorageUrl::Webdav {
                    endpoint: format!("{http}{host}"),
                    root: root_of(path),
                });
            }
        }
        if url.contains("://") {
            return Err(bad(UrlProblem::UnknownScheme));
        }
        if url.is_empty() {
            return Err(bad(UrlProblem::Empty));
        }
        absolute(url)
    }

    /// Opens the backend, with credentials from the environment.
    pub fn open(&self) -> Result<OpendalStore, ClientError> {
        self.open_with(&|k| std::env::var(k).ok())
    }

    /// Opens the backend, with credentials from `var` (a browser has no
    /// environment: the shell passes them in). A folder exists only natively.
    pub fn open_with(
        &self,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OpendalStore, ClientError> {
        Ok(match self {
            #[cfg(not(target_arch = "wasm32"))]
            StorageUrl::Folder(p) => {
                std::fs::create_dir_all(p).map_err(|e| ClientError::io(p, e))?;
                OpendalStore::fs(p)?
            }
            #[cfg(target_arch = "wasm32")]
            StorageUrl::Folder(p) => {
                return Err(StorageUrlError {
                    url: p.display().to_string(),
                    problem: UrlProblem::NoFolders,
                }
                .into());
            }
            StorageUrl::S3 {
                bucket,
                root,
                endpoint,
                region,
            } => {
                let key = |k: &'static str| {
                    var(k).ok_or_else(|| StorageUrlError {
                        url: format!("s3://{bucket}{root}"),
                        problem: UrlProblem::MissingEnv(k),
                    })
                };
                OpendalStore::s3(&S3Config {
                    endpoint: endpoint.clone(),
                    bucket: bucket.clone(),
                    region: region.clone(),
                    access_key_id: key("AWS_ACCESS_KEY_ID")?,
                    secret_access_key: key("AWS_SECRET_ACCESS_KEY")?,
                    root: root.clone(),
                })?
            }
            StorageUrl::Webdav { endpoint, root } => OpendalStore::webdav(
                endpoint,
                &var("CLIENTFUL_WEBDAV_USER").unwrap_or_default(),
                &var("CLIENTFUL_WEBDAV_PASSWORD").unwrap_or_default(),
                root,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            StorageUrl::parse("file:///tmp/x").ok(),
            Some(StorageUrl::Folder("/tmp/x".into()))
        );
        assert_eq!(
            StorageUrl::parse("/abs/dir").ok(),
            Some(StorageUrl::Folder("/abs/dir".into()))
        );
        assert_eq!(
            StorageUrl::parse("file:/abs/dir").ok(),
            Some(StorageUrl::Folder("/abs/dir".into()))
        );
        // Relative folders are refused in every form.
        for rel in [
            "rel/dir",
            "file:relative/dir",
            "file://relative/dir",
            "file:",
            "file://",
        ] {
            assert!(StorageUrl::parse(rel).is_err(), "{rel}");
        }
        assert_eq!(
            StorageUrl::parse("s3://b/team/a?endpoint=http://127.0.0.1:1&region=eu").ok(),
            Some(StorageUrl::S3 {
                bucket: "b".into(),
                root: "/team/a/".into(),
                endpoint: "http://127.0.0.1:1".into(),
                region: "eu".into(),
            })
        );
        assert_eq!(
            StorageUrl::parse("webdavs://h:8/x").ok(),
            Some(StorageUrl::Webdav {
                endpoint: "https://h:8".into(),
                root: "/x/".into()
            })
        );
        assert!(StorageUrl::parse("ftp://x").is_err());
        assert!(StorageUrl::parse("s3://?endpoint=x").is_err());
        assert!(StorageUrl::parse("").is_err());
    }
}
