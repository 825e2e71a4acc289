//! README's shown outputs are what the code prints: the LeNet summary block
//! and the compile-time error examples.

use models::LeNet;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).expect("read README.md")
}

/// The fenced block that follows the first line containing `marker`.
fn block_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in README"));
    let rest = &text[start..];
    let open = rest.find("```text\n").expect("a text block follows") + "```text\n".len();
    let close = rest[open..].find("```").expect("the block closes");
    rest[open..open + close].to_string()
}

#[test]
fn the_lenet_summary_is_what_summary_prints() {
    assert_eq!(block_after(&readme(), "`LeNet::summary()`:"), LeNet::summary());
}

/// Every `error:` line of README's compile-error examples is a message the
/// macro gives (recorded by trybuild in tests/ui), word for word.
#[test]
fn the_error_examples_are_real_messages() {
    let shown = block_after(&readme(), "### Compile-time errors");
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/ui");
    let mut recorded = String::new();
    for dir in std::fs::read_dir(ui).expect("tests/ui") {
        for file in std::fs::read_dir(dir.expect("entry").path()).expect("ui folder") {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "stderr") {
                recorded.push_str(&std::fs::read_to_string(&path).expect("read stderr"));
            }
        }
    }
    let errors: Vec<&str> = shown.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(errors.len() >= 4, "{shown}");
    for line in errors {
        assert!(
            recorded.contains(line),
            "README shows {line:?}, which no tests/ui case records"
        );
    }
}
