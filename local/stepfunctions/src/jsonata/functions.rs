//! The functions Step Functions adds to JSONata: `$partition`, `$range`, `$hash`, `$random`,
//! `$uuid` and `$parse`, with the argument checks AWS documents.

use jlens_core::{Bindings, Error, HostFunction};
use serde_json::{Value, json};

/// A failure inside one of these functions, reported as the evaluation's error.
fn fail(message: impl Into<String>) -> Error {
    Error::new(super::QUERY_ERROR).with("message", message.into())
}

/// The argument at `i`, if given and defined.
fn arg(args: &[Option<Value>], i: usize) -> Option<&Value> {
    args.get(i).and_then(Option::as_ref)
}

/// The bindings every evaluation starts from.
pub(super) fn bindings() -> Bindings {
    Bindings::new()
        .function("partition", HostFunction::new(2, partition).without_input())
        .function("range", HostFunction::new(3, range).without_input())
        .function("hash", HostFunction::new(2, hash).without_input())
        .function("random", HostFunction::new(1, random).without_input())
        .function("uuid", HostFunction::new(0, |_, _| uuid()).without_input())
        .function("parse", HostFunction::new(1, parse).without_input())
}

type Out = jlens_core::Result<Option<Value>>;

/// `$partition(array, size)`: the array cut into chunks of `size` items (the last may be
/// shorter).
fn partition(args: &[Option<Value>], _: &jlens_core::HostCall<'_>) -> Out {
    let items = match arg(args, 0) {
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => return Err(fail("$partition needs an array as its first argument")),
    };
    let size = arg(args, 1)
        .and_then(Value::as_f64)
        .filter(|n| *n >= 1.0 && n.fract() == 0.0)
        .ok_or_else(|| fail("$partition needs a positive integer chunk size"))?
        as usize;
    Ok(Some(Value::Array(
        items
            .chunks(size)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    )))
}

/// `$range(start, end, step)`: the numbers from `start` to `end` inclusive, `step` apart.
fn range(args: &[Option<Value>], _: &jlens_core::HostCall<'_>) -> Out {
    let number = |i: usize, what: &str| {
        arg(args, i)
            .and_then(Value::as_f64)
            .filter(|n| n.fract() == 0.0)
            .ok_or_else(|| fail(format!("$range needs an integer {what}")))
    };
    let (start, end, step) = (number(0, "start")?, number(1, "end")?, number(2, "step")?);
    if step == 0.0 {
        return Err(fail("$range needs a step other than 0"));
    }
    let count = ((end - start) / step).floor();
    if count >= 1_000_000.0 {
        return Err(fail("$range would produce more than 1,000,000 numbers"));
    }
    let mut out = Vec::new();
    let mut i = 0.0;
    while i <= count {
        out.push(json!((start + i * step) as i64));
        i += 1.0;
    }
    Ok(Some(Value::Array(out)))
}

/// `$hash(value, algorithm)`: the hex digest of a string with MD5, SHA-1, SHA-256, SHA-384 or
/// SHA-512.
fn hash(args: &[Option<Value>], _: &jlens_core::HostCall<'_>) -> Out {
    use sha2::Digest as _;
    let Some(Value::String(text)) = arg(args, 0) else {
        return Err(fail("$hash needs a string to hash"));
    };
    let bytes = text.as_bytes();
    let digest = match arg(args, 1).and_then(Value::as_str) {
        Some("MD5") => hex::encode(md5::Md5::digest(bytes)),
        Some("SHA-1") => hex::encode(sha1::Sha1::digest(bytes)),
        Some("SHA-256") => hex::encode(sha2::Sha256::digest(bytes)),
        Some("SHA-384") => hex::encode(sha2::Sha384::digest(bytes)),
        Some("SHA-512") => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(fail(format!(
                "$hash supports MD5, SHA-1, SHA-256, SHA-384 and SHA-512, not {}",
                other.unwrap_or("(none)")
            )));
        }
    };
    Ok(Some(Value::String(digest)))
}

/// `$random([seed])`: a number from 0 (inclusive) to 1 (exclusive); the same seed gives the
/// same number.
fn random(args: &[Option<Value>], _: &jlens_core::HostCall<'_>) -> Out {
    use rand::{Rng as _, SeedableRng as _};
    let value: f64 = match arg(args, 0) {
        None => rand::rng().random(),
        Some(seed) => {
            let seed = seed
                .as_f64()
                .ok_or_else(|| fail("$random needs a number as its seed"))?;
            rand::rngs::StdRng::seed_from_u64(seed.to_bits()).random()
        }
    };
    Ok(Some(json!(value)))
}

/// `$uuid()`: a version 4 UUID.
fn uuid() -> Out {
    Ok(Some(Value::String(uuid::Uuid::new_v4().to_string())))
}

/// `$parse(text)`: the JSON value a string holds.
fn parse(args: &[Option<Value>], _: &jlens_core::HostCall<'_>) -> Out {
    let Some(Value::String(text)) = arg(args, 0) else {
        return Err(fail("$parse needs a JSON string"));
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| fail(format!("$parse could not parse its argument as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::Query;
    use serde_json::{Value, json};

    fn eval(text: &str) -> Result<Value, String> {
        Query::compile(text)
            .unwrap()
            .value(&json!({}), "Output")
            .map_err(|e| e.cause)
    }

    #[test]
    fn partition_cuts_an_array_into_chunks() {
        assert_eq!(
            eval("$partition([1,2,3,4], 2)"),
            Ok(json!([[1, 2], [3, 4]]))
        );
        assert_eq!(eval("$partition([1,2,3], 2)"), Ok(json!([[1, 2], [3]])));
    }

    #[test]
    fn range_includes_its_end() {
        assert_eq!(eval("$range(0, 10, 2)"), Ok(json!([0, 2, 4, 6, 8, 10])));
        assert_eq!(eval("$range(3, 1, -1)"), Ok(json!([3, 2, 1])));
    }

    #[test]
    fn hash_gives_the_hex_digest_of_each_algorithm() {
        assert_eq!(
            eval("$hash('abc', 'SHA-256')"),
            Ok(json!(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            ))
        );
        assert_eq!(
            eval("$hash('abc', 'MD5')"),
            Ok(json!("900150983cd24fb0d6963f7d28e17f72"))
        );
        assert!(eval("$hash('abc', 'SHA-3')").is_err());
    }

    #[test]
    fn random_with_a_seed_repeats_and_stays_below_one() {
        let a = eval("$random(7)").unwrap();
        assert_eq!(eval("$random(7)").unwrap(), a);
        let v = eval("$random()").unwrap().as_f64().unwrap();
        assert!((0.0..1.0).contains(&v));
    }

    #[test]
    fn uuid_is_a_version_4_uuid() {
        let id = eval("$uuid()").unwrap();
        let parsed = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn parse_reads_a_json_string() {
        assert_eq!(eval("$parse('{\"a\":[1,2]}').a[1]"), Ok(json!(2)));
        assert!(eval("$parse('{')").is_err());
    }
}
