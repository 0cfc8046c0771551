//! Every parser answers arbitrary input with a value or a `FormatError`, never a panic: random
//! text, and valid files with one field replaced by a random value (the likelier mistakes).

use lalarand_model::examples::demo_system;
use lalarand_model::{Allocation, DnnProfile, Mode, Platform, TaskSet};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

fn origin() -> &'static Path {
    Path::new("fuzz.txt")
}

/// Values a user might type in any field.
fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("null".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("18446744073709551616".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "\"[a-z@-]{0,12}\"",
    ]
}

/// Replaces the `nth` number or quoted string of `text` by `value`.
fn mutate(text: &str, nth: usize, value: &str) -> String {
    let re_like: Vec<(usize, usize)> = {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'"' {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                spans.push((start, (i + 1).min(bytes.len())));
            } else if bytes[i].is_ascii_digit() {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                spans.push((start, i));
                continue;
            }
            i += 1;
        }
        spans
    };
    if re_like.is_empty() {
        return text.to_string();
    }
    let (a, b) = re_like[nth % re_like.len()];
    format!("{}{}{}", &text[..a], value, &text[b..])
}

fn demo_texts() -> (String, String, String, String) {
    let system = demo_system();
    let set = TaskSet { tasks: system.tasks.clone(), policy: Default::default() };
    let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
    (system.platform.to_toml(), set.to_toml(), system.tasks[0].dnn.to_json(), alloc.to_toml(&system, Some("gpu-only")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let system = demo_system();
        let _ = Platform::parse(&text, origin());
        let _ = DnnProfile::parse(&text, origin());
        let _ = TaskSet::parse_with(&text, origin(), |_, _| Ok(system.tasks[0].dnn.clone()));
        let _ = Allocation::parse(&text, origin(), &system);
    }

    #[test]
    fn mutated_valid_files_never_panic(nth in 0usize..400, value in arb_value()) {
        let system = demo_system();
        let (platform, set, profile, alloc) = demo_texts();
        let _ = Platform::parse(&mutate(&platform, nth, &value), origin());
        if let Ok(p) = DnnProfile::parse(&mutate(&profile, nth, &value), origin()) {
            // Whatever parses is usable: every layer has a mode and finite times.
            prop_assert!(p.layers.iter().all(|l| l.available_modes().count() > 0));
            // A cost that is not known (`null`) reads as 0 and survives a round trip as unknown.
            let zero = |j: usize| j < p.layers.len() && p.layers[j].int8_accuracy_cost == 0.0;
            prop_assert!(p.int8_accuracy_unknown.iter().all(|&j| zero(j)));
            let again = DnnProfile::parse(&p.to_json(), origin()).map(|q| q.int8_accuracy_unknown);
            prop_assert_eq!(again.ok(), Some(p.int8_accuracy_unknown));
        }
        let dnn = system.tasks[0].dnn.clone();
        if let Ok(s) = TaskSet::parse_with(&mutate(&set, nth, &value), origin(), |_, _| Ok(Arc::clone(&dnn))) {
            prop_assert!(s.tasks.iter().all(|t| t.period > 0 && t.deadline <= t.period));
        }
        let _ = Allocation::parse(&mutate(&alloc, nth, &value), origin(), &system);
    }
}
