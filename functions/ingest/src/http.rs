//! Downloads a dataset result from its `dataURI` (a presigned HTTPS URL on AWS, plain HTTP on
//! the local service).

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest result the validator reads; validation queries return a handful of rows.
const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;

/// GETs `uri` and returns the body, or a description of what failed.
pub(crate) async fn get(uri: &str) -> Result<Vec<u8>, String> {
    let parsed: hyper::Uri = uri.parse().map_err(|e| format!("not a URI: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("loading the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let response = client
        .get(parsed)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_RESULT_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body.to_vec())
}
