//! JSONata as Step Functions runs it: `{% expression %}` strings, evaluated by the jlens-core
//! engine with the reserved `$states` variable (input, context, result, errorOutput), the
//! workflow variables of the state's scope, and AWS's own functions (in `functions`). Every
//! failure is `States.QueryEvaluationError`, as on AWS.

mod functions;

use crate::error::StatesError;
use crate::variables;
use jlens_core::{Bindings, Expression, Options};
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// The error every JSONata failure raises.
pub(crate) const QUERY_ERROR: &str = "States.QueryEvaluationError";

/// How long one expression may run before it fails: a guard against runaway recursion, not a
/// documented AWS figure.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A compiled `{% ... %}` expression.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    source: String,
    expr: Arc<Expression>,
}

/// The text between `{%` and `%}` when `text` is a JSONata expression string (the whole string,
/// as AWS requires), else `None`.
pub(crate) fn expression_text(text: &str) -> Option<&str> {
    text.trim()
        .strip_prefix("{%")
        .and_then(|t| t.strip_suffix("%}"))
}

impl Query {
    /// Compiles the expression inside `{% ... %}`; the error names the JSONata error.
    pub(crate) fn compile(inner: &str) -> Result<Query, String> {
        let source = inner.trim().to_string();
        if source.is_empty() {
            return Err("the JSONata expression is empty".into());
        }
        // AWS's JSONata has every function of the language but $eval ($parse replaces it).
        if source
            .match_indices("$eval")
            .any(|(at, _)| source[at + 5..].trim_start().starts_with('('))
        {
            return Err("$eval is not available in Step Functions (use $parse)".into());
        }
        let expr = Expression::compile(&source)
            .map_err(|e| format!("invalid JSONata expression: {} ({})", e.message(), e.code()))?;
        Ok(Query {
            source,
            expr: Arc::new(expr),
        })
    }

    /// The expression as written (without the braces).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression with `states` as `$states` and the variables of the current
    /// scope; `None` is JSONata's *undefined*.
    pub(crate) fn evaluate(
        &self,
        states: &Value,
        field: &str,
    ) -> Result<Option<Value>, StatesError> {
        let mut bindings = BASE.clone();
        for (name, value) in variables::current().iter() {
            bindings = bindings.var(name.clone(), value.clone());
        }
        bindings = bindings.var("states", states.clone());
        let options = Options::new()
            .timeout(TIMEOUT)
            .now(chrono::Utc::now().timestamp_millis());
        self.expr
            .evaluate_with(None, &bindings, &options)
            .map_err(|e| {
                StatesError::new(
                    QUERY_ERROR,
                    format!(
                        "An error occurred while evaluating the JSONata expression '{}' specified for the field '{field}': {} ({})",
                        self.source,
                        e.message(),
                        e.code()
                    ),
                )
            })
    }

    /// Evaluates the expression where a value is required: *undefined* is an error.
    pub(crate) fn value(&self, states: &Value, field: &str) -> Result<Value, StatesError> {
        self.evaluate(states, field)?.ok_or_else(|| {
            StatesError::new(
                QUERY_ERROR,
                format!(
                    "The JSONata expression '{}' specified for the field '{field}' returned nothing (undefined).",
                    self.source
                ),
            )
        })
    }
}

/// AWS's functions, bound once; each evaluation adds `$states` and the variables.
static BASE: LazyLock<Bindings> = LazyLock::new(functions::bindings);

/// The `$states` variable: the state's input and context object, and where the field may read
/// them, the result and the error output.
pub(crate) fn states(
    input: &Value,
    context: &Value,
    result: Option<&Value>,
    error_output: Option<&Value>,
) -> Value {
    let mut states = Map::new();
    states.insert("input".into(), input.clone());
    states.insert("context".into(), context.clone());
    if let Some(result) = result {
        states.insert("result".into(), result.clone());
    }
    if let Some(error_output) = error_output {
        states.insert("errorOutput".into(), error_output.clone());
    }
    Value::Object(states)
}

/// The name AWS gives a JSON type in its "unexpected result type" errors.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The error for a field whose expression gave a value of the wrong type.
pub(crate) fn wrong_type(
    query: Option<&Query>,
    field: &str,
    expected: &str,
    got: &Value,
) -> StatesError {
    let expression = query
        .map(|q| format!(" '{}'", q.source()))
        .unwrap_or_default();
    StatesError::new(
        QUERY_ERROR,
        format!(
            "The JSONata expression{expression} specified for the field '{field}' returned an unexpected result type. Expected '{expected}', but was '{}' for value: {got}",
            type_name(got)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str, states: Value) -> Result<Option<Value>, StatesError> {
        Query::compile(expression_text(text).unwrap())
            .unwrap()
            .evaluate(&states, "Output")
    }

    #[test]
    fn only_a_whole_string_in_braces_is_an_expression() {
        assert_eq!(expression_text("{% 1 + 1 %}"), Some(" 1 + 1 "));
        assert_eq!(expression_text("a {% 1 %}"), None);
        assert_eq!(expression_text("{% 1"), None);
    }

    #[test]
    fn states_input_and_context_are_bound() {
        let states = states(
            &json!({"a": 2}),
            &json!({"State": {"Name": "S"}}),
            None,
            None,
        );
        let out = eval(
            "{% $states.input.a * 3 & $states.context.State.Name %}",
            states,
        )
        .unwrap();
        assert_eq!(out, Some(json!("6S")));
    }

    #[test]
    fn an_evaluation_error_is_a_query_evaluation_error_naming_the_expression() {
        let error = eval("{% $number('x') + {} %}", json!({})).unwrap_err();
        assert_eq!(error.error, QUERY_ERROR);
        assert!(error.cause.contains("$number('x') + {}"), "{}", error.cause);
    }

    #[test]
    fn undefined_where_a_value_is_required_says_so() {
        let q = Query::compile("$states.input.missing").unwrap();
        let error = q.value(&json!({"input": {}}), "Output").unwrap_err();
        assert_eq!(
            error.cause,
            "The JSONata expression '$states.input.missing' specified for the field 'Output' returned nothing (undefined)."
        );
    }

    #[test]
    fn eval_is_refused_as_aws_has_no_eval() {
        let error = Query::compile("$eval('1 + 1')").unwrap_err();
        assert!(error.contains("$parse"), "{error}");
        assert!(Query::compile("$evaluate").is_ok());
    }

    #[test]
    fn a_syntax_error_is_reported_at_compile_time() {
        assert!(Query::compile("$states.input[").is_err());
    }
}
