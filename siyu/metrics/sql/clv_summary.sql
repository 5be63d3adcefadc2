-- SPEC §5.8 pLTV inputs, per customer with ≥ 1 paid order before `to` (the calibration end):
-- purchases are brand-local days with a paid order (same-day orders count once);
-- frequency = repeat purchase days, recency = weeks from the first to the last purchase day,
-- T = weeks from the first purchase day to `to`, monetary = mean net value of the repeat days.
WITH days AS (
    SELECT customer_id, local_day(created_at) AS day, sum(amount_fen - refund_fen) AS value
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at < $end
    GROUP BY customer_id, local_day(created_at)
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY day) AS k FROM days
)
SELECT customer_id,
       count(*) - 1 AS frequency,
       datediff('day', min(day), max(day)) / 7.0 AS recency,
       datediff('day', min(day), $to_day) / 7.0 AS t,
       coalesce(avg(value) FILTER (WHERE k > 1), 0) AS monetary
FROM ranked
GROUP BY customer_id
ORDER BY customer_id
