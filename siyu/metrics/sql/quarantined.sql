-- SPEC §4 K-guard · customers.quarantined_identifiers: values that merge nothing, as type:value.
-- Phones and emails are stored hashed and sealed (siyu.pii): the report shows the value.
SELECT id_type || ':' || coalesce(siyu_pii_open(value_sealed), value) AS identifier
FROM identifiers
WHERE brand_id = $brand_id AND status = 'quarantined'
ORDER BY identifier
