-- SPEC §5.2 Pass rate 通过率 per channel: connections created in the period attributed to the
-- channel ÷ its reach events (QR scans, invites, page views) dated in the period.
-- Only channels with reach rows in the period; null when their reach sums to 0.
WITH reach AS (
    SELECT r.channel_id, sum(r.count) AS reach
    FROM channel_reach r JOIN v_channels c ON c.id = r.channel_id
    WHERE r.day >= $from_day AND r.day < $to_day
    GROUP BY r.channel_id
), made AS (
    SELECT channel_id, count(*) AS connections
    FROM v_connections
    WHERE channel_id IS NOT NULL AND created_at >= $start AND created_at < $end
    GROUP BY channel_id
)
SELECT c.code AS channel, reach.reach, coalesce(made.connections, 0) AS connections,
       CASE WHEN reach.reach > 0 THEN coalesce(made.connections, 0) / reach.reach END AS rate
FROM reach
JOIN v_channels c ON c.id = reach.channel_id
LEFT JOIN made ON made.channel_id = reach.channel_id
ORDER BY c.code
