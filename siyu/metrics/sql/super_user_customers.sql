-- SPEC §5.10 Super user 超级用户, per customer: ≥ 3 paid orders in the trailing 90 days and ≥ 2
-- successful referrals (configurable). A successful referral: an invitee, referred before `to`,
-- with a paid order before `to` (DATA_FORMAT.md). One row per super user.
-- uses: customer_orders
WITH frequent AS (
    SELECT customer_id FROM customer_orders WHERE paid_super_window >= $super_orders
), successful AS (
    SELECT r.referrer_customer_id AS customer_id, count(DISTINCT r.invitee_customer_id) AS n
    FROM v_referrals r
    JOIN customer_orders o ON o.customer_id = r.invitee_customer_id AND o.paid_orders > 0
    WHERE r.created_at < $end
    GROUP BY r.referrer_customer_id
)
SELECT f.customer_id
FROM frequent f JOIN successful s ON s.customer_id = f.customer_id
WHERE s.n >= $super_referrals
