//! Every repository path README.md and SECURITY.md name exists, so a file
//! moved or renamed cannot leave a stale path behind in the documents (two
//! had, `tests/tests/api.rs` and `tests/tests/api/seals.rs`).
//!
//! A path is a backticked span outside fenced code blocks whose first
//! component is a top-level entry of the repository ([`TOP_LEVEL`]) and which
//! holds a `/` or ends in a file extension ([`EXTENSIONS`]). A trailing
//! `:line` or `:line-line` and trailing punctuation are dropped. Commands
//! (spaces), URLs, globs and placeholders (`*`, `<`, `{`) are not paths, and
//! `../shared/…` and API routes (`/api/…`) start with no top-level entry.

use std::collections::BTreeSet;
use std::path::Path;

/// The top-level entries a path may start with: written here, not read from
/// the directory, so that the paths of a renamed entry are still checked and
/// the untracked `target/` and `data/` are never taken for the repository's.
const TOP_LEVEL: &str = ".ci adapters application bench bin domain infra keys migration openapi \
    tests web Cargo.toml README.md SECURITY.md generate-keys.sh start.sh";

/// What a name without a `/` must end in to be a path.
const EXTENSIONS: &str = "conf css html js json lua md py rs sh sql template toml yaml yml";

/// Spans the rule takes for paths that are not files of the repository.
const NOT_IN_REPOSITORY: [&str; 4] = [
    // Made by the service or `generate-keys.sh`; git ignores them.
    "keys/private.pem",
    "keys/public.pem",
    "keys/refresh-seal.key",
    // A media type, not the `application/` crate.
    "application/json",
];

/// The backticked spans of `markdown`, fenced code blocks left out. A span
/// may cross a line break but not a blank line.
fn spans(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut paragraph = String::new();
    let mut fenced = false;
    for line in markdown.lines().chain([""]) {
        let fence = line.trim_start().starts_with("```");
        fenced ^= fence;
        if fence || fenced || line.trim().is_empty() {
            let parts: Vec<&str> = paragraph.split('`').collect();
            // An unclosed backtick opens no span.
            for span in parts.iter().skip(1).step_by(2).take((parts.len() - 1) / 2) {
                found.push((*span).to_owned());
            }
            paragraph.clear();
        } else {
            paragraph.push_str(line);
            paragraph.push('\n');
        }
    }
    found
}

/// `span` as a repository path, if it is one (see the module).
fn repository_path(span: &str) -> Option<&str> {
    if span.contains(char::is_whitespace) || span.contains("://") || span.contains(['*', '<', '{'])
    {
        return None;
    }
    let span = span.trim_end_matches(['.', ',', ';', ':', ')']);
    let path = match span.rsplit_once(':') {
        Some((path, line)) if line.chars().all(|c| c.is_ascii_digit() || c == '-') => path,
        _ => span,
    };
    let (first, extension) = (path.split('/').next(), path.rsplit_once('.'));
    let file_like = path.contains('/') || extension.is_some_and(|(_, e)| listed(EXTENSIONS, e));
    let top_level = first.is_some_and(|first| listed(TOP_LEVEL, first));
    (top_level && file_like && !NOT_IN_REPOSITORY.contains(&path)).then_some(path)
}

/// Whether `word` is one of the words of `list`.
fn listed(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

#[test]
fn the_rule_takes_paths_and_nothing_else() {
    let taken = |span: &str| repository_path(span).map(str::to_owned);
    assert_eq!(
        taken("domain/src/rotation.rs:98-137"),
        Some("domain/src/rotation.rs".into())
    );
    assert_eq!(taken("tests/src/."), Some("tests/src/".into()));
    assert_eq!(taken("start.sh"), Some("start.sh".into()));
    for not_a_path in [
        "rotation.rs",
        "bin",
        "/api/login",
        "../shared/contract.md",
        "tests/load/hundred_k.sh 6 17000 90",
        "http://collector:4318",
        "keys/<kid>.pem",
        "application/json",
    ] {
        assert_eq!(taken(not_a_path), None, "{not_a_path}");
    }
    let text = "a `b/c`\n`d\ne` f\n```sh\n`g/h`\n```\n`i`\n\n` j";
    assert_eq!(spans(text), ["b/c", "d\ne", "i"]);
}

#[test]
fn every_repository_path_the_documents_name_exists() {
    // The tests crate is `tests/`, right under the repository root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut missing = Vec::new();
    for (document, at_least) in [("README.md", 10), ("SECURITY.md", 5)] {
        let text = std::fs::read_to_string(root.join(document))
            .unwrap_or_else(|e| panic!("reading {document}: {e}"));
        let paths: BTreeSet<String> = spans(&text)
            .iter()
            .filter_map(|span| repository_path(span.as_str()))
            .map(str::to_owned)
            .collect();
        assert!(
            paths.len() >= at_least,
            "{document}: only {} paths found, the rule must be broken: {paths:?}",
            paths.len()
        );
        for path in paths.iter().filter(|path| !root.join(path).exists()) {
            missing.push(format!("{document}: {path}"));
        }
    }
    let missing = missing.join("\n");
    assert!(
        missing.is_empty(),
        "named but not in the repository:\n{missing}"
    );
}
