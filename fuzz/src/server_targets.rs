//! Fuzz target bodies for the server's request decoding (binary tensor extension, multipart),
//! shared by the libFuzzer binaries and `crates/server/tests/it/fuzz_corpus.rs`.

/// The binary tensor extension's element decoding, every datatype.
pub fn binary_tensor(data: &[u8]) {
    oxserve_server::fuzzing::binary_tensor(data);
}

/// `Inference-Header-Content-Length` splitting and the JSON part of an OIP request.
pub fn binary_request(data: &[u8]) {
    oxserve_server::fuzzing::binary_request(data);
}

/// Multipart bodies into handler parts.
pub fn multipart(data: &[u8]) {
    oxserve_server::fuzzing::multipart(data);
}
