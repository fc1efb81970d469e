//! `local-pipeline setup`: creates in LocalStack what the template declares,
//! plus a queue that replaces EventBridge locally.
//!
//! In AWS the input bucket sends "Object Created" events to EventBridge, whose
//! rules invoke the S3 functions. LocalStack's S3 can notify an SQS queue
//! instead, so setup points the bucket's notifications at a stand-in queue
//! and `local-pipeline run` applies the rules to what arrives there.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::Error;
use crate::intrinsics::queue_url;
use crate::template::{LocalNaming, Wiring};

/// Visibility timeout of the stand-in queue in seconds. While a notification's
/// invocations run, `run` extends it every third of this time, so a
/// notification is never delivered twice at once, yet one held by a killed
/// `run` returns within this time.
pub const EVENTS_VISIBILITY_TIMEOUT_SECS: u32 = 30;

/// Names of the queues that replace EventBridge locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQueues {
    /// Queue that receives the bucket's notifications.
    pub name: String,
    /// Its URL on LocalStack.
    pub url: String,
    /// Queue that receives notifications whose targets kept failing, when
    /// the targeted functions name no dead-letter queue of their own.
    pub dead_letter_name: String,
    /// Its URL on LocalStack.
    pub dead_letter_url: String,
}

impl EventQueues {
    /// Returns the stand-in queues for a stack.
    pub fn new(naming: &LocalNaming) -> Self {
        let name = format!("{}-object-created-events", naming.stack_name);
        let dead_letter_name = format!("{name}-failed");
        let url_of = |queue: &str| {
            queue_url(
                &naming.sqs_endpoint,
                &naming.region,
                &naming.account_id,
                queue,
            )
        };
        Self {
            url: url_of(&name),
            dead_letter_url: url_of(&dead_letter_name),
            name,
            dead_letter_name,
        }
    }
}

/// Resources that [`setup`] created or updated.
#[derive(Debug, Clone, Default)]
pub struct SetupSummary {
    /// Bucket names.
    pub buckets: Vec<String>,
    /// Queue URLs.
    pub queues: Vec<String>,
    /// Per notified bucket, the key prefixes of its notification filters
    /// (empty for the whole bucket).
    pub notifications: BTreeMap<String, Vec<String>>,
}

/// Creates the template's buckets and queues, the stand-in queues, and the
/// notifications from each bucket that a rule watches. Running it again
/// updates queue attributes and notifications in place.
pub async fn setup(
    wiring: &Wiring,
    naming: &LocalNaming,
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
) -> Result<SetupSummary, Error> {
    let mut summary = SetupSummary::default();

    for bucket in &wiring.buckets {
        create_bucket(s3, &bucket.name).await?;
        tracing::info!(bucket = %bucket.name, logical_id = %bucket.logical_id, "bucket ready");
        summary.buckets.push(bucket.name.clone());
    }

    for queue in &wiring.queues {
        let mut attributes = BTreeMap::new();
        if let Some(secs) = queue.visibility_timeout_secs {
            attributes.insert(QueueAttributeName::VisibilityTimeout, secs.to_string());
        }
        if let Some(policy) = &queue.redrive_policy {
            let policy = serde_json::json!({
                "deadLetterTargetArn": policy.dead_letter_target_arn,
                "maxReceiveCount": policy.max_receive_count,
            });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = ensure_queue(sqs, &queue.name, attributes).await?;
        if url != queue.url {
            // Functions get the URL from the template through their
            // environment, so a different one would send records nowhere.
            return Err(Error::Wiring(format!(
                "LocalStack named queue {} {url}, but the template resolves it to {}; start LocalStack with SQS_ENDPOINT_STRATEGY=path (scripts/local-stack.sh does)",
                queue.name, queue.url
            )));
        }
        tracing::info!(queue = %queue.name, url = %url, logical_id = %queue.logical_id, "queue ready");
        summary.queues.push(url);
    }

    // EventBridge invokes the functions asynchronously, so a failed event is
    // tried 1 + MaximumRetryAttempts times and then goes to the function's
    // dead-letter queue. The stand-in queue's redrive policy does the same.
    let events = EventQueues::new(naming);
    let (dead_letter_arn, max_receive_count) = events_dead_letter(wiring);
    let dead_letter_arn = match dead_letter_arn {
        Some(arn) => arn,
        None => {
            let url = ensure_queue(sqs, &events.dead_letter_name, BTreeMap::new()).await?;
            summary.queues.push(url.clone());
            queue_arn(sqs, &url).await?
        }
    };
    let policy = serde_json::json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count});
    let attributes = BTreeMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            EVENTS_VISIBILITY_TIMEOUT_SECS.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, policy.to_string()),
    ]);
    let events_url = ensure_queue(sqs, &events.name, attributes).await?;
    let events_arn = queue_arn(sqs, &events_url).await?;
    summary.queues.push(events_url.clone());

    for bucket in &wiring.buckets {
        let Some(prefixes) = notification_prefixes(wiring, &bucket.name) else {
            continue;
        };
        put_notifications(s3, &bucket.name, &events_arn, &prefixes).await?;
        tracing::info!(bucket = %bucket.name, prefixes = ?prefixes, queue = %events_url, "object-created notifications ready");
        summary.notifications.insert(bucket.name.clone(), prefixes);
    }
    Ok(summary)
}

/// Returns the dead-letter queue ARN of the functions that rules target,
/// when they name one, and the receives before a notification moves there:
/// one attempt plus the largest `MaximumRetryAttempts` of those functions.
pub fn events_dead_letter(wiring: &Wiring) -> (Option<String>, u32) {
    let targets = wiring
        .functions
        .iter()
        .filter(|function| !function.rules.is_empty());
    let dead_letter = targets
        .clone()
        .find_map(|function| function.dead_letter_queue_arn.clone());
    let retries = targets
        .map(|function| function.maximum_retry_attempts)
        .max()
        .unwrap_or(2);
    (dead_letter, retries + 1)
}

/// Returns the key prefixes to notify for `bucket`: `None` when no rule
/// watches it, an empty list when a rule watches every key.
///
/// The notification filter only narrows what reaches the stand-in queue;
/// `run` matches each event against the full patterns. S3 rejects two
/// configurations whose prefixes overlap, so a prefix that extends another
/// is dropped.
pub fn notification_prefixes(wiring: &Wiring, bucket: &str) -> Option<Vec<String>> {
    let mut prefixes: Vec<String> = Vec::new();
    let mut watched = false;
    let mut whole_bucket = false;

    for rule in wiring.functions.iter().flat_map(|function| &function.rules) {
        let pattern = &rule.pattern;
        let from_s3 = pattern
            .get("source")
            .and_then(Value::as_array)
            .is_none_or(|sources| sources.contains(&Value::from("aws.s3")));
        let names = pattern
            .pointer("/detail/bucket/name")
            .and_then(Value::as_array);
        let for_bucket = names.is_none_or(|names| names.contains(&Value::from(bucket)));
        if !from_s3 || !for_bucket {
            continue;
        }
        watched = true;

        let key_prefixes = pattern
            .pointer("/detail/object/key")
            .and_then(Value::as_array)
            .map(|matchers| {
                matchers
                    .iter()
                    .map(|matcher| {
                        matcher
                            .get("prefix")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect::<Option<Vec<_>>>()
            });
        match key_prefixes {
            Some(Some(list)) if !list.is_empty() => prefixes.extend(list),
            // No key condition, or one a prefix filter cannot express.
            _ => whole_bucket = true,
        }
    }

    if !watched {
        return None;
    }
    if whole_bucket || prefixes.iter().any(String::is_empty) {
        return Some(Vec::new());
    }
    prefixes.sort();
    prefixes.dedup();
    let shortest: Vec<String> = prefixes
        .iter()
        .filter(|p| {
            !prefixes
                .iter()
                .any(|other| other != *p && p.starts_with(other.as_str()))
        })
        .cloned()
        .collect();
    Some(shortest)
}

async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), Error> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(error) => {
            let service_error = error.as_service_error();
            if service_error
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists())
            {
                Ok(())
            } else {
                Err(Error::aws("CreateBucket", bucket, error))
            }
        }
    }
}

/// Creates a queue, or updates the attributes of an existing one, and
/// returns its URL.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: BTreeMap<QueueAttributeName, String>,
) -> Result<String, Error> {
    if let Ok(existing) = sqs.get_queue_url().queue_name(name).send().await {
        let url = existing.queue_url.unwrap_or_default();
        if !attributes.is_empty() {
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes.into_iter().collect()))
                .send()
                .await
                .map_err(|error| Error::aws("SetQueueAttributes", &url, error))?;
        }
        return Ok(url);
    }
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(|error| Error::aws("CreateQueue", name, error))?;
    created
        .queue_url
        .ok_or_else(|| Error::Wiring(format!("CreateQueue {name} returned no URL")))
}

/// Returns the ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| Error::aws("GetQueueAttributes", url, error))?;
    output
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| Error::Wiring(format!("queue {url} has no QueueArn attribute")))
}

async fn put_notifications(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    queue_arn: &str,
    prefixes: &[String],
) -> Result<(), Error> {
    let build = |prefix: Option<&String>| {
        let mut configuration = QueueConfiguration::builder()
            .queue_arn(queue_arn)
            .events(Event::S3ObjectCreated);
        if let Some(prefix) = prefix {
            let rule = FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(prefix)
                .build();
            let filter = NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().filter_rules(rule).build())
                .build();
            configuration = configuration
                .id(format!("object-created-{prefix}"))
                .filter(filter);
        }
        configuration.build()
    };
    let configurations = if prefixes.is_empty() {
        vec![build(None)]
    } else {
        prefixes.iter().map(|p| build(Some(p))).collect()
    };
    let configurations = configurations
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            Error::Wiring(format!(
                "invalid notification configuration for {bucket}: {error}"
            ))
        })?;

    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(Some(configurations))
                .build(),
        )
        .send()
        .await
        .map_err(|error| Error::aws("PutBucketNotificationConfiguration", bucket, error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{EventRule, Function};
    use serde_json::json;

    fn wiring(patterns: Vec<Value>) -> Wiring {
        let functions = patterns
            .into_iter()
            .enumerate()
            .map(|(index, pattern)| Function {
                logical_id: format!("F{index}"),
                binary: format!("f{index}"),
                environment: BTreeMap::new(),
                rules: vec![EventRule {
                    event_id: "E".into(),
                    pattern,
                }],
                sqs_sources: Vec::new(),
                dead_letter_queue_arn: None,
                maximum_retry_attempts: 2,
            })
            .collect();
        Wiring {
            buckets: Vec::new(),
            queues: Vec::new(),
            functions,
        }
    }

    fn rule(bucket: &str, key: Value) -> Value {
        json!({"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}, "object": {"key": key}}})
    }

    #[test]
    fn same_prefix_twice_is_one_filter() {
        let wiring = wiring(vec![
            rule("in", json!([{"prefix": "incoming/"}])),
            rule("in", json!([{"prefix": "incoming/"}])),
        ]);
        assert_eq!(
            notification_prefixes(&wiring, "in"),
            Some(vec!["incoming/".to_owned()])
        );
    }

    #[test]
    fn overlapping_prefixes_keep_shortest() {
        let wiring = wiring(vec![
            rule("in", json!([{"prefix": "incoming/"}])),
            rule(
                "in",
                json!([{"prefix": "incoming/penguins/"}, {"prefix": "other/"}]),
            ),
        ]);
        assert_eq!(
            notification_prefixes(&wiring, "in"),
            Some(vec!["incoming/".to_owned(), "other/".to_owned()])
        );
    }

    #[test]
    fn suffix_rule_watches_whole_bucket() {
        let wiring = wiring(vec![
            rule("in", json!([{"prefix": "incoming/"}])),
            rule("in", json!([{"suffix": ".csv"}])),
        ]);
        assert_eq!(notification_prefixes(&wiring, "in"), Some(Vec::new()));
    }

    #[test]
    fn unwatched_bucket_gets_nothing() {
        let wiring = wiring(vec![rule("in", json!([{"prefix": "incoming/"}]))]);
        assert_eq!(notification_prefixes(&wiring, "archive"), None);
    }
}
