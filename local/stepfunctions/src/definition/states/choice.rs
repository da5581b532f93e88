//! The Choice state's own fields: Choices (rules, each with its Next) and Default. A rule is
//! And, Or, Not or one comparison of Variable with a literal or a path.

use crate::definition::fields::{Res, err, known_fields, parse_timestamp, query_of};
use crate::definition::state::Choice;
use crate::definition::state::Kind;
use crate::definition::template::{assign_template, query_template};
use crate::error::Error;
use crate::jsonata::Query;
use crate::jsonpath::Path;
use serde_json::{Map, Value};

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
    /// JSONata: a Condition expression that must give a boolean.
    Condition(Query),
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

/// Every comparison operator by name; `<name>Path` takes a path operand.
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

/// Parses a Choice state's own fields; a JSONata state's rules are Conditions.
pub(in crate::definition) fn parse_choice(
    s: Option<&str>,
    obj: &Map<String, Value>,
    jsonata: bool,
) -> Res<Kind> {
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
        let assign = rule_obj
            .get("Assign")
            .map(|v| assign_template(s, &format!("{field}.Assign"), v, jsonata))
            .transpose()?;
        let rule = if jsonata {
            parse_condition(s, &field, rule_obj)?
        } else {
            let mut rule_obj = rule_obj.clone();
            rule_obj.remove("Assign");
            parse_rule(s, &field, &rule_obj, true)?
        };
        choices.push(Choice {
            rule,
            next: next.to_string(),
            assign,
            output: rule_obj
                .get("Output")
                .map(|v| query_template(s, &format!("{field}.Output"), v))
                .transpose()?,
        });
    }
    let default = match obj.get("Default") {
        None => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return err(s, "Default", "must be a string"),
    };
    Ok(Kind::Choice { choices, default })
}

/// Parses a JSONata rule: a Condition, its Next, and optionally Assign, Output and Comment.
fn parse_condition(s: Option<&str>, field: &str, obj: &Map<String, Value>) -> Res<Rule> {
    known_fields(
        s,
        obj,
        &["Condition", "Next", "Assign", "Output", "Comment"],
        &format!("{field}."),
        "is not a field of a JSONata choice rule (use Condition)",
    )?;
    let f = format!("{field}.Condition");
    match obj.get("Condition") {
        Some(Value::Bool(b)) => Ok(Rule::Condition(
            Query::compile(if *b { "true" } else { "false" })
                .map_err(|e| Error::definition(s, &f, e))?,
        )),
        Some(v) => match query_of(s, &f, v)? {
            Some(query) => Ok(Rule::Condition(query)),
            None => err(s, &f, "must be a JSONata expression {% ... %} or a boolean"),
        },
        None => err(s, &f, "is required in a JSONata choice rule"),
    }
}

/// Parses one rule; `top` rules carry the Next of their choice.
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
