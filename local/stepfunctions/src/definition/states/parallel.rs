//! The Parallel state's Branches: each a machine of its own.

use super::super::fields::{Res, err};
use super::super::machine::{Machine, MachineKind, parse_machine};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Parses Branches, a non-empty array of machines.
pub(in crate::definition) fn parse_branches(
    s: Option<&str>,
    obj: &Map<String, Value>,
    machine_jsonata: bool,
) -> Res<Vec<Arc<Machine>>> {
    let Some(branches) = obj.get("Branches").and_then(Value::as_array) else {
        return err(s, "Branches", "is required and must be an array");
    };
    if branches.is_empty() {
        return err(s, "Branches", "must not be empty");
    }
    branches
        .iter()
        .map(|b| parse_machine(b, s, MachineKind::Branch, machine_jsonata).map(Arc::new))
        .collect()
}
