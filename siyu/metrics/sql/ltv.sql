-- SPEC §5.8 Historic LTV: net sales to date (orders before `to`) per customer; the mean is over
-- customers with ≥ 1 paid order.
WITH per_customer AS (
    SELECT customer_id, sum(amount_fen - refund_fen) AS net, count(*) FILTER (WHERE paid) AS paid_orders
    FROM v_orders
    WHERE NOT cancelled AND customer_id IS NOT NULL AND created_at < $end
    GROUP BY customer_id
)
SELECT avg(net) FILTER (WHERE paid_orders >= 1) AS mean_historic,
       count(*) FILTER (WHERE paid_orders >= 1) AS customers
FROM per_customer
