//! Pipelines: checking a pipeline definition and applying its activities to messages.
//!
//! Supported activities: `channel`, `datastore`, `selectAttributes`, `removeAttributes`,
//! `addAttributes`, `filter` and `math` (see [`crate::math`]). The filter expression is parsed
//! as SQL and evaluated with Presto-like leniency: a string that holds a number compares as that
//! number, because the workflow sends CSV values as strings. `lambda`, `deviceRegistryEnrich`
//! and `deviceShadowEnrich` call other AWS services ([`crate::aws_activities`]): they compile
//! only with [`AwsActivityClients`] (the Lambda host) and are refused, saying why, without.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value as SqlValue};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::{Map, Value};

use crate::aws_activities::{AwsActivityClients, AwsStep};
use crate::error::Error;

/// One transforming step of a compiled pipeline.
#[derive(Debug, Clone)]
enum Step {
    Select(Vec<String>),
    Remove(Vec<String>),
    Add(Vec<(String, String)>),
    Filter(Box<Expr>),
    Math(String, Box<crate::math::Expr>),
    /// An activity that calls another AWS service; only [`run_steps`] runs it.
    Aws(Box<AwsStep>),
}

/// What running activities over messages gave.
#[derive(Debug, Default)]
pub struct Ran {
    /// The messages that came out, in order.
    pub messages: Vec<Map<String, Value>>,
    /// What went wrong on the way (a failed Lambda batch, a message left unenriched).
    pub problems: Vec<String>,
}

/// Runs steps over a batch of messages: the local steps message by message, the AWS-calling
/// ones over the whole batch.
async fn run_steps(pipeline: &str, steps: &[Step], mut messages: Vec<Map<String, Value>>) -> Ran {
    let mut problems = Vec::new();
    for step in steps {
        messages = match step {
            Step::Aws(aws) => aws.run(pipeline, messages, &mut problems).await,
            local => messages
                .into_iter()
                .filter_map(|mut m| apply_step(local, &mut m).then_some(m))
                .collect(),
        };
    }
    Ran { messages, problems }
}

/// A pipeline ready to run: the steps between its channel and its datastore.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Pipeline name.
    pub name: String,
    /// Channel it reads.
    pub channel: String,
    /// Datastore it writes.
    pub datastore: String,
    steps: Vec<Step>,
}

fn invalid(message: String) -> Error {
    Error::InvalidRequest(message)
}

fn str_field<'a>(obj: &'a Map<String, Value>, kind: &str, field: &str) -> Result<&'a str, Error> {
    obj.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("The {kind} activity requires a string '{field}'")))
}

/// Parses a filter activity's expression.
fn parse_filter(text: &str) -> Result<Expr, Error> {
    Parser::new(&GenericDialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| invalid(format!("The filter expression '{text}' is not valid: {e}")))
}

/// Why the AWS-calling activities are refused without clients.
const NO_AWS: &str = "and this service calls other AWS services only when it runs on AWS \
     (the Lambda host of template.yaml, with the role the template gives it)";

/// What this service says about an activity kind it does not run; `aws` tells whether it has
/// the clients of the AWS-calling activities.
fn refusal(kind: &str, aws: bool) -> Option<String> {
    let why = match kind {
        "lambda" | "deviceRegistryEnrich" | "deviceShadowEnrich" if aws => return None,
        "lambda" => format!("it invokes an AWS Lambda function, {NO_AWS}"),
        "deviceRegistryEnrich" => format!("it reads the AWS IoT device registry, {NO_AWS}"),
        "deviceShadowEnrich" => format!("it reads AWS IoT device shadows, {NO_AWS}"),
        "channel" | "datastore" | "selectAttributes" | "removeAttributes" | "addAttributes"
        | "filter" | "math" => return None,
        _ => "it is not an IoT Analytics pipeline activity".to_owned(),
    };
    Some(format!(
        "The pipeline activity '{kind}' is not supported by this service: {why}; supported: \
         channel, datastore, selectAttributes, removeAttributes, addAttributes, filter, math"
    ))
}

fn check_kind(kind: &str, aws: Option<&AwsActivityClients>) -> Result<(), Error> {
    match refusal(kind, aws.is_some()) {
        Some(message) => Err(invalid(message)),
        None => Ok(()),
    }
}

/// The step of a transforming activity (`kind` is neither channel nor datastore).
fn step(
    kind: &str,
    body: &Map<String, Value>,
    aws: Option<&AwsActivityClients>,
) -> Result<Step, Error> {
    if let Some(parsed) = aws.and_then(|clients| AwsStep::parse(kind, body, clients)) {
        return parsed.map(|s| Step::Aws(Box::new(s))).map_err(invalid);
    }
    let names = |field: &str| -> Result<Vec<String>, Error> {
        body.get(field)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| invalid(format!("The {kind} activity requires '{field}'")))
    };
    Ok(match kind {
        "selectAttributes" => Step::Select(names("attributes")?),
        "removeAttributes" => Step::Remove(names("attributes")?),
        "addAttributes" => {
            let map = body
                .get("attributes")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    invalid("The addAttributes activity requires 'attributes'".to_owned())
                })?;
            Step::Add(
                map.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
            )
        }
        "filter" => Step::Filter(Box::new(parse_filter(str_field(
            body, "filter", "filter",
        )?)?)),
        "math" => {
            let attribute = str_field(body, "math", "attribute")?;
            if attribute.is_empty() {
                return Err(invalid(
                    "The math activity's 'attribute' must not be empty".into(),
                ));
            }
            Step::Math(
                attribute.to_owned(),
                Box::new(crate::math::parse(str_field(body, "math", "math")?)?),
            )
        }
        other => {
            return Err(invalid(format!(
                "The {other} activity cannot be run on its own: it loads or stores messages"
            )));
        }
    })
}

/// One transforming activity, on its own, as RunPipelineActivity runs it.
#[derive(Debug, Clone)]
pub struct Activity(Step);

impl Activity {
    /// Checks a `pipelineActivity` object: exactly one transforming activity that this service
    /// runs (not `channel` or `datastore`, which only load and store messages; the AWS-calling
    /// ones only with `aws`).
    pub fn parse(activity: &Value, aws: Option<&AwsActivityClients>) -> Result<Self, Error> {
        let obj = activity
            .as_object()
            .ok_or_else(|| invalid("pipelineActivity must be an object".to_owned()))?;
        let set: Vec<(&String, &Value)> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
        let [(kind, body)] = set[..] else {
            return Err(invalid(
                "pipelineActivity must hold exactly one activity".to_owned(),
            ));
        };
        check_kind(kind, aws)?;
        if kind == "channel" || kind == "datastore" {
            return Err(invalid(format!(
                "pipelineActivity must not be a {kind} activity: it only loads or stores messages"
            )));
        }
        let body = body
            .as_object()
            .ok_or_else(|| invalid(format!("The {kind} activity must be an object")))?;
        Ok(Activity(step(kind, body, aws)?))
    }

    /// Runs it over messages (a filter leaves some out, a `lambda` activity may return more).
    pub async fn run(&self, messages: Vec<Map<String, Value>>) -> Ran {
        run_steps(
            "RunPipelineActivity",
            std::slice::from_ref(&self.0),
            messages,
        )
        .await
    }
}

/// Applies one step in place; false when a filter dropped the message.
fn apply_step(step: &Step, message: &mut Map<String, Value>) -> bool {
    match step {
        Step::Select(keep) => message.retain(|k, _| keep.iter().any(|a| a == k)),
        Step::Remove(drop) => message.retain(|k, _| !drop.iter().any(|a| a == k)),
        Step::Add(pairs) => {
            for (from, to) in pairs {
                if let Some(v) = message.get(from).cloned() {
                    message.insert(to.clone(), v);
                }
            }
        }
        Step::Filter(expr) => return matches!(eval(expr, message), Scalar::Bool(true)),
        // Run over whole batches by `run_steps`; `Compiled::apply` is not used for them.
        Step::Aws(_) => {}
        Step::Math(attribute, expr) => {
            // An expression with no value (a missing attribute) leaves the message as it was.
            if let Some(v) = crate::math::eval(expr, message) {
                message.insert(attribute.clone(), v);
            }
        }
    }
    true
}

/// Checks a pipeline's activities and follows `next` from the channel activity to the datastore.
/// The AWS-calling activities compile only with `aws`, and call through those clients.
pub fn compile(
    name: &str,
    activities: &[Value],
    aws: Option<&AwsActivityClients>,
) -> Result<Compiled, Error> {
    if activities.is_empty() || activities.len() > 25 {
        return Err(invalid(
            "A pipeline must have between 1 and 25 activities".to_owned(),
        ));
    }
    struct Node {
        kind: String,
        body: Map<String, Value>,
    }
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut channel_node: Option<String> = None;
    for activity in activities {
        let obj = activity
            .as_object()
            .ok_or_else(|| invalid("Each pipeline activity must be an object".to_owned()))?;
        let (kind, body) = obj
            .iter()
            .find(|(_, v)| !v.is_null())
            .ok_or_else(|| invalid("A pipeline activity is empty".to_owned()))?;
        check_kind(kind, aws)?;
        let body = body
            .as_object()
            .ok_or_else(|| invalid(format!("The {kind} activity must be an object")))?
            .clone();
        let activity_name = str_field(&body, kind, "name")?.to_owned();
        if kind == "channel" {
            if channel_node.is_some() {
                return Err(invalid(
                    "A pipeline has exactly one channel activity".to_owned(),
                ));
            }
            channel_node = Some(activity_name.clone());
        }
        if nodes
            .insert(
                activity_name.clone(),
                Node {
                    kind: kind.clone(),
                    body,
                },
            )
            .is_some()
        {
            return Err(invalid(format!(
                "Two pipeline activities are named '{activity_name}'"
            )));
        }
    }
    let first = channel_node
        .ok_or_else(|| invalid("A pipeline must start with a channel activity".to_owned()))?;
    let channel = str_field(&nodes[&first].body, "channel", "channelName")?.to_owned();
    let mut steps = Vec::new();
    let mut current = first;
    let mut visited = 0;
    let datastore = loop {
        visited += 1;
        if visited > nodes.len() {
            return Err(invalid("The pipeline activities form a cycle".to_owned()));
        }
        let node = &nodes[&current];
        match node.kind.as_str() {
            "datastore" => break str_field(&node.body, "datastore", "datastoreName")?.to_owned(),
            "channel" => {}
            kind => steps.push(step(kind, &node.body, aws)?),
        }
        let next = node.body.get("next").and_then(Value::as_str).ok_or_else(|| {
            invalid(format!(
                "The activity '{current}' must name its 'next' activity (only the datastore activity ends a pipeline)"
            ))
        })?;
        if !nodes.contains_key(next) {
            return Err(invalid(format!(
                "The next activity '{next}' does not exist"
            )));
        }
        current = next.to_owned();
    };
    Ok(Compiled {
        name: name.to_owned(),
        channel,
        datastore,
        steps,
    })
}

impl Compiled {
    /// True when messages pass through unchanged, so the payload bytes can be stored as sent.
    pub fn is_passthrough(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when an activity calls another AWS service, so messages go through [`Compiled::run`]
    /// a batch at a time.
    pub fn calls_aws(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Aws(_)))
    }

    /// Runs the steps over a batch of messages, the AWS-calling ones included.
    pub async fn run(&self, messages: Vec<Map<String, Value>>) -> Ran {
        run_steps(&self.name, &self.steps, messages).await
    }

    /// Applies the steps of a pipeline that does not [call AWS](Compiled::calls_aws) to one
    /// message; `None` means a filter dropped the message.
    pub fn apply(&self, mut message: Map<String, Value>) -> Option<Map<String, Value>> {
        for step in &self.steps {
            if !apply_step(step, &mut message) {
                return None;
            }
        }
        Some(message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Scalar {
    fn from_json(v: Option<&Value>) -> Scalar {
        match v {
            None | Some(Value::Null) => Scalar::Null,
            Some(Value::Bool(b)) => Scalar::Bool(*b),
            Some(Value::Number(n)) => n.as_f64().map_or(Scalar::Null, Scalar::Num),
            Some(Value::String(s)) => Scalar::Str(s.clone()),
            Some(other) => Scalar::Str(other.to_string()),
        }
    }

    fn as_num(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn lookup<'a>(message: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    message.get(name).or_else(|| {
        message
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn compare(l: &Scalar, r: &Scalar) -> Option<std::cmp::Ordering> {
    match (l, r) {
        (Scalar::Null, _) | (_, Scalar::Null) => None,
        (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        _ => l.as_num()?.partial_cmp(&r.as_num()?),
    }
}

fn eval(expr: &Expr, message: &Map<String, Value>) -> Scalar {
    use std::cmp::Ordering::*;
    match expr {
        Expr::Identifier(id) => Scalar::from_json(lookup(message, &id.value)),
        Expr::CompoundIdentifier(parts) => {
            let mut cur = parts.first().and_then(|p| lookup(message, &p.value));
            for p in parts.iter().skip(1) {
                cur = cur.and_then(|v| v.get(&p.value));
            }
            Scalar::from_json(cur)
        }
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse().map_or(Scalar::Null, Scalar::Num),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Scalar::Str(s.clone())
            }
            SqlValue::Boolean(b) => Scalar::Bool(*b),
            _ => Scalar::Null,
        },
        Expr::Nested(inner) => eval(inner, message),
        Expr::IsNull(inner) => Scalar::Bool(eval(inner, message) == Scalar::Null),
        Expr::IsNotNull(inner) => Scalar::Bool(eval(inner, message) != Scalar::Null),
        Expr::UnaryOp { op, expr } => match (op, eval(expr, message)) {
            (UnaryOperator::Not, Scalar::Bool(b)) => Scalar::Bool(!b),
            (UnaryOperator::Minus, v) => v.as_num().map_or(Scalar::Null, |n| Scalar::Num(-n)),
            _ => Scalar::Null,
        },
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let v = eval(expr, message);
            let inside = matches!(compare(&v, &eval(low, message)), Some(Greater | Equal))
                && matches!(compare(&v, &eval(high, message)), Some(Less | Equal));
            Scalar::Bool(inside != *negated)
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, message);
            let found = list
                .iter()
                .any(|e| compare(&v, &eval(e, message)) == Some(Equal));
            Scalar::Bool(found != *negated)
        }
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (eval(left, message), eval(right, message));
            let num = |f: fn(f64, f64) -> f64| match (l.as_num(), r.as_num()) {
                (Some(a), Some(b)) => Scalar::Num(f(a, b)),
                _ => Scalar::Null,
            };
            match op {
                BinaryOperator::And => {
                    Scalar::Bool(l == Scalar::Bool(true) && r == Scalar::Bool(true))
                }
                BinaryOperator::Or => {
                    Scalar::Bool(l == Scalar::Bool(true) || r == Scalar::Bool(true))
                }
                BinaryOperator::Eq => cmp_to(compare(&l, &r), |o| o == Equal),
                BinaryOperator::NotEq => cmp_to(compare(&l, &r), |o| o != Equal),
                BinaryOperator::Lt => cmp_to(compare(&l, &r), |o| o == Less),
                BinaryOperator::LtEq => cmp_to(compare(&l, &r), |o| o != Greater),
                BinaryOperator::Gt => cmp_to(compare(&l, &r), |o| o == Greater),
                BinaryOperator::GtEq => cmp_to(compare(&l, &r), |o| o != Less),
                BinaryOperator::Plus => num(|a, b| a + b),
                BinaryOperator::Minus => num(|a, b| a - b),
                BinaryOperator::Multiply => num(|a, b| a * b),
                BinaryOperator::Divide => num(|a, b| a / b),
                BinaryOperator::Modulo => num(|a, b| a % b),
                _ => Scalar::Null,
            }
        }
        _ => Scalar::Null,
    }
}

fn cmp_to(o: Option<std::cmp::Ordering>, f: impl Fn(std::cmp::Ordering) -> bool) -> Scalar {
    o.map_or(Scalar::Null, |o| Scalar::Bool(f(o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_local(name: &str, activities: &[Value]) -> Result<Compiled, Error> {
        compile(name, activities, None)
    }

    fn pipeline(extra: Vec<Value>) -> Vec<Value> {
        let mut acts = vec![json!({"channel": {"name": "in", "channelName": "c", "next": "a0"}})];
        let n = extra.len();
        for (i, mut a) in extra.into_iter().enumerate() {
            let body = a.as_object_mut().unwrap().values_mut().next().unwrap();
            body["name"] = json!(format!("a{i}"));
            body["next"] = json!(if i + 1 == n {
                "out".to_owned()
            } else {
                format!("a{}", i + 1)
            });
            acts.push(a);
        }
        acts.push(json!({"datastore": {"name": "out", "datastoreName": "d"}}));
        acts
    }

    #[test]
    fn filter_compares_numeric_strings_as_numbers() {
        let p = compile_local(
            "p",
            &pipeline(vec![
                json!({"filter": {"filter": "temp > 20 AND location = 'B'"}}),
            ]),
        )
        .unwrap();
        let keep = json!({"temp": "63", "location": "B"});
        let drop = json!({"temp": "10", "location": "B"});
        assert!(p.apply(keep.as_object().unwrap().clone()).is_some());
        assert!(p.apply(drop.as_object().unwrap().clone()).is_none());
    }

    #[test]
    fn attribute_activities_select_remove_and_copy() {
        let p = compile_local(
            "p",
            &pipeline(vec![
                json!({"addAttributes": {"attributes": {"temp": "temp_copy"}}}),
                json!({"removeAttributes": {"attributes": ["humidity"]}}),
                json!({"selectAttributes": {"attributes": ["temp", "temp_copy", "humidity"]}}),
            ]),
        )
        .unwrap();
        let out = p
            .apply(
                json!({"temp": 1, "humidity": 2, "x": 3})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .unwrap();
        assert_eq!(Value::Object(out), json!({"temp": 1, "temp_copy": 1}));
    }

    #[cfg(feature = "lambda-host")]
    #[test]
    fn aws_activities_compile_only_with_clients_and_mark_the_pipeline_as_calling_aws() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let clients = AwsActivityClients::new(&sdk, None);
        let role = "arn:aws:iam::123456789012:role/enrich";
        let activities = pipeline(vec![
            json!({"lambda": {"lambdaName": "f", "batchSize": 10}}),
            json!({"deviceShadowEnrich": {"attribute": "s", "thingName": "id", "roleArn": role}}),
        ]);
        assert!(compile("p", &activities, None).is_err());
        let p = compile("p", &activities, Some(&clients)).unwrap();
        assert!(p.calls_aws() && !p.is_passthrough());
        let local = compile(
            "p",
            &pipeline(vec![json!({"filter": {"filter": "a > 1"}})]),
            Some(&clients),
        );
        assert!(!local.unwrap().calls_aws());
        let bad = pipeline(vec![json!({"lambda": {"lambdaName": "f", "batchSize": 0}})]);
        let err = compile("p", &bad, Some(&clients)).unwrap_err();
        assert!(err.to_string().contains("batchSize"), "{err}");
    }

    #[test]
    fn unsupported_activities_are_named_in_the_error() {
        let err = compile_local(
            "p",
            &pipeline(vec![json!({"lambda": {"lambdaName": "f", "batchSize": 1}})]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("'lambda'"), "{err}");
        assert!(
            err.to_string().contains("only when it runs on AWS"),
            "{err}"
        );
    }
}
