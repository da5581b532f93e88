//! One AWS Signature Version 4 verifier for every endpoint of the project (the embedded Step
//! Functions and the IoT Analytics–compatible service, locally and deployed).
//!
//! Verification runs in two steps so that nothing unauthenticated costs more than its headers:
//! [`Verifier::check_head`] checks everything that does not need the body (size limits, the
//! `Authorization` header, the access key id, the request time within ±15 minutes, the
//! credential scope's date, region and service) and returns a [`PendingBody`]; the caller
//! then reads at most [`Limits::max_body_bytes`] ([`PendingBody::read_body`]) and
//! [`PendingBody::verify`] checks the signature over it, in constant time.
//! [`Verifier::authenticate`] does all three. Signing keys are derived with `aws-sigv4`.
//!
//! Only header-signed requests are accepted: query-string (presigned) signatures are refused.

mod canonical;
mod limits;
mod rejection;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::request::Parts;
use sha2::{Digest, Sha256};

pub use limits::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, Limits};
pub use rejection::{Protocol, Rejection};

/// Largest accepted distance between a request's `X-Amz-Date` and the server clock, as AWS.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The body limit of a verifier built without [`Verifier::with_limits`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// An access key pair requests may be signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id (`AWS_ACCESS_KEY_ID`), as it appears in `Credential=`.
    pub id: String,
    /// The secret (`AWS_SECRET_ACCESS_KEY`).
    pub secret: String,
}

impl AccessKey {
    /// A key pair from its two parts.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> AccessKey {
        AccessKey {
            id: id.into(),
            secret: secret.into(),
        }
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs.
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Verifies requests signed for one service (the SigV4 signing name, e.g. `states`).
#[derive(Clone)]
pub struct Verifier {
    service: String,
    region: Option<String>,
    /// Access key id → secret. Empty only for [`Verifier::scope_only`].
    keys: HashMap<String, String>,
    check_signatures: bool,
    limits: Limits,
    max_skew: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("check_signatures", &self.check_signatures)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that accepts requests signed for `service` with one of `keys`, scoped to
    /// `region` when given (any region otherwise). Body limit: [`DEFAULT_MAX_BODY_BYTES`].
    pub fn new(
        service: impl Into<String>,
        region: Option<String>,
        keys: impl IntoIterator<Item = AccessKey>,
    ) -> Verifier {
        Verifier {
            service: service.into(),
            region,
            keys: keys.into_iter().map(|k| (k.id, k.secret)).collect(),
            check_signatures: true,
            limits: Limits::new(DEFAULT_MAX_BODY_BYTES),
            max_skew: MAX_SKEW,
        }
    }

    /// A verifier for a host with no keys configured: requests must still carry a well-formed
    /// SigV4 `Authorization` header scoped to `service` (and `region` when given), but the key,
    /// the date and the signature are not checked. Size limits apply as usual.
    pub fn scope_only(service: impl Into<String>, region: Option<String>) -> Verifier {
        Verifier {
            check_signatures: false,
            ..Verifier::new(service, region, [])
        }
    }

    /// Replaces the size limits.
    pub fn with_limits(mut self, limits: Limits) -> Verifier {
        self.limits = limits;
        self
    }

    /// The size limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The signing name requests must be scoped to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Everything but the body, all at once: reads the body within the limit and verifies
    /// the signature over it. Returns the body.
    pub async fn authenticate<B>(
        &self,
        parts: &Parts,
        body: B,
        now: SystemTime,
    ) -> Result<Bytes, Rejection>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let pending = self.check_head(parts, now)?;
        let bytes = pending.read_body(body).await?;
        pending.verify(&bytes)?;
        Ok(bytes)
    }

    /// Checks everything that does not need the body. Call it before reading any of the body.
    pub fn check_head(&self, parts: &Parts, now: SystemTime) -> Result<PendingBody, Rejection> {
        self.limits.check_head(parts)?;
        let header = match parts.headers.get(http::header::AUTHORIZATION) {
            Some(value) => value
                .to_str()
                .map_err(|_| Rejection::incomplete("The Authorization header is not ASCII"))?,
            None if is_presigned(parts) => {
                return Err(Rejection::incomplete(
                    "Query-string (presigned) signatures are not accepted by this endpoint; \
                     sign the Authorization header",
                ));
            }
            None => return Err(Rejection::missing_token()),
        };
        let auth = Authorization::parse(header)?;
        if auth.service != self.service {
            return Err(Rejection::invalid(format!(
                "Credential should be scoped to correct service: '{}'. ",
                self.service
            )));
        }
        if let Some(region) = &self.region
            && auth.region != region
        {
            return Err(Rejection::invalid(format!(
                "Credential should be scoped to a valid region, not '{}'. This endpoint's \
                 region is '{region}'.",
                auth.region
            )));
        }
        if !self.check_signatures {
            return Ok(PendingBody {
                limits: self.limits,
                check: None,
            });
        }
        let amz_date = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Rejection::incomplete(
                    "Authorization header requires existence of a 'X-Amz-Date' header.",
                )
            })?;
        let when = Some(amz_date)
            .filter(|d| d.len() == 16)
            .and_then(|d| NaiveDateTime::parse_from_str(d, AMZ_DATE_FORMAT).ok())
            .ok_or_else(|| {
                Rejection::incomplete(format!(
                    "X-Amz-Date must be in the ISO-8601 basic format yyyyMMdd'T'HHmmss'Z', not \
                     '{amz_date}'."
                ))
            })?
            .and_utc();
        let Some(secret) = self.keys.get(auth.access_key_id) else {
            return Err(Rejection::unrecognized_client());
        };
        check_skew(amz_date, when, now, self.max_skew)?;
        if auth.date != &amz_date[..8] {
            return Err(Rejection::invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                &amz_date[..8]
            )));
        }
        if !auth.signed_headers.contains(&"host") {
            return Err(Rejection::invalid(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let signature: [u8; 32] = hex::decode(auth.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(mismatch)?;
        // The scope date equals the X-Amz-Date day, so the request time gives the key's date.
        let signing_key = aws_sigv4::sign::v4::generate_signing_key(
            secret,
            SystemTime::from(when),
            auth.region,
            auth.service,
        );
        Ok(PendingBody {
            limits: self.limits,
            check: Some(SignatureCheck {
                canonical_head: canonical::canonical_request_head(parts, &auth.signed_headers),
                amz_date: amz_date.to_owned(),
                scope: format!(
                    "{}/{}/{}/aws4_request",
                    auth.date, auth.region, auth.service
                ),
                signing_key: signing_key.as_ref().to_vec(),
                signature,
                content_sha256: parts
                    .headers
                    .get("x-amz-content-sha256")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            }),
        })
    }
}

/// A request whose head passed [`Verifier::check_head`]: what is left is the body.
pub struct PendingBody {
    limits: Limits,
    /// `None` when the verifier does not check signatures ([`Verifier::scope_only`]).
    check: Option<SignatureCheck>,
}

impl std::fmt::Debug for PendingBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is a secret.
        f.debug_struct("PendingBody")
            .field("limits", &self.limits)
            .field("checks_signature", &self.check.is_some())
            .finish_non_exhaustive()
    }
}

struct SignatureCheck {
    canonical_head: String,
    amz_date: String,
    scope: String,
    signing_key: Vec<u8>,
    signature: [u8; 32],
    content_sha256: Option<String>,
}

impl PendingBody {
    /// The largest body that may be read.
    pub fn max_body_bytes(&self) -> usize {
        self.limits.max_body_bytes
    }

    /// Reads the body, refusing it (413) as soon as it passes the limit.
    pub async fn read_body<B>(&self, body: B) -> Result<Bytes, Rejection>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.limits.read_body(body).await
    }

    /// Checks the signature over the whole body.
    pub fn verify(&self, body: &[u8]) -> Result<(), Rejection> {
        let Some(check) = &self.check else {
            return Ok(());
        };
        if body.len() > self.limits.max_body_bytes {
            return Err(Rejection::body_too_large(self.limits.max_body_bytes));
        }
        let payload_hash = hex::encode(Sha256::digest(body));
        if let Some(declared) = &check.content_sha256
            && *declared != payload_hash
        {
            return Err(Rejection::invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        let canonical_hash = {
            let mut hasher = Sha256::new();
            hasher.update(check.canonical_head.as_bytes());
            hasher.update(payload_hash.as_bytes());
            hex::encode(hasher.finalize())
        };
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{canonical_hash}",
            check.amz_date, check.scope
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&check.signing_key)
            .expect("HMAC accepts keys of any length");
        mac.update(string_to_sign.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&check.signature).map_err(|_| mismatch())
    }
}

fn mismatch() -> Rejection {
    Rejection::invalid(
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details.",
    )
}

fn is_presigned(parts: &Parts) -> bool {
    parts.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.starts_with("X-Amz-Signature="))
    })
}

fn check_skew(
    amz_date: &str,
    when: DateTime<Utc>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), Rejection> {
    let now = DateTime::<Utc>::from(now);
    let skew = chrono::Duration::from_std(max_skew).unwrap_or(chrono::Duration::MAX);
    let minutes = max_skew.as_secs() / 60;
    let format = |t: DateTime<Utc>| t.format(AMZ_DATE_FORMAT).to_string();
    if when < now - skew {
        return Err(Rejection::invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - {minutes} min.)",
            format(now - skew),
            format(now)
        )));
    }
    if when > now + skew {
        return Err(Rejection::invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + {minutes} min.)",
            format(now + skew),
            format(now)
        )));
    }
    Ok(())
}

/// The parts of an `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Result<Authorization<'a>, Rejection> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or_else(|| {
                Rejection::incomplete(format!(
                    "Authorization header must use the {ALGORITHM} algorithm"
                ))
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
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err(Rejection::incomplete(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
                 parameters.",
            ));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(Rejection::incomplete(
                "Credential must have the form <key id>/<YYYYMMDD>/<region>/<service>/aws4_request.",
            ));
        };
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::incomplete(format!(
                "The credential scope date '{date}' is not in the form YYYYMMDD."
            )));
        }
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            signed_headers: signed.split(';').collect(),
            signature,
        })
    }
}

#[cfg(test)]
mod tests;
