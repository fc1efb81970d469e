//! Conversion of one record field to a typed SQL parameter value.
//!
//! Values arrive as the raw JSON text of the record, so a number such as
//! `12345678901234567.89` is still the text its file contained. Decimals and
//! date and time values stay text and travel to the Data API as strings with
//! a type hint. Only `double` columns pass through `f64`.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::value::RawValue;

/// Texts that mean true for a boolean column unless the mapping sets its own.
pub const TRUE_VALUES: &[&str] = &["true", "t", "yes", "y", "1"];
/// Texts that mean false for a boolean column unless the mapping sets its own.
pub const FALSE_VALUES: &[&str] = &["false", "f", "no", "n", "0"];

/// The type of a target column, which selects the conversion and the type hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `text`, `varchar`: the value's text.
    Text,
    /// `integer`: 32-bit signed.
    Integer,
    /// `bigint`: 64-bit signed.
    Bigint,
    /// `numeric`: exact decimal, sent as text with the `DECIMAL` hint.
    Numeric,
    /// `double precision`: 64-bit float.
    Double,
    /// `boolean`.
    Boolean,
    /// `date`, sent as `YYYY-MM-DD` with the `DATE` hint.
    Date,
    /// `time`, sent as `HH:MM:SS[.fff]` with the `TIME` hint.
    Time,
    /// `timestamp` without time zone, sent as `YYYY-MM-DD HH:MM:SS[.fff]` with the `TIMESTAMP` hint.
    Timestamp,
    /// A source time with an offset, converted to UTC and sent like [`ColumnType::Timestamp`].
    Timestamptz,
    /// `uuid`, sent in hyphenated form with the `UUID` hint.
    Uuid,
    /// `json` or `jsonb`, sent as JSON text with the `JSON` hint.
    Json,
}

impl ColumnType {
    /// The type names a mapping accepts, for messages.
    pub const NAMES: &'static str = "text, integer, bigint, numeric, double, boolean, date, time, timestamp, timestamptz, uuid, json";

    /// Parses a type name of a mapping file.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "text" => Self::Text,
            "integer" => Self::Integer,
            "bigint" => Self::Bigint,
            "numeric" => Self::Numeric,
            "double" => Self::Double,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::Timestamptz,
            "uuid" => Self::Uuid,
            "json" => Self::Json,
            _ => return None,
        })
    }

    /// Returns true for types whose text is parsed with chrono formats.
    pub fn takes_formats(self) -> bool {
        matches!(self, Self::Date | Self::Time | Self::Timestamp | Self::Timestamptz)
    }

    /// Returns the chrono formats tried when a mapping sets none.
    ///
    /// `timestamptz` also always accepts RFC 3339 (`2024-03-05T14:07:09.120+02:00`, `...Z`).
    pub fn default_formats(self) -> &'static [&'static str] {
        match self {
            Self::Date => &["%Y-%m-%d"],
            Self::Time => &["%H:%M:%S%.f", "%H:%M"],
            Self::Timestamp => &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d"],
            Self::Timestamptz => &["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"],
            _ => &[],
        }
    }
}

/// The Data API type hint of a string parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// `DECIMAL`: the string is cast to numeric.
    Decimal,
    /// `DATE`: `YYYY-MM-DD`.
    Date,
    /// `TIME`: `HH:MM:SS[.FFF]`.
    Time,
    /// `TIMESTAMP`: `YYYY-MM-DD HH:MM:SS[.FFF]`.
    Timestamp,
    /// `UUID`.
    Uuid,
    /// `JSON`.
    Json,
}

/// A parameter value ready for the Data API.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL (`isNull`).
    Null,
    /// `stringValue` without a hint.
    Text(String),
    /// `longValue`.
    Long(i64),
    /// `doubleValue`.
    Double(f64),
    /// `booleanValue`.
    Bool(bool),
    /// `stringValue` with a type hint.
    Typed(String, Hint),
}

/// One field of a record, classified by its JSON kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// The record has no such field.
    Missing,
    /// JSON `null`.
    Null,
    /// A JSON string, unescaped.
    Text(Cow<'a, str>),
    /// A JSON number, as written.
    Number(&'a str),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON object or array, as written.
    Composite(&'a str),
}

/// Classifies a raw JSON value; `None` is a missing field.
pub fn classify(raw: Option<&RawValue>) -> Input<'_> {
    let Some(raw) = raw else { return Input::Missing };
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<Cow<'_, str>>(text) {
            Ok(value) => Input::Text(value),
            // Unreachable for a RawValue, which is valid JSON; kept as text rather than panicking.
            Err(_) => Input::Composite(text),
        },
        Some(b'n') => Input::Null,
        Some(b't') => Input::Bool(true),
        Some(b'f') => Input::Bool(false),
        Some(b'{' | b'[') => Input::Composite(text),
        _ => Input::Number(text),
    }
}

impl Input<'_> {
    /// Returns the value as text: strings (trimmed when `trim`), numbers and
    /// booleans as written, objects and arrays as JSON; `None` when missing or null.
    pub fn as_text(&self, trim: bool) -> Option<Cow<'_, str>> {
        match self {
            Self::Missing | Self::Null => None,
            Self::Text(text) if trim => Some(Cow::Borrowed(text.trim())),
            Self::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            Self::Number(text) | Self::Composite(text) => Some(Cow::Borrowed(text)),
            Self::Bool(true) => Some(Cow::Borrowed("true")),
            Self::Bool(false) => Some(Cow::Borrowed("false")),
        }
    }
}

/// Converts one field for `column`, applying trim, null markers, the default
/// and `required`. The error is the reason the record is rejected.
pub fn convert(column: &crate::mapping::SourceColumn, input: Input<'_>) -> Result<SqlValue, String> {
    let input = match input {
        Input::Text(text) => {
            let text = if column.trim { Cow::Owned(text.trim().to_owned()) } else { text };
            if column.null_markers.iter().any(|marker| *marker == text) { Input::Null } else { Input::Text(text) }
        }
        other => other,
    };

    let input = match input {
        Input::Missing | Input::Null => match &column.default {
            Some(default) => Input::Text(Cow::Borrowed(default.as_str())),
            None if column.required => return Err(format!("field {:?} is required but missing or null", column.field)),
            None => return Ok(SqlValue::Null),
        },
        other => other,
    };

    convert_present(column, &input).map_err(|reason| format!("field {:?}: {reason}", column.field))
}

fn convert_present(column: &crate::mapping::SourceColumn, input: &Input<'_>) -> Result<SqlValue, String> {
    use ColumnType as T;

    if let (Input::Composite(_), t) = (input, column.column_type)
        && t != T::Json
    {
        return Err(format!("expected a single value for type {}, found a JSON object or array", type_name(t)));
    }
    let text = input.as_text(false).unwrap_or_default();

    match column.column_type {
        T::Text => Ok(SqlValue::Text(text.into_owned())),
        T::Integer => match input {
            Input::Bool(_) => Err(format!("{text} is not an integer")),
            _ => text.parse::<i32>().map(|n| SqlValue::Long(n.into())).map_err(|_| format!("{text:?} is not a 32-bit integer")),
        },
        T::Bigint => match input {
            Input::Bool(_) => Err(format!("{text} is not an integer")),
            _ => text.parse::<i64>().map(SqlValue::Long).map_err(|_| format!("{text:?} is not a 64-bit integer")),
        },
        T::Numeric => {
            if is_decimal(&text) {
                Ok(SqlValue::Typed(text.into_owned(), Hint::Decimal))
            } else {
                Err(format!("{text:?} is not a decimal number"))
            }
        }
        T::Double => match input {
            Input::Bool(_) => Err(format!("{text} is not a number")),
            _ => match text.parse::<f64>() {
                Ok(n) if n.is_finite() && is_decimal(&text) => Ok(SqlValue::Double(n)),
                _ => Err(format!("{text:?} is not a finite number")),
            },
        },
        T::Boolean => match input {
            Input::Bool(b) => Ok(SqlValue::Bool(*b)),
            _ if column.true_values.iter().any(|v| v.eq_ignore_ascii_case(&text)) => Ok(SqlValue::Bool(true)),
            _ if column.false_values.iter().any(|v| v.eq_ignore_ascii_case(&text)) => Ok(SqlValue::Bool(false)),
            _ => Err(format!(
                "{text:?} is not a boolean; expected one of {} or {}",
                column.true_values.join("/"),
                column.false_values.join("/")
            )),
        },
        T::Date => {
            let date = first_parse(&column.formats, |format| NaiveDate::parse_from_str(&text, format).ok())
                .ok_or_else(|| format!("{text:?} is not a date in format {}", column.formats.join(" or ")))?;
            Ok(SqlValue::Typed(date.format("%Y-%m-%d").to_string(), Hint::Date))
        }
        T::Time => {
            let time = first_parse(&column.formats, |format| NaiveTime::parse_from_str(&text, format).ok())
                .ok_or_else(|| format!("{text:?} is not a time in format {}", column.formats.join(" or ")))?;
            Ok(SqlValue::Typed(time.format("%H:%M:%S%.f").to_string(), Hint::Time))
        }
        T::Timestamp => {
            let timestamp = first_parse(&column.formats, |format| parse_naive_datetime(&text, format))
                .ok_or_else(|| format!("{text:?} is not a timestamp in format {}", column.formats.join(" or ")))?;
            Ok(SqlValue::Typed(format_timestamp(timestamp), Hint::Timestamp))
        }
        T::Timestamptz => {
            // A text with an offset is converted to UTC; one without is taken as UTC.
            let utc = DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|time| time.with_timezone(&Utc).naive_utc())
                .or_else(|| {
                    first_parse(&column.formats, |format| {
                        DateTime::parse_from_str(&text, format)
                            .ok()
                            .map(|time| time.with_timezone(&Utc).naive_utc())
                            .or_else(|| parse_naive_datetime(&text, format))
                    })
                })
                .ok_or_else(|| format!("{text:?} is not a timestamp in RFC 3339 or format {}", column.formats.join(" or ")))?;
            Ok(SqlValue::Typed(format_timestamp(utc), Hint::Timestamp))
        }
        T::Uuid => uuid::Uuid::parse_str(&text)
            .map(|id| SqlValue::Typed(id.hyphenated().to_string(), Hint::Uuid))
            .map_err(|_| format!("{text:?} is not a UUID")),
        T::Json => match input {
            // A JSON string contains JSON text, as a CSV cell would.
            Input::Text(inner) => match serde_json::from_str::<serde::de::IgnoredAny>(inner) {
                Ok(_) => Ok(SqlValue::Typed(inner.to_string(), Hint::Json)),
                Err(error) => Err(format!("text is not valid JSON: {error}")),
            },
            _ => Ok(SqlValue::Typed(text.into_owned(), Hint::Json)),
        },
    }
}

fn first_parse<T>(formats: &[String], parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    formats.iter().find_map(|format| parse(format))
}

/// Parses a date and time, or a date alone at midnight when the format has no time.
fn parse_naive_datetime(text: &str, format: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, format)
        .ok()
        .or_else(|| NaiveDate::parse_from_str(text, format).ok().map(|date| date.and_time(NaiveTime::MIN)))
}

/// Formats a timestamp as the Data API's TIMESTAMP hint expects: `YYYY-MM-DD HH:MM:SS[.fff]`.
pub fn format_timestamp(timestamp: NaiveDateTime) -> String {
    timestamp.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

/// Returns true for a plain decimal: optional sign, digits with an optional
/// fraction, optional exponent. PostgreSQL's numeric input accepts all of them.
fn is_decimal(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = (!whole.is_empty() || !fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|exponent| {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        !exponent.is_empty() && digits(exponent)
    });
    mantissa_ok && exponent_ok
}

fn type_name(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Text => "text",
        ColumnType::Integer => "integer",
        ColumnType::Bigint => "bigint",
        ColumnType::Numeric => "numeric",
        ColumnType::Double => "double",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Timestamptz => "timestamptz",
        ColumnType::Uuid => "uuid",
        ColumnType::Json => "json",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mapping::SourceColumn;

    fn column(column_type: ColumnType) -> SourceColumn {
        SourceColumn {
            field: "f".into(),
            column_type,
            formats: column_type.default_formats().iter().map(|format| (*format).to_owned()).collect(),
            null_markers: vec![String::new(), "NA".into()],
            trim: true,
            default: None,
            required: false,
            true_values: TRUE_VALUES.iter().map(|v| (*v).to_owned()).collect(),
            false_values: FALSE_VALUES.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn with_formats(column_type: ColumnType, formats: &[&str]) -> SourceColumn {
        SourceColumn { formats: formats.iter().map(|format| (*format).to_owned()).collect(), ..column(column_type) }
    }

    /// Converts the raw JSON `raw` (a field value as it appears in a record).
    fn run(column: &SourceColumn, raw: &str) -> Result<SqlValue, String> {
        let raw: Box<RawValue> = RawValue::from_string(raw.to_owned()).unwrap();
        convert(column, classify(Some(&raw)))
    }

    fn typed(text: &str, hint: Hint) -> SqlValue {
        SqlValue::Typed(text.to_owned(), hint)
    }

    #[test]
    fn conversions_by_type() {
        use ColumnType as T;
        let cases: Vec<(SourceColumn, &str, SqlValue)> = vec![
            (column(T::Text), r#"" Adelie ""#, SqlValue::Text("Adelie".into())),
            (SourceColumn { trim: false, ..column(T::Text) }, r#"" Adelie ""#, SqlValue::Text(" Adelie ".into())),
            (column(T::Text), "181", SqlValue::Text("181".into())),
            (column(T::Text), "true", SqlValue::Text("true".into())),
            (column(T::Text), r#""NA""#, SqlValue::Null),
            (column(T::Text), r#""""#, SqlValue::Null),
            (column(T::Text), "null", SqlValue::Null),
            (column(T::Integer), r#""181""#, SqlValue::Long(181)),
            (column(T::Integer), "-7", SqlValue::Long(-7)),
            (column(T::Bigint), r#""9007199254740993""#, SqlValue::Long(9_007_199_254_740_993)),
            (column(T::Bigint), "9223372036854775807", SqlValue::Long(i64::MAX)),
            // D1: a decimal beyond f64's precision stays exact text with the DECIMAL hint.
            (column(T::Numeric), r#""12345678901234567.89""#, typed("12345678901234567.89", Hint::Decimal)),
            (column(T::Numeric), "12345678901234567.89", typed("12345678901234567.89", Hint::Decimal)),
            (column(T::Numeric), r#""-.5""#, typed("-.5", Hint::Decimal)),
            (column(T::Numeric), "1e-3", typed("1e-3", Hint::Decimal)),
            (column(T::Double), r#""31.95376472""#, SqlValue::Double(31.953_764_72)),
            (column(T::Double), "-89.23450472", SqlValue::Double(-89.234_504_72)),
            (column(T::Boolean), r#""Yes""#, SqlValue::Bool(true)),
            (column(T::Boolean), r#""no""#, SqlValue::Bool(false)),
            (column(T::Boolean), "false", SqlValue::Bool(false)),
            (column(T::Boolean), "1", SqlValue::Bool(true)),
            (SourceColumn { true_values: vec!["si".into()], ..column(T::Boolean) }, r#""SI""#, SqlValue::Bool(true)),
            (column(T::Date), r#""2007-11-11""#, typed("2007-11-11", Hint::Date)),
            (with_formats(T::Date, &["%Y/%m/%d"]), r#""2012/01/01""#, typed("2012-01-01", Hint::Date)),
            (with_formats(T::Date, &["%Y-%m-%d", "%b %d %Y"]), r#""Jan 1 2000""#, typed("2000-01-01", Hint::Date)),
            (column(T::Time), r#""14:07""#, typed("14:07:00", Hint::Time)),
            (column(T::Time), r#""14:07:09.5""#, typed("14:07:09.500", Hint::Time)),
            (column(T::Timestamp), r#""2024-03-05T14:07:09""#, typed("2024-03-05 14:07:09", Hint::Timestamp)),
            (column(T::Timestamp), r#""2024-03-05 14:07:09.120""#, typed("2024-03-05 14:07:09.120", Hint::Timestamp)),
            (column(T::Timestamp), r#""1970-01-01""#, typed("1970-01-01 00:00:00", Hint::Timestamp)),
            // D2: an offset is converted to UTC.
            (column(T::Timestamptz), r#""2024-03-05T14:07:09.120+02:00""#, typed("2024-03-05 12:07:09.120", Hint::Timestamp)),
            (column(T::Timestamptz), r#""2024-03-05T23:30:00Z""#, typed("2024-03-05 23:30:00", Hint::Timestamp)),
            (column(T::Timestamptz), r#""2024-03-05 14:07:09-0530""#, typed("2024-03-05 19:37:09", Hint::Timestamp)),
            (column(T::Timestamptz), r#""2024-03-05 14:07:09""#, typed("2024-03-05 14:07:09", Hint::Timestamp)),
            (column(T::Uuid), r#""3F2B6C1E-8A4D-4E9B-9C1A-2D5E7F9A0B1C""#, typed("3f2b6c1e-8a4d-4e9b-9c1a-2d5e7f9a0b1c", Hint::Uuid)),
            (column(T::Json), r#"{"k": 1}"#, typed(r#"{"k": 1}"#, Hint::Json)),
            (column(T::Json), r#""[1,2]""#, typed("[1,2]", Hint::Json)),
            (column(T::Json), "7", typed("7", Hint::Json)),
            (SourceColumn { default: Some("0".into()), ..column(T::Integer) }, r#""NA""#, SqlValue::Long(0)),
            (SourceColumn { default: Some("0".into()), ..column(T::Integer) }, "null", SqlValue::Long(0)),
            (SourceColumn { null_markers: vec![], ..column(T::Text) }, r#""""#, SqlValue::Text(String::new())),
        ];
        for (column, raw, expected) in cases {
            assert_eq!(run(&column, raw), Ok(expected), "{:?} {raw}", column.column_type);
        }
    }

    #[test]
    fn invalid_values_give_reasons() {
        use ColumnType as T;
        let cases: Vec<(SourceColumn, &str, &str)> = vec![
            (column(T::Integer), r#""abc""#, r#"field "f": "abc" is not a 32-bit integer"#),
            (column(T::Integer), r#""3000000000""#, r#""3000000000" is not a 32-bit integer"#),
            (column(T::Integer), r#""1.5""#, r#""1.5" is not a 32-bit integer"#),
            (column(T::Integer), "true", "true is not an integer"),
            (column(T::Bigint), r#""99999999999999999999""#, "is not a 64-bit integer"),
            (column(T::Numeric), r#""abc""#, r#""abc" is not a decimal number"#),
            (column(T::Numeric), r#""1.2.3""#, "is not a decimal number"),
            (column(T::Numeric), r#""NaN""#, "is not a decimal number"),
            (column(T::Numeric), r#""1e""#, "is not a decimal number"),
            (column(T::Double), r#""inf""#, r#""inf" is not a finite number"#),
            (column(T::Boolean), r#""maybe""#, r#""maybe" is not a boolean; expected one of true/t/yes/y/1 or false/f/no/n/0"#),
            (column(T::Date), r#""2007-13-11""#, r#""2007-13-11" is not a date in format %Y-%m-%d"#),
            (column(T::Date), "20071111", "is not a date"),
            (column(T::Time), r#""25:00""#, "is not a time"),
            (column(T::Timestamp), r#""yesterday""#, "is not a timestamp in format"),
            (column(T::Timestamptz), r#""2024-03-05T14:07:09+25:00""#, "is not a timestamp in RFC 3339"),
            // D2: an id that is no UUID fails its record alone.
            (column(T::Uuid), r#""nope""#, r#""nope" is not a UUID"#),
            (column(T::Json), r#""{oops""#, "text is not valid JSON"),
            (column(T::Text), r#"{"a":1}"#, "expected a single value for type text, found a JSON object or array"),
            (column(T::Integer), "[1]", "expected a single value for type integer"),
            (SourceColumn { required: true, ..column(T::Text) }, r#""NA""#, r#"field "f" is required but missing or null"#),
            (SourceColumn { required: true, ..column(T::Text) }, "null", "is required"),
        ];
        for (column, raw, expected) in cases {
            let error = run(&column, raw).expect_err(raw);
            assert!(error.contains(expected), "{raw}: expected {expected:?} in {error:?}");
        }
    }

    #[test]
    fn missing_field_is_null_unless_required() {
        assert_eq!(convert(&column(ColumnType::Numeric), Input::Missing), Ok(SqlValue::Null));
        let required = SourceColumn { required: true, ..column(ColumnType::Numeric) };
        assert_eq!(convert(&required, Input::Missing), Err("field \"f\" is required but missing or null".to_owned()));
    }

    #[test]
    fn classify_keeps_number_text() {
        let raw = RawValue::from_string("12345678901234567.89".to_owned()).unwrap();
        assert_eq!(classify(Some(&raw)), Input::Number("12345678901234567.89"));
        let raw = RawValue::from_string(r#""a\"b""#.to_owned()).unwrap();
        assert_eq!(classify(Some(&raw)), Input::Text("a\"b".into()));
        assert_eq!(classify(None), Input::Missing);
    }

    #[test]
    fn decimal_syntax() {
        for good in ["0", "-1", "+1.5", "1.", ".5", "1e10", "1.5E-3", "12345678901234567.89"] {
            assert!(is_decimal(good), "{good}");
        }
        for bad in ["", ".", "-", "1..2", "e5", "1e", "1e+", "0x10", "1 2", "NaN", "Infinity"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
