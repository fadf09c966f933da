//! The `wxgate` binary; everything lives in the library so tests can drive it.

/// mimalloc instead of the system allocator: request handling allocates many small, short-lived
/// buffers, and the system allocator showed up as ~10 % of the gateway's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wxgate::cli::main()
}
