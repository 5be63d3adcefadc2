-- SPEC §6 Value layers 贡献度分层, per customer as of `to`; the first match wins:
-- loyal fans 铁杆粉丝 (loyal §5.9 or super user §5.10) → paying 付费用户 (a paid order in the
-- trailing 90 days) → active 活跃用户 (an interaction in the trailing 30 days) → newly activated
-- 新激活用户 (first connection in the trailing 7 days) → regular 普通用户. Windows configurable.
-- uses: customer_orders, loyal_customers, super_user_customers
WITH paying AS (
    SELECT customer_id FROM customer_orders WHERE paid_paying_window > 0
), active AS (
    SELECT DISTINCT customer_id FROM v_interactions
    WHERE customer_id IS NOT NULL
      AND created_at >= plus_days($end, -$active_days) AND created_at < $end
), newly_activated AS (
    SELECT customer_id FROM v_first_connection
    WHERE first_at >= plus_days($end, -$new_days) AND first_at < $end
)
SELECT c.customer_id,
       CASE
           WHEN lo.customer_id IS NOT NULL OR su.customer_id IS NOT NULL THEN 'loyal_fans'
           WHEN p.customer_id IS NOT NULL THEN 'paying'
           WHEN a.customer_id IS NOT NULL THEN 'active'
           WHEN n.customer_id IS NOT NULL THEN 'newly_activated'
           ELSE 'regular'
       END AS layer,
       lo.customer_id IS NOT NULL AS loyal,
       su.customer_id IS NOT NULL AS super_user
FROM v_customers c
LEFT JOIN loyal_customers lo ON lo.customer_id = c.customer_id
LEFT JOIN super_user_customers su ON su.customer_id = c.customer_id
LEFT JOIN paying p ON p.customer_id = c.customer_id
LEFT JOIN active a ON a.customer_id = c.customer_id
LEFT JOIN newly_activated n ON n.customer_id = c.customer_id
