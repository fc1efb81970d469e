//! Command line of pipeline-admin. Run `pipeline-admin --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pipeline_admin::{AdminError, migrate, replay};
use transform_to_rds::db::Database;
use transform_to_rds::mapping::Mappings;
use transform_to_rds::writer::{DATA_API_MAX_REQUEST_BYTES, RetryPolicy, Writer};

/// Database chores of the S3-to-Aurora pipeline, through the RDS Data API.
///
/// The Data API endpoint follows the AWS SDK settings (AWS_REGION,
/// AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_RDS_DATA for a local server).
#[derive(Debug, Parser)]
#[command(name = "pipeline-admin", version)]
struct Cli {
    /// Aurora cluster ARN.
    #[arg(long, env = "DB_CLUSTER_ARN", global = true)]
    cluster_arn: Option<String>,
    /// Secrets Manager ARN of the database credentials.
    #[arg(long, env = "DB_SECRET_ARN", global = true)]
    secret_arn: Option<String>,
    /// Database name.
    #[arg(long, env = "DB_NAME", default_value = "pipeline", global = true)]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the migration files that are not applied yet, each in its own transaction.
    Migrate {
        /// Folder of numbered SQL files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Table that records applied files, optionally schema-qualified.
        #[arg(long, default_value = "schema_migrations")]
        migrations_table: String,
    },
    /// List the migration files and whether each is applied.
    Status {
        /// Folder of numbered SQL files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Table that records applied files, optionally schema-qualified.
        #[arg(long, default_value = "schema_migrations")]
        migrations_table: String,
    },
    /// Re-apply the current mapping to a data set's rejected records; those that
    /// succeed are written and their reject rows deleted.
    ReplayRejects {
        /// Data set whose rejects to replay.
        #[arg(long)]
        dataset: String,
        /// Report what would happen, then roll every transaction back.
        #[arg(long)]
        dry_run: bool,
        /// Folder of mapping files, instead of the compiled-in `mappings/`.
        #[arg(long, env = "MAPPINGS_DIR")]
        mappings_dir: Option<PathBuf>,
        /// Rejects table, optionally schema-qualified.
        #[arg(long, env = "REJECTS_TABLE", default_value = "rejected_records")]
        rejects_table: String,
        /// Reject rows read per Data API call (responses are capped at 1 MiB).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: u32,
    },
    /// Check mapping files and print their data sets.
    CheckMappings {
        /// Folder of mapping files, instead of the compiled-in `mappings/`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    pipeline_shared::logging::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), AdminError> {
    match cli.command {
        Command::CheckMappings { dir } => {
            let mappings = load_mappings(dir.as_deref())?;
            for dataset in mappings.datasets() {
                let mapping = mappings.get(dataset).ok_or_else(|| AdminError::Config(format!("data set {dataset} vanished")))?;
                println!("{dataset}: {} -> {} ({} columns)", mapping.file, mapping.table, mapping.columns.len());
            }
            Ok(())
        }
        Command::Migrate { dir, migrations_table } => {
            check_table_name("--migrations-table", &migrations_table)?;
            let files = migrate::load_dir(&dir)?;
            let db = database(&cli.cluster_arn, &cli.secret_arn, &cli.database).await?;
            let report = migrate::migrate(&db, &files, &migrations_table).await?;
            for file in &report.applied {
                println!("applied {file}");
            }
            println!("migrations: {} applied, {} already applied", report.applied.len(), report.already_applied.len());
            Ok(())
        }
        Command::Status { dir, migrations_table } => {
            check_table_name("--migrations-table", &migrations_table)?;
            let files = migrate::load_dir(&dir)?;
            let db = database(&cli.cluster_arn, &cli.secret_arn, &cli.database).await?;
            for ((name, applied), file) in migrate::status(&db, &files, &migrations_table).await?.into_iter().zip(&files) {
                let state = match applied {
                    None => "pending",
                    Some(checksum) if checksum == file.checksum => "applied",
                    Some(_) => "CHANGED since applied",
                };
                println!("{name}: {state}");
            }
            Ok(())
        }
        Command::ReplayRejects { dataset, dry_run, mappings_dir, rejects_table, page_size } => {
            check_table_name("--rejects-table", &rejects_table)?;
            let mappings = load_mappings(mappings_dir.as_deref())?;
            let mapping = mappings
                .get(&dataset)
                .ok_or_else(|| AdminError::UnknownDataset { dataset: dataset.clone(), known: mappings.datasets().join(", ") })?;
            let writer = Writer {
                db: database(&cli.cluster_arn, &cli.secret_arn, &cli.database).await?,
                rejects_table,
                max_request_bytes: DATA_API_MAX_REQUEST_BYTES,
                retry: RetryPolicy { max_attempts: 8, base_delay: std::time::Duration::from_millis(200), max_delay: std::time::Duration::from_secs(10) },
            };
            let report = replay::replay_rejects(&writer, mapping, page_size, dry_run).await?;
            let verb = if dry_run { "would be" } else { "were" };
            println!(
                "{dataset}: {} rejects examined; {} records {verb} written, {} dropped, {} still rejected; {} parse rejects skipped (fix the file and upload it again)",
                report.examined, report.written, report.dropped, report.still_rejected, report.skipped_parse
            );
            Ok(())
        }
    }
}

fn load_mappings(dir: Option<&std::path::Path>) -> Result<Mappings, AdminError> {
    Ok(match dir {
        Some(dir) => Mappings::from_dir(dir)?,
        None => Mappings::embedded()?,
    })
}

fn check_table_name(option: &str, table: &str) -> Result<(), AdminError> {
    if transform_to_rds::mapping::is_valid_table(table) {
        Ok(())
    } else {
        Err(AdminError::Config(format!("{option} {table:?} must match [a-z_][a-z0-9_]{{0,62}}, optionally as schema.table")))
    }
}

async fn database(cluster_arn: &Option<String>, secret_arn: &Option<String>, database: &str) -> Result<Database, AdminError> {
    let cluster_arn = cluster_arn.clone().ok_or_else(|| AdminError::Config("set --cluster-arn or DB_CLUSTER_ARN".to_owned()))?;
    let secret_arn = secret_arn.clone().ok_or_else(|| AdminError::Config("set --secret-arn or DB_SECRET_ARN".to_owned()))?;
    let sdk_config = pipeline_shared::aws::load_sdk_config().await;
    Ok(Database { client: pipeline_shared::aws::rds_data_client(&sdk_config), cluster_arn, secret_arn, database: database.to_owned() })
}
