//! Code that every function of the pipeline shares: configuration read once
//! from the environment, AWS SDK clients, S3 notification parsing, the SQS
//! message envelope and logging set-up.

pub mod aws;
pub mod config;
pub mod envelope;
pub mod event;
pub mod logging;

pub use config::{ConfigError, Env};
pub use event::{EventError, Notification, ObjectEvent, S3Location};
