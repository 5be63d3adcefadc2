-- SPEC §5.12 Guide customer assets 导购客群资产数 per staff, as of `to`: distinct reachable customers
-- via an active WeCom friendship with the staff member or membership of a group they own.
-- Reachable: not opted out (before `to`) of that connection's channel or of every channel.
WITH active AS (
    SELECT * FROM v_connections
    WHERE customer_id IS NOT NULL AND created_at <= $end AND (ended_at IS NULL OR ended_at > $end)
), links AS (
    SELECT staff_id, customer_id, 'wecom' AS channel FROM active WHERE kind = 'wecom_friend'
    UNION
    SELECT g.owner_staff_id, a.customer_id, 'group'
    FROM active a JOIN groups g ON g.id = a.group_id
    WHERE a.kind = 'group_member'
)
SELECT s.code AS staff, count(DISTINCT l.customer_id) AS customers
FROM links l JOIN staff s ON s.id = l.staff_id
WHERE NOT EXISTS (
    SELECT 1 FROM opt_outs x
    WHERE x.brand_id = $brand_id AND x.customer_id = l.customer_id AND x.created_at < $end
      AND (x.channel IS NULL OR x.channel = l.channel)
)
GROUP BY s.code
HAVING count(DISTINCT l.customer_id) >= 1
ORDER BY s.code
