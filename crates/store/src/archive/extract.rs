//! Hardened extraction of zip and gzip'd tar archives into a staging folder.
//!
//! Entry names must be plain relative paths (checked per component); links, device nodes, fifos
//! and sockets are refused rather than skipped; duplicates never overwrite; and entry count,
//! decompressed size and compression ratio are capped by counting bytes as they are produced,
//! never by trusting sizes in headers.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;

use super::{ArchiveError, UnpackLimits, io_err, safe_relative_path};

/// Unix file-type bits of a zip entry's mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

pub(super) fn extract_zip(
    source: &Path,
    dest: &Path,
    limits: &UnpackLimits,
    budget: &Budget,
) -> Result<(), ArchiveError> {
    let file = File::open(source).map_err(io_err(source))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))?;
    if zip.len() > limits.max_entries {
        return Err(too_many_entries(limits));
    }
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = entry.name().to_owned();
        let unsafe_entry = |reason: &str| ArchiveError::UnsafeEntry {
            entry: name.clone(),
            reason: reason.to_owned(),
        };
        let file_type = entry.unix_mode().map_or(0, |mode| mode & S_IFMT);
        match file_type {
            0 | S_IFREG | S_IFDIR => {}
            S_IFLNK => return Err(unsafe_entry("symbolic links are not allowed")),
            _ => return Err(unsafe_entry("device nodes, fifos and sockets are not allowed")),
        }
        if entry.is_dir() || file_type == S_IFDIR {
            create_dir(dest, &name)?;
        } else {
            let rel = safe_relative_path(&name).map_err(unsafe_entry)?;
            write_entry(&mut entry, dest, &rel, &name, Some(budget), &|e| io_err(source)(e))?;
        }
    }
    Ok(())
}

pub(super) fn extract_tgz(
    source: &Path,
    dest: &Path,
    limits: &UnpackLimits,
    budget: &Budget,
) -> Result<(), ArchiveError> {
    use tar::EntryType;

    let file = File::open(source).map_err(io_err(source))?;
    // The meter charges every decompressed byte (headers too) to the budget, which bounds the
    // memory the tar reader spends on pax and long-name headers as well as the files written.
    let meter = Meter { inner: GzDecoder::new(BufReader::new(file)), budget };
    let mut archive = tar::Archive::new(meter);
    let tar_err = |e: io::Error| budget.exceeded().unwrap_or_else(|| io_err(source)(e));
    let mut count = 0_usize;
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        count += 1;
        if count > limits.max_entries {
            return Err(too_many_entries(limits));
        }
        let entry_type = entry.header().entry_type();
        if entry_type == EntryType::XGlobalHeader {
            continue;
        }
        let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            ArchiveError::UnsafeEntry {
                entry: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "the name is not valid UTF-8".to_owned(),
            }
        })?;
        let unsafe_entry = |reason: &str| ArchiveError::UnsafeEntry {
            entry: name.clone(),
            reason: reason.to_owned(),
        };
        match entry_type {
            EntryType::Regular | EntryType::Continuous => {
                let rel = safe_relative_path(&name).map_err(unsafe_entry)?;
                write_entry(&mut entry, dest, &rel, &name, None, &tar_err)?;
            }
            EntryType::Directory => create_dir(dest, &name)?,
            EntryType::Symlink => return Err(unsafe_entry("symbolic links are not allowed")),
            EntryType::Link => return Err(unsafe_entry("hard links are not allowed")),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(unsafe_entry("device nodes and fifos are not allowed"));
            }
            other => {
                return Err(unsafe_entry(&format!("unsupported tar entry type {other:?}")));
            }
        }
    }
    Ok(())
}

fn too_many_entries(limits: &UnpackLimits) -> ArchiveError {
    ArchiveError::TooLarge { reason: format!("more than {} entries", limits.max_entries) }
}

/// Creates a folder entry; the root itself (`./`) is skipped.
fn create_dir(dest: &Path, name: &str) -> Result<(), ArchiveError> {
    if name.split('/').all(|part| part.is_empty() || part == ".") {
        return Ok(());
    }
    let rel = safe_relative_path(name).map_err(|reason| ArchiveError::UnsafeEntry {
        entry: name.to_owned(),
        reason: reason.to_owned(),
    })?;
    let path = dest.join(rel);
    fs::create_dir_all(&path).map_err(io_err(&path))
}

/// Writes one file entry, refusing duplicates. Bytes are charged to `budget` when given (zip);
/// tar's bytes are charged by its [`Meter`] instead. `read_err` turns read errors into ours.
fn write_entry(
    reader: &mut impl Read,
    dest: &Path,
    rel: &Path,
    name: &str,
    budget: Option<&Budget>,
    read_err: &dyn Fn(io::Error) -> ArchiveError,
) -> Result<(), ArchiveError> {
    let path = dest.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // `create_new` never follows or replaces an existing path, so a duplicate entry cannot
    // overwrite an earlier one.
    let mut out =
        OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
            match e.kind() {
                io::ErrorKind::AlreadyExists => ArchiveError::UnsafeEntry {
                    entry: name.to_owned(),
                    reason: "duplicate entry".to_owned(),
                },
                _ => io_err(&path)(e),
            }
        })?;
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        if let Some(budget) = budget {
            budget.charge(n)?;
        }
        out.write_all(&buf[..n]).map_err(io_err(&path))?;
    }
}

/// The decompressed-bytes allowance of one extraction.
pub(super) struct Budget {
    used: Cell<u64>,
    max_total: u64,
    max_by_ratio: u64,
    max_ratio: u64,
    compressed_len: u64,
}

impl Budget {
    pub(super) fn new(limits: &UnpackLimits, compressed_len: u64) -> Self {
        Self {
            used: Cell::new(0),
            max_total: limits.max_total_bytes,
            max_by_ratio: compressed_len
                .saturating_mul(limits.max_ratio)
                .max(UnpackLimits::RATIO_GRACE_BYTES),
            max_ratio: limits.max_ratio,
            compressed_len,
        }
    }

    fn charge(&self, n: usize) -> Result<(), ArchiveError> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.used.set(self.used.get().saturating_add(n));
        self.exceeded().map_or(Ok(()), Err)
    }

    fn exceeded(&self) -> Option<ArchiveError> {
        let used = self.used.get();
        let reason = if used > self.max_total {
            format!("decompresses to more than {} bytes", self.max_total)
        } else if used > self.max_by_ratio {
            format!(
                "decompresses to more than {} times its compressed size of {} bytes",
                self.max_ratio, self.compressed_len
            )
        } else {
            return None;
        };
        Some(ArchiveError::TooLarge { reason })
    }
}

/// Counts the bytes a decompressor produces and fails once the budget is spent.
struct Meter<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Meter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.budget.charge(n) {
            Ok(()) => Ok(n),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tar::{EntryType, Header};
    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::archive::test_support::{TestResult, assert_empty, limits, zip_bytes};
    use crate::archive::{MANIFEST_PATH, unpack};

    /// A folder with a staging area, a sentinel file beside it, and a place for archives.
    struct Scene {
        tmp: tempfile::TempDir,
    }

    impl Scene {
        fn new() -> Result<Self, Box<dyn std::error::Error>> {
            let tmp = tempfile::tempdir()?;
            fs::create_dir(tmp.path().join("staging"))?;
            fs::write(tmp.path().join("sentinel"), b"untouched")?;
            Ok(Self { tmp })
        }

        fn staging(&self) -> PathBuf {
            self.tmp.path().join("staging")
        }

        /// Unpacks `bytes` saved as `name` and expects a refusal, leaving nothing behind.
        fn refuse(&self, name: &str, bytes: &[u8], limits: &UnpackLimits) -> ArchiveError {
            let path = self.tmp.path().join(name);
            fs::write(&path, bytes).expect("write archive");
            let err = unpack(&path, limits).expect_err("hostile archive must be refused");
            assert_empty(&self.staging());
            let sentinel = fs::read(self.tmp.path().join("sentinel")).expect("sentinel");
            assert_eq!(sentinel, b"untouched");
            for escaped in ["evil", "abs-evil"] {
                assert!(!self.tmp.path().join(escaped).exists(), "{escaped} escaped");
            }
            err
        }

        fn limits(&self) -> UnpackLimits {
            limits(&self.staging())
        }
    }

    fn assert_unsafe(err: &ArchiveError, needle: &str) {
        assert!(
            matches!(err, ArchiveError::UnsafeEntry { .. }) && err.to_string().contains(needle),
            "expected an unsafe entry error mentioning {needle:?}, got: {err}"
        );
    }

    fn assert_too_large(err: &ArchiveError) {
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
    }

    /// A raw tar entry: name, type, link target, data.
    type RawEntry<'a> = (&'a [u8], EntryType, &'a [u8], &'a [u8]);

    /// A tar.gz of raw headers, so names and types the `tar` builder would refuse can be made.
    fn tgz(entries: &[RawEntry<'_>]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (name, kind, link, data) in entries {
            let mut header = Header::new_gnu();
            let gnu = header.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append(&header, *data).expect("append");
        }
        tar.into_inner().and_then(GzEncoder::finish).expect("finish tgz")
    }

    #[test]
    fn zip_with_parent_components_is_refused() -> TestResult {
        let scene = Scene::new()?;
        for name in ["../evil", "a/../../evil", "..\\evil", "C:/evil"] {
            let bytes = zip_bytes(&[("m.onnx", b"w"), (name, b"pwned")])?;
            let err = scene.refuse("bad.mar", &bytes, &scene.limits());
            assert_unsafe(&err, name);
        }
        Ok(())
    }

    #[test]
    fn zip_with_absolute_path_is_refused() -> TestResult {
        let scene = Scene::new()?;
        let target = format!("{}/abs-evil", scene.tmp.path().display());
        let bytes = zip_bytes(&[("m.onnx", b"w"), (&target, b"pwned")])?;
        let err = scene.refuse("abs.mar", &bytes, &scene.limits());
        assert_unsafe(&err, "absolute");
        Ok(())
    }

    #[test]
    fn zip_with_symlink_is_refused() -> TestResult {
        let scene = Scene::new()?;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_symlink("link", "/etc", SimpleFileOptions::default())?;
        zip.start_file("link/passwd", SimpleFileOptions::default())?;
        zip.write_all(b"pwned")?;
        let bytes = zip.finish()?.into_inner();
        let err = scene.refuse("link.mar", &bytes, &scene.limits());
        assert_unsafe(&err, "symbolic link");
        Ok(())
    }

    #[test]
    fn zip_with_too_many_entries_is_refused() -> TestResult {
        let scene = Scene::new()?;
        let names: Vec<String> = (0..6).map(|i| format!("f{i}.onnx")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let limits = UnpackLimits { max_entries: 5, ..scene.limits() };
        assert_too_large(&scene.refuse("many.mar", &zip_bytes(&entries)?, &limits));
        Ok(())
    }

    #[test]
    fn zip_bomb_is_refused_by_ratio() -> TestResult {
        let scene = Scene::new()?;
        let zeros = vec![0_u8; 10 * 1024 * 1024];
        let bytes = zip_bytes(&[("m.onnx", b"w"), ("bomb.bin", &zeros)])?;
        assert!(bytes.len() < 100 * 1024, "deflate should squash zeros");
        let err = scene.refuse("bomb.mar", &bytes, &scene.limits());
        assert_too_large(&err);
        assert!(err.to_string().contains("times its compressed size"), "{err}");
        Ok(())
    }

    #[test]
    fn zip_over_the_size_cap_is_refused() -> TestResult {
        let scene = Scene::new()?;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("m.onnx", stored)?;
        zip.write_all(&[7_u8; 4096])?;
        let bytes = zip.finish()?.into_inner();
        let limits = UnpackLimits { max_total_bytes: 4000, ..scene.limits() };
        let err = scene.refuse("big.mar", &bytes, &limits);
        assert!(err.to_string().contains("more than 4000 bytes"), "{err}");
        Ok(())
    }

    #[test]
    fn tar_with_duplicate_entries_is_refused() -> TestResult {
        let scene = Scene::new()?;
        // (The zip crate's reader keeps one entry per name, so zips cannot repeat a name.)
        let bytes = tgz(&[
            (b"m.onnx", EntryType::Regular, b"", b"first"),
            (b"m.onnx", EntryType::Regular, b"", b"second"),
        ]);
        let err = scene.refuse("dup.tgz", &bytes, &scene.limits());
        assert_unsafe(&err, "duplicate");
        Ok(())
    }

    #[test]
    fn tar_with_parent_components_or_absolute_path_is_refused() -> TestResult {
        let scene = Scene::new()?;
        for name in [&b"../evil"[..], b"m/../../evil", b"/abs-evil", b"..\\evil"] {
            let bytes = tgz(&[
                (b"m.onnx", EntryType::Regular, b"", b"w"),
                (name, EntryType::Regular, b"", b"pwned"),
            ]);
            let err = scene.refuse("bad.tar.gz", &bytes, &scene.limits());
            assert!(matches!(err, ArchiveError::UnsafeEntry { .. }), "{err}");
        }
        Ok(())
    }

    #[test]
    fn tar_links_and_special_files_are_refused() -> TestResult {
        let scene = Scene::new()?;
        let cases: [(EntryType, &[u8], &str); 5] = [
            (EntryType::Symlink, b"/etc/passwd", "symbolic link"),
            (EntryType::Symlink, b"../evil", "symbolic link"),
            (EntryType::Link, b"m.onnx", "hard link"),
            (EntryType::Char, b"", "device"),
            (EntryType::Fifo, b"", "fifo"),
        ];
        for (kind, link, needle) in cases {
            let bytes = tgz(&[
                (b"m.onnx", EntryType::Regular, b"", b"w"),
                (b"special", kind, link, b""),
                (b"special/passwd", EntryType::Regular, b"", b"pwned"),
            ]);
            let err = scene.refuse("special.tgz", &bytes, &scene.limits());
            assert_unsafe(&err, needle);
        }
        Ok(())
    }

    #[test]
    fn tar_with_too_many_entries_is_refused() -> TestResult {
        let scene = Scene::new()?;
        let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
        let entries: Vec<RawEntry<'_>> =
            names.iter().map(|n| (n.as_bytes(), EntryType::Regular, &b""[..], &b""[..])).collect();
        let limits = UnpackLimits { max_entries: 5, ..scene.limits() };
        assert_too_large(&scene.refuse("many.tgz", &tgz(&entries), &limits));
        Ok(())
    }

    #[test]
    fn tgz_bomb_is_refused_by_ratio() -> TestResult {
        let scene = Scene::new()?;
        let zeros = vec![0_u8; 10 * 1024 * 1024];
        let bytes = tgz(&[(b"bomb.onnx", EntryType::Regular, b"", &zeros)]);
        let err = scene.refuse("bomb.tgz", &bytes, &scene.limits());
        assert_too_large(&err);
        Ok(())
    }

    #[test]
    fn a_good_archive_still_opens_under_the_same_limits() -> TestResult {
        let scene = Scene::new()?;
        let manifest = br#"{"model": {"modelName": "m", "serializedFile": "m.onnx"}}"#;
        let path = scene.tmp.path().join("m.tgz");
        fs::write(
            &path,
            tgz(&[
                (b"m/", EntryType::Directory, b"", b""),
                (b"m/MAR-INF/MANIFEST.json", EntryType::Regular, b"", manifest),
                (b"m/m.onnx", EntryType::Regular, b"", b"w"),
            ]),
        )?;
        let model = unpack(&path, &scene.limits())?;
        assert!(model.dir.join(MANIFEST_PATH).is_file());
        assert_eq!(model.manifest.model.model_name, "m");
        drop(model);
        assert_empty(&scene.staging());
        Ok(())
    }
}
