//! The SigV4 canonical request, rebuilt from what arrived, for every service but S3 (whose
//! path is encoded once; the SDKs encode other services' already-encoded paths a second time).

use http::request::Parts;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters SigV4 leaves unencoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Same, keeping the path separators.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// The canonical request up to and including the signed header list and its newline: what
/// is left to append is the hex SHA-256 of the payload.
pub(crate) fn canonical_request_head(parts: &Parts, signed_headers: &[&str]) -> String {
    let path = parts.uri.path();
    let path = if path.is_empty() { "/" } else { path };
    let canonical_path = utf8_percent_encode(path, PATH_UNRESERVED).to_string();
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let encode = |s: &str| {
                let decoded = percent_decode_str(s).decode_utf8_lossy();
                utf8_percent_encode(&decoded, UNRESERVED).to_string()
            };
            (encode(k), encode(v))
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut out = format!("{}\n{canonical_path}\n{query}\n", parts.method);
    for name in signed_headers {
        let mut values: Vec<String> = parts
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
        // HTTP/2 carries the host as the `:authority` pseudo-header, which lands in the URI.
        if values.is_empty()
            && *name == "host"
            && let Some(authority) = parts.uri.authority()
        {
            values.push(authority.to_string());
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_sorted_and_reencoded_and_the_path_encoded_twice() {
        let (parts, ()) = http::Request::get("/datasets/a%20b/content?versionId=%24LATEST&a=1")
            .header("host", "example.com")
            .header("x-amz-date", "  20250101T000000Z  ")
            .body(())
            .unwrap()
            .into_parts();
        let head = canonical_request_head(&parts, &["host", "x-amz-date"]);
        assert_eq!(
            head,
            "GET\n/datasets/a%2520b/content\na=1&versionId=%24LATEST\n\
             host:example.com\nx-amz-date:20250101T000000Z\n\nhost;x-amz-date\n"
        );
    }
}
