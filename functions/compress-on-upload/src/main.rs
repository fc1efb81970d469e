//! Lambda entry point of compress-on-upload: set-up only, once per cold start.

use compress_on_upload::{Config, State, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use pipeline_shared::{Env, aws, logging};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let config = Config::from_env(&Env::from_process())?;
    let sdk_config = aws::load_sdk_config().await;
    let state = State::new(config, aws::s3_client(&sdk_config));

    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| handle(&state, event))).await
}
