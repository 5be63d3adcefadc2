-- customer_orders.sql's columns, exactly, from the per-customer order summary the warehouse
-- keeps (siyu.warehouse.order_summary: first non-cancelled order, and the paid orders' number,
-- net sales and last instant over all orders) instead of aggregating every order. Read for an
-- unfiltered scope only. What depends on `to` comes from the orders that decide it:
-- - the paid orders from `to` on (`late`), taken off the lifetime number and net sales;
-- - the trailing windows, from the paid orders inside the longest of them (`recent`), whose
--   latest is also the last paid order before `to` of a customer who ordered again since;
-- - only for such a customer with nothing in the windows, that last paid order from the rest.
-- A daily pass as of today reads few orders after `to` and the windows' orders only.
WITH late AS (
    SELECT customer_id, count(*) AS n, sum(amount_fen - refund_fen) AS net
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at >= $end
    GROUP BY customer_id
), recent AS (
    SELECT customer_id,
           max(created_at) AS last_paid_at,
           count(*) FILTER (WHERE created_at >= plus_days($end, -$loyal_days)) AS loyal_n,
           count(*) FILTER (WHERE created_at >= plus_days($end, -$super_days)) AS super_n,
           count(*) FILTER (WHERE created_at >= plus_days($end, -$paying_days)) AS paying_n,
           count(*) FILTER (WHERE created_at >= plus_days($end, -$quadrant_days)) AS quadrant_n,
           sum(amount_fen - refund_fen)
               FILTER (WHERE created_at >= plus_days($end, -$quadrant_days)) AS quadrant_net
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at < $end
      AND created_at >= least(plus_days($end, -$loyal_days), plus_days($end, -$super_days),
                              plus_days($end, -$paying_days), plus_days($end, -$quadrant_days))
    GROUP BY customer_id
), older AS (
    SELECT customer_id, max(created_at) AS last_paid_at
    FROM v_orders
    WHERE paid AND created_at < $end
      AND customer_id IN (SELECT customer_id FROM late
                          WHERE customer_id NOT IN (SELECT customer_id FROM recent))
    GROUP BY customer_id
), counted AS (
    SELECT s.customer_id, s.first_order_at,
           s.paid_orders - coalesce(l.n, 0) AS paid_orders,
           s.paid_net - coalesce(l.net, 0) AS paid_net,
           CASE WHEN l.customer_id IS NULL THEN s.last_paid_at
                ELSE coalesce(r.last_paid_at, o.last_paid_at) END AS last_paid_at,
           r.loyal_n, r.super_n, r.paying_n, r.quadrant_n, r.quadrant_net
    FROM customer_order_summary s
    LEFT JOIN late l ON l.customer_id = s.customer_id
    LEFT JOIN recent r ON r.customer_id = s.customer_id
    LEFT JOIN older o ON o.customer_id = s.customer_id
    WHERE s.brand_id = $brand_id
)
SELECT customer_id,
       first_order_at,
       paid_orders,
       last_paid_at,
       CASE WHEN paid_orders > 0 THEN paid_net END AS paid_net,
       coalesce(loyal_n, 0) AS paid_loyal_window,
       coalesce(super_n, 0) AS paid_super_window,
       coalesce(paying_n, 0) AS paid_paying_window,
       coalesce(quadrant_n, 0) AS paid_quadrant_window,
       CASE WHEN quadrant_n > 0 THEN quadrant_net END AS net_quadrant_window
FROM counted
