//! Resource definitions (channels, datastores, pipelines, datasets and dataset contents),
//! kept in one JSON file that is replaced atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::storage::write_atomic;

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
    /// When the query finished.
    pub completion_time: Option<f64>,
    /// Rows in the result.
    pub rows: Option<usize>,
}

/// A dataset as created, with its content versions (oldest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDef {
    /// Name.
    pub name: String,
    /// `actions` as given.
    pub actions: Value,
    /// `triggers` as given (stored, not run).
    pub triggers: Value,
    /// `contentDeliveryRules` as given (stored, not run).
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
    /// Content versions, oldest first.
    #[serde(default)]
    pub contents: Vec<ContentVersion>,
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
}

/// Where the catalog lives.
pub fn catalog_path(data_dir: &Path) -> PathBuf {
    data_dir.join("catalog.json")
}

impl Catalog {
    /// Loads the catalog, or an empty one on first start.
    pub fn load(data_dir: &Path) -> Result<Catalog, Error> {
        match std::fs::read(catalog_path(data_dir)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the stored catalog with this one.
    pub fn save(&self, data_dir: &Path, durable: bool) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self)?;
        write_atomic(&catalog_path(data_dir), &bytes, durable)?;
        Ok(())
    }
}
