//! The fields only a DISTRIBUTED Map has besides its ItemReader: the ItemBatcher (items per
//! batch, bytes per batch, BatchInput) and the ResultWriter that exports the Map Run's results
//! to S3.

use crate::definition::fields::{NumberOr, Res, err, known_fields, number_or};
use crate::definition::template::{Template, query_template, template};
use serde_json::Value;

/// The largest input a child execution takes, and so the largest batch (256 KiB).
pub(crate) const MAX_BATCH_BYTES: f64 = 256.0 * 1024.0;

/// Distributed Map's ItemBatcher: at least one of MaxItemsPerBatch and MaxInputBytesPerBatch
/// (each literal or by a path), and an optional BatchInput.
#[derive(Debug)]
pub(crate) struct ItemBatcher {
    pub max_items: Option<NumberOr>,
    pub max_bytes: Option<NumberOr>,
    pub batch_input: Option<Template>,
}

/// How a ResultWriter shapes each child's result (`WriterConfig.Transformation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transformation {
    /// The child's execution metadata with its input and output (the default with S3).
    None,
    /// The child's output only.
    Compact,
    /// The child's output, arrays flattened into the results.
    Flatten,
}

/// Distributed Map's ResultWriter: `arn:aws:states:::s3:putObject` with Bucket and Prefix.
#[derive(Debug)]
pub(crate) struct ResultWriter {
    pub parameters: Template,
    pub transformation: Transformation,
    /// `WriterConfig.OutputType: JSONL` writes JSON Lines instead of one JSON array.
    pub json_lines: bool,
}

/// ItemBatcher: MaxItemsPerBatch and/or MaxInputBytesPerBatch (or their paths), BatchInput.
pub(super) fn parse_item_batcher(s: Option<&str>, b: &Value, jsonata: bool) -> Res<ItemBatcher> {
    let Some(b) = b.as_object() else {
        return err(s, "ItemBatcher", "must be an object");
    };
    known_fields(
        s,
        b,
        &[
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
            "BatchInput",
        ],
        "ItemBatcher.",
        "is not supported",
    )?;
    let max_items = number_or(s, b, "MaxItemsPerBatch", 1.0, 100_000_000.0)?;
    let max_bytes = number_or(s, b, "MaxInputBytesPerBatch", 1.0, MAX_BATCH_BYTES)?;
    if max_items.is_none() && max_bytes.is_none() {
        return err(
            s,
            "ItemBatcher",
            "needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)",
        );
    }
    Ok(ItemBatcher {
        max_items,
        max_bytes,
        batch_input: b
            .get("BatchInput")
            .map(|v| match jsonata {
                true => query_template(s, "ItemBatcher.BatchInput", v),
                false => template(s, "ItemBatcher.BatchInput", v, true),
            })
            .transpose()?,
    })
}

/// ResultWriter: Resource `arn:aws:states:::s3:putObject` with Parameters Bucket and Prefix,
/// and an optional WriterConfig (Transformation, OutputType).
/// In a JSONata state its Parameters are called Arguments, as in an ItemReader.
pub(super) fn parse_result_writer(s: Option<&str>, w: &Value, jsonata: bool) -> Res<ResultWriter> {
    let Some(w) = w.as_object() else {
        return err(s, "ResultWriter", "must be an object");
    };
    known_fields(
        s,
        w,
        &["Resource", "Parameters", "Arguments", "WriterConfig"],
        "ResultWriter.",
        "is not supported",
    )?;
    match w.get("Resource") {
        Some(r) if r == "arn:aws:states:::s3:putObject" => {}
        Some(_) => {
            return err(
                s,
                "ResultWriter.Resource",
                "only arn:aws:states:::s3:putObject is supported",
            );
        }
        // AWS accepts a WriterConfig alone (it shapes the state output without S3); that form
        // is not run locally.
        None => {
            return err(
                s,
                "ResultWriter.Resource",
                "is required locally (arn:aws:states:::s3:putObject)",
            );
        }
    }
    let field = if jsonata { "Arguments" } else { "Parameters" };
    let Some(parameters) = w.get(field) else {
        return err(
            s,
            &format!("ResultWriter.{field}"),
            "needs Bucket (and Prefix)",
        );
    };
    let parameters = match jsonata {
        true => query_template(s, "ResultWriter.Arguments", parameters)?,
        false => template(s, "ResultWriter.Parameters", parameters, true)?,
    };
    let keys = parameters.keys();
    if let Some(key) = keys.iter().find(|k| !["Bucket", "Prefix"].contains(k)) {
        return err(
            s,
            &format!("ResultWriter.Parameters.{key}"),
            "is not supported",
        );
    }
    if !keys.contains(&"Bucket") {
        return err(s, "ResultWriter.Parameters", "needs Bucket");
    }
    let (mut transformation, mut json_lines) = (Transformation::None, false);
    if let Some(config) = w.get("WriterConfig") {
        let Some(config) = config.as_object() else {
            return err(s, "ResultWriter.WriterConfig", "must be an object");
        };
        known_fields(
            s,
            config,
            &["Transformation", "OutputType"],
            "ResultWriter.WriterConfig.",
            "is not supported",
        )?;
        transformation = match config.get("Transformation").and_then(Value::as_str) {
            None | Some("NONE") => Transformation::None,
            Some("COMPACT") => Transformation::Compact,
            Some("FLATTEN") => Transformation::Flatten,
            Some(_) => {
                return err(
                    s,
                    "ResultWriter.WriterConfig.Transformation",
                    "must be NONE, COMPACT or FLATTEN",
                );
            }
        };
        json_lines = match config.get("OutputType").and_then(Value::as_str) {
            None | Some("JSON") => false,
            Some("JSONL") => true,
            Some(_) => {
                return err(
                    s,
                    "ResultWriter.WriterConfig.OutputType",
                    "must be JSON or JSONL",
                );
            }
        };
    }
    Ok(ResultWriter {
        parameters,
        transformation,
        json_lines,
    })
}
