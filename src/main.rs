//! The `ingestd` binary: everything lives in the library; see `ingestd::cli`.
fn main() -> std::process::ExitCode {
    ingestd::cli::main()
}
