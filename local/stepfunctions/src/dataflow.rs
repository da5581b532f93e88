//! Input and output processing (InputPath, Parameters, ResultSelector, ResultPath, OutputPath)
//! and Choice rule evaluation, with the error names AWS uses.

use crate::definition::{Op, Operand, Rule, Template, parse_timestamp};
use crate::error::StatesError;
use crate::jsonata;
use crate::jsonpath::Path;
use serde_json::{Map, Value};

/// Applies InputPath or OutputPath (`None` = null: the state sees `{}`).
pub(crate) fn select_path(
    path: Option<&Path>,
    value: &Value,
    context: &Value,
    field: &str,
) -> Result<Value, StatesError> {
    let Some(path) = path else {
        return Ok(Value::Object(Map::new()));
    };
    path.select(value, context).ok_or_else(|| {
        tracing::debug!(field, input = %truncate(value), path = path.as_str(), "no match");
        StatesError::runtime(format!(
            "Invalid path '{}' : No results for path: {}",
            path.as_str(),
            path.bracketed()
        ))
    })
}

fn truncate(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 512 {
        let mut cut = 512;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Evaluates a payload template against `input` and the context object; a JSONata
/// expression in it sees `$states.input` and `$states.context`.
pub(crate) fn render(
    template: &Template,
    input: &Value,
    context: &Value,
    field: &str,
) -> Result<Value, StatesError> {
    render_with(template, input, context, None, field)
}

/// Evaluates a template of a JSONata state with `states` as `$states` (which then carries the
/// result or error output where the field may read them).
pub(crate) fn render_query(
    template: &Template,
    states: &Value,
    field: &str,
) -> Result<Value, StatesError> {
    let empty = Value::Null;
    render_with(template, &empty, &empty, Some(states), field)
}

fn render_with(
    template: &Template,
    input: &Value,
    context: &Value,
    states: Option<&Value>,
    field: &str,
) -> Result<Value, StatesError> {
    Ok(match template {
        Template::Static(v) => v.clone(),
        Template::Path(path) => path.select(input, context).ok_or_else(|| {
            StatesError::runtime(format!(
                "The JSONPath '{}' specified for the field '{field}.$' could not be found in the input '{}'",
                path.as_str(),
                truncate(if path.is_context() { context } else { input })
            ))
        })?,
        Template::Call(call) => call.eval(input, context)?,
        Template::Query(query) => match states {
            Some(states) => query.value(states, field)?,
            None => query.value(&jsonata::states(input, context, None, None), field)?,
        },
        Template::Object(entries) => {
            let mut out = Map::new();
            for (key, value) in entries {
                let name = match states {
                    Some(_) => format!("{field}.{key}"),
                    None => key.clone(),
                };
                out.insert(
                    key.clone(),
                    render_with(value, input, context, states, &name)?,
                );
            }
            Value::Object(out)
        }
        Template::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_with(i, input, context, states, field))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Combines a result with the state's raw input at ResultPath (`None` = null: keep the input).
pub(crate) fn apply_result_path(
    path: Option<&Path>,
    raw_input: &Value,
    result: Value,
) -> Result<Value, StatesError> {
    let Some(path) = path else {
        return Ok(raw_input.clone());
    };
    let mut out = raw_input.clone();
    path.set(&mut out, result).map_err(|cause| {
        StatesError::new(
            "States.ResultPathMatchFailure",
            format!(
                "Unable to apply ResultPath \"{}\" to input {}: {cause}",
                path.as_str(),
                truncate(raw_input)
            ),
        )
    })?;
    Ok(out)
}

/// Evaluates a Choice rule.
pub(crate) fn evaluate(rule: &Rule, input: &Value, context: &Value) -> Result<bool, StatesError> {
    Ok(match rule {
        Rule::And(rules) => {
            for r in rules {
                if !evaluate(r, input, context)? {
                    return Ok(false);
                }
            }
            true
        }
        Rule::Or(rules) => {
            for r in rules {
                if evaluate(r, input, context)? {
                    return Ok(true);
                }
            }
            false
        }
        Rule::Not(r) => !evaluate(r, input, context)?,
        Rule::Compare {
            variable,
            op,
            operand,
        } => {
            let value = variable.select(input, context);
            if *op == Op::IsPresent {
                let present = match &value {
                    Some(Value::Array(items)) if !variable.is_definite() => !items.is_empty(),
                    Some(_) => true,
                    None => false,
                };
                return Ok(Some(&Value::Bool(present)) == literal(operand));
            }
            let Some(value) = value else {
                return Err(StatesError::runtime(format!(
                    "Invalid path '{}': The choice state's condition path references an invalid value.",
                    variable.as_str()
                )));
            };
            let other = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(p) => p.select(input, context).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "Invalid path '{}': The choice state's condition path references an invalid value.",
                        p.as_str()
                    ))
                })?,
            };
            compare(*op, &value, &other)
        }
        // A JSONata state's Condition is evaluated by the Choice state itself.
        Rule::Condition(_) => false,
    })
}

fn literal(operand: &Operand) -> Option<&Value> {
    match operand {
        Operand::Literal(v) => Some(v),
        Operand::Path(_) => None,
    }
}

fn compare(op: Op, value: &Value, other: &Value) -> bool {
    use std::cmp::Ordering::*;
    let ord = |o: Option<std::cmp::Ordering>, wanted: &[std::cmp::Ordering]| {
        o.is_some_and(|o| wanted.contains(&o))
    };
    let strings = || value.as_str().zip(other.as_str()).map(|(a, b)| a.cmp(b));
    let numbers = || {
        if !value.is_number() || !other.is_number() {
            return None;
        }
        value
            .as_f64()
            .zip(other.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b))
    };
    let times = || {
        let a = value.as_str().and_then(parse_timestamp)?;
        let b = other.as_str().and_then(parse_timestamp)?;
        Some(a.cmp(&b))
    };
    let flag = || other.as_bool().unwrap_or(true);
    match op {
        Op::StringEquals => ord(strings(), &[Equal]),
        Op::StringLessThan => ord(strings(), &[Less]),
        Op::StringGreaterThan => ord(strings(), &[Greater]),
        Op::StringLessThanEquals => ord(strings(), &[Less, Equal]),
        Op::StringGreaterThanEquals => ord(strings(), &[Greater, Equal]),
        Op::StringMatches => match (value.as_str(), other.as_str()) {
            (Some(v), Some(pattern)) => wildcard_match(pattern, v),
            _ => false,
        },
        Op::NumericEquals => ord(numbers(), &[Equal]),
        Op::NumericLessThan => ord(numbers(), &[Less]),
        Op::NumericGreaterThan => ord(numbers(), &[Greater]),
        Op::NumericLessThanEquals => ord(numbers(), &[Less, Equal]),
        Op::NumericGreaterThanEquals => ord(numbers(), &[Greater, Equal]),
        Op::BooleanEquals => value.is_boolean() && value == other,
        Op::TimestampEquals => ord(times(), &[Equal]),
        Op::TimestampLessThan => ord(times(), &[Less]),
        Op::TimestampGreaterThan => ord(times(), &[Greater]),
        Op::TimestampLessThanEquals => ord(times(), &[Less, Equal]),
        Op::TimestampGreaterThanEquals => ord(times(), &[Greater, Equal]),
        Op::IsNull => value.is_null() == flag(),
        Op::IsPresent => flag(),
        Op::IsNumeric => value.is_number() == flag(),
        Op::IsString => value.is_string() == flag(),
        Op::IsBoolean => value.is_boolean() == flag(),
        Op::IsTimestamp => value.as_str().and_then(parse_timestamp).is_some() == flag(),
    }
}

/// `*` matches any run of characters; `\*` is a literal star and `\\` a backslash.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Tok::Char(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(Tok::Star),
            c => tokens.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic greedy matching with backtracking to the last star.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Tok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn string_matches_handles_stars_and_escapes() {
        assert!(wildcard_match("log-*.txt", "log-2024.txt"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "acbd"));
        assert!(wildcard_match("a\\*b", "a*b"));
        assert!(!wildcard_match("a\\*b", "axb"));
    }
}
