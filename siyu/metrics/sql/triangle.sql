-- SPEC §5.13 Private-domain triangle 私域三角, the parts measured here:
-- reach rate = share of the pool at `to` with a delivered message in the trailing R days
-- (default 30); referral rate 顾客推荐率 = share of new customers (first connection in the period)
-- who are the invitee of a referral recorded before `to`. Property power and single-customer
-- value are products of these with the pool, mean LTV and repurchase rate (metrics/report.py).
WITH pool AS (
    SELECT DISTINCT customer_id FROM v_connections
    WHERE customer_id IS NOT NULL AND created_at <= $end AND (ended_at IS NULL OR ended_at > $end)
), reached AS (
    SELECT count(*) AS n FROM pool p
    WHERE EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.brand_id = $brand_id AND d.customer_id = p.customer_id AND d.status = 'delivered'
          AND d.created_at >= plus_days($end, -$reach_days) AND d.created_at < $end
    )
), newcomers AS (
    SELECT customer_id FROM v_first_connection WHERE first_at >= $start AND first_at < $end
), referred AS (
    SELECT count(*) AS n FROM newcomers c
    WHERE EXISTS (SELECT 1 FROM v_referrals r
                  WHERE r.invitee_customer_id = c.customer_id AND r.created_at < $end)
)
SELECT (SELECT count(*) FROM pool) AS pool, reached.n AS reached,
       CASE WHEN (SELECT count(*) FROM pool) > 0 THEN reached.n / (SELECT count(*) FROM pool) END
           AS reach_rate,
       (SELECT count(*) FROM newcomers) AS new_customers, referred.n AS referred,
       CASE WHEN (SELECT count(*) FROM newcomers) > 0
            THEN referred.n / (SELECT count(*) FROM newcomers) END AS referral_rate
FROM reached, referred
