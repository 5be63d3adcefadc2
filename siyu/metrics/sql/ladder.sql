-- SPEC §6 Product ladder 商品阶梯: how buyers climb the SKU roles (traffic 引流品, trust 建信品,
-- profit 利润品, extension 拓展品). A buyer's first order is their earliest paid order before `to`
-- (ties: the smaller order id); its roles are the entry roles. For each entry role and each role
-- bought in a later paid order (or '(none)'), the number of buyers. The climb the SPEC names is
-- the row traffic → profit divided by the buyers who entered with traffic (`entered`).
WITH paid AS (
    SELECT id, customer_id, created_at,
           row_number() OVER (PARTITION BY customer_id ORDER BY created_at, id) AS nth
    FROM v_orders
    WHERE paid AND customer_id IS NOT NULL AND created_at < $end
), roles AS (
    SELECT o.customer_id, o.nth, p.ladder_role AS role
    FROM paid o
    JOIN order_items i ON i.order_id = o.id
    JOIN products p ON p.sku = i.sku AND p.brand_id = $brand_id
    WHERE p.ladder_role IS NOT NULL
), entry AS (
    SELECT DISTINCT customer_id, role FROM roles WHERE nth = 1
), later AS (
    SELECT DISTINCT customer_id, role FROM roles WHERE nth > 1
), entered AS (
    SELECT role, count(*) AS buyers FROM entry GROUP BY role
)
SELECT e.role AS entry_role,
       coalesce(l.role, '(none)') AS later_role,
       count(DISTINCT e.customer_id) AS buyers,
       any_value(n.buyers) AS entered
FROM entry e
LEFT JOIN later l ON l.customer_id = e.customer_id
JOIN entered n ON n.role = e.role
GROUP BY ALL
ORDER BY entry_role, later_role
