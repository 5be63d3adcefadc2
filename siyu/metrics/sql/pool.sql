-- SPEC §5.1 Customer pool 顾客池: customers with ≥ 1 active connection at an instant.
-- Active at t: created_at ≤ t and (ended_at is null or ended_at > t) (DATA_FORMAT.md).
SELECT
    count(DISTINCT customer_id) FILTER (
        WHERE created_at <= $start AND (ended_at IS NULL OR ended_at > $start)) AS "start",
    count(DISTINCT customer_id) FILTER (
        WHERE created_at <= $end AND (ended_at IS NULL OR ended_at > $end)) AS "end"
FROM v_connections
WHERE customer_id IS NOT NULL
