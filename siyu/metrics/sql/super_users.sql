-- SPEC §5.10 Super user 超级用户: how many customers super_user_customers.sql finds at `to`.
-- uses: super_user_customers
SELECT count(*) AS super_users FROM super_user_customers
