//! Intrinsic functions (`States.Format(...)` and friends) in `.$` fields: parsed once when the
//! definition loads, evaluated against the state input and the context object.

use crate::error::StatesError;
use crate::jsonpath::Path;
use serde_json::Value;

mod format;
mod functions;

use functions::apply;

/// The intrinsic functions this executor implements (all of those the JSONPath language has
/// except none: the list matches the AWS developer guide).
const FUNCTIONS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// An argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(Value),
    Path(Path),
    Call(Call),
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    name: String,
    args: Vec<Arg>,
}

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn looks_like_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    /// Parses `States.Name(arg, ...)`; the error explains what is wrong.
    pub fn parse(text: &str) -> Result<Call, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let call = parse_call(&chars, &mut pos)?;
        skip_ws(&chars, &mut pos);
        if pos != chars.len() {
            return Err(format!("unexpected text after the call in {text:?}"));
        }
        Ok(call)
    }

    /// Evaluates the call.
    pub fn eval(&self, input: &Value, context: &Value) -> Result<Value, StatesError> {
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(match arg {
                Arg::Literal(v) => v.clone(),
                Arg::Path(path) => path.select(input, context).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The JsonPath argument for the field '{}' could not be found in the input '{}'",
                        path.as_str(),
                        if path.is_context() { context } else { input }
                    ))
                })?,
                Arg::Call(call) => call.eval(input, context)?,
            });
        }
        apply(&self.name, args).map_err(|cause| {
            StatesError::intrinsic(format!("Invalid arguments in {}: {cause}", self.name))
        })
    }
}

fn skip_ws(chars: &[char], pos: &mut usize) {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

fn parse_call(chars: &[char], pos: &mut usize) -> Result<Call, String> {
    skip_ws(chars, pos);
    let start = *pos;
    while chars
        .get(*pos)
        .is_some_and(|c| c.is_alphanumeric() || *c == '.')
    {
        *pos += 1;
    }
    let name: String = chars[start..*pos].iter().collect();
    if !FUNCTIONS.contains(&name.as_str()) {
        return Err(format!("unknown intrinsic function {name:?}"));
    }
    skip_ws(chars, pos);
    if chars.get(*pos) != Some(&'(') {
        return Err(format!("expected '(' after {name}"));
    }
    *pos += 1;
    let mut args = Vec::new();
    skip_ws(chars, pos);
    if chars.get(*pos) == Some(&')') {
        *pos += 1;
    } else {
        loop {
            args.push(parse_arg(chars, pos)?);
            skip_ws(chars, pos);
            match chars.get(*pos) {
                Some(',') => *pos += 1,
                Some(')') => {
                    *pos += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or ')' in the arguments of {name}")),
            }
        }
    }
    check_arity(&name, args.len())?;
    Ok(Call { name, args })
}

fn check_arity(name: &str, n: usize) -> Result<(), String> {
    let ok = match name {
        "States.Format" => n >= 1,
        "States.Array" => true,
        "States.UUID" => n == 0,
        "States.StringToJson"
        | "States.JsonToString"
        | "States.ArrayLength"
        | "States.ArrayUnique"
        | "States.Base64Encode"
        | "States.Base64Decode" => n == 1,
        "States.ArrayPartition"
        | "States.ArrayContains"
        | "States.ArrayGetItem"
        | "States.Hash"
        | "States.MathAdd"
        | "States.StringSplit" => n == 2,
        "States.ArrayRange" | "States.JsonMerge" => n == 3,
        "States.MathRandom" => n == 2 || n == 3,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{name} does not take {n} argument(s)"))
    }
}

fn parse_arg(chars: &[char], pos: &mut usize) -> Result<Arg, String> {
    skip_ws(chars, pos);
    match chars.get(*pos) {
        Some('\'') => {
            *pos += 1;
            let mut out = String::new();
            loop {
                match chars.get(*pos) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        // Escapes keep the next character literally: \' \{ \} \\.
                        match chars.get(*pos + 1) {
                            Some(c @ ('{' | '}')) => {
                                // Kept escaped so States.Format can tell literal braces apart.
                                out.push('\\');
                                out.push(*c);
                            }
                            Some(c) => out.push(*c),
                            None => return Err("unterminated string literal".into()),
                        }
                        *pos += 2;
                    }
                    Some('\'') => {
                        *pos += 1;
                        return Ok(Arg::Literal(Value::String(out)));
                    }
                    Some(c) => {
                        out.push(*c);
                        *pos += 1;
                    }
                }
            }
        }
        Some('$') => {
            // A path runs to the next ',' or ')' outside brackets and quotes.
            let start = *pos;
            let mut depth = 0i32;
            let mut quote: Option<char> = None;
            while let Some(&c) = chars.get(*pos) {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '[' | '(') => depth += 1,
                    (None, ']') => depth -= 1,
                    (None, ')') if depth > 0 => depth -= 1,
                    (None, ',' | ')') if depth == 0 => break,
                    _ => {}
                }
                *pos += 1;
            }
            let text: String = chars[start..*pos].iter().collect();
            Ok(Arg::Path(Path::parse(text.trim())?))
        }
        Some('S') => Ok(Arg::Call(parse_call(chars, pos)?)),
        Some(_) => {
            let start = *pos;
            while chars
                .get(*pos)
                .is_some_and(|c| !matches!(c, ',' | ')') && !c.is_whitespace())
            {
                *pos += 1;
            }
            let text: String = chars[start..*pos].iter().collect();
            let value: Value = serde_json::from_str(&text)
                .map_err(|_| format!("invalid literal argument {text:?}"))?;
            if value.is_object() || value.is_array() {
                return Err(format!("invalid literal argument {text:?}"));
            }
            Ok(Arg::Literal(value))
        }
        None => Err("missing argument".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str, input: Value) -> Result<Value, StatesError> {
        Call::parse(text)
            .unwrap()
            .eval(&input, &json!({"Execution": {"Name": "e1"}}))
    }

    #[test]
    fn nested_calls_paths_and_escapes_evaluate() {
        assert_eq!(
            eval(
                "States.Format('Hello {} \\{x\\} {}', $.name, States.MathAdd($.n, 1))",
                json!({"name": "w", "n": 1})
            )
            .unwrap(),
            json!("Hello w {x} 2")
        );
        assert_eq!(
            eval("States.Format('{}', $$.Execution.Name)", json!({})).unwrap(),
            json!("e1")
        );
        assert_eq!(
            eval(
                "States.ArrayLength(States.Array(1, 'a', true, null))",
                json!({})
            )
            .unwrap(),
            json!(4)
        );
        assert_eq!(
            eval(
                "States.StringToJson(States.JsonToString($.o))",
                json!({"o": {"a": [1]}})
            )
            .unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(
            eval("States.Hash('a', 'SHA-1')", json!({})).unwrap(),
            json!("86f7e437faa5a7fce15d1ddcb9eaeaea377667b8")
        );
    }

    #[test]
    fn bad_arguments_fail_with_intrinsic_failure_and_unknown_names_do_not_parse() {
        assert_eq!(
            eval("States.ArrayGetItem(States.Array(1), 5)", json!({}))
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
        assert!(Call::parse("States.Nope(1)").is_err());
        assert!(Call::parse("States.UUID(1)").is_err());
    }
}
