#[hotmod::hot_module]
pub mod shapes {
    pub trait Shape {
        fn area(&self) -> f64;
    }

    pub fn unit() -> Box<dyn Shape> {
        todo!()
    }
}

fn main() {}
