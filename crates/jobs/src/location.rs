//! Where a job reads and writes: a local folder or an S3 prefix, behind `object_store`.
//!
//! An S3 URI is a key *prefix*, as in S3 itself: `s3://calls/2024/` is a folder, `s3://calls/2024-0`
//! every key that starts so. The standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity, instance
//! metadata) configures the client, so S3-compatible stores work as well as AWS.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, PutResult};

use crate::JobError;

/// One side of a job: a store and a prefix in it.
#[derive(Debug, Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    /// The folder part of the prefix, inside `store` (empty for a store's root).
    root: String,
    /// The rest of the prefix: keys under `root` must start with it (empty for a folder).
    partial: String,
    /// What the user wrote, for messages and the manifest.
    uri: String,
    /// What to compare to find overlapping locations: `s3://bucket/root` or a canonical path.
    identity: String,
    /// The folder, for a local location.
    folder: Option<PathBuf>,
}

/// One input document, found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key relative to the input prefix: the output keeps this name.
    pub relative: String,
    pub size: u64,
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///folder` or a plain path. An input must exist; an
    /// output folder is created when missing.
    pub fn parse(uri: &str, create: bool) -> Result<Self, JobError> {
        let bad = |reason: String| JobError::Location { uri: uri.to_owned(), reason };
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            // An endpoint the user wrote as plain http (a store on loopback, a private MinIO) is
            // meant: the client refuses http otherwise.
            let endpoint =
                std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
            if endpoint.is_ok_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            let (root, partial) = split_prefix(prefix, create);
            let identity = format!("s3://{bucket}/{root}");
            return Ok(Self {
                store: Arc::new(store),
                root,
                partial,
                uri: uri.to_owned(),
                identity,
                folder: None,
            });
        }
        if uri.contains("://") && !uri.starts_with("file://") {
            return Err(bad("only s3:// URIs and local folders are supported".into()));
        }
        let path = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
        if create {
            std::fs::create_dir_all(&path).map_err(|e| bad(format!("creating the folder: {e}")))?;
        }
        let meta = std::fs::metadata(&path).map_err(|e| bad(e.to_string()))?;
        let (folder, partial) = if meta.is_dir() {
            (path, String::new())
        } else {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            (parent.map_or_else(|| PathBuf::from("."), FsPath::to_owned), name.unwrap_or_default())
        };
        let folder = folder.canonicalize().map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&folder).map_err(|e| bad(e.to_string()))?;
        let identity = folder.to_string_lossy().into_owned();
        Ok(Self {
            store: Arc::new(store),
            root: String::new(),
            partial,
            uri: uri.to_owned(),
            identity,
            folder: Some(folder),
        })
    }

    /// A store's "not found" on a listing or a write means the bucket is missing: say so plainly
    /// instead of quoting the store's XML.
    pub(crate) fn missing(&self, e: object_store::Error) -> JobError {
        match e {
            object_store::Error::NotFound { .. } => JobError::Location {
                uri: self.uri.clone(),
                reason: "the bucket does not exist".into(),
            },
            e => JobError::Store(e),
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether one location lies inside the other (a job must not read its own outputs).
    pub fn overlaps(&self, other: &Self) -> bool {
        let inside = |a: &str, b: &str| {
            let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
            a == b || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'))
        };
        inside(&self.identity, &other.identity) || inside(&other.identity, &self.identity)
    }

    /// The store key of `relative` under this location.
    pub(crate) fn key(&self, relative: &str) -> Result<Path, JobError> {
        let joined = if self.root.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.root)
        };
        Path::parse(&joined).map_err(|e| JobError::Store(e.into()))
    }

    /// Every object under the prefix, sorted by key, as names relative to it.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, JobError> {
        let root = (!self.root.is_empty()).then(|| Path::from(self.root.as_str()));
        let mut objects: Vec<_> =
            self.store.list(root.as_ref()).try_collect().await.map_err(|e| self.missing(e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let strip = if self.root.is_empty() { 0 } else { self.root.len() + 1 };
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let key = meta.location.as_ref().get(strip..)?;
                let relative = relative_name(key, &self.partial)?;
                Some(Listed { relative, size: meta.size })
            })
            .collect())
    }

    pub(crate) async fn get(&self, relative: &str) -> Result<object_store::GetResult, JobError> {
        Ok(self.store.get(&self.key(relative)?).await?)
    }

    /// Reads a small object whole; `None` when there is none.
    pub(crate) async fn read(&self, relative: &str) -> Result<Option<bytes::Bytes>, JobError> {
        match self.store.get(&self.key(relative)?).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn exists(&self, relative: &str) -> Result<bool, JobError> {
        match self.store.head(&self.key(relative)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an object whole. Objects appear complete or not at all: S3 publishes a PUT at once,
    /// and the local store writes a staging file and renames it.
    pub(crate) async fn put(
        &self,
        relative: &str,
        bytes: impl Into<PutPayload>,
        mode: PutMode,
    ) -> Result<PutResult, object_store::Error> {
        let key = self
            .key(relative)
            .map_err(|e| object_store::Error::Generic { store: "job", source: Box::new(e) })?;
        self.store.put_opts(&key, bytes.into(), PutOptions::from(mode)).await
    }

    pub(crate) async fn delete(&self, relative: &str) -> Result<(), JobError> {
        match self.store.delete(&self.key(relative)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names (relative) under a folder of this location, for the done markers.
    pub(crate) async fn names_under(&self, folder: &str) -> Result<Vec<String>, JobError> {
        let prefix = self.key(folder)?;
        let strip = prefix.as_ref().len() + 1;
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(objects
            .into_iter()
            .filter_map(|m| m.location.as_ref().get(strip..).map(str::to_owned))
            .collect())
    }
}

impl Location {
    /// Removes the staging files (`name#1`) that a process killed while writing leaves in a local
    /// folder; the job's own records are left alone. Called once every batch is done, when no
    /// process writes outputs any more.
    pub(crate) fn sweep_staging(&self) -> std::io::Result<usize> {
        let Some(root) = &self.folder else { return Ok(0) };
        let mut removed = 0;
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let kind = entry.file_type()?;
                if kind.is_dir() && !(folder == *root && name == crate::META) {
                    folders.push(entry.path());
                } else if kind.is_file() && is_staging(&name) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// `object_store`'s local staging names: the final name, `#`, digits.
fn is_staging(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits an S3 key prefix into its folder and the start of the names in it. An output prefix is
/// always a folder.
fn split_prefix(prefix: &str, folder: bool) -> (String, String) {
    let prefix = prefix.trim_start_matches('/');
    if folder || prefix.ends_with('/') || prefix.is_empty() {
        return (prefix.trim_end_matches('/').to_owned(), String::new());
    }
    match prefix.rsplit_once('/') {
        Some((root, partial)) => (root.to_owned(), partial.to_owned()),
        None => (String::new(), prefix.to_owned()),
    }
}

/// The name a listed key (relative to the folder) keeps, when it matches the partial prefix:
/// inside a folder the prefix names, the path below it; otherwise the key itself.
fn relative_name(key: &str, partial: &str) -> Option<String> {
    let rest = key.strip_prefix(partial)?;
    if partial.is_empty() || rest.is_empty() {
        return Some(key.to_owned());
    }
    Some(rest.strip_prefix('/').unwrap_or(key).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_into_folder_and_name_start() {
        assert_eq!(split_prefix("calls/2024/", false), ("calls/2024".into(), String::new()));
        assert_eq!(split_prefix("calls/2024-0", false), ("calls".into(), "2024-0".into()));
        assert_eq!(split_prefix("calls", false), (String::new(), "calls".into()));
        assert_eq!(split_prefix("out/x", true), ("out/x".into(), String::new()));
        assert_eq!(split_prefix("", false), (String::new(), String::new()));
    }

    #[test]
    fn listed_keys_keep_the_names_below_the_prefix() {
        assert_eq!(relative_name("a/b.json", ""), Some("a/b.json".into()));
        assert_eq!(relative_name("calls/x.json", "calls"), Some("x.json".into()));
        assert_eq!(relative_name("2024-01.json", "2024-0"), Some("2024-01.json".into()));
        assert_eq!(relative_name("one.json", "one.json"), Some("one.json".into()));
        assert_eq!(relative_name("other.json", "calls"), None);
    }

    #[test]
    fn nested_locations_overlap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Location::parse(dir.path().to_str().expect("utf-8"), false).expect("a");
        let inner = dir.path().join("out");
        let b = Location::parse(inner.to_str().expect("utf-8"), true).expect("b");
        let other = tempfile::tempdir().expect("tempdir");
        let c = Location::parse(other.path().to_str().expect("utf-8"), false).expect("c");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
