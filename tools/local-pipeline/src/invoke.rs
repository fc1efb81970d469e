//! Synchronous function invocation through the Lambda Invoke API that
//! `cargo lambda watch` serves on `http://127.0.0.1:9000`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An invocation that did not return a successful response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The endpoint could not be reached or the connection broke.
    #[error("invoking {function} failed: {reason}; is `make watch` running?")]
    Transport {
        /// Function name.
        function: String,
        /// The connection error.
        reason: String,
    },
    /// The function ran and returned an error, or the emulator rejected the call.
    #[error("{function} returned an error (HTTP {status}): {message}")]
    Function {
        /// Function name.
        function: String,
        /// HTTP status of the response.
        status: u16,
        /// The error payload, usually `{"errorType": ..., "errorMessage": ...}`.
        message: String,
    },
    /// No response arrived within the invoke timeout.
    #[error("invoking {function} timed out after {timeout_secs} s")]
    Timeout {
        /// Function name.
        function: String,
        /// The timeout in seconds.
        timeout_secs: u64,
    },
}

/// Sends `RequestResponse` invocations to a Lambda Invoke API endpoint.
#[derive(Debug, Clone)]
pub struct Invoker {
    base_url: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Invoker {
    /// Creates an invoker for the endpoint at `base_url`, such as
    /// `http://127.0.0.1:9000`; each call waits at most `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            client,
        }
    }

    /// Invokes `function` with `payload` and returns the response payload.
    ///
    /// A response counts as successful when its status is 2xx and it has no
    /// `X-Amz-Function-Error` header. Lambda reports function errors with
    /// status 200 and that header, and `cargo lambda watch` 1.9 reports them
    /// with status 500; both are errors here.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> Result<Bytes, InvokeError> {
        let transport = |reason: String| InvokeError::Transport {
            function: function.to_owned(),
            reason,
        };

        let body = serde_json::to_vec(payload).map_err(|error| transport(error.to_string()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.base_url
            ))
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| transport(error.to_string()))?;

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| transport(error_chain(&error)))?;
            let status = response.status();
            let function_error = response.headers().get("x-amz-function-error").is_some();
            let payload = response
                .into_body()
                .collect()
                .await
                .map_err(|error| transport(error.to_string()))?
                .to_bytes();
            Ok::<_, InvokeError>((status, function_error, payload))
        };
        let (status, function_error, payload) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| InvokeError::Timeout {
                function: function.to_owned(),
                timeout_secs: self.timeout.as_secs(),
            })??;

        if !status.is_success() || function_error {
            return Err(InvokeError::Function {
                function: function.to_owned(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&payload)
                    .chars()
                    .take(2000)
                    .collect(),
            });
        }
        Ok(payload)
    }
}

/// Writes an error with its sources, because hyper's top-level message
/// ("client error (Connect)") hides the cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
