//! Reading and writing `.onnx` files.

use std::path::Path;

use prost::Message;

use crate::proto::ModelProto;
use crate::OnnxError;

/// Reads and checks an ONNX model. Any byte string that is not a protobuf `ModelProto` with a
/// graph is reported as [`OnnxError::NotAModel`] naming `path`.
pub fn load_model(path: impl AsRef<Path>) -> Result<ModelProto, OnnxError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Read { path: path.to_path_buf(), source })?;
    decode_model(&bytes).map_err(|reason| OnnxError::NotAModel { path: path.to_path_buf(), reason })
}

/// Decodes a model from memory; the error says why the bytes are not an ONNX model.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, String> {
    let model = ModelProto::decode(bytes).map_err(|e| {
        let text = e.to_string();
        // What prost says when the bytes stop inside a field: the tail of the file is missing.
        if ["buffer underflow", "invalid varint", "unexpected end"].iter().any(|m| text.contains(m)) {
            format!(
                "protobuf decoding failed ({text}): its {} bytes end inside a field, as a file cut short does (an interrupted download or copy)",
                bytes.len()
            )
        } else {
            format!("protobuf decoding failed ({text})")
        }
    })?;
    // Protobuf accepts many byte strings (the empty one included) as a message with every field
    // absent, so require what every exporter writes.
    if model.ir_version.is_none() {
        return Err("no ir_version field".into());
    }
    let Some(graph) = &model.graph else { return Err("no graph".into()) };
    if graph.node.is_empty() {
        return Err("the graph has no nodes".into());
    }
    Ok(model)
}

/// Encodes a model to bytes.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes a model to `path`, replacing any file there.
pub fn save_model(model: &ModelProto, path: impl AsRef<Path>) -> Result<(), OnnxError> {
    let path = path.as_ref();
    std::fs::write(path, encode_model(model)).map_err(|source| OnnxError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::proto::tensor_proto::DataType;
    use proptest::prelude::*;

    fn tiny() -> ModelProto {
        let mut b = GraphBuilder::new("tiny");
        b.input("x", DataType::Float, &[1, 4]);
        b.node("Relu", "relu", &["x"], &["y"], vec![]);
        b.output("y", DataType::Float, &[1, 4]);
        b.finish()
    }

    #[test]
    fn a_file_cut_short_is_called_so() {
        let bytes = encode_model(&tiny());
        let reason = decode_model(&bytes[..bytes.len() - 2]).unwrap_err();
        assert!(reason.contains("cut short") && reason.contains(&format!("its {} bytes", bytes.len() - 2)), "{reason}");
        assert!(!decode_model(b"these are not weights").unwrap_err().contains("cut short"));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.onnx");
        let model = tiny();
        save_model(&model, &path).unwrap();
        assert_eq!(load_model(&path).unwrap(), model);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load_model("/nonexistent/dir/m.onnx").unwrap_err();
        assert!(matches!(err, OnnxError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/dir/m.onnx"), "{err}");
    }

    #[test]
    fn garbage_file_is_not_a_model() {
        let dir = tempfile::tempdir().unwrap();
        for (i, bytes) in [&b""[..], b"hello, world", b"\xff\xff\xff\xff"].iter().enumerate() {
            let path = dir.path().join(format!("g{i}.onnx"));
            std::fs::write(&path, bytes).unwrap();
            let err = load_model(&path).unwrap_err();
            assert!(matches!(err, OnnxError::NotAModel { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("not an ONNX model") && msg.contains(&format!("g{i}.onnx")), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_model(&bytes);
        }

        #[test]
        fn truncated_models_are_rejected_or_decoded(cut in 0usize..200) {
            let bytes = encode_model(&tiny());
            let cut = cut.min(bytes.len() - 1);
            // A strict prefix loses data: it must never decode to the whole model.
            prop_assert_ne!(decode_model(&bytes[..cut]).ok(), Some(tiny()));
        }
    }
}
