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
