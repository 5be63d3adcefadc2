-- SPEC §5.9 Loyal customer 忠实用户: how many customers loyal_customers.sql finds at `to`.
-- uses: loyal_customers
SELECT count(*) AS loyal FROM loyal_customers
