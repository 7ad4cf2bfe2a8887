//! What a model store folder holds: each archive (`.mar`, `.tar.gz`, `.tgz`, `.zip`), ONNX file or
//! folder is one model, named by its file name without the extension. `load_models=all` loads these,
//! and Triton's repository index lists them.

use std::path::Path;

/// Extensions of files that are models, longest first so `.tar.gz` wins over a shorter match.
const MODEL_EXTENSIONS: [&str; 5] = [".tar.gz", ".mar", ".tgz", ".zip", ".onnx"];

/// One model in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEntry {
    /// The model's name: the entry's file name without its extension.
    pub name: String,
    /// The entry's file or folder name, as a register `url` names it.
    pub file: String,
}

/// The entry `file` as a model, or `None` when it is not one (hidden files, other extensions).
pub fn entry(store: &Path, file: &str) -> Option<StoreEntry> {
    if file.starts_with('.') {
        return None;
    }
    let lower = file.to_ascii_lowercase();
    let name = match MODEL_EXTENSIONS.iter().find(|ext| lower.ends_with(*ext)) {
        Some(ext) => &file[..file.len() - ext.len()],
        None if store.join(file).is_dir() => file,
        None => return None,
    };
    (!name.is_empty()).then(|| StoreEntry { name: name.to_owned(), file: file.to_owned() })
}

/// Every model in the store, by file name.
///
/// # Errors
/// When the folder cannot be read.
pub fn models(store: &Path) -> std::io::Result<Vec<StoreEntry>> {
    let mut entries: Vec<StoreEntry> = std::fs::read_dir(store)?
        .filter_map(Result::ok)
        .filter_map(|e| entry(store, &e.file_name().to_string_lossy()))
        .collect();
    entries.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_onnx_files_and_folders_are_models_named_without_their_extension() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["a.mar", "b.tar.gz", "c.onnx", ".hidden.mar", "notes.txt", "D.ZIP"] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("e")).unwrap();
        let names: Vec<(String, String)> =
            models(dir.path()).unwrap().into_iter().map(|e| (e.name, e.file)).collect();
        let want = [("D", "D.ZIP"), ("a", "a.mar"), ("b", "b.tar.gz"), ("c", "c.onnx"), ("e", "e")];
        assert_eq!(names, want.map(|(n, f)| (n.to_owned(), f.to_owned())));
    }
}
