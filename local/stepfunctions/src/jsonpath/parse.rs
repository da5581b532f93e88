//! Parsing the text of a path into its steps, with errors that say what is wrong and where.

use super::{CmpOp, Filter, Segment, UnionItem};
use serde_json::Value;

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

/// Parses the steps after `$` or `$$`.
pub(super) fn parse_segments(text: &str) -> Result<Vec<Segment>, String> {
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

/// `||`-joined terms: one term alone, or their disjunction.
fn parse_filter_or(cursor: &mut Cursor<'_>) -> Result<Filter, String> {
    parse_joined(cursor, '|', parse_filter_and, Filter::Or)
}

/// `&&`-joined terms: one term alone, or their conjunction.
fn parse_filter_and(cursor: &mut Cursor<'_>) -> Result<Filter, String> {
    parse_joined(cursor, '&', parse_filter_term, Filter::And)
}

/// `term (op op term)*`, where `op op` is `||` or `&&`: one term alone, or all of them
/// joined by `join`.
fn parse_joined(
    cursor: &mut Cursor<'_>,
    op: char,
    term: fn(&mut Cursor<'_>) -> Result<Filter, String>,
    join: fn(Vec<Filter>) -> Filter,
) -> Result<Filter, String> {
    let mut parts = vec![term(cursor)?];
    loop {
        cursor.skip_ws();
        if cursor.peek() == Some(op) && cursor.peek_at(1) == Some(op) {
            cursor.pos += 2;
            parts.push(term(cursor)?);
        } else {
            break;
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        join(parts)
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
