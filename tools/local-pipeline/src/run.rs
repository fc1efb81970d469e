//! `local-pipeline run`: the triggers of the template, run on this machine.
//!
//! One task delivers object-created notifications from the stand-in queue
//! ([`crate::events`]); one or more tasks per SQS event source mapping poll
//! their queue ([`crate::poller`]). Ctrl-C or SIGTERM stops polling, gives
//! running invocations 10 s to finish, and returns.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Error;
use crate::events::{self, EventShape};
use crate::invoke::Invoker;
use crate::journal::Journal;
use crate::poller::{self, Poller};
use crate::setup::EventQueues;
use crate::template::{LocalNaming, Wiring};

/// Time that running invocations get to finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Base URL of the Lambda Invoke API, `http://127.0.0.1:9000` under `cargo lambda watch`.
    pub invoke_url: String,
    /// Maximum wait for one invocation.
    pub invoke_timeout: Duration,
    /// Shape of the events the S3 functions receive.
    pub event_shape: EventShape,
    /// Delay in seconds before a failed notification is delivered again.
    pub retry_delay_secs: u32,
    /// Cap on concurrent pollers per event source mapping.
    pub max_concurrency: u32,
    /// When set, return once every polled queue is empty, or fail after this long.
    pub drain_timeout: Option<Duration>,
    /// How long the queues must stay empty to count as drained.
    pub quiet_period: Duration,
    /// File that receives one JSON line per invocation.
    pub journal: Option<std::path::PathBuf>,
}

/// Counts of what `run` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Invocations that succeeded.
    pub invocations_ok: u64,
    /// Invocations that failed.
    pub invocations_failed: u64,
    /// SQS messages deleted after their function succeeded.
    pub messages_deleted: u64,
    /// SQS messages left on their queue because their function failed.
    pub messages_failed: u64,
}

/// State shared by the delivery tasks.
#[derive(Debug)]
pub struct Context {
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Function invoker.
    pub invoker: Invoker,
    /// Region and account of the events.
    pub naming: LocalNaming,
    /// URL of the stand-in queue.
    pub events_queue_url: String,
    /// Shape of the events the S3 functions receive.
    pub event_shape: EventShape,
    /// Delay in seconds before a failed notification is delivered again.
    pub retry_delay_secs: u32,
    /// Invocation journal.
    pub journal: Option<Journal>,
    /// Counters.
    pub stats: StatsCell,
}

/// Counters shared between tasks.
#[derive(Debug, Default)]
pub struct StatsCell(Mutex<Stats>);

impl StatsCell {
    /// Applies `update` to the counters.
    pub fn add(&self, update: impl FnOnce(&mut Stats)) {
        if let Ok(mut stats) = self.0.lock() {
            update(&mut stats);
        }
    }

    /// Returns a copy of the counters.
    pub fn snapshot(&self) -> Stats {
        self.0.lock().map(|stats| stats.clone()).unwrap_or_default()
    }
}

/// Runs the triggers until Ctrl-C or SIGTERM, or until drained when
/// `options.drain_timeout` is set.
pub async fn run(
    wiring: &Wiring,
    naming: &LocalNaming,
    sqs: aws_sdk_sqs::Client,
    options: RunOptions,
) -> Result<Stats, Error> {
    let journal = options
        .journal
        .as_ref()
        .map(|path| {
            Journal::open(path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })
        })
        .transpose()?;
    let events_queue = EventQueues::new(naming);
    let context = Arc::new(Context {
        sqs: sqs.clone(),
        invoker: Invoker::new(&options.invoke_url, options.invoke_timeout),
        naming: naming.clone(),
        events_queue_url: events_queue.url.clone(),
        event_shape: options.event_shape,
        retry_delay_secs: options.retry_delay_secs,
        journal,
        stats: StatsCell::default(),
    });
    let pollers = pollers(wiring)?;
    let targets = events::targets(wiring);
    let (stop, shutdown) = watch::channel(false);

    let mut tasks = JoinSet::new();
    tasks.spawn(events::deliver_loop(
        context.clone(),
        targets.clone(),
        shutdown.clone(),
    ));
    for poller in &pollers {
        let concurrency = poller
            .source
            .maximum_concurrency
            .unwrap_or(options.max_concurrency)
            .clamp(1, options.max_concurrency.max(1));
        for _ in 0..concurrency {
            tasks.spawn(poller::poll_loop(
                context.clone(),
                poller.clone(),
                shutdown.clone(),
            ));
        }
    }
    tracing::info!(
        rules = targets.len(),
        sqs_sources = pollers.len(),
        events_queue = %events_queue.url,
        invoke_url = %options.invoke_url,
        "local pipeline running; Ctrl-C stops it"
    );

    let mut watched: Vec<String> = vec![events_queue.url.clone()];
    watched.extend(pollers.iter().map(|p| p.queue_url.clone()));
    let result = tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown requested; waiting for running invocations");
            Ok(())
        }
        result = wait_drained(&sqs, &watched, &options), if options.drain_timeout.is_some() => result,
    };

    // Running invocations get a grace period; one stuck in `cargo lambda
    // watch` (a function that does not compile never responds) would
    // otherwise hold the exit for the whole invoke timeout.
    let _ = stop.send(true);
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "invocations still running were abandoned; their messages return after the visibility timeout"
        );
        tasks.shutdown().await;
    }
    let stats = context.stats.snapshot();
    tracing::info!(
        invocations_ok = stats.invocations_ok,
        invocations_failed = stats.invocations_failed,
        messages_deleted = stats.messages_deleted,
        messages_failed = stats.messages_failed,
        "local pipeline stopped"
    );
    result.map(|()| stats)
}

/// Returns one poller per SQS event source mapping of the template.
pub fn pollers(wiring: &Wiring) -> Result<Vec<Poller>, Error> {
    let mut pollers = Vec::new();
    for function in &wiring.functions {
        for source in &function.sqs_sources {
            let queue = wiring.queue_by_arn(&source.queue_arn).ok_or_else(|| {
                Error::Wiring(format!(
                    "{} polls {}, which is not a queue of the template",
                    function.logical_id, source.queue_arn
                ))
            })?;
            pollers.push(Poller {
                function: function.binary.clone(),
                source: source.clone(),
                queue_url: queue.url.clone(),
            });
        }
    }
    Ok(pollers)
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Returns once every queue in `queue_urls` has held no visible, in-flight
/// or delayed message for the quiet period, or fails at the drain timeout.
async fn wait_drained(
    sqs: &aws_sdk_sqs::Client,
    queue_urls: &[String],
    options: &RunOptions,
) -> Result<(), Error> {
    let timeout = options.drain_timeout.unwrap_or(Duration::MAX);
    let started = Instant::now();
    let mut empty_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let remaining = remaining_messages(sqs, queue_urls).await?;
        if remaining.iter().all(|(_, count)| *count == 0) {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= options.quiet_period {
                tracing::info!(secs = started.elapsed().as_secs(), "queues drained");
                return Ok(());
            }
        } else {
            empty_since = None;
        }
        if started.elapsed() >= timeout {
            let remaining = remaining
                .iter()
                .map(|(url, count)| format!("{url}: {count}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::NotDrained {
                timeout_secs: timeout.as_secs(),
                remaining,
            });
        }
    }
}

/// Returns, per queue, its visible plus in-flight plus delayed messages.
pub async fn remaining_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_urls: &[String],
) -> Result<Vec<(String, u64)>, Error> {
    let mut counts = Vec::new();
    for url in queue_urls {
        let output = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|error| Error::aws("GetQueueAttributes", url, error))?;
        let total = output
            .attributes
            .unwrap_or_default()
            .values()
            .filter_map(|value| value.parse::<u64>().ok())
            .sum();
        counts.push((url.clone(), total));
    }
    Ok(counts)
}
