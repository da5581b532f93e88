//! Intrinsic functions (`States.Format(...)` and friends) in `.$` fields: parsed once when the
//! definition loads, evaluated against the state input and the context object.

use crate::error::StatesError;
use crate::jsonpath::Path;
use base64::Engine as _;
use serde_json::{Map, Value};

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

fn as_array(v: &Value, what: &str) -> Result<Vec<Value>, String> {
    v.as_array()
        .cloned()
        .ok_or_else(|| format!("{what} must be an array"))
}

fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{what} must be a string"))
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => Ok(f as i64),
        _ => Err(format!("{what} must be an integer")),
    }
}

fn apply(name: &str, args: Vec<Value>) -> Result<Value, String> {
    Ok(match name {
        "States.Format" => {
            let template = as_str(&args[0], "the template")?;
            let mut out = String::new();
            let mut rest = args[1..].iter();
            let chars: Vec<char> = template.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                match chars[i] {
                    '\\' if matches!(chars.get(i + 1), Some('{' | '}')) => {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    '{' if chars.get(i + 1) == Some(&'}') => {
                        let arg = rest
                            .next()
                            .ok_or("the template has more {} than arguments")?;
                        match arg {
                            Value::String(s) => out.push_str(s),
                            Value::Object(_) | Value::Array(_) => {
                                return Err("States.Format arguments must be strings, numbers, booleans or null".into());
                            }
                            other => out.push_str(&other.to_string()),
                        }
                        i += 2;
                        continue;
                    }
                    c => out.push(c),
                }
                i += 1;
            }
            if rest.next().is_some() {
                return Err("the template has fewer {} than arguments".into());
            }
            Value::String(out)
        }
        "States.StringToJson" => serde_json::from_str(as_str(&args[0], "the argument")?)
            .map_err(|e| format!("the string is not JSON: {e}"))?,
        "States.JsonToString" => Value::String(args[0].to_string()),
        "States.Array" => Value::Array(args),
        "States.ArrayPartition" => {
            let items = as_array(&args[0], "the first argument")?;
            let size = as_int(&args[1], "the chunk size")?;
            if size <= 0 {
                return Err("the chunk size must be positive".into());
            }
            Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )
        }
        "States.ArrayContains" => {
            Value::Bool(as_array(&args[0], "the first argument")?.contains(&args[1]))
        }
        "States.ArrayRange" => {
            let (start, end, step) = (
                as_int(&args[0], "the start")?,
                as_int(&args[1], "the end")?,
                as_int(&args[2], "the step")?,
            );
            if step == 0 {
                return Err("the step must not be 0".into());
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(Value::from(i));
                if out.len() > 1000 {
                    return Err("the range has more than 1000 items".into());
                }
                i += step;
            }
            Value::Array(out)
        }
        "States.ArrayGetItem" => {
            let items = as_array(&args[0], "the first argument")?;
            let index = as_int(&args[1], "the index")?;
            if index < 0 || index as usize >= items.len() {
                return Err(format!("the index {index} is out of bounds"));
            }
            items[index as usize].clone()
        }
        "States.ArrayLength" => Value::from(as_array(&args[0], "the argument")?.len()),
        "States.ArrayUnique" => {
            let mut out: Vec<Value> = Vec::new();
            for item in as_array(&args[0], "the argument")? {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Value::Array(out)
        }
        "States.Base64Encode" => {
            let text = as_str(&args[0], "the argument")?;
            if text.chars().count() > 10_000 {
                return Err("the input is longer than 10000 characters".into());
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(text))
        }
        "States.Base64Decode" => {
            let text = as_str(&args[0], "the argument")?;
            if text.chars().count() > 10_000 {
                return Err("the input is longer than 10000 characters".into());
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("not base64: {e}"))?;
            Value::String(String::from_utf8(bytes).map_err(|_| "the decoded data is not UTF-8")?)
        }
        "States.Hash" => {
            use sha2::Digest as _;
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let bytes = data.as_bytes();
            let digest = match as_str(&args[1], "the algorithm")? {
                "MD5" => hex::encode(md5::Md5::digest(bytes)),
                "SHA-1" => hex::encode(sha1::Sha1::digest(bytes)),
                "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
                "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
                "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
                other => return Err(format!("unsupported hash algorithm {other:?}")),
            };
            Value::String(digest)
        }
        "States.JsonMerge" => {
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return Err("both values must be objects".into());
            };
            if args[2] != Value::Bool(false) {
                return Err("only shallow merges (false) are supported, as in AWS".into());
            }
            let mut merged: Map<String, Value> = a.clone();
            for (k, v) in b {
                merged.insert(k.clone(), v.clone());
            }
            Value::Object(merged)
        }
        "States.MathRandom" => {
            use rand::{Rng as _, SeedableRng as _};
            let (start, end) = (as_int(&args[0], "the start")?, as_int(&args[1], "the end")?);
            if end <= start {
                return Err("the end must be greater than the start".into());
            }
            let value = match args.get(2) {
                Some(seed) => rand::rngs::StdRng::seed_from_u64(as_int(seed, "the seed")? as u64)
                    .random_range(start..end),
                None => rand::rng().random_range(start..end),
            };
            Value::from(value)
        }
        "States.MathAdd" => {
            let (a, b) = (
                as_int(&args[0], "the first value")?,
                as_int(&args[1], "the second value")?,
            );
            Value::from(a.checked_add(b).ok_or("the sum overflows")?)
        }
        "States.StringSplit" => {
            let text = as_str(&args[0], "the string")?;
            let delimiters: Vec<char> = as_str(&args[1], "the delimiter")?.chars().collect();
            Value::Array(
                text.split(|c| delimiters.contains(&c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )
        }
        "States.UUID" => Value::String(uuid::Uuid::new_v4().to_string()),
        other => return Err(format!("unknown function {other}")),
    })
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
