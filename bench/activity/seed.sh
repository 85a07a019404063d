#!/bin/sh
# Seeds 10 M proxy_calls into a scratch database (samgate_activity_bench) on 127.0.0.1:5432 (user postgres,
# trust auth) for the activity-query benchmark; then run: psql -h 127.0.0.1 -U postgres -d samgate_activity_bench -f bench/activity/queries.sql
set -e
export PGHOST=127.0.0.1 PGUSER=postgres
dropdb --if-exists samgate_activity_bench
createdb samgate_activity_bench
for f in "$(dirname "$0")"/../../migrations/*.sql; do psql -q -v ON_ERROR_STOP=1 -d samgate_activity_bench -f "$f"; done
psql -v ON_ERROR_STOP=1 -d samgate_activity_bench <<'SQL'
\timing on
-- 10 M calls over 30 days: 200 partners (one busy: 10 %), 50 clients, statuses ~94 % 2xx, 3 % 4xx, 2 % 429, 1 % 5xx.
INSERT INTO proxy_calls (occurred_at, client_id, partner_tenant_id, upstream, method, route, status, latency_ms, error_code)
SELECT now() - (i::double precision / 10000000) * interval '30 days',
       ('00000000-0000-0000-0000-' || lpad(((i * 7) % 50)::text, 12, '0'))::uuid,
       ('00000000-0000-0000-0001-' || lpad((CASE WHEN i % 10 = 0 THEN 0 ELSE (i * 13) % 200 END)::text, 12, '0'))::uuid,
       'partner-center', 'GET', '/v1/customers',
       CASE WHEN i % 100 < 94 THEN 200 WHEN i % 100 < 97 THEN 404 WHEN i % 100 < 99 THEN 429 ELSE 502 END,
       20 + (i * 31) % 900,
       CASE WHEN i % 100 = 99 THEN 'upstream_unavailable' END
FROM generate_series(1, 10000000) AS i;
VACUUM ANALYZE proxy_calls;
SQL
