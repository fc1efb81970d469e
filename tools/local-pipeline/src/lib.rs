//! The pipeline's triggers, run on this machine against LocalStack.
//!
//! In AWS, S3 sends "Object Created" events to EventBridge, whose rules
//! invoke compress-on-upload and s3-to-sqs, and an SQS event source mapping
//! invokes transform-to-rds with batches from the records queue. Locally the
//! functions run under `cargo lambda watch`, and this crate does the rest,
//! with the wiring read from `template.yaml`:
//! - [`setup`] creates the buckets and queues, and points the bucket's
//!   notifications at a queue that replaces EventBridge;
//! - [`run`] delivers those notifications to the functions whose rules match
//!   ([`events`]) and polls the records queue like an event source mapping
//!   ([`poller`]);
//! - [`report`] shows what came of the uploaded files.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod events;
pub mod intrinsics;
pub mod invoke;
pub mod journal;
pub mod pattern;
pub mod poller;
pub mod report;
pub mod run;
pub mod setup;
pub mod template;
pub mod watch_env;

pub use error::Error;
pub use template::{LocalNaming, Wiring};
