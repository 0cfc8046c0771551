//! Moving data in and out of ONNX Runtime values: fp32, and the integer and bool element types
//! a model's inputs and outputs may declare.

use crate::error::{EngineError, OrtContext, Result};
use lalarand_onnx::partition::TensorInfo;
use ort::value::{DynValue, Tensor};

/// An owned fp32 tensor (one copy of `data`, into ONNX Runtime's memory).
pub fn f32_value(dims: &[usize], data: Vec<f32>) -> Result<DynValue> {
    let shape = shape_of(dims, data.len())?;
    Ok(Tensor::from_array((shape, data)).ctx(|| "creating an fp32 tensor".into())?.into_dyn())
}

/// ONNX Runtime's shape for `dims`, once `values` is checked to fill it.
fn shape_of(dims: &[usize], values: usize) -> Result<Vec<i64>> {
    if dims.iter().product::<usize>() != values {
        return Err(EngineError::tensor("building an input", "(input)", format!("{values} values for shape {dims:?}")));
    }
    Ok(dims.iter().map(|&d| d as i64).collect())
}

/// ONNX element type numbers (`TensorProto.DataType`; ONNX Runtime numbers them the same).
pub mod elem {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;

    /// The ONNX name of an element type (`float`, `int64`, ...), for messages.
    pub fn name(t: i32) -> String {
        use lalarand_onnx::proto::tensor_proto::DataType;
        DataType::try_from(t).map_or_else(|_| format!("element type {t}"), |d| d.as_str_name().to_lowercase())
    }
}

/// A value of element type `elem_type` (an input's declared type) made from fp32 `data`:
/// integers are truncated toward zero, bool is `x >= 0.5` (so synthetic inputs in [0, 1) are
/// index 0 and a half-true mask).
pub fn typed_value(elem_type: i32, dims: &[usize], data: Vec<f32>) -> Result<DynValue> {
    let shape = shape_of(dims, data.len())?;
    let what = || format!("creating an {} tensor", elem::name(elem_type));
    Ok(match elem_type {
        elem::FLOAT => return f32_value(dims, data),
        elem::DOUBLE => {
            Tensor::from_array((shape, data.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        elem::INT64 => {
            Tensor::from_array((shape, data.iter().map(|&x| x as i64).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        elem::INT32 => {
            Tensor::from_array((shape, data.iter().map(|&x| x as i32).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        elem::INT8 => {
            Tensor::from_array((shape, data.iter().map(|&x| x as i8).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        elem::UINT8 => {
            Tensor::from_array((shape, data.iter().map(|&x| x as u8).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        elem::BOOL => {
            Tensor::from_array((shape, data.iter().map(|&x| x >= 0.5).collect::<Vec<_>>())).ctx(what)?.into_dyn()
        }
        other => {
            return Err(EngineError::tensor(
                "building an input",
                "(input)",
                format!(
                    "inputs of {} are not supported (float, double, int64, int32, int8, uint8 and bool are)",
                    elem::name(other)
                ),
            ))
        }
    })
}

/// Zeros (false) of element type `elem_type`.
pub fn zeros_value(elem_type: i32, dims: &[usize]) -> Result<DynValue> {
    typed_value(elem_type, dims, vec![0.0; dims.iter().product()])
}

/// A value of element type `elem_type` from its little-endian bytes (one copy).
pub fn value_from_bytes(elem_type: i32, dims: &[usize], bytes: &[u8]) -> Result<DynValue> {
    fn of<T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static, const N: usize>(
        shape: Vec<i64>,
        bytes: &[u8],
        from: fn([u8; N]) -> T,
    ) -> std::result::Result<DynValue, ort::Error> {
        let data: Vec<T> = bytes.chunks_exact(N).map(|c| from(c.try_into().expect("N bytes"))).collect();
        Ok(Tensor::from_array((shape, data))?.into_dyn())
    }
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let size = match elem_type {
        elem::FLOAT | elem::INT32 => 4,
        elem::INT64 | elem::DOUBLE => 8,
        elem::INT8 | elem::UINT8 | elem::BOOL => 1,
        other => {
            return Err(EngineError::tensor(
                "building an input",
                "(input)",
                format!("inputs of {} are not supported", elem::name(other)),
            ))
        }
    };
    let n: usize = dims.iter().product();
    if bytes.len() != n * size {
        return Err(EngineError::tensor(
            "building an input",
            "(input)",
            format!("{} bytes for shape {dims:?} of {} ({} bytes)", bytes.len(), elem::name(elem_type), n * size),
        ));
    }
    let what = || format!("creating an {} tensor", elem::name(elem_type));
    match elem_type {
        elem::FLOAT => of(shape, bytes, f32::from_le_bytes),
        elem::DOUBLE => of(shape, bytes, f64::from_le_bytes),
        elem::INT64 => of(shape, bytes, i64::from_le_bytes),
        elem::INT32 => of(shape, bytes, i32::from_le_bytes),
        elem::INT8 => of(shape, bytes, i8::from_le_bytes),
        elem::UINT8 => of(shape, bytes, u8::from_le_bytes),
        _ => of(shape, bytes, |[b]: [u8; 1]| b != 0),
    }
    .ctx(what)
}

/// The shape and values of a value of any numeric or bool element type, as fp32 (integers
/// beyond 2^24 lose precision; bool is 0 or 1). No conversion, only a copy, for fp32.
pub fn f32_values(value: &DynValue, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    fn conv<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        value: &DynValue,
        f: fn(T) -> f32,
    ) -> Option<(Vec<usize>, Vec<f32>)> {
        let (shape, data) = value.try_extract_tensor::<T>().ok()?;
        Some((shape.iter().map(|&d| d.max(0) as usize).collect(), data.iter().map(|&x| f(x)).collect()))
    }
    let elem_type = info_of(value).map_or(0, |i| i.elem_type);
    let got = match elem_type {
        elem::FLOAT => conv::<f32>(value, |x| x),
        elem::DOUBLE => conv::<f64>(value, |x| x as f32),
        elem::INT64 => conv::<i64>(value, |x| x as f32),
        elem::INT32 => conv::<i32>(value, |x| x as f32),
        elem::INT8 => conv::<i8>(value, f32::from),
        elem::UINT8 => conv::<u8>(value, f32::from),
        elem::BOOL => conv::<bool>(value, |x| f32::from(u8::from(x))),
        _ => None,
    };
    got.ok_or_else(|| {
        EngineError::tensor(
            "reading a result",
            name,
            format!("{} values cannot be read as numbers", elem::name(elem_type)),
        )
    })
}

/// The shape and values of an fp32 value.
pub fn f32_data<'a>(value: &'a DynValue, name: &str) -> Result<(Vec<usize>, &'a [f32])> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| EngineError::tensor("reading a result", name, format!("not an fp32 tensor: {e}")))?;
    Ok((shape.iter().map(|&d| d.max(0) as usize).collect(), data))
}

/// Element type (ONNX numbering) and dims of a value.
pub fn info_of(value: &DynValue) -> Option<TensorInfo> {
    let ty = value.dtype();
    let elem = ty.tensor_type()?;
    let elem_type = ort::sys::ONNXTensorElementDataType::from(elem) as i32;
    Some(TensorInfo { elem_type, dims: ty.tensor_shape()?.iter().map(|&d| Some(d)).collect() })
}

/// Largest absolute difference of two equally long slices, and the largest |a|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let scale = a.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    (diff, scale)
}

/// Index of the largest value of each row of a `[rows, cols]` block.
pub fn argmax_rows(data: &[f32], cols: usize) -> Vec<usize> {
    data.chunks(cols.max(1))
        .map(|r| r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_and_diff() {
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.0, 3.0, -1.0, 2.0], 3), [1, 0]);
        assert_eq!(max_abs_diff(&[1.0, -4.0], &[1.5, -4.0]), (0.5, 4.0));
    }
}
