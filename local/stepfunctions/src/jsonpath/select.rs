//! Evaluating a parsed path: walking its steps (fields, indices, wildcards, slices, unions,
//! descendants and filters) over a JSON value.

use super::{CmpOp, Filter, Segment, UnionItem};
use serde_json::Value;

/// Every node the steps select from `root`, in document order.
pub(super) fn walk<'a>(root: &'a Value, segments: &[Segment]) -> Vec<&'a Value> {
    let mut current = vec![root];
    for segment in segments {
        let mut next = Vec::new();
        for value in current {
            apply(value, segment, &mut next);
        }
        current = next;
    }
    current
}

/// An index (negative counts from the end) into a list of `len`, if it is inside it.
pub(super) fn index_of(len: usize, index: i64) -> Option<usize> {
    let len = len as i64;
    let at = if index < 0 { len + index } else { index };
    (at >= 0 && at < len).then_some(at as usize)
}

fn apply<'a>(value: &'a Value, segment: &Segment, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(name) => {
            if let Some(v) = value.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Segment::Index(index) => {
            if let Some(items) = value.as_array()
                && let Some(at) = index_of(items.len(), *index)
            {
                out.push(&items[at]);
            }
        }
        Segment::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Segment::Slice(start, end, step) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                let (from, to) = (norm(start.unwrap_or(0)), norm(end.unwrap_or(len)));
                let mut i = from;
                while i < to {
                    out.push(&items[i as usize]);
                    i += step.max(&1);
                }
            }
        }
        Segment::Union(members) => {
            for member in members {
                match member {
                    UnionItem::Index(index) => apply(value, &Segment::Index(*index), out),
                    UnionItem::Field(name) => apply(value, &Segment::Field(name.clone()), out),
                }
            }
        }
        Segment::Descend(name) => descend(value, name.as_deref(), out),
        Segment::Filter(filter) => {
            let candidates: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            out.extend(candidates.into_iter().filter(|c| filter_matches(filter, c)));
        }
    }
}

fn descend<'a>(value: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if name.is_none_or(|n| n == key) {
                    out.push(child);
                }
            }
            for child in map.values() {
                descend(child, name, out);
            }
        }
        Value::Array(items) => {
            if name.is_none() {
                out.extend(items.iter());
            }
            for child in items {
                descend(child, name, out);
            }
        }
        _ => {}
    }
}

fn filter_matches(filter: &Filter, item: &Value) -> bool {
    match filter {
        Filter::Or(parts) => parts.iter().any(|p| filter_matches(p, item)),
        Filter::And(parts) => parts.iter().all(|p| filter_matches(p, item)),
        Filter::Exists(path) => !walk(item, path).is_empty(),
        Filter::Compare(path, op, literal) => {
            let Some(found) = walk(item, path).into_iter().next() else {
                return false;
            };
            compare(found, *op, literal)
        }
    }
}

fn compare(left: &Value, op: CmpOp, right: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => left == right || ordering == Some(Ordering::Equal),
        CmpOp::Ne => !(left == right || ordering == Some(Ordering::Equal)),
        CmpOp::Lt => ordering == Some(Ordering::Less),
        CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ordering == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
    }
}
