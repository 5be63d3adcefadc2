-- customer_orders.sql's rows as the daily pass stored them for the as-of day
-- (siyu.lifecycle.service writes them first, then computes the attributes from them).
SELECT customer_id, first_order_at, paid_orders, last_paid_at, paid_net, paid_loyal_window,
       paid_super_window, paid_paying_window, paid_quadrant_window, net_quadrant_window
FROM customer_orders_daily
WHERE brand_id = $brand_id AND as_of = $as_of
