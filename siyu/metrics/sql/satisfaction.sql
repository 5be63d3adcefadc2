-- SPEC §5.14 Satisfaction: survey responses (1–5) in the period — mean score and share of 4–5.
SELECT avg(score) AS mean,
       CASE WHEN count(*) > 0 THEN count(*) FILTER (WHERE score >= 4) / count(*) END AS share_4_5,
       count(*) AS responses
FROM v_surveys
WHERE created_at >= $start AND created_at < $end
