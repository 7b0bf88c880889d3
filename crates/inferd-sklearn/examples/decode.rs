//! Decodes pickle files and prints the top-level value: a debugging aid.
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("read");
        match inferd_sklearn::decode(&bytes, &Default::default()) {
            Ok((heap, root)) => println!(
                "{path}: ok, {} values, root {}",
                heap.len(),
                heap.get(root).type_name()
            ),
            Err(e) => println!("{path}: {e}"),
        }
    }
}
