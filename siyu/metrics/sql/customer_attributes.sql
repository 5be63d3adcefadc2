-- SPEC §6 per-customer attributes as of `to`, for the daily snapshot (`siyu lifecycle`) and for
-- segment rules: lifecycle stage, value layer (with the loyal and super-user flags), RFM values,
-- quintile scores and class, business quadrant. Each comes from its own file; this one only joins
-- them over the customers lifecycle_stage.sql knows at `to`. It also keeps customer_orders.sql's
-- paid-order figures (all time and in the trailing windows those definitions count), so that a
-- segment's order leaf over one of them reads the snapshot instead of the orders (a customer
-- with a paid order before `to` is always known to lifecycle, so no row means none).
-- uses: customer_orders, lifecycle_stage, value_layer, rfm, quadrant
SELECT l.customer_id,
       l.stage,
       l.days_since,
       v.layer AS value_layer,
       r.r AS rfm_r,
       r.f AS rfm_f,
       r.m AS rfm_m,
       r.r_score,
       r.f_score,
       r.m_score,
       r.class AS rfm_class,
       q.quadrant,
       coalesce(v.loyal, false) AS loyal,
       coalesce(v.super_user, false) AS super_user,
       coalesce(o.paid_orders, 0) AS paid_orders,
       coalesce(o.paid_net, 0) AS paid_net,
       o.last_paid_at,
       coalesce(o.paid_loyal_window, 0) AS paid_loyal_window,
       coalesce(o.paid_super_window, 0) AS paid_super_window,
       coalesce(o.paid_paying_window, 0) AS paid_paying_window,
       coalesce(o.paid_quadrant_window, 0) AS paid_quadrant_window,
       coalesce(o.net_quadrant_window, 0) AS net_quadrant_window
FROM lifecycle_stage l
LEFT JOIN customer_orders o ON o.customer_id = l.customer_id
LEFT JOIN value_layer v ON v.customer_id = l.customer_id
LEFT JOIN rfm r ON r.customer_id = l.customer_id
LEFT JOIN quadrant q ON q.customer_id = l.customer_id
