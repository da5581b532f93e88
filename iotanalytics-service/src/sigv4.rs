//! AWS Signature Version 4 checks: every request must be signed for the `iotanalytics`
//! service, and when credentials are configured the signature is recomputed and compared.

use std::time::SystemTime;

use chrono::{NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use http::request::Parts;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::config::Credentials;
use crate::error::Error;

/// The signing name clients must use.
pub const SIGNING_NAME: &str = "iotanalytics";
/// Largest accepted distance between the request time and the server clock.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// Characters SigV4 leaves unencoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Same, keeping the path separators.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

fn unauthorized(code: &'static str, message: impl Into<String>) -> Error {
    Error::Unauthorized {
        code,
        message: message.into(),
    }
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Error> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        unauthorized(
            "IncompleteSignatureException",
            "Authorization header must use the AWS4-HMAC-SHA256 algorithm",
        )
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let incomplete = || {
        unauthorized(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'",
        )
    };
    let (credential, signed, signature) = (
        credential.ok_or_else(incomplete)?,
        signed.ok_or_else(incomplete)?,
        signature.ok_or_else(incomplete)?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(unauthorized(
            "IncompleteSignatureException",
            "Credential must have the form <key>/<date>/<region>/<service>/aws4_request",
        ));
    }
    Ok(Authorization {
        access_key_id: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Checks the request's signature. `body` is the full request body.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    credentials: Option<&Credentials>,
    now: SystemTime,
) -> Result<(), Error> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: requests must be signed with AWS Signature Version 4",
            )
        })?;
    let auth = parse_authorization(header)?;
    if auth.service != SIGNING_NAME {
        return Err(unauthorized(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: '{SIGNING_NAME}', not '{}'",
                auth.service
            ),
        ));
    }
    let Some(credentials) = credentials else {
        return Ok(());
    };
    if auth.access_key_id != credentials.access_key_id {
        return Err(unauthorized(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("IncompleteSignatureException", "Missing X-Amz-Date header"))?;
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|_| {
        unauthorized(
            "IncompleteSignatureException",
            "Malformed X-Amz-Date header",
        )
    })?;
    let skew =
        chrono::DateTime::<Utc>::from(now).timestamp() - Utc.from_utc_datetime(&when).timestamp();
    if skew.abs() > MAX_SKEW_SECONDS {
        return Err(unauthorized(
            "InvalidSignatureException",
            "Signature expired: the request time is more than 15 minutes from the server time",
        ));
    }
    if !amz_date.starts_with(auth.date) {
        return Err(unauthorized(
            "InvalidSignatureException",
            "The credential scope date does not match X-Amz-Date",
        ));
    }
    let canonical = canonical_request(parts, body, &auth.signed_headers);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        &credentials.secret_access_key,
        auth.date,
        auth.region,
        auth.service,
    );
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(unauthorized(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

fn canonical_request(parts: &Parts, body: &[u8], signed_headers: &[&str]) -> String {
    let path = parts.uri.path();
    let path = if path.is_empty() { "/" } else { path };
    // Clients other than S3 encode the already-encoded path a second time.
    let canonical_path = utf8_percent_encode(path, PATH_UNRESERVED).to_string();
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (
                utf8_percent_encode(&decode(k), UNRESERVED).to_string(),
                utf8_percent_encode(&decode(v), UNRESERVED).to_string(),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = parts
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let payload_hash = hex::encode(Sha256::digest(body));
    format!(
        "{}\n{canonical_path}\n{query}\n{headers}\n{}\n{payload_hash}",
        parts.method,
        signed_headers.join(";")
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_the_published_aws_example() {
        // Example from the AWS General Reference "deriving a signing key" page.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn unsigned_requests_are_rejected_even_without_credentials() {
        let (parts, _) = http::Request::get("/channels")
            .body(())
            .unwrap()
            .into_parts();
        let err = verify(&parts, b"", None, SystemTime::now()).unwrap_err();
        assert_eq!(err.code(), "MissingAuthenticationTokenException");
    }
}
