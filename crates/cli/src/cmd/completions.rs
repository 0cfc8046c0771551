//! `lalarand completions`: shell completion scripts.

use crate::{Cli, Verdict};
use clap::CommandFactory;
use clap_complete::Shell;

/// Print a shell completion script on stdout.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand completions bash > ~/.local/share/bash-completion/completions/lalarand\n  lalarand completions zsh > ~/.zfunc/_lalarand\n  lalarand completions fish > ~/.config/fish/completions/lalarand.fish"
)]
pub struct Args {
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    clap_complete::generate(args.shell, &mut Cli::command(), "lalarand", &mut std::io::stdout());
    Ok(Verdict::Done)
}
