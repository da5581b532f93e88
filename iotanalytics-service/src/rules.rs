//! Input rules of the configuration objects the service model constrains: retention periods,
//! tags, logging options and the storage choices that cannot change after creation.

use serde_json::Value;

use crate::catalog::Tag;
use crate::error::Error;

/// Most tags one resource (and one TagResource or UntagResource request) may carry.
pub const MAX_TAGS: usize = 50;

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

/// Checks a `retentionPeriod`: an object with `unlimited: true`, or `numberOfDays` ≥ 1 (and
/// `unlimited` absent or false). Returns the number of days, `None` when unlimited.
pub fn check_retention(field: &str, value: &Value) -> Result<Option<u64>, Error> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object")))?;
    let unlimited = match obj.get("unlimited") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid(format!("{field}.unlimited must be a boolean"))),
    };
    let days = match obj.get("numberOfDays") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|d| *d >= 1).ok_or_else(|| {
            invalid(format!(
                "{field}.numberOfDays must be an integer of at least 1"
            ))
        })?),
    };
    match (unlimited, days) {
        (true, Some(_)) => Err(invalid(format!(
            "{field} takes either unlimited or numberOfDays, not both"
        ))),
        (true, None) => Ok(None),
        (false, Some(d)) => Ok(Some(d)),
        (false, None) => Err(invalid(format!(
            "{field} needs unlimited set to true or a numberOfDays"
        ))),
    }
}

/// The number of days a stored `retentionPeriod` keeps data; `None` when unlimited (or
/// unreadable, which keeps everything).
pub fn retention_days(value: &Value) -> Option<u64> {
    check_retention("retentionPeriod", value).ok().flatten()
}

/// Checks a list of tags: 1–50 of them, keys and values 1–256 characters, keys unique.
pub fn parse_tags(value: &Value) -> Result<Vec<Tag>, Error> {
    let tags: Vec<Tag> = serde_json::from_value(value.clone()).map_err(|e| {
        invalid(format!(
            "tags must be a list of {{key, value}} objects: {e}"
        ))
    })?;
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "tags must hold between 1 and {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    for (i, tag) in tags.iter().enumerate() {
        check_tag_key(&tag.key)?;
        let n = tag.value.chars().count();
        if n == 0 || n > 256 {
            return Err(invalid(format!(
                "The value of tag '{}' must be 1 to 256 characters long",
                tag.key
            )));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Err(invalid(format!(
                "The tag key '{}' appears more than once",
                tag.key
            )));
        }
    }
    Ok(tags)
}

/// Checks a tag key (1–256 characters).
pub fn check_tag_key(key: &str) -> Result<(), Error> {
    let n = key.chars().count();
    if n == 0 || n > 256 {
        return Err(invalid("A tag key must be 1 to 256 characters long"));
    }
    Ok(())
}

/// Sets `new` on `tags`: a key already present takes the new value, others are added at
/// the end. More than [`MAX_TAGS`] in all is `LimitExceededException`.
pub fn merge_tags(tags: &mut Vec<Tag>, new: &[Tag]) -> Result<(), Error> {
    let mut merged = tags.clone();
    for tag in new {
        match merged.iter_mut().find(|t| t.key == tag.key) {
            Some(t) => t.value = tag.value.clone(),
            None => merged.push(tag.clone()),
        }
    }
    if merged.len() > MAX_TAGS {
        return Err(Error::LimitExceeded(format!(
            "A resource can have at most {MAX_TAGS} tags; this would give it {}",
            merged.len()
        )));
    }
    *tags = merged;
    Ok(())
}

/// Checks a role ARN field (20–2048 characters, an IAM role ARN).
pub fn check_role_arn(field: &str, arn: &str) -> Result<(), Error> {
    let len = arn.chars().count();
    if !(20..=2048).contains(&len) || !arn.starts_with("arn:") || !arn.contains(":role/") {
        return Err(invalid(format!(
            "{field} must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) of 20 to 2048 characters"
        )));
    }
    Ok(())
}

/// Checks `loggingOptions`: `roleArn`, `level` (only `ERROR`) and `enabled`, all required.
pub fn check_logging_options(value: &Value) -> Result<(), Error> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("loggingOptions is required"))?;
    let role = obj
        .get("roleArn")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("loggingOptions.roleArn is required"))?;
    check_role_arn("loggingOptions.roleArn", role)?;
    match obj.get("level").and_then(Value::as_str) {
        Some("ERROR") => {}
        Some(other) => {
            return Err(invalid(format!(
                "loggingOptions.level '{other}' is not valid; the only level is ERROR"
            )));
        }
        None => return Err(invalid("loggingOptions.level is required")),
    }
    if !obj.get("enabled").is_some_and(Value::is_boolean) {
        return Err(invalid("loggingOptions.enabled is required (a boolean)"));
    }
    Ok(())
}

/// Checks a storage choice (`channelStorage` / `datastoreStorage`): exactly one of the
/// `allowed` members, and a `customerManagedS3` with its `bucket` and `roleArn`.
pub fn check_storage(field: &str, value: &Value, allowed: &[&str]) -> Result<(), Error> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object")))?;
    let set: Vec<&String> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    if set.len() != 1 || !allowed.contains(&set[0].as_str()) {
        return Err(invalid(format!(
            "{field} takes exactly one of {}",
            allowed.join(", ")
        )));
    }
    if let Some(c) = obj.get("customerManagedS3") {
        if c.get("bucket").and_then(Value::as_str).is_none() {
            return Err(invalid(format!(
                "{field}.customerManagedS3.bucket is required"
            )));
        }
        let role = c.get("roleArn").and_then(Value::as_str).unwrap_or_default();
        check_role_arn(&format!("{field}.customerManagedS3.roleArn"), role)?;
    }
    Ok(())
}

/// Whether a stored storage choice is customer-managed (its retention cannot be updated).
pub fn is_customer_managed(storage: &Value) -> bool {
    storage
        .get("customerManagedS3")
        .is_some_and(|v| !v.is_null())
        || storage
            .get("iotSiteWiseMultiLayerStorage")
            .is_some_and(|v| !v.is_null())
}

/// Which member of a storage or format choice is set (`serviceManagedS3`, `jsonConfiguration`…).
pub fn choice(value: &Value) -> Option<&str> {
    value
        .as_object()?
        .iter()
        .find(|(_, v)| !v.is_null())
        .map(|(k, _)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retention_takes_unlimited_or_a_positive_number_of_days() {
        assert_eq!(
            check_retention("r", &json!({"unlimited": true})).unwrap(),
            None
        );
        assert_eq!(
            check_retention("r", &json!({"numberOfDays": 3})).unwrap(),
            Some(3)
        );
        assert_eq!(
            check_retention("r", &json!({"unlimited": false, "numberOfDays": 3})).unwrap(),
            Some(3)
        );
        for bad in [
            json!({}),
            json!({"numberOfDays": 0}),
            json!({"unlimited": true, "numberOfDays": 2}),
            json!({"unlimited": "yes"}),
            json!(5),
        ] {
            assert!(check_retention("r", &bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn tags_replace_values_by_key_and_stop_at_fifty() {
        let mut tags = parse_tags(&json!([{"key": "a", "value": "1"}])).unwrap();
        merge_tags(
            &mut tags,
            &parse_tags(&json!([{"key": "a", "value": "2"}, {"key": "b", "value": "3"}])).unwrap(),
        )
        .unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].value, "2");
        let many: Vec<Tag> = (0..49)
            .map(|i| Tag {
                key: format!("k{i}"),
                value: "v".into(),
            })
            .collect();
        let err = merge_tags(&mut tags, &many).unwrap_err();
        assert_eq!(err.code(), "LimitExceededException");
        assert_eq!(tags.len(), 2, "a refused merge changes nothing");
    }

    #[test]
    fn tag_lists_with_empty_keys_duplicates_or_too_many_are_refused() {
        assert!(parse_tags(&json!([])).is_err());
        assert!(parse_tags(&json!([{"key": "", "value": "v"}])).is_err());
        assert!(parse_tags(&json!([{"key": "k", "value": ""}])).is_err());
        assert!(
            parse_tags(&json!([{"key": "k", "value": "a"}, {"key": "k", "value": "b"}])).is_err()
        );
    }

    #[test]
    fn logging_options_need_a_role_arn_the_error_level_and_enabled() {
        let good = json!({"roleArn": "arn:aws:iam::123456789012:role/logs", "level": "ERROR", "enabled": true});
        check_logging_options(&good).unwrap();
        for bad in [
            json!({"roleArn": "arn:aws:iam::123456789012:role/logs", "level": "INFO", "enabled": true}),
            json!({"roleArn": "short", "level": "ERROR", "enabled": true}),
            json!({"roleArn": "arn:aws:iam::123456789012:role/logs", "level": "ERROR"}),
        ] {
            assert!(check_logging_options(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn storage_takes_one_choice_and_customer_buckets_need_a_role() {
        let allowed = ["serviceManagedS3", "customerManagedS3"];
        check_storage("s", &json!({"serviceManagedS3": {}}), &allowed).unwrap();
        assert!(check_storage("s", &json!({}), &allowed).is_err());
        assert!(
            check_storage(
                "s",
                &json!({"customerManagedS3": {"bucket": "b"}}),
                &allowed
            )
            .is_err()
        );
        assert!(is_customer_managed(
            &json!({"customerManagedS3": {"bucket": "b"}})
        ));
    }
}
