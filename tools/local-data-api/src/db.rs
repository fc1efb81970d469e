//! Connection pools, one per database that requests name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::ApiError;

/// The service's limit on a database name (`DbName`: at most 64 characters).
const MAX_DATABASE_NAME_CHARS: usize = 64;

/// Pools of PostgreSQL connections keyed by database name.
#[derive(Debug)]
pub struct Databases {
    config: tokio_postgres::Config,
    default_database: String,
    pool_size: usize,
    wait_timeout: Duration,
    pools: Mutex<HashMap<String, Pool>>,
}

impl Databases {
    /// Parses `database_url`; its database is the one used when a request
    /// names none. Each pool opens at most `pool_size` connections, and a
    /// request waits at most `wait_timeout` for one.
    pub fn new(database_url: &str, pool_size: usize, wait_timeout: Duration) -> Result<Self, tokio_postgres::Error> {
        let config: tokio_postgres::Config = database_url.parse()?;
        let default_database = config
            .get_dbname()
            .map(str::to_owned)
            .or_else(|| config.get_user().map(str::to_owned))
            .unwrap_or_else(|| "postgres".to_owned());
        Ok(Self { config, default_database, pool_size, wait_timeout, pools: Mutex::new(HashMap::new()) })
    }

    /// Takes a connection to `database` (the default one when `None`) from its pool.
    pub async fn connect(&self, database: Option<&str>) -> Result<Object, ApiError> {
        let database = database.filter(|name| !name.is_empty()).unwrap_or(&self.default_database);
        if database.chars().count() > MAX_DATABASE_NAME_CHARS {
            return Err(ApiError::BadRequest(format!(
                "Invalid database name: at most {MAX_DATABASE_NAME_CHARS} characters are allowed"
            )));
        }
        let pool = self.pool(database)?;
        pool.get().await.map_err(|error| match error {
            PoolError::Backend(error) if error.as_db_error().is_some() => ApiError::from_postgres(&error),
            PoolError::Timeout(_) => ApiError::StatementTimeout(format!(
                "No database connection became free within {} s; too many open transactions?",
                self.wait_timeout.as_secs()
            )),
            error => ApiError::DatabaseUnavailable(format!("Cannot connect to database {database}: {error}")),
        })
    }

    fn pool(&self, database: &str) -> Result<Pool, ApiError> {
        let mut pools =
            self.pools.lock().map_err(|_| ApiError::InternalServerError("Pool registry is poisoned".to_owned()))?;
        if let Some(pool) = pools.get(database) {
            return Ok(pool.clone());
        }
        let mut config = self.config.clone();
        config.dbname(database);
        // A statement sent without a transaction id may open a transaction
        // (BEGIN) and leave it open. Rolling back on reuse keeps it from
        // leaking into the next request; outside a transaction ROLLBACK only
        // warns.
        let recycling_method = RecyclingMethod::Custom("ROLLBACK".to_owned());
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method });
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .wait_timeout(Some(self.wait_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| ApiError::InternalServerError(format!("Cannot build a pool for {database}: {error}")))?;
        pools.insert(database.to_owned(), pool.clone());
        Ok(pool)
    }
}
