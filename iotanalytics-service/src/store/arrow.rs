//! JSON lines to Arrow: a datastore's schema as Arrow fields, and stored messages decoded into
//! record batches of that schema.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::error::Error;
use crate::validate::AttrType;

/// Rows per Arrow batch produced from JSON lines.
pub(crate) const BATCH_ROWS: usize = 16_384;

enum Col {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
}

impl Col {
    fn new(t: &DataType) -> Col {
        match t {
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            DataType::Int64 => Col::Int(Int64Builder::new()),
            DataType::Float64 => Col::Float(Float64Builder::new()),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: &Value) {
        match self {
            Col::Bool(b) => b.append_option(match v {
                Value::Bool(x) => Some(*x),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }),
            Col::Int(b) => b.append_option(match v {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            Col::Float(b) => b.append_option(match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            Col::Str(b) => match v {
                Value::Null => b.append_null(),
                Value::String(s) => b.append_value(s),
                other => b.append_value(other.to_string()),
            },
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::Int(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Str(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::Bool(b) => b.len(),
            Col::Int(b) => b.len(),
            Col::Float(b) => b.len(),
            Col::Str(b) => b.len(),
        }
    }
}

/// Decodes JSON lines into batches of `schema` (attribute names matched case-insensitively).
pub fn decode_jsonl(data: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let index: HashMap<String, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().to_ascii_lowercase(), i))
        .collect();
    let mut cols: Vec<Col> = schema
        .fields()
        .iter()
        .map(|f| Col::new(f.data_type()))
        .collect();
    let mut set = vec![false; cols.len()];
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let finish = |cols: &mut Vec<Col>, rows: usize| -> Result<RecordBatch, Error> {
        new_batch(schema, cols.iter_mut().map(Col::finish).collect(), rows)
    };
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, Value> = match serde_json::from_slice(line) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable stored line");
                continue;
            }
        };
        set.fill(false);
        for (k, v) in &obj {
            let idx = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                index.get(&k.to_ascii_lowercase())
            } else {
                index.get(k.as_str())
            };
            if let Some(&i) = idx
                && !set[i]
            {
                cols[i].push(v);
                set[i] = true;
            }
        }
        for (i, was_set) in set.iter().enumerate() {
            if !was_set {
                cols[i].push_null();
            }
        }
        rows += 1;
        if rows == BATCH_ROWS {
            batches.push(finish(&mut cols, rows)?);
            rows = 0;
        }
    }
    if rows > 0 || cols.first().is_some_and(|c| c.len() > 0) {
        batches.push(finish(&mut cols, rows)?);
    }
    Ok(batches)
}

/// Reshapes a batch to `schema`: missing columns become nulls, other types are cast.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let rows = batch.num_rows();
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array = match batch.column_by_name(field.name()) {
            Some(col) if col.data_type() == field.data_type() => col.clone(),
            Some(col) => cast(col, field.data_type())?,
            None => new_null_array(field.data_type(), rows),
        };
        arrays.push(array);
    }
    new_batch(schema, arrays, rows)
}

/// A batch of `rows` rows (stated, so that a batch without columns keeps its count).
fn new_batch(schema: &SchemaRef, arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, Error> {
    let options =
        datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &options,
    )?)
}

/// The Arrow type a column of this attribute kind gets.
pub fn attr_data_type(t: AttrType) -> DataType {
    match t {
        AttrType::Bool => DataType::Boolean,
        AttrType::Int => DataType::Int64,
        AttrType::Float => DataType::Float64,
        AttrType::Null | AttrType::Str | AttrType::Json => DataType::Utf8,
    }
}

/// The Arrow schema of a datastore whose attributes are `attrs`.
pub fn arrow_schema(attrs: &[(String, AttrType)]) -> SchemaRef {
    Arc::new(Schema::new(
        attrs
            .iter()
            .map(|(n, t)| Field::new(n, attr_data_type(*t), true))
            .collect::<Vec<_>>(),
    ))
}
