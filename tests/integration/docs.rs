//! The README's promises that a test can hold it to.

use echokit::ExitCode;

use crate::util::{echokit_run, text};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn the_readme_exit_code_table_is_the_tools() {
    let readme = readme();
    for code in ExitCode::ALL {
        let row = format!("| {} | {} |", code.code(), code.meaning());
        assert!(readme.contains(&row), "README lacks the row {row:?}");
    }
}

#[test]
fn the_readme_quick_start_is_two_commands() {
    let readme = readme();
    assert!(readme.contains("cargo run --release -- echo-server"));
    assert!(readme.contains("cargo test --release"));
}

#[test]
fn the_readme_names_every_probe_state() {
    let readme = readme();
    let section = readme
        .split("## probe")
        .nth(1)
        .expect("README has a probe section");
    for state in echokit::probe::State::ALL {
        assert!(
            section.contains(state.as_str()) && section.contains(state.key()),
            "the README's probe section lacks {:?}",
            state.as_str()
        );
    }
}

#[test]
fn the_readme_command_table_lists_every_command() {
    let readme = readme();
    let out = echokit_run(&["--help"]);
    let help = text(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's line; a wrapped description is indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"resolve"), "{help}");
    for command in commands {
        let row = format!("| `echokit {command}");
        assert!(
            readme.contains(&row),
            "the README's command table lacks {command}"
        );
    }
}

#[test]
fn the_readme_metrics_table_is_the_exposition() {
    use echokit::metrics::render::FAMILIES;
    let readme = readme();
    for f in FAMILIES {
        let row = format!("| `{}` | {} |", f.name, f.kind.as_str());
        let line = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("the README's metrics table lacks {row:?}"));
        if let Some((label, values)) = f.label {
            for v in [label].iter().chain(values) {
                assert!(
                    line.contains(&format!("`{v}`")),
                    "the README's row for {} lacks `{v}`",
                    f.name
                );
            }
        }
    }
    // And no row for a metric that is not there.
    for line in readme.lines().filter(|l| l.starts_with("| `echokit_")) {
        assert!(
            FAMILIES
                .iter()
                .any(|f| line.starts_with(&format!("| `{}` |", f.name))),
            "the README lists a metric echokit does not show: {line}"
        );
    }
}
