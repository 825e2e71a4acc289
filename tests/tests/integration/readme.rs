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
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir).expect("ui folder") {
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

/// Declares README's branch example nets and keeps their tokens, to compare
/// with README's text.
macro_rules! readme_nets {
    ($($net:tt)*) => {
        cnn_runtime::cnn_net! { $($net)* }
        const README_NETS: &str = stringify!($($net)*);
    };
}

readme_nets! {
    pub ResNetSmall: [1, 12, 12] =>
        [conv(1, 4, 3, pad = 1) relu maxpool(2)]
        [[add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu]
         [add { conv1: conv(4, 4, 3, pad = 1) relu conv2: conv(4, 4, 3, pad = 1) | identity } relu]]
        [[add { conv1: conv(4, 8, 3, pad = 1, stride = 2) relu conv2: conv(8, 8, 3, pad = 1)
              | conv3: conv(4, 8, 1, stride = 2) } relu]
         [add { conv1: conv(8, 8, 3, pad = 1) relu conv2: conv(8, 8, 3, pad = 1) | identity } relu]]
        [global_avgpool flatten linear(8, 10)];
    pub Inceptions: [8, 8, 8] =>
        [cat { b1_1: conv(8, 4, 1) relu
             | b2_1: conv(8, 4, 1) relu b2_2: conv(4, 6, 3, pad = 1) relu
             | b3_1: conv(8, 2, 1) relu b3_2: conv(2, 3, 5, pad = 2) relu
             | b4_1: maxpool(3, stride = 1, pad = 1) b4_2: conv(8, 3, 1) relu }]
        global_avgpool flatten linear(16, 10)
}

fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// README's branch example is the code above, and its keys are the ones
/// README lists; the ResNet loads the `resnet_small` fixture, saved from
/// D2L's `Residual` class, with no renaming and gives PyTorch's logits.
#[test]
fn the_branch_example_compiles_with_the_keys_shown() {
    let text = readme();
    let start = text.find("pub ResNetSmall").expect("README shows ResNetSmall");
    let end = start + text[start..].find("\n}\n").expect("the block closes");
    let shown: String = text[start..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    assert_eq!(squeezed(&shown), squeezed(README_NETS));

    let keys: Vec<&str> = ResNetSmall::TENSORS.iter().map(|t| t.key).collect();
    for key in [
        "0.0.weight",
        "1.0.conv1.weight",
        "1.0.conv2.weight",
        "2.0.conv3.weight",
        "3.2.weight",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    let keys: Vec<&str> = Inceptions::TENSORS.iter().map(|t| t.key).collect();
    for key in [
        "0.b1_1.weight",
        "0.b2_1.weight",
        "0.b2_2.weight",
        "0.b4_2.bias",
        "3.weight",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }

    let fx = cnn_tests::load("resnet_small");
    let mut net = Box::new(ResNetSmall::zeroed());
    cnn_runtime::weights::load_json_str(ResNetSmall::TENSORS, &fx.weights_json, net.params_mut())
        .expect("D2L's keys load as they are");
    let mut out = vec![0.0; fx.batch * ResNetSmall::OUTPUT_LEN];
    net.forward_batch(&fx.input, &mut out);
    cnn_tests::assert_close("README ResNetSmall", &out, &fx.output, 1e-5, 1e-6);
}
