-- Live alerts raised by the rules over calls, queues and agents. Times are unix milliseconds.

CREATE TABLE alerts (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    -- dead_air, long_queue_wait, human_requested, repeated_barge_in, long_wrap_up
    kind          TEXT NOT NULL,
    -- info, warning, critical
    severity      TEXT NOT NULL,
    -- call, department, agent
    subject_kind  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    call_id       TEXT,
    department    TEXT,
    message       TEXT NOT NULL,
    data          TEXT NOT NULL DEFAULT '{}',
    raised_at     BIGINT NOT NULL,
    resolved_at   BIGINT,
    -- `system` for automatic resolution, else who resolved it through the API
    resolved_by   TEXT,
    resolution    TEXT
);
-- At most one active alert per subject and kind, whatever races between evaluators or nodes.
CREATE UNIQUE INDEX alerts_one_active ON alerts (tenant_id, subject_kind, subject_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX alerts_tenant_time ON alerts (tenant_id, raised_at);
