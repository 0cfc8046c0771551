//! What a cosine to fp32 cannot see (issue 20): on a model whose output hardly depends on its
//! input (a random-weight classifier whose output is mostly its bias), int8 can change every
//! input's class at a cosine of 0.99999, because the cosine is taken over what every input
//! shares. `verify` therefore also measures how much the fp32 output varies across inputs,
//! judges int8 on the part that varies where that part is small, and judges a classifier's
//! int8 chain on its top-1 classes too.

use crate::quant::Agreement;
use crate::tensor::argmax_rows;

/// Below this spread across inputs (the RMS distance of the outputs from their mean over the
/// RMS of the mean), an output "hardly depends on its input": its cosine to fp32 is dominated
/// by what every input shares, and int8 is judged by the cosine of the deviations from the
/// fp32 mean instead ([`centered_cosine`]). Real models' outputs vary by tens of percent across
/// distinct inputs; 1% leaves a wide margin on both sides.
pub const MIN_INPUT_DEPENDENCE: f64 = 1e-2;

/// The most a classifier's int8 chain may change its top-1 class, percent of inputs: the
/// default accuracy budget (1 pp). On few inputs this means none.
pub const MAX_TOP1_DISAGREEMENT_PCT: f64 = 1.0;

/// The spread of `outputs` (one flat vector per input, all of one length) across inputs:
/// `sqrt(mean_i |y_i - mean|^2) / |mean|`; `None` with fewer than two inputs, infinite where the
/// mean is zero and the outputs are not.
pub fn input_dependence(outputs: &[Vec<f32>]) -> Option<f64> {
    if outputs.len() < 2 {
        return None;
    }
    let mean = mean_of(outputs);
    let norm2: f64 = mean.iter().map(|m| m * m).sum();
    let spread2: f64 =
        outputs.iter().map(|y| y.iter().zip(&mean).map(|(&v, m)| (v as f64 - m).powi(2)).sum::<f64>()).sum::<f64>()
            / outputs.len() as f64;
    Some(match (spread2 > 0.0, norm2 > 0.0) {
        (false, _) => 0.0,
        (true, false) => f64::INFINITY,
        (true, true) => (spread2 / norm2).sqrt(),
    })
}

fn mean_of(outputs: &[Vec<f32>]) -> Vec<f64> {
    let mut mean = vec![0f64; outputs.first().map_or(0, Vec::len)];
    for y in outputs {
        for (m, &v) in mean.iter_mut().zip(y) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= outputs.len() as f64);
    mean
}

/// The cosine similarity of `got`'s and `reference`'s deviations from the mean of `reference`
/// (over inputs): how well `got` follows what changes from input to input.
pub fn centered_cosine(reference: &[Vec<f32>], got: &[Vec<f32>]) -> f64 {
    let mean = mean_of(reference);
    let center = |y: &Vec<f32>| -> Vec<f32> { y.iter().zip(&mean).map(|(&v, m)| (v as f64 - m) as f32).collect() };
    let mut sum = Agreement::default();
    for (want, have) in reference.iter().zip(got) {
        sum.add(&center(want), &center(have));
    }
    sum.cosine()
}

/// The percentage of rows (of `classes` values each, over every input) whose top-1 class in
/// `got` is the one in `reference`.
pub fn top1_agreement(reference: &[Vec<f32>], got: &[Vec<f32>], classes: usize) -> f64 {
    let (mut same, mut rows) = (0usize, 0usize);
    for (want, have) in reference.iter().zip(got) {
        let (a, b) = (argmax_rows(want, classes), argmax_rows(have, classes));
        same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        rows += a.len();
    }
    100.0 * same as f64 / rows.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bias of 1 with input-dependent parts of 1e-4: the spread is tiny, and an "int8" that
    /// adds noise of 1e-3 has a cosine near 1 but a centered cosine far below it.
    #[test]
    fn a_bias_dominated_output_is_seen_and_judged_on_what_varies() {
        let reference: Vec<Vec<f32>> =
            (0..8).map(|i| vec![1.0 + 1e-4 * i as f32, 1.0 - 1e-4 * i as f32, 0.5]).collect();
        let got: Vec<Vec<f32>> = reference
            .iter()
            .enumerate()
            .map(|(i, y)| y.iter().map(|v| v + if i % 2 == 0 { 1e-3 } else { -1e-3 }).collect())
            .collect();
        assert!(input_dependence(&reference).unwrap() < MIN_INPUT_DEPENDENCE);
        let mut raw = Agreement::default();
        reference.iter().zip(&got).for_each(|(a, b)| raw.add(a, b));
        assert!(raw.cosine() > 0.9999);
        assert!(centered_cosine(&reference, &got) < 0.9);
        assert!((centered_cosine(&reference, &reference) - 1.0).abs() < 1e-9);
        let varied: Vec<Vec<f32>> = (0..8).map(|i| vec![i as f32, 8.0 - i as f32]).collect();
        assert!(input_dependence(&varied).unwrap() > MIN_INPUT_DEPENDENCE);
        assert_eq!(input_dependence(&varied[..1]), None);
    }

    #[test]
    fn top1_agreement_counts_rows() {
        let reference = vec![vec![1.0, 0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0, 1.0]];
        let got = vec![vec![1.0, 0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0, 1.0]];
        assert_eq!(top1_agreement(&reference, &got, 2), 75.0);
    }
}
