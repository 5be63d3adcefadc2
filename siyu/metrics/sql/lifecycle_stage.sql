-- SPEC §6 Lifecycle 生命周期, per customer as of `to` (thresholds T1, T2; default 30 and 90 days).
-- No active connection → churned. r = brand-local days from the last paid order (or, without
-- one, from the first connection) to `to`. No orders: r ≤ T1 introduction, ≤ T2 dormant, else
-- churned. With orders: r > T2 churned, r > T1 dormant, ≥ 3 paid orders maturity, else growth.
-- Customers first seen after `to` (every connection and order later) are not yet customers.
-- uses: customer_orders
WITH first_order AS (
    SELECT customer_id, first_order_at AS first_at FROM customer_orders
    WHERE first_order_at IS NOT NULL
), paid AS (
    SELECT customer_id, paid_orders AS n, last_paid_at AS last_at FROM customer_orders
    WHERE paid_orders > 0
), active AS (
    SELECT DISTINCT customer_id FROM v_connections
    WHERE customer_id IS NOT NULL AND created_at <= $end AND (ended_at IS NULL OR ended_at > $end)
), known AS (
    SELECT c.customer_id, f.first_at AS first_connect, p.n, p.last_at,
           a.customer_id IS NOT NULL AS is_active
    FROM v_customers c
    LEFT JOIN v_first_connection f ON f.customer_id = c.customer_id
    LEFT JOIN first_order o ON o.customer_id = c.customer_id
    LEFT JOIN paid p ON p.customer_id = c.customer_id
    LEFT JOIN active a ON a.customer_id = c.customer_id
    WHERE coalesce(least(f.first_at, o.first_at), f.first_at, o.first_at) IS NULL
       OR coalesce(least(f.first_at, o.first_at), f.first_at, o.first_at) < $end
), aged AS (
    SELECT *, datediff('day', local_day(coalesce(last_at, first_connect)), $to_day) AS r FROM known
)
SELECT customer_id,
       CASE
           WHEN NOT is_active THEN 'churned'
           WHEN n IS NULL THEN
               CASE WHEN r <= $t1 THEN 'introduction' WHEN r <= $t2 THEN 'dormant' ELSE 'churned' END
           WHEN r > $t2 THEN 'churned'
           WHEN r > $t1 THEN 'dormant'
           WHEN n >= 3 THEN 'maturity'
           ELSE 'growth'
       END AS stage,
       r AS days_since
FROM aged
