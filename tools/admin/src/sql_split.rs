//! Splits a SQL file into statements, because the Data API runs one statement per call.

/// Splits `sql` at semicolons that are outside quotes, comments and
/// dollar-quoted bodies, and returns the non-empty statements without their
/// terminating semicolon. Statements that hold only comments are left out.
pub fn split_statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut i = 0;

    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(bytes, i);
                continue;
            }
            b'\'' => {
                // E'...' strings take backslash escapes; standard strings only ''.
                let backslash_escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E') && (i < 2 || !bytes[i - 2].is_ascii_alphanumeric());
                i = quoted_end(bytes, i, b'\'', backslash_escapes);
                has_code = true;
                continue;
            }
            b'"' => {
                i = quoted_end(bytes, i, b'"', false);
                has_code = true;
                continue;
            }
            b'$' => {
                if let Some(tag_len) = dollar_tag_len(bytes, i) {
                    let tag = &sql[i..i + tag_len];
                    i = sql[i + tag_len..].find(tag).map_or(bytes.len(), |end| i + tag_len + end + tag_len);
                    has_code = true;
                    continue;
                }
            }
            b';' => {
                if has_code {
                    statements.push(sql[start..i].trim().to_owned());
                }
                start = i + 1;
                has_code = false;
            }
            byte if !byte.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    if has_code {
        statements.push(sql[start..].trim().to_owned());
    }
    statements
}

/// Returns the index after the `*/` that closes the comment at `start`; PostgreSQL nests them.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Returns the index after the quote that closes the one at `start`; a doubled quote is an escaped one.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if backslash_escapes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Returns the length of a dollar-quote tag (`$$` or `$name$`) at `start`, if there is one.
fn dollar_tag_len(bytes: &[u8], start: usize) -> Option<usize> {
    // `$1` is a positional parameter, not a tag.
    if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        if i == start + 1 && bytes[i].is_ascii_digit() {
            return None;
        }
        i += 1;
    }
    (bytes.get(i) == Some(&b'$')).then_some(i + 1 - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cases() {
        let cases: [(&str, &[&str]); 9] = [
            ("CREATE TABLE a (x int); CREATE TABLE b (y int);", &["CREATE TABLE a (x int)", "CREATE TABLE b (y int)"]),
            ("SELECT 1", &["SELECT 1"]),
            ("-- only a comment;\n", &[]),
            ("SELECT 'a;b''c'; SELECT 2", &["SELECT 'a;b''c'", "SELECT 2"]),
            ("SELECT E'it\\'s;'; SELECT 2", &["SELECT E'it\\'s;'", "SELECT 2"]),
            ("SELECT \"we;ird\" FROM t;", &["SELECT \"we;ird\" FROM t"]),
            ("/* a; /* nested; */ b; */ SELECT 1;", &["/* a; /* nested; */ b; */ SELECT 1"]),
            (
                "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql; SELECT 3;",
                &["CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql", "SELECT 3"],
            ),
            ("COMMENT ON TABLE t IS $$a;b$$;\n-- trailing\n", &["COMMENT ON TABLE t IS $$a;b$$"]),
        ];
        for (sql, expected) in cases {
            assert_eq!(split_statements(sql), expected, "{sql}");
        }
    }
}
