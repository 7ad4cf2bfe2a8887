//! Registering models from a URL: the allow-list and the download into the model store.
//!
//! TorchServe matched `allowed_urls` as regular expressions over the raw URL string and, by default,
//! allowed every `http(s)://` and `file://` URL; that is how its management API became a way to run
//! anyone's code (CVE-2023-43654). Here the allow-list is empty by default and each entry is a URL
//! *prefix* compared on the parsed URL: scheme, host, port and path segments. A candidate URL is
//! refused before any network or file I/O when it is not written canonically (userinfo, numeric host
//! spellings such as `2130706433`, `..` or `%2e` segments, backslashes), because every one of those
//! has been used to make a string check and the HTTP client disagree about where a request goes.
//! Redirects are checked against the same list, downloads are size-capped and land in a staging
//! file that is renamed into the store only once complete (and, optionally, its sha256 matches).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::info;
use url::Url;

/// Why a URL was refused or its download failed.
///
/// The serving core answers [`RemoteError::Refused`] as a bad argument (400) and
/// [`RemoteError::Exists`] as a conflict (409).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The URL is not allowed, not canonical, not a model file, or its download failed or was
    /// rejected (size, status, checksum).
    #[error("{0}")]
    Refused(String),
    /// The store already has a file of that name.
    #[error("{0}")]
    Exists(String),
}

type Result<T, E = RemoteError> = std::result::Result<T, E>;

/// Archive suffixes a download may have; anything else would not load anyway.
const MODEL_SUFFIXES: &[&str] = &[".mar", ".tar.gz", ".tgz", ".zip", ".onnx"];

/// Redirects followed at most, each one re-checked against the allow-list.
const MAX_REDIRECTS: usize = 5;

/// One `allowed_urls` entry: URLs under this scheme, host, port and path prefix may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    scheme: String,
    host: String,
    port: u16,
    /// Path prefix; matches whole segments (`/models` allows `/models/x`, not `/models-evil`).
    path: String,
}

impl UrlPrefix {
    /// Parses an entry such as `https://models.example.com/releases/`.
    ///
    /// TorchServe's values are regular expressions; the common spellings (`\.` for a dot, a trailing
    /// `.*`) are read as the prefix they mean, and anything else with regex syntax is refused with
    /// a message, so an old config.properties never silently widens what may be fetched.
    ///
    /// # Errors
    /// A description of what is wrong with the entry.
    pub fn parse(entry: &str) -> std::result::Result<Self, String> {
        let raw = entry.trim();
        let mut text = raw.replace("\\.", ".").replace("\\/", "/");
        for tail in [".*", "*"] {
            if let Some(stripped) = text.strip_suffix(tail) {
                text = stripped.to_owned();
                break;
            }
        }
        if text.contains(['^', '$', '(', ')', '[', ']', '{', '}', '|', '+', '?', '*', '\\']) {
            return Err(format!(
                "allowed_urls entry `{raw}` looks like a regular expression; entries are URL \
                 prefixes such as https://models.example.com/releases/"
            ));
        }
        let url = Url::parse(&text).map_err(|e| format!("allowed_urls entry `{raw}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "allowed_urls entry `{raw}`: only http and https URLs may be allowed"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "allowed_urls entry `{raw}` must not carry a user name or password"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("allowed_urls entry `{raw}` must not have a query or fragment"));
        }
        let host =
            url.host_str().ok_or_else(|| format!("allowed_urls entry `{raw}` has no host"))?;
        let port = url.port_or_known_default().unwrap_or(0);
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port,
            path: url.path().to_owned(),
        })
    }

    fn permits(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme
            || url.host_str() != Some(self.host.as_str())
            || url.port_or_known_default() != Some(self.port)
        {
            return false;
        }
        let path = url.path();
        match path.strip_prefix(&self.path) {
            Some(rest) => self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}{}", self.scheme, self.host, self.port, self.path)
    }
}

/// The `allowed_urls` list; empty (nothing may be fetched) by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    prefixes: Vec<UrlPrefix>,
}

impl AllowList {
    /// Parses a comma-separated `allowed_urls` value.
    ///
    /// # Errors
    /// The first entry that is not a valid prefix.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let prefixes = value
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(UrlPrefix::parse)
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { prefixes })
    }

    /// Whether nothing may be fetched.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// The parsed URL when `candidate` is canonical and under an allowed prefix.
    ///
    /// # Errors
    /// [`RemoteError::Refused`] saying why the URL is refused.
    pub fn check(&self, candidate: &str) -> Result<Url> {
        let refuse = |why: &str| {
            RemoteError::Refused(format!(
                "registering a model from `{candidate}` is not allowed: {why}"
            ))
        };
        if self.is_empty() {
            return Err(refuse(
                "allowed_urls is empty; put the archive in the model store and pass its file \
                 name, or list the URL's prefix in allowed_urls",
            ));
        }
        let url = canonical(candidate).map_err(|why| refuse(&why))?;
        if !self.prefixes.iter().any(|p| p.permits(&url)) {
            return Err(refuse("it is not under any allowed_urls entry"));
        }
        Ok(url)
    }
}

/// Parses `raw` and insists that it was already written the way the parser writes it, so that what
/// the allow-list compares is exactly where the client will connect.
fn canonical(raw: &str) -> std::result::Result<Url, String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Err("the URL contains whitespace, control characters or backslashes".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the {} scheme is never fetched; only http and https", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with a user name or password are refused".into());
    }
    let lower = raw.to_ascii_lowercase();
    let after_scheme = lower.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host = url.host_str().unwrap_or_default();
    let written_host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}", v6.split(']').next().unwrap_or_default()) + "]",
        None => authority.split(':').next().unwrap_or_default().to_owned(),
    };
    if written_host != host {
        return Err(format!(
            "the host must be written in canonical form (`{written_host}` means `{host}`)"
        ));
    }
    let path_and_rest = &after_scheme[authority.len()..];
    let path = path_and_rest.split(['?', '#']).next().unwrap_or_default();
    if path.contains("%2e") || path.contains("%2f") || path.contains("%5c") {
        return Err("encoded dots or slashes in the path are refused".into());
    }
    if path.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err("`.` and `..` path segments are refused".into());
    }
    Ok(url)
}

/// The store file name a download will get: the URL's last path segment, which must look like a
/// model archive.
fn file_name(url: &Url) -> Result<String> {
    let name = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.starts_with('.') || !ok_chars {
        return Err(RemoteError::Refused(format!(
            "cannot name a model file after `{url}`: the last path segment must be a file name \
             of letters, digits, `.`, `_` and `-`"
        )));
    }
    if !MODEL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Err(RemoteError::Refused(format!(
            "`{name}` is not a model archive; URLs must end in one of {}",
            MODEL_SUFFIXES.join(", ")
        )));
    }
    Ok(name.to_owned())
}

/// How downloads behave.
#[derive(Debug, Clone)]
pub struct DownloadLimits {
    /// Largest file accepted, in bytes (`max_model_download_size`).
    pub max_bytes: u64,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for the whole download.
    pub timeout: Duration,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
        }
    }
}

/// Fetches `url` into `store`, returning the new file's path.
///
/// The allow-list is checked first (no I/O happens for a refused URL), again on every redirect, and
/// the body is streamed into a staging file in the store that is renamed into place only when it is
/// complete, within `limits.max_bytes`, and matches `sha256` when one is given. A file of the same
/// name already in the store is never replaced.
///
/// # Errors
/// [`RemoteError::Refused`] for refused URLs and failed or rejected downloads,
/// [`RemoteError::Exists`] when the store already has that file.
pub async fn download(
    url: &str,
    allow: &AllowList,
    store: &Path,
    limits: &DownloadLimits,
    sha256: Option<&str>,
) -> Result<PathBuf> {
    let url = allow.check(url)?;
    let name = file_name(&url)?;
    let expected = sha256.map(parse_sha256).transpose()?;
    let target = store.join(&name);
    if target.exists() {
        return Err(RemoteError::Exists(format!(
            "`{name}` already exists in the model store; register it by file name or remove it first"
        )));
    }
    let failed = |what: String| {
        RemoteError::Refused(format!("failed to download a model from {url}: {what}"))
    };
    let redirect_allow = allow.clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if let Err(e) = redirect_allow.check(attempt.url().as_str()) {
                attempt.error(e.to_string())
            } else {
                attempt.follow()
            }
        }))
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.timeout)
        .build()
        .map_err(|e| failed(format!("cannot build an HTTP client: {e}")))?;
    let mut response = client.get(url.clone()).send().await.map_err(|e| failed(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    if let Some(len) = response.content_length()
        && len > limits.max_bytes
    {
        return Err(failed(format!(
            "it is {len} bytes, over the limit of {} (max_model_download_size)",
            limits.max_bytes
        )));
    }
    let mut staging = tempfile::Builder::new()
        .prefix(".oxserve-download-")
        .tempfile_in(store)
        .map_err(|e| failed(format!("cannot create a staging file in the model store: {e}")))?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(error_chain(&e)))? {
        written += chunk.len() as u64;
        if written > limits.max_bytes {
            return Err(failed(format!(
                "it is over the limit of {} bytes (max_model_download_size)",
                limits.max_bytes
            )));
        }
        hasher.update(&chunk);
        staging
            .write_all(&chunk)
            .map_err(|e| failed(format!("cannot write the staging file: {e}")))?;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if let Some(expected) = expected
        && digest != expected
    {
        return Err(failed(format!(
            "its sha256 is {}, not the {} asked for",
            hex(&digest),
            hex(&expected)
        )));
    }
    staging
        .as_file()
        .sync_all()
        .map_err(|e| failed(format!("cannot flush the staging file: {e}")))?;
    staging.persist_noclobber(&target).map_err(|e| {
        RemoteError::Exists(format!(
            "cannot move the download into the model store as `{name}`: {}",
            e.error
        ))
    })?;
    info!(%url, file = %target.display(), bytes = written, sha256 = %hex(&digest), "model downloaded");
    Ok(target)
}

fn parse_sha256(text: &str) -> Result<[u8; 32]> {
    let bad = || RemoteError::Refused(format!("sha256 must be 64 hex digits, got `{text}`"));
    let text = text.trim();
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// reqwest's top-level message hides the cause ("error sending request"); the chain says it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &str) -> AllowList {
        AllowList::parse(entries).expect("valid allow-list")
    }

    #[test]
    fn prefixes_match_on_the_parsed_url() {
        let list = allow("https://models.example.com/releases/,http://10.0.0.5:8000/m");
        for ok in [
            "https://models.example.com/releases/resnet.mar",
            "https://models.example.com:443/releases/a/b.onnx",
            "https://MODELS.example.com/releases/x.mar",
            "http://10.0.0.5:8000/m/x.mar",
            "http://10.0.0.5:8000/m",
        ] {
            assert!(list.check(ok).is_ok(), "{ok} should be allowed");
        }
        for bad in [
            "http://models.example.com/releases/x.mar",
            "https://models.example.com:8443/releases/x.mar",
            "https://models.example.com/other/x.mar",
            "https://models.example.com/releases-evil/x.mar",
            "https://models.example.com.evil/releases/x.mar",
            "https://models.example.com@evil/releases/x.mar",
            "https://evil/releases/x.mar?https://models.example.com/releases/",
            "https://models.example.com/releases/../admin/x.mar",
            "https://models.example.com/releases/%2e%2e/admin/x.mar",
            "https://models.example.com/releases/%2E%2E/admin/x.mar",
            "https://models.example.com/releases/.%2e/x.mar",
            "https://models.example.com/releases\\..\\x.mar",
            "http://10.0.0.5:8000/mx/x.mar",
            "http://167772165:8000/m/x.mar",
            "http://0x0a000005:8000/m/x.mar",
            "http://10.0.5:8000/m/x.mar",
            "http://[::ffff:10.0.0.5]:8000/m/x.mar",
            "file:///etc/passwd",
            "ftp://models.example.com/releases/x.mar",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            assert!(list.check(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn an_empty_list_refuses_everything() {
        let err = AllowList::default().check("https://example.com/x.mar").unwrap_err();
        assert!(err.to_string().contains("allowed_urls is empty"), "{err}");
    }

    #[test]
    fn torchserve_regex_spellings_become_prefixes_and_others_are_refused() {
        assert_eq!(allow(r"https://s3\.amazonaws\.com/.*"), allow("https://s3.amazonaws.com/"));
        for regex in [r"file://.*|http(s)?://.*", "https://(a|b).com/", "^https://x.com/"] {
            let err = AllowList::parse(regex).unwrap_err();
            assert!(err.contains("regular expression") || err.contains("only http"), "{err}");
        }
        assert!(AllowList::parse("file:///models/").is_err());
        assert!(AllowList::parse("https://user:pw@x.com/").is_err());
    }

    #[test]
    fn store_names_come_from_the_last_segment_and_must_be_archives() {
        let name = |u: &str| file_name(&Url::parse(u).expect("url"));
        assert_eq!(name("https://x.com/a/resnet-18.mar").expect("ok"), "resnet-18.mar");
        assert_eq!(name("https://x.com/a/m.tar.gz?sig=1").expect("ok"), "m.tar.gz");
        assert!(name("https://x.com/a/").is_err());
        assert!(name("https://x.com/a/.hidden.mar").is_err());
        assert!(name("https://x.com/a/script.sh").is_err());
        assert!(name("https://x.com/a/m%20x.mar").is_err());
    }

    #[test]
    fn sha256_pins_parse_strictly() {
        assert!(parse_sha256(&"ab".repeat(32)).is_ok());
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }
}
