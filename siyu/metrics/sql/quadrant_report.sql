-- SPEC §6 Business quadrant 生意四象限 report: customers per quadrant of quadrant.sql as of `to`,
-- their mean paid orders in the window and their AOV (net sales ÷ paid orders, fen).
-- uses: quadrant
SELECT quadrant,
       count(*) AS customers,
       avg(orders) AS orders_per_customer,
       sum(aov_fen * orders) / sum(orders) AS aov_fen
FROM quadrant
GROUP BY quadrant
