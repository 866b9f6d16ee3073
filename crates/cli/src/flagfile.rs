//! The flag file a command is given: read and compiled by the engine, or every problem
//! with the command that lists them.

use std::path::Path;

use anyhow::Result;
use edgeflags_engine::{CompileError, compile_str};

use crate::input::read;

/// A flag file compiled for the store.
pub struct Compiled {
    /// The flag file as compact JSON.
    pub json: String,
    /// Its version (the snapshot's fingerprint).
    pub version: String,
    /// The packed payload: the compiled snapshot in its envelope.
    pub payload: String,
}

/// Compiles a flag file once, for the store, or lists every problem.
pub fn compile_file(file: &Path) -> Result<Compiled> {
    let text = read(file)?;
    let snapshot = compile_str(&text).map_err(|e: CompileError| {
        anyhow::anyhow!(
            "{}: {e}\nfix these, then run the command again (`edgeflags validate {}` lists them)",
            file.display(),
            file.display()
        )
    })?;
    let json = serde_json::from_str::<serde_json::Value>(&text)?.to_string();
    Ok(Compiled {
        payload: edgeflags_engine::payload::envelope(&snapshot, &json),
        version: snapshot.fingerprint().to_string(),
        json,
    })
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
