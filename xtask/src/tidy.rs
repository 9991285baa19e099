//! Repository rules, checked by `cargo test` (this module is a test module):
//!
//! - every crate's `Cargo.toml` has `[lints] workspace = true`;
//! - `sp-proto`, `sp-transport`, `sp-server` and `sp-model` forbid unsafe
//!   code at their root;
//! - every `unsafe` block has a `// SAFETY:` comment within the 3 lines
//!   above it (a longer comment block may reach further up);
//! - no test file sleeps (`thread::sleep`): tests wait for events, they do
//!   not sleep and hope. A sleep that is really a bounded poll can be let
//!   through, visibly, by a `// tidy:allow-sleep: <reason>` comment on its
//!   line or the line above.
//!
//! The checks only look at what exists, so crates still being written do not
//! break them. Target folders, hidden folders and `fuzz/` (its own workspace)
//! are skipped, and so is this file, which spells out the patterns.

use crate::project_root;
use std::path::{Path, PathBuf};

/// Crates whose `lib.rs` must say `#![forbid(unsafe_code)]`.
const FORBID_UNSAFE: &[&str] = &["sp-proto", "sp-transport", "sp-server", "sp-model"];

/// How far above an `unsafe` block its `// SAFETY:` comment may start.
const SAFETY_REACH: usize = 3;

/// Folders never scanned.
fn skipped_dir(root: &Path, dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || name == "target"
        || name.starts_with("target-")
        || dir == root.join("fuzz")
}

/// Every `.rs` file of the repository, but the skipped folders and this file.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if !skipped_dir(root, &path) {
                    walk(root, &path, out);
                }
            } else if ft.is_file() && path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    let me = root.join("xtask/src/tidy.rs");
    out.retain(|p| *p != me);
    out.sort();
    out
}

/// The crate folders: the root workspace's `members`, and any top-level
/// folder with a `Cargo.toml` (a crate not yet listed), `fuzz/` aside.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = workspace_members(&read(&root.join("Cargo.toml")))
        .iter()
        .map(|m| root.join(m))
        .collect();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir()
                && !skipped_dir(root, &p)
                && p.join("Cargo.toml").is_file()
                && !dirs.contains(&p)
            {
                dirs.push(p);
            }
        }
    }
    dirs.sort();
    dirs
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", p.display()))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// The `members = [...]` list of a `[workspace]` table.
fn workspace_members(toml: &str) -> Vec<String> {
    let mut in_ws = false;
    let mut collecting = false;
    let mut out = Vec::new();
    for line in toml.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if !collecting && line.starts_with('[') {
            in_ws = line == "[workspace]";
            continue;
        }
        let rest = if collecting {
            line
        } else if in_ws && line.starts_with("members") && line.contains('=') {
            collecting = true;
            line.split_once('=').map(|(_, r)| r).unwrap_or("")
        } else {
            continue;
        };
        out.extend(rest.split('"').skip(1).step_by(2).map(str::to_owned));
        if rest.contains(']') {
            collecting = false;
        }
    }
    out
}

/// Whether a manifest has `[lints] workspace = true` (or `lints.workspace = true`).
fn lints_from_workspace(toml: &str) -> bool {
    let mut in_lints = false;
    for line in toml.lines() {
        let line: String = line
            .split('#')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if (in_lints && line == "workspace=true") || line == "lints.workspace=true" {
            return true;
        }
    }
    false
}

/// Whether a crate root forbids unsafe code (an attribute line, not a comment).
fn forbids_unsafe(src: &str) -> bool {
    src.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]")
}

/// The code of a line: what is before a `//` comment.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with("//")
}

/// Whether the code of a line opens an `unsafe` block (`unsafe {`, `unsafe{`).
fn opens_unsafe_block(line: &str) -> bool {
    let code = code(line);
    let mut from = 0;
    while let Some(i) = code[from..].find("unsafe") {
        let start = from + i;
        let end = start + "unsafe".len();
        let word_start = !matches!(code[..start].chars().next_back(), Some(c) if c.is_alphanumeric() || c == '_');
        if word_start && code[end..].trim_start().starts_with('{') {
            return true;
        }
        from = end;
    }
    false
}

/// Line numbers (1-based) of `unsafe` blocks without a `// SAFETY:` comment
/// on the same line or within `SAFETY_REACH` lines above (a comment block
/// that starts further up but runs down to the block also counts).
fn unsafe_without_safety(src: &str) -> Vec<usize> {
    let lines: Vec<&str> = src.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !opens_unsafe_block(line) || line.contains("// SAFETY:") {
            continue;
        }
        let mut ok = false;
        for k in 1..=i {
            let above = lines[i - k];
            if above.contains("// SAFETY:") {
                ok = true;
                break;
            }
            if k >= SAFETY_REACH && !is_comment(above) {
                break;
            }
        }
        if !ok {
            bad.push(i + 1);
        }
    }
    bad
}

/// The opt-out marker for a sleep; it must give a reason after it.
const ALLOW_SLEEP: &str = "tidy:allow-sleep:";

fn allows_sleep(line: &str) -> bool {
    line.split_once(ALLOW_SLEEP)
        .is_some_and(|(before, reason)| before.contains("//") && !reason.trim().is_empty())
}

/// Line numbers (1-based) where code calls or imports `thread::sleep`
/// without an allow marker on that line or the one above.
fn sleeps(src: &str) -> Vec<usize> {
    let lines: Vec<&str> = src.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|&(i, l)| !(allows_sleep(l) || (i > 0 && allows_sleep(lines[i - 1]))))
        .filter(|(_, l)| {
            let c = code(l);
            let compact: String = c.chars().filter(|ch| !ch.is_whitespace()).collect();
            compact.contains("thread::sleep")
                || (compact.starts_with("use")
                    && compact.contains("thread::")
                    && compact.contains("sleep"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Whether a path lies in a `tests` folder.
fn in_tests_dir(root: &Path, p: &Path) -> bool {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .any(|c| c.as_os_str() == "tests")
}

fn report(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "tidy: {rule}:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let root = project_root();
    let dirs = crate_dirs(&root);
    assert!(
        dirs.len() >= 2,
        "tidy: found only {} crates in {}",
        dirs.len(),
        root.display()
    );
    let mut bad = Vec::new();
    for dir in dirs {
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            bad.push(format!(
                "{}: workspace member without a Cargo.toml",
                rel(&root, &dir)
            ));
        } else if !lints_from_workspace(&read(&manifest)) {
            bad.push(format!(
                "{}: add `[lints] workspace = true`",
                rel(&root, &manifest)
            ));
        }
    }
    report("every crate's Cargo.toml has [lints] workspace = true", bad);
}

#[test]
fn safe_crates_forbid_unsafe_code() {
    let root = project_root();
    let mut bad = Vec::new();
    for krate in FORBID_UNSAFE {
        let lib = root.join(krate).join("src/lib.rs");
        // A crate not written yet has nothing to check.
        if lib.is_file() && !forbids_unsafe(&read(&lib)) {
            bad.push(format!("{}: add #![forbid(unsafe_code)]", rel(&root, &lib)));
        }
    }
    report(
        "sp-proto, sp-transport, sp-server and sp-model forbid unsafe code",
        bad,
    );
}

#[test]
fn unsafe_blocks_have_safety_comments() {
    let root = project_root();
    let files = rust_files(&root);
    assert!(
        !files.is_empty(),
        "tidy: no .rs files under {}",
        root.display()
    );
    let mut bad = Vec::new();
    for f in files {
        for line in unsafe_without_safety(&read(&f)) {
            bad.push(format!(
                "{}:{line}: unsafe block without a `// SAFETY:` comment above it",
                rel(&root, &f)
            ));
        }
    }
    report(
        "every unsafe block is explained by a // SAFETY: comment",
        bad,
    );
}

#[test]
fn tests_do_not_sleep() {
    let root = project_root();
    let mut bad = Vec::new();
    for f in rust_files(&root)
        .into_iter()
        .filter(|f| in_tests_dir(&root, f))
    {
        for line in sleeps(&read(&f)) {
            bad.push(format!(
                "{}:{line}: wait for an event instead of sleeping",
                rel(&root, &f)
            ));
        }
    }
    report("no test sleeps (thread::sleep)", bad);
}

#[test]
fn the_checks_see_what_they_should() {
    let toml = "[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n";
    assert!(lints_from_workspace(toml));
    assert!(lints_from_workspace("[package]\nlints.workspace = true\n"));
    assert!(!lints_from_workspace("[package]\nname = \"x\"\n"));
    assert!(!lints_from_workspace(
        "[lints]\n[dependencies]\nworkspace = true\n"
    ));
    assert!(!lints_from_workspace("[lints]\n# workspace = true\n"));

    let ws = "[workspace]\nresolver = \"2\"\nmembers = [\"a\", \"b\",\n  \"c\", # note\n]\n[x]\nmembers = [\"no\"]\n";
    assert_eq!(workspace_members(ws), ["a", "b", "c"]);

    assert!(forbids_unsafe("//! doc\n#![forbid(unsafe_code)]\n"));
    assert!(!forbids_unsafe("// #![forbid(unsafe_code)]\n"));

    let block = ["unsafe", " {"].concat();
    let src = [
        "fn a() {".to_string(),
        format!("    let x = {block} f() }};"), // line 2: no comment
        "    // SAFETY: the pointer is valid.".to_string(),
        format!("    let y = {block} g() }};"), // line 4: ok
        "    // SAFETY: a long story".to_string(),
        "    // that goes on".to_string(),
        "    // and on".to_string(),
        "    // and on.".to_string(),
        format!("    let z = {block} h() }};"), // line 9: ok, comment block runs down
        "    // SAFETY: too far up".to_string(),
        "    let a = 1;".to_string(),
        "    let b = 2;".to_string(),
        "    let c = 3;".to_string(),
        format!("    let w = {block} i() }};"), // line 14: the comment is 4 lines up
        format!("    let v = {block} j() }}; // SAFETY: same line"),
        format!("    // {block} in a comment"),
        "    unsafe fn k() {}".to_string(),
        "    let not_unsafe = 1; my_unsafe { };".to_string(),
        "}".to_string(),
    ]
    .join("\n");
    assert_eq!(unsafe_without_safety(&src), [2, 14]);

    let sleep = ["thread", "::sleep"].concat();
    let src = format!(
        "use std::{};\nfn t() {{\n    std::{sleep}(d);\n    // never {sleep}\n}}\nuse std::thread::{{self, sleep}};\n",
        "time"
    );
    assert_eq!(sleeps(&src), [3, 6]);
    let allowed = format!(
        "    // tidy:allow-sleep: bounded poll\n    std::{sleep}(d);\n    std::{sleep}(d); // tidy:allow-sleep: poll\n    // tidy:allow-sleep:\n    std::{sleep}(d);\n"
    );
    assert_eq!(
        sleeps(&allowed),
        [5],
        "a marker without a reason does not count"
    );

    let root = Path::new("/r");
    assert!(in_tests_dir(root, Path::new("/r/sp-server/tests/a.rs")));
    assert!(!in_tests_dir(
        root,
        Path::new("/r/sp-server/src/tests_util.rs")
    ));
    assert!(skipped_dir(root, Path::new("/r/target")));
    assert!(skipped_dir(root, Path::new("/r/fuzz")));
    assert!(skipped_dir(root, Path::new("/r/.git")));
    assert!(!skipped_dir(root, Path::new("/r/sp-proto/fuzz")));
}
