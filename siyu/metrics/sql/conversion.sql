-- SPEC §5.4 Conversion 转化率: share of the period's first-connection cohort (as in §5.3) with
-- ≥ 1 paid order placed within W brand-local days (default 30) after the first connection.
WITH cohort AS (
    SELECT customer_id, first_at FROM v_first_connection
    WHERE first_at >= $start AND first_at < $end
), converted AS (
    SELECT count(*) AS n FROM cohort c
    WHERE EXISTS (
        SELECT 1 FROM v_orders o
        WHERE o.customer_id = c.customer_id AND o.paid
          AND o.created_at >= c.first_at AND o.created_at < plus_days(c.first_at, $conversion_window)
    )
)
SELECT (SELECT count(*) FROM cohort) AS cohort_size, converted.n AS converted,
       CASE WHEN (SELECT count(*) FROM cohort) > 0
            THEN converted.n / (SELECT count(*) FROM cohort) END AS rate
FROM converted
