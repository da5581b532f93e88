//! JSONPath as the Amazon States Language uses it: paths (`$.a.b`, `$.a[0]`, `$['x']`,
//! `$.a[*].b`, `$..x`, slices, unions and simple filters) and reference paths (`ResultPath`).
//!
//! The parser is in `parse`, the evaluation of a parsed path in `select`.

mod parse;
mod select;

use parse::parse_segments;
use select::{index_of, walk};
use serde_json::{Map, Value};

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]` (negative counts from the end).
    Index(i64),
    /// `.*` or `[*]`.
    Wildcard,
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, i64),
    /// `[0,2]` or `['a','b']`.
    Union(Vec<UnionItem>),
    /// `..name` or `..*`.
    Descend(Option<String>),
    /// `[?(...)]`.
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
enum UnionItem {
    Index(i64),
    Field(String),
}

/// A filter expression: comparisons joined by `&&` / `||` (no parentheses inside).
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Exists(Vec<Segment>),
    Compare(Vec<Segment>, CmpOp, Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed JSONPath, rooted at the state input (`$`), the context object (`$$`) or a
/// workflow variable (`$name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    context: bool,
    variable: Option<String>,
    segments: Vec<Segment>,
}

impl Path {
    /// Parses a path; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (false, rest)
        } else {
            return Err(format!("the path {text:?} does not start with '$'"));
        };
        // `$name` reads the workflow variable `name`.
        let name_len = if context {
            0
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        let (variable, rest) = match name_len {
            0 => (None, rest),
            n => (Some(rest[..n].to_string()), &rest[n..]),
        };
        let segments =
            parse_segments(rest).map_err(|e| format!("invalid JSONPath {text:?}: {e}"))?;
        Ok(Path {
            text: text.to_string(),
            context,
            variable,
            segments,
        })
    }

    /// Parses a reference path (only `.name`, `['name']` and `[n]` steps), as `ResultPath` needs.
    pub fn parse_reference(text: &str) -> Result<Path, String> {
        let path = Path::parse(text)?;
        if path.context || path.variable.is_some() {
            return Err(format!(
                "the reference path {text:?} cannot refer to the context object or a variable"
            ));
        }
        if !path.is_definite() {
            return Err(format!(
                "the reference path {text:?} must identify a single node (no wildcards, filters or slices)"
            ));
        }
        Ok(path)
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path in the bracket notation AWS quotes in its errors (`$['a']['b'][0]`); paths with
    /// wildcards, slices or filters are given as written.
    pub fn bracketed(&self) -> String {
        let mut out = match &self.variable {
            Some(name) => format!("${name}"),
            None => String::from(if self.context { "$$" } else { "$" }),
        };
        for segment in &self.segments {
            match segment {
                Segment::Field(name) => out.push_str(&format!("['{name}']")),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                _ => return self.text.clone(),
            }
        }
        out
    }

    /// Whether the path is rooted at the context object (`$$`).
    pub fn is_context(&self) -> bool {
        self.context
    }

    /// A definite path selects at most one node; an indefinite one selects a list.
    pub fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Selects from `input` (or `context` for `$$` paths, or the variable of the current
    /// scope). A definite path that matches nothing is `None`; an indefinite path always
    /// answers an array (possibly empty).
    pub fn select(&self, input: &Value, context: &Value) -> Option<Value> {
        let variable;
        let root = match &self.variable {
            Some(name) => {
                variable = crate::variables::lookup(name)?;
                &variable
            }
            None if self.context => context,
            None => input,
        };
        let found = walk(root, &self.segments);
        if self.is_definite() {
            found.into_iter().next().cloned()
        } else {
            Some(Value::Array(found.into_iter().cloned().collect()))
        }
    }

    /// Writes `value` at this reference path inside `target`, creating objects on the way.
    /// Fails when the path crosses a value that is not an object (or an array for an index).
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        if self.segments.is_empty() {
            *target = value;
            return Ok(());
        }
        let mut cursor = target;
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Field(name) => {
                    if cursor.is_null() && i == 0 {
                        *cursor = Value::Object(Map::new());
                    }
                    let Value::Object(map) = cursor else {
                        return Err(format!(
                            "the path {:?} cannot be applied: a step before {name:?} is not an object",
                            self.text
                        ));
                    };
                    if i == last {
                        map.insert(name.clone(), value);
                        return Ok(());
                    }
                    cursor = map
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                }
                Segment::Index(index) => {
                    let Value::Array(items) = cursor else {
                        return Err(format!(
                            "the path {:?} cannot be applied: index {index} is used on a value that is not an array",
                            self.text
                        ));
                    };
                    let Some(at) = index_of(items.len(), *index) else {
                        return Err(format!(
                            "the path {:?} cannot be applied: index {index} is out of bounds",
                            self.text
                        ));
                    };
                    if i == last {
                        items[at] = value;
                        return Ok(());
                    }
                    cursor = &mut items[at];
                }
                _ => return Err(format!("{:?} is not a reference path", self.text)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, input: Value) -> Option<Value> {
        Path::parse(path).unwrap().select(&input, &json!({}))
    }

    #[tokio::test]
    async fn a_dollar_name_path_reads_the_variable_of_the_current_scope() {
        let mut vars = Map::new();
        vars.insert("cfg".into(), json!({"n": [1, 2]}));
        let path = Path::parse("$cfg.n[1]").unwrap();
        let read = crate::variables::scoped(std::sync::Arc::new(vars), async {
            path.select(&json!({}), &json!({}))
        })
        .await;
        assert_eq!(read, Some(json!(2)));
        assert_eq!(path.select(&json!({"cfg": 1}), &json!({})), None);
        assert!(Path::parse_reference("$cfg.n").is_err());
    }

    #[test]
    fn errors_quote_definite_paths_in_bracket_notation() {
        let bracketed = |p: &str| Path::parse(p).unwrap().bracketed();
        assert_eq!(bracketed("$.a.b[0]"), "$['a']['b'][0]");
        assert_eq!(bracketed("$$.Execution.Id"), "$$['Execution']['Id']");
        assert_eq!(bracketed("$.a[*].b"), "$.a[*].b");
    }

    #[test]
    fn selects_fields_indices_quoted_names_and_wildcards() {
        let doc = json!({"a": {"b": [1, 2, {"c": 3}]}, "x y": 5, "l": [{"b": 1}, {"b": 2}]});
        assert_eq!(sel("$.a.b[0]", doc.clone()), Some(json!(1)));
        assert_eq!(sel("$.a.b[-1].c", doc.clone()), Some(json!(3)));
        assert_eq!(sel("$['x y']", doc.clone()), Some(json!(5)));
        assert_eq!(sel("$.l[*].b", doc.clone()), Some(json!([1, 2])));
        assert_eq!(
            sel("$..b", doc.clone()).unwrap().as_array().unwrap().len(),
            3
        );
        assert_eq!(sel("$.a.b[0:2]", doc.clone()), Some(json!([1, 2])));
        assert_eq!(sel("$.nope", doc), None);
    }

    #[test]
    fn filters_compare_fields_of_each_item() {
        let doc = json!({"l": [{"n": 1, "s": "a"}, {"n": 5, "s": "b"}, {"s": "c"}]});
        assert_eq!(sel("$.l[?(@.n > 2)].s", doc.clone()), Some(json!(["b"])));
        assert_eq!(
            sel("$.l[?(@.s == 'a' || @.s == 'c')].s", doc.clone()),
            Some(json!(["a", "c"]))
        );
        assert_eq!(sel("$.l[?(@.n)].n", doc), Some(json!([1, 5])));
    }

    #[test]
    fn reference_paths_create_missing_objects_and_reject_wildcards() {
        let mut doc = json!({"a": 1});
        Path::parse_reference("$.b.c")
            .unwrap()
            .set(&mut doc, json!(2))
            .unwrap();
        assert_eq!(doc, json!({"a": 1, "b": {"c": 2}}));
        assert!(Path::parse_reference("$.a[*]").is_err());
        assert!(
            Path::parse_reference("$.a.b")
                .unwrap()
                .set(&mut doc, json!(1))
                .is_err()
        );
    }
}
