//! A model's inputs from a NumPy `.npy` array or a folder of images (`load_inputs`), as
//! calibration and `verify --inputs` read them; bad files are named with the fix.

use lalarand_engine::profile::load_inputs;
use lalarand_engine::StagedModel;
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};

fn mnist() -> StagedModel {
    StagedModel::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx")).unwrap()
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], values: &[T]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn npy_arrays_give_samples_of_the_model_input() {
    let staged = mnist();
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..3 * 784).map(|i| i as f32 / 1000.0).collect();
    let batch = dir.path().join("batch.npy");
    write_npy(&batch, &[3, 1, 28, 28], &values);
    let got = load_inputs(&batch, &staged).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got.concat(), values);
    // One sample without its batch axis, as float64.
    let one = dir.path().join("one.npy");
    let doubles: Vec<f64> = (0..784).map(|i| i as f64 * 0.5).collect();
    write_npy(&one, &[1, 28, 28], &doubles);
    assert_eq!(load_inputs(&one, &staged).unwrap(), vec![doubles.iter().map(|&v| v as f32).collect::<Vec<_>>()]);
    // A shape that is not the model's is named with the one to save.
    let wrong = dir.path().join("wrong.npy");
    write_npy(&wrong, &[2, 32, 32], &vec![0f32; 2048]);
    let e = load_inputs(&wrong, &staged).unwrap_err().to_string();
    assert!(e.contains("wrong.npy") && e.contains("[2, 32, 32]") && e.contains("[n, 1, 28, 28]"), "{e}");
    // Not an .npy file at all.
    let junk = dir.path().join("junk.npy");
    std::fs::write(&junk, b"not numpy").unwrap();
    let e = load_inputs(&junk, &staged).unwrap_err().to_string();
    assert!(e.contains("junk.npy") && e.contains("numpy.save"), "{e}");
}

#[test]
fn a_folder_of_images_is_resized_scaled_and_channels_first() {
    let staged = mnist();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    // A gray image at the model's size, and a larger RGB one it is resized and grayed from.
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([if x < 14 { 0 } else { 255 }]))
        .save(images.join("a.png"))
        .unwrap();
    image::RgbImage::from_pixel(56, 40, image::Rgb([51, 51, 51])).save(images.join("b.jpg")).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    let got = load_inputs(&images, &staged).unwrap();
    assert_eq!(got.len(), 2, "the .txt is not read");
    assert_eq!((got[0][0], got[0][27]), (0.0, 1.0), "left dark, right bright, in [0, 1]");
    assert!(got[1].iter().all(|v| (v - 0.2).abs() < 0.02), "{:?}", &got[1][..4]);
    // An empty folder, and a broken image, are named.
    let empty: PathBuf = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = load_inputs(&empty, &staged).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("no png/jpg/jpeg image"), "{e}");
    std::fs::write(images.join("c.png"), b"broken").unwrap();
    let e = load_inputs(&images, &staged).unwrap_err().to_string();
    assert!(e.contains("c.png") && e.contains("not a readable image"), "{e}");
}
