//! The signature check in front of every route but the content download.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

use super::{CONTENT_PREFIX, Service};

/// Largest request body accepted (100 messages of 128 KB, base64-encoded, fit).
pub(crate) const MAX_BODY_BYTES: usize = 32 << 20;

pub(super) async fn authenticate(
    State(svc): State<Arc<Service>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with(CONTENT_PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return Error::InvalidRequest(format!(
                "The request body is larger than {MAX_BODY_BYTES} bytes"
            ))
            .into_response();
        }
    };
    if let Err(e) = crate::sigv4::verify(
        &parts,
        &bytes,
        svc.config.credentials.as_ref(),
        SystemTime::now(),
    ) {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
