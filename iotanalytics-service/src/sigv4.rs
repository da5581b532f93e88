//! AWS Signature Version 4 for this service: the project's shared verifier
//! ([`sigv4_verifier`]) with the signing name `iotanalytics`, the service's key and region,
//! and the request size limits.

use sigv4_verifier::{AccessKey, Limits, Verifier};

use crate::config::ServiceConfig;

/// The signing name clients must use.
pub const SIGNING_NAME: &str = "iotanalytics";
/// Largest request body accepted (100 messages of 128 KB, base64-encoded, fit).
pub(crate) const MAX_BODY_BYTES: usize = 32 << 20;

/// The verifier for `config`: the configured key in the configured region; without a key,
/// requests must still carry a SigV4 header scoped to `iotanalytics`, unchecked.
pub(crate) fn verifier(config: &ServiceConfig) -> Verifier {
    let verifier = match &config.credentials {
        Some(c) => Verifier::new(
            SIGNING_NAME,
            Some(config.region.clone()),
            [AccessKey::new(&c.access_key_id, &c.secret_access_key)],
        ),
        None => Verifier::scope_only(SIGNING_NAME, None),
    };
    verifier.with_limits(Limits::new(MAX_BODY_BYTES))
}
