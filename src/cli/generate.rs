//! `ingestd generate DIR` (hidden): writes the man pages and shell completions that the Debian
//! package ships, straight from the clap definitions so they can never drift from the CLI.
//!
//! Layout written under `DIR`:
//! - `man/ingestd.1` and one page per visible subcommand (`man/ingestd-run.1`, …);
//! - `completions/ingestd.bash`, `completions/_ingestd` (zsh), `completions/ingestd.fish`.

use crate::cli::stdout::outln;
use crate::escape::Show as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output directory; man pages go to DIR/man, completions to DIR/completions.
    pub out_dir: PathBuf,
}

/// Sections appended to `ingestd(1)` after the generated ones: what clap does not know.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
A runtime error (I/O, network, journal); the message says which.
.TP
\fB2\fR
A usage error (unknown option, missing argument, invalid \fB\-\-endpoint\fR).
.TP
\fB78\fR
The configuration is invalid (EX_CONFIG); the message gives file:line:col and what to change.
The systemd unit does not restart the daemon after this status.
.SH ENVIRONMENT
.TP
\fBINGESTD_CONFIG\fR
Configuration file used when \fB\-\-config\fR is not given.
.TP
\fBCREDENTIALS_DIRECTORY\fR
Set by systemd \fBLoadCredential=\fR; ingestd reads the upload token from
\fI$CREDENTIALS_DIRECTORY/upload\-token\fR when neither \fBupload_token\fR nor
\fBupload_token_file\fR is configured.
.TP
\fBAPIVIDEO_API_KEY\fR
API key for the \fBtoken\fR commands when \fBapi.api_key_file\fR is not set.
.TP
\fBRUST_LOG\fR
Log filter (default \fBinfo\fR).
.SH FILES
.TP
\fI/etc/ingestd/config.toml\fR
The configuration (a conffile of the Debian package).
.TP
\fI/etc/ingestd/upload\-token\fR
The delegated upload token, passed to the service as the systemd credential \fBupload\-token\fR.
.TP
\fI/var/lib/ingestd/journal.sqlite\fR
The journal: every file seen, its state and upload progress.
.TP
\fI/usr/lib/systemd/system/ingestd.service\fR
The systemd unit; local changes belong in a drop\-in (\fBsystemctl edit ingestd\fR).
.TP
\fI/usr/lib/sysctl.d/60\-ingestd\-inotify.conf\fR
Raised inotify limits.
.TP
\fI/usr/share/doc/ingestd/OPERATIONS.md\fR
Installing, configuring and running the service.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fBinotify\fR(7)
"#;

/// Writes every man page and completion file under `args.out_dir`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let man_dir = args.out_dir.join("man");
    let completions_dir = args.out_dir.join("completions");
    for dir in [&man_dir, &completions_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.shown()))?;
    }
    write_man_pages(&man_dir)?;
    write_completions(&completions_dir)?;
    outln!(
        "wrote man pages to {} and completions to {}",
        man_dir.shown(),
        completions_dir.shown()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `ingestd.1` with the extra sections, plus one page per visible subcommand.
fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("cannot write man pages to {}", dir.shown()))?;
    // Re-render the top page with the sections clap cannot derive, without listing the
    // implicit `help` subcommand (it has no page of its own).
    let man = clap_mangen::Man::new(cmd.disable_help_subcommand(true));
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    render_top_page(&man, &mut page).context("cannot render ingestd.1")?;
    fs::write(&path, page).with_context(|| format!("cannot write {}", path.shown()))?;
    Ok(())
}

fn render_top_page(man: &clap_mangen::Man, w: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    w.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(w)
}

/// bash, zsh and fish completions, named as those shells look them up.
fn write_completions(dir: &Path) -> anyhow::Result<()> {
    let mut cmd = without_hidden_subcommands(Cli::command());
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "ingestd", dir)
            .with_context(|| format!("cannot write {shell} completions to {}", dir.shown()))?;
    }
    Ok(())
}

/// The same command without hidden subcommands (clap_complete would offer them; clap has no way
/// to remove a subcommand, so the visible parts are copied into a fresh command).
fn without_hidden_subcommands(full: clap::Command) -> clap::Command {
    let mut cmd = clap::Command::new("ingestd")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(full.is_subcommand_required_set())
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pages_and_completions_without_the_hidden_command() {
        let dir = tempfile::tempdir().unwrap();
        run(&GenerateArgs {
            out_dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let top = fs::read_to_string(dir.path().join("man/ingestd.1")).unwrap();
        assert!(top.contains(".TH ingestd 1"), "{top}");
        assert!(top.contains("EXIT STATUS"));
        assert!(top.contains("A usage error"), "exit status 2 is documented");
        assert!(
            !top.contains("ingestd\\-help"),
            "names a page that does not exist: {top}"
        );
        assert!(top.contains("check\\-config"));
        assert!(
            !top.contains("generate"),
            "hidden command leaked into the man page"
        );
        assert!(dir.path().join("man/ingestd-check-config.1").is_file());
        assert!(dir.path().join("man/ingestd-token-create.1").is_file());
        assert!(!dir.path().join("man/ingestd-generate.1").exists());
        for name in ["ingestd.bash", "_ingestd", "ingestd.fish"] {
            let text = fs::read_to_string(dir.path().join("completions").join(name)).unwrap();
            assert!(text.contains("check-config"), "{name}");
            assert!(
                !text.contains("generate"),
                "{name} offers the hidden command"
            );
        }
    }
}
