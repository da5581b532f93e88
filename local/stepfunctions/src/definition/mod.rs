//! Loading an Amazon States Language definition: `${Placeholder}` substitution, strict parsing
//! and validation. Whatever this executor cannot run exactly as AWS does is rejected here, with
//! the state and the field named, so a local run never silently differs from AWS.
//!
//! One module per part of the language: the machine (`machine`, with the transition checks in
//! `validation`), a state's common fields (`state`), field parsers shared by all
//! (`fields`, `template`), Retry and Catch (`retry_catch`), and each state type's own fields
//! (`states`).

mod fields;
mod machine;
mod retry_catch;
mod state;
mod states;
mod template;
mod validation;

pub(crate) use fields::{Expr, NumberOr, parse_timestamp};
pub(crate) use machine::Machine;
pub(crate) use retry_catch::Retrier;
pub(crate) use state::{Choice, Kind, State};
pub(crate) use states::choice::{Op, Operand, Rule};
pub(crate) use states::distributed::{MAX_BATCH_BYTES, Transformation};
pub(crate) use states::map::MapSpec;
pub(crate) use states::task::Resource;
pub(crate) use states::wait::WaitFor;
pub(crate) use template::Template;

use crate::error::Error;
use machine::{MachineKind, parse_machine};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A loaded and validated state machine definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub(crate) machine: Arc<Machine>,
    pub(crate) text: String,
}

impl Definition {
    /// Substitutes `${Name}` placeholders from `substitutions` (as CloudFormation's
    /// DefinitionSubstitutions does), then parses and validates the definition.
    pub fn load(text: &str, substitutions: &HashMap<String, String>) -> Result<Definition, Error> {
        let text = substitute(text, substitutions)?;
        Definition::parse(&text)
    }

    /// Parses and validates a definition that has no placeholders left.
    pub fn parse(text: &str) -> Result<Definition, Error> {
        let json: Value = serde_json::from_str(text).map_err(|e| {
            Error::definition(
                None,
                "(document)",
                format!("the definition is not valid JSON: {e}"),
            )
        })?;
        let machine = parse_machine(&json, None, MachineKind::Top, false)?;
        Ok(Definition {
            machine: Arc::new(machine),
            text: text.to_string(),
        })
    }

    /// The definition text after substitution.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The names of the top-level states, in no particular order.
    pub fn state_names(&self) -> Vec<String> {
        self.machine.states.keys().cloned().collect()
    }
}

/// Replaces every `${Name}`; an unknown name is an error naming it.
pub fn substitute(text: &str, substitutions: &HashMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        let value = substitutions
            .get(name)
            .ok_or_else(|| Error::UnknownPlaceholder(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a Map item processor on its own (a distributed child execution's definition).
pub(crate) fn parse_processor(json: &Value) -> Result<Arc<Machine>, Error> {
    parse_machine(json, None, MachineKind::Processor, false).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_and_unknown_ones_are_named() {
        let mut subs = HashMap::new();
        subs.insert(
            "Fn".to_string(),
            "arn:aws:lambda:us-east-1:1:function:f".to_string(),
        );
        let text =
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"${Fn}","End":true}}}"#;
        assert!(Definition::load(text, &subs).is_ok());
        let err = Definition::load(&text.replace("${Fn}", "${Other}"), &subs).unwrap_err();
        assert!(err.to_string().contains("Other"), "{err}");
    }

    #[test]
    fn unsupported_fields_name_the_state_and_the_field() {
        let text = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","HeartbeatSeconds":5,"End":true}}}"#;
        let err = Definition::parse(text).unwrap_err();
        let Error::InvalidDefinition { state, field, .. } = err else {
            panic!("wrong error {err}")
        };
        assert_eq!(
            (state.as_deref(), field.as_str()),
            (Some("T"), "HeartbeatSeconds")
        );
    }

    #[test]
    fn unreachable_states_and_dangling_next_are_rejected() {
        let dangling = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#;
        assert!(
            Definition::parse(dangling)
                .unwrap_err()
                .to_string()
                .contains("\"B\"")
        );
        let unreachable =
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true},"B":{"Type":"Succeed"}}}"#;
        assert!(
            Definition::parse(unreachable)
                .unwrap_err()
                .to_string()
                .contains("\"B\"")
        );
    }
}
