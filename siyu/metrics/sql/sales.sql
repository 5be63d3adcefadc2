-- SPEC §5 (preamble), §5.6: GMV = amounts of non-cancelled orders placed in the period (anonymous
-- included); net sales = GMV − their refunds; AOV 客单价 = GMV ÷ those orders (null without orders).
SELECT coalesce(sum(amount_fen), 0) AS gmv,
       count(*) AS orders,
       coalesce(sum(amount_fen - refund_fen), 0) AS net_sales,
       CASE WHEN count(*) > 0 THEN sum(amount_fen) / count(*) END AS aov
FROM v_orders
WHERE NOT cancelled AND created_at >= $start AND created_at < $end
