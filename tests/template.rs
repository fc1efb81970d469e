//! Checks the wiring of `template.yaml` and `samconfig.toml` that `sam validate`, cfn-lint and
//! checkov do not know about. That covers which events trigger which function, that no function
//! can trigger itself, and the limits that tie the records queue to transform-to-rds. It also
//! covers least-privilege IAM and the names that the functions and tools/local-pipeline use.
//!
//! serde_yaml 0.9 reads a CloudFormation short tag such as `!Ref Bucket` as a tagged value, so
//! [`load_template`] first rewrites every tag into the long form (`{"Ref": "Bucket"}`) and the
//! checks work on `serde_json::Value`. Values that depend on parameters are checked with the
//! parameters' defaults, which is what `sam deploy` uses unless overridden.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Logical id, crate (and binary) name of every function.
const FUNCTIONS: [(&str, &str); 3] = [
    ("CompressOnUploadFunction", "compress-on-upload"),
    ("S3ToSqsFunction", "s3-to-sqs"),
    ("TransformToRdsFunction", "transform-to-rds"),
];

/// Payload limit of a synchronous Lambda invocation, which an SQS batch is: 6 MB.
const LAMBDA_SYNC_PAYLOAD_BYTES: u64 = 6 * 1024 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

fn load_template() -> Value {
    let path = root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    to_json(yaml)
}

/// Converts YAML to JSON, rewriting each CloudFormation short tag into its long form.
fn to_json(yaml: serde_yaml::Value) -> Value {
    match yaml {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(value) => Value::Bool(value),
        serde_yaml::Value::Number(number) => {
            if let Some(value) = number.as_i64() {
                json!(value)
            } else if let Some(value) = number.as_u64() {
                json!(value)
            } else {
                json!(number.as_f64().unwrap())
            }
        }
        serde_yaml::Value::String(value) => Value::String(value),
        serde_yaml::Value::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        serde_yaml::Value::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    serde_yaml::Value::String(key) => key,
                    other => panic!("mapping key {other:?} is not a string"),
                };
                object.insert(key, to_json(value));
            }
            Value::Object(object)
        }
        serde_yaml::Value::Tagged(tagged) => {
            let name = tagged.tag.to_string().trim_start_matches('!').to_owned();
            let value = to_json(tagged.value);
            match name.as_str() {
                "Ref" | "Condition" => json!({ name: value }),
                // `!GetAtt Resource.Attribute.Path` is `{"Fn::GetAtt": ["Resource", "Attribute.Path"]}`.
                "GetAtt" => match value {
                    Value::String(text) => {
                        let (resource, attribute) =
                            text.split_once('.').unwrap_or_else(|| panic!("!GetAtt {text} has no attribute"));
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

fn load_samconfig() -> toml::Table {
    let path = root().join("samconfig.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    text.parse().unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Navigation and evaluation with parameter defaults
// ---------------------------------------------------------------------------------------------

/// The template with helpers to look things up and to evaluate values with the defaults.
struct Template {
    doc: Value,
}

impl Template {
    fn load() -> Self {
        Self { doc: load_template() }
    }

    fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"].as_object().unwrap()
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources().get(id).unwrap_or_else(|| panic!("resource {id} is missing"))
    }

    fn parameter(&self, name: &str) -> &Value {
        self.doc["Parameters"].get(name).unwrap_or_else(|| panic!("parameter {name} is missing"))
    }

    fn of_type(&self, kind: &str) -> Vec<(&String, &Value)> {
        self.resources().iter().filter(|(_, resource)| resource["Type"] == kind).collect()
    }

    /// A function property, or the one from `Globals.Function` when the function has none.
    fn function_property(&self, id: &str, property: &str) -> Value {
        let own = &self.resource(id)["Properties"][property];
        if own.is_null() { self.doc["Globals"]["Function"][property].clone() } else { own.clone() }
    }

    /// The inline policy statements of the role a function runs as.
    fn statements(&self, function: &str) -> Vec<Value> {
        let role = self.function_property(function, "Role");
        let role_id =
            role["Fn::GetAtt"][0].as_str().unwrap_or_else(|| panic!("{function} has no Role of its own: {role}"));
        let mut statements = Vec::new();
        for policy in self.resource(role_id)["Properties"]["Policies"].as_array().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                // A statement kept only under a condition is `!If [condition, statement, NoValue]`.
                match statement.get("Fn::If") {
                    Some(branches) => statements.push(branches[1].clone()),
                    None => statements.push(statement.clone()),
                }
            }
        }
        statements
    }

    /// Evaluates a value with the parameters' defaults. A resource reference becomes
    /// `<Resource>` or `<Resource.Attribute>`.
    fn eval(&self, value: &Value) -> Value {
        let Some(object) = value.as_object() else {
            return value.clone();
        };
        if let Some(name) = object.get("Ref").and_then(Value::as_str) {
            return match self.doc["Parameters"].get(name) {
                Some(parameter) => parameter["Default"].clone(),
                None => json!(format!("<{name}>")),
            };
        }
        if let Some(target) = object.get("Fn::GetAtt") {
            return json!(format!("<{}.{}>", target[0].as_str().unwrap(), target[1].as_str().unwrap()));
        }
        if let Some(text) = object.get("Fn::Sub").and_then(Value::as_str) {
            return json!(self.substitute(text));
        }
        if let Some(branches) = object.get("Fn::If") {
            let chosen = if self.condition(branches[0].as_str().unwrap()) { &branches[1] } else { &branches[2] };
            return self.eval(chosen);
        }
        value.clone()
    }

    fn eval_u64(&self, value: &Value) -> u64 {
        let evaluated = self.eval(value);
        evaluated
            .as_u64()
            .or_else(|| evaluated.as_str().and_then(|text| text.parse().ok()))
            .unwrap_or_else(|| panic!("{value} is not a whole number: {evaluated}"))
    }

    fn eval_str(&self, value: &Value) -> String {
        let evaluated = self.eval(value);
        match evaluated {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            other => panic!("{value} is not a string: {other}"),
        }
    }

    /// Replaces each `${Name}` of a `!Sub` string by its default or resource marker.
    fn substitute(&self, text: &str) -> String {
        let mut output = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            output.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            let name = &rest[start + 2..end];
            let value =
                if name.contains('.') { json!(format!("<{name}>")) } else { self.eval(&json!({ "Ref": name })) };
            match value {
                Value::String(text) => output.push_str(&text),
                other => output.push_str(&other.to_string()),
            }
            rest = &rest[end + 1..];
        }
        output.push_str(rest);
        output
    }

    fn condition(&self, name: &str) -> bool {
        let expression = self.doc["Conditions"].get(name).unwrap_or_else(|| panic!("condition {name} is missing"));
        self.truth(expression)
    }

    fn truth(&self, expression: &Value) -> bool {
        let object = expression.as_object().unwrap();
        if let Some(name) = object.get("Condition").and_then(Value::as_str) {
            return self.condition(name);
        }
        if let Some(pair) = object.get("Fn::Equals") {
            return self.eval_str(&pair[0]) == self.eval_str(&pair[1]);
        }
        if let Some(inner) = object.get("Fn::Not") {
            return !self.truth(&inner[0]);
        }
        if let Some(all) = object.get("Fn::And") {
            return all.as_array().unwrap().iter().all(|inner| self.truth(inner));
        }
        if let Some(any) = object.get("Fn::Or") {
            return any.as_array().unwrap().iter().any(|inner| self.truth(inner));
        }
        panic!("unsupported condition {expression}");
    }

    /// The function's environment variables, evaluated with the defaults.
    fn environment(&self, function: &str) -> BTreeMap<String, String> {
        let variables = &self.resource(function)["Properties"]["Environment"]["Variables"];
        variables.as_object().unwrap().iter().map(|(name, value)| (name.clone(), self.eval_str(value))).collect()
    }
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn actions(statement: &Value) -> Vec<String> {
    as_list(&statement["Action"]).iter().map(|action| action.as_str().unwrap().to_owned()).collect()
}

/// Whether an object written under `written` could match a rule on keys starting with `watched`.
fn prefixes_overlap(written: &str, watched: &str) -> bool {
    written.starts_with(watched) || watched.starts_with(written)
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

#[test]
fn functions_are_rust_on_al2023() {
    let template = Template::load();

    let ids: BTreeSet<&str> =
        template.of_type("AWS::Serverless::Function").into_iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, FUNCTIONS.iter().map(|(id, _)| *id).collect());

    for (id, binary) in FUNCTIONS {
        assert_eq!(template.function_property(id, "Runtime"), "provided.al2023", "{id} Runtime");
        assert_eq!(template.function_property(id, "Handler"), "bootstrap", "{id} Handler");
        let metadata = &template.resource(id)["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{id} BuildMethod");
        assert_eq!(metadata["BuildProperties"]["Binary"], binary, "{id} Binary");

        // sam build runs `cargo lambda build --bin <Binary>` in CodeUri.
        let code_uri = template.function_property(id, "CodeUri");
        let crate_dir = root().join(code_uri.as_str().unwrap());
        let manifest: toml::Table = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap().parse().unwrap();
        assert_eq!(
            manifest["package"]["name"].as_str(),
            Some(binary),
            "{id} CodeUri {code_uri} is not the {binary} crate"
        );
        assert!(crate_dir.join("src/main.rs").exists(), "{id}: {binary} has no src/main.rs");
    }
}

#[test]
fn architecture_defaults_to_arm64() {
    let template = Template::load();

    let parameter = template.parameter("Architecture");
    assert_eq!(parameter["Default"], "arm64");
    assert_eq!(parameter["AllowedValues"], json!(["arm64", "x86_64"]));
    for (id, _) in FUNCTIONS {
        assert_eq!(template.function_property(id, "Architectures"), json!([{ "Ref": "Architecture" }]), "{id}");
    }
}

#[test]
fn functions_log_json_to_own_groups() {
    let template = Template::load();

    let mut groups = BTreeSet::new();
    for (id, _) in FUNCTIONS {
        assert_eq!(template.function_property(id, "Tracing"), "Active", "{id} Tracing");
        let logging = template.function_property(id, "LoggingConfig");
        assert_eq!(logging["LogFormat"], "JSON", "{id} LogFormat");
        assert_eq!(logging["ApplicationLogLevel"], json!({ "Ref": "ApplicationLogLevel" }), "{id} ApplicationLogLevel");

        let group = logging["LogGroup"]["Ref"].as_str().unwrap_or_else(|| panic!("{id} LogGroup is not a !Ref"));
        assert_eq!(template.resource(group)["Type"], "AWS::Logs::LogGroup", "{id} LogGroup");
        assert_eq!(
            template.resource(group)["Properties"]["RetentionInDays"],
            json!({ "Ref": "LogRetentionDays" }),
            "{group}"
        );
        assert!(groups.insert(group.to_owned()), "{group} is shared");
    }
    assert_eq!(template.parameter("ApplicationLogLevel")["Default"], "INFO");
}

/// The text of every `.rs` file under `folder`, one after another.
fn read_sources(folder: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&read_sources(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
            text.push('\n');
        }
    }
    text
}

/// Environment variables that configure the runtime rather than the function.
const RUNTIME_VARIABLES: [&str; 1] = ["MALLOC_MMAP_THRESHOLD_"];

#[test]
fn functions_read_every_variable_set() {
    let template = Template::load();

    for (id, binary) in FUNCTIONS {
        let sources = read_sources(&root().join("functions").join(binary).join("src"));
        for name in template.environment(id).keys() {
            // Variables read by the runtime (glibc's malloc), not by the function's code.
            if RUNTIME_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            assert!(sources.contains(&format!("\"{name}\"")), "{id} sets {name}, which {binary} does not read");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

#[test]
fn upload_rules_match_watched_prefix() {
    let template = Template::load();

    let bucket = &template.resource("InputBucket")["Properties"];
    assert_eq!(bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"], true);
    // S3 notifications to the functions would overlap and make a dependency cycle.
    assert!(bucket["NotificationConfiguration"].get("LambdaConfigurations").is_none());

    for id in ["CompressOnUploadFunction", "S3ToSqsFunction"] {
        let events = template.resource(id)["Properties"]["Events"].as_object().unwrap();
        assert_eq!(events.len(), 1, "{id} has one trigger");
        let event = events.values().next().unwrap();
        assert_eq!(event["Type"], "EventBridgeRule", "{id}");
        let pattern = &event["Properties"]["Pattern"];
        assert_eq!(pattern["source"], json!(["aws.s3"]), "{id}");
        assert_eq!(pattern["detail-type"], json!(["Object Created"]), "{id}");
        assert_eq!(pattern["detail"]["bucket"]["name"], json!([{ "Ref": "InputBucket" }]), "{id}");
        assert_eq!(pattern["detail"]["object"]["key"], json!([{ "prefix": { "Ref": "WatchedPrefix" } }]), "{id}");
    }
    assert_eq!(template.parameter("WatchedPrefix")["Default"], "incoming/");
}

/// What starts a function: S3 keys under a prefix of a bucket, or messages of a queue.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Endpoint {
    Objects { bucket: String, prefix: String },
    Queue(String),
}

impl Endpoint {
    fn reaches(&self, trigger: &Endpoint) -> bool {
        match (self, trigger) {
            (Endpoint::Objects { bucket, prefix }, Endpoint::Objects { bucket: watched_bucket, prefix: watched }) => {
                bucket == watched_bucket && prefixes_overlap(prefix, watched)
            }
            (Endpoint::Queue(queue), Endpoint::Queue(watched)) => queue == watched,
            _ => false,
        }
    }
}

fn triggers(template: &Template, function: &str) -> Vec<Endpoint> {
    let events = template.resource(function)["Properties"]["Events"].as_object().unwrap();
    events
        .values()
        .map(|event| match event["Type"].as_str().unwrap() {
            "EventBridgeRule" => {
                let detail = &event["Properties"]["Pattern"]["detail"];
                Endpoint::Objects {
                    bucket: format!("<{}.Arn>", detail["bucket"]["name"][0]["Ref"].as_str().unwrap()),
                    prefix: template.eval_str(&detail["object"]["key"][0]["prefix"]),
                }
            }
            "SQS" => Endpoint::Queue(template.eval_str(&event["Properties"]["Queue"])),
            other => panic!("{function} has an unexpected event type {other}"),
        })
        .collect()
}

/// Where a function's role lets it write: object prefixes and queues.
fn outputs(template: &Template, function: &str) -> Vec<Endpoint> {
    let mut outputs = Vec::new();
    for statement in template.statements(function) {
        let actions = actions(&statement);
        for resource in as_list(&statement["Resource"]) {
            let resource = template.eval_str(&resource);
            if actions.iter().any(|action| action == "s3:PutObject") {
                let (bucket, prefix) = resource
                    .split_once('/')
                    .unwrap_or_else(|| panic!("{function} writes to the whole bucket {resource}"));
                outputs.push(Endpoint::Objects {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_end_matches('*').to_owned(),
                });
            }
            if actions.iter().any(|action| action == "sqs:SendMessage") {
                outputs.push(Endpoint::Queue(resource));
            }
        }
    }
    outputs
}

#[test]
fn no_function_triggers_itself() {
    let template = Template::load();

    let mut edges = BTreeSet::new();
    for (from, _) in FUNCTIONS {
        for (to, _) in FUNCTIONS {
            let reaches = outputs(&template, from)
                .iter()
                .any(|output| triggers(&template, to).iter().any(|trigger| output.reaches(trigger)));
            if reaches {
                edges.insert((from, to));
            }
        }
    }
    // The only hand-over is s3-to-sqs sending records to transform-to-rds; archive copies and
    // rows start nothing.
    assert_eq!(edges, BTreeSet::from([("S3ToSqsFunction", "TransformToRdsFunction")]));
}

#[test]
fn archive_copies_go_where_iam_allows() {
    let template = Template::load();

    let environment = template.environment("CompressOnUploadFunction");
    assert_eq!(environment["ARCHIVE_BUCKET"], "<InputBucket>");
    let archive_prefix = &environment["ARCHIVE_PREFIX"];
    assert_eq!(archive_prefix, "archive/");
    let written = outputs(&template, "CompressOnUploadFunction");
    assert!(
        written.contains(&Endpoint::Objects { bucket: "<InputBucket.Arn>".to_owned(), prefix: archive_prefix.clone() }),
        "{written:?}"
    );

    // s3-to-sqs skips the archive location that compress-on-upload writes to.
    let s3_to_sqs = template.environment("S3ToSqsFunction");
    assert_eq!(s3_to_sqs["ARCHIVE_BUCKET"], environment["ARCHIVE_BUCKET"]);
    assert_eq!(&s3_to_sqs["ARCHIVE_PREFIX"], archive_prefix);
    assert!(!prefixes_overlap(archive_prefix, &template.eval_str(&json!({ "Ref": "WatchedPrefix" }))));
}

#[test]
fn s3_to_sqs_sends_to_records_queue() {
    let template = Template::load();

    let environment = template.environment("S3ToSqsFunction");
    assert_eq!(environment["QUEUE_URL"], "<RecordsQueue>");
    assert_eq!(environment["DATASET_KEY_PATTERN"], "^incoming/(?P<dataset>[^/]+)/");
    assert!(outputs(&template, "S3ToSqsFunction").contains(&Endpoint::Queue("<RecordsQueue.Arn>".to_owned())));
}

// ---------------------------------------------------------------------------------------------
// Records queue and transform-to-rds
// ---------------------------------------------------------------------------------------------

fn records_event(template: &Template) -> Value {
    let events = template.resource("TransformToRdsFunction")["Properties"]["Events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "transform-to-rds has one trigger");
    let event = events.values().next().unwrap();
    assert_eq!(event["Type"], "SQS");
    event["Properties"].clone()
}

#[test]
fn records_source_reports_batch_failures() {
    let template = Template::load();

    let source = records_event(&template);
    assert_eq!(source["Queue"], json!({ "Fn::GetAtt": ["RecordsQueue", "Arn"] }));
    assert_eq!(source["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]));
    assert!(template.eval_u64(&source["BatchSize"]) >= 1);
    assert!(!source["MaximumBatchingWindowInSeconds"].is_null());

    // Lambda accepts a MaximumConcurrency of 2 to 1000.
    let concurrency = &source["ScalingConfig"]["MaximumConcurrency"];
    let parameter = template.parameter(concurrency["Ref"].as_str().unwrap());
    assert!(parameter["MinValue"].as_u64().unwrap() >= 2);
    assert!(parameter["MaxValue"].as_u64().unwrap() <= 1000);
    assert!(template.eval_u64(concurrency) >= 2);
}

#[test]
fn visibility_timeout_covers_six_timeouts() {
    let template = Template::load();

    let source = records_event(&template);
    let timeout_secs = template.eval_u64(&template.function_property("TransformToRdsFunction", "Timeout"));
    let window = &source["MaximumBatchingWindowInSeconds"];
    // The window can be raised at deploy time, so its maximum counts.
    let max_window_secs = match window.get("Ref") {
        Some(name) => template.parameter(name.as_str().unwrap())["MaxValue"].as_u64().unwrap(),
        None => window.as_u64().unwrap(),
    };
    let visibility_secs = template.eval_u64(&template.resource("RecordsQueue")["Properties"]["VisibilityTimeout"]);
    assert!(
        visibility_secs >= 6 * timeout_secs + max_window_secs,
        "VisibilityTimeout {visibility_secs} s < 6 x {timeout_secs} s + {max_window_secs} s"
    );
}

#[test]
fn records_batch_fits_invocation_payload() {
    let template = Template::load();

    let source = records_event(&template);
    let max_batch = match source["BatchSize"].get("Ref") {
        Some(name) => template.parameter(name.as_str().unwrap())["MaxValue"].as_u64().unwrap(),
        None => source["BatchSize"].as_u64().unwrap(),
    };
    let budget_bytes: u64 = template.environment("S3ToSqsFunction")["MESSAGE_BUDGET_BYTES"].parse().unwrap();
    let batch_budget_bytes: u64 = template.environment("S3ToSqsFunction")["BATCH_BUDGET_BYTES"].parse().unwrap();
    let max_message_bytes = template.eval_u64(&template.resource("RecordsQueue")["Properties"]["MaximumMessageSize"]);
    assert!(budget_bytes <= max_message_bytes, "{budget_bytes} > {max_message_bytes}");
    assert_eq!(batch_budget_bytes, max_message_bytes);
    assert!(max_batch * budget_bytes <= LAMBDA_SYNC_PAYLOAD_BYTES, "{max_batch} messages of {budget_bytes} bytes");
}

#[test]
fn records_queue_redrives_to_dead_letter_queue() {
    let template = Template::load();

    let queue = &template.resource("RecordsQueue")["Properties"];
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(redrive["deadLetterTargetArn"], json!({ "Fn::GetAtt": ["RecordsDeadLetterQueue", "Arn"] }));
    assert!(template.eval_u64(&redrive["maxReceiveCount"]) >= 1);

    // A dead-letter queue keeps a message for its own retention period counted from the
    // original enqueue, so a shorter one could drop it on arrival.
    let dead_letter = &template.resource("RecordsDeadLetterQueue")["Properties"];
    assert!(
        template.eval_u64(&dead_letter["MessageRetentionPeriod"])
            >= template.eval_u64(&queue["MessageRetentionPeriod"])
    );
}

// ---------------------------------------------------------------------------------------------
// Failures of the S3-triggered functions
// ---------------------------------------------------------------------------------------------

#[test]
fn upload_failures_reach_dead_letter_queue() {
    let template = Template::load();

    let queue_arn = json!({ "Fn::GetAtt": ["UploadEventsDeadLetterQueue", "Arn"] });
    let queue_policy = &template.resource("UploadEventsDeadLetterQueuePolicy")["Properties"]["PolicyDocument"];
    let allowed_rules: Vec<String> = queue_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|statement| statement["Principal"]["Service"] == "events.amazonaws.com")
        .flat_map(|statement| as_list(&statement["Condition"]["ArnEquals"]["aws:SourceArn"]))
        .map(|arn| template.eval_str(&arn))
        .collect();

    for id in ["CompressOnUploadFunction", "S3ToSqsFunction"] {
        let properties = &template.resource(id)["Properties"];
        // Lambda's asynchronous invocation sends the event here after its retries.
        assert_eq!(properties["DeadLetterQueue"]["Type"], "SQS", "{id}");
        assert_eq!(properties["DeadLetterQueue"]["TargetArn"], queue_arn, "{id}");
        assert!(
            outputs(&template, id).contains(&Endpoint::Queue("<UploadEventsDeadLetterQueue.Arn>".to_owned())),
            "{id} may not send to its dead-letter queue"
        );

        // EventBridge sends an event here when it cannot invoke the function.
        let rule =
            template.resource(id)["Properties"]["Events"].as_object().unwrap().values().next().unwrap()["Properties"]
                .clone();
        assert_eq!(rule["DeadLetterConfig"]["Arn"], queue_arn, "{id}");
        let rule_name = template.eval_str(&rule["RuleName"]);
        let rule_arn = format!("arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/{rule_name}");
        assert!(allowed_rules.contains(&rule_arn), "{rule_arn} may not send to the queue: {allowed_rules:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// IAM
// ---------------------------------------------------------------------------------------------

#[test]
fn roles_are_least_privilege() {
    let template = Template::load();

    for (id, _) in FUNCTIONS {
        // With a Role of its own, SAM adds no managed policy with wildcard resources.
        assert!(template.resource(id)["Properties"].get("Policies").is_none(), "{id} has SAM Policies");

        for statement in template.statements(id) {
            let actions = actions(&statement);
            assert_eq!(statement["Effect"], "Allow", "{id}: {statement}");
            for action in &actions {
                assert!(!action.contains('*'), "{id}: wildcard action {action}");
            }
            for resource in as_list(&statement["Resource"]) {
                let resource = template.eval_str(&resource);
                if resource == "*" {
                    assert!(actions.iter().all(|action| action.starts_with("xray:")), "{id}: {actions:?} on *");
                    continue;
                }
                if let Some((_, key)) = resource.split_once('/') {
                    // Object resources name one of the two prefixes.
                    assert!(key == "incoming/*" || key == "archive/*", "{id}: {actions:?} on {resource}");
                }
            }
        }
    }
}

#[test]
fn roles_match_each_function() {
    let template = Template::load();

    let actions_of = |id: &str| -> BTreeSet<String> { template.statements(id).iter().flat_map(actions).collect() };
    let compress = actions_of("CompressOnUploadFunction");
    let s3_to_sqs = actions_of("S3ToSqsFunction");
    let transform = actions_of("TransformToRdsFunction");

    assert!(compress.contains("s3:AbortMultipartUpload"));
    assert!(compress.contains("s3:ListMultipartUploadParts"));
    assert!(!s3_to_sqs.iter().any(|action| action.starts_with("s3:Put") || action.starts_with("s3:Delete")));
    assert!(!transform.iter().any(|action| action.starts_with("s3:")));
    for action in
        ["ExecuteStatement", "BatchExecuteStatement", "BeginTransaction", "CommitTransaction", "RollbackTransaction"]
    {
        assert!(transform.contains(&format!("rds-data:{action}")), "transform-to-rds lacks rds-data:{action}");
    }

    // DeleteObject is granted only when DeleteSource is true.
    let role = template.function_property("CompressOnUploadFunction", "Role");
    let role_id = role["Fn::GetAtt"][0].as_str().unwrap();
    let conditional: Vec<&Value> =
        template.resource(role_id)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|statement| {
                actions(statement).iter().any(|action| action == "s3:DeleteObject")
                    || statement
                        .get("Fn::If")
                        .is_some_and(|branches| actions(&branches[1]).iter().any(|action| action == "s3:DeleteObject"))
            })
            .collect();
    assert_eq!(conditional.len(), 1);
    assert_eq!(conditional[0]["Fn::If"][0], "DeleteSourceEnabled");

    // The database actions and the secret name the one cluster and secret.
    let database_statements: Vec<Value> = template.statements("TransformToRdsFunction");
    let resource_of = |prefix: &str| {
        database_statements
            .iter()
            .find(|statement| actions(statement).iter().any(|action| action.starts_with(prefix)))
            .unwrap()["Resource"]
            .clone()
    };
    assert_eq!(
        resource_of("rds-data:"),
        json!({ "Fn::If": ["CreateDatabase", { "Fn::GetAtt": ["DatabaseCluster", "DBClusterArn"] }, { "Ref": "ExistingClusterArn" }] })
    );
    assert_eq!(
        resource_of("secretsmanager:")["Fn::If"][1],
        json!({ "Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"] })
    );
}

// ---------------------------------------------------------------------------------------------
// Storage and queues
// ---------------------------------------------------------------------------------------------

#[test]
fn buckets_are_private_and_tls_only() {
    let template = Template::load();

    let policies = template.of_type("AWS::S3::BucketPolicy");
    for (id, bucket) in template.of_type("AWS::S3::Bucket") {
        let properties = &bucket["Properties"];
        assert!(properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"].is_string(), "{id}");
        for setting in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
            assert_eq!(properties["PublicAccessBlockConfiguration"][setting], true, "{id} {setting}");
        }
        let aborts = properties["LifecycleConfiguration"]["Rules"].as_array().unwrap().iter().any(|rule| {
            rule["Status"] == "Enabled" && rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].is_u64()
        });
        assert!(aborts, "{id} keeps incomplete multipart uploads");

        let tls_only = policies
            .iter()
            .filter(|(_, policy)| policy["Properties"]["Bucket"] == json!({ "Ref": id }))
            .any(|(_, policy)| {
                policy["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().iter().any(|statement| {
                    let resources = as_list(&statement["Resource"]);
                    statement["Effect"] == "Deny"
                        && statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                        && resources.contains(&json!({ "Fn::GetAtt": [id, "Arn"] }))
                        && resources.contains(&json!({ "Fn::Sub": format!("${{{id}.Arn}}/*") }))
                })
            });
        assert!(tls_only, "{id} has no policy that denies requests without TLS");
    }
}

#[test]
fn queues_are_encrypted() {
    let template = Template::load();

    for (id, queue) in template.of_type("AWS::SQS::Queue") {
        let properties = &queue["Properties"];
        assert!(
            properties["SqsManagedSseEnabled"] == true || properties["KmsMasterKeyId"].is_string(),
            "{id} is not encrypted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Alarms
// ---------------------------------------------------------------------------------------------

#[test]
fn alarms_cover_dead_letters_and_errors() {
    let template = Template::load();

    let alarms = template.of_type("AWS::CloudWatch::Alarm");
    let alarmed = |metric: &str, dimension: &str, target: &Value| {
        alarms.iter().any(|(_, alarm)| {
            let properties = &alarm["Properties"];
            properties["MetricName"] == metric
                && properties["ComparisonOperator"] == "GreaterThanThreshold"
                && properties["Threshold"] == 0
                && properties["Dimensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["Name"] == dimension && &d["Value"] == target)
        })
    };

    for queue in ["RecordsDeadLetterQueue", "UploadEventsDeadLetterQueue"] {
        let target = json!({ "Fn::GetAtt": [queue, "QueueName"] });
        assert!(alarmed("ApproximateNumberOfMessagesVisible", "QueueName", &target), "no alarm on messages in {queue}");
    }
    for (id, _) in FUNCTIONS {
        assert!(alarmed("Errors", "FunctionName", &json!({ "Ref": id })), "no alarm on errors of {id}");
    }

    // The alarm topic exists only with an address to send to.
    assert_eq!(template.resource("AlarmTopic")["Condition"], "HasAlarmEmail");
}

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

#[test]
fn database_is_created_or_given() {
    let template = Template::load();

    assert_eq!(
        template.doc["Conditions"]["CreateDatabase"],
        json!({ "Fn::Equals": [{ "Ref": "ExistingClusterArn" }, ""] })
    );
    assert!(template.condition("CreateDatabase"), "the defaults create a cluster");

    let cluster = template.resource("DatabaseCluster");
    assert_eq!(cluster["Condition"], "CreateDatabase");
    let properties = &cluster["Properties"];
    assert_eq!(properties["Engine"], "aurora-postgresql");
    assert_eq!(properties["EnableHttpEndpoint"], true);
    assert_eq!(properties["ManageMasterUserPassword"], true);
    assert_eq!(properties["StorageEncrypted"], true);
    assert_eq!(properties["DeletionProtection"], json!({ "Ref": "DBDeletionProtection" }));
    assert_eq!(properties["ServerlessV2ScalingConfiguration"]["MinCapacity"], json!({ "Ref": "DBMinCapacity" }));
    assert_eq!(template.parameter("DBMinCapacity")["MinValue"], 0, "a minimum of 0 ACU lets the cluster pause");

    let instance = template.resource("DatabaseInstance");
    assert_eq!(instance["Condition"], "CreateDatabase");
    assert_eq!(instance["Properties"]["DBInstanceClass"], "db.serverless");
    assert_eq!(instance["Properties"]["DBClusterIdentifier"], json!({ "Ref": "DatabaseCluster" }));

    let variables = &template.resource("TransformToRdsFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        variables["DB_CLUSTER_ARN"],
        json!({ "Fn::If": ["CreateDatabase", { "Fn::GetAtt": ["DatabaseCluster", "DBClusterArn"] }, { "Ref": "ExistingClusterArn" }] })
    );
    assert_eq!(
        variables["DB_SECRET_ARN"],
        json!({ "Fn::If": ["CreateDatabase", { "Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"] }, { "Ref": "ExistingSecretArn" }] })
    );
    assert_eq!(variables["DB_NAME"], json!({ "Ref": "DatabaseName" }));
}

// ---------------------------------------------------------------------------------------------
// References and outputs
// ---------------------------------------------------------------------------------------------

/// Every name that a `Ref`, `Fn::GetAtt`, `${}` or `Condition` in `value` uses.
fn collect_references(value: &Value, names: &mut Vec<String>, conditions: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match key.as_str() {
                    "Ref" => names.push(inner.as_str().unwrap().to_owned()),
                    "Fn::GetAtt" => names.push(inner[0].as_str().unwrap().to_owned()),
                    "Fn::Sub" => {
                        let text = if let Some(text) = inner.as_str() { text } else { inner[0].as_str().unwrap() };
                        for piece in text.split("${").skip(1) {
                            let name = piece.split('}').next().unwrap();
                            names.push(name.split('.').next().unwrap().to_owned());
                        }
                    }
                    "Condition" if inner.is_string() => conditions.push(inner.as_str().unwrap().to_owned()),
                    "Fn::If" => conditions.push(inner[0].as_str().unwrap().to_owned()),
                    _ => {}
                }
                collect_references(inner, names, conditions);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, names, conditions)),
        _ => {}
    }
}

#[test]
fn references_name_existing_things() {
    let template = Template::load();

    let mut known: BTreeSet<String> = template.resources().keys().cloned().collect();
    known.extend(template.doc["Parameters"].as_object().unwrap().keys().cloned());
    known.extend(
        ["AWS::AccountId", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackName", "AWS"].map(String::from),
    );
    let known_conditions: BTreeSet<String> = template.doc["Conditions"].as_object().unwrap().keys().cloned().collect();

    let mut names = Vec::new();
    let mut conditions = Vec::new();
    for section in ["Resources", "Outputs", "Conditions", "Rules", "Globals"] {
        collect_references(&template.doc[section], &mut names, &mut conditions);
    }
    for name in names {
        assert!(known.contains(&name), "reference to unknown {name}");
    }
    for condition in conditions {
        assert!(known_conditions.contains(&condition), "unknown condition {condition}");
    }
}

#[test]
fn outputs_name_what_users_need() {
    let template = Template::load();

    let outputs = template.doc["Outputs"].as_object().unwrap();
    for name in [
        "InputBucketName",
        "UploadLocation",
        "ArchiveLocation",
        "RecordsQueueUrl",
        "RecordsDeadLetterQueueUrl",
        "UploadEventsDeadLetterQueueUrl",
        "DbClusterArn",
        "DbSecretArn",
        "DbName",
        "CompressOnUploadFunctionName",
        "S3ToSqsFunctionName",
        "TransformToRdsFunctionName",
    ] {
        assert!(outputs.contains_key(name), "output {name} is missing");
    }
    assert_eq!(template.eval_str(&outputs["UploadLocation"]["Value"]), "s3://<InputBucket>/incoming/");
}

// ---------------------------------------------------------------------------------------------
// samconfig.toml
// ---------------------------------------------------------------------------------------------

/// Checks that `value` is allowed for the template parameter `name`.
fn check_parameter_value(template: &Template, environment: &str, name: &str, value: &str) {
    let parameter = template.doc["Parameters"]
        .get(name)
        .unwrap_or_else(|| panic!("[{environment}] overrides unknown parameter {name}"));
    if let Some(allowed) = parameter["AllowedValues"].as_array() {
        let allowed: Vec<String> =
            allowed.iter().map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_owned)).collect();
        assert!(
            allowed.iter().any(|candidate| candidate == value),
            "[{environment}] {name}={value} is not one of {allowed:?}"
        );
    }
    if parameter["Type"] == "Number" {
        let number: f64 = value.parse().unwrap_or_else(|_| panic!("[{environment}] {name}={value} is not a number"));
        if let Some(min) = parameter["MinValue"].as_f64() {
            assert!(number >= min, "[{environment}] {name}={value} < {min}");
        }
        if let Some(max) = parameter["MaxValue"].as_f64() {
            assert!(number <= max, "[{environment}] {name}={value} > {max}");
        }
    }
}

#[test]
fn samconfig_matches_template() {
    let template = Template::load();
    let config = load_samconfig();

    assert_eq!(config["version"].as_float(), Some(0.1));
    for environment in ["default", "prod"] {
        let section = config[environment].as_table().unwrap_or_else(|| panic!("[{environment}] is missing"));
        assert_eq!(
            section["build"]["parameters"]["beta_features"].as_bool(),
            Some(true),
            "[{environment}] build needs beta_features for rust-cargolambda"
        );

        let deploy = &section["deploy"]["parameters"];
        assert_eq!(deploy["capabilities"].as_str(), Some("CAPABILITY_IAM"), "[{environment}]");
        assert_eq!(deploy["resolve_s3"].as_bool(), Some(true), "[{environment}]");
        assert_eq!(deploy["confirm_changeset"].as_bool(), Some(true), "[{environment}]");
        assert!(section["global"]["parameters"]["stack_name"].is_str(), "[{environment}] has no stack_name");

        for pair in deploy["parameter_overrides"].as_array().unwrap() {
            let (name, value) = pair.as_str().unwrap().split_once('=').unwrap();
            check_parameter_value(&template, environment, name, value);
        }
    }
}

#[test]
fn samconfig_rejects_unknown_override() {
    let template = Template::load();

    let result = std::panic::catch_unwind(|| check_parameter_value(&template, "test", "NoSuchParameter", "1"));
    assert!(result.is_err());
    let result = std::panic::catch_unwind(|| check_parameter_value(&template, "test", "TransformMaxConcurrency", "1"));
    assert!(result.is_err(), "a MaximumConcurrency of 1 is below the parameter's MinValue");
}

#[test]
fn short_tags_become_long_form() {
    let yaml = "a: !Ref Bucket\nb: !GetAtt Cluster.MasterUserSecret.SecretArn\nc: !Sub \"${Bucket.Arn}/*\"\nd: !If [Create, 1, !Ref AWS::NoValue]\n";
    let value = to_json(serde_yaml::from_str(yaml).unwrap());

    assert_eq!(value["a"], json!({ "Ref": "Bucket" }));
    assert_eq!(value["b"], json!({ "Fn::GetAtt": ["Cluster", "MasterUserSecret.SecretArn"] }));
    assert_eq!(value["c"], json!({ "Fn::Sub": "${Bucket.Arn}/*" }));
    assert_eq!(value["d"], json!({ "Fn::If": ["Create", 1, { "Ref": "AWS::NoValue" }] }));
}

#[test]
fn prefix_overlap_cases() {
    let cases = [
        ("archive/", "incoming/", false),
        ("incoming/archive/", "incoming/", true),
        ("incoming/", "incoming/", true),
        ("in", "incoming/", true),
        ("incoming-archive/", "incoming/", false),
    ];
    for (written, watched, expected) in cases {
        assert_eq!(prefixes_overlap(written, watched), expected, "{written} vs {watched}");
    }
}
