//! The repository and the persistence writer, run against SQLite and a real PostgreSQL.

mod db;

use std::time::Duration;

use db::{Backend, TestDb};
use switchboard::ids::{CallId, TenantId};
use switchboard::store::writer::{WriteOp, Writer};
use switchboard::store::{now_ms, Backend as StoreBackend, CallEventRecord, NewCall, Store, StoreError};

async fn store(db: &TestDb) -> Store {
    let cfg = db.config();
    Store::connect(&cfg.database, &cfg.server.data_dir).await.expect("connect and migrate")
}

fn new_call(tenant: &TenantId) -> NewCall {
    NewCall {
        id: CallId::generate(),
        tenant_id: tenant.clone(),
        transport: "twilio".into(),
        external_id: Some("CA123".into()),
        direction: "inbound".into(),
        from_number: Some("+15550001111".into()),
        to_number: Some("+15550002222".into()),
        flow: Some("front_desk".into()),
        started_at: now_ms(),
    }
}

fn event(call: &NewCall, seq: i64, kind: &str) -> WriteOp {
    WriteOp::Event(CallEventRecord {
        tenant_id: call.tenant_id.clone(),
        call_id: call.id.clone(),
        seq,
        kind: kind.into(),
        at: now_ms(),
        data: format!("{{\"n\":{seq}}}"),
    })
}

async fn tenants_and_keys(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = store(&db).await;
    let (acme, created) = store.ensure_tenant("acme").await.unwrap();
    assert!(created);
    let (again, created) = store.ensure_tenant("acme").await.unwrap();
    assert!(!created);
    assert_eq!(again.id, acme.id);
    assert!(matches!(store.create_tenant("acme").await, Err(StoreError::Conflict(_))));

    let (key_id, key) = store.create_api_key(&acme.id, Some("ci")).await.unwrap();
    let owner = store.authenticate(&key).await.unwrap().unwrap();
    assert_eq!((owner.tenant.id, owner.agent), (acme.id.clone(), None));
    assert_eq!(store.authenticate("sb_not_a_key").await.unwrap(), None);
    assert_eq!(store.authenticate("").await.unwrap(), None);

    // An agent key names its agent; the agent's list shows it and revoking ends it.
    let ana = switchboard::center::AgentId("ana".into());
    let (first, first_key) = store.create_agent_key(&acme.id, &ana, Some("laptop")).await.unwrap();
    let (second, second_key) = store.create_agent_key(&acme.id, &ana, None).await.unwrap();
    let owner = store.authenticate(&first_key).await.unwrap().unwrap();
    assert_eq!((owner.tenant.id, owner.agent), (acme.id.clone(), Some(ana.clone())));
    assert!(first_key.starts_with(&first.prefix));
    let listed = store.list_agent_keys(&acme.id, &ana).await.unwrap();
    assert_eq!(listed.iter().map(|k| &k.id).collect::<Vec<_>>(), [&second.id, &first.id], "newest first, tenant keys not listed");
    assert_eq!(listed[1].label.as_deref(), Some("laptop"));
    store.revoke_agent_key(&acme.id, &ana, &first.id).await.unwrap();
    assert_eq!(store.authenticate(&first_key).await.unwrap(), None);
    assert!(store.authenticate(&second_key).await.unwrap().is_some());
    let bo = switchboard::center::AgentId("bo".into());
    assert!(matches!(store.revoke_agent_key(&acme.id, &bo, &second.id).await, Err(StoreError::NotFound(_))), "not bo's key");
    assert_eq!(store.revoke_agent_keys(&acme.id, &ana).await.unwrap(), 1);
    assert_eq!(store.authenticate(&second_key).await.unwrap(), None);
    assert!(store.list_agent_keys(&acme.id, &ana).await.unwrap().iter().all(|k| k.revoked_at.is_some()));

    store.revoke_api_key(&key_id).await.unwrap();
    assert_eq!(store.authenticate(&key).await.unwrap(), None);
}

async fn writer_persists_in_order_and_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cfg = db.config();
    let store = store(&db).await;
    let (tenant, _) = store.ensure_tenant("t").await.unwrap();
    let (other, _) = store.ensure_tenant("other").await.unwrap();
    let writer = Writer::start(store.clone(), &cfg.persistence, &cfg.server.data_dir).await.unwrap();
    let handle = writer.handle();
    let call = new_call(&tenant.id);
    handle.submit(WriteOp::CallStarted(call.clone())).unwrap();
    for seq in 1..=100 {
        handle.submit(event(&call, seq, "media.mark")).unwrap();
    }
    // A retried write of the same seq must not double the timeline.
    handle.submit(event(&call, 5, "media.mark")).unwrap();
    handle
        .submit(WriteOp::CallEnded { call_id: call.id.clone(), cause: "caller_hangup".into(), ended_at: call.started_at + 1500 })
        .unwrap();
    writer.close(Duration::from_secs(5)).await;

    let events = store.call_events(&tenant.id, &call.id).await.unwrap();
    assert_eq!(events.len(), 100);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let rec = store.get_call(&tenant.id, &call.id).await.unwrap();
    assert_eq!(rec.state, "ended");
    assert_eq!(rec.end_cause.as_deref(), Some("caller_hangup"));
    assert_eq!(rec.duration_ms, Some(1500));
    // Tenant isolation: the other tenant sees nothing.
    assert!(matches!(store.get_call(&other.id, &call.id).await, Err(StoreError::NotFound(_))));
    assert!(store.call_events(&other.id, &call.id).await.unwrap().is_empty());
    assert_eq!(store.list_calls(&tenant.id, 10).await.unwrap().len(), 1);
    assert!(store.list_calls(&other.id, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_tenants_and_keys() {
    tenants_and_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_tenants_and_keys() {
    tenants_and_keys(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_writer() {
    writer_persists_in_order_and_is_idempotent(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_writer() {
    writer_persists_in_order_and_is_idempotent(Backend::Postgres).await;
}

#[tokio::test]
async fn backends_are_what_the_url_says() {
    let s = TestDb::new(Backend::Sqlite).await;
    assert_eq!(store(&s).await.backend(), StoreBackend::Sqlite);
    let p = TestDb::new(Backend::Postgres).await;
    assert_eq!(store(&p).await.backend(), StoreBackend::Postgres);
}

/// The database goes away mid-run: writes wait, nothing is lost. If it is still gone at
/// shutdown, the writes are spilled to disk and replayed by the next start.
#[tokio::test]
async fn database_outage_loses_nothing() {
    let cluster = db::PgCluster::start();
    let mut db = TestDb::new(Backend::Postgres).await;
    // Point at the private cluster so this test can stop it without disturbing others.
    let url = cluster.url();
    db.url = Some(url.clone());
    let mut cfg = db.config();
    cfg.persistence.retry_backoff = Duration::from_millis(100);
    cfg.database.connect_timeout = Duration::from_millis(500);
    let store = store(&db).await;
    let (tenant, _) = store.ensure_tenant("t").await.unwrap();
    let call = new_call(&tenant.id);

    // Outage during the run, then recovery.
    let writer = Writer::start(store.clone(), &cfg.persistence, &cfg.server.data_dir).await.unwrap();
    let handle = writer.handle();
    handle.submit(WriteOp::CallStarted(call.clone())).unwrap();
    cluster.stop();
    assert!(store.ping(Duration::from_millis(500)).await.is_err());
    for seq in 1..=20 {
        handle.submit(event(&call, seq, "during_outage")).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(handle.stats().backlog.load(std::sync::atomic::Ordering::Relaxed) > 0);
    cluster.start_again();
    writer.close(Duration::from_secs(10)).await;
    assert_eq!(store.call_events(&tenant.id, &call.id).await.unwrap().len(), 20);

    // Outage that lasts past shutdown: spilled, then replayed.
    let writer = Writer::start(store.clone(), &cfg.persistence, &cfg.server.data_dir).await.unwrap();
    let handle = writer.handle();
    cluster.stop();
    for seq in 21..=30 {
        handle.submit(event(&call, seq, "spilled")).unwrap();
    }
    writer.close(Duration::from_millis(300)).await;
    let spill_dir = cfg.server.data_dir.join("spill");
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 1, "one spill file");
    cluster.start_again();
    let store = self::store(&db).await;
    let writer = Writer::start(store.clone(), &cfg.persistence, &cfg.server.data_dir).await.unwrap();
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0, "spill replayed and removed");
    writer.close(Duration::from_secs(1)).await;
    let events = store.call_events(&tenant.id, &call.id).await.unwrap();
    assert_eq!(events.len(), 30);
    assert_eq!(events.last().unwrap().kind, "spilled");
}
