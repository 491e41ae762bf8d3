//! Writes the phone fast paths' table (`$OUT_DIR/phone_tables.rs`) from
//! `phonenumber`'s metadata, so the library does not load that database at run time
//! for the numbers it can answer without the parser. See `src/phone_meta.rs`.

#[path = "src/phone_meta.rs"]
mod phone_meta;

fn main() {
    println!("cargo::rerun-if-changed=src/phone_meta.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let (codes, regions) = phone_meta::collect(&phonenumber::metadata::DATABASE);
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let path = std::path::Path::new(&out_dir).join("phone_tables.rs");
    std::fs::write(&path, phone_meta::render(&codes, &regions))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
