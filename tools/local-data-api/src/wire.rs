//! Request and response bodies of the RDS Data API (restJson1, API version
//! 2018-08-01), with the member names that `aws-sdk-rdsdata` serialises.
//! Unknown members, such as `schema` (which the service ignores), are skipped.

use serde::{Deserialize, Serialize};

/// Body of `POST /Execute` (ExecuteStatement).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteStatementRequest {
    /// Cluster ARN.
    pub resource_arn: Option<String>,
    /// Secrets Manager secret ARN.
    pub secret_arn: Option<String>,
    /// SQL text with `:name` parameters.
    pub sql: Option<String>,
    /// Database name; the server's default database when absent.
    pub database: Option<String>,
    /// Named parameters.
    #[serde(default)]
    pub parameters: Vec<SqlParameter>,
    /// Transaction from BeginTransaction; autocommit when absent.
    pub transaction_id: Option<String>,
    /// Whether to return `columnMetadata`.
    #[serde(default)]
    pub include_result_metadata: bool,
    /// Whether the statement goes on after the call times out; accepted and ignored.
    #[serde(default)]
    pub continue_after_timeout: bool,
    /// Options for numeric and bigint results.
    pub result_set_options: Option<ResultSetOptions>,
    /// `NONE` (default) or `JSON`.
    pub format_records_as: Option<String>,
}

/// Body of `POST /BatchExecute` (BatchExecuteStatement).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchExecuteStatementRequest {
    /// Cluster ARN.
    pub resource_arn: Option<String>,
    /// Secrets Manager secret ARN.
    pub secret_arn: Option<String>,
    /// SQL text with `:name` parameters.
    pub sql: Option<String>,
    /// Database name.
    pub database: Option<String>,
    /// One parameter list per execution of the statement.
    #[serde(default)]
    pub parameter_sets: Vec<Vec<SqlParameter>>,
    /// Transaction from BeginTransaction; an implicit transaction when absent.
    pub transaction_id: Option<String>,
}

/// Body of `POST /BeginTransaction`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginTransactionRequest {
    /// Cluster ARN.
    pub resource_arn: Option<String>,
    /// Secrets Manager secret ARN.
    pub secret_arn: Option<String>,
    /// Database name.
    pub database: Option<String>,
}

/// Body of `POST /CommitTransaction` and `POST /RollbackTransaction`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndTransactionRequest {
    /// Cluster ARN.
    pub resource_arn: Option<String>,
    /// Secrets Manager secret ARN.
    pub secret_arn: Option<String>,
    /// Transaction to end.
    pub transaction_id: Option<String>,
}

/// A named parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlParameter {
    /// Name used as `:name` in the SQL text.
    pub name: Option<String>,
    /// Value; the SDK's `Field` union.
    pub value: Option<serde_json::Map<String, serde_json::Value>>,
    /// `DATE`, `TIME`, `TIMESTAMP`, `DECIMAL`, `UUID` or `JSON`.
    pub type_hint: Option<String>,
}

/// Return types of numeric and bigint columns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSetOptions {
    /// `STRING` (default) or `DOUBLE_OR_LONG`.
    pub decimal_return_type: Option<String>,
    /// `LONG` (default) or `STRING`.
    pub long_return_type: Option<String>,
}

/// A value in a result: the `Field` union, one member set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Field {
    /// SQL NULL.
    #[serde(rename = "isNull")]
    IsNull(bool),
    /// bool.
    #[serde(rename = "booleanValue")]
    Boolean(bool),
    /// int2, int4, int8.
    #[serde(rename = "longValue")]
    Long(i64),
    /// float4, float8.
    #[serde(rename = "doubleValue")]
    Double(JsonDouble),
    /// Text forms of every other supported type.
    #[serde(rename = "stringValue")]
    String(String),
    /// bytea, base64 on the wire.
    #[serde(rename = "blobValue")]
    Blob(Base64),
    /// One-dimensional or nested arrays.
    #[serde(rename = "arrayValue")]
    Array(ArrayValue),
}

/// An array result: the `ArrayValue` union, one member set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ArrayValue {
    /// Elements of a bool array.
    #[serde(rename = "booleanValues")]
    Booleans(Vec<Option<bool>>),
    /// Elements of an integer array.
    #[serde(rename = "longValues")]
    Longs(Vec<Option<i64>>),
    /// Elements of a float array.
    #[serde(rename = "doubleValues")]
    Doubles(Vec<Option<JsonDouble>>),
    /// Elements of an array of any other supported type, as text.
    #[serde(rename = "stringValues")]
    Strings(Vec<Option<String>>),
}

/// A double as Smithy's JSON protocols write it: a number, or the strings
/// `NaN`, `Infinity` and `-Infinity`, which JSON numbers cannot express.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JsonDouble(pub f64);

impl Serialize for JsonDouble {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if value.is_infinite() {
            serializer.serialize_str(if value > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            serializer.serialize_f64(value)
        }
    }
}

/// Bytes written as standard base64 with padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

/// Metadata of a result column.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnMetadata {
    /// Column name.
    pub name: String,
    /// JDBC type code (`java.sql.Types`), as PostgreSQL's JDBC driver reports it.
    #[serde(rename = "type")]
    pub jdbc_type: i32,
    /// PostgreSQL type name, such as `int4` or `varchar`.
    pub type_name: String,
    /// Column label; the same as the name.
    pub label: String,
    /// Schema of the source table, or empty.
    pub schema_name: String,
    /// Source table, or empty.
    pub table_name: String,
    /// Whether the column takes its default from a sequence.
    pub is_auto_increment: bool,
    /// Whether the type is a signed number.
    pub is_signed: bool,
    /// Whether the type is `money`.
    pub is_currency: bool,
    /// Whether comparisons of the type are case-sensitive.
    pub is_case_sensitive: bool,
    /// 0 when the column is NOT NULL, 1 when nullable, 2 when unknown.
    pub nullable: i32,
    /// Declared length or precision, in characters or digits.
    pub precision: i32,
    /// Declared scale of a numeric column.
    pub scale: i32,
    /// JDBC type code of the element type of an array column, else 0.
    pub array_base_column_type: i32,
}

/// Response of ExecuteStatement.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteStatementResponse {
    /// Rows, when the statement returns rows and `formatRecordsAs` is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<Vec<Field>>>,
    /// Column metadata, with `includeResultMetadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_metadata: Option<Vec<ColumnMetadata>>,
    /// Rows changed by INSERT, UPDATE or DELETE, and 0 for statements that
    /// return rows. NOTE: the count for `INSERT ... RETURNING` on Aurora is unverified.
    pub number_of_records_updated: u64,
    /// Always empty: Aurora PostgreSQL returns no generated fields (use RETURNING).
    pub generated_fields: Vec<Field>,
    /// Rows as a JSON array text, with `formatRecordsAs: JSON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted_records: Option<String>,
}

/// Response of BatchExecuteStatement.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchExecuteStatementResponse {
    /// One entry per parameter set.
    pub update_results: Vec<UpdateResult>,
}

/// Result of one parameter set of a batch.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResult {
    /// Always empty, as for ExecuteStatement.
    pub generated_fields: Vec<Field>,
}

/// Response of BeginTransaction.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginTransactionResponse {
    /// Identifier to pass to later calls.
    pub transaction_id: String,
}

/// Response of CommitTransaction and RollbackTransaction.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndTransactionResponse {
    /// `Transaction Committed` or `Rollback Complete`.
    pub transaction_status: String,
}
