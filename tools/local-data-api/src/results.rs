//! Result conversion: PostgreSQL's binary column values to the Data API's
//! `Field`s, in the text formats the service uses for strings, plus
//! `formattedRecords` for `formatRecordsAs: JSON`.

use tokio_postgres::types::{FromSql, Kind, Type};

use crate::error::ApiError;
use crate::wire::{ArrayValue, Base64, Field, JsonDouble, ResultSetOptions};

/// A column value as PostgreSQL sent it, undecoded; `None` is NULL.
#[derive(Debug)]
pub struct RawValue<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(None))
    }

    // Decoding happens in `decode_field`, which rejects what it cannot convert.
    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Return types of numeric and int8 values, from `resultSetOptions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReturnTypes {
    /// `decimalReturnType: DOUBLE_OR_LONG`: numeric as longValue when it has no
    /// fraction, else doubleValue, in place of stringValue.
    pub decimal_as_number: bool,
    /// `longReturnType: STRING`: int8 as stringValue in place of longValue.
    pub long_as_string: bool,
}

impl ReturnTypes {
    /// Reads `resultSetOptions`, rejecting values outside the service's enums.
    pub fn from_options(options: Option<&ResultSetOptions>) -> Result<Self, ApiError> {
        let Some(options) = options else {
            return Ok(Self::default());
        };
        let decimal_as_number = match options.decimal_return_type.as_deref() {
            None | Some("STRING") => false,
            Some("DOUBLE_OR_LONG") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid decimalReturnType {other}; expected STRING or DOUBLE_OR_LONG"
                )));
            }
        };
        let long_as_string = match options.long_return_type.as_deref() {
            None | Some("LONG") => false,
            Some("STRING") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!("Invalid longReturnType {other}; expected LONG or STRING")));
            }
        };
        Ok(Self { decimal_as_number, long_as_string })
    }
}

/// Converts one column value of type `ty` to a `Field`.
pub fn decode_field(ty: &Type, raw: Option<&[u8]>, return_types: ReturnTypes) -> Result<Field, ApiError> {
    let Some(raw) = raw else {
        return Ok(Field::IsNull(true));
    };
    match base_type(ty) {
        ty if *ty == Type::BOOL => Ok(Field::Boolean(read_bool(raw)?)),
        ty if *ty == Type::INT8 && return_types.long_as_string => Ok(Field::String(read_integer(ty, raw)?.to_string())),
        ty if is_integer(ty) => Ok(Field::Long(read_integer(ty, raw)?)),
        ty if is_float(ty) => Ok(Field::Double(JsonDouble(read_float(ty, raw)?))),
        ty if *ty == Type::BYTEA => Ok(Field::Blob(Base64(raw.to_vec()))),
        ty if *ty == Type::NUMERIC && return_types.decimal_as_number => {
            let text = numeric_text(raw)?;
            Ok(match text.parse::<i64>() {
                Ok(long) if !text.contains('.') => Field::Long(long),
                _ => Field::Double(JsonDouble(text.parse::<f64>().map_err(|_| malformed(ty))?)),
            })
        }
        ty => match ty.kind() {
            Kind::Array(element) => Ok(Field::Array(decode_array(ty, element, raw)?)),
            _ => Ok(Field::String(text_value(ty, raw)?)),
        },
    }
}

/// Returns the underlying type of a domain, or the type itself.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

fn is_integer(ty: &Type) -> bool {
    [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(ty)
}

fn is_float(ty: &Type) -> bool {
    *ty == Type::FLOAT4 || *ty == Type::FLOAT8
}

fn malformed(ty: &Type) -> ApiError {
    ApiError::InternalServerError(format!("PostgreSQL sent a malformed {} value", ty.name()))
}

fn unsupported(ty: &Type) -> ApiError {
    ApiError::UnsupportedResult(format!("The result contains the unsupported data type {}.", ty.name()))
}

fn read_bool(raw: &[u8]) -> Result<bool, ApiError> {
    match raw {
        [byte] => Ok(*byte != 0),
        _ => Err(malformed(&Type::BOOL)),
    }
}

fn read_integer(ty: &Type, raw: &[u8]) -> Result<i64, ApiError> {
    Ok(match raw.len() {
        2 => i64::from(i16::from_be_bytes([raw[0], raw[1]])),
        4 if *ty == Type::OID => i64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
        4 => i64::from(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
        8 => i64::from_be_bytes(raw.try_into().map_err(|_| malformed(ty))?),
        _ => return Err(malformed(ty)),
    })
}

fn read_float(ty: &Type, raw: &[u8]) -> Result<f64, ApiError> {
    match raw.len() {
        // A float4 goes through its shortest decimal form so that 1.1 stays
        // 1.1 and does not become 1.100000023841858.
        4 => {
            let value = f32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            Ok(if value.is_finite() { value.to_string().parse().unwrap_or(f64::from(value)) } else { f64::from(value) })
        }
        8 => Ok(f64::from_be_bytes(raw.try_into().map_err(|_| malformed(ty))?)),
        _ => Err(malformed(ty)),
    }
}

/// Text form of a value of a type that the service returns as stringValue.
fn text_value(ty: &Type, raw: &[u8]) -> Result<String, ApiError> {
    let ty = base_type(ty);
    let utf8 = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| malformed(ty));
    if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::CHAR, Type::UNKNOWN, Type::JSON, Type::XML]
        .contains(ty)
        || matches!(ty.kind(), Kind::Enum(_))
    {
        return utf8(raw);
    }
    match ty {
        ty if *ty == Type::JSONB => match raw.split_first() {
            Some((1, json)) => utf8(json),
            _ => Err(malformed(ty)),
        },
        ty if *ty == Type::NUMERIC => numeric_text(raw),
        ty if *ty == Type::UUID => {
            let bytes: [u8; 16] = raw.try_into().map_err(|_| malformed(ty))?;
            Ok(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
        }
        ty if *ty == Type::DATE => Ok(date_text(read_i32(ty, raw)?)),
        ty if *ty == Type::TIME => Ok(time_text(read_i64(ty, raw)?)),
        ty if *ty == Type::TIMETZ => {
            let micros = read_i64(ty, raw.get(..8).ok_or_else(|| malformed(ty))?)?;
            let seconds_west = read_i32(ty, raw.get(8..).ok_or_else(|| malformed(ty))?)?;
            Ok(format!("{}{}", time_text(micros), offset_text(-seconds_west)))
        }
        ty if *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ => Ok(timestamp_text(read_i64(ty, raw)?)),
        ty if *ty == Type::INTERVAL => {
            let micros = read_i64(ty, raw.get(..8).ok_or_else(|| malformed(ty))?)?;
            let days = read_i32(ty, raw.get(8..12).ok_or_else(|| malformed(ty))?)?;
            let months = read_i32(ty, raw.get(12..).ok_or_else(|| malformed(ty))?)?;
            Ok(interval_text(months, days, micros))
        }
        ty if *ty == Type::BOOL => Ok(if read_bool(raw)? { "t" } else { "f" }.to_owned()),
        ty if is_integer(ty) => Ok(read_integer(ty, raw)?.to_string()),
        ty if is_float(ty) => Ok(read_float(ty, raw)?.to_string()),
        ty => Err(unsupported(ty)),
    }
}

fn read_i32(ty: &Type, raw: &[u8]) -> Result<i32, ApiError> {
    Ok(i32::from_be_bytes(raw.try_into().map_err(|_| malformed(ty))?))
}

fn read_i64(ty: &Type, raw: &[u8]) -> Result<i64, ApiError> {
    Ok(i64::from_be_bytes(raw.try_into().map_err(|_| malformed(ty))?))
}

/// Decodes PostgreSQL's binary array format: dimensions, a null flag, the
/// element OID, one (length, lower bound) pair per dimension, then each
/// element as a length (-1 for NULL) and its bytes.
fn decode_array(ty: &Type, element: &Type, raw: &[u8]) -> Result<ArrayValue, ApiError> {
    let header = |offset: usize| -> Result<i32, ApiError> {
        read_i32(ty, raw.get(offset..offset + 4).ok_or_else(|| malformed(ty))?)
    };
    let dimensions = header(0)?;
    // The service cannot return multidimensional arrays (UnsupportedResultException in its model).
    if dimensions > 1 {
        return Err(ApiError::UnsupportedResult("The result contains a multidimensional array.".to_owned()));
    }
    let length = if dimensions == 1 { usize::try_from(header(12)?).map_err(|_| malformed(ty))? } else { 0 };
    let mut offset = 12 + 8 * usize::try_from(dimensions).map_err(|_| malformed(ty))?;

    let mut elements = Vec::with_capacity(length);
    for _ in 0..length {
        let size = header(offset)?;
        offset += 4;
        if size < 0 {
            elements.push(None);
            continue;
        }
        let end = offset + usize::try_from(size).map_err(|_| malformed(ty))?;
        elements.push(Some(raw.get(offset..end).ok_or_else(|| malformed(ty))?));
        offset = end;
    }

    let element = base_type(element);
    Ok(if *element == Type::BOOL {
        ArrayValue::Booleans(elements.into_iter().map(|e| e.map(read_bool).transpose()).collect::<Result<_, _>>()?)
    } else if is_integer(element) {
        ArrayValue::Longs(
            elements
                .into_iter()
                .map(|e| e.map(|raw| read_integer(element, raw)).transpose())
                .collect::<Result<_, _>>()?,
        )
    } else if is_float(element) {
        ArrayValue::Doubles(
            elements
                .into_iter()
                .map(|e| e.map(|raw| read_float(element, raw).map(JsonDouble)).transpose())
                .collect::<Result<_, _>>()?,
        )
    } else {
        ArrayValue::Strings(
            elements
                .into_iter()
                .map(|e| e.map(|raw| text_value(element, raw)).transpose())
                .collect::<Result<_, _>>()?,
        )
    })
}

/// Writes a binary numeric in PostgreSQL's own text form, exactly: a count
/// of base-10000 digits, the weight of the first digit, the sign and the
/// display scale, then the digits.
pub fn numeric_text(raw: &[u8]) -> Result<String, ApiError> {
    let malformed = || malformed(&Type::NUMERIC);
    let word = |index: usize| -> Result<u16, ApiError> {
        let bytes = raw.get(index * 2..index * 2 + 2).ok_or_else(malformed)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let digit_count = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let scale = usize::from(word(3)?);
    let digits = (0..digit_count).map(|i| word(4 + i)).collect::<Result<Vec<u16>, _>>()?;
    let digit = |index: i64| usize::try_from(index).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);

    let mut text = String::new();
    match sign {
        0x0000 => {}
        0x4000 => text.push('-'),
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => return Err(malformed()),
    }

    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for index in 1..=weight {
            text.push_str(&format!("{:04}", digit(index)));
        }
    }

    if scale > 0 {
        let mut fraction = String::with_capacity(scale + 4);
        let mut index = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(index)));
            index += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// Days since 2000-01-01 as `YYYY-MM-DD`, `YYYY-MM-DD BC` before year 1, or
/// `infinity` and `-infinity`, as PostgreSQL prints them.
fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        days => {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
            match epoch.checked_add_signed(chrono::Duration::days(i64::from(days))) {
                Some(date) => ymd_text(date),
                None => days.to_string(),
            }
        }
    }
}

fn ymd_text(date: chrono::NaiveDate) -> String {
    use chrono::Datelike as _;
    let year = date.year();
    if year > 0 {
        format!("{year:04}-{:02}-{:02}", date.month(), date.day())
    } else {
        format!("{:04}-{:02}-{:02} BC", 1 - year, date.month(), date.day())
    }
}

/// Microseconds since midnight as `HH:MM:SS[.ffffff]`, with the fraction's
/// trailing zeros dropped as PostgreSQL does.
fn time_text(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    push_fraction(&mut text, fraction);
    text
}

fn push_fraction(text: &mut String, micros: i64) {
    if micros != 0 {
        let digits = format!("{micros:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
}

/// Microseconds since 2000-01-01 00:00:00 as `YYYY-MM-DD HH:MM:SS[.ffffff]`.
/// A timestamptz is written in UTC without an offset.
fn timestamp_text(micros: i64) -> String {
    match micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        micros => {
            let days = micros.div_euclid(86_400_000_000);
            let time = micros.rem_euclid(86_400_000_000);
            let date = i32::try_from(days).map_or_else(|_| days.to_string(), date_text);
            match date.strip_suffix(" BC") {
                Some(date) => format!("{date} {} BC", time_text(time)),
                None => format!("{date} {}", time_text(time)),
            }
        }
    }
}

fn offset_text(seconds_east: i32) -> String {
    let sign = if seconds_east < 0 { '-' } else { '+' };
    let seconds = seconds_east.unsigned_abs();
    let mut text = format!("{sign}{:02}", seconds / 3600);
    if !seconds.is_multiple_of(3600) {
        text.push_str(&format!(":{:02}", seconds / 60 % 60));
    }
    if !seconds.is_multiple_of(60) {
        text.push_str(&format!(":{:02}", seconds % 60));
    }
    text
}

/// Writes an interval in PostgreSQL's default `postgres` output style, such as
/// `1 year 2 mons -3 days +04:05:06.5`.
fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut negative_before = false;
    let mut push_unit = |value: i32, unit: &str, parts: &mut Vec<String>| {
        if value != 0 {
            let plus = if negative_before && value > 0 { "+" } else { "" };
            let plural = if value == 1 { "" } else { "s" };
            parts.push(format!("{plus}{value} {unit}{plural}"));
            negative_before |= value < 0;
        }
    };
    push_unit(months / 12, "year", &mut parts);
    push_unit(months % 12, "mon", &mut parts);
    push_unit(days, "day", &mut parts);

    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 {
            "-"
        } else if negative_before {
            "+"
        } else {
            ""
        };
        let magnitude = micros.unsigned_abs();
        let seconds = magnitude / 1_000_000;
        let mut text = format!("{sign}{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
        push_fraction(&mut text, i64::try_from(magnitude % 1_000_000).unwrap_or(0));
        parts.push(text);
    }
    parts.join(" ")
}

/// Builds `formattedRecords`: a JSON array with one object per row, keyed
/// by column name. Column names must be unique, because a JSON object
/// cannot hold the same key twice.
pub fn format_json(columns: &[String], rows: &[Vec<Field>]) -> Result<String, ApiError> {
    for (index, name) in columns.iter().enumerate() {
        if columns[..index].contains(name) {
            return Err(ApiError::UnsupportedResult(format!(
                "The result contains the duplicate column name {name}; give each column a unique alias to use formatRecordsAs JSON."
            )));
        }
    }
    // Written by hand because serde_json's map sorts keys, and the
    // columns keep their SELECT order.
    let mut text = String::from("[");
    for (row_index, row) in rows.iter().enumerate() {
        if row_index > 0 {
            text.push(',');
        }
        text.push('{');
        for (index, (name, field)) in columns.iter().zip(row).enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::Value::String(name.clone()).to_string());
            text.push(':');
            text.push_str(&field_json(field).to_string());
        }
        text.push('}');
    }
    text.push(']');
    Ok(text)
}

fn field_json(field: &Field) -> serde_json::Value {
    use serde_json::Value;
    match field {
        Field::IsNull(_) => Value::Null,
        Field::Boolean(value) => Value::Bool(*value),
        Field::Long(value) => Value::from(*value),
        Field::Double(value) => double_json(value.0),
        Field::String(text) => Value::String(text.clone()),
        Field::Blob(bytes) => serde_json::to_value(bytes).unwrap_or(Value::Null),
        Field::Array(array) => array_json(array),
    }
}

fn double_json(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value)
        .map_or_else(|| serde_json::Value::String(value.to_string()), serde_json::Value::Number)
}

fn array_json(array: &ArrayValue) -> serde_json::Value {
    use serde_json::Value;
    let items: Vec<Value> = match array {
        ArrayValue::Booleans(items) => items.iter().map(|item| item.map_or(Value::Null, Value::Bool)).collect(),
        ArrayValue::Longs(items) => items.iter().map(|item| item.map_or(Value::Null, Value::from)).collect(),
        ArrayValue::Doubles(items) => items.iter().map(|item| item.map_or(Value::Null, |d| double_json(d.0))).collect(),
        ArrayValue::Strings(items) => {
            items.iter().map(|item| item.clone().map_or(Value::Null, Value::String)).collect()
        }
    };
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for word in [digits.len() as u16, weight as u16, sign, scale].iter().chain(digits) {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_text_table() {
        let cases = [
            (numeric(0, 0, 0, &[]), "0"),
            (numeric(0, 0, 2, &[]), "0.00"),
            (numeric(0, 0, 0, &[42]), "42"),
            (numeric(1, 0, 0, &[1, 0]), "10000"),
            (numeric(1, 0x4000, 3, &[12, 3456, 7890]), "-123456.789"),
            (numeric(-1, 0, 4, &[5000]), "0.5000"),
            (numeric(-2, 0, 8, &[1]), "0.00000001"),
            (numeric(0, 0, 2, &[3, 1400]), "3.14"),
            (numeric(4, 0, 0, &[1, 2, 3, 4, 5]), "10002000300040005"),
            (numeric(0, 0xC000, 0, &[]), "NaN"),
            (numeric(0, 0xD000, 0, &[]), "Infinity"),
        ];
        for (raw, expected) in cases {
            assert_eq!(numeric_text(&raw).as_deref(), Ok(expected));
        }
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn date_time_text_table() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(date_text(8825), "2024-02-29");
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(date_text(-730_120), "0001-12-31 BC");
        assert_eq!(time_text(0), "00:00:00");
        assert_eq!(time_text(45_296_500_000), "12:34:56.5");
        assert_eq!(time_text(86_400_000_000), "24:00:00");
        assert_eq!(time_text(1), "00:00:00.000001");
        assert_eq!(timestamp_text(0), "2000-01-01 00:00:00");
        assert_eq!(timestamp_text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(timestamp_text(i64::MIN), "-infinity");
        assert_eq!(offset_text(-18_000), "-05");
        assert_eq!(offset_text(19_800), "+05:30");
    }

    #[test]
    fn interval_text_table() {
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(14, 3, 0), "1 year 2 mons 3 days");
        assert_eq!(interval_text(0, 1, 3_600_000_000), "1 day 01:00:00");
        assert_eq!(interval_text(0, -1, 7_200_000_000), "-1 days +02:00:00");
        assert_eq!(interval_text(0, 0, -1_500_000), "-00:00:01.5");
    }

    #[test]
    fn scalar_fields() {
        let plain = ReturnTypes::default();
        assert_eq!(decode_field(&Type::INT4, Some(&(-7i32).to_be_bytes()), plain), Ok(Field::Long(-7)));
        assert_eq!(decode_field(&Type::INT2, Some(&3i16.to_be_bytes()), plain), Ok(Field::Long(3)));
        assert_eq!(decode_field(&Type::FLOAT4, Some(&1.1f32.to_be_bytes()), plain), Ok(Field::Double(JsonDouble(1.1))));
        assert_eq!(decode_field(&Type::BOOL, Some(&[1]), plain), Ok(Field::Boolean(true)));
        assert_eq!(decode_field(&Type::TEXT, None, plain), Ok(Field::IsNull(true)));
        assert_eq!(
            decode_field(&Type::JSONB, Some(b"\x01{\"a\": 1}"), plain),
            Ok(Field::String("{\"a\": 1}".to_owned()))
        );
        let long_string = ReturnTypes { long_as_string: true, ..plain };
        assert_eq!(
            decode_field(&Type::INT8, Some(&9i64.to_be_bytes()), long_string),
            Ok(Field::String("9".to_owned()))
        );
        let decimal_number = ReturnTypes { decimal_as_number: true, ..plain };
        assert_eq!(decode_field(&Type::NUMERIC, Some(&numeric(0, 0, 0, &[42])), decimal_number), Ok(Field::Long(42)));
        assert_eq!(
            decode_field(&Type::NUMERIC, Some(&numeric(0, 0, 2, &[2, 5000])), decimal_number),
            Ok(Field::Double(JsonDouble(2.5)))
        );
        assert!(matches!(decode_field(&Type::INET, Some(&[0]), plain), Err(ApiError::UnsupportedResult(_))));
    }

    #[test]
    fn array_fields() {
        let mut raw = Vec::new();
        for word in [1i32, 1, 23, 3, 1] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        for element in [Some(5i32), None, Some(-1)] {
            match element {
                Some(value) => {
                    raw.extend_from_slice(&4i32.to_be_bytes());
                    raw.extend_from_slice(&value.to_be_bytes());
                }
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let field = decode_field(&Type::INT4_ARRAY, Some(&raw), ReturnTypes::default());
        assert_eq!(field, Ok(Field::Array(ArrayValue::Longs(vec![Some(5), None, Some(-1)]))));

        let mut empty = Vec::new();
        for word in [0i32, 0, 25] {
            empty.extend_from_slice(&word.to_be_bytes());
        }
        let field = decode_field(&Type::TEXT_ARRAY, Some(&empty), ReturnTypes::default());
        assert_eq!(field, Ok(Field::Array(ArrayValue::Strings(vec![]))));
    }

    #[test]
    fn json_format_rows() {
        let columns = ["name".to_owned(), "id".to_owned()];
        let rows = vec![vec![Field::IsNull(true), Field::Long(1)], vec![Field::String("b".to_owned()), Field::Long(2)]];
        assert_eq!(format_json(&columns, &rows).as_deref(), Ok(r#"[{"name":null,"id":1},{"name":"b","id":2}]"#));
        assert_eq!(format_json(&columns, &[]).as_deref(), Ok("[]"));
        let duplicate = ["a".to_owned(), "a".to_owned()];
        assert!(matches!(format_json(&duplicate, &[]), Err(ApiError::UnsupportedResult(_))));
    }
}
