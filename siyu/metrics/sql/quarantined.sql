-- SPEC §4 K-guard · customers.quarantined_identifiers: values that merge nothing, as type:value.
SELECT id_type || ':' || value AS identifier
FROM identifiers
WHERE brand_id = $brand_id AND status = 'quarantined'
ORDER BY identifier
