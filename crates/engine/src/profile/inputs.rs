//! The inputs a model is profiled (and its int8 stages calibrated) with: loaded from a file,
//! or generated.

use super::raw_inputs::{load_image_folder, load_npy};
use crate::dataset::Dataset;
use crate::error::{EngineError, Result};
use crate::staged::StagedModel;
use lalarand_model::Mode;
use std::path::Path;

/// Reads a model's inputs (calibration, `verify --inputs`): a folder of images
/// ([`load_image_folder`]), a NumPy `.npy` array ([`load_npy`]), a labeled CSV dataset
/// (`.csv`, `.csv.gz`, label column ignored), or else a raw little-endian fp32 file (`.bin`,
/// `.f32`: whole samples of the model input, batch 1).
pub fn load_inputs(path: &Path, staged: &StagedModel) -> Result<Vec<Vec<f32>>> {
    let dims = staged.input_shape(1);
    let per: usize = dims.iter().product();
    let name = path.to_string_lossy();
    if path.is_dir() {
        return load_image_folder(path, &staged.input_name, &dims);
    }
    if name.ends_with(".npy") {
        return load_npy(path, &staged.input_name, &dims);
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let d = Dataset::load_csv(path)?;
        let rows: Vec<usize> = (0..d.len()).collect();
        let (_, all) = d.batch(&rows, &dims[1..])?;
        return Ok(all.chunks(per).map(<[f32]>::to_vec).collect());
    }
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    if bytes.is_empty() || bytes.len() % (4 * per) != 0 {
        return Err(EngineError::tensor(
            format!("calibration inputs {}", path.display()),
            &staged.input_name,
            format!(
                "{} bytes is not a whole number of fp32 samples of shape {dims:?} ({} bytes each)",
                bytes.len(),
                4 * per
            ),
        ));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(values.chunks(per).map(<[f32]>::to_vec).collect())
}

/// Samples drawn when neither calibration inputs nor a dataset give real inputs.
pub const SYNTHETIC_SAMPLES: usize = 16;
/// Training rows of every class that calibrate int8 when only a dataset is given (as
/// `lalarand accuracy`).
pub const CALIBRATION_PER_CLASS: usize = 20;

/// The inputs a profile run times and calibrates int8 with (`lalarand profile` and the Python
/// package's `profile`): the `calibration` file ([`load_inputs`]) if given, else
/// [`CALIBRATION_PER_CLASS`] training rows of every class of `dataset` (the first
/// `train_per_class` rows of each class are its training rows), else [`SYNTHETIC_SAMPLES`]
/// synthetic inputs, which are fine for timing only (a warning when `modes` has int8).
pub fn calibration_inputs(
    staged: &StagedModel,
    calibration: Option<&Path>,
    dataset: Option<&Dataset>,
    train_per_class: usize,
    modes: &[Mode],
) -> Result<Vec<Vec<f32>>> {
    match (calibration, dataset) {
        (Some(p), _) => load_inputs(p, staged),
        (None, Some(d)) => {
            let (train, _) = d.split_per_class(train_per_class);
            let rows = d.take_per_class(&train, CALIBRATION_PER_CLASS);
            let dims = staged.input_shape(1);
            let (_, all) = d.batch(&rows, &dims[1..])?;
            Ok(all.chunks(dims.iter().product()).map(<[f32]>::to_vec).collect())
        }
        (None, None) => {
            if modes.contains(&Mode::CpuInt8) {
                tracing::warn!(
                    "no calibration inputs or dataset: int8 is calibrated on {SYNTHETIC_SAMPLES} synthetic inputs (good for timing only)"
                );
            }
            Ok(synthetic_inputs(staged, SYNTHETIC_SAMPLES))
        }
    }
}

/// Inputs drawn uniformly from [0, 1) with a fixed seed, for models without calibration data.
pub fn synthetic_inputs(staged: &StagedModel, count: usize) -> Vec<Vec<f32>> {
    let per: usize = staged.input_shape(1).iter().product();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            (0..per)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

/// `count` inputs of `per` values in [0, 1) from a linear congruential stream seeded with
/// `seed`: reproducible inputs for tests and benches whose only need is "some image".
pub fn seeded_inputs(count: usize, per: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..count)
        .map(|_| {
            (0..per)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}
