-- SPEC §5.11 Non-member join rate 非会员入会率: units are (store, brand-local day, customer) of POS
-- non-cancelled orders in the period; an anonymous order is its own unit. A unit is in the
-- denominator unless its customer joined membership before that day, in the numerator when they
-- joined on that day (DATA_FORMAT.md).
WITH joined AS (
    SELECT customer_id, min(local_day(joined_at)) AS day
    FROM memberships
    WHERE brand_id = $brand_id AND customer_id IS NOT NULL
    GROUP BY customer_id
), units AS (
    SELECT DISTINCT store_id, local_day(created_at) AS day,
           coalesce('c' || customer_id, 'o' || id) AS unit, customer_id
    FROM v_orders
    WHERE platform = 'pos' AND NOT cancelled AND created_at >= $start AND created_at < $end
), counted AS (
    SELECT
        count(*) FILTER (WHERE j.day IS NULL OR j.day >= u.day) AS denominator,
        count(*) FILTER (WHERE j.day = u.day) AS numerator
    FROM units u LEFT JOIN joined j ON j.customer_id = u.customer_id
)
SELECT numerator, denominator,
       CASE WHEN denominator > 0 THEN numerator / denominator END AS rate
FROM counted
