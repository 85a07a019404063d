-- Activity pages and call logs: per API client and per partner over time, counted from index-only
-- scans (the columns the counts and percentiles read are included), so a 30-day view of a busy
-- estate never reads the table's heap (BENCHMARKS.md, "Activity queries").
CREATE INDEX proxy_calls_client_idx ON proxy_calls (client_id, occurred_at DESC)
    INCLUDE (status, latency_ms, error_code);
CREATE INDEX proxy_calls_partner_activity_idx ON proxy_calls (partner_tenant_id, occurred_at DESC)
    INCLUDE (status, latency_ms, error_code);
CREATE INDEX proxy_calls_time_activity_idx ON proxy_calls (occurred_at DESC)
    INCLUDE (status, latency_ms, error_code);
DROP INDEX proxy_calls_partner_idx;
DROP INDEX proxy_calls_time_idx;
