//! The socket side of one call: connect, handshake, then feed the [`Caller`] server messages
//! and clock ticks until it hangs up. Bounded in time: the whole call ends by `hard_deadline`
//! whatever the server does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::caller::{Audio, Caller, Script};
use crate::stats::CallStats;
use crate::wire::{self, Sids};

pub struct CallPlan {
    pub url: String,
    pub sids: Sids,
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
    pub audio: Arc<Audio>,
    pub script: Script,
    pub connect_at: Instant,
    /// Past this the call is abandoned, answered or not.
    pub hard_deadline: Instant,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server has to close after our `stop`.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

pub async fn run_call(plan: CallPlan) -> CallStats {
    sleep_until(plan.connect_at).await;
    let began = Instant::now();
    let ws = match timeout(CONNECT_TIMEOUT, connect_async(plan.url.as_str())).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return not_connected(format!("connect failed: {}", short(&e.to_string()))),
        Err(_) => return not_connected("connect timed out".into()),
    };
    let handshake_us = began.elapsed().as_micros() as u32;
    let (mut sink, mut stream) = ws.split();
    let hello = [wire::connected(), wire::start(&plan.sids, 1, &plan.params)];
    for m in hello {
        if sink.feed(Message::text(m)).await.is_err() {
            return not_connected("socket closed during the handshake".into());
        }
    }
    if sink.flush().await.is_err() {
        return not_connected("socket closed during the handshake".into());
    }
    let t0 = Instant::now();
    let end_at = Instant::from_std(plan.script.end_at);
    let mut caller = Caller::new(plan.sids, plan.audio, plan.script, t0.into_std());
    caller.stats.connected = true;
    caller.stats.handshake_us = Some(handshake_us);
    let mut closed_by_server = false;
    loop {
        let wake = Instant::from_std(caller.next_wake());
        tokio::select! {
            msg = stream.next() => {
                let now = std::time::Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => caller.on_text(now, t.as_str()),
                    Some(Ok(Message::Binary(_))) => caller.on_binary(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        closed_by_server = true;
                        let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        caller.stats.fail(format!("server closed the call: {}", short(&why)));
                        break;
                    }
                    Some(Err(e)) => {
                        closed_by_server = true;
                        caller.stats.fail(format!("socket error: {}", short(&e.to_string())));
                        break;
                    }
                    None => {
                        closed_by_server = true;
                        caller.stats.fail("socket closed without a close frame");
                        break;
                    }
                }
            }
            () = sleep_until(wake) => caller.on_tick(std::time::Instant::now()),
            () = sleep_until(plan.hard_deadline) => {
                caller.stats.fail("call overran its deadline");
                break;
            }
        }
        let mut wrote = false;
        for m in caller.drain_outbox() {
            wrote = true;
            if sink.feed(Message::text(m)).await.is_err() {
                break;
            }
        }
        if wrote
            && timeout_at(plan.hard_deadline, sink.flush())
                .await
                .map_or(true, |r| r.is_err())
        {
            if Instant::now() < end_at {
                caller.stats.fail("write failed before hang-up");
            }
            break;
        }
        if caller.is_done() {
            break;
        }
    }
    if !closed_by_server {
        // `stop` went out with the last batch; close and let the server answer in kind.
        let _ = timeout(CLOSE_WAIT, sink.close()).await;
        let _ = timeout(CLOSE_WAIT, async { while stream.next().await.is_some() {} }).await;
    }
    caller.stats
}

fn not_connected(reason: String) -> CallStats {
    let mut s = CallStats::default();
    s.fail(reason);
    s
}

/// Error texts become failure-reason keys: keep them short and free of per-call detail.
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}
