-- edgeflags report (ClickHouse): users per flag, variant, country and split; users in more than
-- one variant are the rows whose variant is NULL. Columns: flag, variant, country, split, users, converted, value_sum, value_sq.
-- The per-user steps carry 64-bit hashes of variant, country and split (numbers, which
-- every engine can move to disk), and `names` turns them back into text at the end.
WITH exposures AS (
  SELECT flag, `user` AS user_id, cityHash64(variant) AS variant_key, ts,
    cityHash64(COALESCE(country, '??')) AS country_key, cityHash64(split) AS split_key
  FROM analytics.edgeflags_events
  WHERE kind = 'exposure' AND `user` IS NOT NULL AND flag IS NOT NULL AND variant IS NOT NULL
),
names AS (
  SELECT flag, cityHash64(variant) AS variant_key, cityHash64(COALESCE(country, '??')) AS country_key,
    cityHash64(split) AS split_key, MIN(variant) AS variant_name, MIN(COALESCE(country, '??')) AS country_name,
    MIN(toJSONString(split)) AS split_text
  FROM analytics.edgeflags_events
  WHERE kind = 'exposure' AND `user` IS NOT NULL AND flag IS NOT NULL AND variant IS NOT NULL
  GROUP BY flag, variant_key, country_key, split_key
),
assigned AS (
  SELECT flag, user_id, MIN(variant_key) AS low_key, MAX(variant_key) AS high_key,
    MIN(ts) AS first_ts, argMin(country_key, COALESCE(ts, 0)) AS first_country, argMin(split_key, COALESCE(ts, 0)) AS first_split
  FROM exposures
  GROUP BY flag, user_id
),
conversions AS (
  SELECT user_id, ts, value, v.flag AS flag, cityHash64(v.variant) AS variant_key FROM (
    SELECT e.`user` AS user_id, e.ts, e.value, v
    FROM analytics.edgeflags_events AS e ARRAY JOIN e.variants AS v
    WHERE e.kind = 'conversion' AND e.`user` IS NOT NULL AND e.event = 'purchase'
  ) AS named
),
converted AS (
  SELECT a.flag AS flag, a.user_id AS user_id, SUM(COALESCE(c.value, 0)) AS value
  FROM assigned AS a
  JOIN conversions AS c ON c.user_id = a.user_id AND c.flag = a.flag AND c.variant_key = a.low_key
  WHERE a.low_key = a.high_key AND (c.ts >= a.first_ts OR c.ts IS NULL OR a.first_ts IS NULL)
  GROUP BY a.flag, a.user_id
),
per_user AS (
  SELECT a.flag AS flag,
    CASE WHEN a.low_key = a.high_key THEN a.low_key END AS variant_key,
    CASE WHEN a.low_key = a.high_key THEN a.first_country END AS country_key,
    CASE WHEN a.low_key = a.high_key THEN a.first_split END AS split_key,
    CASE WHEN c.user_id IS NULL THEN 0 ELSE 1 END AS is_converted,
    COALESCE(c.value, 0) AS user_value
  FROM assigned AS a
  LEFT JOIN converted AS c ON c.flag = a.flag AND c.user_id = a.user_id
),
grouped AS (
  SELECT flag, variant_key, country_key, split_key, COUNT(*) AS users,
    SUM(is_converted) AS converted, SUM(user_value) AS value_sum,
    SUM(user_value * user_value) AS value_sq
  FROM per_user
  GROUP BY flag, variant_key, country_key, split_key
)
SELECT g.flag AS flag, v.variant_name AS variant, c.country_name AS country, s.split_text AS split, g.users AS users,
  g.converted AS converted, g.value_sum AS value_sum, g.value_sq AS value_sq
FROM grouped AS g
LEFT JOIN (SELECT DISTINCT flag, variant_key, variant_name FROM names) AS v
  ON v.flag = g.flag AND v.variant_key = g.variant_key
LEFT JOIN (SELECT DISTINCT flag, country_key, country_name FROM names) AS c
  ON c.flag = g.flag AND c.country_key = g.country_key
LEFT JOIN (SELECT DISTINCT flag, split_key, split_text FROM names) AS s
  ON s.flag = g.flag AND s.split_key = g.split_key
ORDER BY g.flag, v.variant_name NULLS LAST, c.country_name NULLS LAST, s.split_text NULLS LAST
SETTINGS join_use_nulls = 1
