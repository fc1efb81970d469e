//! Logging set-up that follows the Lambda function's logging configuration.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber.
///
/// Lambda sets `AWS_LAMBDA_LOG_FORMAT` to `JSON` when the function's log
/// format is JSON, and `AWS_LAMBDA_LOG_LEVEL` to the chosen application log
/// level. `RUST_LOG`, when set, takes precedence over the level so that one
/// module can be traced in detail. Without either, the level is `INFO`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| level.to_lowercase()))
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));

    // CloudWatch adds its own timestamp to text logs, and colours would show
    // as escape codes there.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    } else {
        builder.without_time().try_init()
    };
    // A subscriber already installed (by a test harness, say) is fine.
    drop(result);
}
