//! The IoT Analytics-compatible service's access key pair, read from AWS Secrets Manager.
//!
//! The deployed service verifies SigV4 against its own key pair rather than IAM (its function
//! URL has no AWS authentication in front of it). The stack keeps that pair in a secret, JSON
//! `{"accessKeyId": "...", "secretAccessKey": "..."}`, and passes its ARN to the functions that
//! call the service as `IOTANALYTICS_CREDENTIALS_SECRET`; they read it once per cold start
//! ([`crate::Clients::load`]) and sign every IoT Analytics call with it.
//!
//! Errors name the secret, never its value.

use aws_sdk_iotanalytics::config::Credentials;
use aws_smithy_types::error::display::DisplayErrorContext;

/// The environment variable holding the secret's ARN (or name). Unset or empty: the IoT
/// Analytics client signs with the function's own credentials.
pub const SECRET_ENV: &str = "IOTANALYTICS_CREDENTIALS_SECRET";

/// The provider name the credentials carry, which shows up in the SDK's debug logs.
const PROVIDER_NAME: &str = "IoTAnalyticsServiceSecret";

/// Why the service's key pair could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// GetSecretValue failed (no such secret, access denied, no network…).
    #[error("reading the IoT Analytics service's key pair from secret {secret}: {message}")]
    Unreadable {
        /// The secret's ARN or name, as configured.
        secret: String,
        /// The SDK's description of the failure.
        message: String,
    },

    /// The secret holds binary data instead of a string.
    #[error(
        "secret {secret} has no SecretString (it must hold JSON with accessKeyId and secretAccessKey)"
    )]
    NotAString {
        /// The secret's ARN or name.
        secret: String,
    },

    /// The secret's string is not the expected JSON object. The message names the field at
    /// fault only: a parser's message could quote the secret.
    #[error(
        "secret {secret} is not a JSON object with non-empty strings accessKeyId and secretAccessKey: {field} is missing or not a string"
    )]
    Malformed {
        /// The secret's ARN or name.
        secret: String,
        /// The field at fault, or "the secret" when the whole text is not a JSON object.
        field: &'static str,
    },
}

/// The secret named by [`SECRET_ENV`], if the variable is set and not empty.
pub fn secret_from_env() -> Option<String> {
    std::env::var(SECRET_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Reads the key pair from `secret` with one GetSecretValue call.
pub async fn read(
    client: &aws_sdk_secretsmanager::Client,
    secret: &str,
) -> Result<Credentials, CredentialsError> {
    let output = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| CredentialsError::Unreadable {
            secret: secret.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    let text = output
        .secret_string()
        .ok_or_else(|| CredentialsError::NotAString {
            secret: secret.to_owned(),
        })?;
    parse(secret, text)
}

/// The key pair in a secret's string.
fn parse(secret: &str, text: &str) -> Result<Credentials, CredentialsError> {
    let malformed = |field| CredentialsError::Malformed {
        secret: secret.to_owned(),
        field,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| malformed("the secret"))?;
    if !value.is_object() {
        return Err(malformed("the secret"));
    }
    let field = |name: &'static str| {
        value[name]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(name))
    };
    Ok(Credentials::new(
        field("accessKeyId")?,
        field("secretAccessKey")?,
        None,
        None,
        PROVIDER_NAME,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::{
        GetSecretValueError, GetSecretValueOutput,
    };
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:IoTAnalyticsServiceCredentials-AbCdEf";
    const SECRET_KEY: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY";

    fn secrets_client(rule: &aws_smithy_mocks::Rule) -> aws_sdk_secretsmanager::Client {
        mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [rule])
    }

    fn secret_string(text: &'static str) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(|req| req.secret_id() == Some(ARN))
            .then_output(move || GetSecretValueOutput::builder().secret_string(text).build())
    }

    #[tokio::test]
    async fn the_key_pair_comes_out_of_the_named_secret_in_one_call() {
        let rule = secret_string(
            r#"{"accessKeyId": "IOTA1a2b3c4d", "secretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"}"#,
        );
        let credentials = read(&secrets_client(&rule), ARN).await.unwrap();
        assert_eq!(credentials.access_key_id(), "IOTA1a2b3c4d");
        assert_eq!(credentials.secret_access_key(), SECRET_KEY);
        assert_eq!(credentials.session_token(), None);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_secret_is_named_in_the_error() {
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Secrets Manager can't find the specified secret.")
                    .build(),
            )
        });
        let error = read(&secrets_client(&rule), ARN).await.unwrap_err();
        assert!(matches!(error, CredentialsError::Unreadable { .. }));
        let message = error.to_string();
        assert!(message.contains(ARN), "{message}");
        assert!(message.contains("can't find"), "{message}");
    }

    #[tokio::test]
    async fn a_secret_without_a_string_is_refused() {
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .then_output(|| GetSecretValueOutput::builder().build());
        let error = read(&secrets_client(&rule), ARN).await.unwrap_err();
        assert!(matches!(error, CredentialsError::NotAString { .. }));
        assert!(error.to_string().contains(ARN));
    }

    #[test]
    fn a_malformed_secret_names_the_field_at_fault_and_never_its_value() {
        let cases = [
            (
                r#"{"accessKeyId": "IOTA1a2b3c4d", "secretAccessKey": 12345678901234}"#,
                "secretAccessKey",
            ),
            (
                r#"{"accessKeyId": "", "secretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"}"#,
                "accessKeyId",
            ),
            (
                r#"{"accessKey": "IOTA1a2b3c4d", "secretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"}"#,
                "accessKeyId",
            ),
            ("wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY", "the secret"),
            (
                r#"["wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"]"#,
                "the secret",
            ),
        ];
        for (text, expected_field) in cases {
            let error = parse(ARN, text).unwrap_err();
            let CredentialsError::Malformed { field, .. } = &error else {
                panic!("{text}: {error:?}");
            };
            assert_eq!(*field, expected_field, "{text}");
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(shown.contains(ARN), "{shown}");
                assert!(!shown.contains(SECRET_KEY), "the secret leaks: {shown}");
                assert!(
                    !shown.contains("12345678901234"),
                    "the secret leaks: {shown}"
                );
            }
        }
    }

    #[test]
    fn the_credentials_debug_output_hides_the_secret_key() {
        let credentials = parse(
            ARN,
            r#"{"accessKeyId": "IOTA1a2b3c4d", "secretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"}"#,
        )
        .unwrap();
        let shown = format!("{credentials:?}");
        assert!(shown.contains("IOTA1a2b3c4d"), "{shown}");
        assert!(!shown.contains(SECRET_KEY), "{shown}");
    }
}
