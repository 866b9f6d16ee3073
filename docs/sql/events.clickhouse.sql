CREATE TABLE analytics.edgeflags_events (
  `schema_version` Nullable(Int64),
  `kind` LowCardinality(String),
  `ts` Int64,
  `flag` Nullable(String),
  `variant` Nullable(String),
  `reason` Nullable(String),
  `rule` Nullable(String),
  `split` Array(Tuple(variant String, weight Int64)),
  `event` Nullable(String),
  `value` Nullable(Float64),
  `variants` Array(Tuple(flag String, variant String)),
  `snapshot` Nullable(String),
  `user` Nullable(String),
  `country` Nullable(String),
  `device` Nullable(String),
  `error` Nullable(String),
  `status` Nullable(Int64)
)
ENGINE = MergeTree
ORDER BY (kind, ts);
