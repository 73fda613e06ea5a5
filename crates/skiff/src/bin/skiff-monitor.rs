//! `skiff-monitor`: started by skiff for every container instance; see the crate docs.
fn main() -> std::process::ExitCode {
    skiff_monitor::main()
}
