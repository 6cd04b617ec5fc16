-- The call-center control plane: department overflow actions, agent assignment, queue entry
-- routing data, and transfer links. Times are unix milliseconds.

ALTER TABLE departments ADD COLUMN overflow_action TEXT;

ALTER TABLE agents ADD COLUMN current_call_id TEXT;
-- One call is never assigned to two agents, whatever races between nodes or requests.
CREATE UNIQUE INDEX agents_one_per_call ON agents (current_call_id) WHERE current_call_id IS NOT NULL;

ALTER TABLE queue_entries ADD COLUMN skills TEXT NOT NULL DEFAULT '[]';
ALTER TABLE queue_entries ADD COLUMN language TEXT;
ALTER TABLE queue_entries ADD COLUMN transfer_id TEXT;
ALTER TABLE queue_entries ADD COLUMN wait_ms BIGINT;
CREATE INDEX queue_entries_call ON queue_entries (call_id);
CREATE INDEX queue_entries_dept_time ON queue_entries (tenant_id, department_id, enqueued_at);

ALTER TABLE transfers ADD COLUMN department_id TEXT;
ALTER TABLE transfers ADD COLUMN agent_id TEXT;
