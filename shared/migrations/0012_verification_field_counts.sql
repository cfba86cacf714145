-- verify-data's reports count fields as the import report does: lists of {field, count}
-- (they were objects of field → count).
UPDATE tidegate.verifications v SET result = (
    SELECT jsonb_agg(t || jsonb_build_object(
        'missing_required_fields',
        (SELECT coalesce(jsonb_agg(jsonb_build_object('field', k, 'count', n) ORDER BY k), '[]')
           FROM jsonb_each(t->'missing_required_fields') AS f(k, n)),
        'invalid_format_fields',
        (SELECT coalesce(jsonb_agg(jsonb_build_object('field', k, 'count', n) ORDER BY k), '[]')
           FROM jsonb_each(t->'invalid_format_fields') AS f(k, n))) ORDER BY i)
    FROM jsonb_array_elements(v.result) WITH ORDINALITY AS a(t, i))
WHERE jsonb_typeof(v.result) = 'array'
  AND jsonb_typeof(v.result->0->'missing_required_fields') = 'object';
