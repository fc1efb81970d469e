//! `columnMetadata`: the values PostgreSQL's JDBC driver reports through
//! `ResultSetMetaData`, which Aurora's Data API relays.

use tokio_postgres::Column;
use tokio_postgres::types::{Kind, Type};

use crate::error::ApiError;
use crate::wire::ColumnMetadata;

/// JDBC type codes from `java.sql.Types`.
mod jdbc {
    pub const BIT: i32 = -7;
    pub const SMALLINT: i32 = 5;
    pub const INTEGER: i32 = 4;
    pub const BIGINT: i32 = -5;
    pub const REAL: i32 = 7;
    pub const DOUBLE: i32 = 8;
    pub const NUMERIC: i32 = 2;
    pub const CHAR: i32 = 1;
    pub const VARCHAR: i32 = 12;
    pub const BINARY: i32 = -2;
    pub const DATE: i32 = 91;
    pub const TIME: i32 = 92;
    pub const TIMESTAMP: i32 = 93;
    pub const ARRAY: i32 = 2003;
    pub const OTHER: i32 = 1111;
}

/// The length the JDBC driver reports for types without a declared length.
const UNBOUNDED_PRECISION: i32 = i32::MAX;

/// Builds the metadata of `columns`, reading table name, NOT NULL and
/// sequence defaults from the catalog for columns that come from a table.
pub async fn column_metadata(
    client: &tokio_postgres::Client,
    columns: &[Column],
) -> Result<Vec<ColumnMetadata>, ApiError> {
    let mut metadata = Vec::with_capacity(columns.len());
    for column in columns {
        let ty = column.type_();
        let modifier = column.type_modifier();
        let mut entry = ColumnMetadata {
            name: column.name().to_owned(),
            label: column.name().to_owned(),
            jdbc_type: jdbc_type(ty),
            type_name: ty.name().to_owned(),
            is_signed: is_signed(ty),
            is_currency: *ty == Type::MONEY,
            is_case_sensitive: is_case_sensitive(ty),
            nullable: 2,
            precision: precision(ty, modifier),
            scale: scale(ty, modifier),
            array_base_column_type: match ty.kind() {
                Kind::Array(element) => jdbc_type(element),
                _ => 0,
            },
            ..ColumnMetadata::default()
        };

        if let (Some(table), Some(attribute)) = (column.table_oid(), column.column_id()) {
            let row = client
                .query_opt(
                    "select c.relname, a.attnotnull, \
                            a.attidentity <> '' or coalesce(pg_get_expr(d.adbin, d.adrelid) like 'nextval(%', false) \
                     from pg_attribute a \
                     join pg_class c on c.oid = a.attrelid \
                     left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
                     where a.attrelid = $1 and a.attnum = $2",
                    &[&table, &attribute],
                )
                .await
                .map_err(|error| ApiError::from_postgres(&error))?;
            if let Some(row) = row {
                entry.table_name = row.get(0);
                entry.nullable = if row.get::<_, bool>(1) { 0 } else { 1 };
                entry.is_auto_increment = row.get(2);
            }
        }

        // The JDBC driver names sequence-backed integer columns after their
        // declaration (serial, bigserial), not their storage type.
        if entry.is_auto_increment {
            match *ty {
                Type::INT2 => entry.type_name = "smallserial".to_owned(),
                Type::INT4 => entry.type_name = "serial".to_owned(),
                Type::INT8 => entry.type_name = "bigserial".to_owned(),
                _ => {}
            }
        }
        metadata.push(entry);
    }
    Ok(metadata)
}

fn jdbc_type(ty: &Type) -> i32 {
    match *ty {
        Type::BOOL | Type::BIT => jdbc::BIT,
        Type::INT2 => jdbc::SMALLINT,
        Type::INT4 => jdbc::INTEGER,
        Type::INT8 | Type::OID => jdbc::BIGINT,
        Type::FLOAT4 => jdbc::REAL,
        Type::FLOAT8 | Type::MONEY => jdbc::DOUBLE,
        Type::NUMERIC => jdbc::NUMERIC,
        Type::BPCHAR | Type::CHAR => jdbc::CHAR,
        Type::VARCHAR | Type::TEXT | Type::NAME => jdbc::VARCHAR,
        Type::BYTEA => jdbc::BINARY,
        Type::DATE => jdbc::DATE,
        Type::TIME | Type::TIMETZ => jdbc::TIME,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => jdbc::TIMESTAMP,
        _ => match ty.kind() {
            Kind::Array(_) => jdbc::ARRAY,
            Kind::Domain(inner) => jdbc_type(inner),
            _ => jdbc::OTHER,
        },
    }
}

fn is_signed(ty: &Type) -> bool {
    [Type::INT2, Type::INT4, Type::INT8, Type::FLOAT4, Type::FLOAT8, Type::NUMERIC, Type::MONEY].contains(ty)
}

fn is_case_sensitive(ty: &Type) -> bool {
    !(is_signed(ty)
        || [
            Type::OID,
            Type::BOOL,
            Type::DATE,
            Type::TIME,
            Type::TIMETZ,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::INTERVAL,
        ]
        .contains(ty))
}

/// Digits for numbers, characters for text and the display width for dates
/// and times, as the JDBC driver computes them from the type modifier.
fn precision(ty: &Type, modifier: i32) -> i32 {
    match *ty {
        Type::INT2 => 5,
        Type::INT4 | Type::OID => 10,
        Type::INT8 => 19,
        Type::FLOAT4 => 8,
        Type::FLOAT8 => 17,
        Type::BOOL => 1,
        Type::NUMERIC if modifier == -1 => 0,
        Type::NUMERIC => ((modifier - 4) >> 16) & 0xffff,
        Type::BPCHAR | Type::VARCHAR if modifier == -1 => UNBOUNDED_PRECISION,
        Type::BPCHAR | Type::VARCHAR => modifier - 4,
        Type::CHAR => 1,
        Type::DATE => 13,
        Type::TIME => 8 + fraction_width(modifier),
        Type::TIMETZ => 14 + fraction_width(modifier),
        Type::TIMESTAMP => 22 + fraction_width(modifier),
        Type::TIMESTAMPTZ => 28 + fraction_width(modifier),
        Type::UUID => 36,
        _ => UNBOUNDED_PRECISION,
    }
}

/// Width of `.ffffff` for a time type with `modifier` fractional digits
/// (-1 means the default of 6).
fn fraction_width(modifier: i32) -> i32 {
    match modifier {
        -1 => 7,
        0 => 0,
        digits => digits + 1,
    }
}

fn scale(ty: &Type, modifier: i32) -> i32 {
    match *ty {
        Type::NUMERIC if modifier != -1 => (modifier - 4) & 0xffff,
        Type::FLOAT4 => 8,
        Type::FLOAT8 => 17,
        Type::TIME | Type::TIMETZ | Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            if modifier == -1 {
                6
            } else {
                modifier
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_types_table() {
        let cases = [
            (Type::INT4, 4),
            (Type::INT8, -5),
            (Type::BOOL, -7),
            (Type::TEXT, 12),
            (Type::NUMERIC, 2),
            (Type::UUID, 1111),
            (Type::JSONB, 1111),
            (Type::TIMESTAMPTZ, 93),
            (Type::INT4_ARRAY, 2003),
        ];
        for (ty, code) in cases {
            assert_eq!(jdbc_type(&ty), code, "for {ty}");
        }
    }

    #[test]
    fn numeric_precision_and_scale() {
        // numeric(10,2) has the type modifier ((10 << 16) | 2) + 4.
        let modifier = ((10 << 16) | 2) + 4;
        assert_eq!(precision(&Type::NUMERIC, modifier), 10);
        assert_eq!(scale(&Type::NUMERIC, modifier), 2);
        assert_eq!(precision(&Type::VARCHAR, 36), 32);
        assert_eq!(precision(&Type::VARCHAR, -1), i32::MAX);
    }
}
