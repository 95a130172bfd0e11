// stop_signal.cpp: the stop-signal flag and its handlers (see stop_signal.h).
#include "core/stop_signal.h"

#include <unistd.h>

#include <csignal>
#include <initializer_list>

namespace lowbit {

namespace {

// Written by the handler, read by stop_signal(): the only state a handler may touch.
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
  if (signal == SIGINT && g_stop_signal != 0) _exit(128 + SIGINT);  // Ctrl-C after a stop signal: stop at once
  if (g_stop_signal == 0) g_stop_signal = signal;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : {SIGTERM, SIGINT, SIGUSR1}) sigaction(signal, &action, nullptr);
}

int stop_signal() { return g_stop_signal; }

const char* stop_signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
  }
  return signal == 0 ? "a signal to another rank" : "a signal";
}

}  // namespace lowbit
