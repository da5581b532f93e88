//! A Distributed Map's ItemBatcher: groups the items' inputs into child inputs
//! `{"BatchInput": ..., "Items": [...]}` of at most MaxItemsPerBatch items and at most
//! MaxInputBytesPerBatch bytes of JSON (the whole child input, as AWS measures it).

use super::map::resolve_number;
use crate::dataflow::render;
use crate::definition::{MAX_BATCH_BYTES, MapSpec};
use crate::error::StatesError;
use serde_json::{Value, json};

/// One child input and how many of the Map's items it holds.
pub(super) struct Batch {
    pub input: Value,
    pub items: u64,
}

/// The child inputs: one per item without an ItemBatcher, else the items in order, batched.
pub(super) fn batches(
    spec: &MapSpec,
    effective: &Value,
    context: &Value,
    inputs: Vec<Value>,
) -> Result<Vec<Batch>, StatesError> {
    let Some(batcher) = &spec.batcher else {
        return Ok(inputs
            .into_iter()
            .map(|input| Batch { input, items: 1 })
            .collect());
    };
    let max_items = resolve_number(
        batcher.max_items.as_ref(),
        effective,
        context,
        "MaxItemsPerBatch",
    )?
    .map(|n| n.max(1.0) as usize)
    .unwrap_or(usize::MAX);
    // Without a byte limit a batch is still bounded by the largest input a child takes.
    let max_bytes = resolve_number(
        batcher.max_bytes.as_ref(),
        effective,
        context,
        "MaxInputBytesPerBatch",
    )?
    .unwrap_or(MAX_BATCH_BYTES)
    .min(MAX_BATCH_BYTES) as usize;
    let batch_input = batcher
        .batch_input
        .as_ref()
        .map(|t| render(t, effective, context, "ItemBatcher.BatchInput"))
        .transpose()?;
    let envelope = |items: Vec<Value>| {
        let mut batch = json!({});
        if let Some(b) = &batch_input {
            batch["BatchInput"] = b.clone();
        }
        batch["Items"] = Value::Array(items);
        batch
    };
    // `{"Items":[]}` (plus BatchInput) costs this much before any item; each item adds its own
    // JSON and, after the first, a comma.
    let empty = envelope(Vec::new()).to_string().len();
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut size = empty;
    for (index, item) in inputs.into_iter().enumerate() {
        let item_size = item.to_string().len();
        if empty + item_size > max_bytes {
            return Err(StatesError::runtime(format!(
                "The item at index {index} is {item_size} bytes of JSON: a batch holding only it \
                 is over MaxInputBytesPerBatch ({max_bytes} bytes)"
            )));
        }
        let added = item_size + usize::from(!current.is_empty());
        if !current.is_empty() && (current.len() >= max_items || size + added > max_bytes) {
            let items = current.len() as u64;
            out.push(Batch {
                input: envelope(std::mem::take(&mut current)),
                items,
            });
            size = empty;
        }
        size += item_size + usize::from(!current.is_empty());
        current.push(item);
    }
    if !current.is_empty() {
        let items = current.len() as u64;
        out.push(Batch {
            input: envelope(current),
            items,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Definition;

    fn spec_of(batcher: Value) -> std::sync::Arc<crate::definition::Machine> {
        let definition = json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemBatcher": batcher, "End": true,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
        Definition::parse(&definition.to_string()).unwrap().machine
    }

    fn run(batcher: Value, items: Vec<Value>) -> Result<Vec<Batch>, StatesError> {
        let machine = spec_of(batcher);
        let crate::definition::Kind::Map(spec) = &machine.states["M"].kind else {
            panic!("a Map state")
        };
        batches(spec, &json!({"n": 2}), &json!({}), items)
    }

    #[test]
    fn every_batch_stays_within_max_input_bytes_measured_on_the_whole_child_input() {
        let items: Vec<Value> = (0..10)
            .map(|i| json!({"id": i, "pad": "x".repeat(20)}))
            .collect();
        let out = run(
            json!({"MaxInputBytesPerBatch": 100, "BatchInput": {"b": 1}}),
            items,
        )
        .unwrap();
        assert!(out.len() > 1);
        for batch in &out {
            assert!(batch.input.to_string().len() <= 100, "{}", batch.input);
            assert_eq!(batch.input["BatchInput"], json!({"b": 1}));
        }
        assert_eq!(out.iter().map(|b| b.items).sum::<u64>(), 10);
    }

    #[test]
    fn max_items_per_batch_path_and_max_bytes_both_bound_a_batch() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let out = run(
            json!({"MaxItemsPerBatchPath": "$.n", "MaxInputBytesPerBatch": 1000}),
            items,
        )
        .unwrap();
        let sizes: Vec<u64> = out.iter().map(|b| b.items).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(out[0].input, json!({"Items": [0, 1]}));
    }

    #[test]
    fn an_item_larger_than_max_input_bytes_fails_the_map() {
        let items = vec![json!("small"), json!("x".repeat(200))];
        let err = run(json!({"MaxInputBytesPerBatch": 100}), items)
            .err()
            .expect("an oversized item fails");
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains("index 1"), "{}", err.cause);
    }
}
