//! Parameter binding: turns the request's `SqlParameter`s into values with
//! explicit PostgreSQL types, so that PostgreSQL resolves and rejects them as
//! it does behind Aurora's Data API. A stringValue without a typeHint binds
//! as `varchar`, so a string sent to a uuid or jsonb column fails there too.

use std::collections::HashMap;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::error::ApiError;
use crate::sql::Template;
use crate::wire::SqlParameter;

/// A value sent to PostgreSQL in binary form. Its encoding matches the type
/// that [`BoundParameter::sql_type`] declares for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `varchar` (stringValue) or `text` (stringValue with a typeHint).
    Text(String),
    /// `int8` (longValue).
    Long(i64),
    /// `float8` (doubleValue).
    Double(f64),
    /// `bool` (booleanValue).
    Boolean(bool),
    /// `bytea` (blobValue).
    Bytes(Vec<u8>),
}

/// A parameter ready to bind: its value, the type declared when the statement
/// is prepared, and the cast that a typeHint wraps around its placeholder.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundParameter {
    /// Value to send.
    pub value: Value,
    /// Declared type; `None` lets PostgreSQL infer it from the context (isNull).
    pub sql_type: Option<Type>,
    /// Target type of `CAST($n AS ...)` for a typeHint.
    pub cast: Option<&'static str>,
}

/// A statement ready to prepare: SQL with `$n` placeholders, the declared
/// parameter types and the values in placeholder order.
#[derive(Debug, Clone)]
pub struct BoundStatement {
    /// SQL text sent to PostgreSQL.
    pub sql: String,
    /// Declared types, one per placeholder.
    pub types: Vec<Type>,
    /// Values, one per placeholder.
    pub values: Vec<Value>,
}

/// Binds `parameters` to the named references in `template`.
///
/// Each distinct name becomes one placeholder. A name referenced in the SQL
/// but not supplied is a BadRequestException; supplied but unused parameters
/// are ignored.
pub fn bind_statement(template: &Template, parameters: &[SqlParameter]) -> Result<BoundStatement, ApiError> {
    let mut by_name: HashMap<&str, BoundParameter> = HashMap::new();
    for parameter in parameters {
        let name = parameter.name.as_deref().filter(|name| !name.is_empty()).ok_or_else(|| {
            ApiError::BadRequest("Parameter name is missing; every parameter needs a name".to_owned())
        })?;
        by_name.insert(name, bind_parameter(name, parameter)?);
    }

    let names = template.parameter_names();
    let mut types = Vec::with_capacity(names.len());
    let mut values = Vec::with_capacity(names.len());
    for name in &names {
        let bound = by_name
            .get(name)
            .ok_or_else(|| ApiError::BadRequest(format!("No value specified for parameter :{name}")))?;
        types.push(bound.sql_type.clone().unwrap_or_else(unspecified_type));
        values.push(bound.value.clone());
    }

    let sql = template.render(|name| {
        let index = names.iter().position(|n| *n == name).map_or(0, |i| i + 1);
        match by_name.get(name).and_then(|bound| bound.cast) {
            Some(cast) => format!("CAST(${index} AS {cast})"),
            None => format!("${index}"),
        }
    });
    Ok(BoundStatement { sql, types, values })
}

/// Converts one parameter's value and typeHint.
pub fn bind_parameter(name: &str, parameter: &SqlParameter) -> Result<BoundParameter, ApiError> {
    let value =
        parameter.value.as_ref().ok_or_else(|| ApiError::BadRequest(format!("Parameter :{name} has no value")))?;
    let mut members = value.iter();
    let (kind, member) = match (members.next(), members.next()) {
        (Some(only), None) => only,
        (None, _) => return Err(ApiError::BadRequest(format!("Parameter :{name} has an empty value"))),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "Parameter :{name} has more than one value member; set exactly one"
            )));
        }
    };
    let invalid = || ApiError::BadRequest(format!("Parameter :{name} has an invalid {kind}"));

    let (value, sql_type) = match kind.as_str() {
        "isNull" => match member.as_bool() {
            Some(true) => (Value::Null, None),
            _ => return Err(ApiError::BadRequest(format!("Parameter :{name}: isNull must be true"))),
        },
        "stringValue" => (Value::Text(member.as_str().ok_or_else(invalid)?.to_owned()), Some(Type::VARCHAR)),
        "longValue" => (Value::Long(member.as_i64().ok_or_else(invalid)?), Some(Type::INT8)),
        "doubleValue" => (Value::Double(parse_double(member).ok_or_else(invalid)?), Some(Type::FLOAT8)),
        "booleanValue" => (Value::Boolean(member.as_bool().ok_or_else(invalid)?), Some(Type::BOOL)),
        "blobValue" => {
            use base64::Engine as _;
            let text = member.as_str().ok_or_else(invalid)?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| invalid())?;
            (Value::Bytes(bytes), Some(Type::BYTEA))
        }
        // The service documents that array parameters are not supported.
        "arrayValue" => return Err(ApiError::BadRequest("Array parameters are not supported.".to_owned())),
        other => return Err(ApiError::BadRequest(format!("Parameter :{name} has an unknown value member {other}"))),
    };

    let Some(hint) = parameter.type_hint.as_deref() else {
        return Ok(BoundParameter { value, sql_type, cast: None });
    };
    let cast = hint_cast(hint).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Parameter :{name} has an invalid typeHint {hint}; expected DATE, TIME, TIMESTAMP, DECIMAL, UUID or JSON"
        ))
    })?;
    match &value {
        Value::Null => {}
        Value::Text(text) => validate_hinted_text(name, hint, text)?,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "Parameter :{name} has typeHint {hint}, which applies only to a stringValue"
            )));
        }
    }
    Ok(BoundParameter { value, sql_type: Some(Type::TEXT), cast: Some(cast) })
}

fn hint_cast(hint: &str) -> Option<&'static str> {
    Some(match hint {
        "DATE" => "date",
        "TIME" => "time",
        "TIMESTAMP" => "timestamp",
        "DECIMAL" => "numeric",
        "UUID" => "uuid",
        "JSON" => "json",
        _ => return None,
    })
}

/// Checks the input formats that the service documents for DATE
/// (`YYYY-MM-DD`), TIME (`HH:MM:SS[.FFF]`) and TIMESTAMP
/// (`YYYY-MM-DD HH:MM:SS[.FFF]`). DECIMAL, UUID and JSON text is left to
/// PostgreSQL, which rejects bad input with a DatabaseErrorException.
fn validate_hinted_text(name: &str, hint: &str, text: &str) -> Result<(), ApiError> {
    let (valid, format) = match hint {
        "DATE" => (is_date(text), "YYYY-MM-DD"),
        "TIME" => (is_time(text), "HH:MM:SS[.FFF]"),
        "TIMESTAMP" => (
            text.split_once(' ').is_some_and(|(date, time)| is_date(date) && is_time(time)),
            "YYYY-MM-DD HH:MM:SS[.FFF]",
        ),
        _ => return Ok(()),
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "Parameter :{name} with typeHint {hint} has the invalid value '{text}'; expected {format}"
        )))
    }
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn is_time(text: &str) -> bool {
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    let bytes = clock.as_bytes();
    let clock_valid = bytes.len() == 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && chrono::NaiveTime::parse_from_str(clock, "%H:%M:%S").is_ok();
    let fraction_valid =
        fraction.is_none_or(|digits| (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
    clock_valid && fraction_valid
}

/// Reads a doubleValue: a JSON number, or `NaN`, `Infinity` or `-Infinity`
/// as strings, which is how Smithy's JSON protocols write non-finite doubles.
fn parse_double(member: &serde_json::Value) -> Option<f64> {
    match member {
        serde_json::Value::Number(number) => number.as_f64(),
        serde_json::Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Returns a parameter type with OID 0, which lets PostgreSQL infer the type
/// from the context, as the JDBC driver does for `setNull`.
fn unspecified_type() -> Type {
    Type::new("unspecified".to_owned(), 0, Kind::Pseudo, "pg_catalog".to_owned())
}

impl ToSql for Value {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut as _;
        match self {
            Self::Null => return Ok(IsNull::Yes),
            Self::Text(text) => out.put_slice(text.as_bytes()),
            Self::Long(value) => out.put_i64(*value),
            Self::Double(value) => out.put_f64(*value),
            Self::Boolean(value) => out.put_u8(u8::from(*value)),
            Self::Bytes(bytes) => out.put_slice(bytes),
        }
        Ok(IsNull::No)
    }

    // The statement is prepared with the type that matches each variant's
    // encoding, so every type the server reports back is accepted. An
    // unspecified type only ever carries a NULL.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(name: &str, value: serde_json::Value, hint: Option<&str>) -> SqlParameter {
        SqlParameter {
            name: Some(name.to_owned()),
            value: value.as_object().cloned(),
            type_hint: hint.map(str::to_owned),
        }
    }

    #[test]
    fn value_kinds_bind_with_types() {
        let cases = [
            (serde_json::json!({"stringValue": "x"}), Value::Text("x".to_owned()), Some(Type::VARCHAR)),
            (serde_json::json!({"longValue": -5}), Value::Long(-5), Some(Type::INT8)),
            (serde_json::json!({"doubleValue": 1.5}), Value::Double(1.5), Some(Type::FLOAT8)),
            (serde_json::json!({"booleanValue": true}), Value::Boolean(true), Some(Type::BOOL)),
            (serde_json::json!({"blobValue": "AAH/"}), Value::Bytes(vec![0, 1, 255]), Some(Type::BYTEA)),
            (serde_json::json!({"isNull": true}), Value::Null, None),
        ];
        for (json, value, sql_type) in cases {
            let bound = bind_parameter("p", &parameter("p", json.clone(), None));
            assert_eq!(bound, Ok(BoundParameter { value, sql_type, cast: None }), "for {json}");
        }
    }

    #[test]
    fn non_finite_doubles_bind() {
        let bound = bind_parameter("p", &parameter("p", serde_json::json!({"doubleValue": "-Infinity"}), None));
        assert_eq!(bound.map(|b| b.value), Ok(Value::Double(f64::NEG_INFINITY)));
    }

    #[test]
    fn invalid_values_rejected() {
        let cases = [
            serde_json::json!({}),
            serde_json::json!({"stringValue": "a", "longValue": 1}),
            serde_json::json!({"longValue": "1"}),
            serde_json::json!({"longValue": 1.5}),
            serde_json::json!({"isNull": false}),
            serde_json::json!({"blobValue": "***"}),
            serde_json::json!({"arrayValue": {"longValues": [1]}}),
            serde_json::json!({"structValue": {}}),
        ];
        for json in cases {
            let bound = bind_parameter("p", &parameter("p", json.clone(), None));
            assert!(matches!(bound, Err(ApiError::BadRequest(_))), "for {json}: {bound:?}");
        }
    }

    #[test]
    fn array_parameter_message() {
        let bound = bind_parameter("p", &parameter("p", serde_json::json!({"arrayValue": {"longValues": [1]}}), None));
        assert_eq!(bound, Err(ApiError::BadRequest("Array parameters are not supported.".to_owned())));
    }

    #[test]
    fn type_hint_formats() {
        let cases = [
            ("DATE", "2024-02-29", true),
            ("DATE", "2023-02-29", false),
            ("DATE", "2024/02/01", false),
            ("DATE", "24-02-01", false),
            ("TIME", "23:59:59", true),
            ("TIME", "23:59:59.123", true),
            ("TIME", "23:59:59.123456789", true),
            ("TIME", "24:00:00", false),
            ("TIME", "1:00:00", false),
            ("TIME", "10:00:00.", false),
            ("TIMESTAMP", "2024-01-02 03:04:05", true),
            ("TIMESTAMP", "2024-01-02 03:04:05.678", true),
            ("TIMESTAMP", "2024-01-02T03:04:05", false),
            ("TIMESTAMP", "2024-01-02", false),
            ("DECIMAL", "12.50", true),
            ("UUID", "not checked here", true),
            ("JSON", "{}", true),
        ];
        for (hint, text, valid) in cases {
            let bound = bind_parameter("p", &parameter("p", serde_json::json!({"stringValue": text}), Some(hint)));
            assert_eq!(bound.is_ok(), valid, "{hint} {text}: {bound:?}");
        }
    }

    #[test]
    fn type_hint_needs_string() {
        let bound = bind_parameter("p", &parameter("p", serde_json::json!({"longValue": 1}), Some("DECIMAL")));
        assert!(matches!(bound, Err(ApiError::BadRequest(_))));
        let bound = bind_parameter("p", &parameter("p", serde_json::json!({"stringValue": "1"}), Some("MONEY")));
        assert!(matches!(bound, Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn statement_placeholders_and_casts() {
        let template = Template::parse("insert into t values (:id, :n, :id, :missing_not_used_below)");
        let parameters = [
            parameter("id", serde_json::json!({"stringValue": "6f1c5f9e-0000-4000-8000-000000000000"}), Some("UUID")),
            parameter("n", serde_json::json!({"longValue": 3}), None),
        ];
        let error = bind_statement(&template, &parameters).err();
        assert_eq!(
            error,
            Some(ApiError::BadRequest("No value specified for parameter :missing_not_used_below".to_owned()))
        );

        let template = Template::parse("insert into t values (:id, :n, :id, :gone)");
        let mut parameters = parameters.to_vec();
        parameters.push(parameter("gone", serde_json::json!({"isNull": true}), None));
        parameters.push(parameter("unused", serde_json::json!({"isNull": true}), None));
        let bound = bind_statement(&template, &parameters).expect("binds");
        assert_eq!(bound.sql, "insert into t values (CAST($1 AS uuid), $2, CAST($1 AS uuid), $3)");
        assert_eq!(bound.types[..2], [Type::TEXT, Type::INT8]);
        assert_eq!(bound.types[2].oid(), 0);
        assert_eq!(bound.values.len(), 3);
    }
}
