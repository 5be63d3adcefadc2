-- SPEC §5.7 ROI per channel = (attributed net sales − cost) ÷ cost; CAC = cost ÷ customers
-- acquired through the channel in the period. First touch: the channel of the customer's
-- earliest connection (v_acquisition). Revenue = net amount of non-cancelled orders placed in
-- the period, at or after acquisition and < W days (default 90) after it (DATA_FORMAT.md).
-- Only channels with cost rows in the period; roi null when cost is 0, cac null without
-- acquisitions.
WITH cost AS (
    SELECT k.channel_id, sum(k.cost_fen) AS cost
    FROM channel_costs k JOIN v_channels c ON c.id = k.channel_id
    WHERE k.day >= $from_day AND k.day < $to_day
    GROUP BY k.channel_id
), revenue AS (
    SELECT a.channel_id, sum(o.amount_fen - o.refund_fen) AS revenue
    FROM v_orders o JOIN v_acquisition a ON a.customer_id = o.customer_id
    WHERE NOT o.cancelled AND o.created_at >= $start AND o.created_at < $end
      AND o.created_at >= a.acquired_at AND o.created_at < plus_days(a.acquired_at, $roi_window)
    GROUP BY a.channel_id
), acquired AS (
    SELECT channel_id, count(*) AS n FROM v_acquisition
    WHERE acquired_at >= $start AND acquired_at < $end
    GROUP BY channel_id
)
SELECT c.code AS channel,
       coalesce(revenue.revenue, 0) AS revenue,
       cost.cost,
       CASE WHEN cost.cost > 0 THEN (coalesce(revenue.revenue, 0) - cost.cost) / cost.cost END AS roi,
       CASE WHEN coalesce(acquired.n, 0) > 0 THEN cost.cost / acquired.n END AS cac,
       coalesce(acquired.n, 0) AS acquired
FROM cost
JOIN v_channels c ON c.id = cost.channel_id
LEFT JOIN revenue ON revenue.channel_id = cost.channel_id
LEFT JOIN acquired ON acquired.channel_id = cost.channel_id
ORDER BY c.code
