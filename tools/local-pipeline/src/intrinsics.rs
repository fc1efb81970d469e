//! Resolution of CloudFormation intrinsic functions to local names.
//!
//! `serde_yaml` 0.9 reads the short forms (`!Ref X`, `!GetAtt A.B`, `!Sub`)
//! as tagged values, and the long forms (`{"Ref": X}`, `{"Fn::GetAtt": ...}`)
//! as one-key mappings. Both resolve here to plain values: parameters to
//! their override or default, pseudo parameters to the local account and
//! region, and resources to the names and ARNs that the local stack uses.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::template::{LocalNaming, TemplateError};

/// Nesting depth past which resolution stops, so that a resource name that
/// refers to itself fails instead of recursing forever.
const MAX_DEPTH: usize = 32;

/// Resolves intrinsic functions against one template.
#[derive(Debug)]
pub struct Resolver<'a> {
    naming: &'a LocalNaming,
    parameters: &'a Mapping,
    conditions: &'a Mapping,
    resources: &'a Mapping,
}

impl<'a> Resolver<'a> {
    /// Creates a resolver for a template's `Parameters`, `Conditions` and
    /// `Resources` sections.
    pub fn new(
        naming: &'a LocalNaming,
        parameters: &'a Mapping,
        conditions: &'a Mapping,
        resources: &'a Mapping,
    ) -> Self {
        Self {
            naming,
            parameters,
            conditions,
            resources,
        }
    }

    /// Evaluates the template condition `name`.
    pub fn condition(&self, name: &str, at: &str) -> Result<bool, TemplateError> {
        self.condition_depth(name, at, 0)
    }

    fn condition_depth(&self, name: &str, at: &str, depth: usize) -> Result<bool, TemplateError> {
        let definition = self
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::unresolved(at, format!("no condition named {name}")))?;
        match self.resolve_depth(definition, &format!("Conditions.{name}"), depth + 1)? {
            Value::Bool(value) => Ok(value),
            other => Err(TemplateError::invalid(
                &format!("Conditions.{name}"),
                format!("expected a boolean, found {other:?}"),
            )),
        }
    }

    /// Resolves every intrinsic function inside `value`; `at` names the
    /// template path for error messages.
    pub fn resolve(&self, value: &Value, at: &str) -> Result<Value, TemplateError> {
        self.resolve_depth(value, at, 0)
    }

    /// Resolves `value` and requires a string (numbers and booleans are
    /// written as text, as CloudFormation does for environment variables).
    pub fn resolve_string(&self, value: &Value, at: &str) -> Result<String, TemplateError> {
        scalar_text(&self.resolve(value, at)?)
            .ok_or_else(|| TemplateError::invalid(at, "expected a string"))
    }

    /// Returns the local name of resource `logical_id`: its explicit name
    /// property when the template sets one, or `<stack>-<logical id>`.
    pub fn resource_name(&self, logical_id: &str) -> Result<String, TemplateError> {
        self.resource_name_depth(logical_id, 0)
    }

    fn resolve_depth(&self, value: &Value, at: &str, depth: usize) -> Result<Value, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError::unresolved(
                at,
                "references nest too deeply (a cycle?)",
            ));
        }
        match value {
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let function = tag.trim_start_matches('!');
                self.call(function, &tagged.value, at, depth)
            }
            Value::Mapping(mapping) => {
                if let Some((Value::String(key), argument)) = mapping.iter().next()
                    && mapping.len() == 1
                    && (key == "Ref" || key.starts_with("Fn::") || key == "Condition")
                {
                    return self.call(key.trim_start_matches("Fn::"), argument, at, depth);
                }
                let mut resolved = Mapping::new();
                for (key, item) in mapping {
                    let item_at = format!("{at}.{}", scalar_text(key).unwrap_or_default());
                    let value = self.resolve_depth(item, &item_at, depth + 1)?;
                    // `!Ref AWS::NoValue`, directly or from `!If`, removes the property.
                    if value.is_null() && is_intrinsic(item) {
                        continue;
                    }
                    resolved.insert(key.clone(), value);
                }
                Ok(Value::Mapping(resolved))
            }
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| self.resolve_depth(item, &format!("{at}[{index}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Sequence),
            other => Ok(other.clone()),
        }
    }

    fn call(
        &self,
        function: &str,
        argument: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Value, TemplateError> {
        match function {
            "Ref" => {
                let name = scalar_text(argument)
                    .ok_or_else(|| TemplateError::invalid(at, "Ref needs a name"))?;
                self.reference(&name, at, depth)
            }
            "GetAtt" => {
                let (logical_id, attribute) =
                    get_att_parts(&self.resolve_depth(argument, at, depth + 1)?).ok_or_else(
                        || {
                            TemplateError::invalid(
                                at,
                                "GetAtt needs `Resource.Attribute` or [Resource, Attribute]",
                            )
                        },
                    )?;
                self.attribute(&logical_id, &attribute, at, depth)
                    .map(Value::String)
            }
            "Sub" => self.substitute(argument, at, depth).map(Value::String),
            "Join" => {
                let argument = self.resolve_depth(argument, at, depth + 1)?;
                let parts = argument.as_sequence().filter(|parts| parts.len() == 2);
                let (Some(separator), Some(items)) = (
                    parts.and_then(|p| scalar_text(&p[0])),
                    parts.and_then(|p| p[1].as_sequence()),
                ) else {
                    return Err(TemplateError::invalid(
                        at,
                        "Join needs [separator, [values]]",
                    ));
                };
                let texts = items.iter().map(scalar_text).collect::<Option<Vec<_>>>();
                let texts = texts
                    .ok_or_else(|| TemplateError::invalid(at, "Join values must be strings"))?;
                Ok(Value::String(texts.join(&separator)))
            }
            "Select" => {
                let argument = self.resolve_depth(argument, at, depth + 1)?;
                let parts = argument.as_sequence().filter(|parts| parts.len() == 2);
                let index = parts
                    .and_then(|p| scalar_text(&p[0]))
                    .and_then(|text| text.parse::<usize>().ok());
                let items = parts.and_then(|p| p[1].as_sequence());
                match (index, items) {
                    (Some(index), Some(items)) if index < items.len() => Ok(items[index].clone()),
                    _ => Err(TemplateError::invalid(
                        at,
                        "Select needs [index, [values]] with the index in range",
                    )),
                }
            }
            "If" => {
                let parts = argument.as_sequence().filter(|parts| parts.len() == 3);
                let Some((name, parts)) = parts.and_then(|p| Some((scalar_text(&p[0])?, p))) else {
                    return Err(TemplateError::invalid(
                        at,
                        "If needs [condition, value if true, value if false]",
                    ));
                };
                let chosen = if self.condition_depth(&name, at, depth + 1)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.resolve_depth(chosen, at, depth + 1)
            }
            "Condition" => {
                let name = scalar_text(argument)
                    .ok_or_else(|| TemplateError::invalid(at, "Condition needs a name"))?;
                self.condition_depth(&name, at, depth + 1).map(Value::Bool)
            }
            "Equals" => {
                let argument = self.resolve_depth(argument, at, depth + 1)?;
                match argument.as_sequence().map(Vec::as_slice) {
                    Some([left, right]) => Ok(Value::Bool(
                        scalar_text(left) == scalar_text(right)
                            && left.is_null() == right.is_null(),
                    )),
                    _ => Err(TemplateError::invalid(at, "Equals needs [value, value]")),
                }
            }
            "Not" | "And" | "Or" => {
                let argument = self.resolve_depth(argument, at, depth + 1)?;
                let flags = argument
                    .as_sequence()
                    .map(|items| items.iter().map(Value::as_bool).collect::<Option<Vec<_>>>());
                match (function, flags) {
                    ("Not", Some(Some(flags))) if flags.len() == 1 => Ok(Value::Bool(!flags[0])),
                    ("And", Some(Some(flags))) => Ok(Value::Bool(flags.iter().all(|flag| *flag))),
                    ("Or", Some(Some(flags))) => Ok(Value::Bool(flags.iter().any(|flag| *flag))),
                    _ => Err(TemplateError::invalid(
                        at,
                        format!("{function} needs a list of conditions"),
                    )),
                }
            }
            other => Err(TemplateError::unresolved(
                at,
                format!(
                    "the local pipeline does not evaluate {other}; it supports Ref, GetAtt, Sub, Join, Select, If, Equals, Not, And, Or and Condition"
                ),
            )),
        }
    }

    fn reference(&self, name: &str, at: &str, depth: usize) -> Result<Value, TemplateError> {
        let naming = self.naming;
        let pseudo = match name {
            "AWS::Region" => Some(naming.region.clone()),
            "AWS::AccountId" => Some(naming.account_id.clone()),
            "AWS::StackName" => Some(naming.stack_name.clone()),
            "AWS::StackId" => Some(format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                naming.region, naming.account_id, naming.stack_name
            )),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::NoValue" => return Ok(Value::Null),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Value::String(value));
        }

        if let Some(value) = naming.parameter_overrides.get(name) {
            return Ok(Value::String(value.clone()));
        }
        if let Some(parameter) = self.parameters.get(name) {
            let default = parameter.get("Default").ok_or_else(|| {
                TemplateError::unresolved(
                    at,
                    format!("parameter {name} has no default; pass --parameter {name}=VALUE"),
                )
            })?;
            return self.resolve_depth(default, &format!("Parameters.{name}.Default"), depth + 1);
        }

        if self.resources.contains_key(name) {
            return self.attribute(name, "Ref", at, depth).map(Value::String);
        }
        Err(TemplateError::unresolved(
            at,
            format!("Ref to {name}, which is neither a parameter nor a resource"),
        ))
    }

    /// Returns `Ref` (when `attribute` is "Ref") or a `GetAtt` attribute of a resource.
    fn attribute(
        &self,
        logical_id: &str,
        attribute: &str,
        at: &str,
        depth: usize,
    ) -> Result<String, TemplateError> {
        let resource = self.resources.get(logical_id).ok_or_else(|| {
            TemplateError::unresolved(at, format!("no resource named {logical_id}"))
        })?;
        let kind = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = self.resource_name_depth(logical_id, depth + 1)?;
        let LocalNaming {
            region,
            account_id,
            sqs_endpoint,
            ..
        } = self.naming;

        let value = match (kind, attribute) {
            ("AWS::S3::Bucket", "Ref") => name,
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::SQS::Queue", "Ref" | "QueueUrl") => {
                queue_url(sqs_endpoint, region, account_id, &name)
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{region}:{account_id}:{name}"),
            ("AWS::SQS::Queue", "QueueName") => name,
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Ref") => name,
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
            }
            ("AWS::RDS::DBCluster", "Ref") => name,
            ("AWS::RDS::DBCluster", "DBClusterArn") => {
                format!("arn:aws:rds:{region}:{account_id}:cluster:{name}")
            }
            ("AWS::RDS::DBCluster", "Endpoint.Address" | "ReadEndpoint.Address") => {
                "127.0.0.1".to_owned()
            }
            // The secret that RDS creates with ManageMasterUserPassword.
            ("AWS::RDS::DBCluster", "MasterUserSecret.SecretArn") => {
                format!("arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-master")
            }
            ("AWS::SecretsManager::Secret", "Ref" | "Id") => {
                format!("arn:aws:secretsmanager:{region}:{account_id}:secret:{name}")
            }
            ("AWS::SNS::Topic", "Ref" | "TopicArn") => {
                format!("arn:aws:sns:{region}:{account_id}:{name}")
            }
            (_, "Ref") => name,
            (_, "Arn") => format!("arn:aws:local:{region}:{account_id}:{name}"),
            _ => {
                return Err(TemplateError::unresolved(
                    at,
                    format!("GetAtt {logical_id}.{attribute} of a {kind} has no local value"),
                ));
            }
        };
        Ok(value)
    }

    fn resource_name_depth(&self, logical_id: &str, depth: usize) -> Result<String, TemplateError> {
        let resource = self.resources.get(logical_id);
        let kind = resource
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name_property = match kind {
            "AWS::S3::Bucket" => "BucketName",
            "AWS::SQS::Queue" => "QueueName",
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
            "AWS::RDS::DBCluster" => "DBClusterIdentifier",
            "AWS::SNS::Topic" => "TopicName",
            _ => "Name",
        };
        let at = format!("Resources.{logical_id}.Properties.{name_property}");
        if let Some(explicit) = resource
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(name_property))
        {
            let resolved = self.resolve_depth(explicit, &at, depth + 1)?;
            return scalar_text(&resolved)
                .ok_or_else(|| TemplateError::invalid(&at, "expected a string"));
        }

        let generated = format!("{}-{logical_id}", self.naming.stack_name);
        let is_fifo = resource
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("FifoQueue"))
            .is_some_and(|fifo| scalar_text(fifo).as_deref() == Some("true"));
        Ok(match kind {
            // S3 bucket names are lower case.
            "AWS::S3::Bucket" => generated.to_lowercase(),
            "AWS::SQS::Queue" if is_fifo => format!("{generated}.fifo"),
            _ => generated,
        })
    }

    fn substitute(
        &self,
        argument: &Value,
        at: &str,
        depth: usize,
    ) -> Result<String, TemplateError> {
        let (template, variables) = match argument {
            Value::Sequence(parts) if parts.len() == 2 => {
                let template = scalar_text(&parts[0])
                    .ok_or_else(|| TemplateError::invalid(at, "Sub needs a string"))?;
                let variables = parts[1].as_mapping().cloned().unwrap_or_default();
                (template, variables)
            }
            other => (
                scalar_text(other)
                    .ok_or_else(|| TemplateError::invalid(at, "Sub needs a string"))?,
                Mapping::new(),
            ),
        };

        let mut output = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("${") {
            output.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::invalid(at, "Sub has an unclosed ${"))?;
            let name = &after[..end];
            rest = &after[end + 1..];

            // `${!Name}` is the literal text `${Name}`.
            if let Some(literal) = name.strip_prefix('!') {
                output.push_str("${");
                output.push_str(literal);
                output.push('}');
                continue;
            }
            let value = if let Some(variable) = variables.get(name) {
                self.resolve_depth(variable, at, depth + 1).and_then(|v| {
                    scalar_text(&v).ok_or_else(|| {
                        TemplateError::invalid(at, format!("Sub variable {name} is not a string"))
                    })
                })?
            } else if let Some((logical_id, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                self.attribute(logical_id, attribute, at, depth + 1)?
            } else {
                let value = self.reference(name, at, depth + 1)?;
                scalar_text(&value).ok_or_else(|| {
                    TemplateError::invalid(at, format!("${{{name}}} is not a string"))
                })?
            };
            output.push_str(&value);
        }
        output.push_str(rest);
        Ok(output)
    }
}

/// Returns the URL that LocalStack gives a queue when it runs with
/// `SQS_ENDPOINT_STRATEGY=path`: `<endpoint>/queue/<region>/<account>/<name>`.
pub fn queue_url(endpoint: &str, region: &str, account_id: &str, name: &str) -> String {
    format!(
        "{}/queue/{region}/{account_id}/{name}",
        endpoint.trim_end_matches('/')
    )
}

/// Returns the text of a scalar: strings as they are, numbers and booleans
/// written out.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn get_att_parts(argument: &Value) -> Option<(String, String)> {
    match argument {
        Value::String(text) => text
            .split_once('.')
            .map(|(id, attribute)| (id.to_owned(), attribute.to_owned())),
        Value::Sequence(parts) if parts.len() == 2 => {
            Some((scalar_text(&parts[0])?, scalar_text(&parts[1])?))
        }
        _ => None,
    }
}

/// Returns true when `value` is an intrinsic function in either form.
fn is_intrinsic(value: &Value) -> bool {
    match value {
        Value::Tagged(_) => true,
        Value::Mapping(mapping) if mapping.len() == 1 => mapping
            .keys()
            .next()
            .and_then(Value::as_str)
            .is_some_and(|key| key == "Ref" || key.starts_with("Fn::") || key == "Condition"),
        _ => false,
    }
}

/// Converts a resolved mapping of scalars into text pairs, as Lambda stores
/// environment variables.
pub fn string_map(value: &Value, at: &str) -> Result<BTreeMap<String, String>, TemplateError> {
    let Some(mapping) = value.as_mapping() else {
        return Err(TemplateError::invalid(at, "expected a mapping"));
    };
    let mut map = BTreeMap::new();
    for (key, item) in mapping {
        let key =
            scalar_text(key).ok_or_else(|| TemplateError::invalid(at, "keys must be strings"))?;
        let text = scalar_text(item)
            .ok_or_else(|| TemplateError::invalid(&format!("{at}.{key}"), "expected a string"))?;
        map.insert(key, text);
    }
    Ok(map)
}
