//! The network front end over real sockets: gRPC and HTTP infer with the job's timing,
//! metadata, health, statistics, shared memory, metrics, security, and every bad input.

mod bad_input;
mod common;
mod grpc;
mod http;
mod mnist;
mod repository;
mod security;
mod shm;
mod shm_region;
