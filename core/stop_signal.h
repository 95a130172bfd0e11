// stop_signal.h: the process's stop-signal flag, the one piece of process-wide mutable state in
// lowbit (a signal handler can reach nothing else). install_stop_signal_handlers() makes SIGTERM,
// SIGINT and SIGUSR1 (what Slurm and other schedulers send before they end a job, e.g.
// `--signal=USR1@120`) record their number in a lock-free flag and return: nothing else happens in
// the handler (async-signal-safe). The program polls stop_signal() at a safe point: the Trainer,
// through TrainerOptions::stop_requested, once per step, then finishes that step, writes a
// checkpoint and returns. A second SIGINT (Ctrl-C twice) ends the process at once with status 130.
// The library never installs the handlers itself; programs (the `lowbit` CLI) opt in.
#pragma once

namespace lowbit {

// Installs the handlers (sigaction with SA_RESTART, so interrupted system calls resume).
void install_stop_signal_handlers();
// The first stop signal received since install_stop_signal_handlers(), or 0 when none came.
int stop_signal();
// "SIGTERM", "SIGINT", "SIGUSR1"; "a signal to another rank" for 0, "a signal" for any other number.
const char* stop_signal_name(int signal);

}  // namespace lowbit
