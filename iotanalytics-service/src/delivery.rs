//! `contentDeliveryRules`: checking them at CreateDataset/UpdateDataset, and copying a
//! succeeded content's CSV to each rule's S3 bucket and key (with the `!{iotanalytics:…}`
//! substitutions) once its query finishes.

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::error::Error;

/// Most delivery rules one dataset may have (the service model's limit).
pub const MAX_RULES: usize = 20;

/// Where a content goes: one rule's `s3DestinationConfiguration`, its key not yet expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Destination {
    /// The destination bucket.
    pub bucket: String,
    /// The key template, e.g. `dataset/d/!{iotanalytics:scheduleTime}/!{iotanalytics:versionId}.csv`.
    pub key: String,
}

/// Why a content was not delivered to one destination.
#[derive(Debug, thiserror::Error)]
#[error("delivery to s3://{bucket}/{key} failed: {reason}")]
pub struct DeliveryError {
    /// The destination bucket.
    pub bucket: String,
    /// The expanded key.
    pub key: String,
    /// What S3 (or reading the result) answered.
    pub reason: String,
}

fn invalid(message: String) -> Error {
    Error::InvalidRequest(message)
}

/// `len` within `min..=max` and every character allowed by `ok`.
fn fits(value: &str, min: usize, max: usize, ok: impl Fn(char) -> bool) -> bool {
    (min..=max).contains(&value.chars().count()) && value.chars().all(ok)
}

fn string_field<'a>(obj: &'a Value, path: &str, field: &str) -> Result<&'a str, Error> {
    obj.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.{field} is required and must be a string")))
}

/// Checks `contentDeliveryRules` as the service model constrains them. `can_deliver` says
/// whether this service has an S3 client to deliver with: without one an S3 rule is refused,
/// as is every IoT Events rule (this service does not reach AWS IoT Events).
pub fn check_rules(rules: &Value, can_deliver: bool) -> Result<(), Error> {
    if rules.is_null() {
        return Ok(());
    }
    let list = rules
        .as_array()
        .ok_or_else(|| invalid("contentDeliveryRules must be a list".into()))?;
    if list.len() > MAX_RULES {
        return Err(invalid(format!(
            "contentDeliveryRules takes at most {MAX_RULES} rules, got {}",
            list.len()
        )));
    }
    for (i, rule) in list.iter().enumerate() {
        let path = format!("contentDeliveryRules[{i}].destination");
        let dest = rule
            .get("destination")
            .filter(|d| d.is_object())
            .ok_or_else(|| invalid(format!("{path} is required")))?;
        let present = |f: &str| dest.get(f).is_some_and(|v| !v.is_null());
        if present("iotEventsDestinationConfiguration") {
            return Err(invalid(format!(
                "{path}.iotEventsDestinationConfiguration is not supported: this service does \
                 not reach AWS IoT Events; deliver to S3 with s3DestinationConfiguration"
            )));
        }
        let Some(s3) = dest
            .get("s3DestinationConfiguration")
            .filter(|v| !v.is_null())
        else {
            return Err(invalid(format!(
                "{path} needs an s3DestinationConfiguration"
            )));
        };
        let path = format!("{path}.s3DestinationConfiguration");
        let bucket = string_field(s3, &path, "bucket")?;
        if !fits(bucket, 3, 255, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
        }) {
            return Err(invalid(format!(
                "{path}.bucket '{bucket}' must match ^[a-zA-Z0-9.\\-_]*$ with 3 to 255 characters"
            )));
        }
        let key = string_field(s3, &path, "key")?;
        if !fits(key, 1, 255, |c| {
            c.is_ascii_alphanumeric() || "!_.*'()/{}:-".contains(c)
        }) {
            return Err(invalid(format!(
                "{path}.key '{key}' must match ^[a-zA-Z0-9!_.*'()/{{}}:-]*$ with 1 to 255 characters"
            )));
        }
        let role = string_field(s3, &path, "roleArn")?;
        if !fits(role, 20, 2048, |_| true) {
            return Err(invalid(format!(
                "{path}.roleArn must have 20 to 2048 characters"
            )));
        }
        if let Some(glue) = s3.get("glueConfiguration").filter(|v| !v.is_null()) {
            for field in ["tableName", "databaseName"] {
                let v = string_field(glue, &format!("{path}.glueConfiguration"), field)?;
                if !fits(v, 1, 150, |_| true) {
                    return Err(invalid(format!(
                        "{path}.glueConfiguration.{field} must have 1 to 150 characters"
                    )));
                }
            }
        }
        if !can_deliver {
            return Err(invalid(format!(
                "{path}: this service has no S3 client to deliver dataset contents with \
                 (run it with S3 storage, or give ServiceConfig::delivery_s3)"
            )));
        }
    }
    Ok(())
}

/// The S3 destinations of stored (already checked) rules.
pub fn destinations(rules: &Value) -> Vec<S3Destination> {
    rules
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    let s3 = r.get("destination")?.get("s3DestinationConfiguration")?;
                    Some(S3Destination {
                        bucket: s3.get("bucket")?.as_str()?.to_owned(),
                        key: s3.get("key")?.as_str()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A time as the key substitutions write it: ISO 8601 in UTC with milliseconds
/// (`2026-12-02T12:00:00.000Z`).
pub fn key_time(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as i64;
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Expands `!{iotanalytics:scheduleTime}`, `!{iotanalytics:creationTime}` and
/// `!{iotanalytics:versionId}` in a key template.
pub fn expand_key(template: &str, schedule_time: f64, creation_time: f64, version: &str) -> String {
    template
        .replace("!{iotanalytics:scheduleTime}", &key_time(schedule_time))
        .replace("!{iotanalytics:creationTime}", &key_time(creation_time))
        .replace("!{iotanalytics:versionId}", version)
}

/// Puts `csv` at every destination (keys already expanded); returns the failures, each
/// logged with the dataset, version and bucket.
pub async fn deliver(
    client: &aws_sdk_s3::Client,
    dataset: &str,
    version: &str,
    csv: bytes::Bytes,
    targets: &[S3Destination],
) -> Vec<DeliveryError> {
    let mut failures = Vec::new();
    for target in targets {
        let result = client
            .put_object()
            .bucket(&target.bucket)
            .key(&target.key)
            .content_type("text/csv")
            .body(ByteStream::from(csv.clone()))
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(
                dataset,
                version,
                bucket = %target.bucket,
                key = %target.key,
                "dataset content delivered"
            ),
            Err(e) => {
                let error = DeliveryError {
                    bucket: target.bucket.clone(),
                    key: target.key.clone(),
                    reason: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                };
                tracing::warn!(dataset, version, bucket = %target.bucket, %error, "dataset content not delivered");
                failures.push(error);
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(s3: Value) -> Value {
        json!([{ "destination": { "s3DestinationConfiguration": s3 } }])
    }

    #[test]
    fn key_substitutions_are_expanded_in_iso_8601_utc() {
        let key = expand_key(
            "d/!{iotanalytics:scheduleTime}/!{iotanalytics:creationTime}/!{iotanalytics:versionId}.csv",
            1_764_676_800.0,
            1_764_676_801.25,
            "v1",
        );
        assert_eq!(
            key,
            "d/2025-12-02T12:00:00.000Z/2025-12-02T12:00:01.250Z/v1.csv"
        );
    }

    #[test]
    fn iot_events_destinations_are_refused_with_the_reason() {
        let rules = json!([{ "destination": { "iotEventsDestinationConfiguration": {
            "inputName": "in", "roleArn": "arn:aws:iam::123456789012:role/r" } } }]);
        let e = check_rules(&rules, true).unwrap_err().to_string();
        assert!(e.contains("AWS IoT Events"), "{e}");
    }

    #[test]
    fn s3_rules_are_checked_against_the_model_and_need_a_client() {
        let good = json!({"bucket": "out-bucket", "key": "d/!{iotanalytics:versionId}.csv",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "glueConfiguration": {"tableName": "t", "databaseName": "db"}});
        assert!(check_rules(&rule(good.clone()), true).is_ok());
        let e = check_rules(&rule(good.clone()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no S3 client"), "{e}");
        let mut bad_key = good.clone();
        bad_key["key"] = json!("a key with spaces");
        assert!(check_rules(&rule(bad_key), true).is_err());
        let mut no_role = good;
        no_role.as_object_mut().unwrap().remove("roleArn");
        assert!(check_rules(&rule(no_role), true).is_err());
        assert_eq!(destinations(&json!([])), Vec::new());
    }
}
