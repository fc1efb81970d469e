//! Thin calls to the RDS Data API, and the classification of their errors
//! into transient (retry), data (reject the record) and fatal (fail the message).

use std::time::Duration;

use aws_sdk_rdsdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rdsdata::types::{Field, SqlParameter, TypeHint};
use tokio::time::Instant;

use crate::value::{Hint, SqlValue};

/// Handling class of a failed Data API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The call may succeed later: throttling, a resuming or unavailable
    /// database, a statement or network timeout, a lost connection.
    Transient,
    /// The database rejected the data: a type, range or constraint check
    /// (SQLSTATE classes 22 and 23). Retrying the same rows cannot help.
    Data,
    /// Anything else: access, configuration or SQL errors. Retrying in this
    /// invocation cannot help, so the message fails and SQS redelivers it.
    Fatal,
}

/// A failed Data API call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct DbError {
    /// The Data API operation, such as `BatchExecuteStatement`.
    pub operation: &'static str,
    /// How to handle it.
    pub kind: ErrorKind,
    /// Error code, such as `DatabaseErrorException`, or the SDK's failure kind.
    pub code: String,
    /// The service's message.
    pub message: String,
}

impl DbError {
    /// Returns true when retrying the same call later can succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    fn timed_out(operation: &'static str) -> Self {
        Self {
            operation,
            kind: ErrorKind::Transient,
            code: "Timeout".to_owned(),
            message: "the call did not finish before the invocation deadline".to_owned(),
        }
    }
}

/// Classifies an SDK error of any Data API operation.
pub fn classify<E, R>(operation: &'static str, error: SdkError<E, R>) -> DbError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (kind, code, message) = match &error {
        SdkError::TimeoutError(_) => (ErrorKind::Transient, "TimeoutError".to_owned(), format!("{error:?}")),
        SdkError::DispatchFailure(failure) => (ErrorKind::Transient, "DispatchFailure".to_owned(), format!("{failure:?}")),
        SdkError::ResponseError(_) => (ErrorKind::Transient, "ResponseError".to_owned(), format!("{error:?}")),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            (kind_of(&code, &message), code, message)
        }
        _ => (ErrorKind::Fatal, "ConstructionFailure".to_owned(), format!("{error:?}")),
    };
    DbError { operation, kind, code, message }
}

/// Classifies a service error by its code and, for database errors, by the
/// SQLSTATE that Aurora PostgreSQL puts in the message (`SQLState: 22P02`).
pub fn kind_of(code: &str, message: &str) -> ErrorKind {
    match code {
        "ThrottlingException" | "TooManyRequestsException" | "DatabaseResumingException" | "DatabaseUnavailableException"
        | "StatementTimeoutException" | "ServiceUnavailableError" | "ServiceUnavailable" | "InternalServerErrorException"
        | "TransactionNotFoundException" | "RequestTimeout" | "RequestTimeoutException" => ErrorKind::Transient,
        "DatabaseErrorException" | "BadRequestException" => match sql_state(message) {
            Some(state) if state.starts_with("22") || state.starts_with("23") => ErrorKind::Data,
            // Serialization failure and deadlock: the transaction can run again.
            Some("40001" | "40P01") => ErrorKind::Transient,
            // Connection, resource and operator-intervention classes.
            Some(state) if ["08", "53", "57"].iter().any(|class| state.starts_with(class)) => ErrorKind::Transient,
            Some(_) => ErrorKind::Fatal,
            // Without a SQLSTATE, a database error is taken to concern the data.
            None if code == "DatabaseErrorException" => ErrorKind::Data,
            None => ErrorKind::Fatal,
        },
        _ => ErrorKind::Fatal,
    }
}

/// Extracts the five-character SQLSTATE from a Data API error message.
pub fn sql_state(message: &str) -> Option<&str> {
    let at = message.find("SQLState: ")? + "SQLState: ".len();
    let state = message.get(at..at + 5)?;
    state.bytes().all(|b| b.is_ascii_alphanumeric()).then_some(state)
}

/// The cluster, secret and database that every call names.
#[derive(Debug, Clone)]
pub struct Database {
    /// Data API client.
    pub client: aws_sdk_rdsdata::Client,
    /// Aurora cluster ARN.
    pub cluster_arn: String,
    /// Secrets Manager ARN of the database credentials.
    pub secret_arn: String,
    /// Database name.
    pub database: String,
}

impl Database {
    /// Starts a transaction and returns its id.
    pub async fn begin(&self, deadline: Instant) -> Result<String, DbError> {
        const OP: &str = "BeginTransaction";
        let call = self.client.begin_transaction().resource_arn(&self.cluster_arn).secret_arn(&self.secret_arn).database(&self.database).send();
        let output = within(OP, deadline, call).await?.map_err(|error| classify(OP, error))?;
        output.transaction_id.ok_or_else(|| DbError {
            operation: OP,
            kind: ErrorKind::Fatal,
            code: "MissingTransactionId".to_owned(),
            message: "the response has no transactionId".to_owned(),
        })
    }

    /// Commits a transaction.
    pub async fn commit(&self, transaction_id: &str, deadline: Instant) -> Result<(), DbError> {
        const OP: &str = "CommitTransaction";
        let call = self.client.commit_transaction().resource_arn(&self.cluster_arn).secret_arn(&self.secret_arn).transaction_id(transaction_id).send();
        within(OP, deadline, call).await?.map_err(|error| classify(OP, error))?;
        Ok(())
    }

    /// Rolls a transaction back.
    pub async fn rollback(&self, transaction_id: &str, deadline: Instant) -> Result<(), DbError> {
        const OP: &str = "RollbackTransaction";
        let call = self.client.rollback_transaction().resource_arn(&self.cluster_arn).secret_arn(&self.secret_arn).transaction_id(transaction_id).send();
        within(OP, deadline, call).await?.map_err(|error| classify(OP, error))?;
        Ok(())
    }

    /// Runs one statement, inside `transaction_id` when given.
    pub async fn execute(
        &self,
        sql: &str,
        parameters: Vec<SqlParameter>,
        transaction_id: Option<&str>,
        deadline: Instant,
    ) -> Result<aws_sdk_rdsdata::operation::execute_statement::ExecuteStatementOutput, DbError> {
        const OP: &str = "ExecuteStatement";
        let call = self
            .client
            .execute_statement()
            .resource_arn(&self.cluster_arn)
            .secret_arn(&self.secret_arn)
            .database(&self.database)
            .sql(sql)
            .set_parameters((!parameters.is_empty()).then_some(parameters))
            .set_transaction_id(transaction_id.map(str::to_owned))
            .send();
        within(OP, deadline, call).await?.map_err(|error| classify(OP, error))
    }

    /// Runs one statement once per parameter set, inside `transaction_id`.
    pub async fn batch_execute(
        &self,
        sql: &str,
        parameter_sets: Vec<Vec<SqlParameter>>,
        transaction_id: &str,
        deadline: Instant,
    ) -> Result<(), DbError> {
        const OP: &str = "BatchExecuteStatement";
        let call = self
            .client
            .batch_execute_statement()
            .resource_arn(&self.cluster_arn)
            .secret_arn(&self.secret_arn)
            .database(&self.database)
            .sql(sql)
            .set_parameter_sets(Some(parameter_sets))
            .transaction_id(transaction_id)
            .send();
        within(OP, deadline, call).await?.map_err(|error| classify(OP, error))?;
        Ok(())
    }
}

/// Runs `call` but gives up at `deadline`, so that no call outlives the invocation.
async fn within<F: std::future::Future>(operation: &'static str, deadline: Instant, call: F) -> Result<F::Output, DbError> {
    tokio::time::timeout_at(deadline, call).await.map_err(|_| DbError::timed_out(operation))
}

/// Builds a named Data API parameter from a value.
pub fn parameter(name: &str, value: &SqlValue) -> SqlParameter {
    let (field, hint) = match value {
        SqlValue::Null => (Field::IsNull(true), None),
        SqlValue::Text(text) => (Field::StringValue(text.clone()), None),
        SqlValue::Long(number) => (Field::LongValue(*number), None),
        SqlValue::Double(number) => (Field::DoubleValue(*number), None),
        SqlValue::Bool(flag) => (Field::BooleanValue(*flag), None),
        SqlValue::Typed(text, hint) => (Field::StringValue(text.clone()), Some(type_hint(*hint))),
    };
    SqlParameter::builder().name(name).value(field).set_type_hint(hint).build()
}

fn type_hint(hint: Hint) -> TypeHint {
    match hint {
        Hint::Decimal => TypeHint::Decimal,
        Hint::Date => TypeHint::Date,
        Hint::Time => TypeHint::Time,
        Hint::Timestamp => TypeHint::Timestamp,
        Hint::Uuid => TypeHint::Uuid,
        Hint::Json => TypeHint::Json,
    }
}

/// Estimates the bytes a parameter adds to a request's JSON body, an upper
/// bound of `{"name":"…","value":{"stringValue":"…"},"typeHint":"TIMESTAMP"},`.
pub fn parameter_size_bytes(name: &str, value: &SqlValue) -> usize {
    const ENVELOPE_BYTES: usize = 60;
    let value_bytes = match value {
        SqlValue::Null | SqlValue::Bool(_) => 5,
        SqlValue::Long(_) | SqlValue::Double(_) => 25,
        SqlValue::Text(text) | SqlValue::Typed(text, _) => escaped_len(text),
    };
    ENVELOPE_BYTES + name.len() + value_bytes
}

/// Length of `text` once escaped as a JSON string body.
pub fn escaped_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Sleeps for `delay`, but returns false without sleeping when the sleep would end after `deadline`.
pub async fn sleep_before(delay: Duration, deadline: Instant) -> bool {
    if Instant::now() + delay >= deadline {
        return false;
    }
    tokio::time::sleep(delay).await;
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        let cases = [
            ("DatabaseResumingException", "resuming", ErrorKind::Transient),
            ("ThrottlingException", "", ErrorKind::Transient),
            ("StatementTimeoutException", "", ErrorKind::Transient),
            ("ServiceUnavailableError", "", ErrorKind::Transient),
            ("TransactionNotFoundException", "", ErrorKind::Transient),
            ("DatabaseErrorException", "ERROR: invalid input syntax for type numeric: \"abc\"; SQLState: 22P02", ErrorKind::Data),
            ("DatabaseErrorException", "ERROR: null value in column \"x\"; SQLState: 23502", ErrorKind::Data),
            ("DatabaseErrorException", "ERROR: could not serialize access; SQLState: 40001", ErrorKind::Transient),
            ("DatabaseErrorException", "FATAL: too many connections; SQLState: 53300", ErrorKind::Transient),
            ("DatabaseErrorException", "ERROR: relation \"t\" does not exist\n  Position: 13; SQLState: 42P01", ErrorKind::Fatal),
            ("DatabaseErrorException", "no state", ErrorKind::Data),
            ("BadRequestException", "ERROR: value too long; SQLState: 22001", ErrorKind::Data),
            ("BadRequestException", "missing secretArn", ErrorKind::Fatal),
            ("AccessDeniedException", "", ErrorKind::Fatal),
            ("NotFoundException", "", ErrorKind::Fatal),
        ];
        for (code, message, expected) in cases {
            assert_eq!(kind_of(code, message), expected, "{code}: {message}");
        }
    }

    #[test]
    fn sql_state_is_read_from_message() {
        assert_eq!(sql_state("ERROR: x\n  Position: 3; SQLState: 42P01"), Some("42P01"));
        assert_eq!(sql_state("ERROR: x"), None);
        assert_eq!(sql_state("SQLState: 4"), None);
    }

    #[test]
    fn parameters_carry_type_hints() {
        let decimal = parameter("amount", &SqlValue::Typed("12345678901234567.89".into(), Hint::Decimal));
        assert_eq!(decimal.name(), Some("amount"));
        assert_eq!(decimal.type_hint(), Some(&TypeHint::Decimal));
        assert_eq!(decimal.value(), Some(&Field::StringValue("12345678901234567.89".into())));
        let null = parameter("note", &SqlValue::Null);
        assert_eq!(null.value(), Some(&Field::IsNull(true)));
        assert_eq!(null.type_hint(), None);
        assert_eq!(parameter("n", &SqlValue::Long(7)).value(), Some(&Field::LongValue(7)));
    }

    #[test]
    fn escaped_len_counts_json_escapes() {
        assert_eq!(escaped_len("abc"), 3);
        assert_eq!(escaped_len("a\"b\\"), 6);
        assert_eq!(escaped_len("\u{1}"), 6);
        assert_eq!(escaped_len("é"), 2);
    }
}
