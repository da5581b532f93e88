//! The API's gate: size limits on every request and, when the host configured an access key,
//! AWS Signature Version 4 (signing name `states`, the endpoint's region) through the shared
//! [`sigv4_verifier`]. A request is refused from its headers alone whenever they suffice, so an
//! unsigned or expired request never has its body read. Refusals are awsJson1_0 errors.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sigv4_verifier::{Limits, Protocol, Rejection, Verifier};

pub use sigv4_verifier::AccessKey;

/// The signing name of the Step Functions API.
pub(crate) const SIGNING_NAME: &str = "states";
/// Largest request body: what the API accepted before the gate existed (axum's default), room
/// for a 1 MB definition or a 256 KiB input with its JSON escaping.
pub(crate) const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What every request passes before it reaches an operation.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    limits: Limits,
    verifier: Option<Verifier>,
}

impl Gate {
    /// Limits only, or limits and signatures when `access_key` is set.
    pub(crate) fn new(access_key: Option<AccessKey>, region: &str) -> Gate {
        let limits = Limits::new(MAX_BODY_BYTES);
        Gate {
            limits,
            verifier: access_key.map(|key| {
                Verifier::new(SIGNING_NAME, Some(region.to_owned()), [key]).with_limits(limits)
            }),
        }
    }

    async fn admit(
        &self,
        parts: &axum::http::request::Parts,
        body: Body,
    ) -> Result<Body, Rejection> {
        let bytes = match &self.verifier {
            Some(verifier) => {
                verifier
                    .authenticate(parts, body, SystemTime::now())
                    .await?
            }
            None => {
                self.limits.check_head(parts)?;
                self.limits.read_body(body).await?
            }
        };
        Ok(Body::from(bytes))
    }
}

/// Refusal as the API answers every error: `{"__type", "message"}`.
pub(crate) fn refuse(rejection: &Rejection) -> Response {
    tracing::debug!(
        code = rejection.code,
        status = %rejection.status,
        message = %rejection.message,
        "refused a request at the gate"
    );
    rejection.to_response(Protocol::AwsJson1_0).into_response()
}

/// The middleware: passes the request on with its body read, or answers the refusal.
pub(crate) async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match gate.admit(&parts, body).await {
        Ok(body) => next.run(Request::from_parts(parts, body)).await,
        Err(rejection) => refuse(&rejection),
    }
}
