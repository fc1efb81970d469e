//! Compiles the repository's `mappings/*.toml` into the binary, so that a
//! Lambda deployment package needs no files beside the executable.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mappings_dir = manifest_dir.join("../../mappings");
    println!("cargo:rerun-if-changed={}", mappings_dir.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&mappings_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();

    let mut code = String::from("/// Mapping files compiled in from `mappings/`: (file name, TOML text).\npub const EMBEDDED_MAPPINGS: &[(&str, &str)] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let absolute = path.canonicalize().expect("mapping file path resolves");
        writeln!(code, "    ({:?}, include_str!({:?})),", format!("mappings/{name}"), absolute).expect("writing to a String succeeds");
    }
    code.push_str("];\n");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_mappings.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
