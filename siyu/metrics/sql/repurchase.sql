-- SPEC §5.5 Repurchase rate 复购率: among customers with ≥ 1 paid order in the period, the share
-- with ≥ 2; purchases per buyer = their paid orders ÷ buyers. Anonymous orders have no buyer.
WITH buyers AS (
    SELECT customer_id, count(*) AS n
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at >= $start AND created_at < $end
    GROUP BY customer_id
)
SELECT count(*) AS buyers,
       count(*) FILTER (WHERE n >= 2) AS repeat_buyers,
       CASE WHEN count(*) > 0 THEN count(*) FILTER (WHERE n >= 2) / count(*) END AS rate,
       CASE WHEN count(*) > 0 THEN sum(n) / count(*) END AS purchases_per_buyer
FROM buyers
