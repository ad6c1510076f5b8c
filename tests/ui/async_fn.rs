#[hotmod::hot_module]
pub mod handler {
    pub async fn handle(path: String) -> String {
        path
    }
}

fn main() {}
