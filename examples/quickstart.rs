use greeter::hello;

fn main() -> Result<(), hotmod::Error> {
    let old = hello::Handle::current(); // pins generation 0, the built-in code
    let g = hello::module().reload()?; // verifies and loads target/<profile>/libgreeter.so
    let new = hello::Handle::current(); // pins generation g
    println!("{} (generation {})", old.greet("old"), old.generation());
    println!("{} (generation {g})", new.greet("new"));
    println!("live: {:?}", hello::module().live_generations()); // [0, g]
    Ok(())
}
