//! A model cut into stage models ([`model`]), and a pipeline that runs them in sequence
//! ([`pipeline`]).

pub mod model;
pub mod pipeline;

pub use model::StagedModel;
pub use pipeline::{Pipeline, StageTensors};
