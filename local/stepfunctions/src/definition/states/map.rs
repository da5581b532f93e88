//! The Map state's own fields: the item processor (INLINE or DISTRIBUTED), the items
//! (ItemsPath, or ItemReader from S3), ItemSelector, ItemBatcher, MaxConcurrency, the failure
//! tolerance and the Map Run's Label. Fields only a DISTRIBUTED Map has are rejected on an
//! inline one; the ItemBatcher and ResultWriter are parsed in `distributed`.

use super::distributed::{ItemBatcher, ResultWriter, parse_item_batcher, parse_result_writer};
use crate::definition::fields::{
    NumberOr, Res, err, known_fields, number_or, reference_path, root_path,
};
use crate::definition::machine::{Machine, MachineKind, parse_machine};
use crate::definition::template::{Template, query_template, template};
use crate::jsonpath::Path;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The fields a Map state allows besides the common ones, Next/End, the paths, ResultPath,
/// Parameters (the legacy ItemSelector), ResultSelector, Retry and Catch.
pub(in crate::definition) const FIELDS: &[&str] = &[
    "Iterator",
    "ItemProcessor",
    "ItemsPath",
    "ItemSelector",
    "ItemReader",
    "ItemBatcher",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "Label",
    "ResultWriter",
];

/// A Map state's settings.
#[derive(Debug)]
pub(crate) struct MapSpec {
    pub processor: Arc<Machine>,
    /// The processor definition as written, so a distributed child execution can be persisted and
    /// redriven on its own.
    pub processor_json: Value,
    pub distributed: bool,
    /// `ProcessorConfig.ExecutionType: EXPRESS`: children run as Express executions.
    pub express: bool,
    pub items_path: Option<Path>,
    /// JSONata: Items, an array or an expression that gives one.
    pub items: Option<Template>,
    pub item_selector: Option<Template>,
    pub item_reader: Option<ItemReader>,
    pub max_concurrency: Option<NumberOr>,
    pub tolerated_percentage: Option<NumberOr>,
    pub tolerated_count: Option<NumberOr>,
    pub label: Option<String>,
    pub batcher: Option<ItemBatcher>,
    pub result_writer: Option<ResultWriter>,
}

/// Distributed Map's ItemReader (JSON array from S3).
#[derive(Debug)]
pub(crate) struct ItemReader {
    pub parameters: Template,
    pub max_items: Option<NumberOr>,
}

/// Parses a Map state's own fields; `jsonata` is the state's QueryLanguage, `machine_jsonata`
/// the one its processor's states inherit.
pub(in crate::definition) fn parse_map(
    s: Option<&str>,
    obj: &Map<String, Value>,
    jsonata: bool,
    machine_jsonata: bool,
) -> Res<MapSpec> {
    let mut processor_json = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return err(s, "Iterator", "cannot be used together with ItemProcessor");
        }
        (Some(p), None) | (None, Some(p)) => p.clone(),
        (None, None) => return err(s, "ItemProcessor", "is required"),
    };
    let (distributed, express) = is_distributed(s, &processor_json)?;
    let processor = parse_machine(&processor_json, s, MachineKind::Processor, machine_jsonata)?;
    // A distributed child is parsed from this text alone: it keeps the language it inherits.
    if machine_jsonata
        && let Some(p) = processor_json.as_object_mut()
        && !p.contains_key("QueryLanguage")
    {
        p.insert("QueryLanguage".into(), "JSONata".into());
    }

    let distributed_only = [
        "ItemReader",
        "ItemBatcher",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
        "ResultWriter",
    ];
    if !distributed {
        for key in distributed_only {
            if obj.contains_key(key) {
                return err(s, key, "is only supported by a Map in DISTRIBUTED mode");
            }
        }
    }
    if obj.contains_key("Parameters") && obj.contains_key("ItemSelector") {
        return err(s, "ItemSelector", "cannot be used together with Parameters");
    }
    let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
        (Some(v), _) if jsonata => Some(query_template(s, "ItemSelector", v)?),
        (Some(v), _) => Some(template(s, "ItemSelector", v, true)?),
        (None, Some(v)) => Some(template(s, "Parameters", v, true)?),
        _ => None,
    };
    let item_reader = obj
        .get("ItemReader")
        .map(|reader| parse_item_reader(s, reader, jsonata))
        .transpose()?;
    let batcher = obj
        .get("ItemBatcher")
        .map(|b| parse_item_batcher(s, b, jsonata))
        .transpose()?;
    let result_writer = obj
        .get("ResultWriter")
        .map(|w| parse_result_writer(s, w, jsonata))
        .transpose()?;
    let label = obj.get("Label").map(|l| parse_label(s, l)).transpose()?;
    let items_path = match obj.get("ItemsPath") {
        None => Some(root_path()),
        Some(v) => Some(reference_path(s, "ItemsPath", v)?),
    };
    if distributed && obj.contains_key("ItemsPath") && obj.contains_key("ItemReader") {
        return err(s, "ItemsPath", "cannot be used together with ItemReader");
    }
    Ok(MapSpec {
        processor: Arc::new(processor),
        processor_json,
        distributed,
        express,
        items_path,
        items: obj
            .get("Items")
            .map(|v| query_template(s, "Items", v))
            .transpose()?,
        item_selector,
        item_reader,
        max_concurrency: number_or(s, obj, "MaxConcurrency", 0.0, 10_000.0)?,
        tolerated_percentage: number_or(s, obj, "ToleratedFailurePercentage", 0.0, 100.0)?,
        tolerated_count: number_or(s, obj, "ToleratedFailureCount", 0.0, 1e12)?,
        label,
        batcher,
        result_writer,
    })
}

/// Whether ProcessorConfig asks for DISTRIBUTED mode, and whether its children are EXPRESS
/// executions; AWS also reads it inside the legacy Iterator.
fn is_distributed(s: Option<&str>, processor_json: &Value) -> Res<(bool, bool)> {
    let (mut distributed, mut express) = (false, false);
    if let Some(config) = processor_json.get("ProcessorConfig") {
        let Some(config) = config.as_object() else {
            return err(s, "ItemProcessor.ProcessorConfig", "must be an object");
        };
        for (key, value) in config {
            match (key.as_str(), value.as_str()) {
                ("Mode", Some("INLINE")) => {}
                ("Mode", Some("DISTRIBUTED")) => distributed = true,
                ("ExecutionType", Some("STANDARD")) => {}
                ("ExecutionType", Some("EXPRESS")) => express = true,
                ("ExecutionType", _) => {
                    return err(
                        s,
                        "ItemProcessor.ProcessorConfig.ExecutionType",
                        "must be STANDARD or EXPRESS",
                    );
                }
                _ => {
                    return err(
                        s,
                        &format!("ItemProcessor.ProcessorConfig.{key}"),
                        "is not supported",
                    );
                }
            }
        }
        if distributed && !config.contains_key("ExecutionType") {
            return err(
                s,
                "ItemProcessor.ProcessorConfig.ExecutionType",
                "is required in DISTRIBUTED mode",
            );
        }
    }
    Ok((distributed, express && distributed))
}

/// ItemReader: a JSON array read from S3 with s3:getObject, Bucket and Key in Parameters (in
/// a JSONata state: Arguments).
fn parse_item_reader(s: Option<&str>, reader: &Value, jsonata: bool) -> Res<ItemReader> {
    let field = if jsonata { "Arguments" } else { "Parameters" };
    let Some(reader) = reader.as_object() else {
        return err(s, "ItemReader", "must be an object");
    };
    let mut max_items = None;
    for (key, value) in reader {
        match key.as_str() {
            "Resource" if value == "arn:aws:states:::s3:getObject" => {}
            "Resource" => {
                return err(
                    s,
                    "ItemReader.Resource",
                    "only arn:aws:states:::s3:getObject is supported",
                );
            }
            key if key == field => {}
            "ReaderConfig" => {
                let Some(config) = value.as_object() else {
                    return err(s, "ItemReader.ReaderConfig", "must be an object");
                };
                if config.get("InputType").and_then(Value::as_str) != Some("JSON") {
                    return err(
                        s,
                        "ItemReader.ReaderConfig.InputType",
                        "only JSON is supported locally",
                    );
                }
                known_fields(
                    s,
                    config,
                    &["InputType", "MaxItems", "MaxItemsPath"],
                    "ItemReader.ReaderConfig.",
                    "is not supported",
                )?;
                max_items = number_or(s, config, "MaxItems", 1.0, 100_000_000.0)?;
            }
            other => return err(s, &format!("ItemReader.{other}"), "is not supported"),
        }
    }
    if !reader.contains_key("Resource") {
        return err(s, "ItemReader.Resource", "is required");
    }
    if !reader.contains_key("ReaderConfig") {
        return err(s, "ItemReader.ReaderConfig", "is required (InputType JSON)");
    }
    let value = reader.get(field).unwrap_or(&Value::Null);
    let parameters = match jsonata {
        true => query_template(s, "ItemReader.Arguments", value)?,
        false => template(s, "ItemReader.Parameters", value, true)?,
    };
    let keys = parameters.keys();
    for key in &keys {
        if !["Bucket", "Key"].contains(key) {
            return err(s, &format!("ItemReader.{field}.{key}"), "is not supported");
        }
    }
    if keys.len() != 2 {
        return err(s, &format!("ItemReader.{field}"), "needs Bucket and Key");
    }
    Ok(ItemReader {
        parameters,
        max_items,
    })
}

/// Label: 1 to 40 characters without ':' '/' or spaces.
fn parse_label(s: Option<&str>, label: &Value) -> Res<String> {
    match label {
        Value::String(l)
            if !l.is_empty() && l.chars().count() <= 40 && !l.contains([':', '/', ' ']) =>
        {
            Ok(l.clone())
        }
        _ => err(
            s,
            "Label",
            "must be 1 to 40 characters without ':' '/' or spaces",
        ),
    }
}
