//! From protocol tensors to the runtime's [`Input`] and from a [`JobResult`] back, shared by
//! gRPC and HTTP. Every limit is checked before anything is allocated for the tensor: the
//! datatype, the shape against the model's declared input (so the element count too), the
//! element count against [`Limits::max_elements`], then the bytes given against the shape.
//! FP32 contents that arrive 4-byte aligned (and shared memory) are handed to the executor in
//! place; unaligned ones are copied once.

use crate::catalog::ModelInfo;
use crate::error::ProtocolError;
use crate::frontend::Limits;
use crate::shm::{self, Registry};
use bytes::Bytes;
use lalarand_runtime::serve::{ByteBuffer, DataType, Input, InputBuffer, JobResult, Tensor, TensorData, TensorSpec};
use std::sync::Arc;

/// Where a request tensor's elements are.
#[derive(Debug, Clone)]
pub enum Contents {
    /// Little-endian bytes (gRPC `raw_input_contents`, HTTP binary tensor data).
    Raw(Bytes),
    /// In a registered shared-memory region.
    Shm {
        region: String,
        offset: u64,
        byte_size: u64,
    },
    /// Typed values (gRPC `contents`).
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Uint(Vec<u32>),
    Bool(Vec<bool>),
    /// HTTP JSON `data` (nested or flat).
    Json(serde_json::Value),
}

/// One input tensor of a request, not yet checked.
#[derive(Debug, Clone)]
pub struct RequestTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub contents: Contents,
}

/// One output a request asks for, and where it goes.
#[derive(Debug, Clone, Default)]
pub struct RequestedOutput {
    pub name: String,
    /// Into this region (name, offset, byte_size) instead of the response.
    pub shm: Option<(String, u64, u64)>,
    /// HTTP: as binary data after the JSON header (else JSON `data`).
    pub binary: Option<bool>,
}

/// An output of a finished job, ready to encode.
#[derive(Debug, Clone)]
pub struct OutputTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
    /// The output's own datatype; for any but FP32 its elements are `raw`
    /// (`lalarand_runtime::serve::HostTensor::raw`).
    pub dtype: DataType,
    pub raw: Vec<u8>,
    /// Written into shared memory (name, offset, bytes written): no data in the response.
    pub shm: Option<(String, u64, u64)>,
    pub binary: Option<bool>,
}

impl OutputTensor {
    /// A job's output `t` as the response sends it (not in shared memory), `binary` as asked.
    fn from_host(t: lalarand_runtime::serve::HostTensor, binary: Option<bool>) -> Self {
        Self { name: t.name, dims: t.dims, data: t.data, dtype: t.dtype, raw: t.raw, shm: None, binary }
    }

    /// The elements as little-endian bytes, without copying.
    pub fn bytes(&self) -> &[u8] {
        match self.dtype {
            DataType::Fp32 => f32_bytes(&self.data),
            _ => &self.raw,
        }
    }

    /// The elements as little-endian bytes that own the values (no copy).
    pub fn into_bytes(self) -> Bytes {
        match self.dtype {
            DataType::Fp32 => Bytes::from_owner(F32Bytes(self.data)),
            _ => Bytes::from(self.raw),
        }
    }

    /// The elements as JSON numbers (bool as true/false), in the output's own datatype.
    pub fn json_data(&self) -> serde_json::Value {
        let le = |n: usize| self.raw.chunks_exact(n);
        match self.dtype {
            DataType::Fp32 => serde_json::json!(self.data),
            DataType::Int64 => {
                serde_json::json!(le(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect::<Vec<_>>())
            }
            DataType::Int32 => {
                serde_json::json!(le(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect::<Vec<_>>())
            }
            DataType::Uint8 => serde_json::json!(self.raw),
            DataType::Bool => serde_json::json!(self.raw.iter().map(|&b| b != 0).collect::<Vec<_>>()),
        }
    }
}

struct F32Bytes(Vec<f32>);

impl AsRef<[u8]> for F32Bytes {
    fn as_ref(&self) -> &[u8] {
        f32_bytes(&self.0)
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding; u8 has alignment 1; x86-64 and aarch64 are little-endian,
    // which is what the protocol's raw contents are (checked at compile time below).
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

#[cfg(target_endian = "big")]
compile_error!("the protocol's raw tensor contents are little-endian; this front end reads them in place");

/// Received bytes read as fp32 in place (4-byte aligned).
struct AlignedF32(Bytes);

impl InputBuffer for AlignedF32 {
    fn as_f32(&self) -> &[f32] {
        // SAFETY: built only when aligned and a multiple of 4 bytes (see `f32_tensor`);
        // `Bytes` never moves its contents.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<f32>(), self.0.len() / 4) }
    }
}

struct RawBytes(Bytes);

impl ByteBuffer for RawBytes {
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn supported() -> String {
    DataType::ALL.iter().map(|d| d.protocol_name()).collect::<Vec<_>>().join(", ")
}

/// The checked dims and datatype of `t` for `model`, before any of its data is touched.
fn check_header(
    model: &ModelInfo,
    t: &RequestTensor,
    limits: &Limits,
) -> Result<(DataType, Vec<usize>), ProtocolError> {
    let at = |problem: String| ProtocolError::invalid(format!("model {:?}: input {:?}: {problem}", model.name, t.name));
    let dtype = DataType::from_protocol_name(&t.datatype)
        .ok_or_else(|| at(format!("datatype {:?} is not supported (supported: {})", t.datatype, supported())))?;
    let mut dims = Vec::with_capacity(t.shape.len().min(16));
    let mut elements = 1usize;
    for &d in &t.shape {
        let d = usize::try_from(d).map_err(|_| at(format!("shape {:?} has a negative dimension", t.shape)))?;
        elements = elements
            .checked_mul(d)
            .filter(|&n| n <= limits.max_elements)
            .ok_or_else(|| at(format!("shape {:?} exceeds the limit of {} elements", t.shape, limits.max_elements)))?;
        dims.push(d);
    }
    if let Some(specs) = &model.inputs.tensors {
        let spec = model.input(&t.name).ok_or_else(|| {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            ProtocolError::invalid(format!(
                "model {:?} has no input {:?} (inputs: {})",
                model.name,
                t.name,
                names.join(", ")
            ))
        })?;
        check_against(spec, dtype, &dims).map_err(at)?;
    }
    Ok((dtype, dims))
}

fn check_against(spec: &TensorSpec, dtype: DataType, dims: &[usize]) -> Result<(), String> {
    if dtype != spec.dtype {
        return Err(format!("datatype {dtype}, the model takes {}", spec.dtype));
    }
    let fits = dims.len() == spec.dims.len() && dims.iter().zip(&spec.dims).all(|(&d, w)| w.is_none_or(|w| w == d));
    if !fits {
        return Err(format!("shape {dims:?}, the model takes {} ({})", spec.shape_text(), spec.dtype));
    }
    Ok(())
}

/// Checks every tensor and builds the job's input. `tensors` must name each declared input
/// once (busy-wait models take anything).
pub fn decode_input(
    model: &ModelInfo,
    tensors: Vec<RequestTensor>,
    shm: &Registry,
    limits: &Limits,
) -> Result<Input, ProtocolError> {
    if tensors.is_empty() {
        return Err(ProtocolError::invalid(format!("model {:?}: the request has no inputs", model.name)));
    }
    if let Some(specs) = &model.inputs.tensors {
        if let Some(missing) = specs.iter().find(|s| !tensors.iter().any(|t| t.name == s.name)) {
            return Err(ProtocolError::invalid(format!(
                "model {:?}: input {:?} is missing ({} {})",
                model.name,
                missing.name,
                missing.shape_text(),
                missing.dtype
            )));
        }
    }
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (dtype, dims) = check_header(model, &t, limits)?;
        let elements: usize = dims.iter().product();
        let at =
            |problem: String| ProtocolError::invalid(format!("model {:?}: input {:?}: {problem}", model.name, t.name));
        let bytes_needed = elements * dtype.size();
        let data = match t.contents {
            Contents::Raw(b) => {
                if b.len() != bytes_needed {
                    return Err(at(format!(
                        "{} bytes of data, shape {dims:?} of {dtype} takes {bytes_needed}",
                        b.len()
                    )));
                }
                raw_data(dtype, b)
            }
            Contents::Shm { region, offset, byte_size } => {
                if byte_size as usize != bytes_needed {
                    return Err(at(format!(
                        "shared_memory_byte_size {byte_size}, shape {dims:?} of {dtype} takes {bytes_needed}"
                    )));
                }
                let view = shm.get(&region)?.view(offset, byte_size)?;
                shm_data(dtype, view)
            }
            Contents::Json(v) => json_data(dtype, &v, elements).map_err(at)?,
            typed => typed_data(dtype, typed, elements).map_err(at)?,
        };
        out.push(Tensor::new(t.name.clone(), dims, data).map_err(at)?);
    }
    Input::named(out).map_err(|e| ProtocolError::invalid(format!("model {:?}: {e}", model.name)))
}

fn raw_data(dtype: DataType, b: Bytes) -> TensorData {
    match dtype {
        DataType::Fp32 if (b.as_ptr() as usize).is_multiple_of(4) => TensorData::F32(Arc::new(AlignedF32(b))),
        DataType::Fp32 => TensorData::F32(Arc::new(
            b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>(),
        )),
        d => TensorData::Bytes(d, Arc::new(RawBytes(b))),
    }
}

fn shm_data(dtype: DataType, view: shm::ShmView) -> TensorData {
    match dtype {
        DataType::Fp32 if view.is_f32_aligned() => TensorData::F32(Arc::new(view)),
        DataType::Fp32 => TensorData::F32(Arc::new(
            view.as_bytes().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>(),
        )),
        d => TensorData::Bytes(d, Arc::new(view)),
    }
}

fn count_err(given: usize, elements: usize) -> String {
    format!("{given} values, the shape takes {elements}")
}

fn typed_data(dtype: DataType, c: Contents, elements: usize) -> Result<TensorData, String> {
    let wrong = |field: &str| format!("datatype {dtype} with values in {field}");
    let bytes = |v: Vec<u8>| TensorData::Bytes(dtype, Arc::new(v));
    Ok(match (dtype, c) {
        (DataType::Fp32, Contents::Fp32(v)) if v.len() == elements => TensorData::F32(Arc::new(v)),
        (DataType::Int64, Contents::Int64(v)) if v.len() == elements => {
            bytes(v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        (DataType::Int32, Contents::Int32(v)) if v.len() == elements => {
            bytes(v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        (DataType::Uint8, Contents::Uint(v)) if v.len() == elements => bytes(
            v.iter().map(|&x| u8::try_from(x).map_err(|_| format!("{x} is not a UINT8"))).collect::<Result<_, _>>()?,
        ),
        (DataType::Bool, Contents::Bool(v)) if v.len() == elements => bytes(v.iter().map(|&x| x as u8).collect()),
        (_, Contents::Fp32(v)) if dtype == DataType::Fp32 => return Err(count_err(v.len(), elements)),
        (_, Contents::Int64(v)) if dtype == DataType::Int64 => return Err(count_err(v.len(), elements)),
        (_, Contents::Int32(v)) if dtype == DataType::Int32 => return Err(count_err(v.len(), elements)),
        (_, Contents::Uint(v)) if dtype == DataType::Uint8 => return Err(count_err(v.len(), elements)),
        (_, Contents::Bool(v)) if dtype == DataType::Bool => return Err(count_err(v.len(), elements)),
        (_, Contents::Fp32(_)) => return Err(wrong("fp32_contents")),
        (_, Contents::Int64(_)) => return Err(wrong("int64_contents")),
        (_, Contents::Int32(_)) => return Err(wrong("int_contents")),
        (_, Contents::Uint(_)) => return Err(wrong("uint_contents")),
        (_, Contents::Bool(_)) => return Err(wrong("bool_contents")),
        (_, Contents::Raw(_) | Contents::Shm { .. } | Contents::Json(_)) => unreachable!("handled by decode_input"),
    })
}

/// JSON `data`: flat or nested arrays of numbers (booleans for BOOL), exactly `elements` of them.
fn json_data(dtype: DataType, v: &serde_json::Value, elements: usize) -> Result<TensorData, String> {
    let mut leaves = Vec::with_capacity(elements);
    flatten(v, &mut leaves, elements, 0)?;
    if leaves.len() != elements {
        return Err(count_err(leaves.len(), elements));
    }
    let bad = |x: &serde_json::Value| format!("data value {x} is not a {dtype}");
    Ok(match dtype {
        DataType::Fp32 => TensorData::F32(Arc::new(
            leaves
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| bad(x)))
                .collect::<Result<Vec<f32>, _>>()?,
        )),
        DataType::Int64 => TensorData::Bytes(
            dtype,
            Arc::new(
                leaves
                    .iter()
                    .map(|x| x.as_i64().ok_or_else(|| bad(x)))
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
        ),
        DataType::Int32 => TensorData::Bytes(
            dtype,
            Arc::new(
                leaves
                    .iter()
                    .map(|x| x.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(|| bad(x)))
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
        ),
        DataType::Uint8 => TensorData::Bytes(
            dtype,
            Arc::new(
                leaves
                    .iter()
                    .map(|x| x.as_u64().and_then(|i| u8::try_from(i).ok()).ok_or_else(|| bad(x)))
                    .collect::<Result<Vec<u8>, _>>()?,
            ),
        ),
        DataType::Bool => TensorData::Bytes(
            dtype,
            Arc::new(
                leaves
                    .iter()
                    .map(|x| x.as_bool().map(u8::from).ok_or_else(|| bad(x)))
                    .collect::<Result<Vec<u8>, _>>()?,
            ),
        ),
    })
}

fn flatten<'a>(
    v: &'a serde_json::Value,
    out: &mut Vec<&'a serde_json::Value>,
    limit: usize,
    depth: usize,
) -> Result<(), String> {
    if depth > 32 {
        return Err("data is nested deeper than 32 levels".into());
    }
    match v {
        serde_json::Value::Array(items) => {
            for item in items {
                flatten(item, out, limit, depth + 1)?;
            }
        }
        leaf => {
            if out.len() == limit {
                return Err(format!("more values than the {limit} the shape takes"));
            }
            out.push(leaf);
        }
    }
    Ok(())
}

/// Checks the requested outputs before the job is released: names the model has (when it
/// declares its inputs, so its outputs are known) and registered shared-memory regions.
pub fn check_outputs(model: &ModelInfo, requested: &[RequestedOutput], shm: &Registry) -> Result<(), ProtocolError> {
    for r in requested {
        if model.inputs.tensors.is_some() && !model.outputs.iter().any(|o| o.name == r.name) {
            let names: Vec<&str> = model.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(ProtocolError::not_found(format!(
                "model {:?} has no output {:?} (outputs: {})",
                model.name,
                r.name,
                names.join(", ")
            )));
        }
        if let Some((region, offset, size)) = &r.shm {
            shm.get(region)?.view(*offset, *size)?;
        }
    }
    Ok(())
}

/// The job's outputs that were asked for (all when none were), those bound for shared memory
/// written there.
pub fn encode_outputs(
    model: &ModelInfo,
    result: JobResult,
    requested: &[RequestedOutput],
    shm: &Registry,
) -> Result<Vec<OutputTensor>, ProtocolError> {
    let mut outputs = Vec::new();
    let all = result.outputs;
    if requested.is_empty() {
        return Ok(all.into_iter().map(|t| OutputTensor::from_host(t, None)).collect());
    }
    let mut all: Vec<Option<_>> = all.into_iter().map(Some).collect();
    for r in requested {
        let t =
            all.iter_mut().find(|t| t.as_ref().is_some_and(|t| t.name == r.name)).and_then(Option::take).ok_or_else(
                || ProtocolError::not_found(format!("model {:?}: the job returned no output {:?}", model.name, r.name)),
            )?;
        let mut out = OutputTensor::from_host(t, r.binary);
        if let Some((region, offset, size)) = &r.shm {
            let bytes = out.bytes();
            if bytes.len() as u64 > *size {
                return Err(ProtocolError::invalid(format!(
                    "model {:?}: output {:?} is {} bytes, its shared_memory_byte_size is {size}",
                    model.name,
                    out.name,
                    bytes.len()
                )));
            }
            shm.get(region)?.write(*offset, bytes)?;
            out.shm = Some((region.clone(), *offset, bytes.len() as u64));
            out.data = Vec::new();
            out.raw = Vec::new();
        }
        outputs.push(out);
    }
    Ok(outputs)
}

/// A response parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Bool(bool),
}

/// The job's timing as the response's `parameters`: `job`, `release_ns`, `start_ns`,
/// `finish_ns`, `response_ns`, `deadline_ns`, `stalled_ns`, `bound_ns` (absent without a
/// bound), `deadline_met`. Times are ns since the server's time 0.
pub fn timing_parameters(r: &JobResult) -> Vec<(&'static str, Param)> {
    let t = &r.timing;
    let ns = |v: u64| Param::Int(i64::try_from(v).unwrap_or(i64::MAX));
    let mut p = vec![
        ("job", ns(r.job)),
        ("release_ns", ns(t.release)),
        ("start_ns", ns(t.start)),
        ("finish_ns", ns(t.finish)),
        ("response_ns", ns(t.response)),
        ("deadline_ns", ns(t.deadline)),
        ("stalled_ns", ns(t.stalled)),
    ];
    if let Some(b) = t.bound {
        p.push(("bound_ns", ns(b)));
    }
    p.push(("deadline_met", Param::Bool(t.met)));
    p
}
