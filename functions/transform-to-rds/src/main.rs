//! Lambda entry point of transform-to-rds: set-up only, the work is in `handle`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pipeline_shared::Env;
use transform_to_rds::{Config, State, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipeline_shared::logging::init();
    let config = Config::from_env(&Env::from_process())?;
    let sdk_config = pipeline_shared::aws::load_sdk_config().await;
    let state = State::new(config, pipeline_shared::aws::rds_data_client(&sdk_config))?;
    tracing::info!(datasets = ?state.mappings.datasets(), rejects_table = %state.config.rejects_table, "transform-to-rds started");

    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| handle(state, event))).await
}
