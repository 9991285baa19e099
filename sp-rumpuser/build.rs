//! The test binaries define `rumpuser__hyp` themselves (a fake kernel), and
//! the library finds it with dlsym as it finds the stock one: export their
//! symbols dynamically.
fn main() {
    println!("cargo:rustc-link-arg-tests=-rdynamic");
}
