-- SPEC §6 Business quadrant 生意四象限, per customer with a paid order in the trailing
-- `quadrant_days` (default 365) before `to`: purchase frequency = those paid orders, high when
-- ≥ `quadrant_orders` (default 4); AOV 客单价 = their net sales ÷ their number, high when
-- ≥ `quadrant_aov_fen` (default 10000 fen = ¥100). Customers without such orders have none.
WITH bought AS (
    SELECT customer_id, count(*) AS orders, sum(amount_fen - refund_fen) / count(*) AS aov_fen
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL
      AND created_at >= plus_days($end, -$quadrant_days) AND created_at < $end
    GROUP BY customer_id
)
SELECT customer_id, orders, aov_fen,
       CASE WHEN orders >= $quadrant_orders THEN 'high_freq' ELSE 'low_freq' END
       || '_' ||
       CASE WHEN aov_fen >= $quadrant_aov_fen THEN 'high_aov' ELSE 'low_aov' END AS quadrant
FROM bought
