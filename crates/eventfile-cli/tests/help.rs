//! What the tool says about itself: completions for three shells, the man page, an example
//! under every command's --help; and listings that stay JSON lines when piped.

mod common;

use common::{command, eventfile};

fn stdout(args: &[&str]) -> String {
    let out = command().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let bash = stdout(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F") && bash.contains("generate"),
        "{bash}"
    );
    let zsh = stdout(&["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef eventfile") && zsh.contains("view"),
        "{zsh}"
    );
    let fish = stdout(&["completions", "fish"]);
    assert!(
        fish.contains("complete -c eventfile") && fish.contains("--seed"),
        "{fish}"
    );
    let out = command()
        .args(["completions", "powershell"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A store URL that does not parse does not stop them: they describe the tool.
    let out = command()
        .env("EVENTFILE_URL", "nonsense://")
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn the_man_page_covers_every_command() {
    let man = stdout(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH eventfile"),
        "{}",
        &man[..200]
    );
    for c in ["VIEW", "GENERATE", "STREAMS", "COMPLETIONS"] {
        assert!(
            man.contains(&format!("EVENTFILE {c}")),
            "no section for {c}"
        );
    }
}

#[test]
fn every_help_shows_an_example() {
    for c in ["view", "generate", "streams", "tail", "export", "append"] {
        let help = stdout(&[c, "--help"]);
        assert!(
            help.contains("Example:\n  eventfile"),
            "{c} --help:\n{help}"
        );
    }
}

#[test]
fn listings_stay_json_lines_when_piped_and_with_json() {
    let dir = tempfile::tempdir().unwrap();
    for s in ["order-1", "order-2"] {
        assert!(
            eventfile(dir.path(), &["append", s, "Placed", "{}", "--tag", "a=b"])
                .status
                .success()
        );
    }
    let plain = eventfile(dir.path(), &["streams"]).stdout;
    assert_eq!(
        String::from_utf8_lossy(&plain),
        "{\"stream\":\"order-1\",\"version\":1}\n{\"stream\":\"order-2\",\"version\":1}\n"
    );
    assert_eq!(eventfile(dir.path(), &["streams", "--json"]).stdout, plain);
    let types = eventfile(dir.path(), &["types", "--json"]).stdout;
    assert_eq!(
        String::from_utf8_lossy(&types),
        "{\"count\":2,\"type\":\"Placed\"}\n"
    );
    let tags = eventfile(dir.path(), &["tags"]).stdout;
    assert_eq!(
        String::from_utf8_lossy(&tags),
        "{\"count\":2,\"tag\":\"a=b\"}\n"
    );
}
