//! The pipeline's wiring, read from the SAM template.
//!
//! `template.yaml` is the one source of truth for what triggers what: which
//! buckets and queues exist, each function's environment, the EventBridge
//! rules that start the S3 functions, and the SQS event source mapping of
//! transform-to-rds. This module extracts that wiring with every intrinsic
//! function resolved to the names the local stack uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::intrinsics::{self, Resolver, scalar_text};

/// A template that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// Template path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("template {path} is not valid YAML: {source}")]
    Parse {
        /// Template path.
        path: PathBuf,
        /// The YAML error, with its line and column.
        source: serde_yaml::Error,
    },
    /// A value has the wrong shape.
    #[error("invalid template value at {at}: {reason}")]
    Invalid {
        /// Template path of the value, such as `Resources.RecordsQueue.Properties.VisibilityTimeout`.
        at: String,
        /// The problem.
        reason: String,
    },
    /// An intrinsic function that has no local value.
    #[error("cannot resolve {at}: {reason}")]
    Unresolved {
        /// Template path of the value.
        at: String,
        /// The missing value or reference.
        reason: String,
    },
}

impl TemplateError {
    pub(crate) fn invalid(at: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unresolved(at: &str, reason: impl Into<String>) -> Self {
        Self::Unresolved {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Mapping of template values onto the local stack.
#[derive(Debug, Clone)]
pub struct LocalNaming {
    /// Stack name that `AWS::StackName` resolves to; it also prefixes the
    /// names of resources that the template does not name.
    pub stack_name: String,
    /// Region that `AWS::Region` resolves to.
    pub region: String,
    /// Account id that `AWS::AccountId` resolves to; LocalStack's default.
    pub account_id: String,
    /// LocalStack's endpoint, which queue URLs start with.
    pub sqs_endpoint: String,
    /// Parameter values that replace the template's defaults.
    pub parameter_overrides: BTreeMap<String, String>,
}

impl Default for LocalNaming {
    fn default() -> Self {
        Self {
            stack_name: "pipeline-local".to_owned(),
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            sqs_endpoint: "http://127.0.0.1:4566".to_owned(),
            parameter_overrides: BTreeMap::new(),
        }
    }
}

/// Everything the local pipeline creates and triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct Wiring {
    /// Buckets, in template order.
    pub buckets: Vec<Bucket>,
    /// Queues, dead-letter queues before the queues that use them.
    pub queues: Vec<Queue>,
    /// Functions, in template order.
    pub functions: Vec<Function>,
}

/// An `AWS::S3::Bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Logical id in the template.
    pub logical_id: String,
    /// Local bucket name.
    pub name: String,
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Logical id in the template.
    pub logical_id: String,
    /// Local queue name.
    pub name: String,
    /// Queue URL on LocalStack.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// Visibility timeout in seconds, when the template sets one (SQS's
    /// default is 30).
    pub visibility_timeout_secs: Option<u32>,
    /// Dead-letter target of messages received too often.
    pub redrive_policy: Option<RedrivePolicy>,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// ARN of the dead-letter queue.
    pub dead_letter_target_arn: String,
    /// Receives after which SQS moves a message to the dead-letter queue.
    pub max_receive_count: u32,
}

/// An `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Logical id in the template.
    pub logical_id: String,
    /// Binary name, which `cargo lambda watch` serves the function under.
    pub binary: String,
    /// Environment variables, with the SAM `Globals` merged in.
    pub environment: BTreeMap<String, String>,
    /// EventBridge rules that target the function.
    pub rules: Vec<EventRule>,
    /// SQS event source mappings of the function.
    pub sqs_sources: Vec<SqsSource>,
    /// ARN of the queue that receives asynchronous events the function
    /// failed on (`DeadLetterQueue.TargetArn`), when set.
    pub dead_letter_queue_arn: Option<String>,
    /// Retries of a failed asynchronous invocation
    /// (`EventInvokeConfig.MaximumRetryAttempts`); Lambda's default is 2.
    pub maximum_retry_attempts: u32,
}

/// An `EventBridgeRule` event of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRule {
    /// Name of the event under the function's `Events`.
    pub event_id: String,
    /// The rule's event pattern, resolved to plain JSON.
    pub pattern: serde_json::Value,
}

/// An `SQS` event of a function: Lambda's event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    /// Name of the event under the function's `Events`.
    pub event_id: String,
    /// ARN of the queue that is polled.
    pub queue_arn: String,
    /// Maximum messages per invocation; Lambda's default for SQS is 10.
    pub batch_size: u32,
    /// Seconds to gather messages before invoking; 0 invokes as soon as a
    /// receive returns messages.
    pub maximum_batching_window_secs: u32,
    /// True when the function returns `batchItemFailures` (`FunctionResponseTypes:
    /// [ReportBatchItemFailures]`).
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`, when set.
    pub maximum_concurrency: Option<u32>,
}

impl Wiring {
    /// Reads and resolves the template at `path`.
    pub fn load(path: &Path, naming: &LocalNaming) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let root: Value = serde_yaml::from_str(&text).map_err(|source| TemplateError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Self::from_value(&root, naming)
    }

    /// Resolves a parsed template.
    pub fn from_value(root: &Value, naming: &LocalNaming) -> Result<Self, TemplateError> {
        let empty = Mapping::new();
        let parameters = root
            .get("Parameters")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let resources = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::invalid("Resources", "missing or not a mapping"))?;
        let conditions = root
            .get("Conditions")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let resolver = Resolver::new(naming, parameters, conditions, resources);
        let globals = root
            .get("Globals")
            .and_then(|globals| globals.get("Function"));

        let mut wiring = Wiring {
            buckets: Vec::new(),
            queues: Vec::new(),
            functions: Vec::new(),
        };
        for (id, resource) in resources {
            let logical_id = scalar_text(id)
                .ok_or_else(|| TemplateError::invalid("Resources", "non-string logical id"))?;
            if let Some(condition) = resource.get("Condition").and_then(Value::as_str)
                && !resolver.condition(condition, &format!("Resources.{logical_id}.Condition"))?
            {
                continue;
            }
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::S3::Bucket") => {
                    wiring.buckets.push(Bucket {
                        name: resolver.resource_name(&logical_id)?,
                        logical_id,
                    });
                }
                Some("AWS::SQS::Queue") => {
                    wiring.queues.push(queue(&resolver, &logical_id, resource)?)
                }
                Some("AWS::Serverless::Function") => {
                    wiring
                        .functions
                        .push(function(&resolver, &logical_id, resource, globals)?);
                }
                _ => {}
            }
        }
        wiring.queues = dead_letter_queues_first(wiring.queues);
        Ok(wiring)
    }

    /// Returns the function whose binary is `binary`.
    pub fn function(&self, binary: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|function| function.binary == binary)
    }

    /// Returns the queue whose ARN is `arn`.
    pub fn queue_by_arn(&self, arn: &str) -> Option<&Queue> {
        self.queues.iter().find(|queue| queue.arn == arn)
    }

    /// Returns the queue with logical id `logical_id`.
    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues
            .iter()
            .find(|queue| queue.logical_id == logical_id)
    }

    /// Returns the bucket with logical id `logical_id`.
    pub fn bucket(&self, logical_id: &str) -> Option<&Bucket> {
        self.buckets
            .iter()
            .find(|bucket| bucket.logical_id == logical_id)
    }
}

fn queue(
    resolver: &Resolver<'_>,
    logical_id: &str,
    resource: &Value,
) -> Result<Queue, TemplateError> {
    let at = format!("Resources.{logical_id}.Properties");
    let properties = resolver.resolve(resource.get("Properties").unwrap_or(&Value::Null), &at)?;

    let visibility_timeout_secs = properties
        .get("VisibilityTimeout")
        .map(|value| parse_number(value, &format!("{at}.VisibilityTimeout")))
        .transpose()?;

    // CloudFormation takes the redrive policy as an object or as JSON text.
    let redrive_at = format!("{at}.RedrivePolicy");
    let redrive_policy = match properties.get("RedrivePolicy") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let value: Value = serde_yaml::from_str(text)
                .map_err(|error| TemplateError::invalid(&redrive_at, error.to_string()))?;
            Some(redrive(&value, &redrive_at)?)
        }
        Some(value) => Some(redrive(value, &redrive_at)?),
    };

    let name = resolver.resource_name(logical_id)?;
    Ok(Queue {
        logical_id: logical_id.to_owned(),
        url: resolver.resolve_string(&tagged("Ref", logical_id), &at)?,
        arn: resolver.resolve_string(&tagged("GetAtt", &format!("{logical_id}.Arn")), &at)?,
        name,
        visibility_timeout_secs,
        redrive_policy,
    })
}

fn redrive(value: &Value, at: &str) -> Result<RedrivePolicy, TemplateError> {
    let arn = value
        .get("deadLetterTargetArn")
        .and_then(scalar_text)
        .ok_or_else(|| TemplateError::invalid(at, "missing deadLetterTargetArn"))?;
    let count = value
        .get("maxReceiveCount")
        .ok_or_else(|| TemplateError::invalid(at, "missing maxReceiveCount"))?;
    Ok(RedrivePolicy {
        dead_letter_target_arn: arn,
        max_receive_count: parse_number(count, &format!("{at}.maxReceiveCount"))?,
    })
}

fn function(
    resolver: &Resolver<'_>,
    logical_id: &str,
    resource: &Value,
    globals: Option<&Value>,
) -> Result<Function, TemplateError> {
    let at = format!("Resources.{logical_id}");
    let properties = resource.get("Properties").unwrap_or(&Value::Null);

    let mut environment = BTreeMap::new();
    for (source, source_at) in [
        (globals, "Globals.Function".to_owned()),
        (Some(properties), format!("{at}.Properties")),
    ] {
        let variables = source
            .and_then(|s| s.get("Environment"))
            .and_then(|e| e.get("Variables"));
        if let Some(variables) = variables {
            let at = format!("{source_at}.Environment.Variables");
            environment.extend(intrinsics::string_map(
                &resolver.resolve(variables, &at)?,
                &at,
            )?);
        }
    }

    let mut rules = Vec::new();
    let mut sqs_sources = Vec::new();
    if let Some(events) = properties.get("Events").and_then(Value::as_mapping) {
        for (id, event) in events {
            let event_id = scalar_text(id).unwrap_or_default();
            let event_at = format!("{at}.Properties.Events.{event_id}");
            let event_properties =
                resolver.resolve(event.get("Properties").unwrap_or(&Value::Null), &event_at)?;
            match event.get("Type").and_then(Value::as_str) {
                Some("EventBridgeRule" | "CloudWatchEvent") => {
                    let pattern = event_properties.get("Pattern").ok_or_else(|| {
                        TemplateError::invalid(&event_at, "EventBridgeRule without Pattern")
                    })?;
                    let pattern = serde_json::to_value(pattern)
                        .map_err(|error| TemplateError::invalid(&event_at, error.to_string()))?;
                    crate::pattern::validate(&pattern).map_err(|reason| {
                        TemplateError::invalid(&format!("{event_at}.Properties.Pattern"), reason)
                    })?;
                    rules.push(EventRule { event_id, pattern });
                }
                Some("SQS") => {
                    sqs_sources.push(sqs_source(event_id, &event_properties, &event_at)?)
                }
                _ => {}
            }
        }
    }

    let dead_letter_queue_arn = properties
        .get("DeadLetterQueue")
        .and_then(|queue| queue.get("TargetArn"))
        .map(|arn| {
            resolver.resolve_string(arn, &format!("{at}.Properties.DeadLetterQueue.TargetArn"))
        })
        .transpose()?;
    let retries_at = format!("{at}.Properties.EventInvokeConfig.MaximumRetryAttempts");
    let maximum_retry_attempts = properties
        .get("EventInvokeConfig")
        .and_then(|config| config.get("MaximumRetryAttempts"))
        .map(|value| {
            resolver
                .resolve(value, &retries_at)
                .and_then(|value| parse_number(&value, &retries_at))
        })
        .transpose()?
        .unwrap_or(2);

    Ok(Function {
        logical_id: logical_id.to_owned(),
        binary: binary_name(resolver, logical_id, resource)?,
        environment,
        rules,
        sqs_sources,
        dead_letter_queue_arn,
        maximum_retry_attempts,
    })
}

fn sqs_source(event_id: String, properties: &Value, at: &str) -> Result<SqsSource, TemplateError> {
    let queue_arn = properties
        .get("Queue")
        .and_then(scalar_text)
        .ok_or_else(|| TemplateError::invalid(at, "SQS event without Queue"))?;
    let number = |name: &str, default: u32| -> Result<u32, TemplateError> {
        properties
            .get(name)
            .map(|value| parse_number(value, &format!("{at}.Properties.{name}")))
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    // Lambda's defaults for SQS: BatchSize 10, no batching window.
    let batch_size = number("BatchSize", 10)?;
    let maximum_batching_window_secs = number("MaximumBatchingWindowInSeconds", 0)?;
    // Lambda's limits for a standard queue: BatchSize 1 to 10,000, window 0 to 300 s.
    if !(1..=10_000).contains(&batch_size) {
        return Err(TemplateError::invalid(
            at,
            format!("BatchSize {batch_size} is outside 1 to 10000"),
        ));
    }
    if maximum_batching_window_secs > 300 {
        return Err(TemplateError::invalid(
            at,
            format!("MaximumBatchingWindowInSeconds {maximum_batching_window_secs} is above 300"),
        ));
    }
    let report_batch_item_failures = properties
        .get("FunctionResponseTypes")
        .and_then(Value::as_sequence)
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
        });
    let maximum_concurrency = properties
        .get("ScalingConfig")
        .and_then(|scaling| scaling.get("MaximumConcurrency"))
        .map(|value| {
            parse_number(
                value,
                &format!("{at}.Properties.ScalingConfig.MaximumConcurrency"),
            )
        })
        .transpose()?;
    Ok(SqsSource {
        event_id,
        queue_arn,
        batch_size,
        maximum_batching_window_secs,
        report_batch_item_failures,
        maximum_concurrency,
    })
}

/// Returns the binary that `cargo lambda` builds for a function:
/// `Metadata.BuildProperties.Binary` when set, else the last folder of `CodeUri`.
fn binary_name(
    resolver: &Resolver<'_>,
    logical_id: &str,
    resource: &Value,
) -> Result<String, TemplateError> {
    let at = format!("Resources.{logical_id}");
    if let Some(binary) = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
    {
        return resolver.resolve_string(binary, &format!("{at}.Metadata.BuildProperties.Binary"));
    }
    let code_uri = resource.get("Properties").and_then(|p| p.get("CodeUri"));
    let code_uri = code_uri
        .map(|uri| resolver.resolve_string(uri, &format!("{at}.Properties.CodeUri")))
        .transpose()?;
    code_uri
        .as_deref()
        .map(|uri| uri.trim_end_matches('/'))
        .and_then(|uri| uri.rsplit('/').next())
        .filter(|name| !name.is_empty() && *name != ".")
        .map(str::to_owned)
        .ok_or_else(|| TemplateError::invalid(&at, "cannot tell the binary name: set Metadata.BuildProperties.Binary or a CodeUri folder"))
}

fn parse_number(value: &Value, at: &str) -> Result<u32, TemplateError> {
    scalar_text(value)
        .and_then(|text| text.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            TemplateError::invalid(at, format!("expected a whole number, found {value:?}"))
        })
}

fn tagged(function: &str, argument: &str) -> Value {
    Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
        tag: serde_yaml::value::Tag::new(function),
        value: Value::String(argument.to_owned()),
    }))
}

/// Orders queues so that every dead-letter queue comes before the queues
/// that name it, because a redrive policy needs its target to exist.
fn dead_letter_queues_first(queues: Vec<Queue>) -> Vec<Queue> {
    let targets: Vec<String> = queues
        .iter()
        .filter_map(|q| q.redrive_policy.as_ref())
        .map(|p| p.dead_letter_target_arn.clone())
        .collect();
    let (dead_letter, others): (Vec<Queue>, Vec<Queue>) =
        queues.into_iter().partition(|q| targets.contains(&q.arn));
    dead_letter.into_iter().chain(others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  WatchedPrefix: {Type: String, Default: incoming/}
  Receives: {Type: Number, Default: 4}
  ClusterArn: {Type: String}
Globals:
  Function:
    Environment:
      Variables: {RUST_LOG: info, SHARED: global}
Resources:
  InputBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-input-${AWS::AccountId}"
  Dlq:
    Type: AWS::SQS::Queue
  Records:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: !Ref Receives
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/s3-to-sqs/
      Environment:
        Variables:
          QUEUE_URL: !Ref Records
          BUCKET: {Ref: InputBucket}
          SHARED: own
          JOINED: !Join ["/", [a, !Ref WatchedPrefix]]
          CLUSTER: !Ref ClusterArn
          LITERAL: !Sub "${!NotReplaced}-${Records.QueueName}"
      Events:
        Created:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail:
                bucket: {name: [!Ref InputBucket]}
                object: {key: [{prefix: !Ref WatchedPrefix}]}
  Writer:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: transform-to-rds}
    Properties:
      CodeUri: .
      Events:
        Batch:
          Type: SQS
          Properties:
            Queue: !GetAtt Records.Arn
            BatchSize: 25
            MaximumBatchingWindowInSeconds: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 2}
"#;

    fn naming() -> LocalNaming {
        let mut naming = LocalNaming::default();
        naming.parameter_overrides.insert(
            "ClusterArn".into(),
            "arn:aws:rds:us-east-1:000000000000:cluster:local".into(),
        );
        naming
    }

    fn wiring() -> Wiring {
        Wiring::from_value(&serde_yaml::from_str(TEMPLATE).unwrap(), &naming()).unwrap()
    }

    #[test]
    fn bucket_name_resolves_sub() {
        assert_eq!(
            wiring().buckets[0].name,
            "pipeline-local-input-000000000000"
        );
    }

    #[test]
    fn queues_resolve_with_redrive_policy() {
        let wiring = wiring();
        assert_eq!(
            wiring.queues[0].logical_id, "Dlq",
            "dead-letter queue comes first"
        );
        let records = wiring.queue("Records").unwrap();
        assert_eq!(
            records.url,
            "http://127.0.0.1:4566/queue/us-east-1/000000000000/pipeline-local-Records"
        );
        assert_eq!(records.visibility_timeout_secs, Some(60));
        let policy = records.redrive_policy.as_ref().unwrap();
        assert_eq!(
            policy.dead_letter_target_arn,
            "arn:aws:sqs:us-east-1:000000000000:pipeline-local-Dlq"
        );
        assert_eq!(policy.max_receive_count, 4);
    }

    #[test]
    fn environment_merges_globals_and_resolves() {
        let wiring = wiring();
        let reader = wiring.function("s3-to-sqs").unwrap();
        let env = &reader.environment;
        assert_eq!(env["RUST_LOG"], "info");
        assert_eq!(env["SHARED"], "own");
        assert_eq!(env["BUCKET"], "pipeline-local-input-000000000000");
        assert_eq!(
            env["QUEUE_URL"],
            "http://127.0.0.1:4566/queue/us-east-1/000000000000/pipeline-local-Records"
        );
        assert_eq!(env["JOINED"], "a/incoming/");
        assert_eq!(
            env["CLUSTER"],
            "arn:aws:rds:us-east-1:000000000000:cluster:local"
        );
        assert_eq!(env["LITERAL"], "${NotReplaced}-pipeline-local-Records");
    }

    #[test]
    fn rule_pattern_resolves_to_json() {
        let wiring = wiring();
        let rule = &wiring.function("s3-to-sqs").unwrap().rules[0];
        assert_eq!(
            rule.pattern["detail"]["bucket"]["name"][0],
            "pipeline-local-input-000000000000"
        );
        assert_eq!(
            rule.pattern["detail"]["object"]["key"][0]["prefix"],
            "incoming/"
        );
    }

    #[test]
    fn sqs_source_reads_mapping_settings() {
        let wiring = wiring();
        let writer = wiring.function("transform-to-rds").unwrap();
        let source = &writer.sqs_sources[0];
        assert_eq!(
            source.queue_arn,
            "arn:aws:sqs:us-east-1:000000000000:pipeline-local-Records"
        );
        assert_eq!(source.batch_size, 25);
        assert_eq!(source.maximum_batching_window_secs, 3);
        assert!(source.report_batch_item_failures);
        assert_eq!(source.maximum_concurrency, Some(2));
    }

    #[test]
    fn parameter_without_default_names_itself() {
        let error = Wiring::from_value(
            &serde_yaml::from_str(TEMPLATE).unwrap(),
            &LocalNaming::default(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("parameter ClusterArn has no default"),
            "{error}"
        );
    }

    #[test]
    fn unsupported_function_is_named() {
        let template = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: !FindInMap [M, a, b]\n";
        let error =
            Wiring::from_value(&serde_yaml::from_str(template).unwrap(), &naming()).unwrap_err();
        assert!(
            error.to_string().contains("does not evaluate FindInMap"),
            "{error}"
        );
    }

    #[test]
    fn conditions_choose_values_and_resources() {
        let template = r#"
Parameters:
  Existing: {Type: String, Default: ""}
Conditions:
  Create: !Equals [!Ref Existing, ""]
  UseExisting: !Not [!Condition Create]
  Keep: !And [!Condition Create, !Not [!Equals [!Ref Existing, "x"]]]
Resources:
  Skipped:
    Type: AWS::SQS::Queue
    Condition: UseExisting
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !If [Keep, 7, 8]
      DelaySeconds: !If [Create, !Ref AWS::NoValue, 3]
"#;
        let wiring =
            Wiring::from_value(&serde_yaml::from_str(template).unwrap(), &naming()).unwrap();
        assert!(
            wiring.queue("Skipped").is_none(),
            "a resource whose condition is false is left out"
        );
        assert_eq!(wiring.queue("Q").unwrap().visibility_timeout_secs, Some(7));
    }

    #[test]
    fn redrive_policy_as_json_text() {
        let template = "Resources:\n  D:\n    Type: AWS::SQS::Queue\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: '{\"deadLetterTargetArn\": \"arn:aws:sqs:us-east-1:000000000000:d\", \"maxReceiveCount\": 3}'\n";
        let wiring =
            Wiring::from_value(&serde_yaml::from_str(template).unwrap(), &naming()).unwrap();
        assert_eq!(
            wiring
                .queue("Q")
                .unwrap()
                .redrive_policy
                .as_ref()
                .unwrap()
                .max_receive_count,
            3
        );
    }
}
