//! The alert evaluator: one task per tenant, subscribed to the tenant's bus, feeding
//! [`Rules`] and applying their actions to the store and the bus. It is only a subscriber, so
//! it never slows a publisher; if it falls behind, the bus tells it how much it missed.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Action, Alert, AlertsConfig, Rules};
use crate::ids::TenantId;
use crate::monitor::{EventBus, LiveEvent};
use crate::store::{NewAlert, Store};

/// How often the evaluator looks for tenants created since it started.
const TENANT_SCAN: Duration = Duration::from_secs(2);

/// What the evaluator needs. Cheap to clone.
#[derive(Clone)]
pub struct AlertService {
    pub store: Store,
    pub events: EventBus,
    pub config: AlertsConfig,
}

impl AlertService {
    /// Publishes an alert change as `alert.raised` / `alert.resolved`.
    pub fn publish(&self, tenant: &TenantId, kind: &str, alert: &Alert) {
        let data = serde_json::to_value(alert).unwrap_or_else(|_| json!({ "id": alert.id }));
        self.events.publish(tenant, kind, alert.call_id.as_ref(), alert.department.as_deref(), data);
    }
}

/// Starts the evaluator (unless disabled); it stops when `stop` is cancelled.
pub async fn spawn_evaluator(service: AlertService, stop: CancellationToken) -> Option<JoinHandle<()>> {
    if !service.config.enabled {
        info!("alerts disabled");
        return None;
    }
    // Before serving: alerts raised after start must never be mistaken for stale ones.
    match service.store.resolve_stale_alerts().await {
        Ok(0) => {}
        Ok(n) => info!(n, "resolved alerts left active by the previous run"),
        Err(err) => warn!(%err, "cannot resolve stale alerts"),
    }
    Some(tokio::spawn(async move {
        let mut watched: HashSet<TenantId> = HashSet::new();
        let mut scan = tokio::time::interval(TENANT_SCAN);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = scan.tick() => {}
            }
            let tenants = match service.store.alert_tenants().await {
                Ok(t) => t,
                Err(err) => {
                    warn!(%err, "alerts: cannot list tenants");
                    continue;
                }
            };
            for tenant in tenants {
                if watched.insert(tenant.clone()) {
                    tokio::spawn(run_tenant(service.clone(), tenant, stop.clone()));
                }
            }
        }
    }))
}

async fn run_tenant(service: AlertService, tenant: TenantId, stop: CancellationToken) {
    let mut live = service.events.subscribe(&tenant, None).live;
    let mut rules = Rules::new(service.config.clone());
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    let mut tick = tokio::time::interval(service.config.tick.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    debug!(%tenant, "alert evaluator watching");
    loop {
        let actions = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => rules.tick(now()),
            event = live.recv() => match event {
                Ok(event) => {
                    prepare(&service, &tenant, &mut rules, &event).await;
                    rules.on_event(&event, now())
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(%tenant, missed = n, "alert evaluator fell behind the event bus");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        for action in actions {
            apply(&service, &tenant, action).await;
        }
    }
}

/// Fetches what a rule needs from the store before the event reaches it.
async fn prepare(service: &AlertService, tenant: &TenantId, rules: &mut Rules, event: &LiveEvent) {
    if event.kind != "queue.joined" {
        return;
    }
    let Some(dept) = &event.department else { return };
    if rules.knows_target(dept) {
        return;
    }
    match service.store.department_by_name(tenant, dept).await {
        Ok(Some(d)) if d.service_level_secs > 0 => rules.set_target(dept, Duration::from_secs(d.service_level_secs as u64)),
        Ok(_) => {}
        Err(err) => warn!(%err, department = %dept, "alerts: cannot read the department's target"),
    }
}

async fn apply(service: &AlertService, tenant: &TenantId, action: Action) {
    match action {
        Action::Raise { kind, severity, subject, call_id, department, message, data } => {
            let new = NewAlert { kind, severity, subject, call_id, department, message, data };
            match service.store.raise_alert(tenant, &new).await {
                Ok(Some(alert)) => {
                    info!(%tenant, kind = kind.as_str(), subject = alert.subject.id(), "alert raised");
                    service.publish(tenant, "alert.raised", &alert);
                }
                Ok(None) => debug!(kind = kind.as_str(), "alert already active"),
                Err(err) => warn!(%err, "cannot store alert"),
            }
        }
        Action::Resolve { kind, subject, reason } => {
            match service.store.resolve_active_alert(tenant, kind, &subject, "system", reason).await {
                Ok(Some(alert)) => {
                    info!(%tenant, kind = kind.as_str(), subject = subject.id(), reason, "alert resolved");
                    service.publish(tenant, "alert.resolved", &alert);
                }
                Ok(None) => {}
                Err(err) => warn!(%err, "cannot resolve alert"),
            }
        }
    }
}
