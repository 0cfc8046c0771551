//! Labeled datasets as CSV (optionally gzipped): one row per sample, the feature columns, then
//! an integer class label. Pixels 0..255 are scaled to 0..1 (`pixel / 255`), as the MNIST
//! model in testdata expects.

use crate::error::{EngineError, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Dataset {
    pub file: PathBuf,
    /// Feature values per sample, scaled.
    pub features: usize,
    data: Vec<f32>,
    pub labels: Vec<usize>,
    /// 1 when the file starts with a header row.
    header_rows: usize,
}

impl Dataset {
    /// Reads `path`; `.gz` files are decompressed. Every row must have the same number of
    /// columns, numeric features and a non-negative integer label in the last column.
    pub fn load_csv(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|x| x == "gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let bad = |row: usize, column: usize, problem: String| EngineError::Dataset {
            file: path.to_path_buf(),
            row,
            column,
            problem,
        };
        let mut data = Vec::new();
        let mut labels = Vec::new();
        let mut width = None;
        let mut header_rows = 0;
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let row = i + 1;
            let line = line.map_err(|e| bad(row, 0, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let w = *width.get_or_insert(cells.len());
            if cells.len() != w || w < 2 {
                return Err(bad(
                    row,
                    cells.len(),
                    format!("{} columns where the first row has {w}; need features then a label", cells.len()),
                ));
            }
            // A header row (non-numeric first line) is skipped.
            if row == 1 && cells[0].parse::<f32>().is_err() {
                width = None;
                header_rows = 1;
                continue;
            }
            for (c, cell) in cells[..w - 1].iter().enumerate() {
                let v: f32 = cell.parse().map_err(|_| bad(row, c + 1, format!("feature {cell:?} is not a number")))?;
                data.push(v / 255.0);
            }
            let label = cells[w - 1];
            let l: usize = label.parse().map_err(|_| {
                bad(
                    row,
                    w,
                    format!("label {label:?} is not a non-negative integer class; the label must be the last column"),
                )
            })?;
            labels.push(l);
        }
        let Some(w) = width else {
            return Err(bad(0, 0, "no data rows".into()));
        };
        Ok(Self { file: path.to_path_buf(), features: w - 1, data, labels, header_rows })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn sample(&self, i: usize) -> &[f32] {
        &self.data[i * self.features..(i + 1) * self.features]
    }

    /// Checks every label is below `classes` (the model's output width).
    pub fn check_labels(&self, classes: usize) -> Result<()> {
        match self.labels.iter().position(|&l| l >= classes) {
            None => Ok(()),
            Some(i) => Err(EngineError::Dataset {
                file: self.file.clone(),
                row: self.row_of(i),
                column: self.features + 1,
                problem: format!("label {} but the model has {classes} classes", self.labels[i]),
            }),
        }
    }

    /// The 1-based file row of sample `i`.
    fn row_of(&self, i: usize) -> usize {
        i + 1 + self.header_rows
    }

    /// Splits sample indices by class, in file order: the first `train_per_class` of each class
    /// are training data, the rest test data (the split the MNIST model was trained with).
    pub fn split_per_class(&self, train_per_class: usize) -> (Vec<usize>, Vec<usize>) {
        let mut seen = std::collections::HashMap::<usize, usize>::new();
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, &l) in self.labels.iter().enumerate() {
            let n = seen.entry(l).or_insert(0);
            if *n < train_per_class {
                train.push(i);
            } else {
                test.push(i);
            }
            *n += 1;
        }
        (train, test)
    }

    /// `per_class` samples of every class from `rows`, in order.
    pub fn take_per_class(&self, rows: &[usize], per_class: usize) -> Vec<usize> {
        let mut seen = std::collections::HashMap::<usize, usize>::new();
        rows.iter()
            .copied()
            .filter(|&i| {
                let n = seen.entry(self.labels[i]).or_insert(0);
                *n += 1;
                *n <= per_class
            })
            .collect()
    }

    /// Samples `rows` as one batch tensor of `sample_dims` each: `(dims, values)`.
    pub fn batch(&self, rows: &[usize], sample_dims: &[usize]) -> Result<(Vec<usize>, Vec<f32>)> {
        let per: usize = sample_dims.iter().product();
        if per != self.features {
            return Err(EngineError::Dataset {
                file: self.file.clone(),
                row: 1,
                column: self.features,
                problem: format!(
                    "{} feature columns, but the model input {sample_dims:?} needs {per} (plus the label column)",
                    self.features
                ),
            });
        }
        let mut v = Vec::with_capacity(rows.len() * per);
        for &i in rows {
            v.extend_from_slice(self.sample(i));
        }
        let mut dims = vec![rows.len()];
        dims.extend_from_slice(sample_dims);
        Ok((dims, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.csv", "0,255,0\n255,0,0\n0,0,1\n51,0,1\n");
        let d = Dataset::load_csv(&p).unwrap();
        assert_eq!((d.len(), d.features), (4, 2));
        assert_eq!(d.sample(1), [1.0, 0.0]);
        assert_eq!(d.sample(3)[0], 0.2);
        assert_eq!(d.split_per_class(1), (vec![0, 2], vec![1, 3]));
        assert_eq!(d.batch(&[0, 2], &[1, 2]).unwrap().0, [2, 1, 2]);
    }

    #[test]
    fn bad_labels_name_file_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.csv", "0,0,1\n0,0,cat\n");
        let e = Dataset::load_csv(&p).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("row 2") && e.contains("column 3") && e.contains("cat"), "{e}");

        let p = write(dir.path(), "float.csv", "0,0,1.5\n");
        let e = Dataset::load_csv(&p).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("column 3"), "{e}");

        let p = write(dir.path(), "ragged.csv", "0,0,1\n0,1\n");
        let e = Dataset::load_csv(&p).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("2 columns"), "{e}");

        let d = Dataset::load_csv(&write(dir.path(), "big.csv", "0,0,1\n0,0,12\n")).unwrap();
        let e = d.check_labels(10).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("label 12") && e.contains("10 classes"), "{e}");
    }
}
