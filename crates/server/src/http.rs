//! The Open Inference Protocol over HTTP/REST (axum), with the binary tensor data extension
//! (`Inference-Header-Content-Length`, `binary_data_size`, `binary_data`,
//! `binary_data_output`), model statistics, system shared memory, and `/metrics`.

use crate::codec::{self, Contents, Param, RequestTensor, RequestedOutput};
use crate::error::{Code, ProtocolError};
use crate::frontend::State;
use axum::extract::{DefaultBodyLimit, Path, Request, State as Shared};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::watch;

/// The header giving the JSON part's length when binary tensor data follows it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

type S = Shared<Arc<State>>;

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "error": self.message }))).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Vec<OutputJson>,
}

#[derive(Debug, Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

fn param_u64(p: &Map<String, Value>, key: &str, field: &str) -> Result<Option<u64>, ProtocolError> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ProtocolError::invalid(format!("{field}: parameter {key:?} must be a non-negative integer"))
        }),
    }
}

fn param_bool(p: &Map<String, Value>, key: &str, field: &str) -> Result<Option<bool>, ProtocolError> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| ProtocolError::invalid(format!("{field}: parameter {key:?} must be true or false"))),
    }
}

fn shm_ref(p: &Map<String, Value>, field: &str) -> Result<Option<(String, u64, u64)>, ProtocolError> {
    let Some(region) = p.get("shared_memory_region") else { return Ok(None) };
    let region = region
        .as_str()
        .ok_or_else(|| ProtocolError::invalid(format!("{field}: shared_memory_region must be a string")))?;
    let size = param_u64(p, "shared_memory_byte_size", field)?.ok_or_else(|| {
        ProtocolError::invalid(format!("{field}: shared_memory_region without shared_memory_byte_size"))
    })?;
    let offset = param_u64(p, "shared_memory_offset", field)?.unwrap_or(0);
    Ok(Some((region.to_string(), offset, size)))
}

/// An infer request, parsed.
#[derive(Debug)]
pub struct ParsedInfer {
    pub id: Option<String>,
    pub tensors: Vec<RequestTensor>,
    /// Empty: every output.
    pub outputs: Vec<RequestedOutput>,
    /// `parameters.binary_data_output`: outputs as binary data unless they say otherwise.
    pub binary_default: bool,
}

/// Splits an infer body into its JSON request and its tensors (binary data sliced from the
/// body, not copied).
pub fn parse_infer(headers: &HeaderMap, body: Bytes) -> Result<ParsedInfer, ProtocolError> {
    let json_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => {
            let n = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| ProtocolError::invalid(format!("{HEADER_LENGTH}: {v:?} is not a byte count")))?;
            if n > body.len() {
                return Err(ProtocolError::invalid(format!(
                    "{HEADER_LENGTH} is {n} but the body has {} bytes (truncated?)",
                    body.len()
                )));
            }
            n
        }
    };
    let req: InferRequest = serde_json::from_slice(&body[..json_len])
        .map_err(|e| ProtocolError::invalid(format!("the request's JSON: {e}")))?;
    let mut at = json_len;
    let mut tensors = Vec::with_capacity(req.inputs.len());
    for (i, t) in req.inputs.into_iter().enumerate() {
        let field = format!("inputs[{i}] {:?}", t.name);
        let contents = if let Some((region, offset, byte_size)) = shm_ref(&t.parameters, &field)? {
            Contents::Shm { region, offset, byte_size }
        } else if let Some(n) = param_u64(&t.parameters, "binary_data_size", &field)? {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > body.len() - at {
                return Err(ProtocolError::invalid(format!(
                    "{field}: binary_data_size {n}, but only {} bytes of binary data are left (truncated body?)",
                    body.len() - at
                )));
            }
            let b = body.slice(at..at + n);
            at += n;
            Contents::Raw(b)
        } else if let Some(d) = t.data {
            Contents::Json(d)
        } else {
            return Err(ProtocolError::invalid(format!(
                "{field}: no data (give \"data\", binary_data_size or shared_memory_region)"
            )));
        };
        tensors.push(RequestTensor { name: t.name, datatype: t.datatype, shape: t.shape, contents });
    }
    if at != body.len() {
        return Err(ProtocolError::invalid(format!(
            "{} bytes of binary data after the inputs' binary_data_size (check {HEADER_LENGTH})",
            body.len() - at
        )));
    }
    let binary_default = param_bool(&req.parameters, "binary_data_output", "parameters")?.unwrap_or(false);
    let outputs = req
        .outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let field = format!("outputs[{i}] {:?}", o.name);
            let binary = param_bool(&o.parameters, "binary_data", &field)?;
            Ok(RequestedOutput { name: o.name, shm: shm_ref(&o.parameters, &field)?, binary })
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    Ok(ParsedInfer { id: req.id, tensors, outputs, binary_default })
}

fn param_json(p: Param) -> Value {
    match p {
        Param::Int(i) => json!(i),
        Param::Bool(b) => json!(b),
    }
}

async fn infer_at(
    state: &State,
    model: &str,
    version: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProtocolError> {
    let m = state.model(model, version)?;
    let m = &*m;
    let ParsedInfer { id, tensors, outputs: requested, binary_default } = parse_infer(&headers, body)?;
    codec::check_outputs(m, &requested, &state.shm)?;
    let input = codec::decode_input(m, tensors, &state.shm, &state.limits)?;
    let result = state.run_job(&m.name, input).await?;
    let parameters: Map<String, Value> =
        codec::timing_parameters(&result).into_iter().map(|(k, v)| (k.to_string(), param_json(v))).collect();
    let outputs = codec::encode_outputs(m, result, &requested, &state.shm)?;
    let mut binary = Vec::new();
    let mut outs = Vec::with_capacity(outputs.len());
    for o in outputs {
        let mut j = json!({ "name": o.name, "datatype": o.dtype.protocol_name(), "shape": o.dims });
        if let Some((region, offset, size)) = &o.shm {
            j["parameters"] = json!({
                "shared_memory_region": region, "shared_memory_offset": offset, "shared_memory_byte_size": size
            });
        } else if o.binary.unwrap_or(binary_default) {
            j["parameters"] = json!({ "binary_data_size": o.bytes().len() });
            binary.push(o.into_bytes());
        } else {
            j["data"] = o.json_data();
        }
        outs.push(j);
    }
    let mut body = json!({ "model_name": m.name, "model_version": "1", "parameters": parameters, "outputs": outs });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let head = serde_json::to_vec(&body).map_err(|e| ProtocolError::new(Code::Internal, e.to_string()))?;
    if binary.is_empty() {
        return Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], head).into_response());
    }
    let mut all = BytesMut::with_capacity(head.len() + binary.iter().map(Bytes::len).sum::<usize>());
    all.extend_from_slice(&head);
    for b in &binary {
        all.extend_from_slice(b);
    }
    let mut resp = all.freeze().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(HEADER_LENGTH, HeaderValue::from(head.len()));
    Ok(resp)
}

async fn infer(
    Shared(state): S,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProtocolError> {
    infer_at(&state, &model, "", headers, body).await
}

async fn infer_version(
    Shared(state): S,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProtocolError> {
    infer_at(&state, &model, &version, headers, body).await
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(Shared(state): S) -> StatusCode {
    if state.backend.is_stopped() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "lalarand", "version": env!("CARGO_PKG_VERSION"), "extensions": crate::grpc::EXTENSIONS }))
}

fn dims_json(dims: &[Option<usize>]) -> Vec<i64> {
    dims.iter().map(|d| d.map_or(-1, |v| v as i64)).collect()
}

fn metadata_at(state: &State, model: &str, version: &str) -> Result<Json<Value>, ProtocolError> {
    let m = state.model(model, version)?;
    let tensor = |name: &str, dtype: &str, shape: Vec<i64>| json!({ "name": name, "datatype": dtype, "shape": shape });
    let inputs: Vec<Value> = match &m.inputs.tensors {
        Some(ts) => ts.iter().map(|t| tensor(&t.name, t.dtype.protocol_name(), dims_json(&t.dims))).collect(),
        None => vec![tensor("input", "FP32", vec![-1])],
    };
    let outputs: Vec<Value> =
        m.outputs.iter().map(|t| tensor(&t.name, t.dtype.protocol_name(), dims_json(&t.dims))).collect();
    Ok(Json(json!({
        "name": m.name, "versions": ["1"], "platform": "lalarand", "inputs": inputs, "outputs": outputs,
        "parameters": {
            "period_ns": m.period, "deadline_ns": m.deadline, "bound_ns": m.bound, "periodic": m.periodic
        }
    })))
}

async fn model_metadata(Shared(state): S, Path(model): Path<String>) -> Result<Json<Value>, ProtocolError> {
    metadata_at(&state, &model, "")
}

async fn model_metadata_version(
    Shared(state): S,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ProtocolError> {
    metadata_at(&state, &model, &version)
}

fn ready_at(state: &State, model: &str, version: &str) -> Result<StatusCode, ProtocolError> {
    state.model(model, version)?;
    Ok(if state.ready(model, version) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE })
}

async fn model_ready(Shared(state): S, Path(model): Path<String>) -> Result<StatusCode, ProtocolError> {
    ready_at(&state, &model, "")
}

async fn model_ready_version(
    Shared(state): S,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ProtocolError> {
    ready_at(&state, &model, &version)
}

fn stats_at(state: &State, model: &str, version: &str) -> Result<Json<Value>, ProtocolError> {
    let stats = crate::metrics::model_statistics(state, model, version)?;
    let d = |count: u64, ns: u64| json!({ "count": count, "ns": ns });
    let model_stats: Vec<Value> = stats
        .into_iter()
        .map(|s| {
            json!({
                "name": s.name, "version": "1", "last_inference": s.last_inference_ms,
                "inference_count": s.success, "execution_count": s.success,
                "inference_stats": {
                    "success": d(s.success, s.success_ns), "fail": d(s.fail, 0), "queue": d(0, 0),
                    "compute_input": d(0, 0), "compute_infer": d(0, 0), "compute_output": d(0, 0)
                },
                "batch_stats": []
            })
        })
        .collect();
    Ok(Json(json!({ "model_stats": model_stats })))
}

async fn all_stats(Shared(state): S) -> Result<Json<Value>, ProtocolError> {
    stats_at(&state, "", "")
}

async fn model_stats(Shared(state): S, Path(model): Path<String>) -> Result<Json<Value>, ProtocolError> {
    stats_at(&state, &model, "")
}

async fn model_stats_version(
    Shared(state): S,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ProtocolError> {
    stats_at(&state, &model, &version)
}

fn shm_status_at(state: &State, name: &str) -> Result<Json<Value>, ProtocolError> {
    let regions: Vec<Value> = state
        .shm
        .status(name)?
        .into_iter()
        .map(|r| json!({ "name": r.name, "key": r.key, "offset": r.offset, "byte_size": r.byte_size }))
        .collect();
    Ok(Json(Value::Array(regions)))
}

async fn shm_status(Shared(state): S) -> Result<Json<Value>, ProtocolError> {
    shm_status_at(&state, "")
}

async fn shm_region_status(Shared(state): S, Path(name): Path<String>) -> Result<Json<Value>, ProtocolError> {
    shm_status_at(&state, &name)
}

#[derive(Debug, Deserialize)]
struct RegisterJson {
    key: String,
    #[serde(default)]
    offset: u64,
    byte_size: u64,
}

async fn shm_register(Shared(state): S, Path(name): Path<String>, body: Bytes) -> Result<StatusCode, ProtocolError> {
    let r: RegisterJson = serde_json::from_slice(&body).map_err(|e| {
        ProtocolError::invalid(format!("shared memory register request: {e} (want key, offset, byte_size)"))
    })?;
    state.shm.register(&name, &r.key, r.offset, r.byte_size)?;
    Ok(StatusCode::OK)
}

async fn shm_unregister(Shared(state): S, Path(name): Path<String>) -> StatusCode {
    state.shm.unregister(&name);
    StatusCode::OK
}

async fn shm_unregister_all(Shared(state): S) -> StatusCode {
    state.shm.unregister("");
    StatusCode::OK
}

async fn metrics(Shared(state): S) -> Response {
    let text = state.metrics.render(state.backend.stats(), state.auth.refused());
    // prometheus_client writes OpenMetrics (`# EOF`, counters' `_total`): say so.
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// The request body's `parameters` object (an empty body: none).
fn body_parameters(body: &Bytes) -> Result<Map<String, Value>, ProtocolError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| ProtocolError::invalid(format!("request body: {e}")))?;
    match v.get("parameters") {
        None => Ok(Map::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(p) => Err(ProtocolError::invalid(format!("parameters: {p} is not an object"))),
    }
}

async fn repository_load(
    Shared(state): S,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ProtocolError> {
    state.repository()?;
    let parameters = crate::LoadParameters::from_json(&body_parameters(&body)?)
        .map_err(|e| ProtocolError::new(e.code, format!("load of model {model:?}: {e}")))?;
    Ok(Json(state.change_model(&model, Some(parameters)).await?))
}

async fn repository_unload(
    Shared(state): S,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ProtocolError> {
    body_parameters(&body)?;
    Ok(Json(state.change_model(&model, None).await?))
}

/// Every model served, all `READY` (an unloaded model is no longer listed).
async fn repository_index(Shared(state): S) -> Json<Value> {
    let catalog = state.catalog();
    Json(Value::Array(
        catalog
            .models
            .iter()
            .map(|m| json!({ "name": m.name, "version": "1", "state": "READY", "reason": "" }))
            .collect(),
    ))
}

async fn unknown() -> ProtocolError {
    ProtocolError::not_found("no such endpoint (see docs/runtime.md, \"Network server\", for the routes)")
}

async fn check_token(Shared(state): S, req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if state.auth.check(header) {
        next.run(req).await
    } else {
        ProtocolError::new(Code::Unauthenticated, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
            .into_response()
    }
}

/// Every route, behind the size limit and the bearer-token check.
pub(crate) fn router(state: Arc<State>) -> Router {
    let limit = state.limits.max_request_bytes;
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/stats", get(model_stats))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_version))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_version))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_version))
        .route("/v2/models/{model}/versions/{version}/stats", get(model_stats_version))
        .route("/v2/systemsharedmemory/status", get(shm_status))
        .route("/v2/systemsharedmemory/unregister", post(shm_unregister_all))
        .route("/v2/systemsharedmemory/region/{name}/status", get(shm_region_status))
        .route("/v2/systemsharedmemory/region/{name}/register", post(shm_register))
        .route("/v2/systemsharedmemory/region/{name}/unregister", post(shm_unregister))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(repository_load))
        .route("/v2/repository/models/{model}/unload", post(repository_unload))
        .route("/metrics", get(metrics))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), check_token))
        .with_state(state)
}

async fn until_stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) async fn serve_tcp(state: Arc<State>, listener: tokio::net::TcpListener, stop: watch::Receiver<bool>) {
    let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
        let _ = s.set_nodelay(true);
    });
    let r = axum::serve(listener, router(state)).with_graceful_shutdown(until_stopped(stop)).await;
    if let Err(e) = r {
        tracing::error!("HTTP endpoint: {e}");
    }
}

pub(crate) async fn serve_unix(state: Arc<State>, listener: tokio::net::UnixListener, stop: watch::Receiver<bool>) {
    let r = axum::serve(listener, router(state)).with_graceful_shutdown(until_stopped(stop)).await;
    if let Err(e) = r {
        tracing::error!("HTTP endpoint: {e}");
    }
}
