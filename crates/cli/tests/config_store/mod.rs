//! Fastly's config-store item API for one store, answered over a map of items: the list
//! (`GET /resources/stores/config/{id}/items`) and the bulk update that `push` and
//! `rollback` send (`PATCH`, parsed with the `fastly-api` crate's own models), with the
//! platform's checks (key length, 8,000-character values, 500 items, create and update
//! preconditions). The push tests and the deploy rehearsal share it.

use std::collections::BTreeMap;

use fastly_api::models::{
    BulkUpdateConfigStoreListRequest, ConfigStoreItemResponse, bulk_update_config_store_item::Op,
};
use hyper::{Body, Method, Response, StatusCode};

/// A store's items, key to value.
pub type Items = BTreeMap<String, String>;

/// A JSON response.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// Answers `method` with `body` on the items of store `store_id`.
pub fn answer(store_id: &str, items: &mut Items, method: &Method, body: &[u8]) -> Response<Body> {
    match *method {
        Method::GET => {
            let list: Vec<ConfigStoreItemResponse> = items
                .iter()
                .map(|(k, v)| ConfigStoreItemResponse {
                    item_key: Some(k.clone()),
                    item_value: Some(v.clone()),
                    store_id: Some(Box::new(store_id.into())),
                    ..ConfigStoreItemResponse::new()
                })
                .collect();
            json(
                StatusCode::OK,
                serde_json::to_value(list).unwrap_or_default(),
            )
        }
        Method::PATCH => bulk_update(items, body),
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"msg": "method not allowed"}),
        ),
    }
}

/// Applies a bulk update all or nothing, as the platform does.
fn bulk_update(items: &mut Items, body: &[u8]) -> Response<Body> {
    let Ok(body) = serde_json::from_slice::<BulkUpdateConfigStoreListRequest>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"msg": "bad request body"}),
        );
    };
    let mut next = items.clone();
    for item in body.items.unwrap_or_default() {
        let key = item.item_key.unwrap_or_default();
        let value = item.item_value.unwrap_or_default();
        if key.is_empty() || key.len() > 255 || value.chars().count() > 8000 {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"msg": format!("invalid item {key}")}),
            );
        }
        match item.op.unwrap_or_default() {
            Op::Create if next.contains_key(&key) => {
                return json(
                    StatusCode::CONFLICT,
                    serde_json::json!({"msg": format!("{key} exists")}),
                );
            }
            Op::Update if !next.contains_key(&key) => {
                return json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"msg": format!("{key} not found")}),
                );
            }
            Op::Delete => {
                next.remove(&key);
            }
            _ => {
                next.insert(key, value);
            }
        }
    }
    if next.len() > 500 {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"msg": "too many items"}),
        );
    }
    *items = next;
    json(StatusCode::OK, serde_json::json!({"status": "ok"}))
}
