// comm.cpp: the local (single-process) communicator, launcher detection and the process-wide
// comm() registry. The MPI communicator lives in comm_mpi.cpp (built only with MPI).
#include "core/comm.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

#ifdef LOWBIT_HAVE_MPI
std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv);  // comm_mpi.cpp
void finalize_mpi_comm();
#endif

namespace {

class LocalComm final : public Comm {
 public:
  const char* backend() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void broadcast(void*, int64_t, int root) override {
    LOWBIT_CHECK(root == 0, "broadcast: root ", root, " out of range for 1 rank");
  }
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::_Exit(exit_code); }
};

std::unique_ptr<Comm>& current() {
  static std::unique_ptr<Comm> c = std::make_unique<LocalComm>();
  return c;
}
bool g_mpi_started = false;

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

}  // namespace

bool comm_has_mpi() {
#ifdef LOWBIT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi() {
  const char* force = std::getenv("LOWBIT_MPI");
  if (force && std::strcmp(force, "0") == 0) return false;
  if (force && std::strcmp(force, "1") == 0) return true;
  // Open MPI's mpirun, PMIx (Open MPI 5, srun --mpi=pmix), PMI-1/2 (MPICH, srun --mpi=pmi2),
  // MPICH's Hydra.
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK") ||
         env_set("PMI_SIZE") || env_set("MPI_LOCALNRANKS");
}

Comm& init_comm(int* argc, char*** argv) {
  if (g_mpi_started || !launched_by_mpi()) return comm();
#ifdef LOWBIT_HAVE_MPI
  current() = make_mpi_comm(argc, argv);
  g_mpi_started = true;
#else
  (void)argc;
  (void)argv;
  // Started by a launcher but built without MPI: every process would train alone and they would
  // overwrite each other's files. Refuse instead.
  int launched_size = 0;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (env_set(name)) launched_size = std::atoi(std::getenv(name));
  const char* force = std::getenv("LOWBIT_MPI");
  LOWBIT_CHECK(launched_size <= 1 && !(force && std::strcmp(force, "1") == 0),
               "started by an MPI launcher (", launched_size, " ranks) but this lowbit was built without "
               "MPI: install libopenmpi-dev and rebuild (meson setup -Dmpi=enabled)");
#endif
  return comm();
}

void finalize_comm() {
#ifdef LOWBIT_HAVE_MPI
  if (g_mpi_started) {
    current() = std::make_unique<LocalComm>();
    finalize_mpi_comm();
    g_mpi_started = false;
  }
#endif
}

Comm& comm() { return *current(); }

int default_threads_per_rank(const Comm& c) {
  // Slurm already gives each task its own cores (srun -c K): use them all.
  if (const char* s = std::getenv("SLURM_CPUS_PER_TASK"); s && std::atoi(s) > 0) return std::atoi(s);
  int usable = hardware_threads();
  cpu_set_t mask;
  CPU_ZERO(&mask);
  // A launcher that binds ranks (mpirun --bind-to core) leaves this process fewer cores.
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) usable = std::min(usable, CPU_COUNT(&mask));
  const int share = hardware_threads() / std::max(1, c.local_size());
  return std::max(1, std::min(usable, share));
}

int threads_for(const Comm& c, int requested) { return requested > 0 ? requested : default_threads_per_rank(c); }

}  // namespace lowbit
