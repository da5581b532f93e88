//! One state: the fields every state type shares (Type, Comment, QueryLanguage, Next/End,
//! InputPath, OutputPath, ResultPath, Parameters, ResultSelector, Arguments, Output, Assign,
//! Retry, Catch), which fields each type allows in each query language, and the dispatch to the
//! parser of each type's own fields.

use super::fields::{Expr, Res, err, expr_field, path_field, result_path};
use super::machine::Machine;
use super::retry_catch::{Catcher, Retrier, parse_catch, parse_retry};
use super::states::{self, choice::Rule, map::MapSpec, task::Resource, wait::WaitFor};
use super::template::{Template, assign_template, query_template, template};
use crate::error::Error;
use crate::jsonata::Query;
use crate::jsonpath::Path;
use serde_json::Value;
use std::sync::Arc;

/// One state.
#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    /// `None` means `"InputPath": null` (the state sees `{}`).
    pub input_path: Option<Path>,
    pub output_path: Option<Path>,
    /// `None` means `"ResultPath": null` (the result is discarded).
    pub result_path: Option<Path>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// Whether the state's QueryLanguage is JSONata (its own, or the machine's).
    pub jsonata: bool,
    /// JSONata: the input of the work (Task, Parallel).
    pub arguments: Option<Template>,
    /// JSONata: the state's output.
    pub output: Option<Template>,
    /// The variables the state sets (both languages).
    pub assign: Option<Template>,
}

impl State {
    /// The prefix of this state's history event types (`Task` → `TaskStateEntered`).
    pub fn event_prefix(&self) -> &'static str {
        match self.kind {
            Kind::Pass { .. } => "Pass",
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Map(_) => "Map",
            Kind::Parallel { .. } => "Parallel",
        }
    }
}

/// What a state does.
#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: Resource,
        timeout_seconds: Option<u64>,
        timeout_seconds_path: Option<Path>,
        /// JSONata: TimeoutSeconds given as an expression.
        timeout_query: Option<Query>,
    },
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Expr>,
        cause: Option<Expr>,
    },
    Map(Box<MapSpec>),
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
}

/// One Choice rule with where it leads, and (for a rule that matches) the variables it sets
/// and, in a JSONata state, the output it gives.
#[derive(Debug)]
pub(crate) struct Choice {
    pub rule: Rule,
    pub next: String,
    pub assign: Option<Template>,
    pub output: Option<Template>,
}

/// Fields every state may have.
const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
/// Fields only a JSONPath state may have.
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Result",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "ErrorPath",
    "CausePath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
];
/// Fields only a JSONata state may have.
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];
/// Fields of a state that moves on to another: Next or End, and its input and output paths.
const FLOW: &[&str] = &["Next", "End", "InputPath", "OutputPath"];
/// Fields of a state that does work: its parameters, result processing, Retry and Catch.
const WORK: &[&str] = &[
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Retry",
    "Catch",
];

/// The fields a state type allows besides [`COMMON`], or `None` for an unsupported type.
fn allowed_fields(kind: &str) -> Option<&'static [&'static [&'static str]]> {
    Some(match kind {
        "Pass" => &[
            FLOW,
            &["ResultPath", "Parameters", "Result", "Output", "Assign"],
        ],
        "Task" => &[
            FLOW,
            WORK,
            states::task::FIELDS,
            &["Arguments", "Output", "Assign"],
        ],
        "Choice" => &[&[
            "Choices",
            "Default",
            "InputPath",
            "OutputPath",
            "Output",
            "Assign",
        ]],
        "Wait" => &[FLOW, states::wait::FIELDS, &["Output", "Assign"]],
        "Succeed" => &[&["InputPath", "OutputPath", "Output"]],
        "Fail" => &[&["Error", "Cause", "ErrorPath", "CausePath"]],
        "Parallel" => &[FLOW, WORK, &["Branches", "Arguments", "Output", "Assign"]],
        "Map" => &[
            FLOW,
            WORK,
            states::map::FIELDS,
            &["Items", "Output", "Assign"],
        ],
        _ => return None,
    })
}

/// Parses the state `name`; `machine_jsonata` is the machine's QueryLanguage.
pub(super) fn parse_state(name: &str, json: &Value, machine_jsonata: bool) -> Res<State> {
    let s = Some(name);
    let Some(obj) = json.as_object() else {
        return err(s, "(state)", "must be an object");
    };
    let kind_name = obj
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::definition(s, "Type", "is required"))?;
    let Some(allowed) = allowed_fields(kind_name) else {
        return err(
            s,
            "Type",
            format!("{kind_name:?} is not a state type this executor supports"),
        );
    };
    for key in obj.keys() {
        let key_str = key.as_str();
        if !COMMON.contains(&key_str) && !allowed.iter().any(|group| group.contains(&key_str)) {
            return err(
                s,
                key,
                format!("is not supported in a {kind_name} state by the local executor"),
            );
        }
    }
    let jsonata = match obj.get("QueryLanguage").map(|v| v.as_str()) {
        None => machine_jsonata,
        Some(Some("JSONata")) => true,
        // AWS: a state cannot go back to JSONPath in a JSONata machine.
        Some(Some("JSONPath")) if machine_jsonata => {
            return err(
                s,
                "QueryLanguage",
                "a state cannot use JSONPath when the state machine's QueryLanguage is JSONata",
            );
        }
        Some(Some("JSONPath")) => false,
        _ => return err(s, "QueryLanguage", "must be JSONPath or JSONata"),
    };
    for key in obj.keys() {
        if jsonata && JSONPATH_ONLY.contains(&key.as_str()) {
            return err(
                s,
                key,
                "is a JSONPath field and cannot be used in a JSONata state (use Arguments, Output and Assign)",
            );
        }
        if !jsonata && JSONATA_ONLY.contains(&key.as_str()) {
            return err(s, key, "can only be used in a JSONata state");
        }
    }
    if let Some(comment) = obj.get("Comment")
        && !comment.is_string()
    {
        return err(s, "Comment", "must be a string");
    }
    let terminal = matches!(kind_name, "Choice" | "Succeed" | "Fail");
    let next = match obj.get("Next") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return err(s, "Next", "must be a string"),
    };
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return err(s, "End", "must be a boolean"),
    };
    if !terminal {
        match (&next, end) {
            (Some(_), true) => return err(s, "End", "a state cannot have both Next and End"),
            (None, false) => {
                return err(
                    s,
                    "Next",
                    "a non-terminal state needs Next or \"End\": true",
                );
            }
            _ => {}
        }
    }
    let input_path = path_field(s, obj, "InputPath")?;
    let output_path = path_field(s, obj, "OutputPath")?;
    let result_path = result_path(s, "ResultPath", obj.get("ResultPath"))?;
    // A Map's Parameters is the legacy name of ItemSelector, parsed with the Map.
    let parameters = obj
        .get("Parameters")
        .filter(|_| kind_name != "Map")
        .map(|v| template(s, "Parameters", v, true))
        .transpose()?;
    let result_selector = obj
        .get("ResultSelector")
        .map(|v| template(s, "ResultSelector", v, true))
        .transpose()?;
    let retry = match obj.get("Retry") {
        None => Vec::new(),
        Some(v) => parse_retry(s, v)?,
    };
    let catch = match obj.get("Catch") {
        None => Vec::new(),
        Some(v) => parse_catch(s, v, jsonata)?,
    };
    let query = |field: &str| {
        obj.get(field)
            .map(|v| query_template(s, field, v))
            .transpose()
    };
    let arguments = query("Arguments")?;
    let output = query("Output")?;
    let assign = obj
        .get("Assign")
        .map(|v| assign_template(s, "Assign", v, jsonata))
        .transpose()?;
    let kind = match kind_name {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => states::task::parse_task(s, obj, jsonata)?,
        "Choice" => states::choice::parse_choice(s, obj, jsonata)?,
        "Wait" => states::wait::parse_wait(s, obj)?,
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: expr_field(s, obj, "Error", "ErrorPath", jsonata)?,
            cause: expr_field(s, obj, "Cause", "CausePath", jsonata)?,
        },
        "Parallel" => Kind::Parallel {
            branches: states::parallel::parse_branches(s, obj, machine_jsonata)?,
        },
        "Map" => Kind::Map(Box::new(states::map::parse_map(
            s,
            obj,
            jsonata,
            machine_jsonata,
        )?)),
        _ => unreachable!("checked by allowed_fields"),
    };
    Ok(State {
        name: name.to_string(),
        kind,
        input_path,
        output_path,
        result_path,
        parameters,
        result_selector,
        next,
        retry,
        catch,
        jsonata,
        arguments,
        output,
        assign,
    })
}
