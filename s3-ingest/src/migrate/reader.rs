//! Reading a JSON definition field by field, each error naming where it is
//! (`pipelineActivities[2].math`): the helper the SDK shapes are read with.

use std::collections::HashMap;

use aws_smithy_types::error::operation::BuildError;
use serde_json::{Map, Value};

/// A definition that does not have the shape the service model gives it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct ShapeError {
    /// Where in the definition, e.g. `pipelineActivities[2].math`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A JSON object being read, with its path for error messages.
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub(super) path: String,
}

type Result<T> = std::result::Result<T, ShapeError>;

impl<'a> Obj<'a> {
    /// The top of a definition.
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            path: String::new(),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> ShapeError {
        ShapeError {
            path: self.at(key),
            message: message.into(),
        }
    }

    /// A field that is absent or `null` is `None`.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field; numbers and booleans are taken as their text.
    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.error(key, "expected a string")),
        }
    }

    /// An integer field (or a string holding one).
    pub fn int(&self, key: &str) -> Result<Option<i32>> {
        let number = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        number
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.error(key, "expected a whole number"))
    }

    /// A number field (or a string holding one).
    pub fn float(&self, key: &str) -> Result<Option<f64>> {
        let number = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        number
            .map(Some)
            .ok_or_else(|| self.error(key, "expected a number"))
    }

    /// A boolean field (or the string `true` or `false`).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.error(key, "expected true or false")),
        }
    }

    /// An object field.
    pub fn object(&self, key: &str) -> Result<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.at(key),
            })),
            Some(_) => Err(self.error(key, "expected an object")),
        }
    }

    /// A list of objects.
    pub fn objects(&self, key: &str) -> Result<Option<Vec<Obj<'a>>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.error(key, "expected a list"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Obj {
                    map,
                    path: format!("{}[{i}]", self.at(key)),
                }),
                _ => Err(self.error(&format!("{key}[{i}]"), "expected an object")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.error(key, "expected a list of strings"));
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(self.error(key, "expected a list of strings")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An object of string values (AddAttributes' attribute map).
    pub fn string_map(&self, key: &str) -> Result<Option<HashMap<String, String>>> {
        let Some(map) = self.object(key)? else {
            return Ok(None);
        };
        map.map
            .keys()
            .map(|name| {
                map.string(name)?
                    .map(|value| (name.clone(), value))
                    .ok_or_else(|| map.error(name, "expected a string"))
            })
            .collect::<Result<HashMap<_, _>>>()
            .map(Some)
    }

    /// Turns a builder's error (a required field missing) into one naming this object.
    pub(super) fn built<T>(&self, result: std::result::Result<T, BuildError>) -> Result<T> {
        result.map_err(|error| ShapeError {
            path: if self.path.is_empty() {
                "(top level)".to_owned()
            } else {
                self.path.clone()
            },
            message: error.to_string(),
        })
    }

    /// A list of objects, each read by `read`.
    pub fn each<T>(
        &self,
        key: &str,
        read: impl Fn(&Obj<'a>) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        self.objects(key)?
            .map(|items| items.iter().map(&read).collect())
            .transpose()
    }

    /// An object field read by `read`.
    pub fn with<T>(&self, key: &str, read: impl Fn(&Obj<'a>) -> Result<T>) -> Result<Option<T>> {
        self.object(key)?.as_ref().map(read).transpose()
    }
}
