use greeter::hello;

fn main() {
    let old = hello::Handle::current();
    println!("gen {} says {}", old.generation(), old.greet("a"));
    let g = hello::module().reload();
    println!("{g:?}");
    let new = hello::Handle::current();
    println!("old gen {} says {}; new gen {} says {}", old.generation(), old.greet("a"), new.generation(), new.greet("b"));
    println!("plain: {} live={:?}", hello::greet("c"), hello::module().live_generations());
    let r = hello::reply("ab", 3);
    println!("{} {}", r.text, r.count);
    let mut c = 1; hello::bump(&mut c); println!("{c}");
    drop(old);
    let g2 = hello::module().reload();
    println!("{g2:?} live={:?}", hello::module().live_generations());
    drop(new);
    println!("live={:?}", hello::module().live_generations());
}
