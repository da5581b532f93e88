//! Resource definitions (channels, datastores, pipelines, datasets and dataset contents) and
//! the [`Resource`] trait that lets every storage backend keep them the same way.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Format;
use crate::store::arrow::attr_data_type;
use crate::validate::AttrType;

/// A resource tag (`key` and `value`, 1–256 characters each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Key, unique within a resource.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A channel as created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDef {
    /// Name.
    pub name: String,
    /// `channelStorage` as given (defaults to service-managed).
    pub storage: Value,
    /// `retentionPeriod` as given (defaults to unlimited).
    pub retention_period: Value,
    /// Creation time, seconds since the epoch.
    pub creation_time: f64,
    /// Last update time, seconds since the epoch.
    pub last_update_time: f64,
    /// Tags, in the order they were first set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// A datastore as created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreDef {
    /// Name.
    pub name: String,
    /// `datastoreStorage` as given.
    pub storage: Value,
    /// `retentionPeriod` as given.
    pub retention_period: Value,
    /// `fileFormatConfiguration` as given (defaults to JSON).
    pub file_format_configuration: Value,
    /// `datastorePartitions` as given.
    pub datastore_partitions: Value,
    /// Creation time.
    pub creation_time: f64,
    /// Last update time.
    pub last_update_time: f64,
    /// Tags, in the order they were first set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl DatastoreDef {
    /// Whether its sealed data is kept as Parquet (`fileFormatConfiguration`).
    pub fn is_parquet(&self) -> bool {
        self.file_format_configuration
            .get("parquetConfiguration")
            .is_some()
    }

    /// The columns of a Parquet datastore's `schemaDefinition`, lower-cased, typed as stored
    /// (`string`/`varchar` as strings, integer types as bigint, `float`/`double`/`decimal` as
    /// double, `boolean`; anything else as string). `None` without a schema definition.
    pub fn defined_columns(&self) -> Option<Vec<(String, AttrType)>> {
        let columns: Vec<(String, AttrType)> = self
            .file_format_configuration
            .get("parquetConfiguration")?
            .get("schemaDefinition")?
            .get("columns")?
            .as_array()?
            .iter()
            .filter_map(|c| {
                Some((
                    c.get("name")?.as_str()?.to_ascii_lowercase(),
                    column_kind(c.get("type")?.as_str()?),
                ))
            })
            .collect();
        (!columns.is_empty()).then_some(columns)
    }

    /// How the filesystem backend keeps it.
    pub fn format(&self) -> Format {
        if !self.is_parquet() {
            return Format::Json;
        }
        Format::Parquet(self.defined_columns().map(|cols| {
            cols.into_iter()
                .map(|(name, kind)| (name, attr_data_type(kind)))
                .collect()
        }))
    }
}

/// The kind of a schema definition column type (Hive/Presto names).
fn column_kind(t: &str) -> AttrType {
    let t = t.trim().to_ascii_lowercase();
    match t.split('(').next().unwrap_or_default() {
        "boolean" => AttrType::Bool,
        "tinyint" | "smallint" | "int" | "integer" | "bigint" | "long" => AttrType::Int,
        "float" | "double" | "real" | "decimal" => AttrType::Float,
        _ => AttrType::Str,
    }
}

/// A pipeline as created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineDef {
    /// Name.
    pub name: String,
    /// `pipelineActivities` as given.
    pub activities: Vec<Value>,
    /// Creation time.
    pub creation_time: f64,
    /// Last update time.
    pub last_update_time: f64,
    /// Tags, in the order they were first set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Reprocessing runs, newest first (at most [`PipelineDef::KEPT_REPROCESSINGS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprocessing: Vec<Reprocessing>,
}

impl PipelineDef {
    /// How many reprocessing runs a pipeline remembers.
    pub const KEPT_REPROCESSINGS: usize = 20;
}

/// State of a pipeline reprocessing run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReprocessingStatus {
    /// Messages are being re-run through the pipeline.
    Running,
    /// Every selected message went through.
    Succeeded,
    /// CancelPipelineReprocessing stopped it.
    Cancelled,
    /// Reading or storing failed.
    Failed,
}

/// One StartPipelineReprocessing run, as DescribePipeline's `reprocessingSummaries` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reprocessing {
    /// The reprocessing id.
    pub id: String,
    /// Its state.
    pub status: ReprocessingStatus,
    /// When it was started, seconds since the epoch.
    pub creation_time: f64,
}

/// State of one dataset content version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentState {
    /// The query runs.
    Creating,
    /// The CSV is available.
    Succeeded,
    /// The query failed; see the reason.
    Failed,
}

/// One version of a dataset's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentVersion {
    /// Version id.
    pub version_id: String,
    /// State.
    pub state: ContentState,
    /// Why it failed.
    pub reason: Option<String>,
    /// When CreateDatasetContent was called.
    pub creation_time: f64,
    /// The instant a schedule trigger fired it for; `None` for the other contents (their
    /// schedule time is their creation time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<f64>,
    /// When the query finished.
    pub completion_time: Option<f64>,
    /// Rows in the result.
    pub rows: Option<usize>,
    /// The Athena query execution computing it, when Athena runs the dataset's queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_execution_id: Option<String>,
    /// Where the query engine wrote the CSV (`s3://…`), when not in the backend's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// A dataset as created, with its content versions (oldest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDef {
    /// Name.
    pub name: String,
    /// `actions` as given.
    pub actions: Value,
    /// `triggers` as given (schedules and triggering datasets).
    pub triggers: Value,
    /// `contentDeliveryRules` as given (S3 destinations are delivered to).
    pub content_delivery_rules: Value,
    /// `retentionPeriod` as given.
    pub retention_period: Value,
    /// `versioningConfiguration` as given.
    pub versioning_configuration: Value,
    /// `lateDataRules` as given.
    pub late_data_rules: Value,
    /// Creation time.
    pub creation_time: f64,
    /// Last update time.
    pub last_update_time: f64,
    /// Tags, in the order they were first set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Content versions, oldest first.
    #[serde(default)]
    pub contents: Vec<ContentVersion>,
    /// Where the last `deltaTime` window ended (seconds since the epoch): the next starts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_end: Option<f64>,
    /// The newest instant a schedule trigger created a content for, so that an instant fires
    /// once whichever instance (or tick) sees it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled: Option<f64>,
}

impl DatasetDef {
    /// The SQL of the dataset's query action.
    pub fn sql(&self) -> Option<&str> {
        self.actions
            .as_array()?
            .iter()
            .find_map(|a| a.get("queryAction")?.get("sqlQuery")?.as_str())
    }

    /// How many content versions to keep: `maxVersions`, all when `unlimited`, else one.
    pub fn max_versions(&self) -> usize {
        let v = &self.versioning_configuration;
        if v.get("unlimited").and_then(Value::as_bool) == Some(true) {
            usize::MAX
        } else {
            v.get("maxVersions")
                .and_then(Value::as_u64)
                .map_or(1, |n| n.max(1) as usize)
        }
    }
}

/// All resource definitions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Channels by name.
    pub channels: BTreeMap<String, ChannelDef>,
    /// Datastores by name.
    pub datastores: BTreeMap<String, DatastoreDef>,
    /// Pipelines by name.
    pub pipelines: BTreeMap<String, PipelineDef>,
    /// Datasets by name.
    pub datasets: BTreeMap<String, DatasetDef>,
    /// Account-wide settings by name (`logging`).
    #[serde(default)]
    pub settings: BTreeMap<String, SettingsDef>,
}

/// An account-wide setting kept in the catalog, such as the logging options
/// (PutLoggingOptions), stored under the name [`SettingsDef::LOGGING`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsDef {
    /// Which setting this is.
    pub name: String,
    /// Its value as the API returns it.
    pub value: Value,
}

impl SettingsDef {
    /// The name of the logging options.
    pub const LOGGING: &'static str = "logging";
}

/// The four kinds of resource the catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A channel.
    Channel,
    /// A datastore.
    Datastore,
    /// A pipeline.
    Pipeline,
    /// A dataset (with its content versions).
    Dataset,
    /// An account-wide setting (not a resource with an ARN).
    Settings,
}

impl ResourceKind {
    /// The word used in ARNs and messages: `channel`, `datastore`, ...
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::Channel => "channel",
            ResourceKind::Datastore => "datastore",
            ResourceKind::Pipeline => "pipeline",
            ResourceKind::Dataset => "dataset",
            ResourceKind::Settings => "settings",
        }
    }

    /// The plural, used as a folder or key prefix.
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Channel => "channels",
            ResourceKind::Datastore => "datastores",
            ResourceKind::Pipeline => "pipelines",
            ResourceKind::Dataset => "datasets",
            ResourceKind::Settings => "settings",
        }
    }
}

/// A resource definition as the catalog stores it.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Which kind of resource this is.
    const KIND: ResourceKind;
    /// Its name (unique within its kind).
    fn name(&self) -> &str;
    /// Where resources of this kind live in an in-memory catalog.
    fn entries(catalog: &mut Catalog) -> &mut BTreeMap<String, Self>;
}

/// A resource with an ARN, which can carry tags.
pub trait Tagged: Resource {
    /// Its tags.
    fn tags(&self) -> &[Tag];
    /// Its tags, to change.
    fn tags_mut(&mut self) -> &mut Vec<Tag>;
}

macro_rules! resource {
    ($def:ty, $kind:ident, $field:ident) => {
        impl Resource for $def {
            const KIND: ResourceKind = ResourceKind::$kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn entries(catalog: &mut Catalog) -> &mut BTreeMap<String, Self> {
                &mut catalog.$field
            }
        }
    };
}

macro_rules! tagged {
    ($($def:ty),*) => {$(
        impl Tagged for $def {
            fn tags(&self) -> &[Tag] {
                &self.tags
            }
            fn tags_mut(&mut self) -> &mut Vec<Tag> {
                &mut self.tags
            }
        }
    )*};
}

resource!(ChannelDef, Channel, channels);
resource!(DatastoreDef, Datastore, datastores);
resource!(PipelineDef, Pipeline, pipelines);
resource!(DatasetDef, Dataset, datasets);
resource!(SettingsDef, Settings, settings);
tagged!(ChannelDef, DatastoreDef, PipelineDef, DatasetDef);
