//! AWS Signature Version 4, checked by the server: every AWS SDK (boto3's `comprehend` client with
//! `endpoint_url=`) signs its requests this way, so the Comprehend API accepts them with the
//! inference key as the secret access key. The access key id is not a secret and is not checked.

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far a request's `X-Amz-Date` may be from the server's clock, as AWS allows.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// Why a signature was not accepted (each is AWS's exception name and message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("the Authorization header is not an AWS4-HMAC-SHA256 signature: {0}")]
    Malformed(&'static str),
    #[error("the signed header {0} is missing")]
    MissingHeader(String),
    #[error("the signature expired: X-Amz-Date is more than 15 minutes from the server's time")]
    Expired,
    #[error(
        "the request signature we calculated does not match the signature you provided; check your AWS secret access key (the server's inference key) and signing method"
    )]
    Mismatch,
}

/// The fields of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    /// `date/region/service/aws4_request`.
    scope: &'a str,
    date: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// The scheme prefix of a SigV4 `Authorization` value.
pub(crate) const SCHEME: &str = "AWS4-HMAC-SHA256 ";

fn parse(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let fields = value
        .strip_prefix(SCHEME)
        .ok_or(SignatureError::Malformed("no AWS4-HMAC-SHA256 scheme"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',').map(str::trim) {
        match field.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or(SignatureError::Malformed("no Credential"))?;
    let (_, scope) =
        credential.split_once('/').ok_or(SignatureError::Malformed("Credential has no scope"))?;
    let date = scope
        .split('/')
        .next()
        .filter(|d| d.len() == 8)
        .ok_or(SignatureError::Malformed("Credential has no date"))?;
    if scope.split('/').count() != 4 || !scope.ends_with("/aws4_request") {
        return Err(SignatureError::Malformed(
            "Credential scope is not date/region/service/aws4_request",
        ));
    }
    Ok(Authorization {
        scope,
        date,
        signed_headers: signed_headers.ok_or(SignatureError::Malformed("no SignedHeaders"))?,
        signature: signature.ok_or(SignatureError::Malformed("no Signature"))?,
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A header's canonical value: every instance's value trimmed, inner runs of spaces collapsed,
/// joined by commas.
fn canonical_value(
    headers: &HeaderMap,
    name: &str,
    authority: Option<&str>,
) -> Result<String, SignatureError> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect();
    if !values.is_empty() {
        return Ok(values.join(","));
    }
    // HTTP/2 carries the host as the URI's authority, not a header.
    match (name, authority) {
        ("host", Some(authority)) => Ok(authority.to_owned()),
        _ => Err(SignatureError::MissingHeader(name.to_owned())),
    }
}

/// The request as it was signed.
#[derive(Debug)]
pub(crate) struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub authority: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks the request's SigV4 signature against `secret`, at time `now`.
pub(crate) fn verify(
    request: &Signed<'_>,
    authorization: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let auth = parse(authorization)?;
    let amz_date = canonical_value(request.headers, "x-amz-date", None)?;
    let when = NaiveDateTime::parse_from_str(&amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SignatureError::Malformed("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    if (now.naive_utc() - when).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Expired);
    }
    if !amz_date.starts_with(auth.date) {
        return Err(SignatureError::Malformed("the Credential date is not X-Amz-Date's"));
    }
    let mut canonical_headers = String::new();
    for name in auth.signed_headers.split(';') {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&canonical_value(request.headers, name, request.authority)?);
        canonical_headers.push('\n');
    }
    let payload_hash =
        match request.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
            Some(declared) => declared.to_owned(),
            None => hex(&Sha256::digest(request.body)),
        };
    let mut query: Vec<&str> = request.query.split('&').filter(|p| !p.is_empty()).collect();
    query.sort_unstable();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        request.method,
        request.path,
        query.join("&"),
        auth.signed_headers
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        auth.scope,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in auth.scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// AWS's published example (the IAM `ListUsers` GET of the SigV4 documentation), signed with
    /// its example secret.
    #[test]
    fn accepts_the_documented_example_and_refuses_any_change() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let request = Signed {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            authority: None,
            headers: &headers,
            body: b"",
        };
        let authorization = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let now =
            DateTime::parse_from_rfc3339("2015-08-30T12:40:00Z").expect("date").with_timezone(&Utc);
        assert_eq!(verify(&request, authorization, secret, now), Ok(()));
        assert_eq!(verify(&request, authorization, "wrong", now), Err(SignatureError::Mismatch));
        let changed = Signed { query: "Action=DeleteUser&Version=2010-05-08", ..request };
        assert_eq!(verify(&changed, authorization, secret, now), Err(SignatureError::Mismatch));
        let later = now + chrono::Duration::minutes(20);
        assert_eq!(verify(&request, authorization, secret, later), Err(SignatureError::Expired));
        assert!(matches!(
            verify(&request, "Bearer abc", secret, now),
            Err(SignatureError::Malformed(_))
        ));
    }
}
