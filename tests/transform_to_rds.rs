//! transform-to-rds against the local Data API and PostgreSQL: each test has
//! its own schema (tables and rejects table), SQS events go through `handle`,
//! and rows are checked by SQL.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "transform_to_rds/support.rs"]
mod support;

use serde_json::json;
use support::{TestSchema, envelope_body, inject_faults, response_json, source, sqs_event};
use transform_to_rds::handle;

const NO_FAILURES: &str = r#"{"batchItemFailures":[]}"#;

fn no_failures() -> serde_json::Value {
    serde_json::from_str(NO_FAILURES).unwrap()
}

/// Builds a mapping of `dataset` into `table` with the given `[[columns]]` entries after `record_id`.
fn mapping(dataset: &str, table: &str, columns: &str) -> (String, String) {
    (
        format!("{dataset}.toml"),
        format!("dataset = \"{dataset}\"\ntable = \"{table}\"\n[[columns]]\nname = \"record_id\"\ncomputed = \"record_id\"\n{columns}"),
    )
}

/// Reads the schema's rejects as (line, stage, reason), in line order.
async fn rejects(schema: &TestSchema) -> Vec<(String, String, String)> {
    schema
        .rows("SELECT line::text, stage, reason FROM rejected_records ORDER BY line")
        .await
        .into_iter()
        .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap(), row[2].clone().unwrap()))
        .collect()
}

#[tokio::test]
async fn d1_decimal_exact_and_empty_note_null() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE d1 (record_id text PRIMARY KEY, id integer NOT NULL, amount numeric(20,2) NOT NULL, note text)").await;
    let columns = "[[columns]]\nname = \"id\"\nsource = \"id\"\ntype = \"integer\"\n\
                   [[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n\
                   [[columns]]\nname = \"note\"\nsource = \"note\"\n";
    let state = schema.state(vec![mapping("d1", &format!("{}.d1", schema.name), columns)], &[]).await;

    // The CSV `id,amount,note\n7,12345678901234567.89,\n` as s3-to-sqs sends it: every value a string.
    let body = envelope_body(&source("d1.csv"), "d1", &[(2, r#"{"id":"7","amount":"12345678901234567.89","note":""}"#)]);
    let response = handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();

    assert_eq!(response_json(&response), no_failures());
    let rows = schema.rows("SELECT id::text, amount::text, note, (note IS NULL)::text FROM d1").await;
    assert_eq!(rows, [[Some("7".into()), Some("12345678901234567.89".into()), None, Some("true".into())]]);
}

#[tokio::test]
async fn d2_typed_values_and_bad_uuid_alone() {
    let schema = TestSchema::new().await;
    schema
        .execute("CREATE TABLE d2 (record_id text PRIMARY KEY, id uuid NOT NULL, payload jsonb, order_date date, created_at timestamp)")
        .await;
    let columns = "[[columns]]\nname = \"id\"\nsource = \"id\"\ntype = \"uuid\"\n\
                   [[columns]]\nname = \"payload\"\nsource = \"payload\"\ntype = \"json\"\n\
                   [[columns]]\nname = \"order_date\"\nsource = \"order_date\"\ntype = \"date\"\n\
                   [[columns]]\nname = \"created_at\"\nsource = \"created_at\"\ntype = \"timestamptz\"\n";
    let state = schema.state(vec![mapping("d2", &format!("{}.d2", schema.name), columns)], &[]).await;

    let good = r#"{"id":"3f2b6c1e-8a4d-4e9b-9c1a-2d5e7f9a0b1c","payload":{"k":1},"order_date":"2024-03-05","created_at":"2024-03-05T14:07:09.120+02:00"}"#;
    let bad = r#"{"id":"nope","payload":{"k":2},"order_date":"2024-03-06","created_at":"2024-03-06T00:00:00Z"}"#;
    let body = envelope_body(&source("d2.jsonl"), "d2", &[(1, good), (2, bad)]);
    let response = handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();

    assert_eq!(response_json(&response), no_failures());
    let rows = schema.rows("SELECT id::text, payload::text, order_date::text, created_at::text FROM d2").await;
    assert_eq!(
        rows,
        [[
            Some("3f2b6c1e-8a4d-4e9b-9c1a-2d5e7f9a0b1c".into()),
            Some(r#"{"k": 1}"#.into()),
            Some("2024-03-05".into()),
            Some("2024-03-05 12:07:09.12".into()),
        ]]
    );
    assert_eq!(
        rejects(&schema).await,
        [("2".into(), "transform".into(), "column id: field \"id\": \"nope\" is not a UUID".into())]
    );
    let stored = schema.rows("SELECT raw_record, dataset, source_key, record_id FROM rejected_records").await;
    assert_eq!(stored[0][0].as_deref(), Some(bad));
    assert_eq!(stored[0][1].as_deref(), Some("d2"));
    assert_eq!(stored[0][2].as_deref(), Some("d2.jsonl"));
    assert_eq!(stored[0][3], Some(source("d2.jsonl").record_id(2)));
}

#[tokio::test]
async fn database_refusals_isolated_behind_savepoints() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE amounts (record_id text PRIMARY KEY, amount numeric(6,2) NOT NULL CHECK (amount > 0))").await;
    let columns = "[[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n";
    let state = schema.state(vec![mapping("amounts", &format!("{}.amounts", schema.name), columns)], &[]).await;

    // Valid decimals that the table refuses: a CHECK violation and a numeric overflow.
    let records: Vec<(u64, String)> = (1..=9)
        .map(|line| {
            let amount = match line {
                4 => "-1".to_owned(),
                7 => "123456.5".to_owned(),
                _ => format!("{line}.50"),
            };
            (line, format!(r#"{{"amount":"{amount}"}}"#))
        })
        .collect();
    let records: Vec<(u64, &str)> = records.iter().map(|(line, data)| (*line, data.as_str())).collect();
    let body = envelope_body(&source("amounts.jsonl"), "amounts", &records);
    let response = handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();

    assert_eq!(response_json(&response), no_failures());
    assert_eq!(schema.count("amounts").await, 7);
    let rejects = rejects(&schema).await;
    assert_eq!(rejects.iter().map(|(line, stage, _)| (line.as_str(), stage.as_str())).collect::<Vec<_>>(), [("4", "database"), ("7", "database")]);
    assert!(rejects[0].2.contains("violates check constraint"), "{}", rejects[0].2);
    assert!(rejects[0].2.contains("SQLState: 23514"), "{}", rejects[0].2);
    assert!(rejects[1].2.contains("numeric field overflow"), "{}", rejects[1].2);
}

#[tokio::test]
async fn q2_bad_record_and_non_json_body() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE q2 (record_id text PRIMARY KEY, amount numeric NOT NULL)").await;
    let columns = "[[columns]]\nname = \"record_id\"\nsource = \"record_id\"\n\
                   [[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n";
    // Here the record id comes from the data, as the case is written.
    let (file, text) = mapping("q2", &format!("{}.q2", schema.name), "");
    let text = text.replace("[[columns]]\nname = \"record_id\"\ncomputed = \"record_id\"\n", columns);
    let state = schema.state(vec![(file, text)], &[]).await;

    let m1 = envelope_body(&source("q2-a.jsonl"), "q2", &[(1, r#"{"record_id":"r1","amount":"1.5"}"#)]);
    let m2 = envelope_body(&source("q2-b.jsonl"), "q2", &[(1, r#"{"record_id":"r2","amount":"abc"}"#), (2, r#"{"record_id":"r2b","amount":"2"}"#)]);
    let m3 = envelope_body(&source("q2-c.jsonl"), "q2", &[(1, r#"{"record_id":"r3","amount":"3"}"#)]);
    let event = sqs_event(&[("m-1", &m1), ("m-2", &m2), ("m-3", &m3), ("m-4", "this is not JSON")]);
    let response = handle(&state, event).await.unwrap();

    assert_eq!(response_json(&response), json!({"batchItemFailures":[{"itemIdentifier":"m-4"}]}));
    let rows = schema.rows("SELECT record_id, amount::text FROM q2 ORDER BY record_id").await;
    assert_eq!(
        rows,
        [[Some("r1".into()), Some("1.5".into())], [Some("r2b".into()), Some("2".into())], [Some("r3".into()), Some("3".into())]]
    );
    let stored = schema.rows("SELECT source_key, line::text, reason, raw_record FROM rejected_records").await;
    assert_eq!(
        stored,
        [[
            Some("q2-b.jsonl".into()),
            Some("1".into()),
            Some("column amount: field \"amount\": \"abc\" is not a decimal number".into()),
            Some(r#"{"record_id":"r2","amount":"abc"}"#.into()),
        ]]
    );
}

#[tokio::test]
async fn q3_redelivery_writes_one_row() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE q3 (record_id text PRIMARY KEY, amount numeric NOT NULL)").await;
    let columns = "[[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n";
    let state = schema.state(vec![mapping("q3", &format!("{}.q3", schema.name), columns)], &[]).await;
    let body = envelope_body(&source("q3.jsonl"), "q3", &[(1, r#"{"amount":"10"}"#), (2, r#"{"amount":"x"}"#)]);

    for delivery in 1..=2 {
        let response = handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();
        assert_eq!(response_json(&response), no_failures(), "delivery {delivery}");
    }

    assert_eq!(schema.count("q3").await, 1);
    let stored = schema.rows("SELECT occurrences::text FROM rejected_records").await;
    assert_eq!(stored, [[Some("2".into())]]);
}

#[tokio::test]
async fn unusable_messages_are_batch_item_failures() {
    let schema = TestSchema::new().await;
    let state = schema.state(vec![mapping("known", &format!("{}.known", schema.name), "")], &[]).await;
    let unknown_dataset = envelope_body(&source("u.jsonl"), "unknown", &[(1, "{}")]);
    let future_version = envelope_body(&source("u.jsonl"), "known", &[(1, "{}")]).replacen("\"version\":1", "\"version\":99", 1);
    let not_envelope = json!({"hello": "world"}).to_string();
    let event = sqs_event(&[("m-a", &unknown_dataset), ("m-b", &future_version), ("m-c", &not_envelope), ("m-d", "")]);

    let response = handle(&state, event).await.unwrap();

    assert_eq!(
        response_json(&response),
        json!({"batchItemFailures":[{"itemIdentifier":"m-a"},{"itemIdentifier":"m-b"},{"itemIdentifier":"m-c"},{"itemIdentifier":"m-d"}]})
    );
}

#[tokio::test]
async fn d3_resuming_database_is_retried() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE d3 (record_id text PRIMARY KEY, amount numeric NOT NULL)").await;
    let cluster_arn = format!("arn:aws:rds:us-east-1:000000000000:cluster:{}", schema.name.replace('_', "-"));
    let columns = "[[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n";
    let state = schema.state_for(&cluster_arn, vec![mapping("d3", &format!("{}.d3", schema.name), columns)], &[]).await;
    let m1 = envelope_body(&source("d3-a.jsonl"), "d3", &[(1, r#"{"amount":"1"}"#)]);
    let m2 = envelope_body(&source("d3-b.jsonl"), "d3", &[(1, r#"{"amount":"2"}"#)]);

    inject_faults(&cluster_arn, "DatabaseResumingException", 3);
    let response = handle(&state, sqs_event(&[("m-1", &m1), ("m-2", &m2)])).await.unwrap();

    assert_eq!(response_json(&response), no_failures());
    assert_eq!(schema.count("d3").await, 2);
}

#[tokio::test]
async fn d3_resuming_past_deadline_fails_unprocessed() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE d3 (record_id text PRIMARY KEY, amount numeric NOT NULL)").await;
    let cluster_arn = format!("arn:aws:rds:us-east-1:000000000000:cluster:{}", schema.name.replace('_', "-"));
    let columns = "[[columns]]\nname = \"amount\"\nsource = \"amount\"\ntype = \"numeric\"\n";
    let extra = [("DEADLINE_MARGIN_MS", "500"), ("MAX_ATTEMPTS", "100"), ("RETRY_MAX_DELAY_MS", "400"), ("MESSAGE_CONCURRENCY", "1")];
    let state = schema.state_for(&cluster_arn, vec![mapping("d3", &format!("{}.d3", schema.name), columns)], &extra).await;
    let bodies: Vec<String> = (1..=3).map(|n| envelope_body(&source(&format!("d3-{n}.jsonl")), "d3", &[(1, r#"{"amount":"1"}"#)])).collect();

    // More faults than three seconds of retries can use up.
    inject_faults(&cluster_arn, "DatabaseResumingException", 100_000);
    let mut event = sqs_event(&[("m-1", &bodies[0]), ("m-2", &bodies[1]), ("m-3", &bodies[2])]);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    event.context.deadline = now_ms + 3_000;
    let response = handle(&state, event).await.unwrap();

    support::clear_faults(&cluster_arn);

    assert_eq!(
        response_json(&response),
        json!({"batchItemFailures":[{"itemIdentifier":"m-1"},{"itemIdentifier":"m-2"},{"itemIdentifier":"m-3"}]})
    );
    assert_eq!(schema.count("d3").await, 0);
}

#[tokio::test]
async fn small_request_budget_splits_calls() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE wide (record_id text PRIMARY KEY, body text NOT NULL)").await;
    let columns = "[[columns]]\nname = \"body\"\nsource = \"body\"\n";
    let state = schema.state(vec![mapping("wide", &format!("{}.wide", schema.name), columns)], &[("MAX_REQUEST_BYTES", "65536")]).await;
    let text = "x".repeat(4_000);
    let records: Vec<String> = (1..=60).map(|line| format!(r#"{{"body":"{line}-{text}"}}"#)).collect();
    let records: Vec<(u64, &str)> = records.iter().enumerate().map(|(i, data)| (i as u64 + 1, data.as_str())).collect();
    let body = envelope_body(&source("wide.jsonl"), "wide", &records);

    let response = handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();

    assert_eq!(response_json(&response), no_failures());
    assert_eq!(schema.count("wide").await, 60);
}

#[tokio::test]
async fn replay_rejects_after_mapping_fix() {
    let schema = TestSchema::new().await;
    schema.execute("CREATE TABLE weather (record_id text PRIMARY KEY, observed_on date NOT NULL)").await;
    let table = format!("{}.weather", schema.name);
    let strict = "[[columns]]\nname = \"observed_on\"\nsource = \"date\"\ntype = \"date\"\n";
    let state = schema.state(vec![mapping("weather", &table, strict)], &[]).await;
    let body = envelope_body(&source("w.csv"), "weather", &[(2, r#"{"date":"2012-01-01"}"#), (3, r#"{"date":"2012/01/02"}"#)]);
    handle(&state, sqs_event(&[("m-1", &body)])).await.unwrap();
    assert_eq!(schema.count("weather").await, 1);
    assert_eq!(schema.count("rejected_records").await, 1);

    let fixed = transform_to_rds::mapping::Mapping::parse(
        "weather.toml",
        &mapping("weather", &table, &format!("{strict}formats = [\"%Y-%m-%d\", \"%Y/%m/%d\"]\n")).1,
    )
    .unwrap();
    let dry = pipeline_admin::replay::replay_rejects(&state.writer, &fixed, 100, true).await.unwrap();
    assert_eq!(dry, pipeline_admin::replay::ReplayReport { examined: 1, written: 1, ..Default::default() });
    assert_eq!(schema.count("weather").await, 1, "a dry run writes nothing");
    assert_eq!(schema.count("rejected_records").await, 1, "a dry run deletes nothing");

    let report = pipeline_admin::replay::replay_rejects(&state.writer, &fixed, 100, false).await.unwrap();
    assert_eq!(report, pipeline_admin::replay::ReplayReport { examined: 1, written: 1, ..Default::default() });
    assert_eq!(schema.rows("SELECT observed_on::text FROM weather ORDER BY 1").await, [[Some("2012-01-01".into())], [Some("2012-01-02".into())]]);
    assert_eq!(schema.count("rejected_records").await, 0);
}

#[tokio::test]
async fn event_fixtures_replay_through_handle() {
    let schema = TestSchema::new().await;
    schema.copy_table("penguins").await;
    let state = schema.state(vec![schema.repository_mapping("penguins")], &[]).await;
    let fixture = |name: &str| {
        let path = format!("{}/events/transform-to-rds/{name}", env!("CARGO_MANIFEST_DIR"));
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        lambda_runtime::LambdaEvent::new(event, common::lambda_context())
    };

    let good = handle(&state, fixture("batch-good.json")).await.unwrap();
    assert_eq!(response_json(&good), no_failures());
    assert_eq!(schema.count("penguins").await, 5);

    let with_reject = handle(&state, fixture("batch-with-reject.json")).await.unwrap();
    assert_eq!(response_json(&with_reject), no_failures());
    assert_eq!(
        rejects(&schema).await,
        [
            ("2".into(), "transform".into(), "column body_mass_g: field \"Body Mass (g)\": \"heavy\" is not a 32-bit integer".into()),
            ("7".into(), "parse".into(), "expected 17 fields, found 3".into()),
        ]
    );

    let not_json = handle(&state, fixture("batch-not-json.json")).await.unwrap();
    assert_eq!(response_json(&not_json), json!({"batchItemFailures":[{"itemIdentifier":"c0ffee00-1111-4222-8333-444455556666"}]}));
    assert_eq!(schema.count("penguins").await, 5);
}

#[tokio::test]
async fn migrate_twice_then_refuse_changed_file() {
    support::migrate_public().await;
    let files = pipeline_admin::migrate::load_dir(&support::migrations_dir()).unwrap();
    let db = support::database(common::CLUSTER_ARN).await;
    let again = pipeline_admin::migrate::migrate(&db, &files, "schema_migrations").await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.already_applied, files.iter().map(|file| file.name.clone()).collect::<Vec<_>>());

    // A migrations folder and table of this test's own.
    let schema = TestSchema::new().await;
    let dir = std::env::temp_dir().join(&schema.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0001_first.sql"), format!("CREATE TABLE {0}.first (id int); -- a comment; with semicolons\nCREATE TABLE {0}.second (id int);\n", schema.name)).unwrap();
    let migrations_table = format!("{}.schema_migrations", schema.name);
    let first = pipeline_admin::migrate::migrate(&db, &pipeline_admin::migrate::load_dir(&dir).unwrap(), &migrations_table).await.unwrap();
    assert_eq!(first.applied, ["0001_first.sql"]);
    assert_eq!(schema.count("second").await, 0);

    std::fs::write(dir.join("0001_first.sql"), format!("CREATE TABLE {}.first (id bigint);\n", schema.name)).unwrap();
    let error = pipeline_admin::migrate::migrate(&db, &pipeline_admin::migrate::load_dir(&dir).unwrap(), &migrations_table).await.unwrap_err();
    assert!(error.to_string().starts_with("migration 0001_first.sql was applied with checksum"), "{error}");

    // A failing file is rolled back whole and not recorded.
    std::fs::write(dir.join("0001_first.sql"), format!("CREATE TABLE {0}.first (id int); -- a comment; with semicolons\nCREATE TABLE {0}.second (id int);\n", schema.name)).unwrap();
    std::fs::write(dir.join("0002_broken.sql"), format!("CREATE TABLE {0}.third (id int);\nCREATE TABLE {0}.missing_schema.x (id int);\n", schema.name)).unwrap();
    let error = pipeline_admin::migrate::migrate(&db, &pipeline_admin::migrate::load_dir(&dir).unwrap(), &migrations_table).await.unwrap_err();
    assert!(error.to_string().starts_with("migration 0002_broken.sql, statement 2: ExecuteStatement failed"), "{error}");
    let third = schema.rows(&format!("SELECT to_regclass('{}.third')::text", schema.name)).await;
    assert_eq!(third, [[None]]);
    assert_eq!(schema.count("schema_migrations").await, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SQS message bodies that s3-to-sqs's own code builds from a real data file.
fn bodies_from_file(relative: &str, dataset: &str, format: s3_to_sqs::Format) -> Vec<String> {
    let data = std::fs::read(common::data_file(relative)).unwrap();
    let source = pipeline_shared::envelope::Source {
        bucket: "test-input".into(),
        key: format!("incoming/{dataset}/{}", relative.rsplit('/').next().unwrap()),
        version_id: None,
        etag: Some("etag-real-file".into()),
    };
    s3_to_sqs::envelopes_from_bytes(&source, dataset, format, &data, &s3_to_sqs::ParseOptions::default(), s3_to_sqs::DEFAULT_MESSAGE_BUDGET_BYTES).unwrap()
}

/// Sends `bodies` as one SQS batch (message ids `m-<n>`) and returns the response as JSON.
async fn run_batch(state: &transform_to_rds::State, bodies: &[String]) -> serde_json::Value {
    let ids: Vec<String> = (1..=bodies.len()).map(|n| format!("m-{n}")).collect();
    let messages: Vec<(&str, &str)> = ids.iter().map(String::as_str).zip(bodies.iter().map(String::as_str)).collect();
    response_json(&handle(state, sqs_event(&messages)).await.unwrap())
}

#[tokio::test]
async fn penguins_file_written_once_on_redelivery() {
    let schema = TestSchema::new().await;
    schema.copy_table("penguins").await;
    let state = schema.state(vec![schema.repository_mapping("penguins")], &[]).await;
    let bodies = bodies_from_file("palmerpenguins/data/penguins-raw.csv", "penguins", s3_to_sqs::Format::Csv);

    assert_eq!(run_batch(&state, &bodies).await, no_failures());
    assert_eq!(run_batch(&state, &bodies).await, no_failures(), "redelivered batch");

    assert_eq!(schema.count("penguins").await, 344);
    assert_eq!(schema.count("rejected_records").await, 0);
    let first = schema
        .rows(
            "SELECT sample_number::text, species, clutch_completion::text, egg_date::text, culmen_length_mm::text, \
             flipper_length_mm::text, sex, delta_15n::text, comments, source_line::text \
             FROM penguins WHERE source_line = 2",
        )
        .await;
    assert_eq!(
        first,
        [[
            Some("1".into()),
            Some("Adelie Penguin (Pygoscelis adeliae)".into()),
            Some("true".into()),
            Some("2007-11-11".into()),
            Some("39.1".into()),
            Some("181".into()),
            Some("MALE".into()),
            None,
            Some("Not enough blood for isotopes.".into()),
            Some("2".into()),
        ]]
    );
    // "NA" is a null marker: the birds with no measurements have NULLs, not zeros or text.
    let unmeasured = schema.rows("SELECT count(*)::text FROM penguins WHERE culmen_length_mm IS NULL AND body_mass_g IS NULL").await;
    assert_eq!(unmeasured, [[Some("2".into())]]);
}

#[tokio::test]
async fn airports_file_with_a_rejected_record() {
    let schema = TestSchema::new().await;
    schema.copy_table("airports").await;
    let state = schema.state(vec![schema.repository_mapping("airports")], &[]).await;
    let mut bodies = bodies_from_file("vega_datasets/_data/airports.csv", "airports", s3_to_sqs::Format::Csv);
    // Spoil one latitude in the first message, as a bad upstream export would.
    bodies[0] = bodies[0].replacen("\"latitude\":\"31.95376472\"", "\"latitude\":\"95.5\"", 1);

    assert_eq!(run_batch(&state, &bodies).await, no_failures());

    assert_eq!(schema.count("airports").await, 3375);
    let rejected = schema.rows("SELECT line::text, stage, reason FROM rejected_records").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0][0].as_deref(), Some("2"));
    assert_eq!(rejected[0][1].as_deref(), Some("database"));
    assert!(rejected[0][2].as_deref().unwrap().contains("airports_latitude_check"), "{:?}", rejected[0][2]);
    let row = schema.rows("SELECT name, latitude::text, longitude::text FROM airports WHERE iata = '00R'").await;
    assert_eq!(row, [[Some("Livingston Municipal".into()), Some("30.68586111".into()), Some("-95.01792778".into())]]);
}

#[tokio::test]
async fn cars_json_array_keeps_nulls_and_index() {
    let schema = TestSchema::new().await;
    schema.copy_table("cars").await;
    let state = schema.state(vec![schema.repository_mapping("cars")], &[]).await;
    let bodies = bodies_from_file("vega_datasets/_data/cars.json", "cars", s3_to_sqs::Format::JsonArray);

    assert_eq!(run_batch(&state, &bodies).await, no_failures());

    assert_eq!(schema.count("cars").await, 406);
    assert_eq!(schema.count("rejected_records").await, 0);
    let nulls = schema.rows("SELECT count(*)::text FROM cars WHERE miles_per_gallon IS NULL").await;
    assert_eq!(nulls, [[Some("8".into())]]);
    let first = schema.rows("SELECT name, miles_per_gallon::text, acceleration_s::text, model_year::text, source_index::text FROM cars WHERE source_index = 0").await;
    assert_eq!(
        first,
        [[Some("chevrolet chevelle malibu".into()), Some("18.0".into()), Some("12.0".into()), Some("1970-01-01".into()), Some("0".into())]]
    );
}
