//! Loading an Amazon States Language definition: `${Placeholder}` substitution, strict parsing
//! and validation. Whatever this executor cannot run exactly as AWS does is rejected here, with
//! the state and the field named, so a local run never silently differs from AWS.

use crate::error::Error;
use crate::intrinsics::{self, Call};
use crate::jsonpath::Path;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
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
        let machine = parse_machine(&json, None, MachineKind::Top)?;
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

/// A state machine or a sub-machine (Map item processor, Parallel branch).
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, Arc<State>>,
    pub timeout_seconds: Option<u64>,
}

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
    },
    Choice {
        choices: Vec<(Rule, String)>,
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

/// A Task's resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resource {
    /// `arn:aws:states:::lambda:invoke`.
    LambdaInvoke,
    /// A plain function ARN (the legacy Lambda integration).
    LambdaArn(String),
    /// `arn:aws:states:::states:startExecution` (fire and forget).
    StartExecution,
}

/// A static string or a value computed from a path or intrinsic (Fail's Error/Cause).
#[derive(Debug)]
pub(crate) enum Expr {
    Static(String),
    Path(Path),
    Call(Call),
}

/// How long a Wait state waits.
#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(chrono::DateTime<chrono::FixedOffset>),
    TimestampPath(Path),
}

/// A number given literally or by a reference path (Map's MaxConcurrency and friends).
#[derive(Debug, Clone)]
pub(crate) enum NumberOr {
    Value(f64),
    Path(Path),
}

/// A Map state's settings.
#[derive(Debug)]
pub(crate) struct MapSpec {
    pub processor: Arc<Machine>,
    /// The processor definition as written, so a distributed child execution can be persisted and
    /// redriven on its own.
    pub processor_json: Value,
    pub distributed: bool,
    pub items_path: Option<Path>,
    pub item_selector: Option<Template>,
    pub item_reader: Option<ItemReader>,
    pub max_concurrency: Option<NumberOr>,
    pub tolerated_percentage: Option<NumberOr>,
    pub tolerated_count: Option<NumberOr>,
    pub label: Option<String>,
    pub batcher: Option<ItemBatcher>,
}

/// Distributed Map's ItemReader (JSON array from S3).
#[derive(Debug)]
pub(crate) struct ItemReader {
    pub parameters: Template,
    pub max_items: Option<NumberOr>,
}

/// Distributed Map's ItemBatcher.
#[derive(Debug)]
pub(crate) struct ItemBatcher {
    pub max_items: NumberOr,
    pub batch_input: Option<Template>,
}

/// A Retry entry.
#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

/// A Catch entry.
#[derive(Debug)]
pub(crate) struct Catcher {
    pub error_equals: Vec<String>,
    pub result_path: Option<Path>,
    pub next: String,
}

/// A payload template (Parameters, ResultSelector, ItemSelector): keys ending in `.$` are
/// evaluated, everything else is copied.
#[derive(Debug)]
pub(crate) enum Template {
    Static(Value),
    Path(Path),
    Call(Call),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

/// A Choice rule.
#[derive(Debug)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare {
        variable: Path,
        op: Op,
        operand: Operand,
    },
}

/// The right-hand side of a comparison.
#[derive(Debug)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

/// Choice comparison operators (the `...Path` variants share the operator and take a Path operand).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const OPS: &[(&str, Op)] = &[
    ("StringEquals", Op::StringEquals),
    ("StringLessThan", Op::StringLessThan),
    ("StringGreaterThan", Op::StringGreaterThan),
    ("StringLessThanEquals", Op::StringLessThanEquals),
    ("StringGreaterThanEquals", Op::StringGreaterThanEquals),
    ("StringMatches", Op::StringMatches),
    ("NumericEquals", Op::NumericEquals),
    ("NumericLessThan", Op::NumericLessThan),
    ("NumericGreaterThan", Op::NumericGreaterThan),
    ("NumericLessThanEquals", Op::NumericLessThanEquals),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
    ("BooleanEquals", Op::BooleanEquals),
    ("TimestampEquals", Op::TimestampEquals),
    ("TimestampLessThan", Op::TimestampLessThan),
    ("TimestampGreaterThan", Op::TimestampGreaterThan),
    ("TimestampLessThanEquals", Op::TimestampLessThanEquals),
    ("TimestampGreaterThanEquals", Op::TimestampGreaterThanEquals),
    ("IsNull", Op::IsNull),
    ("IsPresent", Op::IsPresent),
    ("IsNumeric", Op::IsNumeric),
    ("IsString", Op::IsString),
    ("IsBoolean", Op::IsBoolean),
    ("IsTimestamp", Op::IsTimestamp),
];

#[derive(Clone, Copy, PartialEq)]
enum MachineKind {
    Top,
    Branch,
    Processor,
}

type Res<T> = Result<T, Error>;

fn err<T>(state: Option<&str>, field: &str, message: impl Into<String>) -> Res<T> {
    Err(Error::definition(state, field, message))
}

fn parse_machine(json: &Value, parent: Option<&str>, kind: MachineKind) -> Res<Machine> {
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
    for key in obj.keys() {
        let allowed = match kind {
            MachineKind::Top => [
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ]
            .contains(&key.as_str()),
            MachineKind::Branch => ["Comment", "StartAt", "States"].contains(&key.as_str()),
            MachineKind::Processor => {
                ["Comment", "StartAt", "States", "ProcessorConfig"].contains(&key.as_str())
            }
        };
        if !allowed {
            return err(
                parent,
                &format!("{field_prefix}{key}"),
                "is not supported here",
            );
        }
    }
    if let Some(version) = obj.get("Version")
        && version != "1.0"
    {
        return err(None, "Version", "only \"1.0\" exists");
    }
    if let Some(lang) = obj.get("QueryLanguage")
        && lang != "JSONPath"
    {
        return err(
            None,
            "QueryLanguage",
            "only JSONPath is supported by the local executor (JSONata is not)",
        );
    }
    let timeout_seconds = match obj.get("TimeoutSeconds") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            Error::definition(None, "TimeoutSeconds", "must be a positive integer")
        })?),
    };
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
        states.insert(name.clone(), Arc::new(parse_state(name, state_json)?));
    }
    if !states.contains_key(&start_at) {
        return err(
            parent,
            &format!("{field_prefix}StartAt"),
            format!("names {start_at:?}, which is not a state"),
        );
    }
    // Every transition must land on a state of this machine, and every state must be reachable.
    let mut reachable = HashSet::new();
    let mut stack = vec![start_at.clone()];
    while let Some(name) = stack.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        let state = &states[&name];
        let mut targets: Vec<(&str, &String)> = Vec::new();
        if let Some(next) = &state.next {
            targets.push(("Next", next));
        }
        for catcher in &state.catch {
            targets.push(("Catch.Next", &catcher.next));
        }
        if let Kind::Choice { choices, default } = &state.kind {
            for (_, next) in choices {
                targets.push(("Choices.Next", next));
            }
            if let Some(default) = default {
                targets.push(("Default", default));
            }
        }
        for (field, target) in targets {
            if !states.contains_key(target) {
                return err(
                    Some(&name),
                    field,
                    format!("names {target:?}, which is not a state of this machine"),
                );
            }
            stack.push(target.clone());
        }
    }
    let mut unreachable: Vec<&String> = states.keys().filter(|n| !reachable.contains(*n)).collect();
    unreachable.sort();
    if let Some(name) = unreachable.first() {
        return err(Some(name), "(state)", "is not reachable from StartAt");
    }
    Ok(Machine {
        start_at,
        states,
        timeout_seconds,
    })
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
        ],
        "Choice" => &["Choices", "Default", "InputPath", "OutputPath"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
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
        ],
        _ => return None,
    })
}

fn parse_state(name: &str, json: &Value) -> Res<State> {
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
        if !COMMON.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
            return err(
                s,
                key,
                format!("is not supported in a {kind_name} state by the local executor"),
            );
        }
    }
    if let Some(lang) = obj.get("QueryLanguage")
        && lang != "JSONPath"
    {
        return err(s, "QueryLanguage", "only JSONPath is supported");
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
    let result_path = match obj.get("ResultPath") {
        None => Some(root_path()),
        Some(Value::Null) => None,
        Some(Value::String(p)) => {
            Some(Path::parse_reference(p).map_err(|e| Error::definition(s, "ResultPath", e))?)
        }
        Some(_) => return err(s, "ResultPath", "must be a reference path or null"),
    };
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
        Some(v) => parse_catch(s, v)?,
    };
    let kind = match kind_name {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => parse_task(s, obj)?,
        "Choice" => parse_choice(s, obj)?,
        "Wait" => parse_wait(s, obj)?,
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: expr_field(s, obj, "Error", "ErrorPath")?,
            cause: expr_field(s, obj, "Cause", "CausePath")?,
        },
        "Parallel" => {
            let Some(branches) = obj.get("Branches").and_then(Value::as_array) else {
                return err(s, "Branches", "is required and must be an array");
            };
            if branches.is_empty() {
                return err(s, "Branches", "must not be empty");
            }
            Kind::Parallel {
                branches: branches
                    .iter()
                    .map(|b| parse_machine(b, s, MachineKind::Branch).map(Arc::new))
                    .collect::<Res<_>>()?,
            }
        }
        "Map" => Kind::Map(Box::new(parse_map(s, obj)?)),
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
    })
}

pub(crate) fn root_path() -> Path {
    Path::parse("$").expect("'$' is a path")
}

fn path_field(s: Option<&str>, obj: &Map<String, Value>, field: &str) -> Res<Option<Path>> {
    match obj.get(field) {
        None => Ok(Some(root_path())),
        Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => Ok(Some(
            Path::parse(p).map_err(|e| Error::definition(s, field, e))?,
        )),
        Some(_) => err(s, field, "must be a path or null"),
    }
}

fn reference_path(s: Option<&str>, field: &str, v: &Value) -> Res<Path> {
    let text = v
        .as_str()
        .ok_or_else(|| Error::definition(s, field, "must be a reference path string"))?;
    let path = Path::parse(text).map_err(|e| Error::definition(s, field, e))?;
    if !path.is_definite() {
        return err(s, field, "must be a reference path (a single node)");
    }
    Ok(path)
}

fn expr_field(
    s: Option<&str>,
    obj: &Map<String, Value>,
    literal: &str,
    path: &str,
) -> Res<Option<Expr>> {
    match (obj.get(literal), obj.get(path)) {
        (Some(_), Some(_)) => err(s, path, format!("cannot be used together with {literal}")),
        (Some(Value::String(v)), None) => Ok(Some(Expr::Static(v.clone()))),
        (Some(_), None) => err(s, literal, "must be a string"),
        (None, Some(Value::String(v))) => {
            if intrinsics::looks_like_call(v) {
                Ok(Some(Expr::Call(
                    Call::parse(v).map_err(|e| Error::definition(s, path, e))?,
                )))
            } else {
                Ok(Some(Expr::Path(reference_path(
                    s,
                    path,
                    &Value::String(v.clone()),
                )?)))
            }
        }
        (None, Some(_)) => err(s, path, "must be a path or intrinsic function string"),
        (None, None) => Ok(None),
    }
}

/// Parses a payload template; `field` is the dotted name used in errors.
fn template(s: Option<&str>, field: &str, v: &Value, top: bool) -> Res<Template> {
    match v {
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (key, value) in map {
                let name = format!("{field}.{key}");
                if let Some(stripped) = key.strip_suffix(".$") {
                    let Some(text) = value.as_str() else {
                        return err(
                            s,
                            &name,
                            "a key ending in .$ needs a path or intrinsic function string",
                        );
                    };
                    let t = if intrinsics::looks_like_call(text) {
                        Template::Call(
                            Call::parse(text).map_err(|e| Error::definition(s, &name, e))?,
                        )
                    } else {
                        Template::Path(
                            Path::parse(text).map_err(|e| Error::definition(s, &name, e))?,
                        )
                    };
                    out.push((stripped.to_string(), t));
                } else {
                    out.push((key.clone(), template(s, &name, value, false)?));
                }
            }
            Ok(Template::Object(out))
        }
        Value::Array(items) => Ok(Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| template(s, &format!("{field}[{i}]"), item, false))
                .collect::<Res<_>>()?,
        )),
        other if top => err(s, field, format!("must be an object, not {other}")),
        other => Ok(Template::Static(other.clone())),
    }
}

impl Template {
    /// The static keys at the top of an object template (with `.$` stripped).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Template::Object(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

fn parse_task(s: Option<&str>, obj: &Map<String, Value>) -> Res<Kind> {
    let Some(resource) = obj.get("Resource").and_then(Value::as_str) else {
        return err(s, "Resource", "is required and must be a string");
    };
    let (resource, allowed_params): (Resource, Option<&[&str]>) = match resource {
        "arn:aws:states:::lambda:invoke" => (
            Resource::LambdaInvoke,
            Some(&["FunctionName", "Payload", "InvocationType", "Qualifier"]),
        ),
        "arn:aws:states:::states:startExecution" => (
            Resource::StartExecution,
            Some(&["StateMachineArn", "Input", "Name"]),
        ),
        r if r.starts_with("arn:aws:lambda:") && r.contains(":function:") => {
            (Resource::LambdaArn(r.to_string()), None)
        }
        r => {
            return err(
                s,
                "Resource",
                format!(
                    "{r:?} is not supported locally (supported: arn:aws:states:::lambda:invoke, \
                     arn:aws:states:::states:startExecution, Lambda function ARNs)"
                ),
            );
        }
    };
    let parameters = obj.get("Parameters");
    if let Some(allowed) = allowed_params {
        let Some(params) = parameters.and_then(Value::as_object) else {
            return err(s, "Parameters", "is required for this resource");
        };
        for key in params.keys() {
            let bare = key.strip_suffix(".$").unwrap_or(key);
            if !allowed.contains(&bare) {
                return err(
                    s,
                    &format!("Parameters.{key}"),
                    "is not supported for this resource by the local executor",
                );
            }
        }
        let required = if resource == Resource::LambdaInvoke {
            "FunctionName"
        } else {
            "StateMachineArn"
        };
        if !params.contains_key(required) && !params.contains_key(&format!("{required}.$")) {
            return err(s, &format!("Parameters.{required}"), "is required");
        }
        if let Some(Value::String(kind)) = params.get("InvocationType")
            && kind != "RequestResponse"
        {
            return err(
                s,
                "Parameters.InvocationType",
                "only RequestResponse is supported locally",
            );
        }
    }
    let timeout_seconds =
        match obj.get("TimeoutSeconds") {
            None => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                Error::definition(s, "TimeoutSeconds", "must be a positive integer")
            })?),
        };
    let timeout_seconds_path = obj
        .get("TimeoutSecondsPath")
        .map(|v| reference_path(s, "TimeoutSecondsPath", v))
        .transpose()?;
    if timeout_seconds.is_some() && timeout_seconds_path.is_some() {
        return err(
            s,
            "TimeoutSecondsPath",
            "cannot be used together with TimeoutSeconds",
        );
    }
    Ok(Kind::Task {
        resource,
        timeout_seconds,
        timeout_seconds_path,
    })
}

fn string_list(s: Option<&str>, field: &str, v: Option<&Value>) -> Res<Vec<String>> {
    let Some(items) = v.and_then(Value::as_array) else {
        return err(s, field, "is required and must be an array of strings");
    };
    if items.is_empty() {
        return err(s, field, "must not be empty");
    }
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::definition(s, field, "must contain strings only"))
        })
        .collect()
}

fn check_error_equals(s: Option<&str>, field: &str, lists: &[&Vec<String>]) -> Res<()> {
    for (i, list) in lists.iter().enumerate() {
        if list.iter().any(|e| e == "States.ALL") && (list.len() > 1 || i + 1 != lists.len()) {
            return err(s, field, "States.ALL must appear alone, in the last entry");
        }
    }
    Ok(())
}

fn parse_retry(s: Option<&str>, v: &Value) -> Res<Vec<Retrier>> {
    let Some(items) = v.as_array() else {
        return err(s, "Retry", "must be an array");
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("Retry[{i}].{name}");
        let Some(obj) = item.as_object() else {
            return err(s, &format!("Retry[{i}]"), "must be an object");
        };
        for key in obj.keys() {
            if ![
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ]
            .contains(&key.as_str())
            {
                return err(s, &f(key), "is not supported in a Retrier");
            }
        }
        let error_equals = string_list(s, &f("ErrorEquals"), obj.get("ErrorEquals"))?;
        let interval_seconds = match obj.get("IntervalSeconds") {
            None => 1.0,
            Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                Error::definition(s, f("IntervalSeconds"), "must be a positive integer")
            })? as f64,
        };
        let max_attempts = match obj.get("MaxAttempts") {
            None => 3,
            Some(v) => v.as_u64().filter(|n| *n <= 99_999_999).ok_or_else(|| {
                Error::definition(s, f("MaxAttempts"), "must be a non-negative integer")
            })? as u32,
        };
        let backoff_rate = match obj.get("BackoffRate") {
            None => 2.0,
            Some(v) => v
                .as_f64()
                .filter(|n| *n >= 1.0)
                .ok_or_else(|| Error::definition(s, f("BackoffRate"), "must be a number >= 1.0"))?,
        };
        let max_delay_seconds = match obj.get("MaxDelaySeconds") {
            None => None,
            Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                Error::definition(s, f("MaxDelaySeconds"), "must be a positive integer")
            })? as f64),
        };
        let full_jitter = match obj.get("JitterStrategy").map(|v| v.as_str()) {
            None | Some(Some("NONE")) => false,
            Some(Some("FULL")) => true,
            _ => return err(s, &f("JitterStrategy"), "must be FULL or NONE"),
        };
        out.push(Retrier {
            error_equals,
            interval_seconds,
            max_attempts,
            backoff_rate,
            max_delay_seconds,
            full_jitter,
        });
    }
    check_error_equals(
        s,
        "Retry",
        &out.iter().map(|r| &r.error_equals).collect::<Vec<_>>(),
    )?;
    Ok(out)
}

fn parse_catch(s: Option<&str>, v: &Value) -> Res<Vec<Catcher>> {
    let Some(items) = v.as_array() else {
        return err(s, "Catch", "must be an array");
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("Catch[{i}].{name}");
        let Some(obj) = item.as_object() else {
            return err(s, &format!("Catch[{i}]"), "must be an object");
        };
        for key in obj.keys() {
            if !["ErrorEquals", "Next", "ResultPath", "Comment"].contains(&key.as_str()) {
                return err(s, &f(key), "is not supported in a Catcher");
            }
        }
        let error_equals = string_list(s, &f("ErrorEquals"), obj.get("ErrorEquals"))?;
        let next = obj
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::definition(s, f("Next"), "is required"))?
            .to_string();
        let result_path = match obj.get("ResultPath") {
            None => Some(root_path()),
            Some(Value::Null) => None,
            Some(v) => Some(
                Path::parse_reference(v.as_str().unwrap_or("?"))
                    .map_err(|e| Error::definition(s, f("ResultPath"), e))?,
            ),
        };
        out.push(Catcher {
            error_equals,
            result_path,
            next,
        });
    }
    check_error_equals(
        s,
        "Catch",
        &out.iter().map(|c| &c.error_equals).collect::<Vec<_>>(),
    )?;
    Ok(out)
}

fn parse_choice(s: Option<&str>, obj: &Map<String, Value>) -> Res<Kind> {
    let Some(items) = obj.get("Choices").and_then(Value::as_array) else {
        return err(s, "Choices", "is required and must be an array");
    };
    if items.is_empty() {
        return err(s, "Choices", "must not be empty");
    }
    let mut choices = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("Choices[{i}]");
        let Some(rule_obj) = item.as_object() else {
            return err(s, &field, "must be an object");
        };
        let Some(next) = rule_obj.get("Next").and_then(Value::as_str) else {
            return err(
                s,
                &format!("{field}.Next"),
                "is required in a top-level choice rule",
            );
        };
        choices.push((parse_rule(s, &field, rule_obj, true)?, next.to_string()));
    }
    let default = match obj.get("Default") {
        None => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return err(s, "Default", "must be a string"),
    };
    Ok(Kind::Choice { choices, default })
}

fn parse_rule(s: Option<&str>, field: &str, obj: &Map<String, Value>, top: bool) -> Res<Rule> {
    let mut rule_keys = Vec::new();
    for key in obj.keys() {
        match key.as_str() {
            "Comment" => {}
            "Next" if top => {}
            "Variable" | "And" | "Or" | "Not" => {}
            k if OPS
                .iter()
                .any(|(name, _)| *name == k || format!("{name}Path") == k) =>
            {
                rule_keys.push(k.to_string())
            }
            k => {
                return err(
                    s,
                    &format!("{field}.{k}"),
                    "is not a supported choice rule field",
                );
            }
        }
    }
    let combinators: Vec<&str> = ["And", "Or", "Not"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if let Some(&combinator) = combinators.first() {
        if combinators.len() > 1 || obj.contains_key("Variable") || !rule_keys.is_empty() {
            return err(
                s,
                &format!("{field}.{combinator}"),
                "a rule has exactly one of And, Or, Not or a comparison",
            );
        }
        let inner = |v: &Value, f: String| -> Res<Rule> {
            let Some(o) = v.as_object() else {
                return err(s, &f, "must be an object");
            };
            if o.contains_key("Next") {
                return err(s, &format!("{f}.Next"), "nested rules cannot have Next");
            }
            parse_rule(s, &f, o, false)
        };
        return Ok(match combinator {
            "Not" => Rule::Not(Box::new(inner(&obj["Not"], format!("{field}.Not"))?)),
            other => {
                let Some(list) = obj[other].as_array().filter(|l| !l.is_empty()) else {
                    return err(s, &format!("{field}.{other}"), "must be a non-empty array");
                };
                let rules = list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| inner(v, format!("{field}.{other}[{i}]")))
                    .collect::<Res<Vec<_>>>()?;
                if other == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                }
            }
        });
    }
    let Some(variable) = obj.get("Variable") else {
        return err(
            s,
            &format!("{field}.Variable"),
            "is required in a comparison",
        );
    };
    let variable = Path::parse(variable.as_str().unwrap_or("?"))
        .map_err(|e| Error::definition(s, format!("{field}.Variable"), e))?;
    if rule_keys.len() != 1 {
        return err(s, field, "a comparison needs exactly one operator");
    }
    let key = &rule_keys[0];
    let value = &obj[key.as_str()];
    let f = format!("{field}.{key}");
    if let Some(base) = key.strip_suffix("Path")
        && let Some((_, op)) = OPS.iter().find(|(name, _)| *name == base)
    {
        if matches!(
            op,
            Op::IsNull
                | Op::IsPresent
                | Op::IsNumeric
                | Op::IsString
                | Op::IsBoolean
                | Op::IsTimestamp
        ) {
            return err(s, &f, "is not an operator");
        }
        let path =
            Path::parse(value.as_str().unwrap_or("?")).map_err(|e| Error::definition(s, &f, e))?;
        return Ok(Rule::Compare {
            variable,
            op: *op,
            operand: Operand::Path(path),
        });
    }
    let op = OPS
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, op)| *op)
        .expect("checked above");
    let ok = match op {
        Op::StringEquals
        | Op::StringLessThan
        | Op::StringGreaterThan
        | Op::StringLessThanEquals
        | Op::StringGreaterThanEquals
        | Op::StringMatches => value.is_string(),
        Op::NumericEquals
        | Op::NumericLessThan
        | Op::NumericGreaterThan
        | Op::NumericLessThanEquals
        | Op::NumericGreaterThanEquals => value.is_number(),
        Op::TimestampEquals
        | Op::TimestampLessThan
        | Op::TimestampGreaterThan
        | Op::TimestampLessThanEquals
        | Op::TimestampGreaterThanEquals => {
            value.as_str().is_some_and(|t| parse_timestamp(t).is_some())
        }
        _ => value.is_boolean(),
    };
    if !ok {
        return err(s, &f, "has a value of the wrong type for this operator");
    }
    Ok(Rule::Compare {
        variable,
        op,
        operand: Operand::Literal(value.clone()),
    })
}

/// Parses an RFC 3339 timestamp as the States Language requires (uppercase T, offset or Z).
pub(crate) fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    if text.contains('t') || text.contains('z') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

fn parse_wait(s: Option<&str>, obj: &Map<String, Value>) -> Res<Kind> {
    let present: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if present.len() != 1 {
        return err(
            s,
            "Seconds",
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        );
    }
    let v = &obj[present[0]];
    Ok(Kind::Wait(match present[0] {
        "Seconds" => WaitFor::Seconds(
            v.as_u64()
                .ok_or_else(|| Error::definition(s, "Seconds", "must be a non-negative integer"))?,
        ),
        "SecondsPath" => WaitFor::SecondsPath(reference_path(s, "SecondsPath", v)?),
        "Timestamp" => {
            WaitFor::Timestamp(v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                Error::definition(s, "Timestamp", "must be an RFC 3339 timestamp")
            })?)
        }
        _ => WaitFor::TimestampPath(reference_path(s, "TimestampPath", v)?),
    }))
}

fn number_or(
    s: Option<&str>,
    obj: &Map<String, Value>,
    field: &str,
    min: f64,
    max: f64,
) -> Res<Option<NumberOr>> {
    let path_field = format!("{field}Path");
    match (obj.get(field), obj.get(&path_field)) {
        (Some(_), Some(_)) => err(
            s,
            &path_field,
            format!("cannot be used together with {field}"),
        ),
        (Some(v), None) => match v.as_f64() {
            Some(n) if n >= min && n <= max => Ok(Some(NumberOr::Value(n))),
            _ => err(s, field, format!("must be a number from {min} to {max}")),
        },
        (None, Some(v)) => Ok(Some(NumberOr::Path(reference_path(s, &path_field, v)?))),
        (None, None) => Ok(None),
    }
}

fn parse_map(s: Option<&str>, obj: &Map<String, Value>) -> Res<MapSpec> {
    let (processor_json, field) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return err(s, "Iterator", "cannot be used together with ItemProcessor");
        }
        (Some(p), None) => (p.clone(), "ItemProcessor"),
        (None, Some(i)) => (i.clone(), "Iterator"),
        (None, None) => return err(s, "ItemProcessor", "is required"),
    };
    let mut distributed = false;
    if let Some(config) = processor_json.get("ProcessorConfig") {
        if field == "Iterator" {
            return err(
                s,
                "Iterator.ProcessorConfig",
                "is only allowed in ItemProcessor",
            );
        }
        let Some(config) = config.as_object() else {
            return err(s, "ItemProcessor.ProcessorConfig", "must be an object");
        };
        for (key, value) in config {
            match (key.as_str(), value.as_str()) {
                ("Mode", Some("INLINE")) => {}
                ("Mode", Some("DISTRIBUTED")) => distributed = true,
                ("ExecutionType", Some("STANDARD")) => {}
                ("ExecutionType", _) => {
                    return err(
                        s,
                        "ItemProcessor.ProcessorConfig.ExecutionType",
                        "only STANDARD child executions are supported locally",
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
    let processor = parse_machine(&processor_json, s, MachineKind::Processor)?;
    let distributed_only = [
        "ItemReader",
        "ItemBatcher",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
    ];
    if !distributed {
        for key in distributed_only {
            if obj.contains_key(key) {
                return err(s, key, "is only supported by a Map in DISTRIBUTED mode");
            }
        }
    } else if obj.contains_key("Parameters") {
        return err(
            s,
            "Parameters",
            "a DISTRIBUTED Map takes ItemSelector, not Parameters",
        );
    }
    if obj.contains_key("Parameters") && obj.contains_key("ItemSelector") {
        return err(s, "ItemSelector", "cannot be used together with Parameters");
    }
    let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
        (Some(v), _) => Some(template(s, "ItemSelector", v, true)?),
        (None, Some(v)) => Some(template(s, "Parameters", v, true)?),
        _ => None,
    };
    let item_reader = match obj.get("ItemReader") {
        None => None,
        Some(reader) => {
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
                    "Parameters" => {}
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
                        for k in config.keys() {
                            if !["InputType", "MaxItems", "MaxItemsPath"].contains(&k.as_str()) {
                                return err(
                                    s,
                                    &format!("ItemReader.ReaderConfig.{k}"),
                                    "is not supported",
                                );
                            }
                        }
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
            let parameters = template(
                s,
                "ItemReader.Parameters",
                reader.get("Parameters").unwrap_or(&Value::Null),
                true,
            )?;
            let keys = parameters.keys();
            for key in &keys {
                if !["Bucket", "Key"].contains(key) {
                    return err(
                        s,
                        &format!("ItemReader.Parameters.{key}"),
                        "is not supported",
                    );
                }
            }
            if keys.len() != 2 {
                return err(s, "ItemReader.Parameters", "needs Bucket and Key");
            }
            Some(ItemReader {
                parameters,
                max_items,
            })
        }
    };
    let batcher = match obj.get("ItemBatcher") {
        None => None,
        Some(b) => {
            let Some(b) = b.as_object() else {
                return err(s, "ItemBatcher", "must be an object");
            };
            for key in b.keys() {
                if !["MaxItemsPerBatch", "MaxItemsPerBatchPath", "BatchInput"]
                    .contains(&key.as_str())
                {
                    return err(s, &format!("ItemBatcher.{key}"), "is not supported locally");
                }
            }
            let Some(max_items) = number_or(s, b, "MaxItemsPerBatch", 1.0, 100_000_000.0)? else {
                return err(s, "ItemBatcher.MaxItemsPerBatch", "is required locally");
            };
            Some(ItemBatcher {
                max_items,
                batch_input: b
                    .get("BatchInput")
                    .map(|v| template(s, "ItemBatcher.BatchInput", v, true))
                    .transpose()?,
            })
        }
    };
    let label = match obj.get("Label") {
        None => None,
        Some(Value::String(l))
            if !l.is_empty() && l.chars().count() <= 40 && !l.contains([':', '/', ' ']) =>
        {
            Some(l.clone())
        }
        Some(_) => {
            return err(
                s,
                "Label",
                "must be 1 to 40 characters without ':' '/' or spaces",
            );
        }
    };
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
        items_path,
        item_selector,
        item_reader,
        max_concurrency: number_or(s, obj, "MaxConcurrency", 0.0, 10_000.0)?,
        tolerated_percentage: number_or(s, obj, "ToleratedFailurePercentage", 0.0, 100.0)?,
        tolerated_count: number_or(s, obj, "ToleratedFailureCount", 0.0, 1e12)?,
        label,
        batcher,
    })
}

/// Parses a Map item processor on its own (a distributed child execution's definition).
pub(crate) fn parse_processor(json: &Value) -> Result<Arc<Machine>, Error> {
    parse_machine(json, None, MachineKind::Processor).map(Arc::new)
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
