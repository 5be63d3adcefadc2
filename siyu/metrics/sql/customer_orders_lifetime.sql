-- customer_orders.sql's lifetime columns as of `to` — first_order_at, paid_orders, last_paid_at,
-- paid_net, exactly — from the per-customer order summary the warehouse keeps (siyu.warehouse.
-- order_summary: the same figures over all orders) instead of aggregating every order: the paid
-- orders from `to` on are taken off, and a customer who paid again since gets their last paid
-- order before `to` from their own orders. As of today few orders lie after `to`, so this reads
-- the summary and little else. No trailing windows: a file reading those (value layers, loyal,
-- super users, quadrant) reads customer_orders.sql. Unfiltered scope only.
WITH late AS (
    SELECT customer_id, count(*) AS n, sum(amount_fen - refund_fen) AS net
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at >= $end
    GROUP BY customer_id
), before AS (
    SELECT customer_id, max(created_at) AS last_paid_at
    FROM v_orders
    WHERE paid AND created_at < $end AND customer_id IN (SELECT customer_id FROM late)
    GROUP BY customer_id
)
SELECT s.customer_id,
       s.first_order_at,
       s.paid_orders - coalesce(l.n, 0) AS paid_orders,
       CASE WHEN l.customer_id IS NULL THEN s.last_paid_at ELSE b.last_paid_at END AS last_paid_at,
       CASE WHEN s.paid_orders > coalesce(l.n, 0) THEN s.paid_net - coalesce(l.net, 0) END
           AS paid_net
FROM customer_order_summary s
LEFT JOIN late l ON l.customer_id = s.customer_id
LEFT JOIN before b ON b.customer_id = s.customer_id
WHERE s.brand_id = $brand_id
