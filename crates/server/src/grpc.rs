//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`). Methods not in
//! proto/inference.proto answer UNIMPLEMENTED (tonic's router).

use crate::codec::{self, Contents, Param, RequestTensor, RequestedOutput};
use crate::error::{Code, ProtocolError};
use crate::frontend::State;
use crate::proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use crate::proto::infer_parameter::ParameterChoice;
use crate::proto::*;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// Server metadata extensions this front end implements.
pub(crate) const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "statistics", "system_shared_memory"];

pub(crate) struct Service {
    state: Arc<State>,
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Reply<T> {
    Ok(Response::new(v))
}

fn status(e: ProtocolError) -> Status {
    e.grpc_status()
}

fn param_string(p: &HashMap<String, InferParameter>, key: &str) -> Option<String> {
    match p.get(key)?.parameter_choice.as_ref()? {
        ParameterChoice::StringParam(s) => Some(s.clone()),
        _ => None,
    }
}

fn param_u64(p: &HashMap<String, InferParameter>, key: &str, field: &str) -> Result<Option<u64>, ProtocolError> {
    let Some(v) = p.get(key).and_then(|v| v.parameter_choice.as_ref()) else { return Ok(None) };
    match v {
        ParameterChoice::Int64Param(i) if *i >= 0 => Ok(Some(*i as u64)),
        ParameterChoice::Uint64Param(u) => Ok(Some(*u)),
        _ => Err(ProtocolError::invalid(format!("{field}: parameter {key:?} must be a non-negative integer"))),
    }
}

/// The shared-memory reference in a tensor's parameters, if any.
fn shm_ref(p: &HashMap<String, InferParameter>, field: &str) -> Result<Option<(String, u64, u64)>, ProtocolError> {
    let Some(region) = param_string(p, "shared_memory_region") else { return Ok(None) };
    let size = param_u64(p, "shared_memory_byte_size", field)?.ok_or_else(|| {
        ProtocolError::invalid(format!("{field}: shared_memory_region without shared_memory_byte_size"))
    })?;
    let offset = param_u64(p, "shared_memory_offset", field)?.unwrap_or(0);
    Ok(Some((region, offset, size)))
}

fn typed_contents(c: InferTensorContents) -> Contents {
    if !c.fp32_contents.is_empty() {
        Contents::Fp32(c.fp32_contents)
    } else if !c.int64_contents.is_empty() {
        Contents::Int64(c.int64_contents)
    } else if !c.int_contents.is_empty() {
        Contents::Int32(c.int_contents)
    } else if !c.uint_contents.is_empty() {
        Contents::Uint(c.uint_contents)
    } else if !c.bool_contents.is_empty() {
        Contents::Bool(c.bool_contents)
    } else {
        Contents::Fp32(Vec::new())
    }
}

/// The request's tensors with their contents: raw contents, in order, go to the inputs that
/// have neither shared memory nor typed contents.
fn request_tensors(r: &mut ModelInferRequest) -> Result<Vec<RequestTensor>, ProtocolError> {
    let mut raw = std::mem::take(&mut r.raw_input_contents).into_iter();
    let given_raw = raw.len();
    let mut tensors = Vec::with_capacity(r.inputs.len());
    for (i, t) in std::mem::take(&mut r.inputs).into_iter().enumerate() {
        let field = format!("inputs[{i}] {:?}", t.name);
        let contents = if let Some((region, offset, byte_size)) = shm_ref(&t.parameters, &field)? {
            Contents::Shm { region, offset, byte_size }
        } else if let Some(c) = t.contents {
            typed_contents(c)
        } else if let Some(b) = raw.next() {
            Contents::Raw(b)
        } else {
            return Err(ProtocolError::invalid(format!(
                "{field}: no data (raw_input_contents has {given_raw} entries for {} inputs without shared memory or contents)",
                i + 1
            )));
        };
        tensors.push(RequestTensor { name: t.name, datatype: t.datatype, shape: t.shape, contents });
    }
    if raw.next().is_some() {
        return Err(ProtocolError::invalid(format!(
            "raw_input_contents has {given_raw} entries, more than the inputs that take raw data"
        )));
    }
    Ok(tensors)
}

fn to_param(p: Param) -> InferParameter {
    let choice = match p {
        Param::Int(i) => ParameterChoice::Int64Param(i),
        Param::Bool(b) => ParameterChoice::BoolParam(b),
    };
    InferParameter { parameter_choice: Some(choice) }
}

fn dims_i64(dims: &[Option<usize>]) -> Vec<i64> {
    dims.iter().map(|d| d.map_or(-1, |v| v as i64)).collect()
}

/// Checks a request's outputs and decodes its inputs for `model` (takes the tensors out of `r`).
pub(crate) fn decode_request(
    model: &crate::ModelInfo,
    r: &mut ModelInferRequest,
    shm: &crate::shm::Registry,
    limits: &crate::Limits,
) -> Result<(lalarand_runtime::serve::Input, Vec<RequestedOutput>), ProtocolError> {
    let requested = r
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let field = format!("outputs[{i}] {:?}", o.name);
            Ok(RequestedOutput { name: o.name.clone(), shm: shm_ref(&o.parameters, &field)?, binary: None })
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    codec::check_outputs(model, &requested, shm)?;
    let tensors = request_tensors(r)?;
    let input = codec::decode_input(model, tensors, shm, limits)?;
    Ok((input, requested))
}

impl Service {
    async fn infer(&self, mut r: ModelInferRequest) -> Result<ModelInferResponse, ProtocolError> {
        let state = &*self.state;
        let model = state.model(&r.model_name, &r.model_version)?;
        let model = &*model;
        let (input, requested) = decode_request(model, &mut r, &state.shm, &state.limits)?;
        let result = state.run_job(&model.name, input).await?;
        let parameters =
            codec::timing_parameters(&result).into_iter().map(|(k, v)| (k.to_string(), to_param(v))).collect();
        let outputs = codec::encode_outputs(model, result, &requested, &state.shm)?;
        let mut tensors = Vec::with_capacity(outputs.len());
        let mut raw = Vec::with_capacity(outputs.len());
        for o in outputs {
            let mut p = HashMap::new();
            if let Some((region, offset, size)) = &o.shm {
                p.insert(
                    "shared_memory_region".into(),
                    InferParameter { parameter_choice: Some(ParameterChoice::StringParam(region.clone())) },
                );
                p.insert("shared_memory_offset".into(), to_param(Param::Int(*offset as i64)));
                p.insert("shared_memory_byte_size".into(), to_param(Param::Int(*size as i64)));
            }
            tensors.push(model_infer_response::InferOutputTensor {
                name: o.name.clone(),
                datatype: o.dtype.protocol_name().into(),
                shape: o.dims.iter().map(|&d| d as i64).collect(),
                parameters: p,
                contents: None,
            });
            // One entry per output, in order (tritonclient indexes them by position); empty
            // for an output written to shared memory.
            raw.push(if o.shm.is_some() { Bytes::new() } else { o.into_bytes() });
        }
        Ok(ModelInferResponse {
            model_name: model.name.clone(),
            model_version: "1".into(),
            id: r.id,
            parameters,
            outputs: tensors,
            raw_output_contents: raw,
        })
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Reply<ServerLiveResponse> {
        ok(ServerLiveResponse { live: true })
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Reply<ServerReadyResponse> {
        ok(ServerReadyResponse { ready: !self.state.backend.is_stopped() })
    }

    async fn model_ready(&self, r: Request<ModelReadyRequest>) -> Reply<ModelReadyResponse> {
        let r = r.into_inner();
        ok(ModelReadyResponse { ready: self.state.ready(&r.name, &r.version) })
    }

    async fn server_metadata(&self, _: Request<ServerMetadataRequest>) -> Reply<ServerMetadataResponse> {
        ok(ServerMetadataResponse {
            name: "lalarand".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        })
    }

    async fn model_metadata(&self, r: Request<ModelMetadataRequest>) -> Reply<ModelMetadataResponse> {
        let r = r.into_inner();
        let m = self.state.model(&r.name, &r.version).map_err(status)?;
        let meta = |name: &str, dtype: &str, shape: Vec<i64>| model_metadata_response::TensorMetadata {
            name: name.into(),
            datatype: dtype.into(),
            shape,
        };
        let inputs = match &m.inputs.tensors {
            Some(ts) => ts.iter().map(|t| meta(&t.name, t.dtype.protocol_name(), dims_i64(&t.dims))).collect(),
            None => vec![meta("input", "FP32", vec![-1])],
        };
        let outputs = m.outputs.iter().map(|t| meta(&t.name, t.dtype.protocol_name(), dims_i64(&t.dims))).collect();
        ok(ModelMetadataResponse {
            name: m.name.clone(),
            versions: vec!["1".into()],
            platform: "lalarand".into(),
            inputs,
            outputs,
        })
    }

    async fn model_infer(&self, r: Request<ModelInferRequest>) -> Reply<ModelInferResponse> {
        self.infer(r.into_inner()).await.map(Response::new).map_err(status)
    }

    async fn model_statistics(&self, r: Request<ModelStatisticsRequest>) -> Reply<ModelStatisticsResponse> {
        let r = r.into_inner();
        let stats = crate::metrics::model_statistics(&self.state, &r.name, &r.version).map_err(status)?;
        let dur = |count: u64, ns: u64| Some(StatisticDuration { count, ns });
        let model_stats = stats
            .into_iter()
            .map(|s| ModelStatistics {
                name: s.name,
                version: "1".into(),
                last_inference: s.last_inference_ms,
                inference_count: s.success,
                execution_count: s.success,
                inference_stats: Some(InferStatistics {
                    success: dur(s.success, s.success_ns),
                    fail: dur(s.fail, 0),
                    queue: dur(0, 0),
                    compute_input: dur(0, 0),
                    compute_infer: dur(0, 0),
                    compute_output: dur(0, 0),
                }),
            })
            .collect();
        ok(ModelStatisticsResponse { model_stats })
    }

    async fn system_shared_memory_status(
        &self,
        r: Request<SystemSharedMemoryStatusRequest>,
    ) -> Reply<SystemSharedMemoryStatusResponse> {
        let regions = self.state.shm.status(&r.into_inner().name).map_err(status)?;
        let regions = regions
            .into_iter()
            .map(|g| {
                let s = system_shared_memory_status_response::RegionStatus {
                    name: g.name.clone(),
                    key: g.key.clone(),
                    offset: g.offset,
                    byte_size: g.byte_size,
                };
                (g.name, s)
            })
            .collect();
        ok(SystemSharedMemoryStatusResponse { regions })
    }

    async fn system_shared_memory_register(
        &self,
        r: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Reply<SystemSharedMemoryRegisterResponse> {
        let r = r.into_inner();
        self.state.shm.register(&r.name, &r.key, r.offset, r.byte_size).map_err(status)?;
        ok(SystemSharedMemoryRegisterResponse {})
    }

    async fn system_shared_memory_unregister(
        &self,
        r: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Reply<SystemSharedMemoryUnregisterResponse> {
        self.state.shm.unregister(&r.into_inner().name);
        ok(SystemSharedMemoryUnregisterResponse {})
    }

    async fn repository_index(&self, _: Request<RepositoryIndexRequest>) -> Reply<RepositoryIndexResponse> {
        let catalog = self.state.catalog();
        let models = catalog
            .models
            .iter()
            .map(|m| repository_index_response::ModelIndex {
                name: m.name.clone(),
                version: "1".into(),
                state: "READY".into(),
                reason: String::new(),
            })
            .collect();
        ok(RepositoryIndexResponse { models })
    }

    async fn repository_model_load(
        &self,
        r: Request<RepositoryModelLoadRequest>,
    ) -> Reply<RepositoryModelLoadResponse> {
        let r = r.into_inner();
        self.state.repository().map_err(status)?;
        let parameters = repository_parameters(r.parameters).map_err(status)?;
        let parameters = crate::LoadParameters::from_json(&parameters)
            .map_err(|e| status(ProtocolError::new(e.code, format!("load of model {:?}: {e}", r.model_name))))?;
        self.state.change_model(&r.model_name, Some(parameters)).await.map_err(status)?;
        ok(RepositoryModelLoadResponse {})
    }

    async fn repository_model_unload(
        &self,
        r: Request<RepositoryModelUnloadRequest>,
    ) -> Reply<RepositoryModelUnloadResponse> {
        let r = r.into_inner();
        self.state.change_model(&r.model_name, None).await.map_err(status)?;
        ok(RepositoryModelUnloadResponse {})
    }
}

/// A load's parameters as JSON values (what [`crate::LoadParameters::from_json`] reads).
fn repository_parameters(
    p: HashMap<String, ModelRepositoryParameter>,
) -> Result<serde_json::Map<String, serde_json::Value>, ProtocolError> {
    use model_repository_parameter::ParameterChoice as P;
    p.into_iter()
        .map(|(k, v)| {
            if let Some(e) = crate::repository::file_parameter(&k) {
                return Err(e);
            }
            let v = match v.parameter_choice {
                Some(P::BoolParam(b)) => serde_json::Value::from(b),
                Some(P::Int64Param(i)) => serde_json::Value::from(i),
                Some(P::StringParam(s)) => serde_json::Value::from(s),
                Some(P::BytesParam(b)) => serde_json::Value::from(
                    String::from_utf8(b.to_vec())
                        .map_err(|_| ProtocolError::invalid(format!("parameters.{k}: bytes that are not UTF-8")))?,
                ),
                None => return Err(ProtocolError::invalid(format!("parameters.{k}: no value"))),
            };
            Ok((k, v))
        })
        .collect()
}

/// The bearer-token check in front of every method.
#[derive(Clone)]
pub(crate) struct TokenCheck(Arc<State>);

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").map(|v| v.as_bytes());
        if self.0.auth.check(header) {
            Ok(req)
        } else {
            Err(ProtocolError::new(
                Code::Unauthenticated,
                "missing or wrong bearer token (authorization: Bearer TOKEN)",
            )
            .grpc_status())
        }
    }
}

/// The service with its size limit, behind the bearer-token check.
pub(crate) fn service(state: Arc<State>) -> InterceptedService<GrpcInferenceServiceServer<Service>, TokenCheck> {
    let limit = state.limits.max_request_bytes;
    let check = TokenCheck(state.clone());
    let server = GrpcInferenceServiceServer::new(Service { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    InterceptedService::new(server, check)
}

async fn until_stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) async fn serve_tcp(state: Arc<State>, listener: tokio::net::TcpListener, stop: watch::Receiver<bool>) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        if let Ok(s) = &s {
            let _ = s.set_nodelay(true);
        }
        s
    });
    let r = tonic::transport::Server::builder()
        .add_service(service(state))
        .serve_with_incoming_shutdown(incoming, until_stopped(stop))
        .await;
    if let Err(e) = r {
        tracing::error!("gRPC endpoint: {e}");
    }
}

pub(crate) async fn serve_unix(state: Arc<State>, listener: tokio::net::UnixListener, stop: watch::Receiver<bool>) {
    // grpc-core sends the socket's path as the authority, which hyper refuses: see `authority`.
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
        .map(|s| s.map(crate::authority::AuthorityRewrite::new));
    let r = tonic::transport::Server::builder()
        .add_service(service(state))
        .serve_with_incoming_shutdown(incoming, until_stopped(stop))
        .await;
    if let Err(e) = r {
        tracing::error!("gRPC endpoint: {e}");
    }
}
