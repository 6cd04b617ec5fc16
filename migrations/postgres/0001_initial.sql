-- switchboard initial schema. Every table carries tenant_id; times are unix milliseconds.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    label       TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE departments (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    name                TEXT NOT NULL,
    overflow_target     TEXT,
    business_hours      TEXT,
    service_level_secs  BIGINT NOT NULL DEFAULT 20,
    max_queue           BIGINT NOT NULL DEFAULT 50,
    max_wait_secs       BIGINT NOT NULL DEFAULT 600,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    email         TEXT,
    status        TEXT NOT NULL DEFAULT 'offline',
    status_since  BIGINT NOT NULL,
    skills        TEXT NOT NULL DEFAULT '[]',
    languages     TEXT NOT NULL DEFAULT '[]',
    reach         TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX agents_tenant_status ON agents (tenant_id, status);

CREATE TABLE agent_departments (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    department_id  TEXT NOT NULL REFERENCES departments(id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, department_id)
);

CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    transport      TEXT NOT NULL,
    external_id    TEXT,
    direction      TEXT NOT NULL,
    from_number    TEXT,
    to_number      TEXT,
    flow           TEXT,
    department_id  TEXT,
    agent_id       TEXT,
    state          TEXT NOT NULL,
    end_cause      TEXT,
    started_at     BIGINT NOT NULL,
    answered_at    BIGINT,
    ended_at       BIGINT,
    duration_ms    BIGINT
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at);
CREATE INDEX calls_external ON calls (external_id);

CREATE TABLE call_events (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    data       TEXT NOT NULL,
    UNIQUE (call_id, seq)
);
CREATE INDEX call_events_tenant_at ON call_events (tenant_id, at);

CREATE TABLE transfers (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    call_id      TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target       TEXT NOT NULL,
    mode         TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX transfers_call ON transfers (call_id);

CREATE TABLE queue_entries (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    department_id     TEXT NOT NULL,
    call_id           TEXT NOT NULL,
    priority          BIGINT NOT NULL DEFAULT 0,
    state             TEXT NOT NULL,
    offered_agent_id  TEXT,
    enqueued_at       BIGINT NOT NULL,
    left_at           BIGINT,
    outcome           TEXT
);
CREATE INDEX queue_entries_waiting ON queue_entries (tenant_id, department_id, state, priority, enqueued_at);
