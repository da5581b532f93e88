//! The intrinsic functions themselves: each takes its evaluated arguments and answers a value
//! or a message that the caller turns into `States.IntrinsicFailure`.

use base64::Engine as _;
use serde_json::{Map, Value};

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

pub(super) fn apply(name: &str, args: Vec<Value>) -> Result<Value, String> {
    Ok(match name {
        "States.Format" => super::format::format(&args)?,
        "States.StringToJson" => string_to_json(as_str(&args[0], "the argument")?)?,
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
                rounded(&args[0], "the first value")?,
                rounded(&args[1], "the second value")?,
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

/// `States.StringToJson`: AWS answers `null` for an empty or blank string, and `0` for `-0`.
fn string_to_json(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the string is not JSON: {e}"))?;
    Ok(without_negative_zero(value))
}

/// serde_json keeps `-0` as the float `-0.0`; AWS's parser reads it as the integer 0.
fn without_negative_zero(value: Value) -> Value {
    match value {
        Value::Number(n)
            if n.as_f64() == Some(0.0) && n.as_f64().is_some_and(f64::is_sign_negative) =>
        {
            Value::from(0)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_negative_zero).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_negative_zero(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A `States.MathAdd` operand: AWS accepts any number and rounds each operand to the nearest
/// integer, halves towards positive infinity (1.5 is 2, -1.5 is -1, -0.5 is 0), before adding.
fn rounded(v: &Value, what: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok((f + 0.5).floor() as i64),
        _ => Err(format!("{what} must be a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn math_add_rounds_each_operand_halves_up_before_adding() {
        let add = |a: Value, b: Value| apply("States.MathAdd", vec![a, b]).unwrap();
        assert_eq!(add(json!(1.49), json!(1.5)), json!(3));
        assert_eq!(add(json!(-1.5), json!(0)), json!(-1));
        assert_eq!(add(json!(-0.5), json!(0.5)), json!(1));
        assert!(apply("States.MathAdd", vec![json!("1"), json!(1)]).is_err());
    }

    #[test]
    fn string_to_json_reads_blank_as_null_and_negative_zero_as_zero() {
        assert_eq!(string_to_json("").unwrap(), Value::Null);
        assert_eq!(string_to_json(" \t").unwrap(), Value::Null);
        assert_eq!(string_to_json("-0").unwrap().to_string(), "0");
        assert_eq!(string_to_json("[-0.0, 1]").unwrap().to_string(), "[0,1]");
        assert!(string_to_json("{").is_err());
    }
}
