//! Tests of the local RDS Data API through `aws-sdk-rdsdata`, as the
//! functions call it: value kinds and type hints in and out, named
//! parameters, result formats, batches, transactions, error types, the
//! response size limit and fault injection.
//!
//! They use the server that `make local-up` starts (tests/common `rds_data()`),
//! except the idle-timeout test, which starts its own with a short timeout.
//! Each test works on its own tables, and fault tests on their own cluster ARN.

#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_rdsdata::error::ProvideErrorMetadata;
use aws_sdk_rdsdata::operation::batch_execute_statement::BatchExecuteStatementError;
use aws_sdk_rdsdata::operation::commit_transaction::CommitTransactionError;
use aws_sdk_rdsdata::operation::execute_statement::{ExecuteStatementError, ExecuteStatementOutput};
use aws_sdk_rdsdata::operation::rollback_transaction::RollbackTransactionError;
use aws_sdk_rdsdata::primitives::Blob;
use aws_sdk_rdsdata::types::{
    ArrayValue, DecimalReturnType, Field, LongReturnType, RecordsFormatType, ResultSetOptions, SqlParameter, TypeHint,
};
use common::{CLUSTER_ARN, DATABASE, SECRET_ARN};

/// Returns a unique table name, valid as an unquoted SQL identifier.
fn table(prefix: &str) -> String {
    common::unique_name(prefix).replace('-', "_")
}

/// Returns a cluster ARN of its own, so that faults queued for it touch no other test.
fn own_cluster_arn() -> String {
    format!("arn:aws:rds:us-east-1:000000000000:cluster:{}", common::unique_name("faults"))
}

fn param(name: &str, value: Field) -> SqlParameter {
    SqlParameter::builder().name(name).value(value).build()
}

fn hinted(name: &str, text: &str, hint: TypeHint) -> SqlParameter {
    SqlParameter::builder().name(name).value(Field::StringValue(text.to_owned())).type_hint(hint).build()
}

fn text(value: &str) -> Field {
    Field::StringValue(value.to_owned())
}

/// Runs `sql` with `parameters` in autocommit mode and returns the output.
async fn run(client: &aws_sdk_rdsdata::Client, sql: &str, parameters: Vec<SqlParameter>) -> ExecuteStatementOutput {
    try_run(client, sql, parameters).await.unwrap_or_else(|error| panic!("{sql}: {error:?}"))
}

async fn try_run(
    client: &aws_sdk_rdsdata::Client,
    sql: &str,
    parameters: Vec<SqlParameter>,
) -> Result<ExecuteStatementOutput, ExecuteStatementError> {
    client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .database(DATABASE)
        .sql(sql)
        .set_parameters(Some(parameters))
        .send()
        .await
        .map_err(|error| error.into_service_error())
}

/// Sends an HTTP request to the local Data API's test routes and returns the
/// status code and body.
async fn local_request(method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let url = common::data_api_url();
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

async fn queue_fault(fault: serde_json::Value) {
    let (status, body) = local_request("POST", "/_local/faults", &fault.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

/// Builds a client with the SDK's retries turned off, to see each error as sent.
async fn client_without_retries() -> aws_sdk_rdsdata::Client {
    let config = aws_sdk_rdsdata::config::Builder::from(&common::data_api_config().await)
        .retry_config(aws_sdk_rdsdata::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_rdsdata::Client::from_conf(config)
}

#[tokio::test]
async fn value_kinds_round_trip() {
    let client = common::rds_data().await;
    let name = table("kinds");
    run(
        &client,
        &format!(
            "create table {name} (id int primary key, big bigint, small smallint, dbl double precision, \
             flt real, flag boolean, bin bytea, txt text, vc varchar(10), missing text)"
        ),
        vec![],
    )
    .await;

    let inserted = run(
        &client,
        &format!(
            "insert into {name} (id, big, small, dbl, flt, flag, bin, txt, vc, missing) \
             values (:id, :big, :small, :dbl, :flt, :flag, :bin, :txt, :vc, :missing)"
        ),
        vec![
            param("id", Field::LongValue(1)),
            param("big", Field::LongValue(i64::MAX)),
            param("small", Field::LongValue(-3)),
            param("dbl", Field::DoubleValue(2.5e-8)),
            param("flt", Field::DoubleValue(1.25)),
            param("flag", Field::BooleanValue(true)),
            param("bin", Field::BlobValue(Blob::new(vec![0u8, 1, 254, 255]))),
            param("txt", text("héllo 'quoted' :colon")),
            param("vc", text("short")),
            param("missing", Field::IsNull(true)),
        ],
    )
    .await;
    assert_eq!(inserted.number_of_records_updated(), 1);
    assert!(inserted.records.is_none());
    assert!(inserted.generated_fields().is_empty());

    let selected =
        run(&client, &format!("select big, small, dbl, flt, flag, bin, txt, vc, missing from {name}"), vec![]).await;
    assert_eq!(selected.number_of_records_updated(), 0);
    let row = &selected.records()[0];
    assert_eq!(row[0], Field::LongValue(i64::MAX));
    assert_eq!(row[1], Field::LongValue(-3));
    assert_eq!(row[2], Field::DoubleValue(2.5e-8));
    assert_eq!(row[3], Field::DoubleValue(1.25));
    assert_eq!(row[4], Field::BooleanValue(true));
    assert_eq!(row[5], Field::BlobValue(Blob::new(vec![0u8, 1, 254, 255])));
    assert_eq!(row[6], text("héllo 'quoted' :colon"));
    assert_eq!(row[7], text("short"));
    assert_eq!(row[8], Field::IsNull(true));
}

#[tokio::test]
async fn result_types_as_service_formats() {
    let client = common::rds_data().await;
    let output = run(
        &client,
        "select 12345678901234567890.123456789::numeric as exact, -0.5::numeric(4,2) as scaled, \
         date '2024-02-29' as d, time '13:14:15.5' as t, timestamp '2024-02-29 13:14:15' as ts, \
         timestamp '2024-02-29 13:14:15.123' as ts_ms, timestamptz '2024-02-29 13:14:15+02' as tstz, \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as id, '{\"b\": [1, 2]}'::jsonb as doc, \
         '{\"a\":1}'::json as raw_doc, array[1, null, 3]::int[] as ints, array['x', null]::text[] as texts, \
         array[true]::bool[] as flags, array[1.5]::float8[] as floats, interval '1 day 2 hours' as span, \
         2147483647::int4 + 0 as int4_max, 'NaN'::float8 as nan",
        vec![],
    )
    .await;
    let row = &output.records()[0];
    let expected = [
        text("12345678901234567890.123456789"),
        text("-0.50"),
        text("2024-02-29"),
        text("13:14:15.5"),
        text("2024-02-29 13:14:15"),
        text("2024-02-29 13:14:15.123"),
        text("2024-02-29 11:14:15"),
        text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        text("{\"b\": [1, 2]}"),
        text("{\"a\":1}"),
        Field::ArrayValue(ArrayValue::LongValues(vec![Some(1), None, Some(3)])),
        Field::ArrayValue(ArrayValue::StringValues(vec![Some("x".to_owned()), None])),
        Field::ArrayValue(ArrayValue::BooleanValues(vec![Some(true)])),
        Field::ArrayValue(ArrayValue::DoubleValues(vec![Some(1.5)])),
        text("1 day 02:00:00"),
        Field::LongValue(2_147_483_647),
    ];
    for (index, field) in expected.iter().enumerate() {
        assert_eq!(&row[index], field, "column {index}");
    }
    assert!(matches!(row[16], Field::DoubleValue(value) if value.is_nan()));
}

#[tokio::test]
async fn type_hints_round_trip() {
    let client = common::rds_data().await;
    let name = table("hints");
    run(
        &client,
        &format!(
            "create table {name} (id uuid primary key, d date, t time, ts timestamp, tstz timestamptz, \
             amount numeric(20,6), doc jsonb, raw json)"
        ),
        vec![],
    )
    .await;
    run(
        &client,
        &format!("insert into {name} values (:id, :d, :t, :ts, :tstz, :amount, :doc, :raw)"),
        vec![
            hinted("id", "6f1c5f9e-3b1a-4c2d-9e8f-0123456789ab", TypeHint::Uuid),
            hinted("d", "2024-01-31", TypeHint::Date),
            hinted("t", "08:09:10.250", TypeHint::Time),
            hinted("ts", "2024-01-31 08:09:10.5", TypeHint::Timestamp),
            hinted("tstz", "2024-01-31 08:09:10", TypeHint::Timestamp),
            hinted("amount", "123456789.123456", TypeHint::Decimal),
            hinted("doc", "{\"k\": \"v\"}", TypeHint::Json),
            hinted("raw", "[1,2]", TypeHint::Json),
        ],
    )
    .await;

    let output = run(
        &client,
        &format!("select id, d, t, ts, amount, doc, raw from {name} where id = :id"),
        vec![hinted("id", "6f1c5f9e-3b1a-4c2d-9e8f-0123456789ab", TypeHint::Uuid)],
    )
    .await;
    assert_eq!(
        output.records(),
        [vec![
            text("6f1c5f9e-3b1a-4c2d-9e8f-0123456789ab"),
            text("2024-01-31"),
            text("08:09:10.25"),
            text("2024-01-31 08:09:10.5"),
            text("123456789.123456"),
            text("{\"k\": \"v\"}"),
            text("[1,2]"),
        ]]
    );

    // A typed NULL through a hint, and an untyped NULL, both fit a uuid column.
    run(
        &client,
        &format!("insert into {name} (id, d) values (:id, :d)"),
        vec![
            hinted("id", "00000000-0000-4000-8000-000000000000", TypeHint::Uuid),
            SqlParameter::builder().name("d").value(Field::IsNull(true)).type_hint(TypeHint::Date).build(),
        ],
    )
    .await;
    let nulls = run(
        &client,
        &format!("select d from {name} where id = :id"),
        vec![hinted("id", "00000000-0000-4000-8000-000000000000", TypeHint::Uuid)],
    )
    .await;
    assert_eq!(nulls.records(), [vec![Field::IsNull(true)]]);
}

#[tokio::test]
async fn string_without_hint_fails_on_uuid() {
    let client = common::rds_data().await;
    let name = table("uuid_no_hint");
    run(&client, &format!("create table {name} (id uuid primary key, doc jsonb)"), vec![]).await;

    let error = try_run(
        &client,
        &format!("insert into {name} (id) values (:id)"),
        vec![param("id", text("6f1c5f9e-3b1a-4c2d-9e8f-0123456789ab"))],
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ExecuteStatementError::DatabaseErrorException(_)), "{error:?}");
    let message = error.message().unwrap();
    assert!(
        message.starts_with("ERROR: column \"id\" is of type uuid but expression is of type character varying"),
        "{message}"
    );
    assert!(message.contains("\n  Hint: You will need to rewrite or cast the expression."), "{message}");
    assert!(message.ends_with("; SQLState: 42804"), "{message}");

    let error = try_run(
        &client,
        &format!("insert into {name} (id, doc) values (gen_random_uuid(), :doc)"),
        vec![param("doc", text("{}"))],
    )
    .await
    .unwrap_err();
    let message = error.message().unwrap();
    assert!(
        message.contains("column \"doc\" is of type jsonb but expression is of type character varying"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_parameters_are_bad_requests() {
    let client = common::rds_data().await;
    let cases = [
        (vec![hinted("v", "2024/01/31", TypeHint::Date)], "typeHint DATE"),
        (vec![hinted("v", "8:09", TypeHint::Time)], "typeHint TIME"),
        (vec![hinted("v", "2024-01-31T08:09:10", TypeHint::Timestamp)], "typeHint TIMESTAMP"),
        (
            vec![param("v", Field::ArrayValue(ArrayValue::LongValues(vec![Some(1)])))],
            "Array parameters are not supported.",
        ),
        (vec![], "No value specified for parameter :v"),
        (
            vec![SqlParameter::builder().name("v").value(Field::LongValue(1)).type_hint(TypeHint::Decimal).build()],
            "applies only to a stringValue",
        ),
    ];
    for (parameters, expected) in cases {
        let error = try_run(&client, "select :v", parameters).await.unwrap_err();
        assert!(matches!(error, ExecuteStatementError::BadRequestException(_)), "{expected}: {error:?}");
        let message = error.message().unwrap();
        assert!(message.contains(expected), "{message}");
    }

    // DECIMAL and UUID text is checked by PostgreSQL.
    let error = try_run(&client, "select :v", vec![hinted("v", "12,5", TypeHint::Decimal)]).await.unwrap_err();
    assert!(matches!(error, ExecuteStatementError::DatabaseErrorException(_)), "{error:?}");
    assert!(error.message().unwrap().contains("invalid input syntax for type numeric"));
}

#[tokio::test]
async fn colons_outside_parameters_kept() {
    let client = common::rds_data().await;
    let output = run(
        &client,
        "select :a::text as cast_value, ':b' as literal, E'\\':c' as escaped, $$ :d $$ as dollar, \
         $tag$ :e $tag$ as tagged, 1 as \"col:f\" -- :g in a comment\n, /* :h /* nested :i */ */ :a as again, \
         '2024-01-02 03:04:05'::timestamp as ts",
        vec![param("a", text("A"))],
    )
    .await;
    assert_eq!(
        output.records(),
        [vec![
            text("A"),
            text(":b"),
            text("':c"),
            text(" :d "),
            text(" :e "),
            Field::LongValue(1),
            text("A"),
            text("2024-01-02 03:04:05"),
        ]]
    );
}

#[tokio::test]
async fn column_metadata_reported() {
    let client = common::rds_data().await;
    let name = table("metadata");
    run(
        &client,
        &format!(
            "create table {name} (id serial primary key, code varchar(20) not null, price numeric(10,2), tags text[])"
        ),
        vec![],
    )
    .await;
    let output = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .database(DATABASE)
        .sql(format!("select id, code, price, tags, 1 as constant from {name}"))
        .include_result_metadata(true)
        .send()
        .await
        .unwrap();
    assert!(output.records().is_empty());
    let columns = output.column_metadata();
    assert_eq!(columns.len(), 5);

    let id = &columns[0];
    assert_eq!(id.name(), Some("id"));
    assert_eq!(id.label(), Some("id"));
    assert_eq!(id.type_name(), Some("serial"));
    assert_eq!(id.r#type(), 4);
    assert!(id.is_auto_increment());
    assert_eq!(id.nullable(), 0);
    assert_eq!(id.table_name(), Some(name.as_str()));

    let code = &columns[1];
    assert_eq!(code.type_name(), Some("varchar"));
    assert_eq!(code.r#type(), 12);
    assert_eq!(code.precision(), 20);
    assert_eq!(code.nullable(), 0);
    assert!(code.is_case_sensitive());

    let price = &columns[2];
    assert_eq!(price.type_name(), Some("numeric"));
    assert_eq!(price.r#type(), 2);
    assert_eq!((price.precision(), price.scale()), (10, 2));
    assert_eq!(price.nullable(), 1);
    assert!(price.is_signed());

    let tags = &columns[3];
    assert_eq!(tags.type_name(), Some("_text"));
    assert_eq!(tags.r#type(), 2003);
    assert_eq!(tags.array_base_column_type(), 12);

    let constant = &columns[4];
    assert_eq!(constant.nullable(), 2);
    assert_eq!(constant.table_name(), Some(""));
}

#[tokio::test]
async fn json_format_and_return_types() {
    let client = common::rds_data().await;
    let sql = "select 1 as id, 'a\"b' as name, null::text as missing, 2.50::numeric(4,2) as price, \
               true as flag, 9007199254740993::int8 as big";
    let output = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql(sql)
        .format_records_as(RecordsFormatType::Json)
        .send()
        .await
        .unwrap();
    assert!(output.records.is_none());
    assert_eq!(
        output.formatted_records(),
        Some(r#"[{"id":1,"name":"a\"b","missing":null,"price":"2.50","flag":true,"big":9007199254740993}]"#)
    );

    let options = ResultSetOptions::builder()
        .decimal_return_type(DecimalReturnType::DoubleOrLong)
        .long_return_type(LongReturnType::String)
        .build();
    let output = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql("select 2.50::numeric(4,2) as price, 7::numeric as whole, 9007199254740993::int8 as big, 5 as small")
        .result_set_options(options)
        .send()
        .await
        .unwrap();
    assert_eq!(
        output.records(),
        [vec![Field::DoubleValue(2.5), Field::LongValue(7), text("9007199254740993"), Field::LongValue(5)]]
    );

    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql("select 1 as a, 2 as a")
        .format_records_as(RecordsFormatType::Json)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::UnsupportedResultException(_)), "{error:?}");
}

#[tokio::test]
async fn records_updated_counts() {
    let client = common::rds_data().await;
    let name = table("counts");
    run(&client, &format!("create table {name} (id int primary key, n int)"), vec![]).await;
    let inserted = run(&client, &format!("insert into {name} select g, 0 from generate_series(1, 5) g"), vec![]).await;
    assert_eq!(inserted.number_of_records_updated(), 5);
    let updated =
        run(&client, &format!("update {name} set n = 1 where id > :id"), vec![param("id", Field::LongValue(2))]).await;
    assert_eq!(updated.number_of_records_updated(), 3);
    let deleted = run(&client, &format!("delete from {name} where n = 0"), vec![]).await;
    assert_eq!(deleted.number_of_records_updated(), 2);
    let returned = run(&client, &format!("delete from {name} where id = 3 returning id"), vec![]).await;
    assert_eq!(returned.records(), [vec![Field::LongValue(3)]]);
}

#[tokio::test]
async fn batch_update_results() {
    let client = common::rds_data().await;
    let name = table("batch");
    run(&client, &format!("create table {name} (id int primary key, label text)"), vec![]).await;
    let sets: Vec<Vec<SqlParameter>> = (1..=3)
        .map(|id| {
            let label = if id == 2 { Field::IsNull(true) } else { text(&format!("row {id}")) };
            vec![param("id", Field::LongValue(id)), param("label", label)]
        })
        .collect();
    let output = client
        .batch_execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .database(DATABASE)
        .sql(format!("insert into {name} (id, label) values (:id, :label)"))
        .set_parameter_sets(Some(sets))
        .send()
        .await
        .unwrap();
    assert_eq!(output.update_results().len(), 3);
    assert!(output.update_results().iter().all(|result| result.generated_fields().is_empty()));

    let rows = run(&client, &format!("select id, label from {name} order by id"), vec![]).await;
    assert_eq!(
        rows.records(),
        [
            vec![Field::LongValue(1), text("row 1")],
            vec![Field::LongValue(2), Field::IsNull(true)],
            vec![Field::LongValue(3), text("row 3")],
        ]
    );
}

#[tokio::test]
async fn batch_without_transaction_atomic() {
    let client = common::rds_data().await;
    let name = table("batch_atomic");
    run(&client, &format!("create table {name} (id int primary key)"), vec![]).await;
    let sets: Vec<Vec<SqlParameter>> = [1, 2, 1, 3].iter().map(|id| vec![param("id", Field::LongValue(*id))]).collect();
    let error = client
        .batch_execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql(format!("insert into {name} (id) values (:id)"))
        .set_parameter_sets(Some(sets))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, BatchExecuteStatementError::DatabaseErrorException(_)), "{error:?}");
    let message = error.message().unwrap();
    assert!(message.contains("duplicate key value violates unique constraint"), "{message}");
    assert!(message.ends_with("; SQLState: 23505"), "{message}");

    let count = run(&client, &format!("select count(*) from {name}"), vec![]).await;
    assert_eq!(count.records(), [vec![Field::LongValue(0)]]);
}

#[tokio::test]
async fn transaction_commit_and_rollback() {
    let client = common::rds_data().await;
    let name = table("transactions");
    run(&client, &format!("create table {name} (id int primary key)"), vec![]).await;

    for (commit, id) in [(true, 1), (false, 2)] {
        let transaction_id = client
            .begin_transaction()
            .resource_arn(CLUSTER_ARN)
            .secret_arn(SECRET_ARN)
            .database(DATABASE)
            .send()
            .await
            .unwrap()
            .transaction_id
            .unwrap();
        client
            .execute_statement()
            .resource_arn(CLUSTER_ARN)
            .secret_arn(SECRET_ARN)
            .database(DATABASE)
            .sql(format!("insert into {name} (id) values (:id)"))
            .parameters(param("id", Field::LongValue(id)))
            .transaction_id(&transaction_id)
            .send()
            .await
            .unwrap();
        client
            .batch_execute_statement()
            .resource_arn(CLUSTER_ARN)
            .secret_arn(SECRET_ARN)
            .sql(format!("insert into {name} (id) values (:id)"))
            .parameter_sets(vec![param("id", Field::LongValue(id * 10))])
            .transaction_id(&transaction_id)
            .send()
            .await
            .unwrap();

        let outside = run(
            &client,
            &format!("select count(*) from {name} where id in (:a, :b)"),
            vec![param("a", Field::LongValue(id)), param("b", Field::LongValue(id * 10))],
        )
        .await;
        assert_eq!(outside.records(), [vec![Field::LongValue(0)]], "uncommitted rows are invisible");

        let status = if commit {
            client
                .commit_transaction()
                .resource_arn(CLUSTER_ARN)
                .secret_arn(SECRET_ARN)
                .transaction_id(&transaction_id)
                .send()
                .await
                .unwrap()
                .transaction_status
        } else {
            client
                .rollback_transaction()
                .resource_arn(CLUSTER_ARN)
                .secret_arn(SECRET_ARN)
                .transaction_id(&transaction_id)
                .send()
                .await
                .unwrap()
                .transaction_status
        };
        let expected_status = if commit { "Transaction Committed" } else { "Rollback Complete" };
        assert_eq!(status.as_deref(), Some(expected_status));
    }

    let rows = run(&client, &format!("select id from {name} order by id"), vec![]).await;
    assert_eq!(rows.records(), [vec![Field::LongValue(1)], vec![Field::LongValue(10)]]);
}

#[tokio::test]
async fn unknown_transaction_not_found() {
    let client = common::rds_data().await;
    let unknown = "bm90LWEtdHJhbnNhY3Rpb24=";

    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql("select 1")
        .transaction_id(unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::TransactionNotFoundException(_)), "{error:?}");
    assert_eq!(error.message(), Some(format!("Transaction {unknown} is not found").as_str()));

    let error = client
        .commit_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .transaction_id(unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, CommitTransactionError::NotFoundException(_)), "{error:?}");

    // A committed transaction is gone: ending it again is NotFound too.
    let transaction_id = client
        .begin_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .send()
        .await
        .unwrap()
        .transaction_id
        .unwrap();
    client
        .commit_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .transaction_id(&transaction_id)
        .send()
        .await
        .unwrap();
    let error = client
        .rollback_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .transaction_id(&transaction_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, RollbackTransactionError::NotFoundException(_)), "{error:?}");
}

/// Starts a server of its own on an ephemeral port, for settings that the
/// shared one cannot have, and returns a client for it without retries.
async fn own_server(options: local_data_api::Options) -> aws_sdk_rdsdata::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(local_data_api::serve(
        listener,
        local_data_api::Options { database_url: common::pg_url(), ..options },
    ));
    let config = aws_sdk_rdsdata::config::Builder::from(&common::data_api_config().await)
        .endpoint_url(format!("http://{address}"))
        .retry_config(aws_sdk_rdsdata::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_rdsdata::Client::from_conf(config)
}

#[tokio::test]
async fn idle_transaction_expires() {
    // Transactions on this server expire after 200 ms without calls.
    let client = own_server(local_data_api::Options {
        transaction_idle_timeout: std::time::Duration::from_millis(200),
        ..local_data_api::Options::default()
    })
    .await;

    let name = table("expiry");
    run(&common::rds_data().await, &format!("create table {name} (id int)"), vec![]).await;
    let transaction_id = client
        .begin_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .send()
        .await
        .unwrap()
        .transaction_id
        .unwrap();
    client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql(format!("insert into {name} values (1)"))
        .transaction_id(&transaction_id)
        .send()
        .await
        .unwrap();

    // Well past the idle timeout, so the outcome does not depend on timing.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql("select 1")
        .transaction_id(&transaction_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::TransactionNotFoundException(_)), "{error:?}");
    let error = client
        .commit_transaction()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .transaction_id(&transaction_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, CommitTransactionError::NotFoundException(_)), "{error:?}");

    let rows = run(&common::rds_data().await, &format!("select count(*) from {name}"), vec![]).await;
    assert_eq!(rows.records(), [vec![Field::LongValue(0)]], "the expired transaction was rolled back");
}

#[tokio::test]
async fn request_errors_typed() {
    let client = common::rds_data().await;

    let error = try_run(&client, "selec 1", vec![]).await.unwrap_err();
    assert!(matches!(error, ExecuteStatementError::DatabaseErrorException(_)), "{error:?}");
    assert_eq!(error.message(), Some("ERROR: syntax error at or near \"selec\"\n  Position: 1; SQLState: 42601"));

    let error = client
        .execute_statement()
        .secret_arn(SECRET_ARN)
        .sql("select 1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::BadRequestException(_)), "{error:?}");
    assert_eq!(error.message(), Some("resourceArn is required"));

    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn("not-an-arn")
        .sql("select 1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::BadRequestException(_)), "{error:?}");

    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .database("no_such_database")
        .sql("select 1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::DatabaseErrorException(_)), "{error:?}");
    assert!(error.message().unwrap().contains("database \"no_such_database\" does not exist"));

    // ExecuteSql is a retired operation that this server does not serve.
    #[allow(deprecated)]
    let error = client
        .execute_sql()
        .db_cluster_or_instance_arn(CLUSTER_ARN)
        .aws_secret_store_arn(SECRET_ARN)
        .sql_statements("select 1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(error.code(), Some("UnknownOperationException"));
}

#[tokio::test]
async fn response_size_limit_enforced() {
    let client = common::rds_data().await;

    // Two rows of 600,000 characters make a response over 1 MiB.
    let error = try_run(&client, "select repeat('x', 600000) from generate_series(1, 2)", vec![]).await.unwrap_err();
    assert!(matches!(error, ExecuteStatementError::BadRequestException(_)), "{error:?}");
    assert_eq!(error.message(), Some("Database returned more than the allowed response size limit"));

    let output = run(&client, "select repeat('x', 600000)", vec![]).await;
    assert_eq!(output.records().len(), 1);
}

#[tokio::test]
async fn injected_faults_typed() {
    let client = client_without_retries().await;
    let cluster = own_cluster_arn();
    let execute = || client.execute_statement().resource_arn(&cluster).secret_arn(SECRET_ARN).sql("select 1").send();

    queue_fault(serde_json::json!({
        "error": "DatabaseResumingException", "count": 2, "operation": "ExecuteStatement", "resourceArn": cluster,
    }))
    .await;
    for _ in 0..2 {
        let error = execute().await.unwrap_err().into_service_error();
        assert!(matches!(error, ExecuteStatementError::DatabaseResumingException(_)), "{error:?}");
    }
    assert!(execute().await.is_ok(), "the fault is used up after two calls");

    let cases = [
        ("StatementTimeoutException", "StatementTimeoutException"),
        ("DatabaseUnavailableException", "DatabaseUnavailableException"),
        ("InternalServerErrorException", "InternalServerErrorException"),
        ("ServiceUnavailableError", "ServiceUnavailableError"),
    ];
    for (injected, expected_code) in cases {
        queue_fault(serde_json::json!({ "error": injected, "resourceArn": cluster })).await;
        let error = execute().await.unwrap_err().into_service_error();
        assert_eq!(error.code(), Some(expected_code));
        let typed = match &error {
            ExecuteStatementError::StatementTimeoutException(_) => "StatementTimeoutException",
            ExecuteStatementError::DatabaseUnavailableException(_) => "DatabaseUnavailableException",
            ExecuteStatementError::InternalServerErrorException(_) => "InternalServerErrorException",
            ExecuteStatementError::ServiceUnavailableError(_) => "ServiceUnavailableError",
            _ => "other",
        };
        assert_eq!(typed, expected_code, "{error:?}");
    }

    // Faults on another operation leave ExecuteStatement alone, and DELETE clears them.
    queue_fault(serde_json::json!({ "error": "DatabaseResumingException", "operation": "BeginTransaction", "resourceArn": cluster }))
        .await;
    assert!(execute().await.is_ok());
    let (status, body) = local_request("DELETE", &format!("/_local/faults?resourceArn={cluster}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"cleared":1}"#);

    let (status, body) = local_request("POST", "/_local/faults", r#"{"error":"ThrottlingException"}"#).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn server_errors_retried_by_sdk() {
    // With the SDK's default retries, one 500 is retried and the call succeeds,
    // as it would against the service.
    let client = common::rds_data().await;
    let cluster = own_cluster_arn();
    queue_fault(serde_json::json!({ "error": "InternalServerErrorException", "count": 1, "resourceArn": cluster }))
        .await;
    let output =
        client.execute_statement().resource_arn(&cluster).secret_arn(SECRET_ARN).sql("select 1").send().await.unwrap();
    assert_eq!(output.records(), [vec![Field::LongValue(1)]]);
}

#[tokio::test]
async fn statement_timeout_cancels() {
    // Calls on this server time out after 300 ms instead of 45 s.
    let client = own_server(local_data_api::Options {
        statement_timeout: std::time::Duration::from_millis(300),
        ..local_data_api::Options::default()
    })
    .await;
    let error = client
        .execute_statement()
        .resource_arn(CLUSTER_ARN)
        .secret_arn(SECRET_ARN)
        .sql("select pg_sleep(30)")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(error, ExecuteStatementError::StatementTimeoutException(_)), "{error:?}");

    // The cancelled statement no longer runs, so its connection serves the next call.
    let output =
        client.execute_statement().resource_arn(CLUSTER_ARN).secret_arn(SECRET_ARN).sql("select 1").send().await;
    assert_eq!(output.unwrap().records(), [vec![Field::LongValue(1)]]);
}

#[tokio::test]
async fn database_parameter_selects_database() {
    let client = common::rds_data().await;
    for (database, expected) in [(Some("postgres"), "postgres"), (Some(DATABASE), DATABASE), (None, DATABASE)] {
        let output = client
            .execute_statement()
            .resource_arn(CLUSTER_ARN)
            .secret_arn(SECRET_ARN)
            .set_database(database.map(str::to_owned))
            .sql("select current_database()")
            .send()
            .await
            .unwrap();
        assert_eq!(output.records(), [vec![text(expected)]], "database {database:?}");
    }
}

#[tokio::test]
async fn oversized_request_rejected() {
    // The service takes requests of at most 4 MiB.
    let client = common::rds_data().await;
    let large = "x".repeat(5 * 1024 * 1024);
    let error = try_run(&client, "select length(:v)", vec![param("v", text(&large))]).await.unwrap_err();
    assert!(matches!(error, ExecuteStatementError::BadRequestException(_)), "{error:?}");

    let fits = "x".repeat(3 * 1024 * 1024);
    let output = run(&client, "select length(:v)", vec![param("v", text(&fits))]).await;
    assert_eq!(output.records(), [vec![Field::LongValue(3 * 1024 * 1024)]]);
}

#[tokio::test]
async fn open_transaction_not_leaked_to_pool() {
    // A BEGIN sent without a transaction id must not leave a pooled
    // connection inside a transaction for the next caller.
    let client = common::rds_data().await;
    let name = table("leak");
    run(&client, &format!("create table {name} (id int)"), vec![]).await;
    run(&client, "begin", vec![]).await;
    run(&client, &format!("insert into {name} values (1)"), vec![]).await;

    let mut other = common::pg().await;
    let visible =
        other.transaction().await.unwrap().query_one(&format!("select count(*) from {name}"), &[]).await.unwrap();
    assert_eq!(visible.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn unknown_paths_not_found() {
    for (method, path) in [("GET", "/Execute"), ("POST", "/ExecuteSql"), ("POST", "/nothing")] {
        let (status, body) = local_request(method, path, "{}").await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body, format!(r#"{{"message":"No Data API operation at {method} {path}"}}"#));
    }
}
