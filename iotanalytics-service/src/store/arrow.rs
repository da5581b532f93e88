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

/// Decodes JSON lines into batches of `schema` (attribute names matched case-insensitively;
/// the first of two that match wins). Only the schema's attributes are decoded, so a query
/// that reads two columns of a wide datastore passes over the rest without building them.
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
    let mut found: Vec<Option<Value>> = vec![None; cols.len()];
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let finish = |cols: &mut Vec<Col>, rows: usize| -> Result<RecordBatch, Error> {
        new_batch(schema, cols.iter_mut().map(Col::finish).collect(), rows)
    };
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        found.iter_mut().for_each(|v| *v = None);
        let mut wanted = Wanted {
            index: &index,
            found: &mut found,
        };
        if !wanted.read_flat(line) {
            let mut de = serde_json::Deserializer::from_slice(line);
            let read =
                serde::de::DeserializeSeed::deserialize(wanted, &mut de).and_then(|()| de.end());
            if let Err(e) = read {
                tracing::warn!(error = %e, "skipping an unreadable stored line");
                continue;
            }
        }
        for (col, value) in cols.iter_mut().zip(&found) {
            match value {
                Some(v) => col.push(v),
                None => col.push_null(),
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

/// One stored line read for the attributes a schema wants: their values land in `found` by
/// column, every other value is skipped without being built.
struct Wanted<'a> {
    index: &'a HashMap<String, usize>,
    found: &'a mut [Option<Value>],
}

impl Wanted<'_> {
    /// The column of an attribute name, matched as the schema's names are (ignoring case).
    fn column(&self, name: &str) -> Option<usize> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.index.get(&name.to_ascii_lowercase()).copied()
        } else {
            self.index.get(name).copied()
        }
    }

    /// Reads a line that is a flat object ([`crate::flat_payload`], as most stored messages
    /// are) in one pass, building only the wanted values; false, with nothing read, for any
    /// other line, which serde_json then reads. A value is the same `Value` serde_json makes
    /// of it: a string has no escapes on this path, so its text is the value.
    fn read_flat(&mut self, line: &[u8]) -> bool {
        let Some(members) = crate::flat_payload::members(line) else {
            return false;
        };
        for (name, raw) in members {
            let Some(i) = self.column(name) else {
                continue;
            };
            if self.found[i].is_some() {
                continue;
            }
            let value = match raw.strip_prefix('"') {
                Some(quoted) => Value::String(quoted[..quoted.len() - 1].to_owned()),
                None => match serde_json::from_str(raw) {
                    Ok(value) => value,
                    // A number serde_json refuses although it is valid JSON (one out of
                    // f64's range, as 1e400): the whole line goes to serde_json, as before.
                    Err(_) => {
                        self.found.iter_mut().for_each(|v| *v = None);
                        return false;
                    }
                },
            };
            self.found[i] = Some(value);
        }
        true
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Wanted<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Wanted<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(AttrName(name)) = map.next_key()? {
            match self.column(&name) {
                Some(i) if self.found[i].is_none() => self.found[i] = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// An attribute name, borrowed from the line unless it has escapes.
struct AttrName<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for AttrName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = AttrName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AttrName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttrName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn only_the_schemas_attributes_are_decoded_whatever_their_case() {
        let data = br#"{"Location":"a","rowid":"7","extra":{"deep":[1,2]},"temp":"1.5"}
{"rowid":8,"location":"b\u00e9"}
"#;
        let schema = schema(&[("location", DataType::Utf8), ("rowid", DataType::Int64)]);
        let batches = decode_jsonl(data, &schema).unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_columns(), 2);
        let location = batch.column(0).as_string::<i32>();
        assert_eq!(location.value(0), "a");
        assert_eq!(location.value(1), "b\u{e9}");
        let rowid = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!((rowid.value(0), rowid.value(1)), (7, 8));
    }

    #[test]
    fn unreadable_lines_are_skipped_and_missing_attributes_are_null() {
        let data = b"{\"a\":\"1\"}\n{\"a\":\"3\",\"b\":\n{\"a\":\"2\",\"b\":[1,2]}\nnot json\n{\"b\":\"x\"}\n";
        let schema = schema(&[("a", DataType::Utf8), ("b", DataType::Utf8)]);
        let batch = &decode_jsonl(data, &schema).unwrap()[0];
        assert_eq!(batch.num_rows(), 3);
        let a = batch.column(0).as_string::<i32>();
        assert_eq!((a.value(0), a.value(1), a.is_null(2)), ("1", "2", true));
        let b = batch.column(1).as_string::<i32>();
        assert_eq!((b.is_null(0), b.value(1), b.value(2)), (true, "[1,2]", "x"));
    }

    #[test]
    fn a_schema_without_columns_still_counts_the_rows() {
        let data = b"{\"a\":1}\n{\"b\":2}\n";
        let batches = decode_jsonl(data, &schema(&[])).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }

    #[test]
    fn flat_lines_decode_as_serde_json_decodes_them() {
        // Each value once as the only thing on a flat line (the quick reader's) and once
        // beside a member with an escape (serde_json's): the columns must come out the same.
        let values = [
            r#""text""#,
            r#""  12 ""#,
            r#""1.5""#,
            r#""true""#,
            r#""""#,
            "12",
            "-7",
            "1.0",
            "1e3",
            "-0",
            "2.5E-1",
            "123456789012345678901",
            "true",
            "false",
            "null",
        ];
        let types = [
            DataType::Utf8,
            DataType::Int64,
            DataType::Float64,
            DataType::Boolean,
        ];
        let fields: Vec<(String, DataType)> = types
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("c{i}"), t.clone()))
            .collect();
        let fields: Vec<(&str, DataType)> = fields
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let schema = schema(&fields);
        let mut flat = String::new();
        let mut escaped = String::new();
        for value in values {
            let members: Vec<String> = (0..types.len())
                .map(|i| format!(r#""C{i}":{value},"c{i}":"second""#))
                .collect();
            flat.push_str(&format!("{{{}}}\n", members.join(",")));
            escaped.push_str(&format!(r#"{{"z":"\u0041",{}}}"#, members.join(",")));
            escaped.push('\n');
        }
        assert!(crate::flat_payload::members(flat.lines().next().unwrap().as_bytes()).is_some());
        assert!(crate::flat_payload::members(escaped.lines().next().unwrap().as_bytes()).is_none());
        let quick = &decode_jsonl(flat.as_bytes(), &schema).unwrap()[0];
        let full = &decode_jsonl(escaped.as_bytes(), &schema).unwrap()[0];
        assert_eq!(quick.num_rows(), values.len());
        assert_eq!(quick, full);
        // The first of two names that match wins on both paths.
        let text = quick.column(0).as_string::<i32>();
        assert_eq!((text.value(0), text.value(5)), ("text", "12"));
    }
}
