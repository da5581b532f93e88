//! `States.Format`: fills each `{}` of a template with the next argument, rendered as AWS
//! renders it: strings as they are, objects as `{key=value, key2=value2}` and arrays as
//! `[a, b]`, nested values likewise.

use serde_json::Value;

/// Evaluates `States.Format(template, args...)`; `\{` and `\}` in the template are literal braces.
pub(super) fn format(args: &[Value]) -> Result<Value, String> {
    let template = args[0].as_str().ok_or("the template must be a string")?;
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
                render(arg, &mut out);
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
    Ok(Value::String(out))
}

/// Appends one argument as AWS writes it into the formatted string.
fn render(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Object(map) => {
            out.push('{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                render(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(template: &str, args: &[Value]) -> String {
        let mut all = vec![json!(template)];
        all.extend_from_slice(args);
        format(&all).unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn objects_and_arrays_render_as_key_equals_value_lists() {
        assert_eq!(
            fmt("{}", &[json!({"Arg1": 1, "Arg2": []})]),
            "{Arg1=1, Arg2=[]}"
        );
        assert_eq!(
            fmt("x {} y", &[json!([1, "a", {"k": [true, null]}])]),
            "x [1, a, {k=[true, null]}] y"
        );
    }

    #[test]
    fn escaped_braces_are_literal_and_argument_counts_must_match() {
        assert_eq!(fmt("\\{{}\\}", &[json!("v")]), "{v}");
        assert!(format(&[json!("{} {}"), json!(1)]).is_err());
        assert!(format(&[json!("{}"), json!(1), json!(2)]).is_err());
    }
}
