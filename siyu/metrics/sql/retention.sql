-- SPEC §5.3 Retention 留存率 D-N: cohort = customers whose first connection falls in the period;
-- retained at D-N when they have an active connection at first_connect + N brand-local days.
WITH cohort AS (
    SELECT customer_id, first_at FROM v_first_connection
    WHERE first_at >= $start AND first_at < $end
), checks AS (
    SELECT c.customer_id, n.days, plus_days(c.first_at, n.days) AS at
    FROM cohort c CROSS JOIN (VALUES (7), (30), (90)) AS n(days)
), retained AS (
    SELECT k.days, count(DISTINCT k.customer_id) AS n
    FROM checks k
    JOIN v_connections v ON v.customer_id = k.customer_id
        AND v.created_at <= k.at AND (v.ended_at IS NULL OR v.ended_at > k.at)
    GROUP BY k.days
), size AS (SELECT count(*) AS n FROM cohort)
SELECT size.n AS cohort_size,
       CASE WHEN size.n > 0 THEN coalesce((SELECT n FROM retained WHERE days = 7), 0) / size.n END AS d7,
       CASE WHEN size.n > 0 THEN coalesce((SELECT n FROM retained WHERE days = 30), 0) / size.n END AS d30,
       CASE WHEN size.n > 0 THEN coalesce((SELECT n FROM retained WHERE days = 90), 0) / size.n END AS d90
FROM size
