//! Per-call figures (durations, costs) and per-department analytics, computed from the stored
//! timeline, queue entries and transfers.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::model::{EntryOutcome, QueueEntry, Transfer};
use crate::config::CenterConfig;
use crate::store::{CallEventRecord, CallRecord};

/// Where a call's time went, in milliseconds, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallFigures {
    pub total_ms: i64,
    /// With the bot (everything not queued and not with an agent).
    pub bot_ms: i64,
    pub queue_wait_ms: i64,
    pub agent_ms: i64,
    pub transfer_count: usize,
    /// Seconds of caller audio streamed to recognition (the bot part of the call).
    pub stt_seconds: f64,
    /// Seconds of synthesized speech played to the caller.
    pub tts_seconds: f64,
    pub ai_cost: f64,
    pub human_cost: f64,
}

/// `now` stands in for the end of a call still in progress.
pub fn call_figures(
    call: &CallRecord,
    events: &[CallEventRecord],
    entries: &[QueueEntry],
    transfers: &[Transfer],
    rates: &CenterConfig,
    now: i64,
) -> CallFigures {
    let end = call.ended_at.unwrap_or(now);
    let total_ms = (end - call.started_at).max(0);
    let queue_wait_ms: i64 = entries.iter().map(|e| e.wait_ms.unwrap_or_else(|| (now - e.enqueued_at).max(0))).sum();
    let agent_ms: i64 = entries
        .iter()
        .filter(|e| e.outcome == Some(EntryOutcome::Answered))
        .filter_map(|e| e.left_at)
        .map(|answered| (end - answered).max(0))
        .sum();
    let bot_ms = (total_ms - queue_wait_ms - agent_ms).max(0);
    let tts_ms: i64 = events
        .iter()
        .filter(|e| e.kind == "bot_utterance")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.data).ok())
        .filter_map(|v| v["played_ms"].as_i64())
        .sum();
    let stt_seconds = bot_ms as f64 / 1000.0;
    let tts_seconds = tts_ms as f64 / 1000.0;
    CallFigures {
        total_ms,
        bot_ms,
        queue_wait_ms,
        agent_ms,
        transfer_count: transfers.len(),
        stt_seconds,
        tts_seconds,
        ai_cost: round(stt_seconds * rates.stt_cost_per_second + tts_seconds * rates.tts_cost_per_second),
        human_cost: round(agent_ms as f64 / 60_000.0 * rates.agent_cost_per_minute),
    }
}

/// One department over one period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DepartmentReport {
    pub department_id: String,
    pub from: i64,
    pub to: i64,
    /// Calls that joined the queue in the period.
    pub calls: usize,
    pub answered: usize,
    pub abandoned: usize,
    pub overflowed: usize,
    pub avg_wait_ms: Option<f64>,
    pub p90_wait_ms: Option<i64>,
    /// Answered within the department's target, as a share of calls that left the queue
    /// (answered, abandoned or overflowed); `None` when none did.
    pub service_level_pct: Option<f64>,
    /// Average time answered calls spent with an agent.
    pub avg_handle_ms: Option<f64>,
    pub transfers_by_reason: BTreeMap<String, usize>,
    pub ai_cost: f64,
    pub human_cost: f64,
}

/// Wait and outcome figures of a set of entries; the caller fills in the rest.
pub fn queue_report(entries: &[QueueEntry], service_level_secs: i64) -> (usize, usize, usize, usize, Option<f64>, Option<i64>, Option<f64>) {
    let calls = entries.len();
    let count = |o: EntryOutcome| entries.iter().filter(|e| e.outcome == Some(o)).count();
    let (answered, abandoned, overflowed) = (count(EntryOutcome::Answered), count(EntryOutcome::Abandoned), count(EntryOutcome::Overflowed));
    let mut waits: Vec<i64> = entries.iter().filter_map(|e| e.wait_ms).collect();
    waits.sort_unstable();
    let avg = (!waits.is_empty()).then(|| waits.iter().sum::<i64>() as f64 / waits.len() as f64);
    let p90 = percentile(&waits, 0.9);
    let decided = answered + abandoned + overflowed;
    let within = entries
        .iter()
        .filter(|e| e.outcome == Some(EntryOutcome::Answered) && e.wait_ms.is_some_and(|w| w <= service_level_secs * 1000))
        .count();
    let sl = (decided > 0).then(|| round(within as f64 * 100.0 / decided as f64));
    (calls, answered, abandoned, overflowed, avg, p90, sl)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_p90() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&[5], 0.9), Some(5));
        assert_eq!(percentile(&[], 0.9), None);
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&v, 0.9), Some(18));
    }
}
