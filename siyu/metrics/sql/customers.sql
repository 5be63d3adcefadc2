-- SPEC §3–4 · customers.total: unified customers in scope (merged-away ids not counted).
SELECT count(*) AS total FROM v_customers
