//! The README shows real files: its quickstart is `examples/greeter` and
//! `examples/quickstart.rs` verbatim, and its first lines are the demo and test commands.

use std::path::Path;

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The contents of the README's fenced code blocks.
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.starts_with("```") => current = Some(String::new()),
            None => {}
            Some(block) if line.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

fn assert_shown_verbatim(file: &str) {
    let readme = read("README.md");
    let content = read(file);
    assert!(
        code_blocks(&readme).contains(&content),
        "README.md must show {file} verbatim in a code block; it now reads:\n{content}"
    );
}

#[test]
fn the_readme_module_is_examples_greeter() {
    assert_shown_verbatim("examples/greeter/src/lib.rs");
    assert_shown_verbatim("examples/greeter/Cargo.toml");
}

#[test]
fn the_readme_host_is_examples_quickstart() {
    assert_shown_verbatim("examples/quickstart.rs");
}

#[test]
fn the_readme_opens_with_the_tour_and_the_test_command() {
    let readme = read("README.md");
    let first = code_blocks(&readme).into_iter().next().unwrap_or_default();
    let commands: Vec<&str> = first
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --example tour", "cargo test --workspace"]
    );
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/reload-model.md")
        .is_file());
}
