//! `local-data-api`: serves the RDS Data API on a local port in front of PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// Local RDS Data API server backed by PostgreSQL.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// PostgreSQL connection string; its database is the default for requests without `database`.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:54329/pipeline")]
    database_url: String,
    /// Seconds without calls after which an open transaction is rolled back (the service uses 180).
    #[arg(long, default_value_t = 180.0)]
    transaction_idle_timeout_secs: f64,
    /// Seconds after which any open transaction is rolled back (the service uses 86400).
    #[arg(long, default_value_t = 86_400.0)]
    transaction_max_lifetime_secs: f64,
    /// Seconds a call may run before it fails with StatementTimeoutException (the service uses 45).
    #[arg(long, default_value_t = 45.0)]
    statement_timeout_secs: f64,
    /// Maximum PostgreSQL connections per database.
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let args = Args::parse();
    let durations = [
        ("--transaction-idle-timeout-secs", args.transaction_idle_timeout_secs),
        ("--transaction-max-lifetime-secs", args.transaction_max_lifetime_secs),
        ("--statement-timeout-secs", args.statement_timeout_secs),
    ];
    for (flag, seconds) in durations {
        if !(seconds.is_finite() && seconds > 0.0) {
            eprintln!("local-data-api: {flag} must be a positive number of seconds, got {seconds}");
            return std::process::ExitCode::from(2);
        }
    }
    let options = local_data_api::Options {
        database_url: args.database_url,
        transaction_idle_timeout: Duration::from_secs_f64(args.transaction_idle_timeout_secs),
        transaction_max_lifetime: Duration::from_secs_f64(args.transaction_max_lifetime_secs),
        statement_timeout: Duration::from_secs_f64(args.statement_timeout_secs),
        pool_size: args.pool_size,
    };

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("local-data-api: cannot listen on {}: {error}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %args.listen, "local Data API listening");
    match local_data_api::serve(listener, options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("local-data-api: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
