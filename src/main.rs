//! The `strata` binary. Everything, logging and exit codes included, is in [`strata::cli::main`].

/// jemalloc instead of the system allocator. Under serve's mixed load (tokio workers, DataFusion and
/// rayon threads allocating on one thread and freeing on another) glibc's malloc kept freed memory
/// in its arenas: resident memory grew about 0.4 MiB a second for as long as the load lasted,
/// while heaptrack showed a live heap of 10 to 30 MiB that fell back when the load stopped.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    strata::cli::main()
}
