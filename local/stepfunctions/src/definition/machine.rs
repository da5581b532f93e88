//! A state machine, or a sub-machine (Parallel branch, Map item processor): its own fields
//! (StartAt, States, TimeoutSeconds, Version, QueryLanguage) and its states.

use super::fields::{Res, err, known_fields, positive_integer};
use super::state::{State, parse_state};
use super::validation::check_transitions;
use crate::error::Error;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A state machine or a sub-machine (Map item processor, Parallel branch).
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, Arc<State>>,
    pub timeout_seconds: Option<u64>,
}

/// Which kind of machine is parsed: each allows its own fields.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum MachineKind {
    Top,
    Branch,
    Processor,
}

/// Parses a machine; `parent` is the state a branch or processor belongs to, and
/// `inherited_jsonata` the QueryLanguage of the machine it is in (states of a branch or
/// processor take the top-level machine's language).
pub(super) fn parse_machine(
    json: &Value,
    parent: Option<&str>,
    kind: MachineKind,
    inherited_jsonata: bool,
) -> Res<Machine> {
    let field_prefix = match kind {
        MachineKind::Top => "",
        MachineKind::Branch => "Branches.",
        MachineKind::Processor => "ItemProcessor.",
    };
    let Some(obj) = json.as_object() else {
        return err(
            parent,
            field_prefix.trim_end_matches('.'),
            "must be an object",
        );
    };
    let allowed: &[&str] = match kind {
        MachineKind::Top => &[
            "Comment",
            "StartAt",
            "States",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
        ],
        MachineKind::Branch => &["Comment", "StartAt", "States"],
        // QueryLanguage is how a Distributed Map's child, parsed on its own, keeps its parent's.
        MachineKind::Processor => &[
            "Comment",
            "StartAt",
            "States",
            "ProcessorConfig",
            "QueryLanguage",
        ],
    };
    known_fields(parent, obj, allowed, field_prefix, "is not supported here")?;
    if let Some(version) = obj.get("Version")
        && version != "1.0"
    {
        return err(None, "Version", "only \"1.0\" exists");
    }
    let jsonata = match obj.get("QueryLanguage").map(|v| v.as_str()) {
        None => inherited_jsonata,
        Some(Some("JSONata")) => true,
        Some(Some("JSONPath")) => false,
        _ => return err(None, "QueryLanguage", "must be JSONPath or JSONata"),
    };
    let timeout_seconds = obj
        .get("TimeoutSeconds")
        .map(|v| positive_integer(None, "TimeoutSeconds", v))
        .transpose()?;
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::definition(
                parent,
                format!("{field_prefix}StartAt"),
                "is required and must be a string",
            )
        })?
        .to_string();
    let Some(states_json) = obj.get("States").and_then(Value::as_object) else {
        return err(
            parent,
            &format!("{field_prefix}States"),
            "is required and must be an object",
        );
    };
    if states_json.is_empty() {
        return err(
            parent,
            &format!("{field_prefix}States"),
            "must not be empty",
        );
    }
    let mut states = HashMap::new();
    for (name, state_json) in states_json {
        if name.is_empty() || name.chars().count() > 80 {
            return err(
                Some(name),
                "(name)",
                "state names must be 1 to 80 characters",
            );
        }
        states.insert(
            name.clone(),
            Arc::new(parse_state(name, state_json, jsonata)?),
        );
    }
    if !states.contains_key(&start_at) {
        return err(
            parent,
            &format!("{field_prefix}StartAt"),
            format!("names {start_at:?}, which is not a state"),
        );
    }
    check_transitions(&start_at, &states)?;
    Ok(Machine {
        start_at,
        states,
        timeout_seconds,
    })
}
