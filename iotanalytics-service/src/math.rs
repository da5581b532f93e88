//! The `math` pipeline activity's expression language, as AWS IoT Analytics documented it:
//! the operators `+ - * / %`, parentheses, unary minus, message attributes (`a.b` reads a
//! nested attribute), numbers, and the functions `abs acos asin atan atan2 ceil cos cosh exp ln
//! log mod power round sign sin sinh sqrt tan tanh trunc` with the AWS IoT SQL semantics:
//! integers stay integers under `+ - * / %` (division truncates), a decimal operand makes the
//! result decimal, and an expression over a missing or non-numeric attribute has no value
//! (the activity then leaves the message unchanged). Numeric strings count as numbers,
//! because the workflow sends CSV values as strings.

use serde_json::{Map, Value};

use crate::error::Error;

/// A parsed math expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A numeric literal.
    Num(Num),
    /// A message attribute (dotted path).
    Attr(Vec<String>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `l op r`, `op` one of `+ - * / %`.
    Bin(char, Box<Expr>, Box<Expr>),
    /// A function call (name lower-cased).
    Call(String, Vec<Expr>),
}

/// An IoT SQL number: `Int` or `Decimal`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Dec(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(d) => d,
        }
    }

    fn to_json(self) -> Option<Value> {
        match self {
            Num::Int(i) => Some(Value::from(i)),
            Num::Dec(d) if d.is_finite() => Some(Value::from(d)),
            Num::Dec(_) => None,
        }
    }
}

/// Functions and how many arguments each takes.
const FUNCTIONS: [(&str, usize); 21] = [
    ("abs", 1),
    ("acos", 1),
    ("asin", 1),
    ("atan", 1),
    ("atan2", 2),
    ("ceil", 1),
    ("cos", 1),
    ("cosh", 1),
    ("exp", 1),
    ("ln", 1),
    ("log", 1),
    ("mod", 2),
    ("power", 2),
    ("round", 1),
    ("sign", 1),
    ("sin", 1),
    ("sinh", 1),
    ("sqrt", 1),
    ("tan", 1),
    ("tanh", 1),
    ("trunc", 2),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Num),
    Ident(String),
    Op(char),
}

fn invalid(text: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("The math expression '{text}' is not valid: {why}"))
}

fn lex(text: &str) -> Result<Vec<Tok>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: 1e3, 2.5E-2.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            let n = if s.contains(['.', 'e', 'E']) {
                s.parse().map(Num::Dec).ok()
            } else {
                s.parse().map(Num::Int).ok()
            };
            toks.push(Tok::Num(
                n.ok_or_else(|| invalid(text, format!("bad number '{s}'")))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if "+-*/%(),".contains(c) {
            toks.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(invalid(text, format!("unexpected character '{c}'")));
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Tok::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Expr, Error> {
        let mut left = self.product()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        if self.eat('-') {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat('+') {
            return self.unary();
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, Error> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| invalid(self.text, "it ends too early"))?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Op('(') => {
                let e = self.sum()?;
                if !self.eat(')') {
                    return Err(invalid(self.text, "a '(' is not closed"));
                }
                Ok(e)
            }
            Tok::Ident(name) if self.eat('(') => {
                let lower = name.to_ascii_lowercase();
                let arity = FUNCTIONS
                    .iter()
                    .find(|(f, _)| *f == lower)
                    .map(|(_, n)| *n)
                    .ok_or_else(|| invalid(self.text, format!("unknown function '{name}'")))?;
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.sum()?);
                        if self.eat(')') {
                            break;
                        }
                        if !self.eat(',') {
                            return Err(invalid(
                                self.text,
                                format!("expected ',' or ')' in {name}(…)"),
                            ));
                        }
                    }
                }
                if args.len() != arity {
                    return Err(invalid(
                        self.text,
                        format!("{lower} takes {arity} argument(s), got {}", args.len()),
                    ));
                }
                Ok(Expr::Call(lower, args))
            }
            Tok::Ident(name) => Ok(Expr::Attr(name.split('.').map(str::to_owned).collect())),
            Tok::Op(c) => Err(invalid(self.text, format!("unexpected '{c}'"))),
        }
    }
}

/// Parses a math expression (at most 256 characters, as the service model allows).
pub fn parse(text: &str) -> Result<Expr, Error> {
    if text.trim().is_empty() || text.chars().count() > 256 {
        return Err(invalid(text, "it must be 1 to 256 characters long"));
    }
    let mut p = Parser {
        text,
        toks: lex(text)?,
        pos: 0,
    };
    let e = p.sum()?;
    if let Some(t) = p.peek() {
        return Err(invalid(
            text,
            format!("unexpected {t:?} after the expression"),
        ));
    }
    Ok(e)
}

fn attr(message: &Map<String, Value>, path: &[String]) -> Option<Num> {
    let mut v = message.get(&path[0])?;
    for key in &path[1..] {
        v = v.get(key)?;
    }
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_f64().map(Num::Dec)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().map(Num::Int).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Dec)
            })
        }
        _ => None,
    }
}

fn arith(op: char, l: Num, r: Num) -> Option<Num> {
    if let (Num::Int(a), Num::Int(b)) = (l, r) {
        return match op {
            '+' => a.checked_add(b).map(Num::Int),
            '-' => a.checked_sub(b).map(Num::Int),
            '*' => a.checked_mul(b).map(Num::Int),
            '/' => a.checked_div(b).map(Num::Int),
            _ => a.checked_rem(b).map(Num::Int),
        };
    }
    let (a, b) = (l.f(), r.f());
    let v = match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' => a / b,
        _ => a % b,
    };
    v.is_finite().then_some(Num::Dec(v))
}

fn dec(v: f64) -> Option<Num> {
    v.is_finite().then_some(Num::Dec(v))
}

fn call(name: &str, args: &[Num]) -> Option<Num> {
    let x = args[0];
    let f = x.f();
    match name {
        "abs" => Some(match x {
            Num::Int(i) => Num::Int(i.checked_abs()?),
            Num::Dec(d) => Num::Dec(d.abs()),
        }),
        "ceil" => Some(Num::Int(f.ceil() as i64)),
        // IoT SQL rounds half away from zero: round(-1.5) = -2.
        "round" => Some(Num::Int(f.round() as i64)),
        "sign" => Some(Num::Int(if f > 0.0 {
            1
        } else if f < 0.0 {
            -1
        } else {
            0
        })),
        "mod" => arith('%', x, args[1]),
        "power" => dec(f.powf(args[1].f())),
        "atan2" => dec(f.atan2(args[1].f())),
        "trunc" => {
            let places = args[1].f().trunc() as i32;
            let scale = 10f64.powi(places);
            match x {
                Num::Int(i) if places >= 0 => Some(Num::Int(i)),
                _ => dec((f * scale).trunc() / scale),
            }
        }
        "acos" => dec(f.acos()),
        "asin" => dec(f.asin()),
        "atan" => dec(f.atan()),
        "cos" => dec(f.cos()),
        "cosh" => dec(f.cosh()),
        "exp" => dec(f.exp()),
        "ln" => dec(f.ln()),
        "log" => dec(f.log10()),
        "sin" => dec(f.sin()),
        "sinh" => dec(f.sinh()),
        "sqrt" => dec(f.sqrt()),
        "tan" => dec(f.tan()),
        "tanh" => dec(f.tanh()),
        _ => None,
    }
}

fn num(expr: &Expr, message: &Map<String, Value>) -> Option<Num> {
    match expr {
        Expr::Num(n) => Some(*n),
        Expr::Attr(path) => attr(message, path),
        Expr::Neg(e) => match num(e, message)? {
            Num::Int(i) => i.checked_neg().map(Num::Int),
            Num::Dec(d) => Some(Num::Dec(-d)),
        },
        Expr::Bin(op, l, r) => arith(*op, num(l, message)?, num(r, message)?),
        Expr::Call(name, args) => {
            let args: Option<Vec<Num>> = args.iter().map(|a| num(a, message)).collect();
            call(name, &args?)
        }
    }
}

/// The value of an expression over a message, as JSON; `None` when it has none (a missing or
/// non-numeric attribute, a division by zero, a result outside the numbers).
pub fn eval(expr: &Expr, message: &Map<String, Value>) -> Option<Value> {
    num(expr, message)?.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(text: &str, message: Value) -> Option<Value> {
        eval(&parse(text).unwrap(), message.as_object().unwrap())
    }

    #[test]
    fn the_documented_fahrenheit_to_celsius_example_converts() {
        // The user guide's math activity: "((temp - 32) * 5.0) / 9.0" into tempC.
        let v = run("((temp - 32) * 5.0) / 9.0", json!({"temp": 212})).unwrap();
        assert_eq!(v, json!(100.0));
    }

    #[test]
    fn integers_stay_integers_and_division_truncates() {
        assert_eq!(run("7 / 2", json!({})), Some(json!(3)));
        assert_eq!(run("7 / 2.0", json!({})), Some(json!(3.5)));
        assert_eq!(run("7 % 3 + 2 * 3", json!({})), Some(json!(7)));
        assert_eq!(run("-(2 + 3) * 2", json!({})), Some(json!(-10)));
    }

    #[test]
    fn functions_follow_the_iot_sql_examples() {
        assert_eq!(run("abs(-5)", json!({})), Some(json!(5)));
        assert_eq!(run("ceil(1.2)", json!({})), Some(json!(2)));
        assert_eq!(run("ceil(-1.2)", json!({})), Some(json!(-1)));
        assert_eq!(run("round(1.5)", json!({})), Some(json!(2)));
        assert_eq!(run("round(-1.5)", json!({})), Some(json!(-2)));
        assert_eq!(run("sign(-21.4)", json!({})), Some(json!(-1)));
        assert_eq!(run("mod(8, 3)", json!({})), Some(json!(2)));
        assert_eq!(run("power(2, 3)", json!({})), Some(json!(8.0)));
        assert_eq!(run("sqrt(16)", json!({})), Some(json!(4.0)));
        assert_eq!(run("log(100)", json!({})), Some(json!(2.0)));
        assert_eq!(run("ln(1)", json!({})), Some(json!(0.0)));
        assert_eq!(run("trunc(2.3456, 2)", json!({})), Some(json!(2.34)));
        assert_eq!(run("exp(0)", json!({})), Some(json!(1.0)));
        assert_eq!(run("atan2(0, 1)", json!({})), Some(json!(0.0)));
    }

    #[test]
    fn numeric_strings_and_nested_attributes_are_numbers() {
        assert_eq!(run("temp * 2", json!({"temp": "21"})), Some(json!(42)));
        assert_eq!(run("d.t + 1", json!({"d": {"t": 1.5}})), Some(json!(2.5)));
    }

    #[test]
    fn missing_attributes_and_division_by_zero_have_no_value() {
        assert_eq!(run("nope + 1", json!({"temp": 1})), None);
        assert_eq!(run("temp + 1", json!({"temp": "warm"})), None);
        assert_eq!(run("1 / 0", json!({})), None);
        assert_eq!(run("1.0 / 0", json!({})), None);
    }

    #[test]
    fn malformed_expressions_and_unknown_functions_are_refused() {
        for bad in [
            "",
            "(1 + 2",
            "1 +",
            "foo(1)",
            "abs(1, 2)",
            "temp $ 2",
            "1 2",
        ] {
            assert!(parse(bad).is_err(), "'{bad}' was accepted");
        }
    }
}
