//! The flag file a command is given: read and compiled by the engine, or every problem
//! with the command that lists them.

use std::path::Path;

use anyhow::Result;
use edgeflags_engine::{CompileError, compile_str};

use crate::input::read;

/// Compiles a flag file and returns its compact JSON and version, or every problem.
pub fn compile_file(file: &Path) -> Result<(String, String)> {
    let text = read(file)?;
    let snapshot = compile_str(&text).map_err(|e: CompileError| {
        anyhow::anyhow!(
            "{}: {e}\nfix these, then run the command again (`edgeflags validate {}` lists them)",
            file.display(),
            file.display()
        )
    })?;
    let compact = serde_json::from_str::<serde_json::Value>(&text)?.to_string();
    Ok((compact, snapshot.fingerprint().to_string()))
}

/// Compiles a flag file into the snapshot the engine evaluates.
pub fn snapshot(file: &Path) -> Result<edgeflags_engine::Snapshot> {
    let text = read(file)?;
    compile_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}\nfix these first (`edgeflags validate {}`)",
            file.display(),
            file.display()
        )
    })
}
