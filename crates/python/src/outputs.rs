//! A job's output tensors as numpy arrays of the datatype the model declares: an int64 class
//! index or a bool mask reaches Python as int64 or bool, exactly, as it does over the protocol.

use lalarand_runtime::serve::{DataType, HostTensor};
use numpy::{Element, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

/// `t` as a numpy array of its own dtype and shape. The element vector becomes the array's
/// memory (no second copy).
pub(crate) fn output_array(py: Python<'_>, t: HostTensor) -> PyResult<Bound<'_, PyAny>> {
    match t.dtype {
        DataType::Fp32 => shaped(py, t.data, t.dims),
        DataType::Int64 => shaped(py, little_endian(&t.raw, i64::from_le_bytes), t.dims),
        DataType::Int32 => shaped(py, little_endian(&t.raw, i32::from_le_bytes), t.dims),
        DataType::Uint8 => shaped(py, t.raw, t.dims),
        DataType::Bool => shaped(py, t.raw.iter().map(|&b| b != 0).collect(), t.dims),
    }
}

fn shaped<T: Element>(py: Python<'_>, elements: Vec<T>, dims: Vec<usize>) -> PyResult<Bound<'_, PyAny>> {
    Ok(PyArray1::from_vec(py, elements).reshape(dims)?.into_any())
}

fn little_endian<T, const N: usize>(raw: &[u8], read: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N).map(|c| read(c.try_into().expect("chunks_exact gives N bytes"))).collect()
}
