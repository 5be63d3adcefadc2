-- Per-customer order summary as of `to`, read by the per-customer files of SPEC §5.9–5.10 and
-- §6 (lifecycle, RFM, value layers, quadrant, loyal, super users) so that orders are aggregated
-- once however many of them a statement joins. Paid and non-cancelled as in DATA_FORMAT.md;
-- each trailing window ends at `to` and starts the configured number of brand-local days before.
SELECT customer_id,
       -- any time, not only before `to`: lifecycle uses it to leave out customers first seen later
       min(created_at) FILTER (WHERE NOT cancelled) AS first_order_at,
       count(*) FILTER (WHERE paid AND created_at < $end) AS paid_orders,
       max(created_at) FILTER (WHERE paid AND created_at < $end) AS last_paid_at,
       sum(amount_fen - refund_fen) FILTER (WHERE paid AND created_at < $end) AS paid_net,
       count(*) FILTER (WHERE paid AND created_at < $end
                        AND created_at >= plus_days($end, -$loyal_days)) AS paid_loyal_window,
       count(*) FILTER (WHERE paid AND created_at < $end
                        AND created_at >= plus_days($end, -$super_days)) AS paid_super_window,
       count(*) FILTER (WHERE paid AND created_at < $end
                        AND created_at >= plus_days($end, -$paying_days)) AS paid_paying_window,
       count(*) FILTER (WHERE paid AND created_at < $end
                        AND created_at >= plus_days($end, -$quadrant_days)) AS paid_quadrant_window,
       sum(amount_fen - refund_fen) FILTER (WHERE paid AND created_at < $end
                        AND created_at >= plus_days($end, -$quadrant_days)) AS net_quadrant_window
FROM v_orders
WHERE customer_id IS NOT NULL
GROUP BY customer_id
