//! The five Data API operations, from request body to response body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Statement};

use crate::db::Databases;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::metadata::column_metadata;
use crate::params::{BoundStatement, bind_statement};
use crate::results::{RawValue, ReturnTypes, decode_field, format_json};
use crate::sql::Template;
use crate::transactions::{Transaction, Transactions};
use crate::wire::{
    BatchExecuteStatementRequest, BatchExecuteStatementResponse, BeginTransactionRequest, BeginTransactionResponse,
    EndTransactionRequest, EndTransactionResponse, ExecuteStatementRequest, ExecuteStatementResponse, Field,
    UpdateResult,
};

/// The service's response size limit for records: 1 MiB.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The service's size limit for `formattedRecords` (JSON format): 10 MiB.
const MAX_FORMATTED_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// The service's limit on SQL text (`SqlStatement`: at most 65,536 characters).
const MAX_SQL_CHARS: usize = 65_536;

/// Shared state of the server.
#[derive(Debug)]
pub struct AppState {
    /// Connection pools.
    pub databases: Databases,
    /// Open transactions.
    pub transactions: Transactions,
    /// Queued injected faults.
    pub faults: Faults,
    /// How long a call may run before it fails with StatementTimeoutException.
    pub statement_timeout: Duration,
}

type Body = Result<Bytes, BytesRejection>;

/// `POST /Execute`.
pub async fn execute_statement(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = async {
        let request: ExecuteStatementRequest = parse_body(body)?;
        let resource_arn = check_arns(request.resource_arn.as_deref(), request.secret_arn.as_deref())?;
        take_fault(&state, "ExecuteStatement", resource_arn)?;
        execute(&state, &request, resource_arn).await
    }
    .await;
    respond("ExecuteStatement", started, result)
}

/// `POST /BatchExecute`.
pub async fn batch_execute_statement(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = async {
        let request: BatchExecuteStatementRequest = parse_body(body)?;
        let resource_arn = check_arns(request.resource_arn.as_deref(), request.secret_arn.as_deref())?;
        take_fault(&state, "BatchExecuteStatement", resource_arn)?;
        batch_execute(&state, &request, resource_arn).await
    }
    .await;
    respond("BatchExecuteStatement", started, result)
}

/// `POST /BeginTransaction`.
pub async fn begin_transaction(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = async {
        let request: BeginTransactionRequest = parse_body(body)?;
        let resource_arn = check_arns(request.resource_arn.as_deref(), request.secret_arn.as_deref())?;
        take_fault(&state, "BeginTransaction", resource_arn)?;
        let connection = state.databases.connect(request.database.as_deref()).await?;
        let transaction = state.transactions.begin(resource_arn, connection).await?;
        tracing::info!(transaction_id = %transaction.id, "transaction started");
        to_json(&BeginTransactionResponse { transaction_id: transaction.id.clone() }, MAX_RESPONSE_BYTES)
    }
    .await;
    respond("BeginTransaction", started, result)
}

/// `POST /CommitTransaction`.
pub async fn commit_transaction(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = end_transaction(&state, body, "CommitTransaction", "COMMIT", "Transaction Committed").await;
    respond("CommitTransaction", started, result)
}

/// `POST /RollbackTransaction`.
pub async fn rollback_transaction(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let started = Instant::now();
    let result = end_transaction(&state, body, "RollbackTransaction", "ROLLBACK", "Rollback Complete").await;
    respond("RollbackTransaction", started, result)
}

async fn end_transaction(
    state: &AppState,
    body: Body,
    operation: &str,
    command: &str,
    status: &str,
) -> Result<Vec<u8>, ApiError> {
    let request: EndTransactionRequest = parse_body(body)?;
    let resource_arn = check_arns(request.resource_arn.as_deref(), request.secret_arn.as_deref())?;
    let id = request
        .transaction_id
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("transactionId is required".to_owned()))?;
    take_fault(state, operation, resource_arn)?;

    let not_found = || ApiError::NotFound(format!("Transaction {id} is not found"));
    let transaction = state.transactions.remove(id, resource_arn).ok_or_else(not_found)?;
    let connection = transaction.lock().await.take().ok_or_else(not_found)?;
    // A failed COMMIT still ends the transaction, so the connection goes
    // back to the pool either way.
    connection.batch_execute(command).await.map_err(|error| ApiError::from_postgres(&error))?;
    tracing::info!(transaction_id = %id, command, "transaction ended");
    to_json(&EndTransactionResponse { transaction_status: status.to_owned() }, MAX_RESPONSE_BYTES)
}

async fn execute(state: &AppState, request: &ExecuteStatementRequest, resource_arn: &str) -> Result<Vec<u8>, ApiError> {
    let sql = check_sql(request.sql.as_deref())?;
    let return_types = ReturnTypes::from_options(request.result_set_options.as_ref())?;
    let as_json = match request.format_records_as.as_deref() {
        None | Some("NONE") => false,
        Some("JSON") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("Invalid formatRecordsAs {other}; expected NONE or JSON")));
        }
    };
    let bound = bind_statement(&Template::parse(sql), &request.parameters)?;

    let output = match request.transaction_id.as_deref() {
        Some(id) => {
            let transaction = find_transaction(state, id, resource_arn)?;
            let guard = transaction.lock().await;
            let connection = guard.as_ref().ok_or_else(|| transaction_not_found(id))?;
            let output = with_timeout(state, connection, request.continue_after_timeout, async {
                query(connection, &bound, request.include_result_metadata, return_types).await
            })
            .await;
            transaction.touch();
            output?
        }
        None => {
            let connection = state.databases.connect(request.database.as_deref()).await?;
            with_timeout(state, &connection, request.continue_after_timeout, async {
                query(&connection, &bound, request.include_result_metadata, return_types).await
            })
            .await?
        }
    };

    let mut response = ExecuteStatementResponse {
        number_of_records_updated: output.updated,
        column_metadata: output.metadata,
        ..ExecuteStatementResponse::default()
    };
    if let Some((names, rows)) = output.rows {
        if as_json {
            response.formatted_records = Some(format_json(&names, &rows)?);
        } else {
            response.records = Some(rows);
        }
    }
    let limit = if as_json { MAX_FORMATTED_RESPONSE_BYTES } else { MAX_RESPONSE_BYTES };
    to_json(&response, limit)
}

/// Output of one statement.
struct QueryOutput {
    /// Column names and rows, for a statement that returns rows.
    rows: Option<(Vec<String>, Vec<Vec<Field>>)>,
    /// Rows changed; 0 for a statement that returns rows.
    updated: u64,
    /// Column metadata when requested.
    metadata: Option<Vec<crate::wire::ColumnMetadata>>,
}

async fn query(
    client: &tokio_postgres::Client,
    bound: &BoundStatement,
    include_metadata: bool,
    return_types: ReturnTypes,
) -> Result<QueryOutput, ApiError> {
    let statement = prepare(client, bound).await?;
    let values = parameter_refs(bound);
    if statement.columns().is_empty() {
        let updated = client.execute(&statement, &values).await.map_err(|error| ApiError::from_postgres(&error))?;
        return Ok(QueryOutput { rows: None, updated, metadata: None });
    }

    let rows = client.query(&statement, &values).await.map_err(|error| ApiError::from_postgres(&error))?;
    let columns = statement.columns();
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut record = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let raw: RawValue<'_> =
                row.try_get(index).map_err(|error| ApiError::InternalServerError(error.to_string()))?;
            record.push(decode_field(column.type_(), raw.0, return_types)?);
        }
        records.push(record);
    }
    let metadata = if include_metadata { Some(column_metadata(client, columns).await?) } else { None };
    let names = columns.iter().map(|column| column.name().to_owned()).collect();
    Ok(QueryOutput { rows: Some((names, records)), updated: 0, metadata })
}

/// Prepares the statement with the declared parameter types.
///
/// NOTE: a prepared statement contains one SQL command, so text with several
/// commands fails here (SQLState 42601). Whether Aurora's Data API accepts
/// several commands in one call has not been checked.
async fn prepare(client: &tokio_postgres::Client, bound: &BoundStatement) -> Result<Statement, ApiError> {
    client.prepare_typed(&bound.sql, &bound.types).await.map_err(|error| ApiError::from_postgres(&error))
}

fn parameter_refs(bound: &BoundStatement) -> Vec<&(dyn ToSql + Sync)> {
    bound.values.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

/// Runs `work` within the statement timeout (45 s on the service). On
/// timeout the statement is cancelled, unless the caller asked it to
/// continue, and the call fails with StatementTimeoutException either way.
async fn with_timeout<T>(
    state: &AppState,
    client: &tokio_postgres::Client,
    continue_after_timeout: bool,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.statement_timeout, work).await {
        Ok(result) => result,
        Err(_) => {
            if !continue_after_timeout && let Err(error) = client.cancel_token().cancel_query(NoTls).await {
                tracing::warn!(%error, "cancelling a timed-out statement failed");
            }
            Err(ApiError::StatementTimeout("Request timed out".to_owned()))
        }
    }
}

async fn batch_execute(
    state: &AppState,
    request: &BatchExecuteStatementRequest,
    resource_arn: &str,
) -> Result<Vec<u8>, ApiError> {
    let sql = check_sql(request.sql.as_deref())?;
    let template = Template::parse(sql);
    let bound_sets =
        request.parameter_sets.iter().map(|set| bind_statement(&template, set)).collect::<Result<Vec<_>, _>>()?;

    match request.transaction_id.as_deref() {
        Some(id) => {
            let transaction = find_transaction(state, id, resource_arn)?;
            let guard = transaction.lock().await;
            let connection = guard.as_ref().ok_or_else(|| transaction_not_found(id))?;
            let result = with_timeout(state, connection, false, run_sets(connection, &bound_sets)).await;
            transaction.touch();
            result?;
        }
        None => {
            // Without a transaction id the service runs all sets in one
            // implicit transaction: either every set is applied or none.
            let connection = state.databases.connect(request.database.as_deref()).await?;
            connection.batch_execute("BEGIN").await.map_err(|error| ApiError::from_postgres(&error))?;
            let result = with_timeout(state, &connection, false, run_sets(&connection, &bound_sets)).await;
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = connection.batch_execute(end).await;
            result?;
            ended.map_err(|error| ApiError::from_postgres(&error))?;
        }
    }

    let update_results = bound_sets.iter().map(|_| UpdateResult::default()).collect();
    to_json(&BatchExecuteStatementResponse { update_results }, MAX_RESPONSE_BYTES)
}

/// Runs one statement per parameter set, preparing once per distinct set
/// of parameter types (a set with isNull binds differently from one with a
/// value). The executions are pipelined on the one connection, so they still
/// run in order, and the first failure in that order is returned.
async fn run_sets(client: &tokio_postgres::Client, bound_sets: &[BoundStatement]) -> Result<(), ApiError> {
    let mut prepared: Vec<(&str, &[Type], Statement)> = Vec::new();
    let mut statements = Vec::with_capacity(bound_sets.len());
    for bound in bound_sets {
        let cached = prepared.iter().find(|(sql, types, _)| *sql == bound.sql && *types == bound.types.as_slice());
        let statement = match cached {
            Some((_, _, statement)) => statement.clone(),
            None => {
                let statement = prepare(client, bound).await?;
                prepared.push((&bound.sql, &bound.types, statement.clone()));
                statement
            }
        };
        statements.push(statement);
    }

    let executions = statements
        .iter()
        .zip(bound_sets)
        .map(|(statement, bound)| async move { client.execute(statement, &parameter_refs(bound)).await });
    for result in futures::future::join_all(executions).await {
        result.map_err(|error| ApiError::from_postgres(&error))?;
    }
    Ok(())
}

fn find_transaction(state: &AppState, id: &str, resource_arn: &str) -> Result<Arc<Transaction>, ApiError> {
    state.transactions.find(id, resource_arn).ok_or_else(|| transaction_not_found(id))
}

/// Builds the error for an unknown transaction id in ExecuteStatement and
/// BatchExecuteStatement. CommitTransaction and RollbackTransaction return
/// NotFoundException instead, because only their error enums have it in the SDK.
fn transaction_not_found(id: &str) -> ApiError {
    ApiError::TransactionNotFound(format!("Transaction {id} is not found"))
}

fn take_fault(state: &AppState, operation: &str, resource_arn: &str) -> Result<(), ApiError> {
    match state.faults.take(operation, Some(resource_arn)) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Parses a JSON request body; an empty body counts as `{}`.
fn parse_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "Cannot read the request body (at most {} MiB): {rejection}",
            crate::MAX_REQUEST_BYTES >> 20
        ))
    })?;
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    serde_json::from_slice(bytes).map_err(|error| ApiError::BadRequest(format!("Malformed request body: {error}")))
}

/// Checks that both ARNs are present and well formed, and returns the cluster ARN.
fn check_arns<'a>(resource_arn: Option<&'a str>, secret_arn: Option<&str>) -> Result<&'a str, ApiError> {
    let resource_arn = resource_arn.ok_or_else(|| ApiError::BadRequest("resourceArn is required".to_owned()))?;
    let secret_arn = secret_arn.ok_or_else(|| ApiError::BadRequest("secretArn is required".to_owned()))?;
    if !is_arn(resource_arn, "rds", "cluster") {
        return Err(ApiError::BadRequest(format!(
            "Invalid resourceArn {resource_arn}; expected arn:aws:rds:<region>:<account id>:cluster:<cluster id>"
        )));
    }
    if !is_arn(secret_arn, "secretsmanager", "secret") {
        return Err(ApiError::BadRequest(format!(
            "Invalid secretArn {secret_arn}; expected arn:aws:secretsmanager:<region>:<account id>:secret:<name>"
        )));
    }
    Ok(resource_arn)
}

/// Returns whether `arn` is `arn:<partition>:<service>:<region>:<12-digit account>:<resource_type>:<name>`
/// within the service's `Arn` length limits of 11 to 100 characters.
fn is_arn(arn: &str, service: &str, resource_type: &str) -> bool {
    let fields: Vec<&str> = arn.splitn(7, ':').collect();
    (11..=100).contains(&arn.len())
        && fields.len() == 7
        && fields[0] == "arn"
        && fields[1].starts_with("aws")
        && fields[2] == service
        && !fields[3].is_empty()
        && fields[4].len() == 12
        && fields[4].bytes().all(|b| b.is_ascii_digit())
        && fields[5] == resource_type
        && !fields[6].is_empty()
}

fn check_sql(sql: Option<&str>) -> Result<&str, ApiError> {
    let sql = sql.ok_or_else(|| ApiError::BadRequest("sql is required".to_owned()))?;
    if sql.trim().is_empty() {
        return Err(ApiError::BadRequest("sql is empty".to_owned()));
    }
    if sql.chars().count() > MAX_SQL_CHARS {
        return Err(ApiError::BadRequest(format!("sql is longer than {MAX_SQL_CHARS} characters")));
    }
    Ok(sql)
}

/// Serialises a response body, failing as the service does when it is
/// larger than `limit_bytes`.
///
/// TODO: the service also limits each row of a result to 64 KB, which is
/// not enforced here.
fn to_json<T: Serialize>(body: &T, limit_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|error| ApiError::InternalServerError(error.to_string()))?;
    if bytes.len() > limit_bytes {
        // NOTE: the error type for an oversized response is a guess; Aurora
        // Serverless v1 returned this message as a BadRequestException.
        return Err(ApiError::BadRequest("Database returned more than the allowed response size limit".to_owned()));
    }
    Ok(bytes)
}

/// Turns an operation's outcome into the HTTP response and logs it.
fn respond(operation: &'static str, started: Instant, result: Result<Vec<u8>, ApiError>) -> Response {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(body) => {
            tracing::info!(operation, elapsed_ms, response_bytes = body.len(), "call succeeded");
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            tracing::info!(
                operation,
                elapsed_ms,
                error_type = error.error_type(),
                error = error.message(),
                "call failed"
            );
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_shapes() {
        assert!(is_arn("arn:aws:rds:us-east-1:000000000000:cluster:local", "rds", "cluster"));
        assert!(is_arn("arn:aws-cn:rds:cn-north-1:123456789012:cluster:a-b", "rds", "cluster"));
        assert!(is_arn("arn:aws:secretsmanager:us-east-1:000000000000:secret:local", "secretsmanager", "secret"));
        assert!(!is_arn("arn:aws:rds:us-east-1:000000000000:db:local", "rds", "cluster"));
        assert!(!is_arn("arn:aws:rds:us-east-1:0000:cluster:local", "rds", "cluster"));
        assert!(!is_arn("arn:aws:rds:us-east-1:000000000000:cluster:", "rds", "cluster"));
        assert!(!is_arn("local", "rds", "cluster"));
    }

    #[test]
    fn missing_arns_are_bad_requests() {
        assert_eq!(check_arns(None, Some("x")), Err(ApiError::BadRequest("resourceArn is required".to_owned())));
        let cluster = "arn:aws:rds:us-east-1:000000000000:cluster:local";
        assert_eq!(check_arns(Some(cluster), None), Err(ApiError::BadRequest("secretArn is required".to_owned())));
    }

    #[test]
    fn oversized_response_rejected() {
        let body = "x".repeat(100);
        assert!(to_json(&body, 200).is_ok());
        assert!(matches!(to_json(&body, 50), Err(ApiError::BadRequest(_))));
    }
}
