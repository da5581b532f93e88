//! Test doubles shared by the worker's unit tests: S3 and IoT Analytics clients over one
//! object that record every message sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_iotanalytics::operation::batch_put_message::BatchPutMessageOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::io::WorkerInput;
use crate::clients::Clients;

pub(super) type Sent = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Clients over `object` (ranged GETs honoured, ETag `"e1"`) that record every message.
pub(super) fn clients(object: &'static [u8]) -> (Clients, Sent) {
    let get = mock!(aws_sdk_s3::Client::get_object).then_compute_output(move |req| {
        let start = req
            .range()
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .unwrap_or(0usize);
        GetObjectOutput::builder()
            .e_tag("\"e1\"")
            .body(ByteStream::from_static(&object[start..]))
            .build()
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get]);
    let sent: Sent = Arc::default();
    let record = sent.clone();
    let put = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
        .match_requests(move |req| {
            let mut sent = record.lock().unwrap();
            for m in req.messages() {
                let payload = serde_json::from_slice(m.payload().as_ref()).unwrap();
                sent.push((m.message_id().to_owned(), payload));
            }
            true
        })
        .then_output(|| BatchPutMessageOutput::builder().build());
    let iotanalytics = mock_client!(aws_sdk_iotanalytics, RuleMode::MatchAny, &[&put]);
    (Clients { s3, iotanalytics }, sent)
}

pub(super) fn input(json: serde_json::Value) -> WorkerInput {
    let mut base = serde_json::json!({
        "bucket": "src", "key": "1/a.csv", "etag": "\"e1\"", "channelName": "ch"
    });
    base.as_object_mut()
        .unwrap()
        .extend(json.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

pub(super) fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(900)
}
