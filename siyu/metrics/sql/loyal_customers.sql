-- SPEC §5.9 Loyal customer 忠实用户, per customer: ≥ N paid orders (default 4) in the trailing
-- D days (default 30) ending at `to`. One row per loyal customer.
SELECT customer_id FROM v_orders
WHERE paid AND customer_id IS NOT NULL
  AND created_at >= plus_days($end, -$loyal_days) AND created_at < $end
GROUP BY customer_id
HAVING count(*) >= $loyal_orders
