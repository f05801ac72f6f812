fn main() {
    println!("rosterdrop");
}
