//! A model's inputs from the formats users already have: a NumPy `.npy` array, or a folder of
//! images. Both give whole samples of the model's input at batch 1.

use crate::error::{EngineError, Result};
use std::path::Path;

/// Samples of shape `dims` (batch 1) from a `.npy` file: an array of shape `[n, dims[1..]]`,
/// `dims[1..]` (one sample) or with any leading batch that multiplies out, of float32, float64
/// or an integer type, in C order. Values are taken as they are (no scaling).
pub fn load_npy(path: &Path, input: &str, dims: &[usize]) -> Result<Vec<Vec<f32>>> {
    use npyz::{DType, Order, TypeChar};
    let what = || format!("inputs {}", path.display());
    let bad = |problem: String| EngineError::tensor(what(), input, problem);
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a NumPy .npy file ({e}); fix: write it with numpy.save")))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    if npy.order() != Order::C {
        return Err(bad("the array is in Fortran order; fix: save numpy.ascontiguousarray(a)".into()));
    }
    let DType::Plain(ty) = npy.dtype() else {
        return Err(bad("a structured array; fix: save a plain numeric array".into()));
    };
    let io = |e: std::io::Error| bad(format!("cannot read its values: {e}"));
    let values: Vec<f32> = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(io)?,
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(io)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(io)?.into_iter().map(f32::from).collect(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(io)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(io)?.into_iter().map(|v| v as f32).collect(),
        _ => {
            return Err(bad(format!("dtype {ty} is not supported; fix: save it as float32 (a.astype(numpy.float32))")))
        }
    };
    let per: usize = dims.iter().product();
    let sample: Vec<u64> = dims[1..].iter().map(|&d| d as u64).collect();
    let fits = shape.ends_with(&sample) && per > 0 && !values.is_empty() && values.len().is_multiple_of(per);
    if !fits {
        return Err(bad(format!(
            "an array of shape {shape:?} does not hold samples of the model's input shape {dims:?}; fix: save an array of shape [n, {}]",
            sample.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(values.chunks(per).map(<[f32]>::to_vec).collect())
}

/// File name endings read as images.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One sample per image (`.png`, `.jpg`, `.jpeg`, in file-name order) of a folder, for a model
/// input of shape `[1, c, h, w]` with `c` 1 (gray) or 3 (RGB): each image resized to `w x h`
/// (bilinear), its values scaled to [0, 1], channels first. A model that expects another
/// normalization needs its inputs as `.npy` instead.
pub fn load_image_folder(dir: &Path, input: &str, dims: &[usize]) -> Result<Vec<Vec<f32>>> {
    let what = || format!("inputs {}", dir.display());
    let bad = |problem: String| EngineError::tensor(what(), input, problem);
    let &[1, channels, height, width] = dims else {
        return Err(bad(format!(
            "images need a model input of shape [1, channels, height, width], and it is {dims:?}; fix: give a .npy file"
        )));
    };
    if channels != 1 && channels != 3 {
        return Err(bad(format!("images give 1 or 3 channels, and the input has {channels}; fix: give a .npy file")));
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad(format!(
            "the folder holds no {} image; fix: put the input images there",
            IMAGE_EXTENSIONS.join("/")
        )));
    }
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else { return Err(bad(format!("input size {dims:?} is too large for images"))) };
    let filter = image::imageops::FilterType::Triangle;
    files
        .iter()
        .map(|file| {
            let img = image::open(file).map_err(|e| {
                EngineError::tensor(format!("inputs {}", file.display()), input, format!("not a readable image: {e}"))
            })?;
            let plane = width * height;
            let mut sample = vec![0f32; channels * plane];
            if channels == 1 {
                let gray = image::imageops::resize(&img.to_luma8(), w, h, filter);
                for (v, p) in sample.iter_mut().zip(gray.pixels()) {
                    *v = f32::from(p.0[0]) / 255.0;
                }
            } else {
                let rgb = image::imageops::resize(&img.to_rgb8(), w, h, filter);
                for (i, p) in rgb.pixels().enumerate() {
                    for c in 0..3 {
                        sample[c * plane + i] = f32::from(p.0[c]) / 255.0;
                    }
                }
            }
            Ok(sample)
        })
        .collect()
}
