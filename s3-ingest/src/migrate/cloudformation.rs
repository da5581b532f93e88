//! `AWS::IoTAnalytics::*` resources of a CloudFormation template (JSON or YAML) as the
//! definitions `migrate` creates: intrinsic functions resolved where the template alone
//! says what they give, PascalCase properties turned into the service model's camelCase.
//!
//! `Ref` resolves to a parameter's value (`--parameter`, else its `Default`) or to another
//! IoT Analytics resource's name; `Fn::Sub` and `Fn::Join` over such values resolve too;
//! `Ref: AWS::NoValue` removes the property. Anything else (`Fn::GetAtt`, `Fn::ImportValue`,
//! pseudo parameters, `Fn::If`…) needs a deployed stack and is refused, naming the resource
//! and the property.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Kind, Resource};

/// A template `migrate` cannot take.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// A property whose value cannot be worked out from the template.
    #[error("resource {resource} ({kind}), property {property}: {reason}")]
    Property {
        /// The resource's logical id.
        resource: String,
        /// Its CloudFormation type.
        kind: String,
        /// The property's path, e.g. `PipelineActivities[0].Channel.ChannelName`.
        property: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Something wrong with the template as a whole.
    #[error("{0}")]
    Template(String),
}

/// The IoT Analytics resources of a template, and a note for each resource left out.
#[derive(Debug, Default)]
pub struct Template {
    /// The resources to create.
    pub resources: Vec<Resource>,
    /// What was left out, and why (resources of other services).
    pub notes: Vec<String>,
}

/// Whether a document is a CloudFormation template rather than `describe-*` output.
pub fn is_template(document: &Value) -> bool {
    document.get("Resources").is_some_and(Value::is_object)
}

/// The CloudFormation type, the name property and the other properties of each kind.
fn kind_of(type_name: &str) -> Option<(Kind, &'static str, &'static [&'static str])> {
    match type_name {
        "AWS::IoTAnalytics::Channel" => Some((
            Kind::Channel,
            "ChannelName",
            &["ChannelStorage", "RetentionPeriod", "Tags"],
        )),
        "AWS::IoTAnalytics::Datastore" => Some((
            Kind::Datastore,
            "DatastoreName",
            &[
                "DatastoreStorage",
                "RetentionPeriod",
                "FileFormatConfiguration",
                "DatastorePartitions",
                "Tags",
            ],
        )),
        "AWS::IoTAnalytics::Pipeline" => Some((
            Kind::Pipeline,
            "PipelineName",
            &["PipelineActivities", "Tags"],
        )),
        "AWS::IoTAnalytics::Dataset" => Some((
            Kind::Dataset,
            "DatasetName",
            &[
                "Actions",
                "Triggers",
                "ContentDeliveryRules",
                "RetentionPeriod",
                "VersioningConfiguration",
                "LateDataRules",
                "Tags",
            ],
        )),
        _ => None,
    }
}

/// What `Ref` can resolve to: parameter values and the IoT Analytics resources' names.
struct Refs {
    values: HashMap<String, String>,
}

/// Reads the IoT Analytics resources of `template`; `parameters` override the template's
/// parameter defaults. `origin` names the file, for the resources' origins.
pub fn read(
    template: &Value,
    origin: &str,
    parameters: &HashMap<String, String>,
) -> Result<Template, TemplateError> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| TemplateError::Template("the template has no Resources".into()))?;
    let mut refs = Refs {
        values: HashMap::new(),
    };
    if let Some(declared) = template.get("Parameters").and_then(Value::as_object) {
        for (name, declaration) in declared {
            if let Some(default) = declaration.get("Default").and_then(scalar_text) {
                refs.values.insert(name.clone(), default);
            }
        }
    }
    refs.values.extend(parameters.clone());
    // Names first, so that a pipeline's `Ref: MyChannel` resolves whatever the order.
    let mut iot = Vec::new();
    let mut out = Template::default();
    for (id, resource) in resources {
        let type_name = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let Some((kind, name_property, properties)) = kind_of(type_name) else {
            out.notes.push(format!(
                "ignored {id} ({type_name}): not an IoT Analytics resource"
            ));
            continue;
        };
        let error = |property: &str, reason: String| TemplateError::Property {
            resource: id.clone(),
            kind: type_name.to_owned(),
            property: property.to_owned(),
            reason,
        };
        let props = match resource.get("Properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(props)) => props.clone(),
            Some(_) => return Err(error("Properties", "expected an object".into())),
        };
        let name = match props.get(name_property) {
            None => id.clone(),
            Some(value) => match resolve(value, &refs, name_property) {
                Ok(Some(Value::String(name))) => name,
                Ok(_) => return Err(error(name_property, "expected a string".into())),
                Err((path, reason)) => return Err(error(&path, reason)),
            },
        };
        if let Some(condition) = resource.get("Condition").and_then(Value::as_str) {
            out.notes.push(format!(
                "{id} has Condition {condition}, which is not evaluated: it is created"
            ));
        }
        iot.push((id, type_name, kind, name_property, properties, props));
        refs.values.insert(id.clone(), name);
    }
    for (id, type_name, kind, name_property, known, props) in iot {
        let error = |property: &str, reason: String| TemplateError::Property {
            resource: id.clone(),
            kind: type_name.to_owned(),
            property: property.to_owned(),
            reason,
        };
        let mut definition = Map::new();
        let mut tags = Vec::new();
        for (key, value) in &props {
            if key == name_property {
                continue;
            }
            if !known.contains(&key.as_str()) {
                return Err(error(key, format!("not a property of {type_name}")));
            }
            let resolved =
                resolve(value, &refs, key).map_err(|(path, reason)| error(&path, reason))?;
            let Some(resolved) = resolved else { continue };
            if key == "Tags" {
                tags = read_tags(&resolved).map_err(|reason| error("Tags", reason))?;
            } else {
                definition.insert(camel_key(key), camel(resolved, key));
            }
        }
        out.resources.push(Resource {
            kind,
            name: refs.values[id].clone(),
            definition,
            tags,
            origin: format!("{origin}: {id}"),
        });
    }
    Ok(out)
}

/// A parameter default as the text `Ref` gives.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `Tags: [{Key, Value}]` as pairs.
fn read_tags(value: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Array(items) = value else {
        return Err("expected a list of {Key, Value}".into());
    };
    items
        .iter()
        .map(|tag| {
            let key = tag.get("Key").and_then(scalar_text);
            let value = tag.get("Value").and_then(scalar_text);
            key.zip(value)
                .ok_or_else(|| "expected a list of {Key, Value}".to_owned())
        })
        .collect()
}

/// The one key of an intrinsic function's object (`Ref`, `Fn::…`, `Condition`).
fn intrinsic(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (key, value) = map.iter().next()?;
    (key == "Ref" || key == "Condition" || key.starts_with("Fn::")).then_some((key.as_str(), value))
}

/// `value` with its intrinsic functions resolved; `None` where `Ref: AWS::NoValue` removes
/// it. Errors carry the path of the property where resolution failed.
fn resolve(value: &Value, refs: &Refs, path: &str) -> Result<Option<Value>, (String, String)> {
    match value {
        Value::Object(map) => {
            if let Some((function, argument)) = intrinsic(map) {
                return resolve_function(function, argument, refs)
                    .map_err(|reason| (path.to_owned(), reason));
            }
            let mut out = Map::new();
            for (key, item) in map {
                if let Some(item) = resolve(item, refs, &format!("{path}.{key}"))? {
                    out.insert(key.clone(), item);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(item) = resolve(item, refs, &format!("{path}[{i}]"))? {
                    out.push(item);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other.clone())),
    }
}

fn resolve_function(
    function: &str,
    argument: &Value,
    refs: &Refs,
) -> Result<Option<Value>, String> {
    match function {
        "Ref" => {
            let target = argument.as_str().ok_or("Ref takes a name")?;
            if target == "AWS::NoValue" {
                return Ok(None);
            }
            lookup(target, refs, &HashMap::new()).map(|v| Some(Value::String(v)))
        }
        "Fn::Sub" => {
            let (text, variables) = match argument {
                Value::String(text) => (text.as_str(), HashMap::new()),
                Value::Array(parts) if parts.len() == 2 => {
                    let text = parts[0].as_str().ok_or("Fn::Sub takes a string first")?;
                    let mut variables = HashMap::new();
                    for (name, value) in parts[1].as_object().into_iter().flatten() {
                        let value = resolve(value, refs, name)
                            .map_err(|(_, reason)| reason)?
                            .as_ref()
                            .and_then(scalar_text)
                            .ok_or_else(|| format!("Fn::Sub variable {name} is not a string"))?;
                        variables.insert(name.clone(), value);
                    }
                    (text, variables)
                }
                _ => return Err("Fn::Sub takes a string or [string, {variables}]".into()),
            };
            substitute(text, refs, &variables).map(|s| Some(Value::String(s)))
        }
        "Fn::Join" => {
            let parts = argument.as_array().filter(|parts| parts.len() == 2);
            let (delimiter, items) = parts
                .and_then(|parts| Some((parts[0].as_str()?, parts[1].as_array()?)))
                .ok_or("Fn::Join takes [delimiter, [values]]")?;
            let mut texts = Vec::new();
            for item in items {
                let item = resolve(item, refs, "").map_err(|(_, reason)| reason)?;
                if let Some(item) = item {
                    texts.push(scalar_text(&item).ok_or("Fn::Join joins strings only")?);
                }
            }
            Ok(Some(Value::String(texts.join(delimiter))))
        }
        other => Err(format!(
            "{other} cannot be resolved without a deployed stack; replace it with its value"
        )),
    }
}

/// What `Ref: name` (or `${name}` in `Fn::Sub`) gives.
fn lookup(name: &str, refs: &Refs, variables: &HashMap<String, String>) -> Result<String, String> {
    variables
        .get(name)
        .or_else(|| refs.values.get(name))
        .cloned()
        .ok_or_else(|| {
            format!(
                "Ref {name} cannot be resolved: it is neither a parameter with a Default (or \
                 --parameter {name}=VALUE) nor an IoT Analytics resource of the template"
            )
        })
}

/// `Fn::Sub`'s `${name}` substitutions; `${!literal}` stays as `${literal}`.
fn substitute(
    text: &str,
    refs: &Refs,
    variables: &HashMap<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("Fn::Sub has an unclosed ${")?;
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if name.contains('.') {
            return Err(format!(
                "Fn::Sub ${{{name}}} (an attribute) cannot be resolved without a deployed stack"
            ));
        } else {
            out.push_str(&lookup(name, refs, variables)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A PascalCase property name in the service model's camelCase.
fn camel_key(key: &str) -> String {
    let mut chars = key.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The key a CloudFormation property has in the service model, where it is not just
/// camelCase: `parent` is the property holding it.
fn model_key(parent: &str, key: &str) -> String {
    match (parent, key) {
        ("Variables", "VariableName") => "name".into(),
        ("Schedule", "ScheduleExpression") => "expression".into(),
        (_, "TriggeringDataset") => "dataset".into(),
        ("TriggeringDataset", "DatasetName") => "name".into(),
        ("Partitions", "Partition") => "attributePartition".into(),
        _ => camel_key(key),
    }
}

/// A resolved property value with its keys in the service model's names. AddAttributes'
/// `Attributes` map keeps its keys: they are the user's attribute names.
fn camel(value: Value, parent: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = if key == "Attributes" && value.is_object() {
                        value
                    } else {
                        camel(value, &key)
                    };
                    (model_key(parent, &key), value)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|item| camel(item, parent)).collect())
        }
        other => other,
    }
}

/// A YAML document as JSON, with the short forms of intrinsic functions (`!Ref x`,
/// `!Sub '…'`, `!GetAtt a.b`) written as their long forms.
pub fn yaml_to_json(value: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Yaml;
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("a mapping key that is not a string: {other:?}")),
                };
                out.insert(key, yaml_to_json(value)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            let (key, inner) = match (name, inner) {
                ("Ref", inner) => ("Ref".to_owned(), inner),
                ("Condition", inner) => ("Condition".to_owned(), inner),
                ("GetAtt", Value::String(path)) => (
                    "Fn::GetAtt".to_owned(),
                    Value::Array(
                        path.splitn(2, '.')
                            .map(|p| Value::String(p.into()))
                            .collect(),
                    ),
                ),
                (name, inner) => (format!("Fn::{name}"), inner),
            };
            Value::Object(Map::from_iter([(key, inner)]))
        }
    })
}

#[cfg(test)]
#[path = "cloudformation_tests.rs"]
mod tests;
