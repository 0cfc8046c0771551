//! Moving fp32 data in and out of ONNX Runtime values.

use crate::error::{EngineError, OrtContext, Result};
use lalarand_onnx::partition::TensorInfo;
use ort::value::{DynValue, Tensor};

/// An owned fp32 tensor (one copy of `data`, into ONNX Runtime's memory).
pub fn f32_value(dims: &[usize], data: Vec<f32>) -> Result<DynValue> {
    let n: usize = dims.iter().product();
    if n != data.len() {
        return Err(EngineError::tensor(
            "building an input",
            "(input)",
            format!("{} values for shape {dims:?}", data.len()),
        ));
    }
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_array((shape, data)).ctx(|| "creating an fp32 tensor".into())?.into_dyn())
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
