-- SPEC §5.9 Loyal customer 忠实用户, per customer: ≥ N paid orders (default 4) in the trailing
-- D days (default 30) ending at `to`. One row per loyal customer.
-- uses: customer_orders
SELECT customer_id FROM customer_orders WHERE paid_loyal_window >= $loyal_orders
