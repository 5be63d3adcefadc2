-- SPEC §6 Business quadrant 生意四象限, per customer with a paid order in the trailing
-- `quadrant_days` (default 365) before `to`: purchase frequency = those paid orders, high when
-- ≥ `quadrant_orders` (default 4); AOV 客单价 = their net sales ÷ their number, high when
-- ≥ `quadrant_aov_fen` (default 10000 fen = ¥100). Customers without such orders have none.
-- uses: customer_orders
WITH bought AS (
    SELECT customer_id, paid_quadrant_window AS orders,
           net_quadrant_window / paid_quadrant_window AS aov_fen
    FROM customer_orders
    WHERE paid_quadrant_window > 0
)
SELECT customer_id, orders, aov_fen,
       CASE WHEN orders >= $quadrant_orders THEN 'high_freq' ELSE 'low_freq' END
       || '_' ||
       CASE WHEN aov_fen >= $quadrant_aov_fen THEN 'high_aov' ELSE 'low_aov' END AS quadrant
FROM bought
