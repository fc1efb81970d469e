//! `local-pipeline`: sets up and runs the template's triggers against the
//! local stack. See the crate documentation for what each command does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use clap::{Parser, Subcommand};
use local_pipeline::events::EventShape;
use local_pipeline::report::{self, Database};
use local_pipeline::run::RunOptions;
use local_pipeline::setup::EventQueues;
use local_pipeline::{Error, LocalNaming, Wiring, journal, run, setup, watch_env};

/// Run the pipeline's triggers locally, with the wiring read from the SAM template.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// SAM template to read the wiring from.
    #[arg(long, default_value = "template.yaml", global = true)]
    template: PathBuf,
    /// Stack name that `AWS::StackName` resolves to and that prefixes unnamed resources.
    #[arg(long, default_value = "pipeline-local", global = true)]
    stack_name: String,
    /// Template parameter value, as NAME=VALUE; repeat for several.
    #[arg(long = "parameter", value_parser = parse_pair, global = true)]
    parameters: Vec<(String, String)>,
    /// LocalStack endpoint for S3 and SQS; only 127.0.0.1 endpoints are meant here.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:4566",
        global = true
    )]
    endpoint_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the template's buckets and queues and the stand-in for EventBridge.
    Setup,
    /// Deliver object-created events and poll SQS sources until Ctrl-C.
    Run {
        /// Lambda Invoke API base URL, served by `cargo lambda watch`.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        invoke_url: String,
        /// Maximum wait for one invocation in seconds; the first one also compiles the function.
        #[arg(long, default_value_t = 900)]
        invoke_timeout_secs: u64,
        /// Shape of the events that the S3 functions receive.
        #[arg(long, value_enum, default_value_t = EventShape::Eventbridge)]
        event_shape: EventShape,
        /// Seconds before a failed notification is delivered again.
        #[arg(long, default_value_t = 10)]
        retry_delay_secs: u32,
        /// Maximum concurrent batches per SQS source (the template's MaximumConcurrency, capped).
        #[arg(long, default_value_t = 2)]
        max_concurrency: u32,
        /// Exit once the queues are empty; fail when they are not empty after this many seconds.
        #[arg(long)]
        drain_timeout_secs: Option<u64>,
        /// Seconds the queues must stay empty to count as drained.
        #[arg(long, default_value_t = 3)]
        quiet_period_secs: u64,
        /// File to append one JSON line per invocation to.
        #[arg(long, default_value = ".local/logs/invocations.jsonl")]
        journal: PathBuf,
    },
    /// Upload a file to a bucket of the template, as a user would.
    Upload {
        /// File to upload.
        file: PathBuf,
        /// Object key, such as `incoming/penguins/penguins-raw.csv`.
        #[arg(long)]
        key: String,
        /// Logical id of the bucket in the template.
        #[arg(long, default_value = "InputBucket")]
        bucket: String,
    },
    /// Print each function's `[package.metadata.lambda.env]` for `cargo lambda watch`.
    Env {
        /// Compare with functions/<binary>/Cargo.toml and fail on a difference.
        #[arg(long)]
        check: bool,
    },
    /// Save the row count of every table, to compare after a run.
    Counts {
        /// JSON file to write.
        #[arg(long)]
        save: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print per file the archive size, records sent and rejected, and rows per table.
    Report {
        /// Journal that `run` wrote.
        #[arg(long, default_value = ".local/logs/invocations.jsonl")]
        journal: PathBuf,
        /// Key prefix of the archive copies.
        #[arg(long, default_value = "archive/")]
        archive_prefix: String,
        /// Counts saved by `counts --save` before the run, to show the change.
        #[arg(long)]
        before: Option<PathBuf>,
        /// Seconds the run took, to print.
        #[arg(long)]
        elapsed_secs: Option<f64>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// Folder of mapping files; only their tables (and the rejects table) are counted,
    /// or every table when it has none.
    #[arg(long, default_value = "mappings")]
    mappings_dir: PathBuf,
    /// Local RDS Data API endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL_RDS_DATA",
        default_value = "http://127.0.0.1:8089"
    )]
    data_api_url: String,
    /// Cluster ARN passed to the Data API.
    #[arg(
        long,
        default_value = "arn:aws:rds:us-east-1:000000000000:cluster:local"
    )]
    cluster_arn: String,
    /// Secret ARN passed to the Data API.
    #[arg(
        long,
        default_value = "arn:aws:secretsmanager:us-east-1:000000000000:secret:local"
    )]
    secret_arn: String,
    /// Database name.
    #[arg(long, default_value = "pipeline")]
    database: String,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    pipeline_shared::logging::init();
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, retryable = error.is_retryable(), "local-pipeline failed");
            eprintln!("local-pipeline: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> Result<(), Error> {
    let naming = LocalNaming {
        stack_name: cli.stack_name.clone(),
        sqs_endpoint: cli.endpoint_url.trim_end_matches('/').to_owned(),
        parameter_overrides: cli.parameters.iter().cloned().collect::<BTreeMap<_, _>>(),
        ..LocalNaming::default()
    };
    let wiring = Wiring::load(&cli.template, &naming)?;

    match cli.command {
        Command::Setup => {
            let (s3, sqs) = local_clients(&cli.endpoint_url, &naming.region).await;
            let summary = setup::setup(&wiring, &naming, &s3, &sqs).await?;
            for bucket in &summary.buckets {
                println!("bucket  {bucket}");
            }
            for queue in &summary.queues {
                println!("queue   {queue}");
            }
            for (bucket, prefixes) in &summary.notifications {
                println!(
                    "notify  s3://{bucket}/{{{}}} -> {}",
                    prefixes.join(","),
                    EventQueues::new(&naming).name
                );
            }
            Ok(())
        }
        Command::Run {
            invoke_url,
            invoke_timeout_secs,
            event_shape,
            retry_delay_secs,
            max_concurrency,
            drain_timeout_secs,
            quiet_period_secs,
            journal,
        } => {
            let (_, sqs) = local_clients(&cli.endpoint_url, &naming.region).await;
            let options = RunOptions {
                invoke_url,
                invoke_timeout: Duration::from_secs(invoke_timeout_secs),
                event_shape,
                retry_delay_secs,
                max_concurrency,
                drain_timeout: drain_timeout_secs.map(Duration::from_secs),
                quiet_period: Duration::from_secs(quiet_period_secs),
                journal: Some(journal),
            };
            run::run(&wiring, &naming, sqs, options).await.map(|_| ())
        }
        Command::Upload { file, key, bucket } => {
            let bucket = wiring
                .bucket(&bucket)
                .ok_or_else(|| Error::Wiring(format!("the template has no bucket {bucket}")))?
                .name
                .clone();
            let (s3, _) = local_clients(&cli.endpoint_url, &naming.region).await;
            let body = aws_sdk_s3::primitives::ByteStream::from_path(&file)
                .await
                .map_err(|error| Error::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other(error),
                })?;
            let output = s3
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body)
                .send()
                .await
                .map_err(|error| Error::aws("PutObject", format!("s3://{bucket}/{key}"), error))?;
            tracing::info!(bucket = %bucket, key = %key, etag = output.e_tag().unwrap_or_default(), "uploaded");
            Ok(())
        }
        Command::Env { check } => {
            let mut problems = Vec::new();
            for function in &wiring.functions {
                let manifest = PathBuf::from("functions")
                    .join(&function.binary)
                    .join("Cargo.toml");
                if check {
                    let actual = watch_env::manifest_environment(&manifest)?;
                    for line in
                        watch_env::differences(&watch_env::expected_environment(function), &actual)
                    {
                        problems.push(format!("{}: {line}", manifest.display()));
                    }
                } else {
                    println!(
                        "# {} ({})\n{}",
                        function.logical_id,
                        manifest.display(),
                        watch_env::render_section(function)
                    );
                }
            }
            if problems.is_empty() {
                return Ok(());
            }
            for problem in &problems {
                eprintln!("{problem}");
            }
            Err(Error::Wiring(format!(
                "{} variables differ from the template; run `local-pipeline env` for the expected sections",
                problems.len()
            )))
        }
        Command::Counts {
            save,
            database: database_args,
        } => {
            let (client, database) = data_api(&database_args, &naming.region).await;
            let tables = report::pipeline_tables(&database_args.mappings_dir, &wiring);
            let counts = report::table_counts(&client, &database, &tables).await?;
            report::save_counts(&save, &counts)
        }
        Command::Report {
            journal: journal_path,
            archive_prefix,
            before,
            elapsed_secs,
            database: database_args,
        } => {
            let (s3, sqs) = local_clients(&cli.endpoint_url, &naming.region).await;
            let (client, database) = data_api(&database_args, &naming.region).await;
            let tables = report::pipeline_tables(&database_args.mappings_dir, &wiring);
            let entries = journal::read(&journal_path).unwrap_or_default();
            let files = report::files(&wiring, &s3, &archive_prefix, &entries).await?;
            let after = report::table_counts(&client, &database, &tables).await?;
            let before = before.map(|path| report::load_counts(&path)).transpose()?;
            let dead_letters =
                report::dead_letter_counts(&wiring, &EventQueues::new(&naming), &sqs).await?;
            print!(
                "{}",
                report::render(&files, before.as_ref(), &after, &dead_letters, elapsed_secs)
            );
            Ok(())
        }
    }
}

/// Builds S3 and SQS clients for LocalStack. The credentials are fixed so
/// that the SDK never looks for real ones (or queries an instance metadata
/// endpoint); LocalStack accepts any.
async fn local_clients(
    endpoint_url: &str,
    region: &str,
) -> (aws_sdk_s3::Client, aws_sdk_sqs::Client) {
    let config = sdk_config(endpoint_url, region).await;
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(true)
        .build();
    (
        aws_sdk_s3::Client::from_conf(s3_config),
        aws_sdk_sqs::Client::new(&config),
    )
}

async fn data_api(args: &DatabaseArgs, region: &str) -> (aws_sdk_rdsdata::Client, Database) {
    let config = sdk_config(&args.data_api_url, region).await;
    let database = Database {
        cluster_arn: args.cluster_arn.clone(),
        secret_arn: args.secret_arn.clone(),
        database: args.database.clone(),
    };
    (aws_sdk_rdsdata::Client::new(&config), database)
}

async fn sdk_config(endpoint_url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "local-pipeline",
        ))
        .endpoint_url(endpoint_url)
        .load()
        .await
}
