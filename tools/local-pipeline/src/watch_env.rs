//! The environment each function gets under `cargo lambda watch`.
//!
//! `cargo lambda watch` reads a function's variables from the
//! `[package.metadata.lambda.env]` section of its crate's `Cargo.toml`
//! (cargo-lambda 1.9). Those sections hold the template's variables resolved
//! to local names, plus the endpoints and credentials of the local stack.
//! `local-pipeline env` prints the expected sections and `env --check`
//! compares them with the files, so the template stays the source of truth.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;
use crate::template::Function;

/// Variables that point a function's SDK clients at the local stack.
pub fn local_endpoint_variables() -> BTreeMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        // The SDK's per-service override; the service id is "RDS Data".
        ("AWS_ENDPOINT_URL_RDS_DATA", "http://127.0.0.1:8089"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// Returns the variables that `function` needs under `cargo lambda watch`:
/// the template's, then the local endpoints.
pub fn expected_environment(function: &Function) -> BTreeMap<String, String> {
    let mut environment = function.environment.clone();
    environment.extend(local_endpoint_variables());
    environment
}

/// Renders the `[package.metadata.lambda.env]` section for `function`.
pub fn render_section(function: &Function) -> String {
    let mut text = String::from("[package.metadata.lambda.env]\n");
    for (name, value) in expected_environment(function) {
        text.push_str(&format!("{name} = {}\n", toml::Value::String(value)));
    }
    text
}

/// Reads `[package.metadata.lambda.env]` from a crate manifest.
pub fn manifest_environment(manifest: &Path) -> Result<BTreeMap<String, String>, Error> {
    let io = |source| Error::Io {
        path: manifest.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(manifest).map_err(io)?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|error| io(std::io::Error::other(error)))?;
    let section = ["package", "metadata", "lambda", "env"]
        .iter()
        .try_fold(&value, |node, key| node.get(key));
    let Some(table) = section.and_then(toml::Value::as_table) else {
        return Ok(BTreeMap::new());
    };
    Ok(table
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned),
            )
        })
        .collect())
}

/// Lists how `actual` differs from `expected`, one line per variable.
pub fn differences(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, value) in expected {
        match actual.get(name) {
            None => lines.push(format!("{name} is missing; expected {value:?}")),
            Some(found) if found != value => {
                lines.push(format!("{name} is {found:?}; expected {value:?}"))
            }
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|name| !expected.contains_key(*name)) {
        lines.push(format!("{name} is set but the template does not define it"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_lists_each_case() {
        let expected = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "2".to_owned()),
        ]);
        let actual = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "3".to_owned()),
            ("C".to_owned(), "4".to_owned()),
        ]);
        assert_eq!(
            differences(&expected, &actual),
            vec![
                "B is \"3\"; expected \"2\"".to_owned(),
                "C is set but the template does not define it".to_owned()
            ]
        );
    }
}
