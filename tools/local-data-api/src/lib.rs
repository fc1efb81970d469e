//! A local stand-in for the Amazon RDS Data API in front of PostgreSQL.
//!
//! It serves the Data API's restJson1 protocol as `aws-sdk-rdsdata` sends
//! it (`POST /Execute`, `/BatchExecute`, `/BeginTransaction`,
//! `/CommitTransaction`, `/RollbackTransaction`) and mirrors the service's
//! behaviour where tests depend on it: parameter typing, result formats,
//! error types and status codes, transaction timeouts and size limits.
//! SigV4 signatures are not checked. Test-only routes live under `/_local/`:
//! `GET /_local/health`, and `POST`/`DELETE /_local/faults` for fault injection.

mod db;
mod error;
mod faults;
mod metadata;
mod params;
mod results;
mod service;
mod sql;
mod transactions;
mod wire;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;
pub use faults::FaultRequest;
pub use sql::{Part, Template};

use service::AppState;

/// The service's request size limit: 4 MiB, headers and JSON included.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// PostgreSQL connection string; its database is the default for requests without `database`.
    pub database_url: String,
    /// Time without calls after which a transaction is rolled back (3 minutes on the service).
    pub transaction_idle_timeout: Duration,
    /// Time after which any transaction is rolled back (24 hours on the service).
    pub transaction_max_lifetime: Duration,
    /// Time a call may run before it fails with StatementTimeoutException (45 s on the service).
    pub statement_timeout: Duration,
    /// Maximum connections per database.
    pub pool_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:54329/pipeline".to_owned(),
            transaction_idle_timeout: Duration::from_secs(3 * 60),
            transaction_max_lifetime: Duration::from_secs(24 * 60 * 60),
            statement_timeout: Duration::from_secs(45),
            pool_size: 32,
        }
    }
}

/// Failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `database_url` is not a valid PostgreSQL connection string.
    #[error("invalid DATABASE_URL: {0}")]
    DatabaseUrl(#[source] tokio_postgres::Error),
    /// The listener failed.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the router, and starts the task that rolls back expired
/// transactions; the task ends when the router is dropped.
pub fn app(options: Options) -> Result<Router, StartError> {
    let wait_timeout = options.statement_timeout;
    let databases =
        db::Databases::new(&options.database_url, options.pool_size, wait_timeout).map_err(StartError::DatabaseUrl)?;
    let state = Arc::new(AppState {
        databases,
        transactions: transactions::Transactions::new(
            options.transaction_idle_timeout,
            options.transaction_max_lifetime,
        ),
        faults: faults::Faults::default(),
        statement_timeout: options.statement_timeout,
    });
    tokio::spawn(sweep_transactions(Arc::downgrade(&state)));

    Ok(Router::new()
        .route("/Execute", post(service::execute_statement).fallback(unknown_operation))
        .route("/BatchExecute", post(service::batch_execute_statement).fallback(unknown_operation))
        .route("/BeginTransaction", post(service::begin_transaction).fallback(unknown_operation))
        .route("/CommitTransaction", post(service::commit_transaction).fallback(unknown_operation))
        .route("/RollbackTransaction", post(service::rollback_transaction).fallback(unknown_operation))
        .route("/_local/health", get(health))
        .route("/_local/faults", post(add_fault).delete(clear_faults))
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(add_request_id))
        .with_state(state))
}

/// Serves the Data API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, options: Options) -> Result<(), StartError> {
    let router = app(options)?;
    axum::serve(listener, router).await?;
    Ok(())
}

async fn sweep_transactions(state: Weak<AppState>) {
    loop {
        let Some(interval) = state.upgrade().map(|state| state.transactions.sweep_interval()) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let ended = state.transactions.sweep();
        if ended > 0 {
            tracing::info!(transactions = ended, "expired transactions rolled back");
        }
    }
}

/// Adds a request id to every response, as the service does.
async fn add_request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let checked = async {
        let connection = state.databases.connect(None).await?;
        connection.simple_query("select 1").await.map_err(|error| ApiError::from_postgres(&error))?;
        Ok::<_, ApiError>(())
    }
    .await;
    match checked {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {}\n", error.message())).into_response()
        }
    }
}

async fn add_fault(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let added = serde_json::from_slice::<FaultRequest>(&body)
        .map_err(|error| format!("Malformed fault: {error}"))
        .and_then(|request| {
            tracing::info!(error_type = %request.error, count = request.count, operation = ?request.operation, "fault queued");
            state.faults.add(request)
        });
    match added {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({ "queued": true }))).into_response(),
        Err(message) => ApiError::BadRequest(message).into_response(),
    }
}

/// Query of `DELETE /_local/faults`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClearFaults {
    /// Clears only this cluster's faults when set.
    resource_arn: Option<String>,
}

async fn clear_faults(State(state): State<Arc<AppState>>, Query(query): Query<ClearFaults>) -> Response {
    let cleared = state.faults.clear(query.resource_arn.as_deref());
    (StatusCode::OK, axum::Json(serde_json::json!({ "cleared": cleared }))).into_response()
}

async fn unknown_operation(method: Method, uri: Uri) -> Response {
    ApiError::UnknownOperation(format!("No Data API operation at {method} {}", uri.path())).into_response()
}
