-- SPEC §6 RFM over customers with ≥ 1 paid order before `to`: R = brand-local days since the last
-- paid order, F = paid orders, M = their net sales. Quintile scores 1–5 (5 = most recent / most
-- frequent / highest; ties share a score) and the eight classes: high F or M is strictly above
-- the mean, high R is days-since strictly below the mean.
-- uses: customer_orders
WITH base AS (
    SELECT customer_id,
           datediff('day', local_day(last_paid_at), $to_day) AS r,
           paid_orders AS f,
           paid_net AS m
    FROM customer_orders
    WHERE paid_orders > 0
), scored AS (
    SELECT *,
           1 + floor(5 * (rank() OVER (ORDER BY r DESC) - 1) / count(*) OVER ())::INTEGER AS r_score,
           1 + floor(5 * (rank() OVER (ORDER BY f) - 1) / count(*) OVER ())::INTEGER AS f_score,
           1 + floor(5 * (rank() OVER (ORDER BY m) - 1) / count(*) OVER ())::INTEGER AS m_score,
           r < avg(r) OVER () AS r_high,
           f > avg(f) OVER () AS f_high,
           m > avg(m) OVER () AS m_high
    FROM base
)
SELECT customer_id, r, f, m, r_score, f_score, m_score,
       CASE
           WHEN r_high AND f_high AND m_high THEN 'important_value'
           WHEN r_high AND NOT f_high AND m_high THEN 'important_development'
           WHEN NOT r_high AND f_high AND m_high THEN 'important_retention'
           WHEN NOT r_high AND NOT f_high AND m_high THEN 'important_winback'
           WHEN r_high AND f_high AND NOT m_high THEN 'general_value'
           WHEN r_high AND NOT f_high AND NOT m_high THEN 'general_development'
           WHEN NOT r_high AND f_high AND NOT m_high THEN 'general_retention'
           ELSE 'general_winback'
       END AS class
FROM scored
