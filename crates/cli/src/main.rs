//! The `edgeflags` command: validate, lint and pack flag files, explain and simulate
//! decisions, push them to the live store per environment (with history, rollback to any
//! kept version and promotion), report on experiments, guard rollouts, and mint preview
//! tokens.
//!
//! This file parses the command line and hands each command to its room, one module per
//! command group next to its arguments. Arrows point one way: `main` names the commands; a
//! command names the shared rooms (`flagfile`, `input`, `keys`, `api`) and, when it builds
//! on one, another command (as `guard` would `live` and `report`), never back; the shared
//! rooms name no command.

mod api;
mod explain;
mod flagfile;
mod guard;
mod input;
mod keys;
mod lint;
mod live;
mod pack;
mod profiles;
mod report;
mod simulate;
mod tokens;
mod validate;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Feature flags, rollouts and localized content at the edge: the flag-file tool.
#[derive(Debug, Parser)]
#[command(name = "edgeflags", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a flag file and list every problem with its JSON path.
    ///
    /// Exits 0 when the file is valid, 1 when it has problems.
    ///
    /// Example: edgeflags validate config-store/flags.json
    Validate(validate::ValidateArgs),
    /// Pack a flag file into config-store entries (pointer and two slots).
    ///
    /// Writes the snapshot into the idle slot of the store file and flips the pointer, as
    /// `push` does against a live store. Refuses anything over Fastly's limits.
    ///
    /// Example: edgeflags pack config-store/flags.json --store config-store/edgeflags.json
    Pack(pack::PackArgs),
    /// Explain what a user gets for every flag, and why.
    ///
    /// Example: edgeflags explain config-store/flags.json --user u42 --country JP --device mobile --at 2026-11-28T21:00+09:00
    Explain(explain::ExplainArgs),
    /// Simulate many synthetic users and show the variant distribution of every flag,
    /// next to the configured split weights; each layer's occupancy and each holdout's
    /// share; and, with --at given more than once, the shares at each instant (a ramp's
    /// steps).
    ///
    /// Example: edgeflags simulate config-store/flags.json --users 100000 --countries JP=30,US=50,FR=20
    Simulate(simulate::SimulateArgs),
    /// List the stale flags of a flag file: flags past `expires`, flags serving one
    /// variant to everyone, prerequisites on flags about to be removed, unused segments.
    ///
    /// Exits 0 when nothing is stale, 1 when something is.
    ///
    /// Example: edgeflags lint config-store/flags.json --at 2026-12-01T00:00:00Z
    Lint(lint::LintArgs),
    /// Show, flag by flag, what pushing FILE would change in the live config store.
    /// Writes nothing.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags diff config-store/flags.json --env production
    Diff(live::LiveArgs),
    /// Push FILE to the live config store: show the diff, write the idle slot and flip the
    /// pointer, in one bulk request, recorded in the store's history (who, when, which
    /// commit, why). The edge serves it on the next request.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags push config-store/flags.json --env staging -m "Checkout v2 to 50%"
    Push(live::PushArgs),
    /// Flip the live config store back to the previous slot and drop the version that was
    /// active, in one bulk request: the snapshot is as it was before the last push. With
    /// --to, put back any version the history keeps instead (into the idle slot, the
    /// pointer flipped).
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags rollback --env production --to 02436c41
    Rollback(live::RollbackArgs),
    /// List the changes of a store's live snapshot, newest first: version, time, action,
    /// author, commit, message, flag-level changes, and whether `rollback --to` can reach it.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags history --env production
    History(live::HistoryArgs),
    /// Make live in environment TO exactly the payload FROM serves (compared by SHA-256):
    /// show the diff, refuse if TO moved since, write, and read TO back.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags promote staging production --version 02436c4194312be0
    Promote(live::PromoteArgs),
    /// Summarise an exposure/conversion log (JSON lines from the `edgeflags_events`
    /// endpoint): per flag and variant, users exposed, users converted, conversion rate
    /// with a 95% interval, the difference against the control with its fixed-horizon and
    /// always-valid (sequential) intervals and p-value, and a chart; per country, users
    /// exposed.
    ///
    /// Example: edgeflags report events.log --event purchase
    Report(report::ReportArgs),
    /// Guard a rollout: read the events logs, compare each variant of each flag that is on
    /// with a split or a ramp against the flag's off_variant on the origin error rate (and
    /// with --event, a conversion rate), with the always-valid sequential test; when a
    /// variant is worse with significance, push a version in which that flag is off
    /// (serving its off_variant), recorded in the store's history with why.
    ///
    /// Exits 0 when no variant is worse (nothing written), 1 when it turned a flag off
    /// (or would, with --dry-run), 2 on an error. Run it on a schedule next to the log
    /// endpoint's files.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags guard 'logs/*.log.gz' --env production --event purchase
    Guard(guard::GuardArgs),
    /// Mint a signed preview token that sets a visitor's geo, clock and variants.
    ///
    /// Send it as the `edgeflags-preview` header (or the `ef_preview` cookie or query
    /// parameter). The key comes from --key-file, else $EDGEFLAGS_PREVIEW_KEY, else the
    /// local dev key in config-store/secrets.json.
    ///
    /// Example: edgeflags preview-token --country JP --at 2026-11-28T21:00+09:00 --variant checkout=v2
    PreviewToken(tokens::PreviewArgs),
    /// Mint a signed login link to the preview console (`/.edgeflags/console`).
    ///
    /// Whoever opens it gets a console session until it expires: set a place, a clock, a
    /// device, traits and forced variants for their browser, and share them. The key is
    /// the preview key: --key-file, else $EDGEFLAGS_PREVIEW_KEY, else the local dev key in
    /// config-store/secrets.json.
    ///
    /// Example: edgeflags console-link --ttl 8h --user qa --base `https://www.example.com`
    ConsoleLink(tokens::ConsoleLinkArgs),
    /// Manage user profiles (behaviour traits) in the `edgeflags_profiles` KV store.
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    /// Mint a signed traits cookie (`ef_traits`) for a user, as an origin would set it.
    ///
    /// The key comes from --key-file, else $EDGEFLAGS_TRAITS_KEY, else the local dev key
    /// in config-store/secrets.json.
    ///
    /// Example: edgeflags traits-cookie --user u42 --trait buyer=bargain_hunter --ttl 1h
    TraitsCookie(tokens::TraitsCookieArgs),
    /// Mint a signed identity cookie (`ef_id`) for a user, as an origin sets it once it
    /// knows who the user is: the edge reads profiles and traits cookies only for such a
    /// verified user, never for a key the client chooses.
    ///
    /// Signed with the traits key: --key-file, else $EDGEFLAGS_TRAITS_KEY, else the local
    /// dev key in config-store/secrets.json.
    ///
    /// Example: edgeflags identity-cookie --user u42 --ttl 30d
    IdentityCookie(tokens::IdentityCookieArgs),
}

/// Runs a parsed command line.
fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::validate(args),
        Command::Pack(args) => pack::pack_file(args),
        Command::PreviewToken(args) => tokens::preview_token(args),
        Command::ConsoleLink(args) => tokens::console_link(args),
        Command::Explain(args) => explain::explain(args),
        Command::Report(args) => report::report(args),
        Command::Guard(args) => guard::guard(args),
        Command::Diff(args) => live::diff(args),
        Command::Push(args) => live::push(args),
        Command::Rollback(args) => live::rollback(args),
        Command::History(args) => live::history(args),
        Command::Promote(args) => live::promote(args),
        Command::Lint(args) => lint::lint(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Profiles(cmd) => profiles::run(cmd),
        Command::TraitsCookie(args) => tokens::traits_cookie(args),
        Command::IdentityCookie(args) => tokens::identity_cookie(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
