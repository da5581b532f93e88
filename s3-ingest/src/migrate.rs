//! `s3-ingest migrate`: recreates AWS IoT Analytics channels, datastores, pipelines and
//! datasets in the compatible service, from what `aws iotanalytics describe-*` printed or
//! from a CloudFormation template's `AWS::IoTAnalytics::*` resources.
//!
//! Every file is read before anything is created, so a file that cannot be taken changes
//! nothing. Resources are then created in dependency order (channels, datastores, pipelines,
//! datasets, a dataset after those that trigger it), one line each; a resource that fails is
//! reported and the others go on.

mod calls;
pub mod cloudformation;
pub mod input;
mod reader;
pub mod shapes;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use clap::Args;
use serde_json::{Map, Value};

pub use calls::Done;

/// The kinds of resource, in the order they are created (each may need the ones before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A channel.
    Channel,
    /// A datastore.
    Datastore,
    /// A pipeline (reads a channel, writes datastores).
    Pipeline,
    /// A dataset (queries datastores).
    Dataset,
}

impl Kind {
    /// The field naming such a resource in its Create request.
    pub fn name_field(self) -> &'static str {
        match self {
            Self::Channel => "channelName",
            Self::Datastore => "datastoreName",
            Self::Pipeline => "pipelineName",
            Self::Dataset => "datasetName",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Channel => "channel",
            Self::Datastore => "datastore",
            Self::Pipeline => "pipeline",
            Self::Dataset => "dataset",
        })
    }
}

/// A resource to recreate.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// What it is.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Its Create request's other fields, camelCase as in the service model.
    pub definition: Map<String, Value>,
    /// Its tags (CloudFormation's `Tags`; describe-* output has none).
    pub tags: Vec<(String, String)>,
    /// Where it was read: the file, and the document or logical id.
    pub origin: String,
}

impl Resource {
    /// The Create request's body, as `aws iotanalytics create-* --cli-input-json` takes it.
    pub fn request(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            self.kind.name_field().into(),
            Value::String(self.name.clone()),
        );
        body.extend(self.definition.clone());
        if !self.tags.is_empty() {
            let tags = self
                .tags
                .iter()
                .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
                .collect();
            body.insert("tags".into(), Value::Array(tags));
        }
        Value::Object(body)
    }
}

/// Options of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Files to read: what `aws iotanalytics describe-channel`, `describe-datastore`,
    /// `describe-pipeline` and `describe-dataset` printed (one document per file, or several
    /// concatenated, `list-*` output among them, or a JSON array of them), or CloudFormation
    /// templates (JSON or YAML) with AWS::IoTAnalytics::Channel, Datastore, Pipeline and
    /// Dataset resources.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// IoT Analytics endpoint to create the resources in; without it
    /// AWS_ENDPOINT_URL_IOTANALYTICS, then AWS_ENDPOINT_URL, then the region's AWS endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Update resources that exist already (UpdateChannel, UpdateDatastore, UpdatePipeline,
    /// UpdateDataset, and TagResource for the template's tags) instead of skipping them.
    #[arg(long)]
    pub update: bool,
    /// Print each Create request's body and call nothing (definitions the SDK would refuse
    /// still fail).
    #[arg(long)]
    pub dry_run: bool,
    /// A template parameter's value, for `Ref`s to it (repeatable; a parameter's Default is
    /// used otherwise).
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_parameter)]
    pub parameters: Vec<(String, String)>,
}

/// Help text after the options: what the command does, step by step.
pub const AFTER_HELP: &str = "\
Every file is read before anything is created: a file that cannot be read, or a template \
property whose intrinsic function cannot be resolved from the template (Fn::GetAtt, \
Fn::ImportValue, pseudo parameters...), stops the command with nothing created. Resources are \
created in order: channels, datastores, pipelines, datasets (a dataset after those whose \
contents trigger it). Read-only fields (arn, status, times, statistics) are left out. A resource without a name property in a template is named \
after its logical id. Each resource gets one line: created, skipped (it exists), updated \
(--update) or failed with the service's error; the others go on. An endpoint that does not \
answer (or credentials that cannot be loaded) stops the command at the first resource. Region \
and credentials come from the usual AWS configuration (AWS_REGION, AWS_ACCESS_KEY_ID, \
profiles...).

Exit codes: 0 every resource created, skipped or updated; 1 a resource failed, or nothing \
could be read.";

fn parse_parameter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))
}

/// How many resources ended each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Created.
    pub created: usize,
    /// Updated (`--update`).
    pub updated: usize,
    /// Left as they were: they exist.
    pub skipped: usize,
    /// Refused by the service, or not of the model's shape.
    pub failed: usize,
}

/// Reads every file: the resources in creation order, and notes on what was left out.
/// A resource defined twice is refused.
pub fn read_all(
    files: &[PathBuf],
    parameters: &HashMap<String, String>,
) -> anyhow::Result<(Vec<Resource>, Vec<String>)> {
    let mut resources: Vec<Resource> = Vec::new();
    let mut notes = Vec::new();
    for file in files {
        let contents = input::read_file(file, parameters)?;
        for resource in contents.resources {
            if let Some(earlier) = resources
                .iter()
                .find(|r| r.kind == resource.kind && r.name == resource.name)
            {
                bail!(
                    "{} {} is defined twice: {} and {}",
                    resource.kind,
                    resource.name,
                    earlier.origin,
                    resource.origin
                );
            }
            resources.push(resource);
        }
        notes.extend(contents.notes);
    }
    // Stable: within a kind, the files' order.
    resources.sort_by_key(|resource| resource.kind);
    Ok((triggering_datasets_first(resources), notes))
}

/// The names of the datasets whose contents trigger `resource`'s (its `dataset` triggers).
fn triggered_by(resource: &Resource) -> Vec<&str> {
    let Some(Value::Array(triggers)) = resource.definition.get("triggers") else {
        return Vec::new();
    };
    triggers
        .iter()
        .filter_map(|t| t.get("dataset")?.get("name")?.as_str())
        .collect()
}

/// `resources` with every dataset after the datasets of this migration that trigger it, so a
/// triggering dataset exists when the dataset naming it is created. Otherwise (and in a
/// cycle) the order stays as it was.
fn triggering_datasets_first(resources: Vec<Resource>) -> Vec<Resource> {
    let (datasets, mut ordered): (Vec<_>, Vec<_>) =
        resources.into_iter().partition(|r| r.kind == Kind::Dataset);
    let names: Vec<String> = datasets.iter().map(|d| d.name.clone()).collect();
    let mut pending = datasets;
    let mut placed: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|d| {
            triggered_by(d)
                .iter()
                .all(|n| placed.iter().any(|p| p == n) || !names.iter().any(|m| m == n))
        });
        // A cycle: take the next one as it comes.
        let next = pending.remove(ready.unwrap_or(0));
        placed.push(next.name.clone());
        ordered.push(next);
    }
    ordered
}

/// The IoT Analytics client: `endpoint_url` if given, else the AWS configuration's
/// (which reads AWS_ENDPOINT_URL_IOTANALYTICS and AWS_ENDPOINT_URL).
pub async fn client(endpoint_url: Option<&str>) -> aws_sdk_iotanalytics::Client {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let mut builder = aws_sdk_iotanalytics::config::Builder::from(&config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_iotanalytics::Client::from_conf(builder.build())
}

/// Runs `migrate`, writing one line per resource to `out`.
pub async fn run(args: &MigrateArgs, out: &mut dyn Write) -> anyhow::Result<Summary> {
    let parameters: HashMap<String, String> = args.parameters.iter().cloned().collect();
    let (resources, notes) = read_all(&args.files, &parameters)?;
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    if resources.is_empty() {
        bail!("no IoT Analytics resources in the files given");
    }
    let mut summary = Summary::default();
    if args.dry_run {
        for resource in &resources {
            let (kind, name, origin) = (resource.kind, &resource.name, &resource.origin);
            match calls::check(resource) {
                Ok(()) => writeln!(
                    out,
                    "would create {kind} {name} ({origin}): {}",
                    resource.request()
                )?,
                Err(error) => {
                    summary.failed += 1;
                    writeln!(out, "failed {kind} {name} ({origin}): {error}")?;
                }
            }
        }
        return Ok(summary);
    }
    let client = client(args.endpoint_url.as_deref()).await;
    for resource in &resources {
        let (kind, name) = (resource.kind, &resource.name);
        match calls::apply(&client, resource, args.update).await {
            Ok(Done::Created) => {
                summary.created += 1;
                writeln!(out, "created {kind} {name}")?;
            }
            Ok(Done::Updated) => {
                summary.updated += 1;
                writeln!(out, "updated {kind} {name}")?;
            }
            Ok(Done::Skipped) => {
                summary.skipped += 1;
                writeln!(
                    out,
                    "skipped {kind} {name}: it exists (--update replaces it)"
                )?;
            }
            Err(calls::Failed::Unreachable(error)) => {
                writeln!(out, "failed {kind} {name} ({}): {error}", resource.origin)?;
                out.flush()?;
                bail!(
                    "no answer from the IoT Analytics endpoint (--endpoint-url, \
                     AWS_ENDPOINT_URL_IOTANALYTICS or AWS_ENDPOINT_URL), so nothing after \
                     {kind} {name} was tried: {error}"
                );
            }
            Err(error) => {
                summary.failed += 1;
                writeln!(out, "failed {kind} {name} ({}): {error}", resource.origin)?;
            }
        }
        out.flush().context("writing the report")?;
    }
    writeln!(
        out,
        "{} created, {} updated, {} skipped, {} failed",
        summary.created, summary.updated, summary.skipped, summary.failed
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(name: &str, triggered_by: &[&str]) -> Resource {
        let triggers: Vec<Value> = triggered_by
            .iter()
            .map(|n| serde_json::json!({"dataset": {"name": n}}))
            .collect();
        Resource {
            kind: Kind::Dataset,
            name: name.into(),
            definition: Map::from_iter([("triggers".to_owned(), Value::Array(triggers))]),
            tags: Vec::new(),
            origin: "f.json".into(),
        }
    }

    #[test]
    fn a_dataset_triggered_by_another_is_created_after_it() {
        let channel = Resource {
            kind: Kind::Channel,
            ..dataset("c", &[])
        };
        let ordered = triggering_datasets_first(vec![
            channel,
            dataset("report", &["daily"]),
            dataset("daily", &["hourly"]),
            dataset("hourly", &[]),
            dataset("outside", &["not_migrated"]),
        ]);
        let names: Vec<&str> = ordered.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "hourly", "daily", "report", "outside"]);
    }

    #[test]
    fn datasets_triggering_each_other_keep_their_order() {
        let ordered = triggering_datasets_first(vec![dataset("a", &["b"]), dataset("b", &["a"])]);
        let names: Vec<&str> = ordered.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
