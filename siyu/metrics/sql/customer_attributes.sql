-- SPEC §6 per-customer attributes as of `to`, for the daily snapshot (`siyu lifecycle`) and for
-- segment rules: lifecycle stage, value layer (with the loyal and super-user flags), RFM values,
-- quintile scores and class, business quadrant. Each comes from its own file; this one only joins
-- them over the customers lifecycle_stage.sql knows at `to`.
-- uses: lifecycle_stage, value_layer, rfm, quadrant
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
       coalesce(v.super_user, false) AS super_user
FROM lifecycle_stage l
LEFT JOIN value_layer v ON v.customer_id = l.customer_id
LEFT JOIN rfm r ON r.customer_id = l.customer_id
LEFT JOIN quadrant q ON q.customer_id = l.customer_id
