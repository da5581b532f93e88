//! The Glue table per datastore that Athena queries: created, widened and dropped by the service.
//!
//! # The data the table describes
//!
//! A datastore's messages are JSON Lines objects at
//! `s3://{bucket}/{prefix}datastores/{datastore}/dt=YYYY-MM-DD/*.jsonl`, one object per line,
//! attribute names as sent (case-insensitively unique within a message). The table is an
//! `EXTERNAL_TABLE` at `s3://{bucket}/{prefix}datastores/{datastore}/` read with the OpenX JSON
//! SerDe (`case.insensitive`=true, `ignore.malformed.json`=false), partitioned by `dt` (a
//! string) with Athena partition projection over dates from 2020-01-01 to `NOW`, so that a
//! query filtering on `dt` reads only those days' objects and nobody has to add partitions.
//!
//! Table name: the datastore's name in lower case (Glue and Athena fold names to lower case).
//! Columns: one per attribute name, lower-cased, typed from [`AttrType`]: `Bool` → `boolean`,
//! `Int` → `bigint`, `Float` → `double`, `Str`, `Json` and `Null` → `string`. Each column
//! records the [`AttrType`] it was made from in its parameters (`iotanalytics.type`), so that
//! a column made `string` because only nulls were seen becomes `bigint` when numbers arrive.
//!
//! # What Athena (Presto/Trino) does with it
//!
//! - **Missing attributes read as NULL**; attributes with no column yet are ignored, not an
//!   error: a new attribute is invisible to queries until [`GlueTables::sync_table`] adds it.
//! - **Names**: JSON keys are matched to columns case-insensitively; result columns are lower
//!   case. Identifiers that start with `_` or a digit, or are reserved words (`date`,
//!   `timestamp`, `order`, ...), must be double-quoted in dataset SQL (`SELECT "_id"`).
//! - **The partition column `dt` is a column too**: `SELECT *` returns it last, and an
//!   attribute named `dt` (any case) cannot have a column: it is left out of the table (with
//!   a warning) and queries that name `dt` see the partition date.
//! - **Types only widen.** When the service widens an attribute's type (a column once
//!   `bigint` sees strings and becomes `string`; `bigint` sees fractions and becomes `double`),
//!   the table is updated to the wider type. Partition projection has no per-partition schema,
//!   so the wider type applies to old objects as well. Trino's OpenX JSON reader (the engine
//!   Athena version 3 is built on; read from its source, not run against Athena) reads every
//!   scalar from its text: numbers and booleans read into a `string` column as their JSON text,
//!   integers into a `double` column as doubles, and objects and arrays (`Json`) into a
//!   `string` column as JSON text (spacing and key order not necessarily as sent).
//! - **A value that does not fit its column** is read by the same rules, which are not all
//!   errors: a non-numeric string in a `bigint` or `double` column fails the query
//!   (`HIVE_BAD_DATA`), but a fraction in a `bigint` column is truncated (`1.5` reads as 1) and
//!   any value other than `true` in a `boolean` column reads as `false`. Such values exist only
//!   between a message that widens a type landing and the table update, so the service must
//!   sync the table before it acknowledges such a message.
//! - **A malformed line fails the query** (`ignore.malformed.json`=false) instead of reading as
//!   a row of NULLs, so nothing is lost without a trace.
//! - **Dates outside the projection** (before 2020-01-01, or after `NOW` at query time) are
//!   not read: objects must be filed under their UTC date, and `dt` compares as a string
//!   (`WHERE dt >= '2026-11-01'`).
//! - Athena's documentation warns that the OpenX JSON SerDe can return non-deterministic
//!   results in some cases and suggests the Hive JSON SerDe or another format instead; the
//!   SerDe is one constant here ([`SERDE`]).
//! - Two datastores whose names differ only in case would share one table; the service must
//!   not let them both exist on AWS.
//!
//! # Concurrency
//!
//! Several service instances may sync one table at once, each from its own view of the
//! catalog. Syncing never removes a column or narrows a type (columns already in the table
//! stay, merged with the wanted ones), so a stale view cannot undo a newer one, and updates
//! pass the `VersionId` that was read so that Glue refuses an update over a concurrent change
//! (`ConcurrentModificationException`); the sync then reads the table again and retries.

use std::collections::HashMap;

use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, Table, TableInput};

use crate::athena::sdk_error;
use crate::error::Error;
use crate::validate::AttrType;

/// The partition column: the date directory (`dt=YYYY-MM-DD`) of each object.
pub const PARTITION_KEY: &str = "dt";
/// The SerDe that reads the JSON Lines objects.
pub const SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
/// Column parameter holding the [`AttrType`] a column was made from.
const TYPE_PARAMETER: &str = "iotanalytics.type";
/// Reads of the table before a sync gives up on concurrent writers.
const MAX_ATTEMPTS: u32 = 4;

/// Keeps one Glue table per datastore in one Glue database.
#[derive(Debug, Clone)]
pub struct GlueTables {
    client: aws_sdk_glue::Client,
    database: String,
    bucket: String,
    prefix: String,
}

impl GlueTables {
    /// Tables in `database` describing data in `bucket` under `prefix` (`""`, or a key prefix;
    /// a missing trailing `/` is added and a leading `/` removed).
    pub fn new(
        client: aws_sdk_glue::Client,
        database: impl Into<String>,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        let prefix: String = prefix.into();
        let mut prefix = prefix.trim_start_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        GlueTables {
            client,
            database: database.into(),
            bucket: bucket.into(),
            prefix,
        }
    }

    /// The Glue database the tables are in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The table name of a datastore: its name in lower case.
    pub fn table_name(datastore: &str) -> String {
        datastore.to_ascii_lowercase()
    }

    /// The table's location: `s3://{bucket}/{prefix}datastores/{datastore}/`.
    pub fn location(&self, datastore: &str) -> String {
        format!(
            "s3://{}/{}datastores/{datastore}/",
            self.bucket, self.prefix
        )
    }

    /// Creates the datastore's table, or updates it when it lacks a wanted column, a column's
    /// type is narrower than wanted, or its definition (location, SerDe, projection) differs.
    /// Does nothing when the table already covers `columns`. Columns are given in the order
    /// attributes were first accepted; new ones are appended after the table's existing ones.
    pub async fn sync_table(
        &self,
        datastore: &str,
        columns: &[(String, AttrType)],
    ) -> Result<(), Error> {
        let name = Self::table_name(datastore);
        let wanted = wanted_columns(datastore, columns);
        for attempt in 1..=MAX_ATTEMPTS {
            let last = attempt == MAX_ATTEMPTS;
            let read = self
                .client
                .get_table()
                .database_name(&self.database)
                .name(&name)
                .send()
                .await;
            let existing = match read {
                Ok(out) => out.table,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_entity_not_found_exception()) =>
                {
                    None
                }
                Err(e) => return Err(sdk_error("Glue GetTable", e)),
            };
            let Some(table) = existing else {
                let input = self.table_input(datastore, &wanted)?;
                let created = self
                    .client
                    .create_table()
                    .database_name(&self.database)
                    .table_input(input)
                    .send()
                    .await;
                match created {
                    Ok(_) => {
                        tracing::info!(table = %name, columns = wanted.len(), "Glue table created");
                        return Ok(());
                    }
                    // Another instance created it first: read it and update if need be.
                    Err(e)
                        if !last
                            && e.as_service_error().is_some_and(|e| {
                                e.is_already_exists_exception()
                                    || e.is_concurrent_modification_exception()
                            }) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(sdk_error("Glue CreateTable", e)),
                }
            };
            let merged = merge_columns(
                table
                    .storage_descriptor()
                    .map(|sd| sd.columns())
                    .unwrap_or_default(),
                &wanted,
            );
            let input = self.table_input(datastore, &merged)?;
            if covers(&table, &input) {
                return Ok(());
            }
            let mut update = self
                .client
                .update_table()
                .database_name(&self.database)
                .name(&name)
                .table_input(input);
            if let Some(version) = table.version_id() {
                update = update.version_id(version);
            }
            match update.send().await {
                Ok(_) => {
                    tracing::info!(table = %name, columns = merged.len(), "Glue table updated");
                    return Ok(());
                }
                // Changed (or dropped) since it was read: read it again.
                Err(e)
                    if !last
                        && e.as_service_error().is_some_and(|e| {
                            e.is_concurrent_modification_exception()
                                || e.is_entity_not_found_exception()
                        }) =>
                {
                    continue;
                }
                Err(e) => return Err(sdk_error("Glue UpdateTable", e)),
            }
        }
        Err(Error::Throttling(format!(
            "Glue table {name} kept changing while it was synced; try again"
        )))
    }

    /// Deletes the datastore's table; a table that does not exist is fine.
    pub async fn drop_table(&self, datastore: &str) -> Result<(), Error> {
        let name = Self::table_name(datastore);
        let result = self
            .client
            .delete_table()
            .database_name(&self.database)
            .name(&name)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(table = %name, "Glue table deleted");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("Glue DeleteTable", e)),
        }
    }

    /// The whole table definition for `columns` (already lower-cased and merged).
    fn table_input(
        &self,
        datastore: &str,
        columns: &[(String, AttrType)],
    ) -> Result<TableInput, Error> {
        let location = self.location(datastore);
        let parameters: HashMap<String, String> = [
            ("EXTERNAL", "TRUE".to_owned()),
            ("classification", "json".to_owned()),
            ("projection.enabled", "true".to_owned()),
            ("projection.dt.type", "date".to_owned()),
            ("projection.dt.format", "yyyy-MM-dd".to_owned()),
            ("projection.dt.range", "2020-01-01,NOW".to_owned()),
            ("projection.dt.interval", "1".to_owned()),
            ("projection.dt.interval.unit", "DAYS".to_owned()),
            (
                "storage.location.template",
                format!("{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}/"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let serde = SerDeInfo::builder()
            .serialization_library(SERDE)
            .parameters("case.insensitive", "true")
            .parameters("ignore.malformed.json", "false")
            .build();
        let columns = columns
            .iter()
            .map(|(name, kind)| column(name, glue_type(*kind), Some(*kind)))
            .collect::<Result<Vec<_>, _>>()?;
        let storage = StorageDescriptor::builder()
            .set_columns(Some(columns))
            .location(&location)
            .input_format(INPUT_FORMAT)
            .output_format(OUTPUT_FORMAT)
            .serde_info(serde)
            .build();
        TableInput::builder()
            .name(Self::table_name(datastore))
            .description(format!(
                "IoT Analytics datastore {datastore}: JSON Lines objects under {location}, kept by the service"
            ))
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters))
            .partition_keys(column(PARTITION_KEY, "string", None)?)
            .storage_descriptor(storage)
            .build()
            .map_err(|e| Error::InternalFailure(format!("Glue table input: {e}")))
    }
}

/// A Glue column; `made_from` is recorded in its parameters.
fn column(name: &str, glue_type: &str, made_from: Option<AttrType>) -> Result<Column, Error> {
    let mut builder = Column::builder().name(name).r#type(glue_type);
    if let Some(kind) = made_from {
        builder = builder.parameters(TYPE_PARAMETER, attr_name(kind));
    }
    builder
        .build()
        .map_err(|e| Error::InternalFailure(format!("Glue column {name}: {e}")))
}

/// The Glue (Hive) type of an attribute type.
fn glue_type(kind: AttrType) -> &'static str {
    match kind {
        AttrType::Bool => "boolean",
        AttrType::Int => "bigint",
        AttrType::Float => "double",
        AttrType::Str | AttrType::Json | AttrType::Null => "string",
    }
}

fn attr_name(kind: AttrType) -> &'static str {
    match kind {
        AttrType::Null => "null",
        AttrType::Bool => "bool",
        AttrType::Int => "int",
        AttrType::Float => "float",
        AttrType::Str => "str",
        AttrType::Json => "json",
    }
}

/// The attribute type an existing column stands for: the one it records, else its Glue type;
/// a type this service never writes counts as a string (the widest).
fn existing_kind(column: &Column) -> AttrType {
    let recorded = column
        .parameters()
        .and_then(|p| p.get(TYPE_PARAMETER))
        .map(String::as_str);
    match recorded {
        Some("null") => AttrType::Null,
        Some("bool") => AttrType::Bool,
        Some("int") => AttrType::Int,
        Some("float") => AttrType::Float,
        Some("json") => AttrType::Json,
        Some("str") => AttrType::Str,
        _ => match column.r#type() {
            Some("boolean") => AttrType::Bool,
            Some("bigint") => AttrType::Int,
            Some("double") => AttrType::Float,
            _ => AttrType::Str,
        },
    }
}

/// The caller's columns lower-cased, names that fold together merged (first position kept),
/// and the partition key left out.
fn wanted_columns(datastore: &str, columns: &[(String, AttrType)]) -> Vec<(String, AttrType)> {
    let mut wanted: Vec<(String, AttrType)> = Vec::with_capacity(columns.len());
    for (name, kind) in columns {
        let name = name.to_ascii_lowercase();
        if name == PARTITION_KEY {
            tracing::warn!(
                datastore,
                attribute = %name,
                "attribute has the partition column's name and gets no column in the Glue table"
            );
            continue;
        }
        match wanted.iter_mut().find(|(n, _)| *n == name) {
            Some((_, k)) => *k = k.merge(*kind),
            None => wanted.push((name, *kind)),
        }
    }
    wanted
}

/// The table's columns (in their order), each widened to the wanted type, then the wanted
/// columns it lacks (in their order).
fn merge_columns(existing: &[Column], wanted: &[(String, AttrType)]) -> Vec<(String, AttrType)> {
    let mut merged: Vec<(String, AttrType)> = existing
        .iter()
        .map(|c| (c.name().to_ascii_lowercase(), existing_kind(c)))
        .filter(|(n, _)| n != PARTITION_KEY)
        .collect();
    for (name, kind) in wanted {
        match merged.iter_mut().find(|(n, _)| n == name) {
            Some((_, k)) => *k = k.merge(*kind),
            None => merged.push((name.clone(), *kind)),
        }
    }
    merged
}

/// True when `table` already is what `input` describes: same columns (names, types and
/// recorded kinds, in order), partition keys, location, formats and SerDe, and every
/// parameter of `input` set to the same value (Glue or people may add others).
fn covers(table: &Table, input: &TableInput) -> bool {
    fn columns(cs: &[Column]) -> Vec<(&str, Option<&str>, Option<&String>)> {
        cs.iter()
            .map(|c| {
                (
                    c.name(),
                    c.r#type(),
                    c.parameters().and_then(|p| p.get(TYPE_PARAMETER)),
                )
            })
            .collect()
    }
    fn includes(
        have: Option<&HashMap<String, String>>,
        want: Option<&HashMap<String, String>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    let (Some(have), Some(want)) = (table.storage_descriptor(), input.storage_descriptor()) else {
        return false;
    };
    fn serde(sd: &StorageDescriptor) -> Option<&str> {
        sd.serde_info().and_then(|s| s.serialization_library())
    }
    table.table_type() == input.table_type()
        && includes(table.parameters(), input.parameters())
        && columns(table.partition_keys()) == columns(input.partition_keys())
        && columns(have.columns()) == columns(want.columns())
        && have.location() == want.location()
        && have.input_format() == want.input_format()
        && have.output_format() == want.output_format()
        && serde(have) == serde(want)
        && includes(
            have.serde_info().and_then(|s| s.parameters()),
            want.serde_info().and_then(|s| s.parameters()),
        )
}

#[cfg(test)]
mod tests;
