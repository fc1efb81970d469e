//! AWS SDK clients, built once per cold start.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the standard sources: region,
/// credentials and the `AWS_ENDPOINT_URL` override (and its per-service
/// variants such as `AWS_ENDPOINT_URL_S3`).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Builds an S3 client.
///
/// When an endpoint override is set, requests use path-style addressing
/// (`http://host/bucket/key`), because emulators such as LocalStack on
/// 127.0.0.1 have no DNS for virtual-hosted bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let has_endpoint_override = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|value| !value.is_empty());
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(has_endpoint_override).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Builds an SQS client.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// Builds an RDS Data API client.
pub fn rds_data_client(config: &SdkConfig) -> aws_sdk_rdsdata::Client {
    aws_sdk_rdsdata::Client::new(config)
}
