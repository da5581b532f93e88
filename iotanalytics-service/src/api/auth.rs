//! The signature check in front of every route but the filesystem backend's content download.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{CONTENT_PREFIX, Service};

/// Refuses a request from its headers whenever they suffice (size, missing or malformed
/// signature, unknown key, time outside ±15 minutes, wrong scope), so an unauthenticated body
/// is never read; then reads at most the body limit and checks the signature over it.
pub(super) async fn authenticate(
    State(svc): State<Arc<Service>>,
    req: Request,
    next: Next,
) -> Response {
    // Dataset content links are handed out by GetDatasetContent, like presigned S3 URLs.
    if req.uri().path().starts_with(CONTENT_PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let pending = match svc.verifier.check_head(&parts, SystemTime::now()) {
        Ok(pending) => pending,
        Err(rejection) => return refuse(&rejection),
    };
    let bytes = match pending.read_body(body).await {
        Ok(bytes) => bytes,
        Err(rejection) => return refuse(&rejection),
    };
    if let Err(rejection) = pending.verify(&bytes) {
        return refuse(&rejection);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A refusal in restJson1: `x-amzn-ErrorType` and `{"message": ...}`.
fn refuse(rejection: &sigv4_verifier::Rejection) -> Response {
    tracing::debug!(
        code = rejection.code,
        status = %rejection.status,
        message = %rejection.message,
        "request refused"
    );
    rejection
        .to_response(sigv4_verifier::Protocol::RestJson1)
        .into_response()
}
