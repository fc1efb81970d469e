//! Open transactions: each keeps one pooled connection between calls and
//! ends on commit, rollback, idle timeout or maximum lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Object;

use crate::error::ApiError;

/// An open transaction and the connection it runs on.
#[derive(Debug)]
pub struct Transaction {
    /// Identifier returned by BeginTransaction.
    pub id: String,
    /// Cluster ARN the transaction was started on; later calls must name the same one.
    pub resource_arn: String,
    started: Instant,
    last_used: Mutex<Instant>,
    connection: tokio::sync::Mutex<Option<Object>>,
}

impl Transaction {
    /// Locks the connection for one call; calls on the same transaction run
    /// one after another. Returns `None` once the transaction has ended.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<Object>> {
        let guard = self.connection.lock().await;
        self.touch();
        guard
    }

    /// Records that a call used the transaction now.
    pub fn touch(&self) {
        if let Ok(mut last_used) = self.last_used.lock() {
            *last_used = Instant::now();
        }
    }

    fn idle_for(&self, now: Instant) -> Duration {
        self.last_used.lock().map_or(Duration::ZERO, |last_used| now.saturating_duration_since(*last_used))
    }
}

/// Registry of open transactions with their idle and lifetime limits.
#[derive(Debug)]
pub struct Transactions {
    open: Mutex<HashMap<String, Arc<Transaction>>>,
    idle_timeout: Duration,
    max_lifetime: Duration,
}

impl Transactions {
    /// Creates an empty registry. The service ends a transaction after 3
    /// minutes without calls or 24 hours in all. Both are parameters here,
    /// so that tests can use short ones.
    pub fn new(idle_timeout: Duration, max_lifetime: Duration) -> Self {
        Self { open: Mutex::new(HashMap::new()), idle_timeout, max_lifetime }
    }

    /// Runs `BEGIN` on `connection` and registers the transaction.
    pub async fn begin(&self, resource_arn: &str, connection: Object) -> Result<Arc<Transaction>, ApiError> {
        connection.batch_execute("BEGIN").await.map_err(|error| ApiError::from_postgres(&error))?;
        let id = new_transaction_id();
        let now = Instant::now();
        let transaction = Arc::new(Transaction {
            id: id.clone(),
            resource_arn: resource_arn.to_owned(),
            started: now,
            last_used: Mutex::new(now),
            connection: tokio::sync::Mutex::new(Some(connection)),
        });
        self.registry()?.insert(id, Arc::clone(&transaction));
        Ok(transaction)
    }

    /// Finds the open transaction `id` on `resource_arn`. An expired one is
    /// rolled back and reported as not found, like an unknown id.
    pub fn find(&self, id: &str, resource_arn: &str) -> Option<Arc<Transaction>> {
        let mut open = self.registry().ok()?;
        let transaction = open.get(id).cloned()?;
        if self.expired(&transaction, Instant::now()) {
            open.remove(id);
            drop(open);
            tokio::spawn(async move { roll_back(&transaction, "expired").await });
            return None;
        }
        (transaction.resource_arn == resource_arn).then_some(transaction)
    }

    /// Removes the open transaction `id` so that it can be ended; `None`
    /// when it does not exist or has expired.
    pub fn remove(&self, id: &str, resource_arn: &str) -> Option<Arc<Transaction>> {
        let transaction = self.find(id, resource_arn)?;
        self.registry().ok()?.remove(id).filter(|removed| Arc::ptr_eq(removed, &transaction))
    }

    /// Rolls back every transaction that is idle or too old and not in the
    /// middle of a call. Returns how many ended.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let Ok(mut open) = self.registry() else {
            return 0;
        };
        let expired: Vec<String> = open
            .values()
            .filter(|transaction| self.expired(transaction, now))
            .map(|transaction| transaction.id.clone())
            .collect();
        for id in &expired {
            if let Some(transaction) = open.remove(id) {
                tokio::spawn(async move { roll_back(&transaction, "expired").await });
            }
        }
        expired.len()
    }

    /// How often [`Self::sweep`] should run: often enough that an expired
    /// transaction does not hold its connection much longer than its timeout.
    pub fn sweep_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }

    fn expired(&self, transaction: &Transaction, now: Instant) -> bool {
        // A transaction whose connection is locked is in the middle of a call.
        let busy = transaction.connection.try_lock().is_err();
        !busy
            && (transaction.idle_for(now) >= self.idle_timeout
                || now.saturating_duration_since(transaction.started) >= self.max_lifetime)
    }

    fn registry(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<Transaction>>>, ApiError> {
        self.open.lock().map_err(|_| ApiError::InternalServerError("Transaction registry is poisoned".to_owned()))
    }
}

/// Rolls back `transaction` and returns its connection to the pool. A
/// connection whose rollback fails is closed instead, so that no pooled
/// connection is left inside a transaction.
pub async fn roll_back(transaction: &Transaction, reason: &str) {
    let mut guard = transaction.connection.lock().await;
    let Some(connection) = guard.take() else {
        return;
    };
    match connection.batch_execute("ROLLBACK").await {
        Ok(()) => tracing::info!(transaction_id = %transaction.id, reason, "transaction rolled back"),
        Err(error) => {
            tracing::warn!(transaction_id = %transaction.id, reason, %error, "rollback failed; closing the connection");
            let _ = Object::take(connection);
        }
    }
}

/// Creates an identifier: 48 random bytes in base64, shaped like the service's
/// long opaque ids.
fn new_transaction_id() -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(48);
    for _ in 0..3 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
