-- Agent keys: an API key that acts as one agent only (its own status, offers, calls and
-- events). NULL for the tenant-wide keys integrators hold.
ALTER TABLE api_keys ADD COLUMN agent_id TEXT;
CREATE INDEX api_keys_agent ON api_keys (tenant_id, agent_id);
