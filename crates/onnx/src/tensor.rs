//! Building and reading `TensorProto`s.

use crate::proto::tensor_proto::DataType;
use crate::proto::TensorProto;
use crate::OnnxError;

/// A float32 tensor. Data goes to `raw_data` (little-endian), as exporters write it.
pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    debug_assert_eq!(element_count(dims), data.len() as u64, "tensor {name}");
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_tensor(name, DataType::Float, dims, raw)
}

/// An int64 tensor (shapes, axes).
pub fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    raw_tensor(name, DataType::Int64, dims, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An int32 tensor (quantized biases).
pub fn i32_tensor(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    raw_tensor(name, DataType::Int32, dims, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An int8 tensor (quantized weights, zero points).
pub fn i8_tensor(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    raw_tensor(name, DataType::Int8, dims, data.iter().map(|&v| v as u8).collect())
}

/// A uint8 tensor (activation zero points).
pub fn u8_tensor(name: &str, dims: &[i64], data: &[u8]) -> TensorProto {
    raw_tensor(name, DataType::Uint8, dims, data.to_vec())
}

fn raw_tensor(name: &str, data_type: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// Number of elements of a tensor of shape `dims` (1 for a scalar).
pub fn element_count(dims: &[i64]) -> u64 {
    dims.iter().map(|&d| d.max(0) as u64).product()
}

/// The values of a float32 tensor, from `raw_data` or `float_data`.
pub fn to_f32(t: &TensorProto) -> Result<Vec<f32>, OnnxError> {
    let name = t.name();
    if t.data_type != Some(DataType::Float as i32) {
        return Err(OnnxError::tensor(name, format!("data type {} is not float32", t.data_type())));
    }
    if t.data_location == Some(crate::proto::tensor_proto::DataLocation::External as i32) {
        return Err(OnnxError::tensor(
            name,
            "data is stored externally; fix: re-save the model with its weights inline",
        ));
    }
    let n = element_count(&t.dims) as usize;
    let values: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => {
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        _ => t.float_data.clone(),
    };
    if values.len() != n {
        return Err(OnnxError::tensor(
            name,
            format!("holds {} values but its shape {:?} needs {n}", values.len(), t.dims),
        ));
    }
    Ok(values)
}

/// The values of an int64 tensor, from `raw_data` or `int64_data`.
pub fn to_i64(t: &TensorProto) -> Result<Vec<i64>, OnnxError> {
    if t.data_type != Some(DataType::Int64 as i32) {
        return Err(OnnxError::tensor(t.name(), format!("data type {} is not int64", t.data_type())));
    }
    Ok(match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.int64_data.is_empty() => {
            raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8"))).collect()
        }
        _ => t.int64_data.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip_through_raw_and_float_data() {
        let t = f32_tensor("w", &[2, 2], &[1.0, -2.5, 3.25, 0.0]);
        assert_eq!(to_f32(&t).unwrap(), vec![1.0, -2.5, 3.25, 0.0]);
        let typed = TensorProto {
            name: Some("w".into()),
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 2.0, 3.0],
            ..Default::default()
        };
        assert_eq!(to_f32(&typed).unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn wrong_length_or_type_is_an_error() {
        let mut t = f32_tensor("w", &[2], &[1.0, 2.0]);
        t.dims = vec![3];
        assert!(to_f32(&t).unwrap_err().to_string().contains("`w`"));
        assert!(to_f32(&i64_tensor("s", &[1], &[4])).is_err());
        assert_eq!(to_i64(&i64_tensor("s", &[2], &[4, -1])).unwrap(), vec![4, -1]);
    }
}
