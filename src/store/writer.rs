//! The persistence writer: every call record and call event goes through one bounded queue to
//! one task that writes them in batches. Call actors only `try_send`, so a slow or absent
//! database never stalls audio. While the database is down, writes wait in memory (bounded by
//! `max_backlog`) and are retried; whatever is still unwritten at shutdown is spilled to a
//! JSON-lines file under the data directory and replayed at the next start. Every insert is
//! idempotent, so a retried or replayed batch is never doubled.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::calls::{end_call, insert_call, insert_event};
use super::{now_ms, CallEventRecord, NewCall, Store, StoreError};
use crate::config::PersistenceConfig;
use crate::ids::CallId;

/// One write, applied in queue order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    CallStarted(NewCall),
    Event(CallEventRecord),
    CallEnded { call_id: CallId, cause: String, ended_at: i64 },
}

/// The queue was full: the write was not accepted. Callers count it; it is also logged here.
#[derive(Debug, thiserror::Error)]
#[error("persistence queue is full; write dropped")]
pub struct QueueFull;

#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub backlog: AtomicU64,
    pub failures: AtomicU64,
    pub healthy: AtomicBool,
}

/// Cloneable handle used by call actors and the control plane.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteOp>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Queues a write without waiting.
    pub fn submit(&self, op: WriteOp) -> Result<(), QueueFull> {
        match self.tx.try_send(op) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchboard_persistence_dropped_total").increment(1);
                tracing::error!("persistence queue full: a write was dropped");
                Err(QueueFull)
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// Owns the writer task; `close` flushes and stops it.
pub struct Writer {
    handle: WriterHandle,
    close_tx: Option<oneshot::Sender<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Replays spill files left by an earlier run, then starts the writer task.
    pub async fn start(store: Store, config: &PersistenceConfig, data_dir: &Path) -> Result<Self, StoreError> {
        let spill_dir = data_dir.join("spill");
        replay_spills(&store, &spill_dir).await?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (close_tx, close_rx) = oneshot::channel();
        let stats = Arc::new(WriterStats { healthy: AtomicBool::new(true), ..Default::default() });
        let task = WriterTask {
            store,
            rx,
            backlog: VecDeque::new(),
            stats: stats.clone(),
            batch_size: config.batch_size.max(1),
            max_backlog: config.max_backlog.max(config.batch_size),
            retry_backoff: config.retry_backoff,
            spill_dir,
        };
        let task = tokio::spawn(task.run(close_rx));
        Ok(Self { handle: WriterHandle { tx, stats }, close_tx: Some(close_tx), task })
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Stops accepting writes, flushes what is queued for up to `deadline`, and spills the rest.
    pub async fn close(mut self, deadline: Duration) {
        if let Some(tx) = self.close_tx.take() {
            let _ = tx.send(deadline);
        }
        if let Err(err) = self.task.await {
            tracing::error!(%err, "persistence writer task failed");
        }
    }
}

struct WriterTask {
    store: Store,
    rx: mpsc::Receiver<WriteOp>,
    backlog: VecDeque<WriteOp>,
    stats: Arc<WriterStats>,
    batch_size: usize,
    max_backlog: usize,
    retry_backoff: Duration,
    spill_dir: PathBuf,
}

impl WriterTask {
    async fn run(mut self, mut close_rx: oneshot::Receiver<Duration>) {
        let deadline = loop {
            self.drain_channel();
            if self.backlog.is_empty() {
                tokio::select! {
                    op = self.rx.recv() => match op {
                        Some(op) => self.backlog.push_back(op),
                        None => break Duration::ZERO,
                    },
                    deadline = &mut close_rx => break deadline.unwrap_or(Duration::ZERO),
                }
                continue;
            }
            if self.write_batch().await.is_err() {
                tokio::select! {
                    () = tokio::time::sleep(self.retry_backoff) => {}
                    deadline = &mut close_rx => break deadline.unwrap_or(Duration::ZERO),
                }
            }
        };
        self.finish(deadline).await;
    }

    /// Moves queued writes into the backlog so the bounded channel keeps room for callers.
    fn drain_channel(&mut self) {
        while self.backlog.len() < self.max_backlog {
            match self.rx.try_recv() {
                Ok(op) => self.backlog.push_back(op),
                Err(_) => break,
            }
        }
        self.stats.backlog.store(self.backlog.len() as u64, Ordering::Relaxed);
        metrics::gauge!("switchboard_persistence_backlog").set(self.backlog.len() as f64);
    }

    async fn write_batch(&mut self) -> Result<(), StoreError> {
        let n = self.batch_size.min(self.backlog.len());
        let batch = &self.backlog.make_contiguous()[..n];
        match apply_batch(&self.store, batch).await {
            Ok(()) => {
                self.backlog.drain(..n);
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
                metrics::counter!("switchboard_persistence_written_total").increment(n as u64);
                if !self.stats.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(backlog = self.backlog.len(), "database writes resumed");
                }
                Ok(())
            }
            Err(err) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchboard_persistence_failures_total").increment(1);
                if self.stats.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%err, backlog = self.backlog.len(), "database writes failing; keeping events and retrying");
                }
                Err(err)
            }
        }
    }

    async fn finish(mut self, deadline: Duration) {
        self.rx.close();
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            self.drain_channel();
            if self.rx.is_empty() && self.backlog.is_empty() {
                break;
            }
            if self.write_batch().await.is_err() {
                if tokio::time::Instant::now() + self.retry_backoff >= give_up {
                    break;
                }
                tokio::time::sleep(self.retry_backoff).await;
            }
        }
        while let Ok(op) = self.rx.try_recv() {
            self.backlog.push_back(op);
        }
        if !self.backlog.is_empty() {
            match spill(&self.spill_dir, &self.backlog) {
                Ok(path) => tracing::warn!(
                    count = self.backlog.len(),
                    path = %path.display(),
                    "database unavailable at shutdown; unwritten events spilled and will be replayed at next start"
                ),
                Err(err) => tracing::error!(%err, count = self.backlog.len(), "could not spill unwritten events"),
            }
        }
        tracing::info!(written = self.stats.written.load(Ordering::Relaxed), "persistence writer stopped");
    }
}

async fn apply_batch(store: &Store, batch: &[WriteOp]) -> Result<(), StoreError> {
    let mut tx = store.pool.begin().await?;
    for op in batch {
        match op {
            WriteOp::CallStarted(call) => insert_call(&mut *tx, call).await?,
            WriteOp::Event(ev) => insert_event(&mut *tx, ev).await?,
            WriteOp::CallEnded { call_id, cause, ended_at } => {
                end_call(&mut *tx, call_id, cause, *ended_at).await?
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

fn spill(dir: &Path, ops: &VecDeque<WriteOp>) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("writes-{}-{}.jsonl", now_ms(), std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(path)
}

async fn replay_spills(store: &Store, dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for path in files {
        let file = std::fs::File::open(&path)
            .map_err(|source| StoreError::DataDir { path: path.display().to_string(), source })?;
        let mut ops = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| StoreError::DataDir { path: path.display().to_string(), source })?;
            match serde_json::from_str::<WriteOp>(&line) {
                Ok(op) => ops.push(op),
                Err(err) => tracing::error!(path = %path.display(), line = n + 1, %err, "skipping unreadable spilled write"),
            }
        }
        for chunk in ops.chunks(512) {
            apply_batch(store, chunk).await?;
        }
        tracing::info!(path = %path.display(), count = ops.len(), "replayed spilled writes");
        std::fs::remove_file(&path)
            .map_err(|source| StoreError::DataDir { path: path.display().to_string(), source })?;
    }
    Ok(())
}
