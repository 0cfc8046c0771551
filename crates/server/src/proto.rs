//! The generated types and gRPC service of `proto/inference.proto` (built by build.rs with
//! protox, no system protoc).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("inference");
