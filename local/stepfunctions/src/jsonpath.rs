//! JSONPath as the Amazon States Language uses it: paths (`$.a.b`, `$.a[0]`, `$['x']`,
//! `$.a[*].b`, `$..x`, slices, unions and simple filters) and reference paths (`ResultPath`).

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

/// A parsed JSONPath, rooted either at the state input (`$`) or the context object (`$$`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    context: bool,
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
        let segments =
            parse_segments(rest).map_err(|e| format!("invalid JSONPath {text:?}: {e}"))?;
        Ok(Path {
            text: text.to_string(),
            context,
            segments,
        })
    }

    /// Parses a reference path (only `.name`, `['name']` and `[n]` steps), as `ResultPath` needs.
    pub fn parse_reference(text: &str) -> Result<Path, String> {
        let path = Path::parse(text)?;
        if path.context {
            return Err(format!(
                "the reference path {text:?} cannot refer to the context object"
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

    /// Selects from `input` (or `context` for `$$` paths). A definite path that matches nothing
    /// is `None`; an indefinite path always answers an array (possibly empty).
    pub fn select(&self, input: &Value, context: &Value) -> Option<Value> {
        let root = if self.context { context } else { input };
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
                    let len = items.len() as i64;
                    let at = if *index < 0 { len + index } else { *index };
                    if at < 0 || at >= len {
                        return Err(format!(
                            "the path {:?} cannot be applied: index {index} is out of bounds",
                            self.text
                        ));
                    }
                    if i == last {
                        items[at as usize] = value;
                        return Ok(());
                    }
                    cursor = &mut items[at as usize];
                }
                _ => return Err(format!("{:?} is not a reference path", self.text)),
            }
        }
        Ok(())
    }
}

fn walk<'a>(root: &'a Value, segments: &[Segment]) -> Vec<&'a Value> {
    let mut current = vec![root];
    for segment in segments {
        let mut next = Vec::new();
        for value in current {
            apply(value, segment, &mut next);
        }
        current = next;
    }
    current
}

fn index_of(len: usize, index: i64) -> Option<usize> {
    let len = len as i64;
    let at = if index < 0 { len + index } else { index };
    (at >= 0 && at < len).then_some(at as usize)
}

fn apply<'a>(value: &'a Value, segment: &Segment, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(name) => {
            if let Some(v) = value.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Segment::Index(index) => {
            if let Some(items) = value.as_array()
                && let Some(at) = index_of(items.len(), *index)
            {
                out.push(&items[at]);
            }
        }
        Segment::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Segment::Slice(start, end, step) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                let (from, to) = (norm(start.unwrap_or(0)), norm(end.unwrap_or(len)));
                let mut i = from;
                while i < to {
                    out.push(&items[i as usize]);
                    i += step.max(&1);
                }
            }
        }
        Segment::Union(members) => {
            for member in members {
                match member {
                    UnionItem::Index(index) => apply(value, &Segment::Index(*index), out),
                    UnionItem::Field(name) => apply(value, &Segment::Field(name.clone()), out),
                }
            }
        }
        Segment::Descend(name) => descend(value, name.as_deref(), out),
        Segment::Filter(filter) => {
            let candidates: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            out.extend(candidates.into_iter().filter(|c| filter_matches(filter, c)));
        }
    }
}

fn descend<'a>(value: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if name.is_none_or(|n| n == key) {
                    out.push(child);
                }
            }
            for child in map.values() {
                descend(child, name, out);
            }
        }
        Value::Array(items) => {
            if name.is_none() {
                out.extend(items.iter());
            }
            for child in items {
                descend(child, name, out);
            }
        }
        _ => {}
    }
}

fn filter_matches(filter: &Filter, item: &Value) -> bool {
    match filter {
        Filter::Or(parts) => parts.iter().any(|p| filter_matches(p, item)),
        Filter::And(parts) => parts.iter().all(|p| filter_matches(p, item)),
        Filter::Exists(path) => !walk(item, path).is_empty(),
        Filter::Compare(path, op, literal) => {
            let Some(found) = walk(item, path).into_iter().next() else {
                return false;
            };
            compare(found, *op, literal)
        }
    }
}

fn compare(left: &Value, op: CmpOp, right: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => left == right || ordering == Some(Ordering::Equal),
        CmpOp::Ne => !(left == right || ordering == Some(Ordering::Equal)),
        CmpOp::Lt => ordering == Some(Ordering::Less),
        CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ordering == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
    }
}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn done(&self) -> bool {
        self.pos >= self.chars.len()
    }
}

fn parse_segments(text: &str) -> Result<Vec<Segment>, String> {
    let mut cursor = Cursor {
        chars: text.chars().collect(),
        pos: 0,
        _text: text,
    };
    let segments = parse_steps(&mut cursor, false)?;
    if !cursor.done() {
        return Err(format!("unexpected character at offset {}", cursor.pos));
    }
    Ok(segments)
}

/// Parses steps until the text ends, or (inside a filter) until a character that ends an operand.
fn parse_steps(cursor: &mut Cursor<'_>, in_filter: bool) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    while let Some(c) = cursor.peek() {
        match c {
            '.' => {
                cursor.pos += 1;
                if cursor.eat('.') {
                    if cursor.eat('*') {
                        segments.push(Segment::Descend(None));
                    } else {
                        let name = parse_name(cursor)?;
                        segments.push(Segment::Descend(Some(name)));
                    }
                } else if cursor.eat('*') {
                    segments.push(Segment::Wildcard);
                } else {
                    segments.push(Segment::Field(parse_name(cursor)?));
                }
            }
            '[' => {
                cursor.pos += 1;
                segments.push(parse_bracket(cursor)?);
            }
            _ if in_filter => break,
            other => return Err(format!("unexpected {other:?} at offset {}", cursor.pos)),
        }
    }
    Ok(segments)
}

fn parse_name(cursor: &mut Cursor<'_>) -> Result<String, String> {
    let start = cursor.pos;
    while let Some(c) = cursor.peek() {
        if c == '.' || c == '[' || c.is_whitespace() || "()=!<>&|,".contains(c) {
            break;
        }
        cursor.pos += 1;
    }
    if cursor.pos == start {
        return Err(format!("empty field name at offset {start}"));
    }
    Ok(cursor.chars[start..cursor.pos].iter().collect())
}

fn parse_quoted(cursor: &mut Cursor<'_>) -> Result<String, String> {
    let quote = cursor.peek().ok_or("unterminated string")?;
    cursor.pos += 1;
    let mut out = String::new();
    loop {
        match cursor.peek() {
            None => return Err("unterminated string".into()),
            Some('\\') => {
                cursor.pos += 1;
                if let Some(c) = cursor.peek() {
                    out.push(c);
                    cursor.pos += 1;
                }
            }
            Some(c) if c == quote => {
                cursor.pos += 1;
                return Ok(out);
            }
            Some(c) => {
                out.push(c);
                cursor.pos += 1;
            }
        }
    }
}

fn parse_int(cursor: &mut Cursor<'_>) -> Result<Option<i64>, String> {
    cursor.skip_ws();
    let start = cursor.pos;
    if cursor.peek() == Some('-') {
        cursor.pos += 1;
    }
    while cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
        cursor.pos += 1;
    }
    if cursor.pos == start {
        return Ok(None);
    }
    let text: String = cursor.chars[start..cursor.pos].iter().collect();
    let value = text
        .parse()
        .map_err(|_| format!("invalid integer {text:?}"))?;
    cursor.skip_ws();
    Ok(Some(value))
}

fn parse_bracket(cursor: &mut Cursor<'_>) -> Result<Segment, String> {
    cursor.skip_ws();
    let segment = match cursor.peek() {
        Some('*') => {
            cursor.pos += 1;
            Segment::Wildcard
        }
        Some('?') => {
            cursor.pos += 1;
            if !cursor.eat('(') {
                return Err("a filter must be written [?(...)]".into());
            }
            let filter = parse_filter_or(cursor)?;
            cursor.skip_ws();
            if !cursor.eat(')') {
                return Err("unterminated filter".into());
            }
            Segment::Filter(filter)
        }
        Some('\'') | Some('"') => {
            let mut names = vec![UnionItem::Field(parse_quoted(cursor)?)];
            cursor.skip_ws();
            while cursor.eat(',') {
                cursor.skip_ws();
                names.push(UnionItem::Field(parse_quoted(cursor)?));
                cursor.skip_ws();
            }
            if names.len() == 1 {
                let Some(UnionItem::Field(name)) = names.pop() else {
                    unreachable!("one field was pushed")
                };
                Segment::Field(name)
            } else {
                Segment::Union(names)
            }
        }
        _ => {
            let first = parse_int(cursor)?;
            if cursor.peek() == Some(':') {
                cursor.pos += 1;
                let end = parse_int(cursor)?;
                let step = if cursor.eat(':') {
                    parse_int(cursor)?.unwrap_or(1)
                } else {
                    1
                };
                if step <= 0 {
                    return Err("a slice step must be positive".into());
                }
                Segment::Slice(first, end, step)
            } else {
                let first = first.ok_or("expected an index, '*', a quoted name or a filter")?;
                let mut indices = vec![UnionItem::Index(first)];
                while cursor.eat(',') {
                    indices.push(UnionItem::Index(
                        parse_int(cursor)?.ok_or("expected an index")?,
                    ));
                }
                if indices.len() == 1 {
                    Segment::Index(first)
                } else {
                    Segment::Union(indices)
                }
            }
        }
    };
    cursor.skip_ws();
    if !cursor.eat(']') {
        return Err(format!("expected ']' at offset {}", cursor.pos));
    }
    Ok(segment)
}

fn parse_filter_or(cursor: &mut Cursor<'_>) -> Result<Filter, String> {
    let mut parts = vec![parse_filter_and(cursor)?];
    loop {
        cursor.skip_ws();
        if cursor.peek() == Some('|') && cursor.peek_at(1) == Some('|') {
            cursor.pos += 2;
            parts.push(parse_filter_and(cursor)?);
        } else {
            break;
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::Or(parts)
    })
}

fn parse_filter_and(cursor: &mut Cursor<'_>) -> Result<Filter, String> {
    let mut parts = vec![parse_filter_term(cursor)?];
    loop {
        cursor.skip_ws();
        if cursor.peek() == Some('&') && cursor.peek_at(1) == Some('&') {
            cursor.pos += 2;
            parts.push(parse_filter_term(cursor)?);
        } else {
            break;
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::And(parts)
    })
}

fn parse_filter_term(cursor: &mut Cursor<'_>) -> Result<Filter, String> {
    cursor.skip_ws();
    if !cursor.eat('@') {
        return Err("a filter term must start with '@'".into());
    }
    let path = parse_steps(cursor, true)?;
    cursor.skip_ws();
    let op = match (cursor.peek(), cursor.peek_at(1)) {
        (Some('='), Some('=')) => Some((CmpOp::Eq, 2)),
        (Some('!'), Some('=')) => Some((CmpOp::Ne, 2)),
        (Some('<'), Some('=')) => Some((CmpOp::Le, 2)),
        (Some('>'), Some('=')) => Some((CmpOp::Ge, 2)),
        (Some('<'), _) => Some((CmpOp::Lt, 1)),
        (Some('>'), _) => Some((CmpOp::Gt, 1)),
        _ => None,
    };
    let Some((op, width)) = op else {
        return Ok(Filter::Exists(path));
    };
    cursor.pos += width;
    cursor.skip_ws();
    let literal = match cursor.peek() {
        Some('\'') | Some('"') => Value::String(parse_quoted(cursor)?),
        _ => {
            let start = cursor.pos;
            while cursor
                .peek()
                .is_some_and(|c| !c.is_whitespace() && !"&|)".contains(c))
            {
                cursor.pos += 1;
            }
            let text: String = cursor.chars[start..cursor.pos].iter().collect();
            serde_json::from_str(&text).map_err(|_| format!("invalid filter literal {text:?}"))?
        }
    };
    Ok(Filter::Compare(path, op, literal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, input: Value) -> Option<Value> {
        Path::parse(path).unwrap().select(&input, &json!({}))
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
