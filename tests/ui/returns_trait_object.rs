#[hotmod::hot_module]
pub mod shapes {
    pub trait Shape {
        fn area(&self) -> f64;
    }

    struct Square;

    impl Shape for Square {
        fn area(&self) -> f64 {
            1.0
        }
    }

    pub fn unit() -> Box<dyn Shape> {
        Box::new(Square)
    }
}

fn main() {}
