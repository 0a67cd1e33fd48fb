fn main() {
    println!("strand");
}
