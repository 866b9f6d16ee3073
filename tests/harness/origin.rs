//! Test origins: real HTTP servers on ephemeral loopback ports that record every request
//! and answer as told: echo what they saw as JSON (method, HTTP version, path, headers,
//! body), fail with a status, hang, refuse, or serve the demo origin's pages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};

/// How an origin answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with a JSON body describing the request it received.
    Echo,
    /// This status, with a short body.
    Status(u16),
    /// Waits this long before answering (past the backend's timeout).
    Hang(Duration),
    /// Nothing listens on the port: connections are refused.
    Refuse,
    /// 200 with a body of this many bytes, sent in 64 KiB chunks.
    Huge(usize),
    /// The demo origin's page for this region (`crate::demo`).
    Demo(&'static str),
    /// The test pages of `crate::pages`, else the demo origin's for this region.
    Site(&'static str),
    /// 500 when the `edgeflags-decisions` header it receives has this decision (the
    /// origin of one variant failing, such as `checkout=v2`), else as `Echo`.
    FailFor(&'static str),
}

/// One request an origin received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

/// A running test origin.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The backend name it stands for.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// For [`Behaviour::Refuse`], the socket that holds the port: bound, never listening,
    /// so connections to it are refused and no other origin can be given the port.
    _held: Option<Arc<tokio::net::TcpSocket>>,
}

impl Origin {
    /// Starts an origin on the current runtime.
    pub async fn start(name: &str, behaviour: Behaviour) -> Result<Origin> {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        if let Behaviour::Refuse = behaviour {
            // A port bound and kept, never listened on: connections are refused. (A port
            // learned by binding and then closed could be handed to the next origin
            // started, which then answered for this one: a test saw the refusing
            // `origin_sa`'s request echoed by `origin_us` under load.)
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let addr = socket.local_addr()?;
            return Ok(Origin {
                name: name.into(),
                addr,
                seen,
                _held: Some(Arc::new(socket)),
            });
        }
        let (record, backend) = (seen.clone(), name.to_string());
        let make = make_service_fn(move |_| {
            let (record, backend, behaviour) = (record.clone(), backend.clone(), behaviour.clone());
            async move {
                Ok::<_, Infallible>(service_fn(move |req: Request<Body>| {
                    let (record, backend, behaviour) =
                        (record.clone(), backend.clone(), behaviour.clone());
                    async move { Ok::<_, Infallible>(answer(req, &record, &backend, &behaviour).await) }
                }))
            }
        });
        let server = Server::try_bind(&([127, 0, 0, 1], 0).into())?.serve(make);
        let addr = server.local_addr();
        tokio::spawn(server);
        Ok(Origin {
            name: name.into(),
            addr,
            seen,
            _held: None,
        })
    }

    /// Requests received so far whose path contains `marker`.
    pub fn seen_with(&self, marker: &str) -> Vec<Seen> {
        let guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .iter()
            .filter(|s| s.path.contains(marker))
            .cloned()
            .collect()
    }
}

async fn answer(
    req: Request<Body>,
    record: &Mutex<Vec<Seen>>,
    backend: &str,
    behaviour: &Behaviour,
) -> Response<Body> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let seen = Seen {
        method: req.method().to_string(),
        path: path.clone(),
        headers: headers.clone(),
    };
    record.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    match behaviour {
        Behaviour::FailFor(marker)
            if headers.iter().any(|(k, v)| {
                k == "edgeflags-decisions" && v.split("; ").any(|d| d == *marker)
            }) =>
        {
            Response::builder()
                .status(500)
                .body(Body::from(format!("origin {backend} failing for {marker}")))
                .unwrap_or_default()
        }
        Behaviour::Status(code) => Response::builder()
            .status(*code)
            .body(Body::from(format!("origin {backend} failing with {code}")))
            .unwrap_or_default(),
        Behaviour::Huge(n) => {
            let n = *n;
            let chunks = (0..n.div_ceil(65536)).map(move |i| {
                let len = (n - i * 65536).min(65536);
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b'x'; len]))
            });
            Response::builder()
                .header("content-type", "application/octet-stream")
                .body(Body::wrap_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_default()
        }
        Behaviour::Demo(region) => crate::demo::respond(region, &req),
        Behaviour::Site(region) => match crate::pages::respond(&req).await {
            Some(r) => r,
            None => crate::demo::respond(region, &req),
        },
        Behaviour::Hang(d) => {
            tokio::time::sleep(*d).await;
            Response::new(Body::from("too late"))
        }
        Behaviour::Echo | Behaviour::Refuse | Behaviour::FailFor(_) => {
            let mut map = serde_json::Map::new();
            for (k, v) in headers {
                map.insert(k, v.into());
            }
            let (method, version) = (req.method().to_string(), format!("{:?}", req.version()));
            // The request body as text (bodies in tests are small).
            let received = hyper::body::to_bytes(req.into_body())
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("<body error: {e}>"));
            let body = serde_json::json!({
                "backend": backend,
                "method": method,
                "version": version,
                "path": path,
                "headers": map,
                "body": received,
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap_or_default()
        }
    }
}
