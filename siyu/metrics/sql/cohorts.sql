-- SPEC §5.3–5.5 cohort tables: cohort = brand-local week or month of the first connection;
-- offset k is measured from each customer's own first connection (k weeks or months later).
-- retention_k: share with an active connection at first + k (k ≥ 1; k = 0 is 1 by definition);
-- conversion_k: share with ≥ 1 paid order in [first, first + k + 1);
-- repurchase_k: among those with a paid order in that window, the share with ≥ 2 (§5.5).
-- A customer counts in a cell only once its checkpoint has passed ($as_of); cells nobody has
-- reached yet are null.
WITH first AS (
    SELECT customer_id, first_at,
           date_trunc($unit, timezone($tz, first_at))::DATE AS cohort
    FROM v_first_connection
    WHERE first_at >= $start AND first_at < $end
), offsets AS (SELECT range AS k FROM range(0, $periods)),
checks AS (
    SELECT f.customer_id, f.cohort, f.first_at, o.k,
           timezone($tz, timezone($tz, f.first_at)
               + CASE WHEN $unit = 'week' THEN to_weeks(o.k::INTEGER) ELSE to_months(o.k::INTEGER) END)
               AS at_k,
           timezone($tz, timezone($tz, f.first_at)
               + CASE WHEN $unit = 'week' THEN to_weeks(o.k::INTEGER + 1)
                      ELSE to_months(o.k::INTEGER + 1) END) AS at_next
    FROM first f CROSS JOIN offsets o
), measured AS (
    SELECT c.cohort, c.k, c.customer_id,
           c.at_k <= $as_of AS seen_k,
           c.at_next <= $as_of AS seen_next,
           EXISTS (SELECT 1 FROM v_connections v
                   WHERE v.customer_id = c.customer_id AND v.created_at <= c.at_k
                     AND (v.ended_at IS NULL OR v.ended_at > c.at_k)) AS active,
           (SELECT count(*) FROM v_orders o
            WHERE o.customer_id = c.customer_id AND o.paid
              AND o.created_at >= c.first_at AND o.created_at < c.at_next) AS paid_orders
    FROM checks c
)
SELECT cohort, k,
       count(DISTINCT customer_id) AS cohort_size,
       count(*) FILTER (WHERE seen_k) AS retention_base,
       CASE WHEN count(*) FILTER (WHERE seen_k) > 0
            THEN count(*) FILTER (WHERE seen_k AND active) / count(*) FILTER (WHERE seen_k) END
           AS retention,
       CASE WHEN count(*) FILTER (WHERE seen_next) > 0
            THEN count(*) FILTER (WHERE seen_next AND paid_orders >= 1)
                 / count(*) FILTER (WHERE seen_next) END AS conversion,
       CASE WHEN count(*) FILTER (WHERE seen_next AND paid_orders >= 1) > 0
            THEN count(*) FILTER (WHERE seen_next AND paid_orders >= 2)
                 / count(*) FILTER (WHERE seen_next AND paid_orders >= 1) END AS repurchase
FROM measured
GROUP BY cohort, k
ORDER BY cohort, k
