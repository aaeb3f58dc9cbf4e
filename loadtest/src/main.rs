//! Load generator and benchmark reports. Not yet built.

fn main() {
    eprintln!("loadtest: not yet built");
}
