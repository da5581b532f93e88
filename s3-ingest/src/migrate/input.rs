//! Reading `migrate`'s files: what `aws iotanalytics describe-*` printed (one document,
//! several concatenated, `list-*` output among them, or a JSON array of them), or a
//! CloudFormation template in JSON or YAML.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::cloudformation::{self, TemplateError};
use super::{Kind, Resource};

/// A file `migrate` cannot read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Neither JSON documents nor YAML.
    #[error("{file}: neither JSON documents nor a YAML template: {reason}")]
    Syntax {
        /// The file.
        file: String,
        /// The JSON parser's complaint.
        reason: String,
    },
    /// A document of a kind `migrate` does not know.
    #[error(
        "{file}: document {index} is not describe-channel, describe-datastore, describe-pipeline or describe-dataset output, nor a CloudFormation template"
    )]
    Unknown {
        /// The file.
        file: String,
        /// Which document, from 1.
        index: usize,
    },
    /// A describe document without the resource's name.
    #[error("{file}: document {index}: the {kind} has no name")]
    Unnamed {
        /// The file.
        file: String,
        /// Which document, from 1.
        index: usize,
        /// The resource kind.
        kind: Kind,
    },
    /// A template that cannot be taken.
    #[error("{file}: {source}")]
    Template {
        /// The file.
        file: String,
        /// What is wrong with it.
        source: TemplateError,
    },
}

/// The resources of one file, and notes on what was left out.
#[derive(Debug, Default)]
pub struct FileContents {
    /// The resources, in the file's order.
    pub resources: Vec<Resource>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// Reads one file.
pub fn read_file(
    path: &Path,
    parameters: &HashMap<String, String>,
) -> Result<FileContents, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        file: file.clone(),
        source,
    })?;
    read_text(&text, &file, parameters)
}

/// Reads a file's text; `file` names it in errors and origins.
pub fn read_text(
    text: &str,
    file: &str,
    parameters: &HashMap<String, String>,
) -> Result<FileContents, InputError> {
    let documents = documents(text).map_err(|reason| InputError::Syntax {
        file: file.to_owned(),
        reason,
    })?;
    let mut out = FileContents::default();
    for (i, document) in documents.iter().enumerate() {
        let index = i + 1;
        if cloudformation::is_template(document) {
            let template = cloudformation::read(document, file, parameters).map_err(|source| {
                InputError::Template {
                    file: file.to_owned(),
                    source,
                }
            })?;
            out.resources.extend(template.resources);
            out.notes.extend(template.notes);
            continue;
        }
        let Some(object) = document.as_object() else {
            return Err(InputError::Unknown {
                file: file.to_owned(),
                index,
            });
        };
        if LIST_KEYS.iter().any(|key| object.contains_key(*key)) {
            // list-* output names resources but does not define them: the describe-*
            // documents beside it do.
            continue;
        }
        let Some((kind, described)) = described(object) else {
            return Err(InputError::Unknown {
                file: file.to_owned(),
                index,
            });
        };
        let name = described
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| InputError::Unnamed {
                file: file.to_owned(),
                index,
                kind,
            })?;
        out.resources.push(Resource {
            kind,
            name: name.to_owned(),
            definition: from_described(kind, described),
            tags: Vec::new(),
            origin: format!("{file}: document {index}"),
        });
    }
    Ok(out)
}

/// The keys of `list-*` output.
const LIST_KEYS: [&str; 4] = [
    "channelSummaries",
    "datastoreSummaries",
    "pipelineSummaries",
    "datasetSummaries",
];

/// The JSON documents of a file: one, several concatenated (arrays flattened), or a YAML one.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let json: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect();
    let values = match json {
        Ok(values) => values,
        Err(json_error) => {
            let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
                .map_err(|yaml_error| format!("as JSON: {json_error}; as YAML: {yaml_error}"))?;
            vec![cloudformation::yaml_to_json(yaml)?]
        }
    };
    Ok(values
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect())
}

/// The resource a `describe-*` document holds, and its kind.
fn described(document: &Map<String, Value>) -> Option<(Kind, &Map<String, Value>)> {
    [
        ("channel", Kind::Channel),
        ("datastore", Kind::Datastore),
        ("pipeline", Kind::Pipeline),
        ("dataset", Kind::Dataset),
    ]
    .into_iter()
    .find_map(|(key, kind)| Some((kind, document.get(key)?.as_object()?)))
}

/// A described resource in the shape of its Create request, without name and tags: the
/// fields renamed where Describe and Create differ, read-only fields left out.
fn from_described(kind: Kind, described: &Map<String, Value>) -> Map<String, Value> {
    let fields: &[(&str, &str)] = match kind {
        Kind::Channel => &[
            ("storage", "channelStorage"),
            ("retentionPeriod", "retentionPeriod"),
        ],
        Kind::Datastore => &[
            ("storage", "datastoreStorage"),
            ("retentionPeriod", "retentionPeriod"),
            ("fileFormatConfiguration", "fileFormatConfiguration"),
            ("datastorePartitions", "datastorePartitions"),
        ],
        Kind::Pipeline => &[("activities", "pipelineActivities")],
        Kind::Dataset => &[
            ("actions", "actions"),
            ("triggers", "triggers"),
            ("contentDeliveryRules", "contentDeliveryRules"),
            ("retentionPeriod", "retentionPeriod"),
            ("versioningConfiguration", "versioningConfiguration"),
            ("lateDataRules", "lateDataRules"),
        ],
    };
    fields
        .iter()
        .filter_map(|(from, to)| {
            let value = described.get(*from).filter(|v| !v.is_null())?;
            Some(((*to).to_owned(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<FileContents, InputError> {
        read_text(text, "f.json", &HashMap::new())
    }

    #[test]
    fn describe_output_becomes_create_shapes_without_read_only_fields() {
        let text = r#"{"channel": {"name": "c", "arn": "arn:aws:iotanalytics:us-east-1:1:channel/c",
            "storage": {"serviceManagedS3": {}}, "status": "ACTIVE",
            "retentionPeriod": {"unlimited": false, "numberOfDays": 30},
            "creationTime": "2025-01-01T00:00:00Z", "lastUpdateTime": 1735689600.0,
            "lastMessageArrivalTime": 1735689600.0},
            "statistics": {"size": {"estimatedSizeInBytes": 1.0}}}"#;
        let resources = read(text).unwrap().resources;
        assert_eq!(resources.len(), 1);
        assert_eq!(
            (resources[0].kind, resources[0].name.as_str()),
            (Kind::Channel, "c")
        );
        assert_eq!(
            Value::Object(resources[0].definition.clone()),
            serde_json::json!({"channelStorage": {"serviceManagedS3": {}},
                "retentionPeriod": {"unlimited": false, "numberOfDays": 30}})
        );
    }

    #[test]
    fn concatenated_list_and_describe_output_and_arrays_are_all_read() {
        let text = r#"{"pipelineSummaries": [{"pipelineName": "p"}]}
            {"pipeline": {"name": "p", "activities": [], "reprocessingSummaries": []}}
            [{"dataset": {"name": "d", "actions": []}}, {"datastore": {"name": "s"}}]"#;
        let resources = read(text).unwrap().resources;
        let names: Vec<_> = resources
            .iter()
            .map(|r| (r.kind, r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Kind::Pipeline, "p"),
                (Kind::Dataset, "d"),
                (Kind::Datastore, "s")
            ]
        );
        assert!(resources[0].definition.contains_key("pipelineActivities"));
    }

    #[test]
    fn a_document_of_another_kind_is_refused_naming_it() {
        let error = read(r#"{"channel": {"name": "c"}} {"thing": {}}"#).unwrap_err();
        assert!(error.to_string().contains("f.json: document 2"), "{error}");
    }

    #[test]
    fn a_yaml_template_is_recognised() {
        let text = "Resources:\n  C:\n    Type: AWS::IoTAnalytics::Channel\n";
        let resources = read(text).unwrap().resources;
        assert_eq!(
            (resources[0].kind, resources[0].name.as_str()),
            (Kind::Channel, "C")
        );
    }
}
