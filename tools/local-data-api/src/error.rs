//! Errors in the Data API's wire shape: the HTTP status of the service model,
//! the error type in the `x-amzn-errortype` header (which the SDK reads before
//! the body), and a JSON body with `message`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error returned to the caller, named after the service's error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A malformed request: missing or invalid members, unsupported values. HTTP 400.
    #[error("BadRequestException: {0}")]
    BadRequest(String),
    /// PostgreSQL rejected the statement. HTTP 400.
    #[error("DatabaseErrorException: {0}")]
    Database(String),
    /// The transaction id names no open transaction (ExecuteStatement, BatchExecuteStatement). HTTP 404.
    #[error("TransactionNotFoundException: {0}")]
    TransactionNotFound(String),
    /// The transaction id names no open transaction (CommitTransaction, RollbackTransaction). HTTP 404.
    #[error("NotFoundException: {0}")]
    NotFound(String),
    /// The result has a type or shape the service cannot return. HTTP 400.
    #[error("UnsupportedResultException: {0}")]
    UnsupportedResult(String),
    /// The database is resuming from a pause; retry in a few seconds. HTTP 400.
    #[error("DatabaseResumingException: {0}")]
    DatabaseResuming(String),
    /// The writer instance is unavailable. HTTP 504.
    #[error("DatabaseUnavailableException: {0}")]
    DatabaseUnavailable(String),
    /// The statement ran longer than the service allows. HTTP 400.
    #[error("StatementTimeoutException: {0}")]
    StatementTimeout(String),
    /// An internal failure, such as no database connection. HTTP 500.
    #[error("InternalServerErrorException: {0}")]
    InternalServerError(String),
    /// The service is unavailable (the model has no throttling error). HTTP 503.
    #[error("ServiceUnavailableError: {0}")]
    ServiceUnavailable(String),
    /// A path or method that is no Data API operation. HTTP 404.
    #[error("UnknownOperationException: {0}")]
    UnknownOperation(String),
}

impl ApiError {
    /// Returns the error type that goes into `x-amzn-errortype`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequestException",
            Self::Database(_) => "DatabaseErrorException",
            Self::TransactionNotFound(_) => "TransactionNotFoundException",
            Self::NotFound(_) => "NotFoundException",
            Self::UnsupportedResult(_) => "UnsupportedResultException",
            Self::DatabaseResuming(_) => "DatabaseResumingException",
            Self::DatabaseUnavailable(_) => "DatabaseUnavailableException",
            Self::StatementTimeout(_) => "StatementTimeoutException",
            Self::InternalServerError(_) => "InternalServerErrorException",
            Self::ServiceUnavailable(_) => "ServiceUnavailableError",
            Self::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// HTTP status from the service model (botocore `rds-data` 2018-08-01).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_)
            | Self::Database(_)
            | Self::UnsupportedResult(_)
            | Self::DatabaseResuming(_)
            | Self::StatementTimeout(_) => StatusCode::BAD_REQUEST,
            Self::TransactionNotFound(_) | Self::NotFound(_) | Self::UnknownOperation(_) => StatusCode::NOT_FOUND,
            Self::DatabaseUnavailable(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::InternalServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the message in the body.
    pub fn message(&self) -> &str {
        match self {
            Self::BadRequest(message)
            | Self::Database(message)
            | Self::TransactionNotFound(message)
            | Self::NotFound(message)
            | Self::UnsupportedResult(message)
            | Self::DatabaseResuming(message)
            | Self::DatabaseUnavailable(message)
            | Self::StatementTimeout(message)
            | Self::InternalServerError(message)
            | Self::ServiceUnavailable(message)
            | Self::UnknownOperation(message) => message,
        }
    }

    /// Builds the error named `error_type`, for fault injection; `None` when
    /// the name is not one this server can return.
    pub fn from_type(error_type: &str, message: String) -> Option<Self> {
        Some(match error_type {
            "BadRequestException" => Self::BadRequest(message),
            "DatabaseErrorException" => Self::Database(message),
            "DatabaseResumingException" => Self::DatabaseResuming(message),
            "DatabaseUnavailableException" => Self::DatabaseUnavailable(message),
            "StatementTimeoutException" => Self::StatementTimeout(message),
            "InternalServerErrorException" => Self::InternalServerError(message),
            "ServiceUnavailableError" => Self::ServiceUnavailable(message),
            _ => return None,
        })
    }

    /// Formats a PostgreSQL error as Aurora's Data API does, which relays the
    /// JDBC driver's text: `ERROR: <message>`, then `Detail:`, `Hint:` and
    /// `Position:` lines indented by two spaces, then `; SQLState: <code>`.
    pub fn from_postgres(error: &tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            return Self::InternalServerError(format!("Database connection failed: {error}"));
        };
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("\n  Detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("\n  Hint: {hint}"));
        }
        if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
            text.push_str(&format!("\n  Position: {position}"));
        }
        text.push_str(&format!("; SQLState: {}", db.code().code()));
        Self::Database(text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message() }).to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.error_type()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_types_round_trip() {
        for name in [
            "DatabaseResumingException",
            "DatabaseUnavailableException",
            "StatementTimeoutException",
            "InternalServerErrorException",
            "ServiceUnavailableError",
        ] {
            let error = ApiError::from_type(name, "injected".to_owned());
            assert_eq!(error.map(|e| e.error_type()), Some(name));
        }
        assert_eq!(ApiError::from_type("ThrottlingException", String::new()), None);
    }

    #[test]
    fn statuses_match_model() {
        assert_eq!(ApiError::DatabaseUnavailable(String::new()).status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(ApiError::ServiceUnavailable(String::new()).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::NotFound(String::new()).status(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::Database(String::new()).status(), StatusCode::BAD_REQUEST);
    }
}
