-- SPEC §5.6 GMV identity 私域GMV = users × conversion × purchases per buyer × AOV, over the pool's
-- orders: users = pool at the period's start; buyers = those of them with a non-cancelled order
-- in the period; conversion = buyers ÷ users; purchases per buyer = their orders ÷ buyers;
-- AOV = their GMV ÷ their orders. The product equals gmv exactly.
WITH users AS (
    SELECT DISTINCT customer_id FROM v_connections
    WHERE customer_id IS NOT NULL AND created_at <= $start AND (ended_at IS NULL OR ended_at > $start)
), pool_orders AS (
    SELECT o.customer_id, o.amount_fen
    FROM v_orders o JOIN users u ON u.customer_id = o.customer_id
    WHERE NOT o.cancelled AND o.created_at >= $start AND o.created_at < $end
), t AS (
    SELECT (SELECT count(*) FROM users) AS users, count(DISTINCT customer_id) AS buyers,
           count(*) AS orders, coalesce(sum(amount_fen), 0) AS gmv
    FROM pool_orders
)
SELECT users, buyers, orders,
       CASE WHEN users > 0 THEN buyers / users END AS conversion,
       CASE WHEN buyers > 0 THEN orders / buyers END AS purchases_per_buyer,
       CASE WHEN orders > 0 THEN gmv / orders END AS aov,
       gmv
FROM t
