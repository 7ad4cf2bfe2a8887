//! For test suites (this crate's and the CLI's): the input trees jobs run over and the output trees
//! they are compared by, one way everywhere.

use std::collections::BTreeMap;
use std::path::Path;

use oxserve_pii::eval::Call;

use crate::META;

/// Writes `count` Contact Lens files, the given calls round and round, in three sub-folders of
/// `dir` (`day-N/call-NNNNN.json`).
///
/// # Errors
/// A file cannot be written.
pub fn write_calls(dir: &Path, calls: &[Call], count: usize) -> std::io::Result<()> {
    for i in 0..count {
        let folder = dir.join(format!("day-{}", i % 3));
        std::fs::create_dir_all(&folder)?;
        let call = calls[i % calls.len()].contact_lens();
        std::fs::write(folder.join(format!("call-{i:05}.json")), serde_json::to_vec(&call)?)?;
    }
    Ok(())
}

/// Every file under `dir` but a job's records, by relative name (half-written files included:
/// there must be none).
pub fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if relative.starts_with(META) {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.insert(relative, bytes);
            }
        }
    }
    files
}
