//! Lambda entry point of s3-to-sqs.

use lambda_runtime::{LambdaEvent, run, service_fn};
use pipeline_shared::{Env, aws, logging};
use s3_to_sqs::{Config, State, handle};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = Config::from_env(&Env::from_process())?;
    let sdk_config = aws::load_sdk_config().await;
    let state = State { config, s3: aws::s3_client(&sdk_config), sqs: aws::sqs_client(&sdk_config) };
    run(service_fn(|event: LambdaEvent<Value>| handle(&state, event))).await
}
