-- SPEC §5.14 Community GMV 社群GMV: GMV of orders in the period by customers who were in ≥ 1 brand
-- group (an active group_member connection) at the instant they ordered.
SELECT coalesce(sum(o.amount_fen), 0) AS community_gmv
FROM v_orders o
WHERE NOT o.cancelled AND o.customer_id IS NOT NULL
  AND o.created_at >= $start AND o.created_at < $end
  AND EXISTS (
      SELECT 1 FROM v_connections c
      WHERE c.customer_id = o.customer_id AND c.kind = 'group_member'
        AND c.created_at <= o.created_at AND (c.ended_at IS NULL OR c.ended_at > o.created_at)
  )
