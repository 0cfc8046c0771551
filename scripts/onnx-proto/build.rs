//! The prost-build and protox versions this build resolved, for the generated file's header.

fn main() {
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (krate, var) in [("prost-build", "PROST_BUILD_VERSION"), ("protox", "PROTOX_VERSION")] {
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains(&format!("name = \"{krate}\"\n")))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map_or("?", |v| v.trim_end_matches('"'));
        println!("cargo:rustc-env={var}={version}");
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
}
