-- edgeflags report (ClickHouse): users per flag, variant, country and split; users in more than
-- one variant are the rows whose variant is NULL. Columns: flag, variant, country, split, users, converted, value_sum, value_sq.
WITH exposures AS (
  SELECT flag, `user` AS user_id, variant, ts, COALESCE(country, '??') AS seen_in, split
  FROM analytics.edgeflags_events
  WHERE kind = 'exposure' AND `user` IS NOT NULL AND flag IS NOT NULL AND variant IS NOT NULL
),
assigned AS (
  SELECT flag, user_id, MIN(variant) AS low_variant, MAX(variant) AS high_variant,
    MIN(ts) AS first_ts, argMin(seen_in, COALESCE(ts, 0)) AS first_country, argMin(split, COALESCE(ts, 0)) AS first_split
  FROM exposures
  GROUP BY flag, user_id
),
conversions AS (
  SELECT user_id, ts, value, v.flag AS flag, v.variant AS variant FROM (
    SELECT e.`user` AS user_id, e.ts, e.value, v
    FROM analytics.edgeflags_events AS e ARRAY JOIN e.variants AS v
    WHERE e.kind = 'conversion' AND e.`user` IS NOT NULL AND e.event = 'purchase'
  ) AS named
),
converted AS (
  SELECT a.flag AS flag, a.user_id AS user_id, SUM(COALESCE(c.value, 0)) AS value
  FROM assigned AS a
  JOIN conversions AS c ON c.user_id = a.user_id AND c.flag = a.flag AND c.variant = a.low_variant
  WHERE a.low_variant = a.high_variant AND (c.ts >= a.first_ts OR c.ts IS NULL OR a.first_ts IS NULL)
  GROUP BY a.flag, a.user_id
),
per_user AS (
  SELECT a.flag AS flag,
    CASE WHEN a.low_variant = a.high_variant THEN a.low_variant END AS variant,
    CASE WHEN a.low_variant = a.high_variant THEN a.first_country END AS country,
    CASE WHEN a.low_variant = a.high_variant THEN toJSONString(a.first_split) END AS split,
    CASE WHEN c.user_id IS NULL THEN 0 ELSE 1 END AS is_converted,
    COALESCE(c.value, 0) AS user_value
  FROM assigned AS a
  LEFT JOIN converted AS c ON c.flag = a.flag AND c.user_id = a.user_id
)
SELECT flag, variant, country, split, COUNT(*) AS users, SUM(is_converted) AS converted,
  SUM(user_value) AS value_sum, SUM(user_value * user_value) AS value_sq
FROM per_user
GROUP BY flag, variant, country, split
ORDER BY flag, variant, country, split
SETTINGS join_use_nulls = 1
