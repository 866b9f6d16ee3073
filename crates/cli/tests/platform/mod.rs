//! A local stand-in for the Fastly API, for the deploy rehearsal: it answers what the
//! Fastly CLI's `compute deploy` calls for a new service with `[setup]` (service, domain,
//! backends, config, KV and secret stores, resource links, package upload, activation) and
//! for an existing one (details, package, clone), plus the accounts endpoint's OpenID
//! Connect metadata, and records every request. Paths and bodies follow the official API
//! description: responses are the `fastly-api` crate's models, form and JSON bodies are
//! read as its client sends them. Versions behave as on the platform: an active version
//! is locked and must be cloned before it changes, and a version without a package cannot
//! be activated. `CONNECT` (the CLI's HTTPS traffic to anywhere else, through the proxy
//! the rehearsal sets) is recorded and refused, so nothing leaves the machine.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fastly_api::models::{
    BackendResponse, ConfigStoreResponse, DomainResponse, InlineResponse20017, InlineResponse20020,
    KvStoreDetails, KvStoreRequestCreateOrUpdate, PackageMetadata, PackageResponse,
    PaginationCursorMeta, ResourceResponse, SecretStore, SecretStoreResponse, ServiceDetail,
    ServiceResponse, ServiceVersionDetail, ServiceVersionDetailOrNull, TypeResource,
    VersionResponse, service_response::Type,
};
use hyper::{Body, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha512};

use crate::config_store::{self, json};

/// The API token the platform accepts (`Fastly-Key`).
pub const TOKEN: &str = "rehearsal-token";

/// The timestamp on everything the platform creates.
const CREATED: &str = "2026-01-05T09:30:00Z";

/// One request as received.
#[derive(Clone, Debug)]
pub struct Call {
    /// `GET`, `POST`, ... or `CONNECT`.
    pub method: String,
    /// The path (for `CONNECT`, the host and port asked for).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
}

/// A service and its versions.
#[derive(Clone, Debug)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// `wasm` for Compute.
    pub kind: String,
    pub versions: Vec<Version>,
    pub deleted: bool,
}

/// A service version: what `compute deploy` configures.
#[derive(Clone, Debug, Default)]
pub struct Version {
    pub number: i32,
    pub active: bool,
    pub locked: bool,
    pub backends: Vec<BackendResponse>,
    pub domains: Vec<DomainResponse>,
    pub links: Vec<ResourceResponse>,
    /// The uploaded package (a tar.gz).
    pub package: Option<Vec<u8>>,
}

/// A store of any kind, account-wide.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub id: String,
    pub name: String,
    /// A config store's items, keys to values.
    pub items: config_store::Items,
}

/// Everything the platform holds, and every request it received.
#[derive(Default)]
pub struct State {
    pub calls: Vec<Call>,
    pub services: Vec<Service>,
    pub config_stores: Vec<Store>,
    pub kv_stores: Vec<Store>,
    pub secret_stores: Vec<Store>,
    next_id: AtomicU32,
}

/// The platform's state behind a lock (for `common::serve`).
#[derive(Default)]
pub struct Platform(Mutex<State>);

impl Platform {
    /// The state, even after a panicking request.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new id shaped like the platform's (22 alphanumeric characters).
fn new_id(counter: &AtomicU32, kind: &str) -> String {
    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    format!("{kind}{n:0>width$}", width = 22 - kind.len())
}

/// The live service `id`.
fn find<'a>(services: &'a mut [Service], id: &str) -> Option<&'a mut Service> {
    services.iter_mut().find(|s| s.id == id && !s.deleted)
}

impl State {
    /// What kind of store `id` is, if it is one.
    fn store_type(&self, id: &str) -> Option<TypeResource> {
        let has = |stores: &[Store]| stores.iter().any(|s| s.id == id);
        if has(&self.config_stores) {
            Some(TypeResource::Config)
        } else if has(&self.kv_stores) {
            Some(TypeResource::KvStore)
        } else if has(&self.secret_stores) {
            Some(TypeResource::SecretStore)
        } else {
            None
        }
    }
}

/// The files of a package (a tar.gz), by their path in the archive.
pub fn package_files(package: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(package));
    let Ok(entries) = archive.entries() else {
        return files;
    };
    for mut entry in entries.flatten() {
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        if entry.read_to_end(&mut bytes).is_ok() {
            files.insert(path, bytes);
        }
    }
    files
}

/// The package's `files_hash`: SHA-512 over its files' contents in path order, which is
/// what the Fastly CLI compares to decide that a package is unchanged
/// (`pkg/commands/compute/hashfiles.go`, `getFilesHash`).
fn files_hash(package: &[u8]) -> String {
    let mut hash = Sha512::new();
    for bytes in package_files(package).values() {
        hash.update(bytes);
    }
    format!("{:x}", hash.finalize())
}

fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"msg": "Record not found", "detail": "Cannot find the resource"}),
    )
}

fn bad_request(detail: &str) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"msg": "Bad request", "detail": detail}),
    )
}

fn ok<T: serde::Serialize>(body: &T) -> Response<Body> {
    json(
        StatusCode::OK,
        serde_json::to_value(body).unwrap_or_default(),
    )
}

/// A form body (`application/x-www-form-urlencoded`), field to value.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The `package` field of a multipart upload.
async fn uploaded_package(req: Request<Body>) -> Option<Vec<u8>> {
    let boundary = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())?;
    let mut parts = multer::Multipart::new(req.into_body(), boundary);
    while let Ok(Some(field)) = parts.next_field().await {
        if field.name() == Some("package") {
            return field.bytes().await.ok().map(|b| b.to_vec());
        }
    }
    None
}

fn version_response(service_id: &str, v: &Version) -> VersionResponse {
    VersionResponse {
        active: Some(v.active),
        locked: Some(v.locked),
        deployed: Some(false),
        staging: Some(false),
        testing: Some(false),
        number: Some(v.number),
        service_id: Some(Box::new(service_id.into())),
        created_at: Some(CREATED.into()),
        ..VersionResponse::new()
    }
}

/// The same fields in another of the API's version models.
fn as_model<T: serde::de::DeserializeOwned + Default>(v: &VersionResponse) -> T {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

fn service_detail(s: &Service) -> ServiceDetail {
    let versions: Vec<VersionResponse> = s
        .versions
        .iter()
        .map(|v| version_response(&s.id, v))
        .collect();
    let active = s.versions.iter().find(|v| v.active);
    let current = active.or(s.versions.last());
    let detail = |v: &Version| ServiceVersionDetail {
        backends: Some(v.backends.clone()),
        domains: Some(v.domains.clone()),
        ..as_model(&version_response(&s.id, v))
    };
    ServiceDetail {
        id: Some(Box::new(s.id.clone())),
        name: Some(s.name.clone()),
        _type: Some(fastly_api::models::service_detail::Type::Wasm),
        created_at: Some(CREATED.into()),
        versions: Some(versions.iter().map(as_model).collect()),
        active_version: active.map(|v| {
            Box::new(as_model::<ServiceVersionDetailOrNull>(&version_response(
                &s.id, v,
            )))
        }),
        version: current.map(|v| Box::new(detail(v))),
        ..ServiceDetail::new()
    }
}

/// Answers one request, as the platform would.
pub async fn answer(platform: Arc<Platform>, req: Request<Body>) -> Response<Body> {
    let method = req.method().clone();
    let path = if method == Method::CONNECT {
        req.uri().to_string()
    } else {
        req.uri().path().to_string()
    };
    platform.state().calls.push(Call {
        method: method.to_string(),
        path: path.clone(),
        query: req.uri().query().map(str::to_string),
    });
    if method == Method::CONNECT {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"msg": "the rehearsal is offline"}),
        );
    }
    if path == "/realms/fastly/.well-known/openid-configuration" {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let realm = format!("http://{host}/realms/fastly");
        return json(
            StatusCode::OK,
            serde_json::json!({
                "issuer": realm,
                "authorization_endpoint": format!("{realm}/protocol/openid-connect/auth"),
                "token_endpoint": format!("{realm}/protocol/openid-connect/token"),
                "jwks_uri": format!("{realm}/protocol/openid-connect/certs"),
            }),
        );
    }
    if req
        .headers()
        .get("fastly-key")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"msg": "Provided credentials are missing or invalid"}),
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method == Method::PUT && matches!(segments[..], ["service", _, "version", _, "package"]) {
        let package = uploaded_package(req).await;
        return put_package(&mut platform.state(), segments[1], segments[3], package);
    }
    let body = hyper::body::to_bytes(req.into_body())
        .await
        .unwrap_or_default();
    let mut state = platform.state();
    match (&method, &segments[..]) {
        (&Method::POST, ["service"]) => create_service(&mut state, &form(&body)),
        (&Method::DELETE, ["service", id]) => match find(&mut state.services, id) {
            Some(s) => {
                s.deleted = true;
                json(StatusCode::OK, serde_json::json!({"status": "ok"}))
            }
            None => not_found(),
        },
        (&Method::GET, ["service", id, "details"]) => match find(&mut state.services, id) {
            Some(s) => ok(&service_detail(s)),
            None => not_found(),
        },
        (&Method::GET, ["service", id, "version"]) => match find(&mut state.services, id) {
            Some(s) => {
                let list: Vec<VersionResponse> =
                    s.versions.iter().map(|v| version_response(id, v)).collect();
                ok(&list)
            }
            None => not_found(),
        },
        (_, ["service", id, "version", number, rest @ ..]) => {
            version_call(&mut state, &method, id, number, rest, &form(&body))
        }
        (_, ["resources", "stores", kind, rest @ ..]) => {
            store_call(&mut state, &method, kind, rest, &body)
        }
        _ => not_found(),
    }
}

fn create_service(state: &mut State, form: &BTreeMap<String, String>) -> Response<Body> {
    let Some(name) = form.get("name").filter(|n| !n.is_empty()) else {
        return bad_request("name is required");
    };
    let id = new_id(&state.next_id, "svc");
    let service = Service {
        id: id.clone(),
        name: name.clone(),
        kind: form.get("type").cloned().unwrap_or_else(|| "vcl".into()),
        versions: vec![Version {
            number: 1,
            ..Version::default()
        }],
        deleted: false,
    };
    let response = ServiceResponse {
        id: Some(Box::new(id.clone())),
        name: Some(service.name.clone()),
        _type: Some(if service.kind == "wasm" {
            Type::Wasm
        } else {
            Type::Vcl
        }),
        created_at: Some(CREATED.into()),
        versions: Some(
            service
                .versions
                .iter()
                .map(|v| as_model(&version_response(&id, v)))
                .collect(),
        ),
        ..ServiceResponse::new()
    };
    state.services.push(service);
    ok(&response)
}

/// `/service/{id}/version/{number}/...`
fn version_call(
    state: &mut State,
    method: &Method,
    service_id: &str,
    number: &str,
    rest: &[&str],
    form: &BTreeMap<String, String>,
) -> Response<Body> {
    let store_type = form.get("resource_id").and_then(|id| state.store_type(id));
    let Some(service) = find(&mut state.services, service_id) else {
        return not_found();
    };
    let Some(index) = service
        .versions
        .iter()
        .position(|v| number.parse() == Ok(v.number))
    else {
        return not_found();
    };
    let editable = !service.versions[index].locked;
    let next_number = service.versions.len() as i32 + 1;
    let version = &mut service.versions[index];
    let number = version.number;
    let sid = service_id.to_string();
    match (method, rest) {
        (&Method::GET, ["domain"]) => ok(&version.domains),
        (&Method::GET, ["package"]) => match &version.package {
            Some(p) => ok(&package_response(&sid, number, p)),
            None => not_found(),
        },
        (&Method::PUT, ["clone"]) => {
            let clone = Version {
                number: next_number,
                active: false,
                locked: false,
                backends: version
                    .backends
                    .iter()
                    .map(|b| BackendResponse {
                        version: Some(Box::new(next_number)),
                        ..b.clone()
                    })
                    .collect(),
                domains: version
                    .domains
                    .iter()
                    .map(|d| DomainResponse {
                        version: Some(Box::new(next_number)),
                        ..d.clone()
                    })
                    .collect(),
                links: version
                    .links
                    .iter()
                    .map(|l| ResourceResponse {
                        version: Some(next_number),
                        ..l.clone()
                    })
                    .collect(),
                package: version.package.clone(),
            };
            let response = version_response(&sid, &clone);
            service.versions.push(clone);
            ok(&as_model::<fastly_api::models::Version>(&response))
        }
        (&Method::PUT, ["activate"]) => {
            if version.package.is_none() {
                return bad_request("a Compute service version needs a package to activate");
            }
            for v in service.versions.iter_mut() {
                v.active = v.number == number;
            }
            let version = &mut service.versions[index];
            version.locked = true;
            ok(&version_response(&sid, version))
        }
        (&Method::POST, _) if !editable => bad_request(&format!("Version {number} is locked")),
        (&Method::POST, ["domain"]) => {
            let domain = DomainResponse {
                name: form.get("name").cloned(),
                service_id: Some(Box::new(sid)),
                version: Some(Box::new(number)),
                created_at: Some(CREATED.into()),
                ..DomainResponse::new()
            };
            version.domains.push(domain.clone());
            ok(&domain)
        }
        (&Method::POST, ["backend"]) => {
            let field = |k: &str| form.get(k).cloned();
            let backend = BackendResponse {
                name: field("name"),
                address: field("address"),
                port: field("port").and_then(|p| p.parse().ok()),
                override_host: field("override_host"),
                ssl_cert_hostname: field("ssl_cert_hostname"),
                ssl_sni_hostname: field("ssl_sni_hostname"),
                // "Setting port to 80 or 443 will also set use_ssl automatically (to false
                // and true respectively), unless explicitly overridden" (API description).
                use_ssl: match (field("use_ssl"), field("port").as_deref()) {
                    (Some(v), _) => Some(v == "1" || v == "true"),
                    (None, Some("443")) => Some(true),
                    (None, Some("80")) => Some(false),
                    (None, _) => None,
                },
                service_id: Some(Box::new(sid)),
                version: Some(Box::new(number)),
                created_at: Some(CREATED.into()),
                ..BackendResponse::new()
            };
            if backend.name.is_none() || backend.address.is_none() {
                return bad_request("name and address are required");
            }
            version.backends.push(backend.clone());
            ok(&backend)
        }
        (&Method::POST, ["resource"]) => {
            let Some(resource_type) = store_type else {
                return bad_request("resource_id is not a store of this account");
            };
            let link = ResourceResponse {
                id: Some(new_id(&state.next_id, "lnk")),
                resource_id: form.get("resource_id").cloned(),
                name: form.get("name").cloned(),
                resource_type: Some(resource_type),
                service_id: Some(sid),
                version: Some(number),
                created_at: Some(CREATED.into()),
                ..ResourceResponse::new()
            };
            version.links.push(link.clone());
            ok(&link)
        }
        _ => not_found(),
    }
}

fn package_response(service_id: &str, number: i32, package: &[u8]) -> PackageResponse {
    let manifest: toml::Table = package_files(package)
        .iter()
        .find(|(path, _)| path.ends_with("/fastly.toml"))
        .and_then(|(_, bytes)| std::str::from_utf8(bytes).ok()?.parse().ok())
        .unwrap_or_default();
    let text = |k: &str| manifest.get(k).and_then(|v| v.as_str()).map(str::to_string);
    PackageResponse {
        id: Some(format!("pkg{service_id}{number}")),
        service_id: Some(Box::new(service_id.into())),
        version: Some(Box::new(number)),
        created_at: Some(CREATED.into()),
        metadata: Some(Box::new(PackageMetadata {
            name: text("name"),
            description: text("description"),
            language: text("language"),
            authors: manifest.get("authors").and_then(|a| a.as_array()).map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            }),
            size: i32::try_from(package.len()).ok(),
            hashsum: Some(format!("{:x}", Sha512::digest(package))),
            files_hash: Some(files_hash(package)),
        })),
        ..PackageResponse::new()
    }
}

fn put_package(
    state: &mut State,
    service_id: &str,
    number: &str,
    package: Option<Vec<u8>>,
) -> Response<Body> {
    let Some(service) = find(&mut state.services, service_id) else {
        return not_found();
    };
    let Some(version) = service
        .versions
        .iter_mut()
        .find(|v| number.parse() == Ok(v.number))
    else {
        return not_found();
    };
    if version.locked {
        return bad_request(&format!("Version {} is locked", version.number));
    }
    let Some(package) = package.filter(|p| !p.is_empty()) else {
        return bad_request("the package field is required");
    };
    let files = package_files(&package);
    let has = |name: &str| files.keys().any(|p| p.ends_with(name));
    if !has("/fastly.toml") || !has("/main.wasm") {
        return bad_request("a package holds fastly.toml and bin/main.wasm");
    }
    let response = package_response(service_id, version.number, &package);
    version.package = Some(package);
    ok(&response)
}

/// `/resources/stores/{config,kv,secret}/...`
fn store_call(
    state: &mut State,
    method: &Method,
    kind: &str,
    rest: &[&str],
    body: &[u8],
) -> Response<Body> {
    // Names of new stores: form fields for config stores, JSON for the others.
    let name = match kind {
        "config" => form(body).get("name").cloned(),
        "kv" => serde_json::from_slice::<KvStoreRequestCreateOrUpdate>(body)
            .ok()
            .map(|r| r.name),
        _ => serde_json::from_slice::<SecretStore>(body)
            .ok()
            .and_then(|r| r.name),
    };
    let id_kind = match kind {
        "config" => "cfg",
        "kv" => "kvs",
        _ => "sec",
    };
    let stores = match kind {
        "config" => &mut state.config_stores,
        "kv" => &mut state.kv_stores,
        "secret" => &mut state.secret_stores,
        _ => return not_found(),
    };
    match (method, rest) {
        (&Method::GET, []) => store_list(kind, stores),
        (&Method::POST, []) => {
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                return bad_request("name is required");
            };
            if stores.iter().any(|s| s.name == name) {
                return json(
                    StatusCode::CONFLICT,
                    serde_json::json!({"msg": format!("a store named {name} exists")}),
                );
            }
            let store = Store {
                id: new_id(&state.next_id, id_kind),
                name,
                items: config_store::Items::new(),
            };
            let response = store_response(kind, &store);
            stores.push(store);
            response
        }
        (&Method::GET, [id]) => match stores.iter().find(|s| s.id == *id) {
            Some(store) => store_response(kind, store),
            None => not_found(),
        },
        (_, [id, "items"]) if kind == "config" => match stores.iter_mut().find(|s| s.id == *id) {
            Some(store) => config_store::answer(id, &mut store.items, method, body),
            None => not_found(),
        },
        _ => not_found(),
    }
}

fn store_response(kind: &str, store: &Store) -> Response<Body> {
    let (id, name) = (Some(store.id.clone()), Some(store.name.clone()));
    match kind {
        "config" => ok(&ConfigStoreResponse {
            id,
            name,
            created_at: Some(CREATED.into()),
            ..ConfigStoreResponse::new()
        }),
        "kv" => ok(&KvStoreDetails {
            id,
            name,
            created_at: Some(CREATED.into()),
            ..KvStoreDetails::new()
        }),
        _ => ok(&SecretStoreResponse {
            id,
            name,
            created_at: Some(CREATED.into()),
        }),
    }
}

fn store_list(kind: &str, stores: &[Store]) -> Response<Body> {
    let meta = Some(Box::new(PaginationCursorMeta {
        next_cursor: None,
        limit: Some(100),
    }));
    match kind {
        "config" => {
            let list: Vec<ConfigStoreResponse> = stores
                .iter()
                .map(|s| ConfigStoreResponse {
                    id: Some(s.id.clone()),
                    name: Some(s.name.clone()),
                    created_at: Some(CREATED.into()),
                    ..ConfigStoreResponse::new()
                })
                .collect();
            ok(&list)
        }
        "kv" => ok(&InlineResponse20017 {
            data: Some(
                stores
                    .iter()
                    .map(|s| KvStoreDetails {
                        id: Some(s.id.clone()),
                        name: Some(s.name.clone()),
                        created_at: Some(CREATED.into()),
                        ..KvStoreDetails::new()
                    })
                    .collect(),
            ),
            meta,
        }),
        _ => ok(&InlineResponse20020 {
            data: Some(
                stores
                    .iter()
                    .map(|s| SecretStoreResponse {
                        id: Some(s.id.clone()),
                        name: Some(s.name.clone()),
                        created_at: Some(CREATED.into()),
                    })
                    .collect(),
            ),
            meta,
        }),
    }
}
