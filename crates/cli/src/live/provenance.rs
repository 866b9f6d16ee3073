//! Who changes the live store, from which commit, when and why: what a history record
//! says beside the version. Taken from the options, else the environment a CI job sets,
//! else git.

use std::path::Path;
use std::process::Command;

/// Who: `given` (`--author` or $EDGEFLAGS_AUTHOR), else git's `user.name <user.email>`,
/// else $GITHUB_ACTOR (a GitHub Actions run), else $USER, else `unknown`.
pub fn author(given: Option<&str>) -> String {
    if let Some(a) = given.map(str::trim).filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    let name = git(None, &["config", "user.name"]);
    let email = git(None, &["config", "user.email"]);
    match (name, email) {
        (Some(n), Some(e)) => return format!("{n} <{e}>"),
        (Some(n), None) => return n,
        _ => {}
    }
    ["GITHUB_ACTOR", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Which commit `file` comes from: $EDGEFLAGS_COMMIT, else the repository's HEAD (with
/// `-dirty` when the file differs from it), else $GITHUB_SHA.
pub fn commit(file: Option<&Path>) -> Option<String> {
    if let Ok(c) = std::env::var("EDGEFLAGS_COMMIT")
        && !c.trim().is_empty()
    {
        return Some(c.trim().to_string());
    }
    let dir = file.and_then(dir_of);
    if let Some(head) = git(dir, &["rev-parse", "HEAD"]) {
        let dirty = file.is_some_and(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // `git diff --quiet` exits 1 when the file differs from HEAD; an untracked
            // file is not in HEAD at all.
            let differs = Command::new("git")
                .args(["diff", "--quiet", "HEAD", "--", &name])
                .current_dir(dir.unwrap_or(Path::new(".")))
                .status()
                .map(|s| s.code() == Some(1))
                .unwrap_or(false);
            differs || git(dir, &["ls-files", "--error-unmatch", "--", &name]).is_none()
        });
        return Some(if dirty { format!("{head}-dirty") } else { head });
    }
    std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty())
}

/// The subject line of `commit` (a clean one), for a push with no `--message`.
pub fn subject(file: Option<&Path>, commit: Option<&str>) -> Option<String> {
    let commit = commit.filter(|c| !c.ends_with("-dirty"))?;
    git(file.and_then(dir_of), &["log", "-1", "--format=%s", commit])
}

/// Now, in UTC, to the second (RFC 3339).
pub fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn dir_of(file: &Path) -> Option<&Path> {
    match file.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

/// The trimmed output of a git command that succeeded with some output.
fn git(dir: Option<&Path>, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_author_wins_and_blank_is_not_given() {
        assert_eq!(
            author(Some("  Ada <ada@example.com> ")),
            "Ada <ada@example.com>"
        );
        assert!(!author(Some("  ")).is_empty());
    }

    #[test]
    fn a_file_outside_any_repository_has_no_commit_from_git() {
        let dir = std::env::temp_dir().join(format!("edgeflags-prov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("flags.json");
        std::fs::write(&file, "{}").unwrap_or_else(|e| panic!("{e}"));
        // Outside a repository git answers nothing; the commit then comes from the CI
        // variables only (unset in this test unless the suite itself runs in CI).
        if std::env::var("EDGEFLAGS_COMMIT").is_err() && std::env::var("GITHUB_SHA").is_err() {
            assert_eq!(commit(Some(&file)), None);
        }
        assert_eq!(subject(Some(&file), Some("abc-dirty")), None);
    }
}
