//! Declarative mappings from a data set's records to table rows.
//!
//! One TOML file per data set names the target table and, per column, the
//! source field and its type, or a value computed from the record's source.
//! `mappings/README.md` documents the format with a full example. Every file
//! is parsed and checked once at cold start: an invalid mapping fails the
//! start with a [`MappingError`] that names the file, the column and the
//! problem, instead of rejecting records one by one later.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::LazyLock;

use chrono::format::{Item, StrftimeItems};
use regex::Regex;
use serde::Deserialize;

use crate::value::{self, ColumnType, Input};

// The mappings of the repository's `mappings/` folder, compiled in by build.rs.
include!(concat!(env!("OUT_DIR"), "/embedded_mappings.rs"));

/// An unqualified SQL identifier: lower case, at most 63 bytes, which is
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-z_][a-z0-9_]{0,62}$").expect("identifier pattern is valid"));

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid mapping {file}: {location}{problem}")]
pub struct MappingError {
    /// File name of the mapping.
    pub file: String,
    /// Location in the file, such as `column egg_date: `, or empty for the whole file.
    pub location: String,
    /// The problem and what is expected.
    pub problem: String,
}

impl MappingError {
    fn new(file: &str, location: impl Into<String>, problem: impl Into<String>) -> Self {
        let location = location.into();
        let location = if location.is_empty() { location } else { format!("{location}: ") };
        Self { file: file.to_owned(), location, problem: problem.into() }
    }
}

/// The mapping file as written, before it is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingSpec {
    dataset: String,
    table: String,
    #[serde(default = "default_true")]
    trim: bool,
    #[serde(default = "default_null_markers")]
    null_markers: Vec<String>,
    #[serde(default)]
    on_conflict: ConflictSpec,
    #[serde(default)]
    drop_if: Vec<ConditionSpec>,
    #[serde(default)]
    route: Vec<RouteSpec>,
    #[serde(default)]
    columns: Vec<ColumnSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConflictSpec {
    #[serde(default = "default_conflict_keys")]
    keys: Vec<String>,
    #[serde(default = "default_conflict_action")]
    action: String,
}

impl Default for ConflictSpec {
    fn default() -> Self {
        Self { keys: default_conflict_keys(), action: default_conflict_action() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    field: String,
    equals: Option<String>,
    not_equals: Option<String>,
    one_of: Option<Vec<String>>,
    matches: Option<String>,
    is_null: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    table: String,
    when: ConditionSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    name: String,
    source: Option<String>,
    computed: Option<String>,
    #[serde(rename = "type")]
    column_type: Option<String>,
    formats: Option<Vec<String>>,
    null_markers: Option<Vec<String>>,
    trim: Option<bool>,
    default: Option<String>,
    #[serde(default)]
    required: bool,
    true_values: Option<Vec<String>>,
    false_values: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

fn default_null_markers() -> Vec<String> {
    vec![String::new()]
}

fn default_conflict_keys() -> Vec<String> {
    vec!["record_id".to_owned()]
}

fn default_conflict_action() -> String {
    "update".to_owned()
}

/// A checked mapping of one data set.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Data set name that envelopes carry in `dataset`.
    pub dataset: String,
    /// File the mapping came from, for messages.
    pub file: String,
    /// Target table, optionally schema-qualified (`schema.table`).
    pub table: String,
    /// Columns in the order of the INSERT statement.
    pub columns: Vec<Column>,
    /// Conflict keys and action of the upsert.
    pub conflict: Conflict,
    /// Conditions of which any one drops a record without writing it.
    pub drop_if: Vec<Condition>,
    /// Routes to other tables with the same columns; the first match wins.
    pub routes: Vec<Route>,
    /// Whether condition values are trimmed of surrounding whitespace.
    pub trim: bool,
    /// Values that conditions treat as null.
    pub null_markers: Vec<String>,
}

/// One target column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name, a checked identifier.
    pub name: String,
    /// Origin of the value.
    pub value: ColumnValue,
}

/// The origin of a column's value.
#[derive(Debug, Clone)]
pub enum ColumnValue {
    /// A field of the record, converted to a type.
    Source(SourceColumn),
    /// A value derived from the record's origin or the time of ingestion.
    Computed(Computed),
}

/// A column read from a record field.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    /// Field name in the record (a CSV header or JSON key).
    pub field: String,
    /// Target type, which selects the conversion and the Data API type hint.
    pub column_type: ColumnType,
    /// chrono parse formats, tried in order, for date and time types.
    pub formats: Vec<String>,
    /// Text values that mean null, compared after trimming.
    pub null_markers: Vec<String>,
    /// Whether text is trimmed of surrounding whitespace before conversion.
    pub trim: bool,
    /// Text used, and converted, when the field is missing or null.
    pub default: Option<String>,
    /// Whether a missing or null value (after the default) rejects the record.
    pub required: bool,
    /// Texts that mean true for booleans, compared without case.
    pub true_values: Vec<String>,
    /// Texts that mean false for booleans, compared without case.
    pub false_values: Vec<String>,
}

/// A value computed from the record's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// The record id from the envelope (text).
    RecordId,
    /// Source bucket (text).
    Bucket,
    /// Source object key (text).
    Key,
    /// Source version id, or null when the bucket is unversioned (text).
    VersionId,
    /// Source ETag (text).
    Etag,
    /// Version id, or the ETag when there is none (text).
    SourceVersion,
    /// Line of the file where the record starts (bigint).
    Line,
    /// Element index in a JSON array, or null (bigint).
    RecordIndex,
    /// Data set name (text).
    Dataset,
    /// Time the transform wrote the record, UTC (timestamp).
    IngestedAt,
}

impl Computed {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "record_id" => Self::RecordId,
            "bucket" => Self::Bucket,
            "key" => Self::Key,
            "version_id" => Self::VersionId,
            "etag" => Self::Etag,
            "source_version" => Self::SourceVersion,
            "line" => Self::Line,
            "record_index" => Self::RecordIndex,
            "dataset" => Self::Dataset,
            "ingested_at" => Self::IngestedAt,
            _ => return None,
        })
    }
}

const COMPUTED_NAMES: &str =
    "record_id, bucket, key, version_id, etag, source_version, line, record_index, dataset, ingested_at";

/// Upsert behaviour for a row whose conflict keys already exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Columns of the unique constraint named in `ON CONFLICT (...)`.
    pub keys: Vec<String>,
    /// `true` for `DO UPDATE SET` of every other column, `false` for `DO NOTHING`.
    pub update: bool,
}

/// A test on one field of a record.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Field name in the record.
    pub field: String,
    /// The test.
    pub test: Test,
}

/// The test a [`Condition`] applies to a field's text.
#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to the text.
    Equals(String),
    /// Null, or not equal to the text.
    NotEquals(String),
    /// Equal to one of the texts.
    OneOf(Vec<String>),
    /// Matches the regular expression somewhere.
    Matches(Regex),
    /// Missing, JSON null or a null marker (`true`), or present (`false`).
    IsNull(bool),
}

/// Records that go to another table with the same columns.
#[derive(Debug, Clone)]
pub struct Route {
    /// Target table, optionally schema-qualified.
    pub table: String,
    /// Condition that selects the records.
    pub when: Condition,
}

impl Condition {
    /// Returns true when the record's field passes the test.
    pub fn holds(&self, fields: &HashMap<String, &serde_json::value::RawValue>, trim: bool, null_markers: &[String]) -> bool {
        let input = value::classify(fields.get(&self.field).copied());
        let text = input.as_text(trim).filter(|text| !null_markers.iter().any(|marker| marker == text.as_ref()));
        match (&self.test, text) {
            (Test::IsNull(expected), text) => text.is_none() == *expected,
            (Test::NotEquals(_), None) => true,
            (_, None) => false,
            (Test::Equals(expected), Some(text)) => text == expected.as_str(),
            (Test::NotEquals(expected), Some(text)) => text != expected.as_str(),
            (Test::OneOf(options), Some(text)) => options.iter().any(|option| option == text.as_ref()),
            (Test::Matches(pattern), Some(text)) => pattern.is_match(&text),
        }
    }
}

impl Mapping {
    /// Parses and checks a mapping from TOML text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, MappingError> {
        let spec: MappingSpec = toml::from_str(text).map_err(|error| MappingError::new(file, "", error.message().to_owned()))?;

        if spec.dataset.is_empty() || !spec.dataset.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(MappingError::new(
                file,
                "dataset",
                format!("{:?} must be non-empty and contain only letters, digits, '-', '_' and '.'", spec.dataset),
            ));
        }
        check_table(file, "table", &spec.table)?;
        if spec.columns.is_empty() {
            return Err(MappingError::new(file, format!("table {}", spec.table), "has no [[columns]]"));
        }

        let mut names = HashSet::new();
        let mut columns = Vec::with_capacity(spec.columns.len());
        for column in spec.columns {
            let location = format!("table {}, column {}", spec.table, column.name);
            check_identifier(file, &location, &column.name)?;
            if !names.insert(column.name.clone()) {
                return Err(MappingError::new(file, location, "is defined twice"));
            }
            columns.push(check_column(file, &location, column, spec.trim, &spec.null_markers)?);
        }

        let conflict = check_conflict(file, &spec.table, spec.on_conflict, &names)?;
        let drop_if = spec
            .drop_if
            .into_iter()
            .map(|condition| check_condition(file, "drop_if", condition))
            .collect::<Result<Vec<_>, _>>()?;
        let mut routes = Vec::with_capacity(spec.route.len());
        for route in spec.route {
            let location = format!("route to {}", route.table);
            check_table(file, &location, &route.table)?;
            if route.table == spec.table {
                return Err(MappingError::new(file, location, "routes to the mapping's own table"));
            }
            routes.push(Route { when: check_condition(file, &location, route.when)?, table: route.table });
        }

        Ok(Self {
            dataset: spec.dataset,
            file: file.to_owned(),
            table: spec.table,
            columns,
            conflict,
            drop_if,
            routes,
            trim: spec.trim,
            null_markers: spec.null_markers,
        })
    }

    /// Builds the upsert statement for `table` (the mapping's table or a
    /// route's), with one named parameter per column: `:column`.
    pub fn insert_sql(&self, table: &str) -> String {
        let names: Vec<String> = self.columns.iter().map(|column| quote(&column.name)).collect();
        let parameters: Vec<String> = self.columns.iter().map(|column| format!(":{}", column.name)).collect();
        let keys: Vec<String> = self.conflict.keys.iter().map(|key| quote(key)).collect();
        let updates: Vec<String> = self
            .columns
            .iter()
            .filter(|column| !self.conflict.keys.contains(&column.name))
            .map(|column| format!("{0} = EXCLUDED.{0}", quote(&column.name)))
            .collect();
        let action = if self.conflict.update && !updates.is_empty() {
            format!("DO UPDATE SET {}", updates.join(", "))
        } else {
            "DO NOTHING".to_owned()
        };
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}",
            quote_table(table),
            names.join(", "),
            parameters.join(", "),
            keys.join(", "),
            action
        )
    }
}

/// Quotes a checked identifier, so that names such as `year` or `date` need no care.
pub fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

/// Quotes a checked, optionally schema-qualified, table name.
pub fn quote_table(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// Checks a table name: an identifier, optionally qualified by a schema identifier.
pub fn is_valid_table(table: &str) -> bool {
    let parts: Vec<&str> = table.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|part| IDENTIFIER.is_match(part))
}

fn check_table(file: &str, location: &str, table: &str) -> Result<(), MappingError> {
    if is_valid_table(table) {
        Ok(())
    } else {
        Err(MappingError::new(
            file,
            location,
            format!("table name {table:?} must match [a-z_][a-z0-9_]{{0,62}}, optionally as schema.table"),
        ))
    }
}

fn check_identifier(file: &str, location: &str, name: &str) -> Result<(), MappingError> {
    if IDENTIFIER.is_match(name) {
        Ok(())
    } else {
        Err(MappingError::new(file, location, format!("name {name:?} must match [a-z_][a-z0-9_]{{0,62}}")))
    }
}

fn check_column(
    file: &str,
    location: &str,
    spec: ColumnSpec,
    mapping_trim: bool,
    mapping_null_markers: &[String],
) -> Result<Column, MappingError> {
    let fail = |problem: String| MappingError::new(file, location, problem);

    let value = match (spec.source, spec.computed) {
        (Some(_), Some(_)) => return Err(fail("has both source and computed; set one".into())),
        (None, None) => return Err(fail("needs a source field or a computed value".into())),
        (None, Some(computed)) => {
            let Some(kind) = Computed::parse(&computed) else {
                return Err(fail(format!("computed value {computed:?} is unknown; expected one of {COMPUTED_NAMES}")));
            };
            let unused = [
                ("type", spec.column_type.is_some()),
                ("formats", spec.formats.is_some()),
                ("null_markers", spec.null_markers.is_some()),
                ("trim", spec.trim.is_some()),
                ("default", spec.default.is_some()),
                ("required", spec.required),
                ("true_values", spec.true_values.is_some()),
                ("false_values", spec.false_values.is_some()),
            ];
            if let Some((option, _)) = unused.iter().find(|(_, set)| *set) {
                return Err(fail(format!("{option} does not apply to a computed column")));
            }
            ColumnValue::Computed(kind)
        }
        (Some(field), None) => {
            let type_name = spec.column_type.unwrap_or_else(|| "text".to_owned());
            let Some(column_type) = ColumnType::parse(&type_name) else {
                return Err(fail(format!("type {type_name:?} is unknown; expected one of {}", ColumnType::NAMES)));
            };
            let formats = match spec.formats {
                Some(formats) if !column_type.takes_formats() => {
                    return Err(fail(format!("formats do not apply to type {type_name} ({formats:?})")));
                }
                Some(formats) if formats.is_empty() => return Err(fail("formats is empty".into())),
                Some(formats) => formats,
                None => column_type.default_formats().iter().map(|format| (*format).to_owned()).collect(),
            };
            for format in &formats {
                if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                    return Err(fail(format!("format {format:?} is not a valid chrono format")));
                }
            }
            if (spec.true_values.is_some() || spec.false_values.is_some()) && column_type != ColumnType::Boolean {
                return Err(fail(format!("true_values and false_values apply only to type boolean, not {type_name}")));
            }
            let column = SourceColumn {
                field,
                column_type,
                formats,
                null_markers: spec.null_markers.unwrap_or_else(|| mapping_null_markers.to_vec()),
                trim: spec.trim.unwrap_or(mapping_trim),
                default: spec.default,
                required: spec.required,
                true_values: spec.true_values.unwrap_or_else(|| value::TRUE_VALUES.iter().map(|v| (*v).to_owned()).collect()),
                false_values: spec.false_values.unwrap_or_else(|| value::FALSE_VALUES.iter().map(|v| (*v).to_owned()).collect()),
            };
            if let Some(default) = &column.default {
                // A default that cannot convert would reject every record that needs it.
                value::convert(&column, Input::Text(default.into()))
                    .map_err(|reason| fail(format!("default {default:?} is invalid: {reason}")))?;
            }
            ColumnValue::Source(column)
        }
    };
    Ok(Column { name: spec.name, value })
}

fn check_conflict(file: &str, table: &str, spec: ConflictSpec, columns: &HashSet<String>) -> Result<Conflict, MappingError> {
    let location = format!("table {table}, on_conflict");
    let update = match spec.action.as_str() {
        "update" => true,
        "nothing" => false,
        other => return Err(MappingError::new(file, location, format!("action {other:?} is unknown; expected update or nothing"))),
    };
    if spec.keys.is_empty() {
        return Err(MappingError::new(file, location, "keys is empty; redelivered records would duplicate rows"));
    }
    for key in &spec.keys {
        if !columns.contains(key) {
            return Err(MappingError::new(file, location, format!("key {key:?} is not a column of the mapping")));
        }
    }
    Ok(Conflict { keys: spec.keys, update })
}

fn check_condition(file: &str, location: &str, spec: ConditionSpec) -> Result<Condition, MappingError> {
    let location = format!("{location}, field {:?}", spec.field);
    let mut tests = Vec::new();
    if let Some(text) = spec.equals {
        tests.push(Test::Equals(text));
    }
    if let Some(text) = spec.not_equals {
        tests.push(Test::NotEquals(text));
    }
    if let Some(options) = spec.one_of {
        tests.push(Test::OneOf(options));
    }
    if let Some(pattern) = spec.matches {
        let regex = Regex::new(&pattern)
            .map_err(|error| MappingError::new(file, &location, format!("pattern {pattern:?} is invalid: {error}")))?;
        tests.push(Test::Matches(regex));
    }
    if let Some(expected) = spec.is_null {
        tests.push(Test::IsNull(expected));
    }
    if tests.len() != 1 {
        return Err(MappingError::new(
            file,
            location,
            format!("needs exactly one of equals, not_equals, one_of, matches, is_null; found {}", tests.len()),
        ));
    }
    Ok(Condition { field: spec.field, test: tests.remove(0) })
}

/// The checked mappings of every data set, by data set name.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    by_dataset: HashMap<String, Mapping>,
}

impl Mappings {
    /// Loads the mappings compiled into the binary from the repository's `mappings/` folder.
    pub fn embedded() -> Result<Self, MappingError> {
        Self::from_files(EMBEDDED_MAPPINGS.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())))
    }

    /// Loads every `*.toml` file of `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, MappingError> {
        let dir_name = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|error| MappingError::new(&dir_name, "", format!("cannot read the folder: {error}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|error| MappingError::new(&dir_name, "", error.to_string()))?.path();
            if path.extension().is_some_and(|extension| extension == "toml") {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|error| MappingError::new(&name, "", format!("cannot read: {error}")))?;
                files.push((name, text));
            }
        }
        files.sort();
        Self::from_files(files)
    }

    /// Parses and checks (file name, TOML text) pairs.
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Self, MappingError> {
        let mut by_dataset: HashMap<String, Mapping> = HashMap::new();
        for (file, text) in files {
            let mapping = Mapping::parse(&file, &text)?;
            if let Some(other) = by_dataset.get(&mapping.dataset) {
                return Err(MappingError::new(&file, "dataset", format!("{:?} is also mapped by {}", mapping.dataset, other.file)));
            }
            by_dataset.insert(mapping.dataset.clone(), mapping);
        }
        Ok(Self { by_dataset })
    }

    /// Returns the mapping of `dataset`.
    pub fn get(&self, dataset: &str) -> Option<&Mapping> {
        self.by_dataset.get(dataset)
    }

    /// Returns the data set names, sorted.
    pub fn datasets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_dataset.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Extracts the full example of mappings/README.md, so that the documented format is tested.
    fn readme_example() -> String {
        let readme = include_str!("../../../mappings/README.md");
        let start = readme.find("```toml\n").expect("README has a toml block") + "```toml\n".len();
        let end = start + readme[start..].find("```").expect("toml block ends");
        readme[start..end].to_owned()
    }

    const MINIMAL: &str = "dataset = \"d\"\ntable = \"t\"\n[[columns]]\nname = \"record_id\"\ncomputed = \"record_id\"\n";

    #[test]
    fn readme_example_parses_with_every_feature() {
        let mapping = Mapping::parse("README.md", &readme_example()).unwrap();
        assert_eq!(mapping.dataset, "orders");
        assert_eq!(mapping.table, "sales.orders");
        assert_eq!(mapping.null_markers, ["", "NA", "n/a"]);
        assert_eq!(mapping.conflict, Conflict { keys: vec!["record_id".into()], update: true });
        assert_eq!(mapping.drop_if.len(), 2);
        assert_eq!(mapping.routes.iter().map(|route| route.table.as_str()).collect::<Vec<_>>(), ["sales.orders_refunded", "sales.orders_internal"]);
        let types: Vec<ColumnType> = mapping
            .columns
            .iter()
            .filter_map(|column| match &column.value {
                ColumnValue::Source(source) => Some(source.column_type),
                ColumnValue::Computed(_) => None,
            })
            .collect();
        for expected in [
            ColumnType::Text,
            ColumnType::Integer,
            ColumnType::Bigint,
            ColumnType::Numeric,
            ColumnType::Double,
            ColumnType::Boolean,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::Timestamptz,
            ColumnType::Uuid,
            ColumnType::Json,
        ] {
            assert!(types.contains(&expected), "README example lacks type {expected:?}");
        }
    }

    #[test]
    fn embedded_mappings_are_valid() {
        let mappings = Mappings::embedded().unwrap();
        assert_eq!(mappings.datasets(), ["airports", "cars", "penguins", "seattle_weather"]);
    }

    #[test]
    fn column_options_are_resolved() {
        let text = "dataset = \"d\"\ntable = \"t\"\nnull_markers = [\"NA\"]\n\
                    [[columns]]\nname = \"record_id\"\ncomputed = \"record_id\"\n\
                    [[columns]]\nname = \"a\"\nsource = \"A\"\ntype = \"date\"\n\
                    [[columns]]\nname = \"b\"\nsource = \"B\"\ntrim = false\nnull_markers = [\"-\"]\ndefault = \"x\"\nrequired = true\n";
        let mapping = Mapping::parse("m.toml", text).unwrap();
        let ColumnValue::Source(a) = &mapping.columns[1].value else { panic!("a is a source column") };
        assert_eq!(a.formats, ["%Y-%m-%d"]);
        assert_eq!(a.null_markers, ["NA"]);
        assert!(a.trim);
        let ColumnValue::Source(b) = &mapping.columns[2].value else { panic!("b is a source column") };
        assert_eq!(b.column_type, ColumnType::Text);
        assert_eq!(b.null_markers, ["-"]);
        assert!(!b.trim);
        assert_eq!(b.default.as_deref(), Some("x"));
        assert!(b.required);
    }

    #[test]
    fn validation_errors_name_file_location_and_problem() {
        let column = |body: &str| format!("{MINIMAL}[[columns]]\nname = \"c\"\n{body}\n");
        let cases: Vec<(String, &str)> = vec![
            ("table = \"t\"\n".into(), "invalid mapping m.toml: missing field `dataset`"),
            (MINIMAL.replace("table = \"t\"", "table = \"T-1\""), "invalid mapping m.toml: table: table name \"T-1\" must match"),
            (MINIMAL.replace("table = \"t\"", "table = \"a.b.c\""), "table name \"a.b.c\" must match"),
            (MINIMAL.replace("table = \"t\"", "table = \"t; drop table x\""), "must match"),
            (MINIMAL.replace("dataset = \"d\"", "dataset = \"\""), "dataset: \"\" must be non-empty"),
            ("dataset = \"d\"\ntable = \"t\"\n".into(), "table t: has no [[columns]]"),
            (format!("{MINIMAL}colums = 1\n"), "unknown field `colums`"),
            (column("source = \"C\"\nname2 = 1"), "unknown field `name2`"),
            (MINIMAL.replace("name = \"record_id\"", "name = \"Record\""), "column Record: name \"Record\" must match"),
            (column("source = \"C\"").replace("name = \"c\"", "name = \"record_id\""), "column record_id: is defined twice"),
            (column(""), "table t, column c: needs a source field or a computed value"),
            (column("source = \"C\"\ncomputed = \"line\""), "column c: has both source and computed"),
            (column("computed = \"row\""), "column c: computed value \"row\" is unknown"),
            (column("computed = \"line\"\ntype = \"text\""), "column c: type does not apply to a computed column"),
            (column("computed = \"line\"\nrequired = true"), "column c: required does not apply to a computed column"),
            (column("source = \"C\"\ntype = \"float\""), "column c: type \"float\" is unknown; expected one of text, integer"),
            (column("source = \"C\"\ntype = \"integer\"\nformats = [\"%Y\"]"), "column c: formats do not apply to type integer"),
            (column("source = \"C\"\ntype = \"date\"\nformats = []"), "column c: formats is empty"),
            (column("source = \"C\"\ntype = \"date\"\nformats = [\"%Q\"]"), "column c: format \"%Q\" is not a valid chrono format"),
            (column("source = \"C\"\ntype = \"integer\"\ndefault = \"one\""), "column c: default \"one\" is invalid: field \"C\": \"one\" is not a 32-bit integer"),
            (column("source = \"C\"\ntrue_values = [\"si\"]"), "column c: true_values and false_values apply only to type boolean, not text"),
            (format!("{MINIMAL}[on_conflict]\naction = \"merge\"\n"), "table t, on_conflict: action \"merge\" is unknown"),
            (format!("{MINIMAL}[on_conflict]\nkeys = []\n"), "on_conflict: keys is empty"),
            (format!("{MINIMAL}[on_conflict]\nkeys = [\"id\"]\n"), "on_conflict: key \"id\" is not a column of the mapping"),
            (MINIMAL.replace("name = \"record_id\"", "name = \"row_id\""), "on_conflict: key \"record_id\" is not a column"),
            (format!("{MINIMAL}[[drop_if]]\nfield = \"x\"\n"), "drop_if, field \"x\": needs exactly one of equals, not_equals, one_of, matches, is_null; found 0"),
            (format!("{MINIMAL}[[drop_if]]\nfield = \"x\"\nequals = \"a\"\nis_null = true\n"), "found 2"),
            (format!("{MINIMAL}[[drop_if]]\nfield = \"x\"\nmatches = \"(\"\n"), "drop_if, field \"x\": pattern \"(\" is invalid"),
            (format!("{MINIMAL}[[route]]\ntable = \"t\"\nwhen = {{ field = \"x\", equals = \"a\" }}\n"), "route to t: routes to the mapping's own table"),
            (format!("{MINIMAL}[[route]]\ntable = \"Other\"\nwhen = {{ field = \"x\", equals = \"a\" }}\n"), "route to Other: table name \"Other\" must match"),
            (format!("{MINIMAL}[[route]]\ntable = \"other\"\n"), "missing field `when`"),
        ];
        for (text, expected) in cases {
            let error = Mapping::parse("m.toml", &text).expect_err(expected);
            let message = error.to_string();
            assert!(message.starts_with("invalid mapping m.toml: "), "{message}");
            assert!(message.contains(expected), "expected {expected:?} in {message:?}");
        }
    }

    #[test]
    fn duplicate_dataset_names_both_files() {
        let error = Mappings::from_files([("a.toml".to_owned(), MINIMAL.to_owned()), ("b.toml".to_owned(), MINIMAL.to_owned())]).unwrap_err();
        assert_eq!(error.to_string(), "invalid mapping b.toml: dataset: \"d\" is also mapped by a.toml");
    }

    #[test]
    fn insert_sql_upserts_on_keys() {
        let text = format!("{MINIMAL}[[columns]]\nname = \"year\"\nsource = \"Year\"\ntype = \"integer\"\n");
        let update = Mapping::parse("m.toml", &text).unwrap();
        assert_eq!(
            update.insert_sql("s.t"),
            "INSERT INTO \"s\".\"t\" (\"record_id\", \"year\") VALUES (:record_id, :year) ON CONFLICT (\"record_id\") DO UPDATE SET \"year\" = EXCLUDED.\"year\""
        );
        let nothing = Mapping::parse("m.toml", &format!("{text}[on_conflict]\naction = \"nothing\"\n")).unwrap();
        assert!(nothing.insert_sql("t").ends_with("ON CONFLICT (\"record_id\") DO NOTHING"), "{}", nothing.insert_sql("t"));
        // With every column a key there is nothing to update.
        let keys_only = Mapping::parse("m.toml", MINIMAL).unwrap();
        assert!(keys_only.insert_sql("t").ends_with("DO NOTHING"));
    }

    #[test]
    fn conditions_test_field_text() {
        let record: HashMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(r#"{"s":" refunded ","n":12,"b":true,"z":null,"na":"NA","e":""}"#).unwrap();
        let markers = vec![String::new(), "NA".to_owned()];
        let condition = |field: &str, test: Test| Condition { field: field.to_owned(), test };
        let cases = [
            (condition("s", Test::Equals("refunded".into())), true, true),
            (condition("s", Test::Equals("refunded".into())), false, false),
            (condition("s", Test::NotEquals("open".into())), true, true),
            (condition("s", Test::OneOf(vec!["x".into(), "refunded".into()])), true, true),
            (condition("s", Test::Matches(Regex::new("^ref").unwrap())), true, true),
            (condition("s", Test::Matches(Regex::new("^ref").unwrap())), false, false),
            (condition("n", Test::Equals("12".into())), true, true),
            (condition("b", Test::Equals("true".into())), true, true),
            (condition("z", Test::IsNull(true)), true, true),
            (condition("na", Test::IsNull(true)), true, true),
            (condition("e", Test::IsNull(true)), true, true),
            (condition("missing", Test::IsNull(true)), true, true),
            (condition("s", Test::IsNull(false)), true, true),
            (condition("missing", Test::Equals("".into())), true, false),
            (condition("missing", Test::NotEquals("x".into())), true, true),
            (condition("z", Test::OneOf(vec!["null".into()])), true, false),
        ];
        for (condition, trim, expected) in cases {
            assert_eq!(condition.holds(&record, trim, &markers), expected, "{condition:?} trim={trim}");
        }
    }
}
