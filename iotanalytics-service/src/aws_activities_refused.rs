//! The AWS-calling pipeline activities in a build without the Lambda host: no clients exist,
//! so `lambda`, `deviceRegistryEnrich` and `deviceShadowEnrich` are refused when a pipeline is
//! created, as they are by a local service started without clients.

use serde_json::{Map, Value};

/// The clients the AWS-calling activities would use; none can exist in this build.
#[derive(Debug, Clone)]
pub enum AwsActivityClients {}

/// A compiled AWS-calling activity; none can exist in this build.
#[derive(Debug, Clone)]
pub(crate) enum AwsStep {}

impl AwsStep {
    pub(crate) fn parse(
        _kind: &str,
        _body: &Map<String, Value>,
        clients: &AwsActivityClients,
    ) -> Option<Result<Self, String>> {
        match *clients {}
    }

    pub(crate) async fn run(
        &self,
        _pipeline: &str,
        _messages: Vec<Map<String, Value>>,
        _problems: &mut Vec<String>,
    ) -> Vec<Map<String, Value>> {
        match *self {}
    }
}
