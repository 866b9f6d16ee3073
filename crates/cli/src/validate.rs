//! `edgeflags validate`: check a flag file and list every problem with its JSON path.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use edgeflags_engine::compile_str;

use crate::input::read;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The flag file.
    file: PathBuf,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `validate`: exits 0 when the file is valid, 1 when it has problems.
pub fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let ValidateArgs { file, json } = a;
    let text = read(&file)?;
    match compile_str(&text) {
        Ok(snapshot) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "flags": snapshot.len(), "version": snapshot.fingerprint(), "problems": []})
                );
            } else {
                println!(
                    "{}: valid, {} flags, version {}",
                    file.display(),
                    snapshot.len(),
                    snapshot.fingerprint()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let problems = e.problems();
            if json {
                let list: Vec<_> = problems
                    .iter()
                    .map(|p| serde_json::json!({"path": p.path, "message": p.message}))
                    .collect();
                println!("{}", serde_json::json!({"valid": false, "problems": list}));
            } else {
                eprintln!("{}: {} problem(s)", file.display(), problems.len());
                for p in &problems {
                    eprintln!("  {}: {}", p.path, p.message);
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}
