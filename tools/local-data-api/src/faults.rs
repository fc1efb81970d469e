//! Fault injection for tests: `POST /_local/faults` queues errors that the
//! next matching calls return in the service's wire shape, so that callers'
//! retry and partial-failure paths can be tested against the real protocol.

use std::sync::Mutex;

use serde::Deserialize;

use crate::error::ApiError;

/// Operations a fault can target.
pub const OPERATIONS: [&str; 5] =
    ["ExecuteStatement", "BatchExecuteStatement", "BeginTransaction", "CommitTransaction", "RollbackTransaction"];

/// Body of `POST /_local/faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    /// Error type to return, such as `DatabaseResumingException`.
    pub error: String,
    /// Number of calls that fail; default 1.
    #[serde(default = "one")]
    pub count: u32,
    /// Operation to fail, such as `ExecuteStatement`; any operation when absent.
    pub operation: Option<String>,
    /// Cluster ARN whose calls fail; any when absent. Lets tests that run in
    /// parallel keep their faults apart.
    pub resource_arn: Option<String>,
    /// Error message; a default that names the injected fault when absent.
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug)]
struct Fault {
    request: FaultRequest,
    remaining: u32,
}

/// Queued faults, matched in the order they were added.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Mutex<Vec<Fault>>,
}

impl Faults {
    /// Queues `request` after checking its error type and operation.
    pub fn add(&self, request: FaultRequest) -> Result<(), String> {
        if ApiError::from_type(&request.error, String::new()).is_none() {
            return Err(format!(
                "Unknown error type {}; expected DatabaseResumingException, DatabaseUnavailableException, \
                 StatementTimeoutException, InternalServerErrorException, ServiceUnavailableError, \
                 BadRequestException or DatabaseErrorException",
                request.error
            ));
        }
        if let Some(operation) = &request.operation
            && !OPERATIONS.contains(&operation.as_str())
        {
            return Err(format!("Unknown operation {operation}; expected one of {}", OPERATIONS.join(", ")));
        }
        if request.count == 0 {
            return Err("count must be at least 1".to_owned());
        }
        let remaining = request.count;
        self.lock().push(Fault { request, remaining });
        Ok(())
    }

    /// Removes the faults for `resource_arn`, or all faults when `None`.
    /// Returns how many were removed.
    pub fn clear(&self, resource_arn: Option<&str>) -> usize {
        let mut queued = self.lock();
        let before = queued.len();
        queued.retain(|fault| resource_arn.is_some_and(|arn| fault.request.resource_arn.as_deref() != Some(arn)));
        before - queued.len()
    }

    /// Takes one use of the first fault that matches the call, if any.
    pub fn take(&self, operation: &str, resource_arn: Option<&str>) -> Option<ApiError> {
        let mut queued = self.lock();
        let index = queued.iter().position(|fault| {
            fault.request.operation.as_deref().is_none_or(|wanted| wanted == operation)
                && fault.request.resource_arn.as_deref().is_none_or(|wanted| Some(wanted) == resource_arn)
        })?;
        let fault = &mut queued[index];
        fault.remaining -= 1;
        let message = fault
            .request
            .message
            .clone()
            .unwrap_or_else(|| format!("Injected {} for {operation}", fault.request.error));
        let error = ApiError::from_type(&fault.request.error, message);
        if fault.remaining == 0 {
            queued.remove(index);
        }
        error
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        // A panic while holding this lock leaves the list itself consistent.
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(error: &str, count: u32, operation: Option<&str>, arn: Option<&str>) -> FaultRequest {
        FaultRequest {
            error: error.to_owned(),
            count,
            operation: operation.map(str::to_owned),
            resource_arn: arn.map(str::to_owned),
            message: None,
        }
    }

    #[test]
    fn counts_down_and_scopes() {
        let faults = Faults::default();
        faults.add(request("DatabaseResumingException", 2, Some("ExecuteStatement"), Some("arn:a"))).expect("valid");
        assert_eq!(faults.take("ExecuteStatement", Some("arn:b")), None);
        assert_eq!(faults.take("BeginTransaction", Some("arn:a")), None);
        assert!(matches!(faults.take("ExecuteStatement", Some("arn:a")), Some(ApiError::DatabaseResuming(_))));
        assert!(matches!(faults.take("ExecuteStatement", Some("arn:a")), Some(ApiError::DatabaseResuming(_))));
        assert_eq!(faults.take("ExecuteStatement", Some("arn:a")), None);
    }

    #[test]
    fn rejects_unknown_names() {
        let faults = Faults::default();
        assert!(faults.add(request("ThrottlingException", 1, None, None)).is_err());
        assert!(faults.add(request("StatementTimeoutException", 1, Some("Execute"), None)).is_err());
        assert!(faults.add(request("StatementTimeoutException", 0, None, None)).is_err());
    }

    #[test]
    fn clear_by_cluster() {
        let faults = Faults::default();
        faults.add(request("InternalServerErrorException", 1, None, Some("arn:a"))).expect("valid");
        faults.add(request("InternalServerErrorException", 1, None, Some("arn:b"))).expect("valid");
        assert_eq!(faults.clear(Some("arn:a")), 1);
        assert!(faults.take("ExecuteStatement", Some("arn:b")).is_some());
        faults.add(request("InternalServerErrorException", 1, None, None)).expect("valid");
        assert_eq!(faults.clear(None), 1);
    }
}
